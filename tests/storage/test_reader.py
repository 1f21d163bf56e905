import multiprocessing as mp

import pytest

import hotpath
from broker.log import LogReader, OffsetOutOfRange, warmup
from broker.log.reader import partition_data_bytes
from .storage_helpers import batch, descriptors_under, small_config


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


def test_a_reader_keeps_only_the_closed_segments_it_read_last_open(open_log, part_dir):
    """A consumer going through a partition's history: its reader reports each closed segment it opens,
    and `close_idle` between reads leaves the last few open; what it closed reads again the same."""
    log = open_log(small_config(segment_bytes=3000, index_interval_bytes=200))
    for i in range(300):
        log.append(batch(2, value_size=60, tag=i))
    log.flush()  # waits for the rolls' background flushes, which hold descriptors while they run
    closed = len(log.segments) - 1
    assert closed >= 10
    leo = log.log_end_offset

    def descriptors() -> int:
        return len(descriptors_under(part_dir))

    before = descriptors()
    opened = []
    rd = LogReader(part_dir, opened.append)
    first_pass = []
    offset = 0
    while offset < leo:
        sl = rd.read(offset, 1, leo, 0)
        first_pass.append((sl.first_offset, bytes(sl.view())))
        offset = _next_offset(sl)
        rd.close_idle(2)
        assert descriptors() - before <= 4 * 3  # two closed segments and the active one, 4 each
    assert len(opened) == closed
    offset, second_pass = 0, []
    while offset < leo:  # every closed segment opens again, but the two left open
        sl = rd.read(offset, 1, leo, 0)
        second_pass.append((sl.first_offset, bytes(sl.view())))
        offset = _next_offset(sl)
    assert second_pass == first_pass and len(opened) == 2 * closed - 2
    assert descriptors() - before == 4 * (closed + 1)  # nothing closes them without close_idle
    rd.close()
    assert descriptors() == before


def _next_offset(sl) -> int:
    """One past the last offset of the first batch in a slice (base offset + last offset delta)."""
    import struct

    base, _, _, _, _, _, delta = struct.unpack_from(">qiibihi", sl.view())
    return base + delta + 1


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


# A roll trims the active segment's files (sized ahead of the writer) to their batches. A reader that took
# the sizes from the files just before, and walks after, must stay within what the owner published: the
# data here end on a page boundary, so the header peek at their end lies past the trimmed file, and the
# offset index is preallocated far past its few entries, so an index search over the stale size probes past
# its end. Past the end of a file, a mapped read is SIGBUS: run in a child so that shows as its exit status.
_ROLL_BETWEEN_SIZE_AND_WALK = """
import sys
import hotpath
from broker.log import LogConfig, LogReader, PartitionLog
from broker.log import reader as reader_module

part_dir, bounded = sys.argv[1], sys.argv[2] == "bounded"
log = PartitionLog.open(part_dir, LogConfig(segment_bytes=64 << 10, segment_index_bytes=64 << 10,
                                            index_interval_bytes=256, retention_ms=-1), recover=False)

def sized(n):
    for v in range(max(0, n - 100), n):
        b = hotpath.build_records_batch([(None, b"v" * v)])
        if len(b) == n:
            return b

while log.size_bytes < 3 * 4096 or log.size_bytes % 4096:
    need = -log.size_bytes % 4096
    log.append((sized(need) if 200 <= need < 3000 else None) or hotpath.build_records_batch([(None, b"v" * 1500)]))
leo, tail = log.log_end_offset, log.tail
assert tail[1] % 4096 == 0 and 0 < tail[2] < 64, tail
expected = log.read(0, 1 << 20)
expected = (expected.position, expected.length)
rd = LogReader(part_dir)
assert rd.read(0, 1 << 20, leo, 0).length  # an earlier fetch mapped both files at their full sizes
real_sizes = reader_module._ReadSegment.sizes

def sizes_then_roll(seg):
    out = real_sizes(seg)
    log.active_segment.close_active()  # the owner rolls between the reader's sizes and its walk
    return out

reader_module._ReadSegment.sizes = sizes_then_roll
got = rd.read(0, 1 << 20, leo, 0, tail=tail if bounded else None)
print((got.position, got.length) == expected, got.length)
"""


def test_a_roll_between_a_reader_s_sizes_and_its_walk_is_not_read_past(tmp_path):
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-c", _ROLL_BETWEEN_SIZE_AND_WALK, str(tmp_path / "t-0"), "bounded"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, (r.returncode, r.stderr[-2000:])
    ok, length = r.stdout.split()
    assert ok == "True" and int(length) >= 3 * 4096


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
