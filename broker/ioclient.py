"""The network worker's side of the rings: send requests to partition owners, route completions back.

Each request gets a token; its completion arrives on the paired completion ring and calls the callback
registered with the token. A request that finds its ring full waits in a per-ring backlog and the
connection that sent it stops being read until the backlog drains (backpressure, never a drop).
Tokens start from a random base per process, so completions addressed to a previous incarnation of this
worker (it crashed and was restarted) match nothing and are ignored.
"""

from __future__ import annotations

import os
from collections import deque
from typing import Callable

from broker import ipc
from broker.logfmt import Log
from broker.metrics import PROC
from broker.shm.layout import MS_ARENA_REFS, MS_BACKLOG_EVENTS
from netio.codec import ErrorCode

log = Log("hpbroker.ioclient")

Callback = Callable[[tuple], None]


class IOClient:
    def __init__(self, request_rings: list, completion_rings: list, arena=None):
        self.req = request_rings  # index: I/O worker
        self.done = completion_rings
        self.arena = arena  # ArenaAllocator: records of a large frame are sent by reference
        self.pending: dict[int, Callback] = {}
        self.backlog: list[deque] = [deque() for _ in request_rings]
        self.next_token = int.from_bytes(os.urandom(6), "little") << 16
        self.blocked_conns: set = set()
        self.forwards: dict[int, int] = {}  # token -> I/O worker, for whole requests forwarded to an owner
        self.deferred: dict[int, int] = {}  # token -> I/O worker, acks=all appends waiting there for the ISR

    def _token(self, callback: Callback) -> int:
        self.next_token += 1
        self.pending[self.next_token] = callback
        return self.next_token

    def _put(self, io: int, kind: int, parts: tuple, conn) -> None:
        if self.backlog[io] or not self.req[io].try_put(kind, *parts):
            self.backlog[io].append((kind, tuple(bytes(p) for p in parts)))
            PROC.scalars[MS_BACKLOG_EVENTS] += 1
            if conn is not None:
                self.blocked_conns.add(conn)

    def append(self, io: int, slot: int, topic: str, partition: int, acks: int, records, callback: Callback,
               conn=None, timeout_ms: int = 0) -> None:
        token = self._token(callback)
        header = ipc.append_header(token, slot, partition, acks, topic.encode(), timeout_ms)
        arena = self.arena
        if arena is not None and not self.backlog[io]:
            offset = arena.offset_of(records)
            if offset is not None:
                ring = self.req[io]
                if ring.try_put(ipc.APPEND_REF, header, ipc.arena_ref(offset, len(records))):
                    arena.referenced(ring)
                    PROC.scalars[MS_ARENA_REFS] += 1
                    return
        self._put(io, ipc.APPEND, (header, records), conn)  # copied into the ring (or the backlog)

    def list_offset(self, io: int, slot: int, topic: str, partition: int, timestamp: int,
                    callback: Callback) -> None:
        token = self._token(callback)
        self._put(io, ipc.LIST_OFFSET, (ipc.list_offset_request(token, slot, partition, timestamp,
                                                                topic.encode()),), None)

    def replica_pos(self, io: int, slot: int, topic: str, partition: int, replica_id: int,
                    fetch_offset: int) -> None:
        """Tell a leader's owner how far a follower's Fetch reached. Never waits: with the ring full (or
        requests already waiting for it) the message is dropped, and the follower's next Fetch repeats it."""
        if not self.backlog[io]:
            self.req[io].try_put(ipc.REPLICA_POS, ipc.replica_pos(slot, partition, replica_id, fetch_offset,
                                                                  topic.encode()))

    def backlog_pending(self) -> bool:
        return any(self.backlog)

    def forward(self, io: int, key: int, frame, callback: Callback) -> None:
        token = self._token(callback)
        self.forwards[token] = io
        self._put(io, ipc.FORWARD, (ipc.forward_header(token, key), frame), None)

    def abandon_forwards(self, io: int) -> None:
        """I/O worker `io` died: requests it held (a parked JoinGroup) will never be answered. Their
        callbacks get `(token, None)`. Appends it had not taken from the ring are not affected (its
        successor re-reads the ring); acks=all appends it held waiting for the ISR are answered
        REQUEST_TIMED_OUT (in the log, replication unknown: the client retries)."""
        lost = [t for t, owner in self.forwards.items() if owner == io]
        for token in lost:
            del self.forwards[token]
            cb = self.pending.pop(token, None)
            if cb is not None:
                cb((token, None))
        for token in [t for t, owner in self.deferred.items() if owner == io]:
            del self.deferred[token]
            cb = self.pending.pop(token, None)
            if cb is not None:
                cb((token, int(ErrorCode.REQUEST_TIMED_OUT), -1, -1, -1))

    def flush_backlog(self) -> bool:
        """Move waiting requests into their rings; True when every backlog is empty."""
        empty = True
        for io, q in enumerate(self.backlog):
            ring = self.req[io]
            while q:
                kind, parts = q[0]
                if not ring.try_put(kind, *parts):
                    break
                q.popleft()
            if q:
                empty = False
        if empty:
            self.blocked_conns.clear()
        return empty

    def poll(self) -> int:
        """Deliver every completion that has arrived; returns how many."""
        n = 0
        for io, ring in enumerate(self.done):
            msgs = ring.peek_batch(256)
            if not msgs:
                continue
            results = []
            for kind, payload in msgs:
                if kind == ipc.APPEND_DONE:
                    results.append(ipc.parse_append_done(payload))
                elif kind == ipc.LIST_OFFSET_DONE:
                    results.append(ipc.parse_list_offset_done(payload))
                elif kind == ipc.FORWARD_DONE:
                    results.append(ipc.parse_forward_done(payload))
                elif kind == ipc.APPEND_DEFERRED:
                    self.deferred[ipc.parse_append_deferred(payload)] = io
            ring.advance()
            deferred = self.deferred
            for result in results:
                self.forwards.pop(result[0], None)
                if deferred:
                    deferred.pop(result[0], None)
                cb = self.pending.pop(result[0], None)
                if cb is not None:
                    cb(result)
                    n += 1
        return n
