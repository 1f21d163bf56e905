"""The Produce/Fetch fast paths agree with the generic codec, their oracle, on every served version.

Requests: frames generated from the declarations and encoded by `encode_request` decode through the fast
path to exactly what `decode_request` gives; mutated frames (truncations, overwritten bytes, bit flips) make
both paths fail with the same exception class and header, and nothing but CodecError escapes. Responses: the
fast encoders' bytes (file ranges read back) equal `encode_response`'s for the same body. Frames from real
clients (golden captures, kafka-python's own encoders) close the loop.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from netio.codec import (APIS, CodecError, UnsupportedVersion, decode_request, decode_response, encode_request,
                         encode_response, peek_header)
from netio.codec.fetch import FetchPartition, FetchRequest, PartitionData, decode_fetch_request, encode_fetch_response
from netio.codec.produce import decode_produce_request, encode_produce_response
from netio.connection import FilePart

from .strategies import plain, struct_values

PRODUCE, FETCH = APIS[0], APIS[1]
PRODUCE_VERSIONS = range(PRODUCE.versions[0], PRODUCE.versions[1] + 1)
FETCH_VERSIONS = range(FETCH.versions[0], FETCH.versions[1] + 1)
GOLDEN = Path(__file__).resolve().parent / "golden"
SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])

INT16 = st.integers(-(2**15), 2**15 - 1)
INT32 = st.integers(-(2**31), 2**31 - 1)
INT64 = st.integers(-(2**63), 2**63 - 1)
NAMES = st.text(max_size=10)


# ---------------------------------------------------------------------------------------------------------
# oracles: the generic decoder's result in the fast path's shape


def generic_produce(frame):
    request = decode_request(frame)
    if request.header.api_key != 0:
        raise CodecError("not Produce", header=request.header)
    body = request.body
    return (request.header, body["transactional_id"], body["acks"], body["timeout_ms"],
            [(t["name"], p["index"], plain(p["records"])) for t in body["topic_data"] for p in t["partition_data"]])


def fast_produce(frame):
    request = decode_produce_request(frame)
    for _, _, records in request.partitions:
        assert records is None or isinstance(records, memoryview)
    return (request.header, request.transactional_id, request.acks, request.timeout_ms,
            [(t, p, plain(r)) for t, p, r in request.partitions])


def generic_fetch(frame):
    request = decode_request(frame)
    if request.header.api_key != 1:
        raise CodecError("not Fetch", header=request.header)
    b = request.body
    topics = [(t["topic"], [FetchPartition(p["partition"], p["current_leader_epoch"], p["fetch_offset"],
                                           p["log_start_offset"], p["partition_max_bytes"]) for p in t["partitions"]])
              for t in b["topics"]]
    forgotten = [(t["topic"], t["partitions"]) for t in b["forgotten_topics_data"]]
    return FetchRequest(request.header, b["replica_id"], b["max_wait_ms"], b["min_bytes"], b["max_bytes"],
                        b["isolation_level"], b["session_id"], b["session_epoch"], topics, forgotten, b["rack_id"])


def outcome(decode, frame):
    """("ok", value) or ("error", exception class, header); anything but CodecError fails the test."""
    try:
        return ("ok", decode(frame))
    except CodecError as exc:
        return ("error", type(exc), exc.header)


def assert_same(frame, fast, generic):
    got = outcome(fast, memoryview(frame))
    want = outcome(generic, memoryview(frame))
    assert got == want, bytes(frame).hex()
    return got


PATHS = {0: (fast_produce, generic_produce), 1: (decode_fetch_request, generic_fetch)}
REQUEST_CASES = [(0, v) for v in PRODUCE_VERSIONS] + [(1, v) for v in FETCH_VERSIONS]
REQUEST_IDS = [f"{APIS[k].name}-v{v}" for k, v in REQUEST_CASES]


def request_frames(key, version):
    """Frame bodies (size prefix stripped) generated from the declarations by the generic encoder."""
    api = APIS[key]
    return st.builds(lambda body, cid, client: encode_request(key, version, cid, client, body)[4:],
                     struct_values(api.request, version), INT32, st.one_of(st.none(), st.text(max_size=8)))


# ---------------------------------------------------------------------------------------------------------
# requests


@pytest.mark.parametrize("key,version", REQUEST_CASES, ids=REQUEST_IDS)
@SETTINGS
@given(data=st.data())
def test_generated_requests_decode_as_the_generic_path_does(key, version, data):
    frame = data.draw(request_frames(key, version))
    result = assert_same(frame, *PATHS[key])
    if APIS[key].accepts(version):
        assert result[0] == "ok"
    else:
        assert result[:2] == ("error", UnsupportedVersion)


def _mutate(frame: bytes, data) -> bytes:
    out = bytearray(frame)
    for _ in range(data.draw(st.integers(1, 3), label="mutations")):
        kind = data.draw(st.sampled_from(["truncate", "flip", "set", "insert", "delete"]))
        pos = data.draw(st.integers(0, max(len(out) - 1, 0)))
        if kind == "truncate":
            del out[pos:]
        elif not out:
            continue
        elif kind == "flip":
            out[pos] ^= 1 << data.draw(st.integers(0, 7))
        elif kind == "set":
            out[pos] = data.draw(st.sampled_from([0x00, 0x01, 0x7F, 0x80, 0xFE, 0xFF]))
        elif kind == "insert":
            out[pos:pos] = data.draw(st.binary(min_size=1, max_size=4))
        else:
            del out[pos]
    return bytes(out)


@pytest.mark.parametrize("key,version", REQUEST_CASES, ids=REQUEST_IDS)
@SETTINGS
@given(data=st.data())
def test_mutated_requests_fail_as_the_generic_path_does(key, version, data):
    frame = _mutate(data.draw(request_frames(key, version)), data)
    assert_same(frame, *PATHS[key])


def _sample_produce(version):
    body = {"transactional_id": "tx", "acks": -1, "timeout_ms": 1500, "topic_data": [
        {"name": "orders", "partition_data": [{"index": 0, "records": b"\x00" * 9}, {"index": 1, "records": None}]},
        {"name": "é", "partition_data": [{"index": 7, "records": b"abc"}]}]}
    return encode_request(0, version, 42, "client", body)[4:]


def _sample_fetch(version):
    body = {"replica_id": -1, "max_wait_ms": 500, "min_bytes": 1, "max_bytes": 1 << 20, "isolation_level": 1,
            "session_id": 3, "session_epoch": 4, "rack_id": "rack",
            "topics": [{"topic": "orders", "partitions": [
                {"partition": 0, "current_leader_epoch": 2, "fetch_offset": 10, "log_start_offset": 0,
                 "partition_max_bytes": 4096},
                {"partition": 1, "fetch_offset": 11, "partition_max_bytes": 4096}]}],
            "forgotten_topics_data": [{"topic": "old", "partitions": [3, 4]}]}
    return encode_request(1, version, 43, None, body)[4:]


SAMPLES = {0: _sample_produce, 1: _sample_fetch}


@pytest.mark.parametrize("key,version", REQUEST_CASES, ids=REQUEST_IDS)
def test_every_truncation_and_byte_overwrite_fails_as_the_generic_path_does(key, version):
    frame = SAMPLES[key](version)
    assert_same(frame, *PATHS[key])
    for cut in range(len(frame)):
        assert assert_same(frame[:cut], *PATHS[key])[0] == "error"
    for pos in range(len(frame)):
        for value in (0x00, 0x80, 0xFF):
            assert_same(frame[:pos] + bytes([value]) + frame[pos + 1:], *PATHS[key])


def test_fast_results_carry_the_fields_of_the_sample_frames():
    produce = decode_produce_request(_sample_produce(7))
    assert (produce.version, produce.header.client_id, produce.transactional_id, produce.acks,
            produce.timeout_ms) == (7, "client", "tx", -1, 1500)
    assert [(t, p, plain(r)) for t, p, r in produce.partitions] == [
        ("orders", 0, b"\x00" * 9), ("orders", 1, None), ("é", 7, b"abc")]
    fetch = decode_fetch_request(_sample_fetch(11))
    assert (fetch.version, fetch.session_id, fetch.session_epoch, fetch.rack_id) == (11, 3, 4, "rack")
    assert fetch.topics == [("orders", [FetchPartition(0, 2, 10, 0, 4096), FetchPartition(1, -1, 11, -1, 4096)])]
    assert fetch.forgotten_topics == [("old", [3, 4])]
    old = decode_fetch_request(_sample_fetch(4))
    assert (old.session_id, old.session_epoch, old.forgotten_topics, old.rack_id) == (0, -1, [], "")
    assert old.topics[0][1][0] == FetchPartition(0, -1, 10, -1, 4096)


def test_records_are_zero_copy_slices_of_the_frame():
    frame = bytearray(_sample_produce(8))
    request = decode_produce_request(memoryview(frame))
    records = request.partitions[2][2]
    assert bytes(records) == b"abc"
    frame[len(frame) - 3:] = b"xyz"
    assert bytes(records) == b"xyz"


@pytest.mark.parametrize("key,version", [(0, 8), (1, 11)])
@pytest.mark.parametrize("where", ["topics", "partitions"])
def test_hostile_counts_are_refused_before_any_work(key, version, where):
    frame = bytearray(SAMPLES[key](version))
    header_end = 8 + 2 + (6 if key == 0 else 0)  # prefix, client id length, client id
    if key == 0:
        topics_at = header_end + 2 + 2 + 2 + 4    # transactional_id "tx", acks, timeout_ms
    else:
        topics_at = header_end + 25
    at = topics_at if where == "topics" else topics_at + 4 + 2 + len("orders")
    struct.pack_into(">i", frame, at, 2**31 - 1)
    fast = decode_produce_request if key == 0 else decode_fetch_request
    with pytest.raises(CodecError, match="cannot fit") as exc:
        fast(memoryview(frame))
    assert exc.value.header.correlation_id in (42, 43)
    assert_same(bytes(frame), *PATHS[key])


def test_frames_of_other_apis_and_versions_go_through_the_generic_path():
    metadata = encode_request(3, 8, 5, "c", {"topics": None})[4:]
    with pytest.raises(CodecError, match="not Produce") as exc:
        decode_produce_request(metadata)
    assert exc.value.header.api_key == 3
    with pytest.raises(UnsupportedVersion) as refused:
        decode_produce_request(_sample_produce(2))
    assert refused.value.body["acks"] == -1  # refused v0-v2 still carry their body for the reply
    unknown = bytearray(_sample_fetch(11))
    struct.pack_into(">h", unknown, 2, 12)
    with pytest.raises(UnsupportedVersion):
        decode_fetch_request(bytes(unknown))


# ---------------------------------------------------------------------------------------------------------
# responses


def produce_results(version):
    partition = st.tuples(INT32, INT16, INT64, INT64, INT64, st.one_of(st.none(), NAMES))
    return st.lists(st.tuples(NAMES, st.lists(partition, max_size=3)), max_size=3)


def generic_produce_body(results, throttle):
    return {"throttle_time_ms": throttle, "responses": [
        {"name": t, "partition_responses": [
            {"index": p, "error_code": e, "base_offset": b, "log_append_time_ms": a, "log_start_offset": s,
             "error_message": m} for p, e, b, a, s, m in parts]}
        for t, parts in results]}


@pytest.mark.parametrize("version", PRODUCE_VERSIONS, ids=[f"v{v}" for v in PRODUCE_VERSIONS])
@SETTINGS
@given(data=st.data())
def test_produce_response_is_byte_identical_to_the_generic_encoder(version, data):
    results = data.draw(produce_results(version))
    correlation_id, throttle = data.draw(INT32), data.draw(INT32)
    fast = encode_produce_response(version, correlation_id, results, throttle)
    assert fast == encode_response(0, version, correlation_id, generic_produce_body(results, throttle))
    assert int.from_bytes(fast[:4], "big") == len(fast) - 4


@pytest.fixture(scope="module")
def segment(tmp_path_factory):
    """A file standing in for a segment: FileParts point into it and are read back for comparison."""
    path = tmp_path_factory.mktemp("fastpath") / "00000000000000000000.log"
    content = os.urandom(4096)
    path.write_bytes(content)
    fd = os.open(path, os.O_RDONLY)
    yield fd, content
    os.close(fd)


def _records(fd):
    span = st.integers(0, 4096).flatmap(lambda off: st.tuples(st.just(off), st.integers(0, 4096 - off)))
    return st.one_of(
        st.none(), st.binary(max_size=40), st.binary(max_size=40).map(memoryview),
        st.binary(max_size=40).map(bytearray), span.map(lambda s: FilePart(fd, s[0], s[1])))


def _fetch_topics(fd):
    aborted = st.one_of(st.none(), st.lists(st.tuples(INT64, INT64), max_size=2))
    partition = st.builds(PartitionData, INT32, INT16, INT64, INT64, INT64, aborted, INT32, _records(fd))
    return st.lists(st.tuples(NAMES, st.lists(partition, max_size=3)), max_size=3)


def materialize(part) -> bytes:
    if isinstance(part, FilePart):
        data = os.pread(part.fd, part.length, part.offset)
        assert len(data) == part.length
        return data
    return bytes(part)


def generic_fetch_body(throttle, error_code, session_id, topics):
    def records(r):
        return b"" if r is None else materialize(r)

    return {"throttle_time_ms": throttle, "error_code": error_code, "session_id": session_id, "responses": [
        {"topic": t, "partitions": [
            {"partition_index": p.partition, "error_code": p.error_code, "high_watermark": p.high_watermark,
             "last_stable_offset": p.last_stable_offset, "log_start_offset": p.log_start_offset,
             "aborted_transactions": None if p.aborted_transactions is None else [
                 {"producer_id": a, "first_offset": b} for a, b in p.aborted_transactions],
             "preferred_read_replica": p.preferred_read_replica, "records": records(p.records)}
            for p in parts]}
        for t, parts in topics]}


@pytest.mark.parametrize("version", FETCH_VERSIONS, ids=[f"v{v}" for v in FETCH_VERSIONS])
@SETTINGS
@given(data=st.data())
def test_fetch_response_parts_are_byte_identical_to_the_generic_encoder(segment, version, data):
    fd, _ = segment
    topics = data.draw(_fetch_topics(fd))
    correlation_id, throttle, error_code, session_id = data.draw(st.tuples(INT32, INT32, INT16, INT32))
    parts = encode_fetch_response(version, correlation_id, throttle, error_code, session_id, topics)

    wire = b"".join(materialize(p) for p in parts)
    generic = generic_fetch_body(throttle, error_code, session_id, topics)
    assert wire == encode_response(1, version, correlation_id, generic)
    assert isinstance(parts[0], bytes)
    assert struct.unpack_from(">ii", parts[0]) == (len(wire) - 4, correlation_id)
    assert all(len(materialize(p)) > 0 for p in parts)
    passed = [p for p in parts if not isinstance(p, bytes) or any(p is q.records for _, ps in topics for q in ps)]
    expected = [q.records for _, ps in topics for q in ps
                if q.records is not None and len(materialize(q.records)) > 0]
    assert [materialize(p) for p in passed] == [materialize(r) for r in expected]
    file_parts = [p for p in parts if isinstance(p, FilePart)]
    assert file_parts == [r for r in expected if isinstance(r, FilePart)]
    assert all(any(p is r for r in expected) for p in file_parts)  # the very objects, not copies


def test_empty_and_null_record_sets_are_sent_as_empty_not_null(segment):
    fd, content = segment
    topics = [("t", [PartitionData(0, 0, 5, records=None), PartitionData(1, 0, 5, records=FilePart(fd, 9, 0)),
                     PartitionData(2, 0, 5, records=b""), PartitionData(3, 0, 5, records=FilePart(fd, 100, 7))])]
    parts = encode_fetch_response(11, 9, 0, 0, 0, topics)
    assert [type(p) for p in parts] == [bytes, FilePart]  # the record set of the last partition ends the frame
    wire = b"".join(materialize(p) for p in parts)
    correlation_id, body = decode_response(1, 11, wire[4:])
    records = [p["records"] for p in body["responses"][0]["partitions"]]
    assert correlation_id == 9
    assert [bytes(r) for r in records] == [b"", b"", b"", content[100:107]]


def test_fetch_response_without_topics_is_one_part():
    parts = encode_fetch_response(7, 1, 0, 70, 0, [])
    assert parts == [encode_response(1, 7, 1, {"error_code": 70, "session_id": 0, "responses": []})]


@pytest.mark.parametrize("bad", [
    lambda: encode_fetch_response(12, 1, 0, 0, 0, []),
    lambda: encode_fetch_response(11, 1, 0, 0, 0, [(None, [])]),
    lambda: encode_fetch_response(11, 1, 0, 0, 0, [("t", [PartitionData(2**31, 0, 0)])]),
    lambda: encode_fetch_response(11, 1, 0, 0, 0, [("t", [PartitionData(0, 0, 0, records=object())])]),
    lambda: encode_fetch_response(11, 1, 0, 0, 0, [("t", [PartitionData(0, 0, 0, records=FilePart(3, 0, 2**31))])]),
    lambda: encode_fetch_response(11, 1, 0, 0, 0, [("x" * 40000, [])]),
    lambda: encode_produce_response(8, 1, [("t", [(0, 0, 0, 0, 0, 5)])]),
    lambda: encode_produce_response(8, 1, [("t", [(0, 2**15, 0, 0, 0, None)])]),
    lambda: encode_produce_response(9, 1, []),
], ids=["version", "null-topic", "int32-range", "records-type", "records-size", "long-name", "message-type",
        "int16-range", "produce-version"])
def test_unencodable_responses_raise_codec_error(bad):
    with pytest.raises(CodecError):
        bad()


def test_refused_produce_versions_are_answered_by_the_generic_encoder():
    results = [("t", [(0, 35, -1, -1, -1, None)])]
    for version in (0, 1, 2):
        fast = encode_produce_response(version, 4, results, 0)
        _, body = decode_response(0, version, fast[4:])
        assert body["responses"][0]["partition_responses"][0]["error_code"] == 35


# ---------------------------------------------------------------------------------------------------------
# real clients


def _golden_frames():
    if not GOLDEN.is_dir():
        return []
    frames = []
    for path in sorted(GOLDEN.glob("*.hex")):
        try:
            frame = bytes.fromhex(path.read_text().strip())
        except ValueError:
            continue
        if len(frame) >= 8 and peek_header(frame).api_key in PATHS:
            frames.append(pytest.param(frame, id=path.stem))
    return frames


GOLDEN_FRAMES = _golden_frames()


@pytest.mark.skipif(not GOLDEN_FRAMES, reason="no golden Produce/Fetch frames captured")
@pytest.mark.parametrize("frame", GOLDEN_FRAMES)
def test_golden_client_frames_decode_as_the_generic_path_does(frame):
    key = peek_header(frame).api_key
    result = assert_same(frame, *PATHS[key])
    assert result[0] == "ok"
    for cut in range(0, len(frame), 7):
        assert_same(frame[:cut], *PATHS[key])


@pytest.mark.parametrize("version", range(3, 9))
def test_kafka_python_produce_requests_decode(version):
    kp = pytest.importorskip("kafka.protocol.producer")
    topic_data = kp.ProduceRequest.TopicProduceData
    partition_data = topic_data.PartitionProduceData
    request = kp.ProduceRequest[version](transactional_id="txn", acks=1, timeout_ms=3000, topic_data=[
        topic_data(name="a", partition_data=[partition_data(index=0, records=b"batch-0"),
                                             partition_data(index=5, records=b"batch-5")]),
        topic_data(name="b", partition_data=[partition_data(index=2, records=b"")])])
    request.with_header(correlation_id=77, client_id="kp")
    frame = memoryview(request.encode(header=True, framed=True))[4:]
    got = decode_produce_request(frame)
    assert (got.header.correlation_id, got.header.client_id, got.transactional_id, got.acks, got.timeout_ms) == \
        (77, "kp", "txn", 1, 3000)
    assert [(t, p, bytes(r)) for t, p, r in got.partitions] == [("a", 0, b"batch-0"), ("a", 5, b"batch-5"),
                                                                ("b", 2, b"")]


@pytest.mark.parametrize("version", FETCH_VERSIONS)
def test_kafka_python_fetch_requests_decode(version):
    kc = pytest.importorskip("kafka.protocol.consumer")
    req = kc.FetchRequest
    fetch_topic, fetch_partition = req.FetchTopic, req.FetchTopic.FetchPartition
    request = req[version](
        replica_id=-1, max_wait_ms=500, min_bytes=1, max_bytes=52428800, isolation_level=1, session_id=0,
        session_epoch=-1, rack_id="r1",
        topics=[fetch_topic(topic="a", partitions=[fetch_partition(
            partition=3, current_leader_epoch=6, fetch_offset=100, log_start_offset=-1, partition_max_bytes=1048576)])],
        forgotten_topics_data=[req.ForgottenTopic(topic="z", partitions=[1])])
    request.with_header(correlation_id=78, client_id="kp")
    got = decode_fetch_request(memoryview(request.encode(header=True, framed=True))[4:])
    epoch = 6 if version >= 9 else -1
    assert (got.header.correlation_id, got.max_wait_ms, got.min_bytes, got.max_bytes, got.isolation_level) == \
        (78, 500, 1, 52428800, 1)
    assert got.topics == [("a", [FetchPartition(3, epoch, 100, -1, 1048576)])]
    assert got.forgotten_topics == ([("z", [1])] if version >= 7 else [])
    assert got.rack_id == ("r1" if version >= 11 else "")


@pytest.mark.parametrize("version", FETCH_VERSIONS)
def test_kafka_python_reads_fast_fetch_responses(segment, version):
    kc = pytest.importorskip("kafka.protocol.consumer")
    fd, content = segment
    topics = [("a", [PartitionData(0, 0, 50, 40, 1, [(9, 30)], 2, FilePart(fd, 10, 20)),
                     PartitionData(1, 6, -1, records=None)])]
    wire = b"".join(materialize(p) for p in encode_fetch_response(version, 12, 3, 0, 8, topics))
    response = kc.FetchResponse.decode(wire, version=version, header=True, framed=True)
    assert response.header.correlation_id == 12 and response.throttle_time_ms == 3
    first, second = response.responses[0].partitions
    assert (first.partition_index, first.high_watermark, first.last_stable_offset, bytes(first.records)) == \
        (0, 50, 40, content[10:30])
    assert [(a.producer_id, a.first_offset) for a in first.aborted_transactions] == [(9, 30)]
    assert (second.error_code, bytes(second.records)) == (6, b"")
    if version >= 11:
        assert first.preferred_read_replica == 2


@pytest.mark.parametrize("version", range(3, 9))
def test_kafka_python_reads_fast_produce_responses(version):
    kp = pytest.importorskip("kafka.protocol.producer")
    wire = encode_produce_response(version, 13, [("a", [(0, 0, 100, -1, 0, None), (1, 10, -1, -1, -1, "too big")])], 4)
    response = kp.ProduceResponse.decode(wire, version=version, header=True, framed=True)
    assert response.header.correlation_id == 13 and response.throttle_time_ms == 4
    ok, bad = response.responses[0].partition_responses
    assert (ok.index, ok.error_code, ok.base_offset, bad.error_code) == (0, 0, 100, 10)
    if version >= 8:
        assert bad.error_message == "too big" and ok.error_message is None
