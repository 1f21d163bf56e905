"""A Kafka-protocol server that does no work: the load generator's own ceiling is measured against it.

It answers ApiVersions, Metadata, CreateTopics, ListOffsets, InitProducerId (a new producer id each time,
so an idempotent client can run against it), Produce (every partition accepted, offsets counted per
partition, sequences not checked) and Fetch (one prebuilt chunk of record batches, whose offsets run from
the requested offset on). With several processes each is a broker of its own on its own port, and
partition p is led by process p mod N: a client spreads its partitions over them exactly as over a
cluster's brokers, so the sink is not the bottleneck either and the load is split the same way every run.
"""

from __future__ import annotations

import multiprocessing
import os
import selectors
import signal
import socket
import struct

from broker.config import hostport
from netio.codec import api_versions_table, decode_request, encode_response
from netio.codec.fetch import PartitionData, decode_fetch_request, encode_fetch_response
from netio.codec.produce import decode_produce_request, encode_produce_response

_SIZE = struct.Struct(">i")
_HEAD = struct.Struct(">hh")
_BASE = struct.Struct(">q")
_UNBOUNDED = 1 << 62               # high watermark of the sink's endless partitions
PRODUCE, FETCH, LIST_OFFSETS, METADATA, API_VERSIONS, CREATE_TOPICS, INIT_PRODUCER_ID = 0, 1, 2, 3, 18, 19, 22


def fetch_chunk(record_size: int, total_bytes: int, records_per_batch: int) -> tuple[bytes, list[int]]:
    """Batches of `records_per_batch` records filling about `total_bytes`, and each batch's start."""
    from perf.loadgen import build

    batch = build(record_size, records_per_batch, 1).tobytes()
    count = max(1, total_bytes // len(batch))
    return batch * count, [i * len(batch) for i in range(count)]


class NullSink:
    """Serves one listening socket in this process until stopped (`serve_forever`)."""

    def __init__(self, sock: socket.socket, partitions: int, chunk: tuple[bytes, list[int]], batch_records: int,
                 ports: list[int] | None = None):
        self.listener = sock
        self.partitions = partitions
        self.host, self.port = sock.getsockname()[:2]
        self.ports = ports or [self.port]          # node i listens on ports[i] and leads partitions i, i + N, ...
        self.chunk = memoryview(bytearray(chunk[0]))
        self.batch_starts = chunk[1]
        ends = self.batch_starts[1:] + [len(self.chunk)]
        self.bodies = [self.chunk[start + _BASE.size:end] for start, end in zip(self.batch_starts, ends)]
        self.batch_records = batch_records
        self.offsets: dict[tuple[str, int], int] = {}
        self.producer_ids = 0
        self.sel = selectors.DefaultSelector()
        self.inboxes: dict[socket.socket, _Inbox] = {}

    def serve_forever(self) -> None:
        self.listener.setblocking(False)
        self.sel.register(self.listener, selectors.EVENT_READ, None)
        while True:
            for key, _ in self.sel.select(1.0):
                if key.data is None:
                    try:
                        conn, _ = self.listener.accept()
                    except BlockingIOError:
                        continue
                    conn.setblocking(True)
                    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    self.inboxes[conn] = _Inbox()
                    self.sel.register(conn, selectors.EVENT_READ, conn)
                else:
                    self._readable(key.data)

    def _readable(self, conn: socket.socket) -> None:
        inbox = self.inboxes[conn]
        try:
            frames = inbox.receive(conn)
        except OSError:
            frames = None
        if frames is None:
            self.sel.unregister(conn)
            del self.inboxes[conn]
            conn.close()
            return
        try:
            for frame in frames:
                parts = self.answer(frame)
                if parts:
                    _send_parts(conn, parts)
        except OSError:
            pass

    def answer(self, frame: bytes) -> list:
        api_key, version = _HEAD.unpack_from(frame, 0)
        if api_key == PRODUCE:
            req = decode_produce_request(frame)
            if req.acks == 0:
                return []
            results: dict[str, list] = {}
            for topic, partition, records in req.partitions:
                count = _records_in(records)
                base = self.offsets.get((topic, partition), 0)
                self.offsets[(topic, partition)] = base + count
                results.setdefault(topic, []).append((partition, 0, base, -1, 0, None))
            return [encode_produce_response(version, req.header.correlation_id, list(results.items()))]
        if api_key == FETCH:
            req = decode_fetch_request(frame)
            topics = [(topic, [PartitionData(p.partition, 0, _UNBOUNDED, _UNBOUNDED, 0,
                                             None, -1, self._records_up_to(p.partition_max_bytes))
                               for p in parts]) for topic, parts in req.topics]
            firsts = [p.fetch_offset for _, parts in req.topics for p in parts]
            encoded = encode_fetch_response(version, req.header.correlation_id, 0, 0, 0, topics)
            if len(set(firsts)) == 1:  # as a consumer keeping pace asks: the chunk numbered once serves all
                self._number(firsts[0])
                return encoded
            out: list = []
            numbered = iter(firsts)
            for part in encoded:
                # Every partition gets records, so the parts that are not the encoder's own bytes are the
                # partitions' records, in request order.
                if isinstance(part, bytes):
                    out.append(part)
                else:
                    out += self._numbered(part, next(numbered))
            return out
        req = decode_request(frame)
        h, body = req.header, req.body
        if api_key == API_VERSIONS:
            resp = {"error_code": 0, "api_keys": api_versions_table(), "throttle_time_ms": 0}
        elif api_key == METADATA:
            names = [t["name"] for t in body["topics"]] if body.get("topics") else []
            nodes = len(self.ports)
            resp = {"throttle_time_ms": 0, "brokers": [{"node_id": i, "host": self.host, "port": port,
                                                        "rack": None} for i, port in enumerate(self.ports)],
                    "cluster_id": "null-sink", "controller_id": 0,
                    "topics": [{"error_code": 0, "name": n, "is_internal": False, "partitions": [
                        {"error_code": 0, "partition_index": i, "leader_id": i % nodes, "leader_epoch": 0,
                         "replica_nodes": [i % nodes], "isr_nodes": [i % nodes], "offline_replicas": []}
                        for i in range(self.partitions)], "topic_authorized_operations": -2147483648}
                               for n in names],
                    "cluster_authorized_operations": -2147483648}
        elif api_key == CREATE_TOPICS:
            resp = {"throttle_time_ms": 0, "topics": [{"name": t["name"], "error_code": 0, "error_message": None}
                                                      for t in body["topics"]]}
        elif api_key == LIST_OFFSETS:
            resp = {"throttle_time_ms": 0, "topics": [{"name": t["name"], "partitions": [
                {"partition_index": p["partition_index"], "error_code": 0, "timestamp": -1, "offset": 0,
                 "leader_epoch": 0} for p in t["partitions"]]} for t in body["topics"]]}
        elif api_key == INIT_PRODUCER_ID:
            self.producer_ids += 1  # sink processes share no state: ids are unique per process (port)
            resp = {"throttle_time_ms": 0, "error_code": 0, "producer_id": self.port * 1_000_000 + self.producer_ids,
                    "producer_epoch": 0}
        else:
            return []
        return [encode_response(api_key, h.api_version, h.correlation_id, resp)]

    def _records_up_to(self, max_bytes: int) -> memoryview:
        """The chunk's first batches, as many as fit in `max_bytes` (at least one)."""
        n = 0
        for i, start in enumerate(self.batch_starts):
            if start >= max_bytes:
                break
            n = i + 1
        n = max(n, 1)
        end = self.batch_starts[n] if n < len(self.batch_starts) else len(self.chunk)
        return self.chunk[:end]

    def _number(self, first: int) -> None:
        """Number the chunk's batches from offset `first`. A response is sent whole before the next request
        is read, so no send still reads the chunk."""
        for i, start in enumerate(self.batch_starts):
            _BASE.pack_into(self.chunk, start, first + i * self.batch_records)

    def _numbered(self, records: memoryview, first: int) -> list:
        """`records` (the chunk's first batches) as parts numbered from offset `first`: each batch's
        baseOffset written anew, the rest of it sent from the chunk (the batch CRC does not cover baseOffset),
        so the partitions of one response keep their own offsets."""
        parts = []
        size, count, pack = len(records), self.batch_records, _BASE.pack
        for i, (start, body) in enumerate(zip(self.batch_starts, self.bodies)):
            if start >= size:
                break
            parts += (pack(first + i * count), body)
        return parts


class _Inbox:
    """A connection's receive buffer; yields whole frames as views into it (valid until the next receive)."""

    def __init__(self):
        self.buf = bytearray(16 << 20)
        self.view = memoryview(self.buf)
        self.start = self.end = 0

    def receive(self, conn: socket.socket) -> list[memoryview] | None:
        if self.start == self.end:
            self.start = self.end = 0
        elif len(self.buf) - self.end < (1 << 20):
            n = self.end - self.start
            self.buf[:n] = self.view[self.start:self.end]
            self.start, self.end = 0, n
        got = conn.recv_into(self.view[self.end:])
        if got == 0:
            return None
        self.end += got
        frames = []
        while self.end - self.start >= 4:
            size = _SIZE.unpack_from(self.buf, self.start)[0]
            if size + 4 > len(self.buf):
                return None                     # larger than any request this sink accepts
            if self.end - self.start - 4 < size:
                break
            frames.append(self.view[self.start + 4:self.start + 4 + size])
            self.start += 4 + size
        return frames


def _send_parts(conn: socket.socket, parts: list) -> None:
    """sendmsg until every part is written (it may stop part-way)."""
    views = [p if isinstance(p, (bytes, memoryview)) else memoryview(p).cast("B") for p in parts]
    while views:
        sent = conn.sendmsg(views[:512])
        while views and sent >= len(views[0]):
            sent -= len(views[0])
            views.pop(0)
        if views and sent:
            views[0] = views[0][sent:]


def _records_in(records) -> int:
    """Records in a (possibly multi-batch) record set: sum of each batch's count field."""
    if records is None:
        return 0
    total = pos = 0
    while pos + 61 <= len(records):
        blen = _SIZE.unpack_from(records, pos + 8)[0]
        total += _SIZE.unpack_from(records, pos + 57)[0]
        pos += 12 + blen
    return total


def _serve(sock: socket.socket, partitions: int, chunk, batch_records: int, ports: list[int]) -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    NullSink(sock, partitions, chunk, batch_records, ports).serve_forever()


class NullSinkProcesses:
    """`processes` sink processes, each a broker on its own loopback port (the first is `port`, the bootstrap);
    a context manager that stops them on exit."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, processes: int = 2, partitions: int = 8,
                 record_size: int = 1024, fetch_bytes: int = 1 << 20):
        self.host = host
        self.processes = processes
        self.partitions = partitions
        self.batch_records = max(1, 65536 // record_size)
        self.record_size = record_size
        self.fetch_bytes = fetch_bytes
        self.port = port
        self.procs: list[multiprocessing.Process] = []

    @property
    def bootstrap(self) -> str:
        return hostport(self.host, self.port)

    def start(self) -> "NullSinkProcesses":
        chunk = fetch_chunk(self.record_size, self.fetch_bytes, self.batch_records)
        ctx = multiprocessing.get_context("fork")
        socks = []
        for i in range(self.processes):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((self.host, self.port if i == 0 else 0))
            s.listen(128)
            socks.append(s)
        self.port = socks[0].getsockname()[1]
        ports = [s.getsockname()[1] for s in socks]
        for s in socks:
            p = ctx.Process(target=_serve, args=(s, self.partitions, chunk, self.batch_records, ports), daemon=True)
            p.start()
            self.procs.append(p)
        for s in socks:
            s.close()
        return self

    def stop(self) -> None:
        for p in self.procs:
            if p.is_alive():
                os.kill(p.pid, signal.SIGTERM)
        for p in self.procs:
            p.join(5)
        self.procs = []

    def __enter__(self) -> "NullSinkProcesses":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
