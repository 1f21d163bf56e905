import os
import random

import pytest

from broker.log import PartitionLog
from .storage_helpers import batch, evict, read_all, resident_pages, segment_files, small_config


def build(open_log, n=30, config=None):
    log = open_log(config or small_config(segment_bytes=4000))
    for i in range(n):
        log.append(batch(1 + i % 3, value_size=60, ts=1000 + i, tag=i))
    return log, read_all(log)


def active_path(part_dir):
    return os.path.join(part_dir, segment_files(part_dir)[-1])


def test_unclean_reopen_keeps_everything_acknowledged(open_log):
    log, expect = build(open_log)
    leo = log.log_end_offset
    log.close(clean=False)  # what kill -9 leaves: data in the page cache, no marker, untrimmed segment
    again = open_log(small_config(segment_bytes=4000), recover=True)
    assert again.log_end_offset == leo and read_all(again) == expect
    assert again.load_report.torn_segments == []


@pytest.mark.parametrize("seed", range(6))
def test_truncated_active_segment_at_random_byte(open_log, part_dir, seed):
    log, expect = build(open_log)
    active_base = log.active_segment.base_offset
    log.close()  # trimmed: file size == data size
    path = active_path(part_dir)
    size = os.path.getsize(path)
    cut = random.Random(seed).randrange(0, size)
    os.truncate(path, cut)
    again = open_log(small_config(segment_bytes=4000), recover=True)
    got = read_all(again)
    assert got == expect[: len(got)]  # a prefix survives
    kept_in_active = [b for b in got if b[0] >= active_base]
    assert sum(len(b[1]) + 16 for b in kept_in_active) <= cut  # only batches wholly before the cut
    nxt = again.append(batch(1, tag=200)).base_offset
    assert nxt == again.log_end_offset - 1
    assert read_all(again)[-1][0] == nxt


def test_garbage_after_the_end_is_cut(open_log, part_dir):
    log, expect = build(open_log)
    log.close()
    path = active_path(part_dir)
    with open(path, "ab") as f:
        f.write(os.urandom(3000))
    again = open_log(small_config(segment_bytes=4000), recover=True)
    assert read_all(again) == expect
    assert again.load_report.torn_segments == [again.active_segment.base_offset]
    again.append(batch(2, tag=77))
    again.close(clean=False)
    third = open_log(small_config(segment_bytes=4000), recover=True)
    assert [b for b, _ in read_all(third)] == [b for b, _ in expect] + [expect[-1][0] + 3]


def test_corrupt_byte_in_a_middle_segment_drops_later_segments(open_log, part_dir):
    log, expect = build(open_log, n=60)
    log.close(clean=False)
    files = segment_files(part_dir)
    assert len(files) >= 3
    victim = os.path.join(part_dir, files[1])
    with open(victim, "r+b") as f:
        f.seek(100)
        byte = f.read(1)
        f.seek(100)
        f.write(bytes([byte[0] ^ 0xFF]))
    # recovery point 0: everything is re-validated
    again = open_log(small_config(segment_bytes=4000), recover=True)
    got = read_all(again)
    assert got == expect[: len(got)] and len(got) < len(expect)
    assert len(segment_files(part_dir)) == 2
    assert again.load_report.dropped_segments


def test_segments_below_recovery_point_are_not_rescanned(open_log, part_dir):
    log, expect = build(open_log, n=60)
    log.flush()
    log._maybe_checkpoint(0, force=True)
    log.append(batch(1, tag=5))
    log.close(clean=False)
    again = open_log(small_config(segment_bytes=4000), recover=True)
    assert again.load_report.recovered_segments == 1
    assert len(read_all(again)) == len(expect) + 1


def test_a_clean_load_reads_a_few_pages_of_each_closed_segment(open_log, part_dir):
    """A trusted segment's end and first timestamp come from a few pages of it. A map's fault reads ahead
    by the device's read_ahead_kb otherwise (8 MiB on some machines), and a start-up would read most of
    every closed segment from the disk."""
    cfg = small_config(segment_bytes=4 << 20, index_interval_bytes=4096, segment_index_bytes=64 << 10)
    log = open_log(cfg)
    while len(log.segments) < 4:
        log.append(batch(30, value_size=120, ts=1_000))
    end, sizes = log.log_end_offset, [s.size for s in log.segments]
    log.close()
    logs = [os.path.join(part_dir, n) for n in segment_files(part_dir)]
    for path in logs:
        evict(path)
    if any(resident_pages(p) for p in logs):
        pytest.skip("this file system keeps the log's pages in memory (tmpfs): nothing is read from a disk")
    again = open_log(cfg)
    closed = logs[:-1]
    assert len(closed) == 3 and all(os.path.getsize(p) > 3 << 20 for p in closed)
    resident = [resident_pages(p) for p in closed]
    # the first batch's header, and the batches after the last index entry (4 KiB apart): a page or two each
    assert all(0 < n <= 8 for n in resident), resident
    assert again.log_end_offset == end and [s.size for s in again.segments] == sizes


@pytest.mark.parametrize("damage", ["delete", "garbage", "truncate"])
@pytest.mark.parametrize("suffix", [".index", ".timeindex"])
def test_missing_or_corrupt_index_is_rebuilt(open_log, part_dir, damage, suffix):
    cfg = small_config(segment_bytes=4000, index_interval_bytes=64)
    log, expect = build(open_log, n=60, config=cfg)
    entries = {s.base_offset: s.offset_index.all_entries() for s in log.segments[:-1]}
    times = {s.base_offset: s.time_index.all_entries() for s in log.segments[:-1]}
    log.close()
    first = os.path.join(part_dir, segment_files(part_dir, suffix)[0])
    if damage == "delete":
        os.unlink(first)
    elif damage == "garbage":
        with open(first, "r+b") as f:
            f.seek(8)
            f.write(b"\x7f\xff\xff\xff\x7f\xff\xff\xff\x00\x00\x00\x01")
    else:
        os.truncate(first, 5)
    again = open_log(cfg)  # clean shutdown: only the sanity check can notice
    seg0 = again.segments[0]
    assert seg0.offset_index.all_entries() == entries[0]
    assert seg0.time_index.all_entries() == times[0]
    assert read_all(again) == expect
    assert again.offset_for_timestamp(1030)[:2] == (expect[30][0], 1030)  # batch i has timestamp 1000 + i


def test_in_flight_files_are_resolved(open_log, part_dir):
    log, expect = build(open_log, n=60)
    log.close()
    files = segment_files(part_dir)
    stem = os.path.join(part_dir, files[0][:20])
    open(stem + ".log.cleaned", "wb").write(b"junk")
    open(os.path.join(part_dir, "00000000000000099999.log.deleted"), "wb").write(b"junk")
    open(os.path.join(part_dir, "leader-epoch-checkpoint.tmp"), "wb").write(b"junk")
    open(os.path.join(part_dir, "00000000000000088888.index"), "wb").write(b"orphan")
    # a completed swap: the replacement holds the same batches
    with open(stem + ".log", "rb") as f:
        open(stem + ".log.swap", "wb").write(f.read())
    again = open_log(small_config(segment_bytes=4000))
    rep = again.load_report
    assert sorted(rep.removed_files) == sorted(["00000000000000000000.log.cleaned", "00000000000000099999.log.deleted",
                                                "leader-epoch-checkpoint.tmp", "00000000000000088888.index"])
    assert rep.swaps_completed == [files[0]]
    assert read_all(again) == expect
    assert not [f for f in os.listdir(part_dir) if f.endswith((".swap", ".cleaned", ".deleted", ".tmp"))]


def test_clean_shutdown_path_trusts_segments(open_log, part_dir):
    log, expect = build(open_log, n=60)
    log.close()
    again = open_log(small_config(segment_bytes=4000))
    assert again.load_report.recovered_segments == 0 and read_all(again) == expect


def test_empty_directory_starts_at_log_start_checkpoint(open_log, part_dir):
    log, _ = build(open_log, n=20)
    log.delete_records_before(log.log_end_offset)
    leo = log.log_end_offset
    log.close()
    for f in os.listdir(part_dir):
        if f.endswith((".log", ".index", ".timeindex")):
            os.unlink(os.path.join(part_dir, f))
    again = open_log(small_config(segment_bytes=4000))
    assert again.log_start_offset == again.log_end_offset == leo


def test_kill_9_loses_nothing_acknowledged(part_dir):
    """A writer process killed with SIGKILL mid-stream: every offset it acknowledged is there after recovery."""
    import signal

    cfg = small_config(segment_bytes=20_000)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            log = PartitionLog.open(part_dir, cfg)
            i = 0
            while True:
                res = log.append(batch(1 + i % 4, value_size=80, tag=i))
                os.write(w, res.last_offset.to_bytes(8, "big"))
                i += 1
        finally:
            os._exit(1)
    os.close(w)
    acked = -1
    received = b""
    while acked < 3000:
        received += os.read(r, 8192)
        whole = len(received) // 8 * 8
        if whole:
            acked = int.from_bytes(received[whole - 8: whole], "big")
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    while chunk := os.read(r, 8192):
        received += chunk
    os.close(r)
    acked = int.from_bytes(received[len(received) // 8 * 8 - 8: len(received) // 8 * 8], "big")
    log = PartitionLog.open(part_dir, cfg, recover=True)
    try:
        assert log.log_end_offset > acked
        got = read_all(log)
        expected_base = 0
        for base, raw in got:  # every offset from 0 to the log end, in valid batches
            assert base == expected_base
            expected_base += int.from_bytes(raw[57 - 16: 61 - 16], "big")
        assert expected_base == log.log_end_offset
    finally:
        log.close()
