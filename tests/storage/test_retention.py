import os

from .storage_helpers import batch, read_all, segment_files, small_config

DAY = 24 * 3600 * 1000


def fill(log, n, ts_of=lambda i: 1_000 + i, records=2):
    for i in range(n):
        log.append(batch(records, value_size=100, ts=ts_of(i), tag=i))


def test_retention_by_time_deletes_old_closed_segments(open_log, part_dir):
    log = open_log(small_config(segment_bytes=1500, retention_ms=DAY))
    fill(log, 30, ts_of=lambda i: 1_000 if i < 15 else 10 * DAY)
    segs_before = len(log.segments)
    deleted = log.enforce_retention(now_ms=2 * DAY)
    assert deleted >= 1 and len(log.segments) == segs_before - deleted
    assert log.log_start_offset == log.segments[0].base_offset > 0
    first = read_all(log)[0][0]
    assert first == log.log_start_offset
    assert all(seg.max_timestamp >= 10 * DAY or seg is log.segments[0] for seg in log.segments)
    assert log.enforce_retention(now_ms=2 * DAY) == 0  # idempotent


def test_retention_by_time_rolls_an_expired_active_segment(open_log, part_dir):
    log = open_log(small_config(retention_ms=DAY))
    fill(log, 3)
    assert log.enforce_retention(now_ms=5 * DAY) == 1
    assert log.log_start_offset == log.log_end_offset == 6
    assert read_all(log) == [] and log.append(batch(1)).base_offset == 6


def test_retention_by_bytes(open_log, part_dir):
    log = open_log(small_config(segment_bytes=1500, retention_bytes=3000))
    fill(log, 40)
    log.enforce_retention(now_ms=0)
    assert log.size_bytes <= 3000 + 1500
    assert sum(s.size for s in log.segments[1:]) < 3000  # deleting one more would go below the limit
    assert read_all(log)[-1][0] == 78


def test_retention_never_passes_the_high_watermark(open_log):
    log = open_log(small_config(segment_bytes=1500, retention_ms=DAY))
    fill(log, 30)
    log.high_watermark = 3
    assert log.enforce_retention(now_ms=10 * DAY) == 0
    log.high_watermark = None
    assert log.enforce_retention(now_ms=10 * DAY) > 0


def test_retention_minus_one_keeps_everything(open_log):
    log = open_log(small_config(segment_bytes=1500, retention_ms=-1, retention_bytes=-1))
    fill(log, 30)
    assert log.enforce_retention(now_ms=10**15) == 0


def test_deleted_files_linger_for_file_delete_delay(open_log, part_dir):
    log = open_log(small_config(segment_bytes=1500, retention_ms=DAY, file_delete_delay_ms=60_000))
    fill(log, 30)
    n = log.enforce_retention(now_ms=10 * DAY)
    assert n > 0
    deleted = [f for f in os.listdir(part_dir) if f.endswith(".deleted")]
    assert len(deleted) == 3 * n
    log.enforce_retention(now_ms=10 * DAY + 59_000)
    assert any(f.endswith(".deleted") for f in os.listdir(part_dir))
    log.enforce_retention(now_ms=10 * DAY + 60_000)
    assert not any(f.endswith(".deleted") for f in os.listdir(part_dir))


def test_delete_records_then_retention_removes_segments_below_log_start(open_log, part_dir):
    log = open_log(small_config(segment_bytes=1500))
    fill(log, 30)
    n_before = len(segment_files(part_dir))
    log.delete_records_before(40)
    assert len(segment_files(part_dir)) < n_before
    assert log.segments[0].base_offset <= 40 < log.segments[0].next_offset or log.segments[0].base_offset == 40
