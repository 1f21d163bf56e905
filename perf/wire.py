"""The harness's own Kafka client: one blocking socket per broker, pipelined requests, the project's codec.

Requests are encoded with `netio.codec.encode_request`; Produce requests are encoded once per template and
only their correlation id is patched before each send. Fetch responses are walked with `struct` down to the
record batch headers (record counts and offsets); record bytes are never decoded, except where the
end-to-end mode reads record keys. `Connection.recv_fetch_discarding` goes further and never copies them
out of the kernel: a consumer that only counts records then costs what the broker's sending costs, not a
second memory copy of every byte.
"""

from __future__ import annotations

import socket
import struct
import time
from collections import deque

from netio.codec import decode_response, encode_request
from netio.codec.records import decode_batches

PRODUCE, FETCH, LIST_OFFSETS, METADATA, API_VERSIONS, CREATE_TOPICS, DELETE_TOPICS = 0, 1, 2, 3, 18, 19, 20
INIT_PRODUCER_ID = 22
PRODUCE_V, FETCH_V, METADATA_V, CREATE_TOPICS_V, DELETE_TOPICS_V, INIT_PRODUCER_ID_V = 7, 11, 5, 3, 3, 1
TOPIC_ALREADY_EXISTS = 36
UNKNOWN_TOPIC_OR_PARTITION = 3
CLIENT_ID = "hpbroker-perf"

_SIZE = struct.Struct(">i")
_CORR = struct.Struct(">i")
_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")
_FETCH_PART = struct.Struct(">ihqqqi")     # partition, error, high_watermark, lso, log_start, aborted count
# The whole 61-byte batch header: base offset [0], length [1], leader epoch, magic, crc, attributes, last
# offset delta [6], base and max timestamp, producer id and epoch, base sequence, record count [12].
_BATCH_HEADER = struct.Struct(">qiibIhiqqqhii")
# What the discarding walker needs of it: base offset, length, last offset delta, record count.
_BATCH_COUNTS = struct.Struct(">qi11xi30xi")
_DROP = int(socket.MSG_TRUNC | socket.MSG_WAITALL)  # an int: or-ing the flags per call goes through enum
RECV_CHUNK = 4 << 20
DISCARD_CHUNK = 4 << 20                    # most bytes one MSG_TRUNC receive drops


class KafkaError(Exception):
    """A Kafka error code from a response, or a broken connection."""


class Connection:
    """A blocking connection with pipelining: `send(frame)` any number of times, then `recv()` in order."""

    def __init__(self, host: str, port: int, timeout: float = 30.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for opt in (socket.SO_SNDBUF, socket.SO_RCVBUF):
            self.sock.setsockopt(socket.SOL_SOCKET, opt, 4 << 20)
        self._buf = bytearray(RECV_CHUNK)
        self._view = memoryview(self._buf)
        self._start = 0
        self._end = 0
        self._next_corr = 1
        self._sink: bytearray | None = None   # MSG_TRUNC's buffer argument; the kernel never writes it
        self.pending: deque = deque()      # (correlation id, api key, version, user tag) per sent request

    def close(self) -> None:
        self.sock.close()

    def next_corr(self) -> int:
        corr = self._next_corr
        self._next_corr = (corr + 1) & 0x7FFFFFFF or 1
        return corr

    def send(self, frame, api_key: int, version: int, tag=None) -> None:
        """Send a complete frame whose correlation id field (bytes 8-12) is patched here."""
        corr = self.next_corr()
        if isinstance(frame, bytearray):
            _CORR.pack_into(frame, 8, corr)
        else:
            frame = bytearray(frame)
            _CORR.pack_into(frame, 8, corr)
        self.sock.sendall(frame)
        self.pending.append((corr, api_key, version, tag))

    def recv_frame(self) -> memoryview:
        """The next response frame (without its size prefix); valid until the next call."""
        while True:
            avail = self._end - self._start
            if avail >= 4:
                size = _SIZE.unpack_from(self._buf, self._start)[0]
                if avail >= 4 + size:
                    begin = self._start + 4
                    self._start = begin + size
                    return self._view[begin:begin + size]
                need = 4 + size
            else:
                need = 4
            if need > len(self._buf) - self._start:
                self._compact(need)
            n = self.sock.recv_into(self._view[self._end:])
            if n == 0:
                raise KafkaError("connection closed by the broker")
            self._end += n

    def _compact(self, need: int) -> None:
        avail = self._end - self._start
        if need > len(self._buf):
            grown = bytearray(max(need, 2 * len(self._buf)))
            grown[:avail] = self._view[self._start:self._end]
            self._buf, self._view = grown, memoryview(grown)
        else:
            self._buf[:avail] = self._view[self._start:self._end]
        self._start, self._end = 0, avail

    def recv_fetch_discarding(self) -> tuple[tuple, list[tuple[int, int, int, int, int, list]]]:
        """The oldest pending Fetch's response, walked as `walk_fetch` walks it, reading from the socket
        only the response's framing and each batch's 61-byte header; batch bodies are dropped in the
        kernel (`MSG_TRUNC`), never copied to this process."""
        size = _SIZE.unpack_from(self._buf, self._take(4))[0]
        if size < 18:
            raise KafkaError(f"Fetch response of {size} bytes is shorter than its header")
        left = size - 18
        pos = self._take(18)                 # correlation id, throttle, error, session id, topic count
        corr = _CORR.unpack_from(self._buf, pos)[0]
        (ntopics,) = _I32.unpack_from(self._buf, pos + 14)
        entry = self.pending.popleft()
        if corr != entry[0]:
            raise KafkaError(f"correlation id {corr} does not match the oldest request {entry[0]}")
        out = []
        for _ in range(max(ntopics, 0)):
            left, pos = self._take_within(left, 2)
            nlen = max(_I16.unpack_from(self._buf, pos)[0], 0)
            left, pos = self._take_within(left, nlen + 4)
            (nparts,) = _I32.unpack_from(self._buf, pos + nlen)
            for _ in range(max(nparts, 0)):
                left, pos = self._take_within(left, _FETCH_PART.size)
                partition, error, _hw, _lso, _ls, naborted = _FETCH_PART.unpack_from(self._buf, pos)
                skip = max(naborted, 0) * 16 + 4          # aborted transactions, preferred read replica
                left, pos = self._take_within(left, skip + 4)
                (rlen,) = _I32.unpack_from(self._buf, pos + skip)
                rem = max(rlen, 0)
                if rem > left:
                    raise KafkaError(f"records of {rem} bytes overrun the Fetch response")
                left -= rem
                records = nbytes = 0
                next_offset = -1
                while rem >= 61:
                    base, length, delta, count = _BATCH_COUNTS.unpack_from(self._buf, self._take(61))
                    size = _whole_batch(length, rem)
                    if not size:
                        rem -= 61                    # cut at the size limit (fetched again next time): dropped below
                        break
                    records += count
                    next_offset = base + delta + 1
                    nbytes += size
                    self._discard(size - 61)
                    rem -= size
                self._discard(rem)
                out.append((partition, error, records, nbytes, next_offset, []))
        if left:
            raise KafkaError(f"{left} bytes left over after the Fetch response's topics")
        return entry, out

    def _take_within(self, left: int, n: int) -> tuple[int, int]:
        """`_take` n bytes of a response with `left` bytes to go: (left after, position)."""
        if n > left:
            raise KafkaError(f"Fetch response truncated: {n} bytes wanted, {left} left")
        return left - n, self._take(n)

    def _take(self, n: int) -> int:
        """Position in the buffer of the next n bytes, consumed; receives only what is missing, so bytes
        after them stay in the kernel for `_discard`."""
        avail = self._end - self._start
        if avail == 0:
            self._start = self._end = 0
        if avail < n:
            if n > len(self._buf) - self._start:
                self._compact(n)
            while self._end - self._start < n:
                got = self.sock.recv_into(self._view[self._end:self._start + n])
                if got == 0:
                    raise KafkaError("connection closed by the broker")
                self._end += got
        pos = self._start
        self._start += n
        return pos

    def _discard(self, n: int) -> None:
        """Drop the next n bytes of the stream: what is buffered, then the rest in the kernel."""
        k = min(n, self._end - self._start)
        self._start += k
        n -= k
        if n and self._sink is None:
            self._sink = bytearray(DISCARD_CHUNK)
        while n:
            got = self.sock.recv_into(self._sink, min(n, DISCARD_CHUNK), _DROP)
            if got == 0:
                raise KafkaError("connection closed by the broker")
            n -= got

    def has_buffered_frame(self) -> bool:
        avail = self._end - self._start
        return avail >= 4 and avail >= 4 + _SIZE.unpack_from(self._buf, self._start)[0]

    def recv(self) -> tuple[tuple, memoryview]:
        """The oldest pending request's (correlation id, api key, version, tag) and its response frame."""
        frame = self.recv_frame()
        entry = self.pending.popleft()
        corr = _CORR.unpack_from(frame, 0)[0]
        if corr != entry[0]:
            raise KafkaError(f"correlation id {corr} does not match the oldest request {entry[0]}")
        return entry, frame

    def call(self, api_key: int, version: int, body: dict) -> dict:
        """One request and its decoded response (admin and metadata; not for the data path)."""
        self.send(encode_request(api_key, version, 0, CLIENT_ID, body), api_key, version)
        _, frame = self.recv()
        return decode_response(api_key, version, bytes(frame))[1]


def parse_bootstrap(bootstrap: str) -> tuple[str, int]:
    host, _, port = bootstrap.split(",")[0].strip().rpartition(":")
    return host.strip("[]") or "127.0.0.1", int(port)


def init_producer_id(conn: Connection) -> tuple[int, int]:
    """(producer id, epoch) for an idempotent producer without a transactional id."""
    resp = conn.call(INIT_PRODUCER_ID, INIT_PRODUCER_ID_V, {"transactional_id": None,
                                                            "transaction_timeout_ms": 60000})
    if resp["error_code"]:
        raise KafkaError(f"InitProducerId failed with error {resp['error_code']}")
    return resp["producer_id"], resp["producer_epoch"]


def metadata(conn: Connection, topics: list[str] | None) -> dict:
    body = {"topics": None if topics is None else [{"name": t} for t in topics],
            "allow_auto_topic_creation": False}
    return conn.call(METADATA, METADATA_V, body)


def ensure_topic(conn: Connection, topic: str, partitions: int, configs: dict | None = None,
                 timeout: float = 30.0) -> dict[int, tuple[str, int]]:
    """Create `topic` (broker default replication factor) if it does not exist and wait until every partition
    has a leader.

    Returns partition -> (leader host, port).
    """
    body = {"topics": [{"name": topic, "num_partitions": partitions, "replication_factor": -1, "assignments": [],
                        "configs": [{"name": k, "value": str(v)} for k, v in (configs or {}).items()]}],
            "timeout_ms": int(timeout * 1000), "validate_only": False}
    result = conn.call(CREATE_TOPICS, CREATE_TOPICS_V, body)["topics"][0]
    if result["error_code"] not in (0, TOPIC_ALREADY_EXISTS):
        raise KafkaError(f"CreateTopics {topic}: error {result['error_code']} {result.get('error_message')}")
    return leaders(conn, topic, timeout)


def delete_topic(conn: Connection, topic: str, timeout: float = 30.0) -> None:
    """Delete `topic` with its records and wait until the metadata no longer has it (a broker may finish a
    deletion after answering, and a topic created meanwhile would be the old one); a topic that does not
    exist is not an error."""
    body = {"topic_names": [topic], "timeout_ms": int(timeout * 1000)}
    result = conn.call(DELETE_TOPICS, DELETE_TOPICS_V, body)["responses"][0]
    if result["error_code"] not in (0, UNKNOWN_TOPIC_OR_PARTITION):
        raise KafkaError(f"DeleteTopics {topic}: error {result['error_code']}")
    deadline = time.monotonic() + timeout
    while metadata(conn, [topic])["topics"][0]["error_code"] != UNKNOWN_TOPIC_OR_PARTITION:
        if time.monotonic() > deadline:
            raise KafkaError(f"topic {topic} still listed {timeout:g} s after its deletion")
        time.sleep(0.05)


def leaders(conn: Connection, topic: str, timeout: float = 30.0) -> dict[int, tuple[str, int]]:
    deadline = time.monotonic() + timeout
    while True:
        md = metadata(conn, [topic])
        brokers = {b["node_id"]: (b["host"], b["port"]) for b in md["brokers"]}
        t = md["topics"][0]
        parts = {p["partition_index"]: brokers.get(p["leader_id"]) for p in t["partitions"]
                 if p["error_code"] == 0}
        if t["error_code"] == 0 and parts and all(parts.values()):
            return dict(sorted(parts.items()))
        if time.monotonic() > deadline:
            raise KafkaError(f"topic {topic}: no leaders (error {t['error_code']})")
        time.sleep(0.1)


def produce_frame(topic: str, batches: dict[int, bytes], acks: int, timeout_ms: int = 30000) -> bytearray:
    """A Produce request frame carrying one batch per partition (correlation id patched at send)."""
    body = {"transactional_id": None, "acks": acks, "timeout_ms": timeout_ms,
            "topic_data": [{"name": topic, "partition_data": [
                {"index": p, "records": bytes(b)} for p, b in sorted(batches.items())]}]}
    return bytearray(encode_request(PRODUCE, PRODUCE_V, 0, CLIENT_ID, body))


class SinglePartitionFrames:
    """Produce frames for one partition and one record set each, from a template encoded once."""

    def __init__(self, topic: str, partition: int, acks: int, timeout_ms: int = 30000):
        self.head = bytes(produce_frame(topic, {partition: b""}, acks, timeout_ms)[:-4])

    def frame(self, records) -> bytearray:
        out = bytearray(self.head)
        out += _I32.pack(len(records))
        out += memoryview(records).cast("B")
        _SIZE.pack_into(out, 0, len(out) - 4)
        return out


_PARTITION_RESPONSE_V7 = 4 + 2 + 8 + 8 + 8  # index, error code, base offset, log append time, log start


def _topic_head(buf, pos: int) -> tuple[int, int]:
    """A response topic's name (skipped) and partition count: (count, position of its first partition)."""
    (nlen,) = _I16.unpack_from(buf, pos)
    pos += 2 + max(nlen, 0)
    return _I32.unpack_from(buf, pos)[0], pos + 4


def produce_errors(frame: memoryview) -> int:
    """Partitions answered with a non-zero error code in a Produce v7 response.

    Walks only the fields it needs (a generator must stay cheaper than the broker it measures); the
    codec's generic decoder is its oracle in the tests."""
    pos = 4  # correlation id
    (ntopics,) = _I32.unpack_from(frame, pos)
    pos += 4
    errors = 0
    for _ in range(ntopics):
        nparts, pos = _topic_head(frame, pos)
        for _ in range(nparts):
            if _I16.unpack_from(frame, pos + 4)[0]:
                errors += 1
            pos += _PARTITION_RESPONSE_V7
    return errors


def fetch_frame(topic: str, offsets: dict[int, int], max_wait_ms: int, partition_max_bytes: int,
                max_bytes: int = 64 << 20) -> bytearray:
    body = {"replica_id": -1, "max_wait_ms": max_wait_ms, "min_bytes": 1, "max_bytes": max_bytes,
            "isolation_level": 0, "session_id": 0, "session_epoch": -1, "rack_id": "",
            "topics": [{"topic": topic, "partitions": [
                {"partition": p, "current_leader_epoch": -1, "fetch_offset": o, "log_start_offset": -1,
                 "partition_max_bytes": partition_max_bytes} for p, o in sorted(offsets.items())]}],
            "forgotten_topics_data": []}
    return bytearray(encode_request(FETCH, FETCH_V, 0, CLIENT_ID, body))


def _whole_batch(length: int, room: int) -> int:
    """Size of the batch whose header's length field reads `length` when it lies whole within `room` bytes,
    else 0 (cut at the fetch size limit, or a length too small to be a batch)."""
    size = 12 + length
    return size if 61 <= size <= room else 0


def walk_fetch(frame: memoryview, want_batches: bool = False) -> list[tuple[int, int, int, int, int, list]]:
    """(partition, error, records, bytes, next offset or -1, [(batch start, batch end)]) per partition.

    Only whole batches count; a batch cut at the size limit is fetched again next time.
    """
    buf = frame
    pos = 4 + 4 + 2 + 4                      # correlation id, throttle, error, session id
    out = []
    (ntopics,) = _I32.unpack_from(buf, pos)
    pos += 4
    for _ in range(ntopics):
        nparts, pos = _topic_head(buf, pos)
        for _ in range(nparts):
            partition, error, _hw, _lso, _ls, naborted = _FETCH_PART.unpack_from(buf, pos)
            pos += _FETCH_PART.size + max(naborted, 0) * 16 + 4      # aborted list, preferred replica
            (rlen,) = _I32.unpack_from(buf, pos)
            pos += 4
            end = pos + max(rlen, 0)
            records = nbytes = 0
            next_offset = -1
            spans = []
            p = pos
            while p + 61 <= end:
                head = _BATCH_HEADER.unpack_from(buf, p)
                size = _whole_batch(head[1], end - p)
                if not size:
                    break
                bend = p + size
                records += head[12]
                next_offset = head[0] + head[6] + 1
                nbytes += size
                if want_batches:
                    spans.append((p, bend))
                p = bend
            out.append((partition, error, records, nbytes, next_offset, spans))
            pos = end
    return out


def batch_keys(buf, start: int, end: int) -> list[bytes]:
    """The keys of the records of one uncompressed batch at buf[start:end]."""
    return [r.key or b"" for r in decode_batches(buf[start:end])]