"""Hostile input: random bytes, truncations and bit flips of valid frames, and lengths that lie.

Only CodecError may escape the decoder, and lengths/counts that point past the end of the frame must be
refused before anything is allocated for them (the CVE-2022-34917 class).
"""

from __future__ import annotations

import struct
import time
import tracemalloc

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from netio.codec import APIS, CodecError, FrameReader, FrameTooLarge, decode_request, encode_request
from netio.codec.types import uvarint_bytes

from .strategies import struct_values

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
CASES = [(key, v) for key, api in APIS.items() for v in range(api.versions[0], api.versions[1] + 1)]


def _decode_quietly(frame) -> None:
    try:
        decode_request(frame)
    except CodecError:
        pass


@st.composite
def valid_frames(draw) -> bytes:
    key, version = draw(st.sampled_from(CASES))
    body = draw(struct_values(APIS[key].request, version))
    return encode_request(key, version, draw(st.integers(0, 2**31 - 1)), draw(st.text(max_size=6)), body)[4:]


@FUZZ
@given(st.binary(max_size=200))
def test_random_bytes_raise_only_codec_errors(data):
    _decode_quietly(data)


@FUZZ
@given(st.sampled_from(sorted(APIS)), st.integers(-1, 12), st.binary(max_size=120))
def test_random_bodies_behind_a_plausible_header_raise_only_codec_errors(key, version, body):
    _decode_quietly(struct.pack(">hhih", key, version, 1, 3) + b"abc" + body)


@FUZZ
@given(valid_frames(), st.data())
def test_truncated_frames_raise_only_codec_errors(frame, data):
    cut = data.draw(st.integers(0, max(len(frame) - 1, 0)))
    _decode_quietly(frame[:cut])


@FUZZ
@given(valid_frames(), st.data())
def test_bit_flipped_frames_raise_only_codec_errors(frame, data):
    mutated = bytearray(frame)
    for _ in range(data.draw(st.integers(1, 4))):
        bit = data.draw(st.integers(0, len(mutated) * 8 - 1))
        mutated[bit // 8] ^= 1 << (bit % 8)
    _decode_quietly(bytes(mutated))


@FUZZ
@given(st.lists(st.binary(max_size=40), max_size=8))
def test_frame_reader_on_random_streams_raises_only_codec_errors(chunks):
    reader = FrameReader(max_frame_bytes=64)
    try:
        for chunk in chunks:
            reader.feed(chunk)
            while (frame := reader.next_frame()) is not None:
                _decode_quietly(frame)
    except FrameTooLarge:
        pass


def _refuse_cheaply(frame: bytes) -> None:
    """The frame must be refused in well under a millisecond-scale budget and without big allocations."""
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(CodecError):
            decode_request(frame)
    finally:
        elapsed = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert elapsed < 0.05
    assert peak < 64 * 1024


HEADER_V1 = struct.pack(">hhih", 3, 1, 9, 1) + b"c"  # Metadata v1, client id "c"


@pytest.mark.parametrize("count", [2**31 - 1, 2**20, 3])
def test_huge_array_count_is_refused_before_allocation(count):
    _refuse_cheaply(HEADER_V1 + struct.pack(">i", count) + b"\x00\x01a")


def test_negative_array_count_other_than_null_is_refused():
    _refuse_cheaply(HEADER_V1 + struct.pack(">i", -2))


def test_null_array_where_not_nullable_is_refused():
    header = struct.pack(">hhih", 3, 0, 9, 1) + b"c"  # Metadata v0: topics not nullable
    _refuse_cheaply(header + struct.pack(">i", -1))


def test_string_running_past_the_frame_end_is_refused():
    _refuse_cheaply(HEADER_V1 + struct.pack(">ih", 1, 32767) + b"abc")


def test_records_length_past_the_frame_end_is_refused():
    header = struct.pack(">hhih", 0, 3, 9, 1) + b"c"  # Produce v3
    body = struct.pack(">hhi", -1, 1, 1000) + struct.pack(">ih", 1, 1) + b"t" + struct.pack(">ii", 1, 0)
    _refuse_cheaply(header + body + struct.pack(">i", 2**31 - 1) + b"\x00" * 8)


def test_client_id_past_the_frame_end_is_refused():
    _refuse_cheaply(struct.pack(">hhih", 3, 1, 9, 30000) + b"c")


def test_compact_array_count_past_the_frame_end_is_refused():
    # ApiVersions v3 is flexible; its first field is a compact string, here claiming 2**32-2 bytes.
    header = struct.pack(">hhih", 18, 3, 9, 1) + b"c" + b"\x00"
    _refuse_cheaply(header + uvarint_bytes(2**32 - 1) + b"ab")


def test_overlong_varint_is_refused():
    header = struct.pack(">hhih", 18, 3, 9, 1) + b"c" + b"\x00"
    _refuse_cheaply(header + b"\xff\xff\xff\xff\xff\x01")


def test_tagged_field_size_past_the_frame_end_is_refused():
    header = struct.pack(">hhih", 18, 3, 9, 1) + b"c"
    _refuse_cheaply(header + b"\x01" + b"\x05" + uvarint_bytes(2**31) + b"xx")


def test_huge_tagged_field_count_is_refused():
    header = struct.pack(">hhih", 18, 3, 9, 1) + b"c" + b"\x00" + b"\x01" + b"\x01"
    _refuse_cheaply(header + uvarint_bytes(2**32 - 1) + b"\x00")


def test_trailing_bytes_after_a_request_are_refused():
    frame = encode_request(3, 1, 9, "c", {"topics": []})[4:]
    decode_request(frame)
    _refuse_cheaply(frame + b"\x00")


def test_only_the_tail_librdkafka_sends_after_alter_user_scram_credentials_is_accepted():
    frame = encode_request(51, 0, 3, "rdkafka", {"deletions": [], "upsertions": []})[4:]
    assert decode_request(frame + b"\x00").body == decode_request(frame).body
    _refuse_cheaply(frame + b"\x00\x00")
    _refuse_cheaply(frame + b"\x01")


@pytest.mark.parametrize("size", [104857601, 2**31 - 1, -1, -(2**31)])
def test_frame_size_out_of_bounds_is_refused_before_buffering(size):
    reader = FrameReader(max_frame_bytes=104857600)
    reader.feed(struct.pack(">i", size))
    with pytest.raises(FrameTooLarge) as refused:
        reader.next_frame()
    assert refused.value.size == size
    assert reader.buffered == 0
    reader.feed(b"x" * 10)
    with pytest.raises(FrameTooLarge):
        reader.next_frame()
