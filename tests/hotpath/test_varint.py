"""Varints: pinned encodings, round trips against the twin, malformed input, the kernel helpers."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import hotpath
from tests.hotpath import naive
from hotpath import _jit, varint

INT64 = st.integers(-(2**63), 2**63 - 1)
UINT32 = st.integers(0, 2**32 - 1)


@pytest.mark.parametrize(
    "n,encoded",
    [(0, b"\x00"), (-1, b"\x01"), (1, b"\x02"), (-64, b"\x7f"), (64, b"\x80\x01"), (300, b"\xd8\x04"),
     (2**31 - 1, b"\xfe\xff\xff\xff\x0f"), (-(2**31), b"\xff\xff\xff\xff\x0f"),
     (2**63 - 1, b"\xfe" + b"\xff" * 8 + b"\x01"), (-(2**63), b"\xff" * 9 + b"\x01")],
)
def test_pinned_zigzag(n, encoded):
    assert hotpath.encode_varint(n) == encoded
    assert hotpath.decode_varint(encoded, 0) == (n, len(encoded))


@pytest.mark.parametrize("n,encoded", [(0, b"\x00"), (127, b"\x7f"), (128, b"\x80\x01"), (300, b"\xac\x02"),
                                       (2**32 - 1, b"\xff\xff\xff\xff\x0f")])
def test_pinned_unsigned(n, encoded):
    assert hotpath.encode_uvarint(n) == encoded
    assert hotpath.decode_uvarint(encoded, 0) == (n, len(encoded))


@settings(max_examples=200, deadline=None)
@given(INT64, st.binary(max_size=3))
def test_zigzag_round_trip(n, prefix):
    encoded = hotpath.encode_varint(n)
    assert encoded == naive.encode_varint(n)
    buf = prefix + encoded + b"\x7f"
    assert hotpath.decode_varint(buf, len(prefix)) == (n, len(prefix) + len(encoded))


@settings(max_examples=100, deadline=None)
@given(UINT32)
def test_unsigned_round_trip(n):
    encoded = hotpath.encode_uvarint(n)
    assert encoded == naive.encode_uvarint(n)
    assert hotpath.decode_uvarint(bytearray(encoded)) == (n, len(encoded))


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=12), st.sampled_from([5, 10]))
def test_decoders_agree_with_twin_on_any_bytes(data, width):
    decode = hotpath.decode_uvarint if width == 5 else hotpath.decode_varint
    try:
        expected = naive.decode_uvarint(data, 0, width)
    except ValueError:
        with pytest.raises(ValueError):
            decode(data, 0)
        return
    value, pos = decode(data, 0)
    assert pos == expected[1]
    assert value == (expected[0] if width == 5 else naive.unzigzag(expected[0]))


@pytest.mark.parametrize("bad", [b"", b"\x80", b"\xff\xff\xff\xff\x10", b"\x80" * 5 + b"\x00"])
def test_uvarint_malformed(bad):
    with pytest.raises(ValueError):
        hotpath.decode_uvarint(bad, 0)


@pytest.mark.parametrize("bad", [b"\x80" * 10 + b"\x00", b"\xff" * 9 + b"\x02", b"\xff" * 3])
def test_varlong_malformed(bad):
    with pytest.raises(ValueError):
        hotpath.decode_varint(bad, 0)


@pytest.mark.parametrize("n", [-1, 2**32, 2**40])
def test_uvarint_encode_range(n):
    with pytest.raises(ValueError):
        hotpath.encode_uvarint(n)


@pytest.mark.parametrize("n", [2**63, -(2**63) - 1])
def test_varint_encode_range(n):
    with pytest.raises(ValueError):
        hotpath.encode_varint(n)


@pytest.fixture(scope="module")
def helper_kernels():
    if not _jit.NO_JIT:
        _jit.ensure(varint._read_uvarint_kernel)
        _jit.ensure(varint._write_zigzag_kernel)
    return varint._read_uvarint_kernel, varint._write_zigzag_kernel


@settings(max_examples=150, deadline=None)
@given(INT64)
def test_kernel_writer_matches_twin(helper_kernels, n):
    _, write = helper_kernels
    out = np.zeros(12, np.uint8)
    end = write(out, 1, n)
    assert bytes(out[1:end]) == naive.encode_varint(n)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=12), st.sampled_from([5, 10]), st.integers(0, 12))
def test_kernel_reader_matches_twin(helper_kernels, data, width, end):
    read, _ = helper_kernels
    end = min(end, len(data))
    value, pos = read(np.frombuffer(data, np.uint8), 0, end, width)
    try:
        expected, expected_pos = naive.decode_uvarint(data[:end], 0, width)
    except ValueError:
        assert pos < 0
        return
    assert pos == expected_pos
    assert int(value) % 2**64 == expected
