import os


from broker.log.index import OffsetIndex, TimeIndex


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
