"""CRC-32C: pinned vectors, the C `crc32c` package, the bitwise twin, every buffer type and offset."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import hotpath
from tests.hotpath import naive
from hotpath import _jit, crc

c_crc32c = pytest.importorskip("crc32c").crc32c

PINNED = [
    (b"", 0x00000000),
    (b"a", 0xC1D04330),
    (b"123456789", 0xE3069283),
    (bytes(32), 0x8A9136AA),
    (b"\xff" * 32, 0x62A8AB43),
    (bytes(range(32)), 0x46DD794E),
]


@pytest.mark.parametrize("data,expected", PINNED)
def test_pinned_vectors(data, expected):
    assert hotpath.crc32c(data) == expected
    assert naive.crc32c(data) == expected


@pytest.mark.parametrize("kind", ["bytes", "bytearray", "memoryview", "writable memoryview", "array", "readonly array",
                                  "uint32 memoryview"])
def test_every_buffer_type(kind):
    raw = np.random.default_rng(7).integers(0, 256, 4099, dtype=np.uint8)
    expected = c_crc32c(raw.tobytes())
    buf = {
        "bytes": raw.tobytes(),
        "bytearray": bytearray(raw.tobytes()),
        "memoryview": memoryview(raw.tobytes()),
        "writable memoryview": memoryview(bytearray(raw.tobytes()))[:],
        "array": raw,
        "readonly array": np.frombuffer(raw.tobytes(), np.uint8),
        "uint32 memoryview": memoryview(raw[:4096].copy().view(np.uint32)),
    }[kind]
    if kind == "uint32 memoryview":
        expected = c_crc32c(raw[:4096].tobytes())
    assert hotpath.crc32c(buf) == expected


def test_sizes_around_every_block_boundary():
    raw = np.random.default_rng(1).integers(0, 256, 3 * 8192 * 2 + 64, dtype=np.uint8)
    sizes = {0, 1, 7, 8, 9, 63, 64, 65}
    for block in (64, 128, 256, 512, 1024, 2048, 4096, 8192):
        sizes |= {3 * block - 1, 3 * block, 3 * block + 1, 3 * block + 8, 6 * block - 1}
    for n in sorted(s for s in sizes if s <= len(raw)):
        assert hotpath.crc32c(raw[:n]) == c_crc32c(raw[:n].tobytes()), n


def test_unaligned_views():
    raw = np.random.default_rng(2).integers(0, 256, 10_000, dtype=np.uint8)
    for lo in range(9):
        view = raw[lo : lo + 5000]
        assert hotpath.crc32c(view) == c_crc32c(view.tobytes())
        assert hotpath.crc32c(memoryview(raw.tobytes())[lo:]) == c_crc32c(raw[lo:].tobytes())


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=3000), st.integers(0, 3000))
def test_matches_c_package_and_chains(data, cut):
    cut = min(cut, len(data))
    expected = c_crc32c(data)
    assert hotpath.crc32c(data) == expected
    assert hotpath.crc32c(data[cut:], hotpath.crc32c(data[:cut])) == expected


@settings(max_examples=30, deadline=None)
@given(st.binary(max_size=200), st.integers(0, 2**32 - 1))
def test_matches_bitwise_twin(data, seed):
    assert hotpath.crc32c(data, seed) == naive.crc32c(data, seed)


@pytest.mark.skipif(_jit.NO_JIT, reason="compares the two compiled kernels")
def test_portable_and_hardware_kernels_agree():
    _jit.ensure(crc._crc_sw)
    raw = np.random.default_rng(3).integers(0, 256, 70_001, dtype=np.uint8)
    for n in (0, 5, 8, 100, 767, 768, 4096, 70_001):
        expected = c_crc32c(raw[:n].tobytes())
        assert crc._crc_sw(raw[:n], 0) == expected
        if crc.HAS_SSE42:
            assert crc._crc_hw(raw[:n], 0) == expected


def test_shift_tables_shift_by_their_block_size():
    tables = crc.shift_tables()
    for k, shift in enumerate(crc._BLOCK_SHIFTS):
        block = 1 << shift
        raw = 0x12345678  # raw register value; advancing over zero bytes is the table's job
        expected = naive.crc32c(bytes(block), raw ^ 0xFFFFFFFF) ^ 0xFFFFFFFF
        got = 0
        for byte in range(4):
            got ^= int(tables[4 * k + byte, (raw >> (8 * byte)) & 0xFF])
        assert got == expected, block


@pytest.mark.parametrize("bad", [np.zeros(4, np.int64), np.zeros((2, 2), np.uint8), "text", 3, None])
def test_rejects_non_byte_buffers(bad):
    with pytest.raises(TypeError):
        hotpath.crc32c(bad)


def test_rejects_non_contiguous_arrays():
    with pytest.raises(ValueError):
        hotpath.crc32c(np.zeros(10, np.uint8)[::2])


@pytest.mark.parametrize("seed", [-1, 2**32, 2**70])
def test_rejects_out_of_range_seed(seed):
    for buf in (b"abc", np.zeros(3, np.uint8)):
        with pytest.raises(ValueError):
            hotpath.crc32c(buf, seed)
