import mmap
import os

import pytest

from broker.log.index import OffsetIndex, TimeIndex
from broker.log.log import BACKGROUND

from .storage_helpers import descriptors_under, evict, resident_pages


def test_offset_index_append_lookup_and_reopen(tmp_path):
    path = str(tmp_path / "00000000000000000100.index")
    idx = OffsetIndex.open(path, 100, 80, writable=True)
    assert os.path.getsize(path) == 80  # preallocated while active
    assert idx.append(104, 300) and idx.append(110, 900) and idx.append(120, 1500)
    assert not idx.append(115, 2000)  # offsets must increase
    assert not idx.append(130, 1500)  # positions must increase
    assert idx.lookup(99) == (100, 0)
    assert idx.lookup(103) == (100, 0)
    assert idx.lookup(104) == (104, 300)
    assert idx.lookup(119) == (110, 900)
    assert idx.lookup(10**9) == (120, 1500)
    idx.trim()
    assert os.path.getsize(path) == 24
    assert idx.lookup(111) == (110, 900)  # still readable after trimming
    idx.close()
    again = OffsetIndex.open(path, 100, 80, writable=False)
    assert again.entries == 3 and again.all_entries() == [(104, 300), (110, 900), (120, 1500)]
    again.close()


def test_preallocated_zero_tail_is_not_counted(tmp_path):
    path = str(tmp_path / "0.index")
    idx = OffsetIndex.open(path, 0, 800, writable=True)
    idx.append(5, 100)
    idx.append(9, 200)
    idx.close()  # not trimmed: a crash leaves the zero tail
    again = OffsetIndex.open(path, 0, 800, writable=True)
    assert again.entries == 2
    assert OffsetIndex.open(str(tmp_path / "e.index"), 0, 800, writable=True).entries == 0
    again.close()


def test_full_index_refuses_entries(tmp_path):
    idx = OffsetIndex.open(str(tmp_path / "0.index"), 0, 16, writable=True)
    assert idx.append(1, 10) and idx.append(2, 20)
    assert idx.is_full and not idx.append(3, 30)
    idx.close()


def test_truncate_to_offset(tmp_path):
    idx = OffsetIndex.open(str(tmp_path / "0.index"), 0, 800, writable=True)
    for i in range(1, 6):
        idx.append(i * 10, i * 100)
    idx.truncate_to_offset(30)
    assert idx.all_entries() == [(10, 100), (20, 200)]
    assert idx.lookup(45) == (20, 200)
    idx.close()


def test_sanity_check_detects_garbage(tmp_path):
    path = str(tmp_path / "0.index")
    idx = OffsetIndex.open(path, 0, 800, writable=True)
    idx.append(10, 100)
    idx.append(20, 200)
    assert idx.check(1000)
    assert not idx.check(150)  # an entry beyond the log
    idx.close()
    with open(path, "r+b") as f:
        f.seek(8)
        f.write(b"\x00\x00\x00\x05\x00\x00\x00\x01")  # offsets go backwards
    bad = OffsetIndex.open(path, 0, 800, writable=False)
    assert bad.entries in (1, 2)  # the valid prefix
    if bad.entries == 2:
        assert not bad.check(1000)
    bad.close()


def test_time_index(tmp_path):
    path = str(tmp_path / "0.timeindex")
    t = TimeIndex.open(path, 50, 12 * 10, writable=True)
    assert t.last_entry() == (-1, 50)
    assert t.maybe_append(1000, 55) and t.maybe_append(2000, 60)
    assert not t.maybe_append(2000, 70)  # not larger: skipped
    assert not t.maybe_append(0, 80)  # timestamps <= 0 are not indexed
    assert t.maybe_append(3000, 70)
    assert t.offset_before(500) is None
    assert t.offset_before(1000) is None
    assert t.offset_before(1500) == 55
    assert t.offset_before(99999) == 70
    assert t.check(71) and not t.check(70)
    t.truncate_to_offset(60)
    assert t.all_entries() == [(1000, 55)]
    t.trim()
    t.close()
    assert os.path.getsize(path) == 12


def test_time_index_keeps_last_slot_for_closing_entry(tmp_path):
    t = TimeIndex.open(str(tmp_path / "0.timeindex"), 0, 36, writable=True)
    assert t.maybe_append(1, 1) and t.maybe_append(2, 2)
    assert t.is_full and not t.maybe_append(3, 3)
    assert t.maybe_append(3, 3, skip_full_check=True)
    t.close()


def _index_maps(prefix: str) -> list[str]:
    """VmFlags of this process's mappings of files under ``prefix`` ending in an index suffix."""
    flags, current = [], None
    with open("/proc/self/smaps") as f:
        for line in f:
            head = line.split()
            if len(head) >= 6 and "-" in head[0] and head[5].startswith(prefix):
                current = head[5]
            elif line.startswith("VmFlags:") and current is not None:
                if current.endswith((".index", ".timeindex")):
                    flags.append(line.split()[1:])
                current = None
    return flags


def _resident_bytes(path: str) -> int:
    return resident_pages(path) * mmap.PAGESIZE


def test_a_fresh_active_index_reads_no_pages_ahead(tmp_path):
    """An active index spans segment.index.bytes, nearly all of it sparse. Its maps are marked random
    (VmFlags ``rr``), so the first entry costs a page of cache, not the device's readahead window of
    zero-filled pages (8 MiB where read_ahead_kb is 8192) for each index of each partition."""
    idx = OffsetIndex.open(str(tmp_path / "0.index"), 0, 10 << 20, writable=True)
    tidx = TimeIndex.open(str(tmp_path / "0.timeindex"), 0, 10 << 20, writable=True)
    assert idx.append(5, 4096) and tidx.maybe_append(1_700_000_000_000, 5)
    maps = _index_maps(str(tmp_path))
    assert len(maps) == 2 and all("rr" in f for f in maps), maps
    for path in ("0.index", "0.timeindex"):
        assert _resident_bytes(str(tmp_path / path)) <= 64 << 10
    idx.close()
    tidx.close()
    assert _index_maps(str(tmp_path)) == []


def test_a_reader_s_index_map_reads_no_pages_ahead(open_log, part_dir):
    from broker.log import LogReader

    from .storage_helpers import batch, small_config

    log = open_log(small_config(index_interval_bytes=200))
    for i in range(20):
        log.append(batch(2, value_size=100, tag=i))
    rd = LogReader(part_dir)
    leo = log.log_end_offset
    assert rd.read(leo // 2, 1000, leo, 0).length > 0
    rd_maps = [f for f in _index_maps(str(part_dir)) if "wr" not in f]
    assert rd_maps and all("rr" in f for f in rd_maps), rd_maps
    rd.close()


def test_counting_an_index_a_crash_left_preallocated_reads_no_pages_ahead(tmp_path):
    """After kill -9 the active index keeps its preallocated, mostly sparse size. Counting its entries at
    the next start faults in the pages that hold them, not the readahead window of zeros past them."""
    path = str(tmp_path / "0.index")
    idx = OffsetIndex.open(path, 0, 10 << 20, writable=True)
    for i in range(1, 301):
        assert idx.append(i, i * 4096)
    idx.flush()
    idx.close()  # no trim: as a killed writer leaves it
    assert os.path.getsize(path) == 10 << 20
    evict(path)
    assert _resident_bytes(path) == 0
    again = OffsetIndex.open(path, 0, 10 << 20, writable=False)
    assert again.entries == 300
    assert again.lookup(150) == (150, 150 * 4096)
    assert _resident_bytes(path) <= 64 << 10
    again.close()


def test_a_closed_index_holds_no_descriptor_until_a_lookup_needs_it(tmp_path):
    path = str(tmp_path / "00000000000000000100.index")
    idx = OffsetIndex.open(path, 100, 800, writable=True)
    for i in range(1, 11):
        assert idx.append(100 + i * 10, i * 1000)
    idx.trim()
    assert descriptors_under(str(tmp_path)) == []
    assert idx.last_entry() == (200, 10_000)  # read without mapping
    assert descriptors_under(str(tmp_path)) == []
    assert idx.lookup(155) == (150, 5000)
    assert descriptors_under(str(tmp_path)) == [path]  # the map's own descriptor
    idx.close()
    idx = OffsetIndex.open(path, 100, 800, writable=False)
    os.rename(path, path + ".away")  # mapping it fails (as EMFILE would): the lookup fails, the index rests
    with pytest.raises(FileNotFoundError):
        idx.lookup(155)
    os.rename(path + ".away", path)
    assert idx.lookup(155) == (150, 5000)
    idx.truncate_to_offset(150)  # a follower cutting into a closed segment
    assert idx.all_entries() == [(100 + i * 10, i * 1000) for i in range(1, 5)]
    assert os.path.getsize(path) == 4 * 8
    idx.make_writable()  # the segment takes appends again
    assert idx.append(150, 5000) and idx.lookup(10**6) == (150, 5000)
    idx.close()
    assert descriptors_under(str(tmp_path)) == []
    tidx = TimeIndex.open(str(tmp_path / "0.timeindex"), 0, 120, writable=True)
    assert tidx.maybe_append(1_000, 3) and tidx.maybe_append(2_000, 7)
    tidx.trim()
    assert descriptors_under(str(tmp_path)) == []
    assert tidx.last_entry() == (2_000, 7) and tidx.offset_before(1_500) == 3
    tidx.close()
    assert descriptors_under(str(tmp_path)) == []


def test_a_log_holds_one_descriptor_per_closed_segment(open_log, part_dir):
    """Its read-only mapping's; the indexes of closed segments are mapped by the lookups that need them,
    also after a restart (where the sanity check reads them once)."""
    from .storage_helpers import batch, read_all, small_config

    cfg = small_config(segment_bytes=8 << 10)
    log = open_log(cfg)
    for i in range(200):
        log.append(batch(2, value_size=200, ts=1_000 + i, tag=i))
    log.flush()  # waits for the rolls' background flushes, which hold copies of descriptors until done
    closed = len(log.segments) - 1
    assert closed >= 10
    active = 4  # the active segment: its file and map, and both indexes' maps
    assert len(descriptors_under(part_dir)) == closed + active
    expected = read_all(log)
    assert len(expected) == 200
    assert log.offset_for_timestamp(1_050) is not None and log.offset_for_timestamp(1_050)[0] == 100
    log.close()
    assert descriptors_under(part_dir) == []
    again = open_log(cfg)
    assert len(again.segments) == closed + 1
    assert len(descriptors_under(part_dir)) == closed + active
    assert read_all(again) == expected  # every closed segment's index looked up from its file
    assert again.offset_for_timestamp(1_150)[0] == 300
    sl = again.read(0, 1 << 20)  # a closed segment's slice carries no descriptor; sendfile opens the file
    assert sl.fd == -1 and sl.length > 0
    out = os.path.join(os.path.dirname(part_dir), "sent")
    with open(out, "wb") as f:
        assert sl.sendfile(f.fileno()) == sl.length
    with open(out, "rb") as f:
        assert f.read() == bytes(sl.view())
    # read_all looked up every closed segment's offset index, and those stay mapped; the files stay closed
    assert len(descriptors_under(part_dir)) <= 2 * closed + active + 2


def test_indexes_recovery_rebuilt_for_closed_segments_are_trimmed_and_rest(open_log, part_dir):
    from .storage_helpers import batch, read_all, small_config

    cfg = small_config(segment_bytes=8 << 10)
    log = open_log(cfg)
    for i in range(200):
        log.append(batch(2, value_size=200, ts=1_000 + i, tag=i))
    expected = read_all(log)
    log.close(clean=False)  # nothing flushed: every segment is validated and its indexes rebuilt
    BACKGROUND.drain()  # a roll's background flush holds descriptors of its own while it runs
    again = open_log(cfg, recover=True)
    closed = len(again.segments) - 1
    assert again.load_report.recovered_segments == closed + 1 >= 10
    assert len(descriptors_under(part_dir)) == closed + 4
    again.flush()  # every closed segment is past the recovery point: each synced with a descriptor for the call
    assert len(descriptors_under(part_dir)) == closed + 4
    for seg in again.segments[:-1]:
        assert os.path.getsize(seg.index_path) == seg.offset_index.entries * 8 < cfg.segment_index_bytes
    assert read_all(again) == expected


def test_loading_a_log_releases_each_closed_segment_once_it_is_checked(open_log, part_dir, monkeypatch):
    """Each closed segment's indexes are mapped for the load's sanity check and released before the next
    segment is checked: a partition with thousands of segments never holds all their maps at once."""
    from broker.log.segment import LogSegment

    from .storage_helpers import batch, small_config

    cfg = small_config(segment_bytes=8 << 10)
    log = open_log(cfg)
    for i in range(200):
        log.append(batch(2, value_size=200, ts=1_000 + i, tag=i))
    n = len(log.segments)
    log.close()
    seen = []
    check = LogSegment.indexes_sane

    def counted(seg):
        ok = check(seg)
        seen.append(len(descriptors_under(part_dir)))
        return ok

    monkeypatch.setattr(LogSegment, "indexes_sane", counted)
    open_log(cfg)
    assert len(seen) == n >= 10
    # checked ones: their map; the one being checked: file, map, two index maps; the rest: file and map
    assert max(seen) <= 2 * n + 2, seen
