"""Primitive readers and writers: exact wire forms, limits, and refusal of lying lengths."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netio.codec import CodecError
from netio.codec import types as T
from netio.codec.schema import run_reader


@pytest.mark.parametrize("value,wire", [(0, b"\x00"), (1, b"\x01"), (127, b"\x7f"), (128, b"\x80\x01"),
                                        (300, b"\xac\x02"), (2**32 - 1, b"\xff\xff\xff\xff\x0f")])
def test_uvarint_wire_form(value, wire):
    assert T.uvarint_bytes(value) == wire
    assert T.read_uvarint(memoryview(wire), 0) == (value, len(wire))


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_uvarint_round_trip(value):
    wire = T.uvarint_bytes(value)
    assert T.read_uvarint(memoryview(wire + b"\x55"), 0) == (value, len(wire))


def test_uvarint_limits():
    with pytest.raises(CodecError):
        T.uvarint_bytes(2**32)
    with pytest.raises(CodecError):
        T.read_uvarint(memoryview(b"\xff\xff\xff\xff\x1f"), 0)  # 35 bits
    with pytest.raises(CodecError):
        T.read_uvarint(memoryview(b"\x80\x80\x80\x80\x80\x00"), 0)


@pytest.mark.parametrize("compact,value,wire", [
    (False, "ab", b"\x00\x02ab"), (False, None, b"\xff\xff"), (False, "", b"\x00\x00"),
    (True, "ab", b"\x03ab"), (True, None, b"\x00"), (True, "", b"\x01"),
])
def test_string_wire_forms(compact, value, wire):
    out = bytearray()
    T.string_writer(compact, nullable=True)(value, out)
    assert bytes(out) == wire
    assert T.string_reader(compact, nullable=True)(memoryview(wire), 0) == (value, len(wire))


def test_non_nullable_string_refuses_null_both_ways():
    with pytest.raises(CodecError):
        T.string_reader(False, nullable=False)(memoryview(b"\xff\xff"), 0)
    with pytest.raises(CodecError):
        T.string_writer(True, nullable=False)(None, bytearray())


def test_string_must_be_utf8_and_fit_int16():
    with pytest.raises(CodecError, match="UTF-8"):
        T.string_reader(False, nullable=False)(memoryview(b"\x00\x02\xff\xfe"), 0)
    with pytest.raises(CodecError):
        T.string_writer(False, nullable=False)("x" * 40000, bytearray())


@pytest.mark.parametrize("compact,value,wire", [
    (False, b"xyz", b"\x00\x00\x00\x03xyz"), (False, None, b"\xff\xff\xff\xff"),
    (True, b"xyz", b"\x04xyz"), (True, None, b"\x00"),
])
def test_bytes_and_records_wire_forms(compact, value, wire):
    out = bytearray()
    T.bytes_writer(compact, nullable=True)(value, out)
    assert bytes(out) == wire
    assert T.bytes_reader(compact, nullable=True)(memoryview(wire), 0) == (value, len(wire))
    view, end = T.bytes_reader(compact, nullable=True, zero_copy=True)(memoryview(wire), 0)
    assert end == len(wire) and (view is None if value is None else isinstance(view, memoryview))


def test_array_count_is_bounded_by_remaining_bytes_times_element_size():
    read = T.array_reader(T.primitive_reader("int64", False, False), 8, compact=False, nullable=False)
    two = b"\x00\x00\x00\x02" + b"\x00" * 16
    assert read(memoryview(two), 0) == ([0, 0], 20)
    with pytest.raises(CodecError, match="cannot fit"):
        read(memoryview(b"\x00\x00\x00\x03" + b"\x00" * 16), 0)


def test_uuid_round_trip_and_zero_default():
    value = uuid.uuid4()
    out = bytearray()
    T.write_uuid(value, out)
    assert T.read_uuid(memoryview(bytes(out)), 0) == (value, 16)
    assert T.ZERO_UUID.bytes == b"\x00" * 16


def test_short_fixed_reads_become_codec_errors_at_the_entry():
    with pytest.raises(CodecError):
        run_reader(T.primitive_reader("int32", False, False), b"\x00\x01")
