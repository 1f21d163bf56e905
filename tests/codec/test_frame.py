"""Framing and headers: FrameReader, request header v1/v2, response header v0/v1 and the ApiVersions rules."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netio.codec.frame import DIRECT_MIN
from netio.codec import (APIS, CodecError, ErrorCode, FrameReader, UnknownApi, UnsupportedVersion,
                         api_versions_table, decode_request, decode_response, encode_request, encode_response,
                         peek_header)


def test_frames_split_across_feeds_and_batched_in_one_feed():
    frames = [encode_request(3, v, 100 + v, "cli", {"topics": [{"name": "t"}]}) for v in (1, 4, 8)]
    stream = b"".join(frames)
    reader = FrameReader()
    got = []
    for i in range(0, len(stream), 5):
        reader.feed(stream[i:i + 5])
        while (frame := reader.next_frame()) is not None:
            got.append(bytes(frame))
    assert got == [f[4:] for f in frames]
    reader.feed(stream)
    assert [bytes(reader.next_frame()) for _ in frames] == [f[4:] for f in frames]
    assert reader.next_frame() is None and reader.buffered == 0


def test_frame_inside_one_chunk_is_a_view_and_survives_buffer_reuse():
    frame = encode_request(12, 0, 1, "x", {"group_id": "g", "member_id": "m"})
    scratch = bytearray(frame)
    reader = FrameReader()
    reader.feed(memoryview(scratch))
    body = reader.next_frame()
    scratch[:] = b"\x00" * len(scratch)
    assert isinstance(body, memoryview)
    assert decode_request(body).body["group_id"] == "g"


def test_zero_length_frame_is_returned_and_rejected_by_the_decoder():
    reader = FrameReader()
    reader.feed(b"\x00\x00\x00\x00")
    frame = reader.next_frame()
    assert frame is not None and len(frame) == 0
    with pytest.raises(CodecError):
        decode_request(frame)


def test_flexible_request_uses_header_v2_and_skips_unknown_header_tags():
    plain = encode_request(18, 3, 5, "rdkafka", {"client_software_name": "n", "client_software_version": "1"})
    # header v2: prefix, client id (int16 string), then tagged fields; inject one unknown tag (7, 2 bytes).
    head = 4 + 8 + 2 + len("rdkafka")
    assert plain[head] == 0
    tagged = plain[4:head] + b"\x01\x07\x02zz" + plain[head + 1:]
    request = decode_request(tagged)
    assert request.header.client_id == "rdkafka"
    assert request.body == {"client_software_name": "n", "client_software_version": "1"}


def test_non_flexible_request_uses_header_v1_with_null_client_id():
    frame = encode_request(18, 2, 5, None, {})
    assert frame[4:] == struct.pack(">hhih", 18, 2, 5, -1)
    assert decode_request(frame[4:]).header.client_id is None


def test_unknown_api_and_unsupported_version_carry_the_header():
    with pytest.raises(UnknownApi) as unknown:
        decode_request(struct.pack(">hhih", 68, 0, 77, 1) + b"k")
    assert unknown.value.header.correlation_id == 77 and unknown.value.header.client_id == "k"
    with pytest.raises(UnsupportedVersion) as unsupported:
        decode_request(struct.pack(">hhih", 18, 4, 78, 1) + b"k" + b"\x00\x02a\x02b\x00")
    assert unsupported.value.header.api_version == 4 and unsupported.value.header.correlation_id == 78
    assert unsupported.value.error_code == ErrorCode.UNSUPPORTED_VERSION
    assert unsupported.value.body is None


def test_refused_produce_version_carries_the_decoded_body():
    body = {"acks": -1, "timeout_ms": 30000, "topic_data": [{"name": "t", "partition_data": [
        {"index": 0, "records": b"batch"}]}]}
    with pytest.raises(UnsupportedVersion) as refused:
        decode_request(encode_request(0, 2, 3, "old", body)[4:])
    assert refused.value.body["topic_data"][0]["partition_data"][0]["index"] == 0
    assert bytes(refused.value.body["topic_data"][0]["partition_data"][0]["records"]) == b"batch"


def test_peek_header_reads_only_the_fixed_prefix():
    header = peek_header(struct.pack(">hhi", 1, 11, 42))
    assert (header.api_key, header.api_version, header.correlation_id, header.client_id) == (1, 11, 42, None)
    with pytest.raises(CodecError):
        peek_header(b"\x00\x01")


def test_records_decode_as_zero_copy_views_and_encode_from_buffers():
    numpy = pytest.importorskip("numpy")
    batch = numpy.arange(70, dtype=numpy.uint8)
    body = {"acks": 1, "timeout_ms": 5, "topic_data": [{"name": "t", "partition_data": [
        {"index": 0, "records": batch}, {"index": 1, "records": None}, {"index": 2, "records": memoryview(b"ab")}]}]}
    frame = encode_request(0, 8, 1, "p", body)[4:]
    parts = decode_request(frame).body["topic_data"][0]["partition_data"]
    assert isinstance(parts[0]["records"], memoryview)
    assert parts[0]["records"].obj is frame
    assert bytes(parts[0]["records"]) == batch.tobytes()
    assert parts[1]["records"] is None
    assert bytes(parts[2]["records"]) == b"ab"


def test_api_versions_response_header_is_v0_even_when_flexible():
    frame = encode_response(18, 3, 9, {"error_code": 0, "api_keys": api_versions_table()})
    # size, correlation id, then directly the int16 error code: no header tag byte.
    assert frame[4:8] == struct.pack(">i", 9)
    assert frame[8:10] == b"\x00\x00"
    assert decode_response(18, 3, frame[4:])[1]["api_keys"] == api_versions_table()


def test_api_versions_unsupported_version_is_answered_with_a_v0_body():
    body = {"error_code": ErrorCode.UNSUPPORTED_VERSION, "api_keys": api_versions_table(), "throttle_time_ms": 5}
    frame = encode_response(18, 4, 9, body)
    expected_v0 = encode_response(18, 0, 9, body)
    assert frame == expected_v0
    _, decoded = decode_response(18, 4, frame[4:])
    assert decoded["error_code"] == 35 and decoded["api_keys"] == api_versions_table()
    assert decoded["throttle_time_ms"] == 0


def test_flexible_response_has_header_v1():
    body = {"cluster_id": "c", "controller_id": 1, "brokers": [{"broker_id": 1, "host": "h", "port": 9092}]}
    frame = encode_response(60, 0, 9, body)
    assert frame[4:9] == struct.pack(">i", 9) + b"\x00"
    assert decode_response(60, 0, frame[4:])[1]["brokers"][0]["host"] == "h"


def test_missing_fields_take_declared_defaults_and_absent_versions_read_as_defaults():
    frame = encode_request(1, 4, 1, "c", {"max_wait_ms": 500, "min_bytes": 1, "topics": []})
    body = decode_request(frame[4:]).body
    assert body["replica_id"] == -1 and body["max_bytes"] == 0x7FFFFFFF
    assert body["session_epoch"] == -1 and body["forgotten_topics_data"] == [] and body["rack_id"] == ""
    metadata = decode_request(encode_request(3, 0, 1, "c", {"topics": [{"name": "a"}]})[4:]).body
    assert metadata["allow_auto_topic_creation"] is True


def test_tagged_fields_are_written_only_when_they_differ_from_the_default():
    base = {"error_code": 0, "api_keys": []}
    plain = encode_response(18, 3, 1, base)
    assert plain.endswith(b"\x00")
    tagged = encode_response(18, 3, 1, {**base, "finalized_features_epoch": 7, "zk_migration_ready": True})
    assert len(tagged) > len(plain)
    _, body = decode_response(18, 3, tagged[4:])
    assert body["finalized_features_epoch"] == 7 and body["zk_migration_ready"] is True
    assert body["supported_features"] == []


def test_encoding_rejects_values_that_do_not_fit():
    with pytest.raises(CodecError, match="acks"):
        encode_request(0, 3, 1, "c", {"acks": 70000})
    with pytest.raises(CodecError, match="topic_data"):
        encode_request(0, 3, 1, "c", {"topic_data": [{"name": None}]})
    with pytest.raises(UnsupportedVersion):
        encode_request(0, 9, 1, "c", {})
    with pytest.raises(CodecError):
        encode_response(3, 9, 1, {})


def test_every_declared_api_encodes_an_empty_message_at_every_version():
    for key, api in APIS.items():
        for version in range(api.versions[0], api.versions[1] + 1):
            request = encode_request(key, version, 1, "c", {})
            assert int.from_bytes(request[:4], "big") == len(request) - 4
            response = encode_response(key, version, 1, {})
            assert decode_response(key, version, response[4:])[0] == 1


def _receive(reader: FrameReader, stream: bytes, step: int) -> list[bytes]:
    """Drive a reader the way the network worker does: in place for large frames, in chunks otherwise."""
    got, pos = [], 0
    while pos < len(stream):
        view = reader.direct_buffer()
        if view is not None:
            n = min(len(view), step, len(stream) - pos)
            view[:n] = stream[pos:pos + n]
            view.release()
            reader.direct_filled(n)
        else:
            n = min(reader.read_size(step), len(stream) - pos)
            reader.feed(stream[pos:pos + n])
        pos += n
        while (frame := reader.next_frame()) is not None:
            got.append(bytes(frame))
    return got


@given(sizes=st.lists(st.sampled_from([0, 1, 100, DIRECT_MIN - 1, DIRECT_MIN, DIRECT_MIN + 7, 3 * DIRECT_MIN]),
                      min_size=1, max_size=6),
       step=st.sampled_from([1, 3, 4, 1000, DIRECT_MIN // 2, DIRECT_MIN * 4]))
@settings(max_examples=60, deadline=None)
def test_large_frames_received_in_place_come_out_whole_and_in_order(sizes, step):
    bodies = [bytes([i + 1]) * n for i, n in enumerate(sizes)]
    stream = b"".join(struct.pack(">i", len(b)) + b for b in bodies)
    reader = FrameReader()
    assert _receive(reader, stream, step) == bodies
    assert reader.buffered == 0 and reader.next_frame() is None


def test_after_a_large_frame_only_the_next_size_prefix_is_read_alone():
    reader = FrameReader()
    assert reader.read_size(1 << 18) == 1 << 18
    reader.feed(struct.pack(">i", DIRECT_MIN))
    assert not reader.waiting_large_body()  # the prefix is not parsed until frames are asked for
    assert reader.next_frame() is None
    assert reader.waiting_large_body()  # the network worker reads the body at once
    view = reader.direct_buffer()
    assert view is not None and len(view) == DIRECT_MIN
    view[:] = b"x" * DIRECT_MIN
    view.release()
    reader.direct_filled(DIRECT_MIN)
    assert not reader.waiting_large_body()
    assert bytes(reader.next_frame()) == b"x" * DIRECT_MIN
    assert reader.read_size(1 << 18) == 4  # the next frame's body is then received in place if large
    reader.feed(struct.pack(">i", 10))
    assert reader.next_frame() is None and not reader.waiting_large_body()  # a small body comes in chunks
    reader.feed(b"0123456789")
    assert bytes(reader.next_frame()) == b"0123456789"
    assert reader.read_size(1 << 18) == 1 << 18  # back to chunks after a small frame


def test_a_large_frame_still_referenced_is_never_overwritten_by_the_next():
    reader = FrameReader()
    stream = b"".join(struct.pack(">i", DIRECT_MIN) + bytes([c]) * DIRECT_MIN for c in (1, 2, 3))
    kept = []
    pos = 0
    for _ in range(3):
        reader.feed(stream[pos:pos + 4])
        pos += 4
        assert reader.next_frame() is None
        view = reader.direct_buffer()
        view[:] = stream[pos:pos + DIRECT_MIN]
        view.release()
        reader.direct_filled(DIRECT_MIN)
        pos += DIRECT_MIN
        kept.append(reader.next_frame())
    assert [bytes(k[:1]) * DIRECT_MIN == bytes(k) for k in kept] == [True] * 3
    assert [k[0] for k in kept] == [1, 2, 3]


def test_the_receive_buffer_is_reused_once_the_previous_frame_is_released():
    reader = FrameReader()
    frame_ids = []
    for c in (1, 2, 3):
        reader.feed(struct.pack(">i", DIRECT_MIN))
        reader.next_frame()
        view = reader.direct_buffer()
        view[:] = bytes([c]) * DIRECT_MIN
        frame_ids.append(id(view.obj))
        view.release()
        del view
        reader.direct_filled(DIRECT_MIN)
        frame = reader.next_frame()
        assert frame[0] == c and len(frame) == DIRECT_MIN
        frame.release()
        del frame
    assert len(set(frame_ids)) == 1
