"""The replica fetcher of one I/O worker: copies the logs of the partitions it follows from their leaders.

One thread per leader broker does only network I/O, with a blocking socket and the project's codec: it runs
one request at a time (OffsetForLeaderEpoch or Fetch v11 with replica_id = this broker) and hands the
decoded response to the I/O worker's main loop through a queue and a pipe the loop's selector watches. The
main loop, the partitions' one writer, applies it (truncate, append the leader's batches unchanged, move the
high watermark to min(leader HW, own log end offset), publish) and only then gives the thread its next
request, so the thread never touches a log and a log never changes under a request being built.

A newly followed partition (or a new leader epoch) first asks the leader where its own latest epoch ended
and truncates there (KIP-101), so records the new leader does not have are dropped before fetching.
Errors: a connection failure waits replica.fetch.backoff.ms and reconnects; a partition the leader refuses
(not leader, fenced or unknown epoch) waits the same backoff and starts over with the epoch check (new
metadata usually arrives meanwhile); OFFSET_OUT_OF_RANGE below the leader's log start restarts the log at
the leader's log start, above its end truncates through the epoch check.
"""

from __future__ import annotations

import os
import queue
import socket
import struct
import threading
import time
from typing import Callable

from broker.logfmt import Log
from broker.security.interbroker import InterBroker
from netio.codec import ErrorCode, decode_response, encode_request

log = Log("hpbroker.replica")

FETCH_VERSION = 11
EPOCHS_VERSION = 3
CLIENT_ID = "hpbroker-replica"
RESPONSE_MAX_BYTES = 10 << 20  # Kafka's replica.fetch.response.max.bytes default
_SIZE = struct.Struct(">i")
_BATCH_HEAD = struct.Struct(">qi")  # baseOffset, batchLength
_LAST_DELTA = struct.Struct(">i")  # lastOffsetDelta, at byte 23 of a batch
_RETRY_CODES = frozenset(int(c) for c in (
    ErrorCode.NOT_LEADER_OR_FOLLOWER, ErrorCode.FENCED_LEADER_EPOCH, ErrorCode.UNKNOWN_LEADER_EPOCH,
    ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, ErrorCode.REPLICA_NOT_AVAILABLE, ErrorCode.LEADER_NOT_AVAILABLE))

# Followed partition states
TRUNCATE = "truncate"  # ask OffsetForLeaderEpoch, truncate, then fetch
FETCH = "fetch"
WAIT = "wait"  # refused by the leader: back to TRUNCATE at retry_at


class Followed:
    """A partition this broker follows: the main loop's state of it."""

    __slots__ = ("topic", "partition", "slot", "leader", "epoch", "state", "retry_at")

    def __init__(self, topic: str, partition: int, slot: int, leader: int, epoch: int):
        self.topic = topic
        self.partition = partition
        self.slot = slot
        self.leader = leader
        self.epoch = epoch
        self.state = TRUNCATE
        self.retry_at = 0.0


class LeaderLink:
    """The connection to one leader broker and the thread that uses it."""

    def __init__(self, fetcher: "ReplicaFetcher", leader: int, address: tuple[str, int]):
        self.fetcher = fetcher
        self.leader = leader
        self.address = address
        self.jobs: queue.Queue = queue.Queue()
        self.busy = False
        self.failing = False  # logged once per outage
        self.stopped = threading.Event()
        self.sock: socket.socket | None = None
        self.correlation = 0
        self.thread = threading.Thread(target=self._run, name=f"replica-fetcher-{leader}", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.stopped.set()
        self.jobs.put(None)
        sock = self.sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)  # a blocking read in the thread returns at once
            except OSError:
                pass

    # -- the thread ---------------------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            job = self.jobs.get()
            if job is None or self.stopped.is_set():
                break
            kind, payload = job
            if kind == "idle":
                self.stopped.wait(payload)
                result = None
            else:
                try:
                    result = self._call(kind, payload)
                except (OSError, ValueError, struct.error) as e:
                    self._close()
                    result = e
                    self.stopped.wait(self.fetcher.backoff_s)
            if self.stopped.is_set():
                break
            self.fetcher.deliver(self, job, result)
        self._close()

    def _close(self) -> None:
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
            self.sock = None

    def _call(self, kind: str, body: dict):
        key, version = (1, FETCH_VERSION) if kind == "fetch" else (23, EPOCHS_VERSION)
        if self.sock is None:
            from tools.client import KafkaError

            try:  # TLS and a SASL login when the inter-broker listener asks for them
                conn = self.fetcher.inter.connect(*self.address, timeout=self.fetcher.socket_timeout_s)
            except KafkaError as e:
                raise OSError(f"leader {self.leader}: {e}") from None
            self.sock = conn.sock
            self.correlation = conn.correlation
            if self.stopped.is_set():
                raise OSError("fetcher stopped")
        self.correlation += 1
        self.sock.sendall(encode_request(key, version, self.correlation, CLIENT_ID, body))
        frame = self._read_frame()
        correlation, response = decode_response(key, version, memoryview(frame)[4:])
        if correlation != self.correlation:
            raise ValueError(f"response {correlation} to request {self.correlation}")
        return response

    def _read_frame(self) -> bytearray:
        head = self._read_exactly(4)
        (size,) = _SIZE.unpack(head)
        if size < 4 or size > self.fetcher.max_response:
            raise ValueError(f"response frame of {size} bytes")
        return head + self._read_exactly(size)

    def _read_exactly(self, n: int) -> bytearray:
        buf = bytearray(n)
        view = memoryview(buf)
        got = 0
        while got < n:
            k = self.sock.recv_into(view[got:])
            if not k:
                raise ConnectionResetError("leader closed the connection")
            got += k
        return buf


class ReplicaFetcher:
    """All followed partitions of one I/O worker.

    `log_for(slot)` gives the partition's PartitionLog (None when no longer here); `progress(slot)` is
    called after the log or its high watermark changed (the I/O worker publishes it)."""

    def __init__(self, broker_id: int, config, log_for: Callable[[int], object | None],
                 progress: Callable[[int], None]):
        self.broker_id = broker_id
        self.wait_ms = int(config["replica.fetch.wait.max.ms"])
        self.partition_max_bytes = int(config["replica.fetch.max.bytes"])
        self.backoff_s = int(config["replica.fetch.backoff.ms"]) / 1000.0
        self.socket_timeout_s = max(int(config["replica.socket.timeout.ms"]) / 1000.0,
                                    self.wait_ms / 1000.0 + 5.0)
        self.response_max_bytes = max(RESPONSE_MAX_BYTES, self.partition_max_bytes)
        self.max_response = 2 * self.response_max_bytes + (1 << 20)  # a first batch may exceed the budget
        self.log_for = log_for
        self.progress = progress
        self.inter = InterBroker(config)
        self.followed: dict[tuple[str, int], Followed] = {}
        self.links: dict[int, LeaderLink] = {}
        self.results: queue.Queue = queue.Queue()
        self._rfd, self._wfd = os.pipe()
        os.set_blocking(self._rfd, False)
        os.set_blocking(self._wfd, False)

    def fileno(self) -> int:
        """Readable when a response waits for `poll`."""
        return self._rfd

    def deliver(self, link: LeaderLink, job: tuple, result) -> None:
        """From a fetcher thread: a response (or the exception the request ended with)."""
        self.results.put((link, job, result))
        try:
            os.write(self._wfd, b"x")
        except BlockingIOError:
            pass  # the pipe is full of wakeups already

    # -- assignment (main loop) ---------------------------------------------------------------------------

    def assign(self, wanted: dict[tuple[str, int], tuple[int, int, int, tuple[str, int] | None]]) -> None:
        """The partitions to follow now: (topic, partition) -> (slot, leader id, leader epoch, leader
        address or None when the leader is not a live broker)."""
        for key in [k for k in self.followed if k not in wanted]:
            del self.followed[key]
        addresses: dict[int, tuple[str, int]] = {}
        for key, (slot, leader, epoch, address) in wanted.items():
            f = self.followed.get(key)
            if f is None or f.leader != leader or f.epoch != epoch or f.slot != slot:
                self.followed[key] = Followed(key[0], key[1], slot, leader, epoch)
            if address is not None:
                addresses[leader] = address
        for leader in list(self.links):
            link = self.links[leader]
            if leader not in addresses or addresses[leader] != link.address:
                link.stop()
                del self.links[leader]
        for leader, address in addresses.items():
            if leader not in self.links:
                self.links[leader] = LeaderLink(self, leader, address)
                log.info("following leader", leader=leader, host=address[0], port=address[1])
        for link in self.links.values():
            self._kick(link)

    def close(self) -> None:
        for link in self.links.values():
            link.stop()
        for link in self.links.values():
            link.thread.join(timeout=2.0)
        self.links.clear()
        self.followed.clear()
        os.close(self._rfd)
        os.close(self._wfd)

    # -- requests (main loop) -----------------------------------------------------------------------------

    def _kick(self, link: LeaderLink) -> None:
        if link.busy:
            return
        job = self._next_job(link)
        if job is not None:
            link.busy = True
            link.jobs.put(job)

    def _next_job(self, link: LeaderLink) -> tuple | None:
        now = time.monotonic()
        mine = [f for f in self.followed.values() if f.leader == link.leader]
        if not mine:
            return None
        waits = []
        for f in mine:
            if f.state == WAIT:
                if f.retry_at <= now:
                    f.state = TRUNCATE
                else:
                    waits.append(f.retry_at - now)
        asks = []
        for f in mine:
            if f.state != TRUNCATE:
                continue
            plog = self.log_for(f.slot)
            if plog is None:
                continue
            local = plog.leader_epoch_cache.latest_epoch
            if local < 0:
                f.state = FETCH  # nothing of ours to reconcile
            else:
                asks.append((f, local))
        if asks:
            topics: dict[str, list] = {}
            for f, local in asks:
                topics.setdefault(f.topic, []).append(
                    {"partition": f.partition, "current_leader_epoch": f.epoch, "leader_epoch": local})
            body = {"replica_id": self.broker_id,
                    "topics": [{"topic": t, "partitions": ps} for t, ps in topics.items()]}
            return "epochs", body
        fetches: dict[str, list] = {}
        for f in mine:
            if f.state != FETCH:
                continue
            plog = self.log_for(f.slot)
            if plog is None:
                continue
            fetches.setdefault(f.topic, []).append(
                {"partition": f.partition, "current_leader_epoch": f.epoch, "fetch_offset": plog.log_end_offset,
                 "log_start_offset": plog.log_start_offset, "partition_max_bytes": self.partition_max_bytes})
        if fetches:
            body = {"replica_id": self.broker_id, "max_wait_ms": self.wait_ms, "min_bytes": 1,
                    "max_bytes": self.response_max_bytes, "isolation_level": 0, "session_id": 0, "session_epoch": -1,
                    "topics": [{"topic": t, "partitions": ps} for t, ps in fetches.items()],
                    "forgotten_topics_data": [], "rack_id": ""}
            return "fetch", body
        if waits:
            return "idle", min(waits)
        return None

    # -- responses (main loop) ----------------------------------------------------------------------------

    def poll(self) -> int:
        """Apply every response that arrived; returns how many."""
        try:
            os.read(self._rfd, 4096)
        except BlockingIOError:
            pass
        n = 0
        while True:
            try:
                link, job, result = self.results.get_nowait()
            except queue.Empty:
                return n
            n += 1
            link.busy = False
            if self.links.get(link.leader) is not link:
                continue  # stopped meanwhile
            if isinstance(result, Exception):
                if not link.failing:
                    log.warning("leader unreachable", leader=link.leader, error=repr(result))
                link.failing = True
            elif result is not None:
                if link.failing:
                    log.info("leader reachable again", leader=link.leader)
                link.failing = False
                try:
                    self._apply(link, job, result)
                except Exception as e:
                    log.error("replica response not applied", exc_info=True, leader=link.leader, error=repr(e))
                    self._wait_all(link)
            self._kick(link)

    def _apply(self, link: LeaderLink, job: tuple, response: dict) -> None:
        kind, request = job
        epochs = {(t["topic"], p["partition"]): p["current_leader_epoch"] for t in request["topics"]
                  for p in t["partitions"]}
        if kind == "epochs":
            for t in response["topics"]:
                for p in t["partitions"]:
                    f = self._current(link, t["topic"], p["partition"], epochs)
                    if f is not None:
                        self._truncate(f, p)
            return
        if response.get("error_code"):
            log.warning("replica fetch refused", leader=link.leader, code=response["error_code"])
            self._wait_all(link)
            return
        for t in response["responses"]:
            for p in t["partitions"]:
                f = self._current(link, t["topic"], p["partition_index"], epochs)
                if f is not None:
                    self._fetched(f, p)

    def _current(self, link: LeaderLink, topic: str, partition: int, epochs: dict) -> Followed | None:
        """The followed partition a response entry is for, unless it changed since the request."""
        f = self.followed.get((topic, partition))
        if f is None or f.leader != link.leader or epochs.get((topic, partition)) != f.epoch:
            return None
        return f

    def _wait(self, f: Followed) -> None:
        f.state = WAIT
        f.retry_at = time.monotonic() + self.backoff_s

    def _wait_all(self, link: LeaderLink) -> None:
        for f in self.followed.values():
            if f.leader == link.leader:
                self._wait(f)

    def _truncate(self, f: Followed, p: dict) -> None:
        code = p["error_code"]
        if code:
            (log.debug if code in _RETRY_CODES else log.warning)(
                "leader epoch query refused", topic=f.topic, partition=f.partition, leader=f.leader, code=code)
            self._wait(f)
            return
        plog = self.log_for(f.slot)
        if plog is None:
            return
        leo = plog.log_end_offset
        epoch, end = p["leader_epoch"], p["end_offset"]
        cache = plog.leader_epoch_cache
        if epoch < 0 or end < 0:
            target = plog.high_watermark  # the leader knows none of our epochs: keep what was committed
        elif epoch == cache.latest_epoch:
            target = end
        else:  # the leader's epoch is older than ours: where that epoch ended here, if sooner
            target = min(end, cache.end_offset_for(epoch, leo)[1])
        if target < leo:
            plog.truncate_to(max(target, 0))
            log.info("follower truncated", topic=f.topic, partition=f.partition, leader=f.leader,
                     from_offset=leo, to_offset=plog.log_end_offset)
            self.progress(f.slot)
        f.state = FETCH

    def _fetched(self, f: Followed, p: dict) -> None:
        code = p["error_code"]
        plog = self.log_for(f.slot)
        if plog is None:
            return
        if code == ErrorCode.OFFSET_OUT_OF_RANGE:
            self._out_of_range(f, plog, p["log_start_offset"])
            return
        if code:
            if code not in _RETRY_CODES:
                log.warning("replica fetch error", topic=f.topic, partition=f.partition, leader=f.leader, code=code)
            self._wait(f)
            return
        records = p["records"]
        if records is not None and len(records):
            append(plog, records)
        hw = min(p["high_watermark"], plog.log_end_offset)
        leader_start = p["log_start_offset"]
        if leader_start > plog.log_start_offset and leader_start <= hw:
            plog.high_watermark = hw
            plog.delete_records_before(leader_start)  # DeleteRecords or retention at the leader
        plog.high_watermark = hw
        self.progress(f.slot)

    def _out_of_range(self, f: Followed, plog, leader_start: int) -> None:
        if 0 <= leader_start and plog.log_end_offset < leader_start:
            # Everything we have lies before the leader's log start: start over there.
            plog.restart_at(leader_start)
            log.info("follower log restarted", topic=f.topic, partition=f.partition, offset=leader_start)
            self.progress(f.slot)
        else:
            f.state = TRUNCATE  # ahead of the leader: find where we diverged


def append(plog, records) -> None:
    """Append the leader's batches as they are, skipping those this log already holds (a batch reaching
    back before the log end means the log ends inside it: cut the log back to the batch's start)."""
    view = memoryview(records).cast("B") if not isinstance(records, memoryview) else records
    leo = plog.log_end_offset
    pos = 0
    end = len(view)
    while pos + 27 <= end:
        base, length = _BATCH_HEAD.unpack_from(view, pos)
        if base >= leo:
            break
        last = base + _LAST_DELTA.unpack_from(view, pos + 23)[0]
        if last >= leo:
            plog.truncate_to(base)
            break
        pos += 12 + length
    if pos < end:
        plog.append_as_follower(view[pos:])
