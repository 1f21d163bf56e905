"""Hostile input against a real broker over raw sockets: each case costs only its own connection.

For every case the exact reaction is checked (the connection is closed and the log names why, or the
right error response comes back), and afterwards the same worker processes are alive, their memory is
bounded, and clients are still served. Closed connections are matched to their log line by the client's
local port, which the broker logs as `peer=`.
"""

from __future__ import annotations

import random
import re
import resource
import select
import socket
import struct
import time

import psutil
import pytest

from netio.codec import decode_response, encode_request
from tools.testing import BrokerProcess

MAX_FRAME = 104857600  # socket.request.max.bytes default
UNSUPPORTED_VERSION = 35
API_VERSIONS, METADATA, PRODUCE = 18, 3, 0
CLOSED_RE = re.compile(r'connection closed .*peer=127\.0\.0\.1:(\d+) reason=("(?:[^"\\]|\\.)*"|\S+)')


# ---------------------------------------------------------------------------------------------------------
# helpers


@pytest.fixture(scope="module")
def broker():
    b = BrokerProcess(network_threads=2)
    b.start()
    yield b
    b.close()


# (broker, local port) -> closes already logged for that port when a connection from it was made: the
# module's broker sees hundreds of connections, and an ephemeral port comes round again.
_EARLIER_CLOSES: dict[tuple[int, int], int] = {}


def connect(b: BrokerProcess, timeout: float = 5.0) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", b.port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    port = s.getsockname()[1]
    _EARLIER_CLOSES[(id(b), port)] = len(_closes(b, port))
    return s


def _closes(b: BrokerProcess, local_port: int) -> list[str]:
    """The close reasons logged so far for connections from `local_port`, oldest first."""
    out = []
    for line in list(b.output):
        m = CLOSED_RE.search(line)
        if m and int(m.group(1)) == local_port:
            reason = m.group(2)
            out.append(reason[1:-1] if reason.startswith('"') else reason)
    return out


def recv_exact(s: socket.socket, n: int) -> bytes:
    out = bytearray()
    while len(out) < n:
        chunk = s.recv(n - len(out))
        if not chunk:
            raise EOFError(f"connection closed after {len(out)} of {n} bytes")
        out += chunk
    return bytes(out)


def recv_frame(s: socket.socket) -> bytes:
    (size,) = struct.unpack(">i", recv_exact(s, 4))
    return recv_exact(s, size)


def api_versions_request(cid: int, version: int = 3) -> bytes:
    body = {"client_software_name": "hostile", "client_software_version": "1"} if version >= 3 else {}
    return encode_request(API_VERSIONS, version, cid, "hostile", body)


def metadata_request(cid: int, version: int = 1, topics=None) -> bytes:
    return encode_request(METADATA, version, cid, "hostile", {"topics": topics})


def frame(payload: bytes) -> bytes:
    return struct.pack(">i", len(payload)) + payload


def header(api_key: int, version: int, cid: int, client_id: bytes | None = b"hostile") -> bytes:
    cid_bytes = struct.pack(">h", -1) if client_id is None else struct.pack(">h", len(client_id)) + client_id
    return struct.pack(">hhi", api_key, version, cid) + cid_bytes


def assert_closed_by_broker(s: socket.socket, timeout: float = 5.0) -> None:
    """The broker closes: EOF (or a reset, when our unread bytes were still in its buffer), no response."""
    s.settimeout(timeout)
    try:
        data = s.recv(65536)
    except ConnectionResetError:
        data = b""
    assert data == b"", f"expected the broker to close the connection, got {data[:64]!r}"


def closed_reason(b: BrokerProcess, local_port: int, timeout: float = 5.0) -> str:
    """The reason logged when the broker closed our connection from `local_port` (made with `connect`):
    the first close of that port logged after those already logged when it connected."""
    earlier = _EARLIER_CLOSES.get((id(b), local_port), 0)
    deadline = time.monotonic() + timeout
    while True:
        reasons = _closes(b, local_port)
        if len(reasons) > earlier:
            return reasons[earlier]
        if time.monotonic() > deadline:
            raise AssertionError(f"no close logged for peer port {local_port}:\n{b.log_tail()}")
        time.sleep(0.02)


def rejected(b: BrokerProcess, data: bytes, then_close: bool = False) -> str:
    """Send `data` on a fresh connection, expect the broker to close it, return the logged reason."""
    s = connect(b)
    port = s.getsockname()[1]
    try:
        s.sendall(data)
        if then_close:
            s.shutdown(socket.SHUT_WR)
        assert_closed_by_broker(s)
    finally:
        s.close()
    return closed_reason(b, port)


def worker_rss(pids: list[int]) -> int:
    return sum(psutil.Process(p).memory_info().rss for p in pids)


def assert_serves(b: BrokerProcess, pids: list[int]) -> None:
    """The same workers are alive and every one of them still answers (SO_REUSEPORT spreads our sockets)."""
    assert sorted(b.child_pids()) == sorted(pids), b.log_tail()
    socks = [connect(b) for _ in range(8)]
    try:
        for i, s in enumerate(socks):
            s.sendall(api_versions_request(1000 + i))
        for i, s in enumerate(socks):
            cid, body = decode_response(API_VERSIONS, 3, recv_frame(s))
            assert (cid, body["error_code"]) == (1000 + i, 0)
    finally:
        for s in socks:
            s.close()


@pytest.fixture
def pids(broker):
    before = sorted(broker.child_pids())
    assert len(before) == 3  # two network workers and one I/O worker
    yield before
    assert_serves(broker, before)


# ---------------------------------------------------------------------------------------------------------
# size prefixes


def test_2gib_size_prefix_closes_without_buffering(broker, pids):
    rss_before = worker_rss(pids)
    s = connect(broker)
    port = s.getsockname()[1]
    s.sendall(struct.pack(">i", 0x7FFFFFFF))
    try:
        s.sendall(b"\x00" * (8 << 20))  # the broker may close (and reset us) before all of it is sent
    except (BrokenPipeError, ConnectionResetError):
        pass
    assert_closed_by_broker(s)
    s.close()
    assert closed_reason(broker, port) == f"bad frame: frame size 2147483647 outside [0, {MAX_FRAME}]"
    assert worker_rss(pids) - rss_before < 16 << 20


@pytest.mark.parametrize("size", [-1, -(1 << 31), MAX_FRAME + 1])
def test_negative_and_oversized_prefixes_close(broker, pids, size):
    reason = rejected(broker, struct.pack(">i", size) + b"\x00\x12\x00\x03")
    assert reason == f"bad frame: frame size {size} outside [0, {MAX_FRAME}]"


def test_frame_shorter_than_a_header_closes(broker, pids):
    assert rejected(broker, frame(b"")) == "bad frame: request of 0 bytes is shorter than a header"
    assert rejected(broker, frame(b"\x00\x12\x00")) == "bad frame: request of 3 bytes is shorter than a header"


def test_http_garbage_closes(broker, pids):
    size = struct.unpack(">i", b"GET ")[0]
    reason = rejected(broker, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert reason == f"bad frame: frame size {size} outside [0, {MAX_FRAME}]"


# ---------------------------------------------------------------------------------------------------------
# api keys and versions


@pytest.mark.parametrize("api_key", [12345, -1, 32767])
def test_unknown_api_key_closes(broker, pids, api_key):
    assert rejected(broker, frame(header(api_key, 0, 7) + b"junk")) == f"bad frame: unknown api key {api_key}"


def test_unsupported_version_of_metadata_closes(broker, pids):
    reason = rejected(broker, frame(header(METADATA, 99, 7) + b"\xff\xff\xff\xff"))
    assert reason == "bad frame: unsupported version 99 of api 3"


@pytest.mark.parametrize("version", [99, 4, -1])
def test_api_versions_unsupported_version_gets_v0_error_body(broker, pids, version):
    s = connect(broker)
    try:
        # The body is whatever a future version carries: it must not be parsed.
        s.sendall(frame(header(API_VERSIONS, version, 0x5EED) + b"\x07future\x00\x99\x01"))
        raw = recv_frame(s)
        cid, err = struct.unpack_from(">ih", raw, 0)
        assert (cid, err) == (0x5EED, UNSUPPORTED_VERSION)
        cid, body = decode_response(API_VERSIONS, 0, raw)  # v0 layout, nothing left over
        assert cid == 0x5EED and body["error_code"] == UNSUPPORTED_VERSION
        ranges = {k["api_key"]: (k["min_version"], k["max_version"]) for k in body["api_keys"]}
        assert ranges[API_VERSIONS] == (0, 3) and METADATA in ranges
        # The connection stays usable: the client retries with a version we listed.
        s.sendall(api_versions_request(0x5EEE, version=ranges[API_VERSIONS][1]))
        cid, body = decode_response(API_VERSIONS, 3, recv_frame(s))
        assert (cid, body["error_code"]) == (0x5EEE, 0)
    finally:
        s.close()


# ---------------------------------------------------------------------------------------------------------
# bodies: counts, strings, truncation


def test_array_count_2_pow_31_minus_1_closes_without_allocating(broker, pids):
    rss_before = worker_rss(pids)
    reason = rejected(broker, frame(header(METADATA, 1, 9) + struct.pack(">i", 0x7FFFFFFF) + b"\x00\x01a"))
    assert reason.startswith("bad frame: array of 2147483647 elements cannot fit in 3 remaining bytes")
    assert worker_rss(pids) - rss_before < 16 << 20


def test_compact_counts_past_the_frame_close(broker, pids):
    # ApiVersions v3 is flexible: header v2 tagged fields, then compact strings.
    huge_tags = frame(header(API_VERSIONS, 3, 9) + b"\xff\xff\xff\xff\x0f" + b"\x00\x00")
    assert rejected(broker, huge_tags).startswith("bad frame: malformed request header")
    huge_string = frame(header(API_VERSIONS, 3, 9) + b"\x00" + b"\xff\xff\xff\xff\x0f" + b"ab")
    assert "runs past the end of the message" in rejected(broker, huge_string)


def test_string_past_the_frame_end_closes(broker, pids):
    body = struct.pack(">i", 1) + struct.pack(">h", 1000) + b"abc"
    reason = rejected(broker, frame(header(METADATA, 1, 9) + body))
    assert reason.startswith("bad frame: length 1000 at offset ") and "runs past the end" in reason


def test_client_id_past_the_frame_end_closes(broker, pids):
    payload = struct.pack(">hhi", METADATA, 1, 9) + struct.pack(">h", 0x7FFF) + b"abc"
    assert rejected(broker, frame(payload)) == "bad frame: malformed request header client id"


def test_truncated_body_inside_a_complete_frame_closes(broker, pids):
    full = metadata_request(9, topics=[{"name": "orders"}])[4:]
    reason = rejected(broker, frame(full[:-3]))
    assert reason == f"bad frame: length 6 at offset {len(full) - 6} runs past the end of the message " \
                     f"({len(full) - 3} bytes)"


def test_trailing_bytes_after_a_request_close(broker, pids):
    reason = rejected(broker, frame(metadata_request(9)[4:] + b"\x00\x00"))
    assert reason == "bad frame: 2 unexpected bytes after Metadata v1 request"


def test_half_a_request_then_gone(broker, pids):
    full = metadata_request(9, topics=[{"name": "orders"}])
    assert rejected(broker, full[:-5], then_close=True) == \
        f"closed by peer mid-request with {len(full) - 4 - 5} bytes unframed"


def test_half_a_request_then_reset(broker, pids):
    s = connect(broker)
    port = s.getsockname()[1]
    s.sendall(struct.pack(">i", 5000) + b"\x00" * 1000)
    time.sleep(0.05)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()  # RST
    assert closed_reason(broker, port) == "read failed: Connection reset by peer"


def test_slow_drip_request_is_served(broker, pids):
    """One byte per send: framing must not depend on how the stream is cut."""
    s = connect(broker)
    try:
        for byte in api_versions_request(77):
            s.send(bytes([byte]))
        cid, body = decode_response(API_VERSIONS, 3, recv_frame(s))
        assert (cid, body["error_code"]) == (77, 0)
    finally:
        s.close()


def test_fuzzed_requests_are_answered_or_closed_with_a_reason(broker, pids):
    """Mutated valid requests, size prefix kept right: each gets a well-formed reply or a logged close."""
    rng = random.Random(20240611)
    seeds = [api_versions_request(1), api_versions_request(1, version=0), metadata_request(1),
             metadata_request(1, version=4, topics=[{"name": "t"}])]
    socks = []
    for i in range(120):
        payload = bytearray(rng.choice(seeds)[4:])
        for _ in range(rng.randint(1, 4)):
            op = rng.random()
            pos = rng.randrange(len(payload) + 1)
            if op < 0.5 and pos < len(payload):
                payload[pos] = rng.randrange(256)
            elif op < 0.75:
                del payload[pos:]
            else:
                payload[pos:pos] = rng.randbytes(rng.randint(1, 8))
        if len(payload) >= 8:
            struct.pack_into(">i", payload, 4, 5000 + i)  # correlation id
        s = connect(broker)
        s.sendall(frame(bytes(payload)))
        s.shutdown(socket.SHUT_WR)
        socks.append((s, s.getsockname()[1], bytes(payload), 5000 + i))
    answered = closed = 0
    for s, port, payload, cid in socks:
        data = bytearray()
        while chunk := s.recv(65536):
            data += chunk
        s.close()
        if data:
            api_key, version = struct.unpack_from(">hh", payload, 0)
            (size,) = struct.unpack_from(">i", data, 0)
            assert size == len(data) - 4
            got_cid, body = decode_response(api_key, version, bytes(data[4:]))
            assert got_cid == cid
            answered += 1
        else:
            reason = closed_reason(broker, port)
            assert reason.startswith(("bad frame: ", "api ")), reason
            closed += 1
    # Some mutations leave a request the broker must still answer (a changed byte in the client id, an
    # ApiVersions version it does not support), others break it beyond parsing: both outcomes must occur.
    assert answered > 0 and closed > 0, (answered, closed)


# ---------------------------------------------------------------------------------------------------------
# pipelining


def test_five_pipelined_requests_in_one_send_get_five_responses_in_order(broker, pids):
    reqs = [(API_VERSIONS, 3, api_versions_request(1)), (METADATA, 1, metadata_request(2)),
            (API_VERSIONS, 0, api_versions_request(3, version=0)), (METADATA, 8, metadata_request(4, version=8)),
            (API_VERSIONS, 99, frame(header(API_VERSIONS, 99, 5) + b"\x00"))]
    s = connect(broker)
    try:
        assert s.send(b"".join(r for _, _, r in reqs)) == sum(len(r) for _, _, r in reqs)
        for i, (key, version, _) in enumerate(reqs, start=1):
            cid, body = decode_response(key, version, recv_frame(s))
            assert cid == i
            if key == API_VERSIONS:
                assert body["error_code"] == (UNSUPPORTED_VERSION if version == 99 else 0)
            else:
                assert body["brokers"][0]["port"] == broker.port
    finally:
        s.close()


def test_many_pipelined_requests_past_the_in_flight_limit(broker, pids):
    s = connect(broker)
    try:
        s.sendall(b"".join(api_versions_request(i) if i % 2 else metadata_request(i) for i in range(300)))
        for i in range(300):
            cid, _ = decode_response(API_VERSIONS if i % 2 else METADATA, 3 if i % 2 else 1, recv_frame(s))
            assert cid == i
    finally:
        s.close()


def test_many_pipelined_produce_requests_past_the_in_flight_limit():
    """Answers that come back through the rings resume a paused connection too: the client sent everything
    at once and only waits. (Its own broker: the topic it creates would show in the shared one.)"""
    import hotpath

    batch = bytes(hotpath.build_records_batch([(None, b"pipelined")]))
    body = {"transactional_id": None, "acks": 1, "timeout_ms": 10000,
            "topic_data": [{"name": "pipelined", "partition_data": [{"index": 0, "records": batch}]}]}
    with BrokerProcess(network_threads=1) as b:
        s = connect(b, timeout=20)
        try:
            s.sendall(metadata_request(0, topics=[{"name": "pipelined"}]))  # auto-creates the topic
            decode_response(METADATA, 1, recv_frame(s))
            s.sendall(b"".join(encode_request(PRODUCE, 8, i, "hostile", body) for i in range(1, 301)))
            offsets = []
            for i in range(1, 301):
                cid, resp = decode_response(PRODUCE, 8, recv_frame(s))
                part = resp["responses"][0]["partition_responses"][0]
                assert (cid, part["error_code"]) == (i, 0)
                offsets.append(part["base_offset"])
            assert offsets == sorted(offsets) and len(set(offsets)) == 300
        finally:
            s.close()


def test_valid_responses_before_a_bad_frame_arrive(broker, pids):
    s = connect(broker)
    port = s.getsockname()[1]
    try:
        s.sendall(api_versions_request(1) + metadata_request(2) + struct.pack(">i", -7))
        assert decode_response(API_VERSIONS, 3, recv_frame(s))[0] == 1
        assert decode_response(METADATA, 1, recv_frame(s))[0] == 2
        assert_closed_by_broker(s)
    finally:
        s.close()
    assert closed_reason(broker, port) == f"bad frame: frame size -7 outside [0, {MAX_FRAME}]"


# ---------------------------------------------------------------------------------------------------------
# many connections, descriptors, memory


def test_500_idle_connections_cost_bounded_memory_and_clients_still_served(broker, pids):
    rss_before = worker_rss(pids)
    idle = []
    try:
        for i in range(500):
            s = connect(broker)
            if i % 5 == 0:  # every fifth holds half a request
                s.sendall(metadata_request(i, topics=[{"name": "t" * 200}])[:100])
            idle.append(s)
        assert_serves(broker, pids)
        grown = worker_rss(pids) - rss_before
        assert grown < 24 << 20, f"workers grew by {grown} bytes for 500 idle connections"
        from confluent_kafka.admin import AdminClient

        md = AdminClient({"bootstrap.servers": broker.bootstrap}).list_topics(timeout=10)
        assert [(b.host, b.port) for b in md.brokers.values()] == [("127.0.0.1", broker.port)]
    finally:
        for s in idle:
            s.close()


def test_worker_lifts_its_soft_fd_limit(tmp_path):
    """Every worker runs with the hard limit: network workers hold connections, I/O workers segments."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < 700:
        pytest.skip(f"hard descriptor limit {hard} is below what this test needs")
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
    try:
        b = BrokerProcess(data_dir=str(tmp_path / "d"))
        b.start()  # the broker inherits a soft limit of 256
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    socks = []
    try:
        worker = b.worker_pids("network")[0]
        for pid in [worker, *b.worker_pids("io").values()]:
            assert psutil.Process(pid).rlimit(psutil.RLIMIT_NOFILE) == (hard, hard)
        socks = [connect(b) for _ in range(400)]
        for i, s in enumerate(socks):
            s.sendall(api_versions_request(i))
        for i, s in enumerate(socks):
            assert decode_response(API_VERSIONS, 3, recv_frame(s))[0] == i
    finally:
        for s in socks:
            s.close()
        b.close()


def _answered(socks: dict[int, socket.socket], timeout: float) -> list[int]:
    """Correlation ids of the sockets that received their ApiVersions response within `timeout`."""
    ready, _, _ = select.select(list(socks.values()), [], [], timeout)
    time.sleep(0.05)
    ready, _, _ = select.select(list(socks.values()), [], [], 0)
    out = []
    for s in ready:
        cid = next(k for k, v in socks.items() if v is s)
        assert decode_response(API_VERSIONS, 3, recv_frame(s))[0] == cid
        out.append(cid)
    return out


def test_out_of_descriptors_backs_off_and_recovers(tmp_path):
    b = BrokerProcess(data_dir=str(tmp_path / "d"))
    b.start()
    socks: dict[int, socket.socket] = {}
    try:
        pid = b.worker_pids("network")[0]
        workers_before = sorted(b.child_pids())
        worker = psutil.Process(pid)
        limit = worker.num_fds() + 8
        worker.rlimit(psutil.RLIMIT_NOFILE, (limit, limit))
        for i in range(24):
            socks[i] = connect(b)
            socks[i].sendall(api_versions_request(i))
        first = _answered(socks, 2.0)
        assert 0 < len(first) <= 8
        deadline = time.monotonic() + 5
        while not any("accept failed" in line and "Too many open files" in line for line in b.output):
            assert time.monotonic() < deadline, b.log_tail()
            time.sleep(0.02)
        logged_before = sum("accept failed" in line for line in b.output)
        cpu_before = sum(worker.cpu_times()[:2])
        time.sleep(1.0)
        # Backing off, not spinning on a listening socket that stays readable (nor flooding the log).
        assert sum(worker.cpu_times()[:2]) - cpu_before < 0.5
        assert sum("accept failed" in line for line in b.output) - logged_before <= 20
        served = set(first)
        while len(served) < 24:  # free descriptors: the queued connections are accepted and answered
            for cid in first:
                socks.pop(cid).close()
            first = _answered(socks, 3.0)
            assert first, f"no queued connection was served; served {sorted(served)}\n{b.log_tail()}"
            served.update(first)
        assert sorted(b.child_pids()) == workers_before
    finally:
        for s in socks.values():
            s.close()
        b.close()


# ---------------------------------------------------------------------------------------------------------
# everything at once, then real clients


def test_barrage_then_real_clients_are_served(broker, pids):
    rss_before = worker_rss(pids)
    barrage = [
        struct.pack(">i", 0x7FFFFFFF) + b"\x00" * 65536,
        struct.pack(">i", -1),
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(64)),  # a TLS ClientHello
        frame(header(METADATA, 1, 1) + struct.pack(">i", 0x7FFFFFFF)),
        frame(header(METADATA, 1, 1) + struct.pack(">i", 1) + struct.pack(">h", 0x7FFF)),
        frame(header(4242, 1, 1)),
        frame(header(METADATA, 77, 1)),
        frame(header(API_VERSIONS, 3, 1) + b"\x00\xff\xff\xff\xff\x0f"),
    ]
    socks = []
    for data in barrage * 10:
        s = connect(broker)
        s.sendall(data)
        socks.append(s)
    for s in socks:
        assert_closed_by_broker(s)
        s.close()
    half = []
    for _ in range(20):  # half a request each, then gone
        s = connect(broker)
        s.sendall(metadata_request(1, topics=[{"name": "x" * 100}])[:60])
        half.append(s)
    for s in half:
        s.close()
    assert worker_rss(pids) - rss_before < 16 << 20

    from confluent_kafka.admin import AdminClient
    from kafka import KafkaConsumer

    md = AdminClient({"bootstrap.servers": broker.bootstrap}).list_topics(timeout=10)
    assert md.cluster_id and [(b.host, b.port) for b in md.brokers.values()] == [("127.0.0.1", broker.port)]
    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap, request_timeout_ms=10000)
    try:
        assert consumer.topics() == set()
        assert consumer._client.cluster.brokers()  # metadata came back with our broker in it
    finally:
        consumer.close()
