import os

import numpy as np
import pytest

import hotpath
from broker.log import (CorruptRecord, InvalidRecord, OffsetOutOfRange, PartitionLog, RecordTooLarge,
                        StorageError)
from tests.compressed import compressed_batch

from .storage_helpers import batch, descriptors_under, flusher_held, read_all, segment_files, small_config


def test_append_assigns_consecutive_offsets(open_log):
    log = open_log()
    r1 = log.append(batch(3), now_ms=10)
    r2 = log.append(batch(2), now_ms=11)
    assert (r1.base_offset, r1.last_offset, r1.record_count, r1.batch_count) == (0, 2, 3, 1)
    assert (r2.base_offset, r2.last_offset) == (3, 4)
    assert r1.log_append_time == -1
    assert log.log_end_offset == log.high_watermark == 5 and log.log_start_offset == 0
    assert [b for b, _ in read_all(log)] == [0, 3]


def test_caller_buffer_is_not_modified(open_log):
    log = open_log()
    raw = bytearray(batch(2))
    before = bytes(raw)
    log.append(raw)
    log.append(raw)
    assert bytes(raw) == before
    sl = log.read(2, 10_000)
    assert sl.first_offset == 2 and bytes(sl.view()[16:]) == before[16:]
    assert int.from_bytes(sl.view()[:8], "big") == 2


def test_multi_batch_append_and_numpy_input(open_log):
    log = open_log()
    data = np.frombuffer(batch(2, tag=1) + batch(4, tag=2) + batch(1, tag=3), np.uint8)
    r = log.append(data, leader_epoch=7)
    assert (r.base_offset, r.last_offset, r.batch_count, r.record_count) == (0, 6, 3, 7)
    res = hotpath.scan_batches(log.read(0, 1 << 20).view())
    assert list(res.base_offset) == [0, 2, 6] and list(res.leader_epoch) == [7, 7, 7]
    assert log.leader_epoch_cache.entries == [(7, 0)]


def test_an_append_of_many_batches_is_stamped_whole_even_when_writes_are_short(open_log, monkeypatch):
    """More batches than one pwritev carries, with the kernel taking a few bytes at a time."""
    batches = [batch(1 + i % 3, value_size=7, tag=i) for i in range(600)]
    real = os.pwritev
    calls = []

    def short(fd, buffers, offset):
        calls.append(len(buffers))
        first = bytes(memoryview(buffers[0]).cast("B"))[:37]    # at most 37 bytes per call
        return real(fd, [first], offset)

    monkeypatch.setattr(os, "pwritev", short)
    log = open_log(small_config(segment_bytes=1 << 20))
    log.append(batches[0], leader_epoch=3)
    r = log.append(b"".join(batches[1:]), leader_epoch=4)
    assert r.batch_count == 599 and max(calls) <= 2 * 256 and len(calls) > 600
    monkeypatch.setattr(os, "pwritev", real)
    got = read_all(log)
    expected, offset = [], 0
    for b in batches:
        expected.append((offset, b[16:]))
        offset += int.from_bytes(b[23:27], "big") + 1
    assert got == expected
    res = hotpath.scan_batches(log.read(0, 1 << 20).view())
    assert res.error == hotpath.ScanError.OK and res.count == 600
    assert list(res.leader_epoch) == [3] + [4] * 599


def test_read_returns_batch_containing_offset_and_respects_limits(open_log):
    log = open_log(small_config(index_interval_bytes=0))
    for i in range(10):
        log.append(batch(5, value_size=100, tag=i))
    size = len(batch(5, value_size=100))
    sl = log.read(12, 1)  # inside the third batch; smaller than one batch: still one whole batch
    assert sl.first_offset == 10 and sl.length == size
    sl = log.read(12, 3 * size)
    assert sl.first_offset == 10 and sl.length == 3 * size
    sl = log.read(12, 3 * size - 1)
    assert sl.length == 2 * size
    sl = log.read(0, 1 << 20, max_offset=20)
    assert sl.length == 4 * size  # batches reaching offset 20 are excluded
    assert log.read(50, 100).length == 0  # at the log end: empty
    with pytest.raises(OffsetOutOfRange) as e:
        log.read(51, 100)
    assert e.value.error_code == 1
    with pytest.raises(OffsetOutOfRange):
        log.read(-1, 100)


def test_high_watermark_bounds_reads(open_log):
    log = open_log()
    for _ in range(4):
        log.append(batch(2))
    log.high_watermark = 4
    assert log.high_watermark == 4
    assert log.read(4, 1 << 20).length == 0
    assert [b for b, _ in read_all(log)] == [0, 2]
    assert log.read(4, 1 << 20, max_offset=log.log_end_offset).first_offset == 4  # follower fetch up to LEO
    log.high_watermark = 100
    assert log.high_watermark == 8  # clamped to the log end
    log.high_watermark = None
    log.append(batch(1))
    assert log.high_watermark == 9


def test_sendfile_and_fd(open_log, tmp_path):
    log = open_log()
    log.append(batch(3, tag=9))
    sl = log.read(0, 1 << 20)
    out = tmp_path / "out"
    with open(out, "wb") as f:
        sent = sl.sendfile(f.fileno())
    assert sent == sl.length and out.read_bytes() == bytes(sl.view())


@pytest.mark.parametrize("mutate, error", [
    (lambda b: b[:30] + bytes([b[30] ^ 1]) + b[31:], CorruptRecord),  # CRC-covered byte flipped
    (lambda b: b[:-1], InvalidRecord),  # truncated
    (lambda b: b[:16] + b"\x01" + b[17:], InvalidRecord),  # magic 1
    (lambda b: b"", InvalidRecord),
])
def test_invalid_batches_rejected_with_kafka_codes(open_log, mutate, error):
    log = open_log()
    with pytest.raises(error) as e:
        log.append(mutate(batch(3)))
    assert e.value.error_code in (2, 87)
    assert log.log_end_offset == 0 and log.read(0, 100).length == 0


def test_valid_batch_followed_by_garbage_is_rejected_whole(open_log):
    log = open_log()
    with pytest.raises(InvalidRecord):
        log.append(batch(2) + b"\x00" * 20)
    assert log.log_end_offset == 0


def test_record_too_large(open_log):
    log = open_log(small_config(max_message_bytes=500))
    with pytest.raises(RecordTooLarge) as e:
        log.append(batch(10, value_size=100))
    assert e.value.error_code == 10
    log.append(batch(1, value_size=10))
    assert log.log_end_offset == 1


def test_log_append_time_stamps_batches(open_log):
    log = open_log(small_config(message_timestamp_type="LogAppendTime"))
    r = log.append(batch(2, ts=5), now_ms=123_456)
    assert r.log_append_time == 123_456
    res = hotpath.scan_batches(log.read(0, 1 << 20).view())
    assert res.error == hotpath.ScanError.OK  # CRC recomputed
    assert res.max_timestamp[0] == 123_456 and res.attributes[0] & hotpath.TIMESTAMP_TYPE_BIT


def test_roll_on_segment_bytes(open_log, part_dir):
    log = open_log(small_config(segment_bytes=2000))
    for i in range(20):
        log.append(batch(2, value_size=100, tag=i))
    files = segment_files(part_dir)
    assert len(files) >= 3
    for name in files[:-1]:  # closed segments are trimmed to their batches
        assert os.path.getsize(os.path.join(part_dir, name)) <= 2000
    bases = [int(n[:20]) for n in files]
    assert bases == sorted(bases) and bases[0] == 0
    assert [b for b, _ in read_all(log)] == list(range(0, 40, 2))


def test_roll_on_segment_ms(open_log, part_dir):
    log = open_log(small_config(segment_ms=1000), now=0)
    log.append(batch(1), now_ms=0)
    log.append(batch(1), now_ms=900)
    assert len(segment_files(part_dir)) == 1
    log.append(batch(1), now_ms=1001)
    assert segment_files(part_dir)[-1] == "00000000000000000002.log"


def test_roll_on_full_index(open_log, part_dir):
    log = open_log(small_config(index_interval_bytes=0, segment_index_bytes=48))  # 4 time-index slots
    for _ in range(12):
        log.append(batch(1, ts=1000 + _))
    assert len(segment_files(part_dir)) >= 3
    assert [b for b, _ in read_all(log)] == list(range(12))


def test_batch_larger_than_segment_gets_its_own_segment(open_log, part_dir):
    log = open_log(small_config(segment_bytes=1000, max_message_bytes=1 << 20))
    log.append(batch(1))
    log.append(batch(20, value_size=200))
    log.append(batch(1))
    assert [b for b, _ in read_all(log)] == [0, 1, 21]
    assert len(segment_files(part_dir)) == 3


def test_offsets_survive_clean_reopen(open_log, part_dir):
    log = open_log(small_config(segment_bytes=3000))
    for i in range(30):
        log.append(batch(3, ts=1000 + i, tag=i), leader_epoch=i // 10)
    expect = read_all(log)
    log.close()
    again = open_log(small_config(segment_bytes=3000))
    assert again.log_end_offset == 90 and read_all(again) == expect
    assert again.load_report.recovered_segments == 0
    assert again.leader_epoch_cache.entries == [(0, 0), (1, 30), (2, 60)]
    assert again.append(batch(1)).base_offset == 90


def test_offset_for_timestamp(open_log):
    log = open_log(small_config(segment_bytes=1500, index_interval_bytes=100))
    for i in range(40):
        log.append(batch(2, ts=10_000 + 100 * i))
    assert log.offset_for_timestamp(0) == (0, 10_000, 0)
    assert log.offset_for_timestamp(10_000) == (0, 10_000, 0)
    assert log.offset_for_timestamp(10_050) == (2, 10_100, 0)
    assert log.offset_for_timestamp(12_345) == (48, 12_400, 0)
    assert log.offset_for_timestamp(13_900) == (78, 13_900, 0)
    assert log.offset_for_timestamp(13_901) is None
    assert log.max_timestamp() == (13_900, 79)
    log.close()


def _timed_batch(timestamps: list[int], codec: int = 0) -> bytes:
    """One batch whose records carry ``timestamps``; compressed with ``codec`` as a client would."""
    plain = hotpath.build_records_batch([(b"k", b"v%d" % i) for i in range(len(timestamps))],
                                        timestamps=np.array(timestamps, np.int64))
    return compressed_batch(bytes(plain), codec) if codec else plain


@pytest.mark.parametrize("codec", [0, 1, 2, 3, 4], ids=["none", "gzip", "snappy", "lz4", "zstd"])
def test_offset_for_timestamp_is_the_first_record_at_or_after_it(open_log, codec):
    """Kafka answers with a record, not a batch: the first record (from the log start) whose own
    timestamp reaches the target, and that record's timestamp, whether or not the batch is compressed."""
    log = open_log(small_config())
    log.append(_timed_batch([1000, 3000, 2000, 4000], codec))  # offsets 0-3, timestamps out of order
    log.append(_timed_batch([5000, 6000], codec), leader_epoch=3)  # offsets 4-5, written under epoch 3
    assert log.offset_for_timestamp(0) == (0, 1000, 0)
    assert log.offset_for_timestamp(1500) == (1, 3000, 0)
    assert log.offset_for_timestamp(3000) == (1, 3000, 0)
    assert log.offset_for_timestamp(3500) == (3, 4000, 0)
    assert log.offset_for_timestamp(4500) == (4, 5000, 3)
    assert log.offset_for_timestamp(6000) == (5, 6000, 3)
    assert log.offset_for_timestamp(6001) is None
    assert log.offset_for_max_timestamp() == (5, 6000, 3)
    log.delete_records_before(2)  # the log now starts inside the first batch
    assert log.offset_for_timestamp(0) == (2, 2000, 0)
    assert log.offset_for_timestamp(2500) == (3, 4000, 0)
    log.delete_records_before(4)  # past the first batch's qualifying records: the next batch answers
    assert log.offset_for_timestamp(1500) == (4, 5000, 3)
    log.close()


def test_offset_for_timestamp_on_records_that_do_not_decompress(open_log):
    """The broker stores batches as produced (header and CRC checked); one whose compressed records are
    damaged cannot answer by record, and says so."""
    import struct

    import crc32c

    log = open_log(small_config())
    bad = bytearray(_timed_batch([1000, 2000], codec=3))
    bad[61:] = b"\x00" * (len(bad) - 61)
    struct.pack_into(">I", bad, 17, crc32c.crc32c(bytes(bad[21:])))
    log.append(bytes(bad))
    with pytest.raises(CorruptRecord, match="cannot be read"):
        log.offset_for_timestamp(1500)
    log.close()


def test_offset_for_timestamp_with_log_append_time(open_log):
    """A LogAppendTime batch gives every record the time the broker stamped."""
    log = open_log(small_config(message_timestamp_type="LogAppendTime"))
    stamped = log.append(_timed_batch([1, 2, 3]), now_ms=7000).log_append_time
    assert stamped == 7000
    assert log.offset_for_timestamp(0) == (0, 7000, 0)
    assert log.offset_for_timestamp(7000) == (0, 7000, 0)
    assert log.offset_for_timestamp(7001) is None
    log.close()


def test_truncate_to(open_log, part_dir):
    log = open_log(small_config(segment_bytes=1500))
    for i in range(20):
        log.append(batch(3, ts=100 + i, tag=i), leader_epoch=i // 5)
    before = read_all(log)
    log.truncate_to(31)  # mid-batch: the whole batch holding 31 goes
    assert log.log_end_offset == 30
    assert read_all(log) == before[:10]
    assert log.leader_epoch_cache.entries == [(0, 0), (1, 15)]
    assert log.append(batch(1, tag=99), leader_epoch=5).base_offset == 30
    assert all(int(n[:20]) <= 30 for n in segment_files(part_dir))
    log.truncate_to(0)
    assert log.log_end_offset == 0 and read_all(log) == []
    assert log.append(batch(2)).base_offset == 0


def test_truncate_survives_reopen_without_stale_batches(open_log):
    log = open_log()
    for i in range(10):
        log.append(batch(2, tag=i))
    log.truncate_to(6)
    log.close(clean=False)
    again = open_log(recover=True)
    assert again.log_end_offset == 6 and [b for b, _ in read_all(again)] == [0, 2, 4]


def test_delete_records_moves_log_start_and_persists(open_log):
    log = open_log(small_config(segment_bytes=1000))
    for i in range(30):
        log.append(batch(2))
    assert log.delete_records_before(17) == 17
    assert log.log_start_offset == 17
    with pytest.raises(OffsetOutOfRange):
        log.read(16, 100)
    sl = log.read(17, 100)
    assert sl.first_offset == 16  # the whole batch holding the log start
    assert all(seg.base_offset <= 17 for seg in log.segments[:1])
    with pytest.raises(OffsetOutOfRange):
        log.delete_records_before(61)
    log.close()
    again = open_log(small_config(segment_bytes=1000))
    assert again.log_start_offset == 17
    assert again.delete_records_before(-1) == 60  # -1 means the high watermark


def test_durable_mode_flushes_every_append(open_log, part_dir):
    log = open_log(small_config(flush_interval_messages=1))
    log.append(batch(2))
    assert log.recovery_point == 2
    log.append(batch(1))
    assert log.recovery_point == 3


def test_default_policy_leaves_flushing_to_the_os(open_log, part_dir):
    log = open_log()
    log.append(batch(2))
    assert log.recovery_point == 0
    log.close()
    cp = os.path.join(os.path.dirname(part_dir), "recovery-point-offset-checkpoint")
    assert open(cp).read() == "0\n1\ntopic 0 2\n"  # a clean close flushes and checkpoints


def test_flush_ms_policy(open_log):
    log = open_log(small_config(flush_interval_ms=100))
    log.append(batch(1), now_ms=1)  # earlier than the last flush (the open): not due
    assert log.recovery_point == 0
    log.maybe_flush(now=10**13)
    assert log.recovery_point == 1


def test_periodic_flush_check_publishes_a_rolled_segment_and_flushes_nothing_else(open_log):
    from broker.log.log import BACKGROUND

    log = open_log(small_config(flush_interval_ms=10**9))
    log.append(batch(3))
    log.roll()  # the rolled segment is flushed by the background job
    log.append(batch(2))
    BACKGROUND.drain()
    assert log.recovery_point == 0  # published by the owner's periodic check, not by the flusher's thread
    log.maybe_flush()
    assert log.recovery_point == 3  # the rolled segment; the active one's 2 records are not due
    log.maybe_flush()
    assert log.recovery_point == 3


def test_offline_log_refuses_everything(open_log):
    log = open_log()
    log.append(batch(1))
    log.take_offline(StorageError("EIO", 5, True))
    with pytest.raises(StorageError) as e:
        log.append(batch(1))
    assert e.value.error_code == 56
    with pytest.raises(StorageError):
        log.read(0, 10)


def test_segments_allocate_disk_in_steps_without_preallocation(open_log, part_dir, monkeypatch):
    from broker.log import segment
    monkeypatch.setattr(segment, "GROWTH_STEP", 8192)

    def allocated() -> int:
        return os.stat(os.path.join(part_dir, segment_files(part_dir)[0])).st_blocks * 512

    log = open_log(small_config(segment_bytes=1 << 20, preallocate=False))
    assert allocated() <= 8192  # an idle partition costs one step of disk
    for i in range(100):
        log.append(batch(3, value_size=100, tag=i))
    size = log.active_segment.size
    assert size > 16384 and size <= allocated() <= size + 3 * 8192
    expect = read_all(log)
    assert len(expect) == 100
    log.close()
    assert os.path.getsize(os.path.join(part_dir, segment_files(part_dir)[0])) == size
    assert read_all(open_log(small_config(segment_bytes=1 << 20, preallocate=False))) == expect


def _fs_type(path: str) -> str:
    import subprocess
    return subprocess.run(["stat", "-f", "-c", "%T", path], capture_output=True, text=True, check=True).stdout.strip()


def test_memory_filesystems_are_recognised(tmp_path):
    from broker.log.segment import in_memory_fs
    for path in (str(tmp_path), "/dev/shm", "/proc"):
        if os.path.isdir(path):
            assert in_memory_fs(path) == (_fs_type(path) in ("tmpfs", "ramfs")), path
    assert in_memory_fs(str(tmp_path / "missing")) is False


def test_on_tmpfs_allocation_steps_stay_small():
    """tmpfs zeroes what fallocate allocates, in the owner: a step of several MiB stalls every partition it
    writes for milliseconds, so steps stop at MEMORY_GROWTH_STEP there (elsewhere they double to 16 MiB)."""
    import shutil
    import tempfile
    from broker.log import segment
    if not os.path.isdir("/dev/shm") or _fs_type("/dev/shm") != "tmpfs":
        pytest.skip("no tmpfs at /dev/shm")
    root = tempfile.mkdtemp(dir="/dev/shm", prefix="hpbroker-test-")
    try:
        d = os.path.join(root, "t-0")
        log = PartitionLog.open(d, small_config(segment_bytes=64 << 20, preallocate=False))
        one = batch(50, value_size=1000)  # ~51 KB
        ahead = []
        for i in range(130):  # ~6.6 MB: past the size where a doubling step would reach 4 MiB
            log.append(one)
            seg = log.active_segment
            ahead.append(os.stat(seg.log_path).st_blocks * 512 - seg.size)
        assert log.active_segment.size > 6 << 20
        # 1 MiB steps, each taken half a step early, keep at most ~1.5 MiB allocated ahead of the batches;
        # doubling steps would be ~6 MiB ahead by now
        assert segment.MEMORY_GROWTH_STEP == 1 << 20
        assert 0 <= min(ahead) and max(ahead) <= 2 << 20, max(ahead)
        expect = read_all(log)
        log.close()
        again = PartitionLog.open(d, small_config(segment_bytes=64 << 20, preallocate=False))
        assert read_all(again) == expect
        again.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_follower_append_keeps_leader_offsets_and_epochs(open_log, tmp_path):
    leader = PartitionLog.open(str(tmp_path / "lead-0"), small_config(segment_bytes=2000))
    for i in range(12):
        leader.append(batch(2 + i % 3, tag=i), leader_epoch=1 + i // 5)
    follower = open_log(small_config(segment_bytes=1500))
    while follower.log_end_offset < leader.log_end_offset:  # a replica fetcher: fetch from its LEO, append
        sl = leader.read(follower.log_end_offset, 700, max_offset=leader.log_end_offset)
        follower.append_as_follower(sl.view())
    assert follower.log_end_offset == leader.log_end_offset
    assert read_all(follower) == read_all(leader)
    assert follower.leader_epoch_cache.entries == leader.leader_epoch_cache.entries
    with pytest.raises(InvalidRecord):
        follower.append_as_follower(leader.read(0, 100).view())  # below the log end
    follower.truncate_to(10)
    assert follower.log_end_offset < 10
    while follower.log_end_offset < leader.log_end_offset:  # a fetch never spans two segment files
        follower.append_as_follower(leader.read(follower.log_end_offset, 1 << 20,
                                                max_offset=leader.log_end_offset).view())
    assert read_all(follower) == read_all(leader)
    leader.close()


def test_epoch_cache_of_a_log_ends_latest_epoch_at_the_log_end(open_log):
    log = open_log()
    log.append(batch(3), leader_epoch=2)
    log.append(batch(2), leader_epoch=4)
    assert log.leader_epoch_cache.end_offset_for(2) == (2, 3)
    assert log.leader_epoch_cache.end_offset_for(3) == (2, 3)
    assert log.leader_epoch_cache.end_offset_for(4) == (4, 5)
    assert log.leader_epoch_cache.latest_epoch == 4


def test_an_idle_partition_takes_a_few_blocks_of_disk(open_log, part_dir):
    """Without preallocation a new partition's log and indexes each take one small allocation step, so
    a thousand idle partitions cost a few hundred MiB of disk, not gigabytes; blocks are still taken
    ahead of every write."""
    log = open_log(small_config(segment_bytes=1 << 30, segment_index_bytes=10 << 20, preallocate=False))
    files = [os.path.join(part_dir, f) for f in os.listdir(part_dir)
             if f.endswith((".log", ".index", ".timeindex"))]
    assert len(files) == 3
    for f in files:
        assert os.stat(f).st_blocks * 512 <= 64 << 10, f
    log.append(batch(3, value_size=100))
    log_file = [f for f in files if f.endswith(".log")][0]
    assert os.stat(log_file).st_blocks * 512 >= log.active_segment.size


def test_a_roll_waiting_for_the_flusher_holds_no_descriptor_of_its_segment(open_log, part_dir):
    log = open_log(small_config(flush_interval_ms=10**9))
    log.append(batch(3))
    with flusher_held():
        log.roll()
        waiting = sorted(descriptors_under(part_dir))  # the maps' own; a queued flush must add none
    assert sorted(descriptors_under(part_dir)) == waiting
    log.maybe_flush()
    assert log.recovery_point == 3  # flushed once the flusher reached it


def test_a_roll_flushed_after_a_truncation_does_not_cover_what_was_written_since(open_log):
    log = open_log(small_config(flush_interval_ms=10**9))
    for i in range(3):
        log.append(batch(1, tag=i))  # offsets 0, 1, 2: a batch each
    with flusher_held():
        log.roll()  # its flush waits: it would mark offsets below 3 as on disk
        log.truncate_to(1)  # a new leader's log ends at 1
        log.append(batch(2, tag=9))  # offsets 1-2 again, other records, not flushed
    log.maybe_flush()
    assert log.log_end_offset == 3
    assert log.recovery_point <= 1  # a crash now must re-validate offsets 1-2
