"""Index search over raw big-endian index bytes against linear-scan twins."""

import struct

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import hotpath
from tests.hotpath import naive


def offset_index(entries, capacity):
    raw = bytearray(8 * capacity)
    for i, (rel, pos) in enumerate(entries):
        struct.pack_into(">ii", raw, 8 * i, rel, pos)
    return np.frombuffer(bytes(raw), np.uint8)


def time_index(entries, capacity):
    raw = bytearray(12 * capacity)
    for i, (ts, rel) in enumerate(entries):
        struct.pack_into(">qi", raw, 12 * i, ts, rel)
    return np.frombuffer(bytes(raw), np.uint8)


@st.composite
def offset_entries(draw):
    rels = sorted(set(draw(st.lists(st.integers(0, 2**31 - 1), max_size=40))))
    return [(rel, 4096 * i) for i, rel in enumerate(rels)]


@st.composite
def time_entries(draw):
    stamps = sorted(draw(st.lists(st.integers(-(2**40), 2**50), max_size=40)))
    return [(ts, i + 1) for i, ts in enumerate(stamps)]


@settings(max_examples=100, deadline=None)
@given(offset_entries(), st.integers(-5, 2**31 + 5), st.integers(0, 10))
def test_offset_lookup_matches_twin(entries, target, spare):
    buf = offset_index(entries, len(entries) + spare)
    assert hotpath.offset_index_lookup(buf, len(entries), target) == naive.offset_index_lookup(entries, target)
    for rel, _ in entries[:5]:
        assert hotpath.offset_index_lookup(buf, len(entries), rel) == naive.offset_index_lookup(entries, rel)


@settings(max_examples=100, deadline=None)
@given(time_entries(), st.integers(-(2**41), 2**51), st.integers(0, 10))
def test_time_lookup_matches_twin(entries, target, spare):
    buf = time_index(entries, len(entries) + spare)
    assert hotpath.time_index_lookup(buf, len(entries), target) == naive.time_index_lookup(entries, target)
    for ts, _ in entries[:5]:
        assert hotpath.time_index_lookup(buf, len(entries), ts) == naive.time_index_lookup(entries, ts)


@settings(max_examples=100, deadline=None)
@given(offset_entries(), st.integers(0, 50), st.integers(0, 60))
def test_valid_entries_offset_index_matches_twin(entries, spare, max_entries):
    raw = offset_index(entries, len(entries) + spare)
    expected = naive.index_valid_entries(raw.tobytes(), 8, max_entries)
    assert hotpath.index_valid_entries(raw, 8, max_entries) == expected
    if entries and spare and max_entries >= len(entries) + spare:
        assert expected == max(len(entries), 1)


@settings(max_examples=60, deadline=None)
@given(time_entries(), st.integers(0, 50))
def test_valid_entries_time_index_matches_twin(entries, spare):
    raw = time_index(entries, len(entries) + spare)
    n = len(entries) + spare
    assert hotpath.index_valid_entries(raw, 12, n) == naive.index_valid_entries(raw.tobytes(), 12, n)


def test_valid_entries_keeps_a_zero_first_entry():
    raw = offset_index([(0, 0), (5, 4096), (9, 8192)], 1000)
    assert hotpath.index_valid_entries(raw, 8, 1000) == 3
    assert hotpath.index_valid_entries(offset_index([], 1000), 8, 1000) == 1
    assert hotpath.index_valid_entries(raw, 8, 0) == 0


def test_mmap_view(tmp_path):
    import mmap

    path = tmp_path / "00000000000000000000.index"
    path.write_bytes(offset_index([(3, 0), (10, 5000), (20, 9000)], 1024).tobytes())
    with open(path, "r+b") as f, mmap.mmap(f.fileno(), 0) as m:
        view = np.frombuffer(m, np.uint8)
        n = hotpath.index_valid_entries(view, 8, len(view) // 8)
        assert n == 3
        assert [hotpath.offset_index_lookup(view, n, t) for t in (2, 3, 15, 99)] == [-1, 0, 1, 2]
        del view


@pytest.mark.parametrize("call", [
    lambda: hotpath.offset_index_lookup(np.zeros(16, np.uint8), 3, 0),
    lambda: hotpath.time_index_lookup(np.zeros(24, np.uint8), 3, 0),
    lambda: hotpath.offset_index_lookup(np.zeros(16, np.uint8), -1, 0),
    lambda: hotpath.index_valid_entries(np.zeros(16, np.uint8), 0, 2),
    lambda: hotpath.index_valid_entries(np.zeros(16, np.uint8), 8, -1),
])
def test_out_of_range_arguments_raise(call):
    with pytest.raises(ValueError):
        call()
