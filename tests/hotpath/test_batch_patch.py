"""In-place header patches: offsets and leader epoch (no CRC change), LogAppendTime (CRC recomputed)."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import hotpath
from tests.hotpath import naive


def batches(*counts):
    return b"".join(
        hotpath.build_records_batch([(None, b"v%d" % i) for i in range(n)], timestamps=10 * n) for n in counts
    )


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, 5), min_size=1, max_size=5), st.integers(0, 2**62), st.integers(-1, 2**31 - 1))
def test_assign_offsets_matches_twin(counts, first, epoch):
    raw = batches(*counts)
    buf = bytearray(raw)
    res = hotpath.scan_batches(buf)
    nxt = hotpath.assign_offsets(buf, res, first, epoch)
    assert nxt == first + sum(counts)
    expected = raw
    offset = first
    for pos, n in zip(res.pos.tolist(), counts):
        expected = naive.patch(expected, pos, offset, epoch)
        offset += n
    assert bytes(buf) == expected
    after = hotpath.scan_batches(buf, deep=True)  # CRCs untouched and still valid
    assert after.ok and after.leader_epoch.tolist() == [epoch] * len(counts)


def test_assign_offsets_on_numpy_view_of_a_larger_buffer():
    raw = batches(2, 3)
    ring = np.zeros(len(raw) + 100, np.uint8)
    ring[50 : 50 + len(raw)] = np.frombuffer(raw, np.uint8)
    res = hotpath.scan_batches(ring, start=50, end=50 + len(raw))
    assert hotpath.assign_offsets(ring, res, 1000, 3) == 1005
    assert hotpath.scan_batches(ring, start=50, end=50 + len(raw)).base_offset.tolist() == [1000, 1002]
    assert not ring[:50].any() and not ring[50 + len(raw) :].any()


def test_patch_batch_matches_twin():
    raw = batches(3, 1)
    second = len(batches(3))
    buf = bytearray(raw)
    hotpath.patch_batch(buf, second, 2**40, 17)
    assert bytes(buf) == naive.patch(raw, second, 2**40, 17)


@settings(max_examples=30, deadline=None)
@given(st.integers(-(2**63), 2**63 - 1), st.sampled_from([0, 0x10]))
def test_set_log_append_time_matches_twin(ts, attributes):
    raw = hotpath.build_records_batch([(b"k", b"v"), (None, b"w")], timestamps=5, attributes=attributes)
    buf = np.frombuffer(raw, np.uint8).copy()
    hotpath.set_log_append_time(buf, 0, len(raw), ts)
    assert buf.tobytes() == naive.set_log_append_time(raw, 0, len(raw), ts)
    res = hotpath.scan_batches(buf, deep=True)
    assert res.ok and res.max_timestamp[0] == ts
    assert res.attributes[0] & hotpath.TIMESTAMP_TYPE_BIT
    assert res.attributes[0] & hotpath.TRANSACTIONAL_BIT == attributes


def test_read_only_buffers_are_refused():
    raw = batches(1)
    res = hotpath.scan_batches(raw)
    with pytest.raises(TypeError):
        hotpath.assign_offsets(raw, res, 0, 0)
    with pytest.raises(TypeError):
        hotpath.patch_batch(np.frombuffer(raw, np.uint8), 0, 0, 0)
    with pytest.raises(TypeError):
        hotpath.set_log_append_time(memoryview(raw), 0, len(raw), 0)


@pytest.mark.parametrize("pos", [-1, 1, 10**6])
def test_patch_out_of_bounds_raises(pos):
    buf = bytearray(batches(1))
    before = bytes(buf)
    with pytest.raises(ValueError):
        hotpath.patch_batch(buf, pos, 0, 0)
    with pytest.raises(ValueError):
        hotpath.set_log_append_time(buf, pos, 61, 0)
    assert bytes(buf) == before


def test_set_log_append_time_size_checked():
    buf = bytearray(batches(1))
    with pytest.raises(ValueError):
        hotpath.set_log_append_time(buf, 0, len(buf) + 1, 0)
    with pytest.raises(ValueError):
        hotpath.set_log_append_time(buf, 0, 60, 0)


def test_assign_offsets_refuses_a_result_of_another_buffer():
    long = bytearray(batches(1, 1, 1))
    short = bytearray(batches(1))
    res = hotpath.scan_batches(long)
    with pytest.raises(ValueError):
        hotpath.assign_offsets(short, res, 0, 0)
    assert bytes(short) == batches(1)


@pytest.mark.parametrize("kwargs", [dict(first_offset=2**63), dict(leader_epoch=2**31)])
def test_assign_offsets_range_checked(kwargs):
    buf = bytearray(batches(1))
    args = dict(first_offset=0, leader_epoch=0) | kwargs
    with pytest.raises(ValueError):
        hotpath.assign_offsets(buf, hotpath.scan_batches(buf), **args)
