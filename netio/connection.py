"""One client connection: framing in, responses out in request order, bytes or file ranges.

Kafka clients pipeline requests (librdkafka keeps up to 5 in flight) and require responses in the order the
requests arrived, even when a later one finishes first (a Metadata reply overtaking a parked Produce). Each
request therefore takes a `Slot` at arrival; slots are released to the socket strictly in order.

A response is a list of parts: `bytes`/`memoryview` or `FilePart(fd, offset, length)`, so Fetch can hand
segment bytes to `os.sendfile` without copying them through Python.
"""

from __future__ import annotations

import os
import socket
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable, Union

from broker.metrics import PROC, now_us
from broker.metrics.block import STAGE, errors_in
from broker.shm import layout as _ml
from netio.codec import FrameReader, encode_response

_IO, _SEND, _TOTAL = STAGE["io"], STAGE["send"], STAGE["total"]


@dataclass(frozen=True, slots=True)
class FilePart:
    """A byte range of a file to send with os.sendfile. It owns `fd` (a duplicate of the segment's
    descriptor): the segment may be closed or deleted while the response waits in the queue, and the
    connection closes the descriptor once the range is sent or dropped."""

    fd: int
    offset: int
    length: int


Part = Union[bytes, bytearray, memoryview, FilePart]

TLS_WRITE_BYTES = 256 * 1024  # plaintext per TLS send: sixteen records


class Slot:
    """A request's place in its connection's response order."""

    __slots__ = ("conn", "api_key", "api_version", "correlation_id", "parts", "done", "close_after", "t_framed",
                 "t_dispatched", "t_answered", "request_time")

    def __init__(self, conn: "Connection", api_key: int, api_version: int, correlation_id: int):
        self.conn = conn
        self.api_key = api_key
        self.api_version = api_version
        self.correlation_id = correlation_id
        self.parts: list[Part] | None = None
        self.done = False
        self.close_after: str | None = None
        self.t_framed = conn.read_us
        self.t_dispatched = self.t_answered = now_us()
        self.request_time = None  # set by the dispatcher when a request quota applies: `on_reply(body)`

    def reply(self, body: dict) -> None:
        if self.request_time is not None:
            self.request_time.on_reply(body)
        for code in errors_in(body, []):
            PROC.error(self.api_key, code)
        self.reply_parts([encode_response(self.api_key, self.api_version, self.correlation_id, body)])

    def reply_parts(self, parts: list[Part]) -> None:
        if self.done:
            return
        self.parts = parts
        self.done = True
        self.t_answered = now_us()
        PROC.observe(_IO, self.api_key, self.t_answered - self.t_dispatched)
        self.conn.slot_done()

    def no_reply(self) -> None:
        """acks=0 Produce: the request takes no response but keeps its place."""
        self.reply_parts([])

    def fail_connection(self, reason: str) -> None:
        """Close the connection once the responses before this one are out (acks=0 errors)."""
        self.close_after = reason
        self.reply_parts([])


class Connection:
    __slots__ = ("sock", "id", "peer", "reader", "slots", "out", "out_bytes", "closed", "close_reason",
                 "on_writable_change", "want_write", "paused", "read_us", "queued_total", "sent_total", "sending",
                 "dirty", "listener", "auth", "tls", "principal", "access", "sasl", "muted_until")

    def __init__(self, sock: socket.socket, conn_id: int, peer: str, max_frame_bytes: int,
                 on_writable_change: Callable[["Connection"], None], arena=None):
        self.sock = sock
        self.id = conn_id
        self.peer = peer
        self.reader = FrameReader(max_frame_bytes, arena)
        self.slots: deque[Slot] = deque()
        self.out: deque[Part] = deque()
        self.out_bytes = 0
        self.closed = False
        self.close_reason: str | None = None
        self.on_writable_change = on_writable_change
        self.want_write = False
        self.paused = False
        self.read_us = now_us()  # when the last bytes were read: a frame completed then at the latest
        self.queued_total = self.sent_total = 0  # response bytes handed to `out` / written, for send latency
        self.sending: deque[tuple[int, Slot]] = deque()
        # With a set here, finished responses are written once per event-loop pass by whoever owns the set
        # (one sendmsg for every response of the pass) instead of one write per response.
        self.dirty: set | None = None
        self.listener: str | None = None  # the name of the listener it came in through
        self.tls = not isinstance(sock, socket.socket)  # a netio.tls.TLSSocket
        # Until a client on a SASL listener has authenticated: what it may send next (broker.security.sasl).
        self.auth = None
        # (principal, client address) the authorizer judges requests by; set at the SASL login, else
        # found at the first request that needs it (a client certificate's subject, or User:ANONYMOUS).
        self.principal: tuple[str, str] | None = None
        self.access = None  # (authorizer, its checker for this principal): see Dispatcher.access
        # After a SASL login: (mechanism, time.monotonic() the session ends, 0 for never) (KIP-368)
        self.sasl: tuple[str, float] | None = None
        self.muted_until = 0.0  # time.monotonic() until which a client over its quota is not read

    def mute(self, seconds: float) -> None:
        """Read nothing more from this client for `seconds` (a quota's throttle time); what it already
        sent waits unframed. The worker's loop resumes it once the time has passed."""
        self.muted_until = max(self.muted_until, time.monotonic() + seconds)
        self.on_writable_change(self)

    def client_host(self) -> str:
        """The client's address without the port: what ACL entries name as host."""
        return self.peer.rpartition(":")[0] or self.peer

    def new_slot(self, api_key: int, api_version: int, correlation_id: int) -> Slot:
        slot = Slot(self, api_key, api_version, correlation_id)
        self.slots.append(slot)
        return slot

    def slot_done(self) -> None:
        if self.closed:  # answered after the client left: nothing to send, file ranges to let go
            self.release_files()
            self.slots.clear()
            return
        while self.slots and self.slots[0].done:
            slot = self.slots.popleft()
            for part in slot.parts or ():
                self.out.append(part)
                n = part.length if isinstance(part, FilePart) else len(part)
                self.out_bytes += n
                self.queued_total += n
            self.sending.append((self.queued_total, slot))
            if slot.close_after is not None:
                self.close_reason = slot.close_after
                out, self.out = self.out, deque()  # keep what is queued; drop only later responses
                self.release_files()
                self.out = out
                self.slots.clear()
                break
        if self.dirty is not None:
            self.dirty.add(self)
        else:
            self.flush()

    # -- writing ----------------------------------------------------------------------------------------

    def flush(self) -> None:
        """Write as much as the socket takes now; ask for EVENT_WRITE if something is left."""
        if self.closed:
            return
        try:
            if self.tls:
                self._write_tls()
            while self.out and not self.tls:
                head = self.out[0]
                if isinstance(head, FilePart):
                    n = os.sendfile(self.sock.fileno(), head.fd, head.offset, head.length)
                    if n == 0:
                        raise ConnectionResetError("sendfile wrote nothing")
                    self.out_bytes -= n
                    self._sent(n)
                    if n < head.length:
                        self.out[0] = FilePart(head.fd, head.offset + n, head.length - n)
                        break
                    self.out.popleft()
                    os.close(head.fd)
                    continue
                bufs = []
                for part in self.out:
                    if isinstance(part, FilePart) or len(bufs) >= 64:
                        break
                    bufs.append(part)
                n = self.sock.sendmsg(bufs)
                self.out_bytes -= n
                self._sent(n)
                short = n < sum(len(b) for b in bufs)
                while n:
                    part = self.out[0]
                    if n >= len(part):
                        n -= len(part)
                        self.out.popleft()
                    else:
                        self.out[0] = memoryview(part)[n:]
                        n = 0
                if short:
                    break  # the socket buffer is full
        except (BlockingIOError, InterruptedError):
            pass
        except OSError as e:
            self.close_reason = self.close_reason or f"write failed: {e.strerror or e}"
            self.release_files()
            self.out.clear()
            self.out_bytes = 0
            self.sending.clear()
            self.want_write = False
            self.on_writable_change(self)  # the owner closes it now, not at the peer's next event
            return
        if self.sending and self.sending[0][0] <= self.sent_total:
            self._observe_sent()
        want = bool(self.out) or (self.tls and self.sock.unsent())  # has_output, inline: every flush
        if want != self.want_write:
            self.want_write = want
            self.on_writable_change(self)

    def _write_tls(self) -> None:
        """What `flush` does for a TLS connection: the ciphertext already made goes first; then each send
        encrypts one piece of plaintext, up to TLS_WRITE_BYTES joined from the queued parts, file ranges
        read into memory (sendfile would bypass the encryption). Raises BlockingIOError once the socket
        is full."""
        sock = self.sock
        sock.flush_out()
        out = self.out
        while out:
            head = out[0]
            if isinstance(head, FilePart) or (len(out) > 1 and len(head) < TLS_WRITE_BYTES):
                out.appendleft(self._tls_piece())
                head = out[0]
            n = sock.send(head)  # all of it, encrypted; what the socket does not take waits in `sock`
            out.popleft()
            self.out_bytes -= n
            self._sent(n)
            sock.flush_out()

    def _tls_piece(self) -> bytes:
        """Take up to TLS_WRITE_BYTES from the head of `out` as one bytes object (the caller puts it back)."""
        out = self.out
        piece = bytearray()
        while out and len(piece) < TLS_WRITE_BYTES:
            head = out.popleft()
            room = TLS_WRITE_BYTES - len(piece)
            if isinstance(head, FilePart):
                take = min(room, head.length)
                data = os.pread(head.fd, take, head.offset)
                if len(data) != take:
                    raise ConnectionAbortedError(f"segment read returned {len(data)} of {take} bytes")
                piece += data
                if take < head.length:
                    out.appendleft(FilePart(head.fd, head.offset + take, head.length - take))
                else:
                    os.close(head.fd)
            elif len(head) > room:
                piece += memoryview(head)[:room]
                out.appendleft(memoryview(head)[room:])
            else:
                piece += head
        return bytes(piece)

    def has_output(self) -> bool:
        """Bytes still to write: queued parts, or on TLS ciphertext the socket has not taken yet."""
        return bool(self.out) or (self.tls and self.sock.unsent())

    def release_files(self) -> None:
        """Close the descriptors of file ranges that will not be sent (the connection is going away)."""
        for part in self.out:
            if isinstance(part, FilePart):
                os.close(part.fd)
        for slot in self.slots:
            for part in slot.parts or ():
                if isinstance(part, FilePart):
                    os.close(part.fd)
            slot.parts = None

    def _sent(self, n: int) -> None:
        self.sent_total += n
        PROC.scalars[_ml.MS_NET_BYTES_OUT] += n

    def _observe_sent(self) -> None:
        """Send and total latency of every response whose last byte is now written."""
        now = now_us()
        while self.sending and self.sending[0][0] <= self.sent_total:
            _, slot = self.sending.popleft()
            PROC.observe(_SEND, slot.api_key, now - slot.t_answered)
            PROC.observe(_TOTAL, slot.api_key, now - slot.t_framed)
