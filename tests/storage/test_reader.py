import multiprocessing as mp

import pytest

import hotpath
from broker.log import LogReader, OffsetOutOfRange, warmup
from broker.log.reader import partition_data_bytes
from .storage_helpers import batch, small_config


def slices_equal(a, b):
    return (a.first_offset, a.length, bytes(a.view())) == (b.first_offset, b.length, bytes(b.view()))


def test_reader_matches_writer(open_log, part_dir):
    log = open_log(small_config(segment_bytes=3000, index_interval_bytes=200))
    for i in range(50):
        log.append(batch(1 + i % 4, value_size=40, tag=i))
    rd = LogReader(part_dir)
    leo = log.log_end_offset
    for offset in range(0, leo):
        for max_bytes in (1, 500, 5000):
            assert slices_equal(rd.read(offset, max_bytes, leo, 0), log.read(offset, max_bytes))
    assert rd.read(leo, 100, leo, 0).length == 0
    with pytest.raises(OffsetOutOfRange):
        rd.read(leo + 1, 100, leo, 0)
    with pytest.raises(OffsetOutOfRange):
        rd.read(3, 100, leo, 5)
    rd.close()


def test_data_bytes_are_the_writer_s_batches_in_sealed_and_active_segments(open_log, part_dir):
    """Sealed segments count whole; the active one, extended past its batches, up to its last batch."""
    import glob
    import os

    log = open_log(small_config(segment_bytes=3000, index_interval_bytes=200))
    assert partition_data_bytes(part_dir) == 0
    for i in range(60):
        log.append(batch(1 + i % 4, value_size=40 + 7 * (i % 5), tag=i))
        assert partition_data_bytes(part_dir) == log.size_bytes, i
    files = sorted(glob.glob(os.path.join(part_dir, "*.log")))
    assert len(files) > 3
    assert os.path.getsize(files[-1]) > log.size_bytes - sum(os.path.getsize(f) for f in files[:-1])


def test_reader_never_returns_unpublished_offsets(open_log, part_dir):
    log = open_log()
    for i in range(10):
        log.append(batch(2, tag=i))
    rd = LogReader(part_dir)
    sl = rd.read(0, 1 << 20, visible_end_offset=7, log_start_offset=0)
    res = hotpath.scan_batches(sl.view())
    assert res.error == hotpath.ScanError.OK
    assert int(res.base_offset[-1] + res.last_offset_delta[-1]) < 7
    assert rd.read(6, 1 << 20, visible_end_offset=7, log_start_offset=0).length == 0  # batch 6-7 straddles
    rd.close()


def test_reader_discovers_rolled_and_deleted_segments(open_log, part_dir):
    cfg = small_config(segment_bytes=1500, retention_ms=1000)
    log = open_log(cfg)
    log.append(batch(2, ts=1))
    rd = LogReader(part_dir)
    assert rd.read(0, 100, log.log_end_offset, 0).first_offset == 0
    relists = rd.relists
    for i in range(30):
        log.append(batch(2, value_size=100, ts=1 if i < 20 else 10**12, tag=i))
    leo = log.log_end_offset
    assert rd.read(leo - 2, 100, leo, 0).first_offset == leo - 2  # in a segment created after the reader
    assert rd.relists == relists + 1
    assert rd.read(2, 100, leo, 0).first_offset == 2  # no re-listing for known segments
    assert rd.relists == relists + 1
    log.enforce_retention(now_ms=10**12)
    start = log.log_start_offset
    assert start > 0
    sl = rd.read(start, 100, leo, start)
    assert sl.first_offset == start and slices_equal(sl, log.read(start, 100))
    rd.close()


def _reader_process(part_dir, shared_end, stop, failures):
    rd = LogReader(part_dir)
    checked = 0
    try:
        while not stop.is_set() or checked == 0:
            end = shared_end.value
            if end == 0:
                continue
            offset = checked % end
            sl = rd.read(offset, 4096, end, 0)
            res = hotpath.scan_batches(sl.view())
            last = int(res.base_offset[-1] + res.last_offset_delta[-1]) if res.count else -1
            if res.error != hotpath.ScanError.OK or res.count == 0 or not res.base_offset[0] <= offset <= last \
                    or last >= end:
                failures.value += 1
            checked += 1
    finally:
        rd.close()


def test_reader_in_another_process_while_writer_appends_and_rolls(open_log, part_dir):
    """The real deployment: a network worker process reads while the writer appends, rolls and publishes."""
    log = open_log(small_config(segment_bytes=8000, index_interval_bytes=300))
    warmup()  # compiled before the fork, so the reader starts at once
    hotpath.warmup()
    ctx = mp.get_context("fork")
    shared_end, stop, failures = ctx.Value("q", 0), ctx.Event(), ctx.Value("i", 0)
    proc = ctx.Process(target=_reader_process, args=(part_dir, shared_end, stop, failures))
    proc.start()
    try:
        for i in range(1500):
            log.append(batch(1 + i % 5, value_size=30 + i % 50, tag=i))
            shared_end.value = log.log_end_offset  # publish after the bytes are in place
    finally:
        stop.set()
        proc.join(60)
    assert proc.exitcode == 0
    assert failures.value == 0
    assert len(log.segments) > 10
