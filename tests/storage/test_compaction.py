"""Log compaction on a real partition directory: what survives a pass, at which offsets, how readers see the
swap, and what a crash in the middle of a swap leaves."""

from __future__ import annotations

import json
import os
import time

import pytest

from broker.log import cleaner
from broker.log.reader import LogReader
from broker.log.segment import segment_name
from netio.codec.records import compress, decode_batches, encode_batch

from .storage_helpers import small_config

NOW = int(time.time() * 1000)
OLD = NOW - 10 * 86_400_000  # older than any delete.retention.ms used here


def compact_config(**kw):
    base = dict(segment_bytes=2048, cleanup_policy="compact", min_cleanable_dirty_ratio=0.0,
                delete_retention_ms=86_400_000)
    base.update(kw)
    return small_config(**base)


def compressed(records, ts, codec):
    """encode_batch's records, compressed with `codec`, CRC and length fixed."""
    import struct

    import crc32c

    raw = encode_batch(records, ts)
    body = compress(codec, raw[61:])
    head = bytearray(raw[:61])
    struct.pack_into(">h", head, 21, codec)
    struct.pack_into(">i", head, 8, 61 - 12 + len(body))
    struct.pack_into(">I", head, 17, crc32c.crc32c(bytes(head[21:]) + body))
    return bytes(head) + body


def records_of(read, end):
    """(offset, key, value) of every record readable with `read(offset)` below `end`."""
    out, offset = [], 0
    while offset < end:
        sl = read(offset)
        if len(sl) == 0:
            break
        recs = decode_batches(bytes(sl.view()))
        out += [(r.offset, r.key, r.value) for r in recs]
        offset = recs[-1].offset + 1 if recs else offset + 1
    return out


def fill(log, rounds=40, keys=7, ts=OLD, codec=0, tombstone_every=0):
    """Keyed batches of 4 records (every key written many times), then one segment roll."""
    n = 0
    for _ in range(rounds):
        recs = []
        for _ in range(4):
            value = None if tombstone_every and n % tombstone_every == 0 else f"v{n}".encode()
            recs.append((f"k{n % keys}".encode(), value, []))
            n += 1
        log.append(compressed(recs, ts, codec) if codec else encode_batch(recs, ts))
    log.roll()


def expected(before, closed_end, expired_tombstones=False):
    """Kafka's rule applied to the records before a pass: the last record of each key below the active
    segment survives (a tombstone too unless expired), every record of the active segment survives."""
    last = {}
    for off, key, _ in before:
        if off < closed_end:
            last[key] = off
    out = []
    for off, key, value in before:
        if off >= closed_end:
            out.append((off, key, value))
        elif key is None or last[key] == off:
            if value is None and key is not None and expired_tombstones:
                continue
            out.append((off, key, value))
    return out


def run_pass(log, protected=frozenset(), force=False):
    plan = cleaner.plan(log, NOW, protected, force=force)
    assert plan is not None
    outcome = cleaner.clean(plan)
    assert log.apply_cleaning(outcome)
    return outcome


@pytest.mark.parametrize("codec", [0, 1, 2, 3, 4])
def test_last_value_of_each_key_survives_at_its_offset(open_log, part_dir, codec):
    log = open_log(compact_config())
    fill(log, codec=codec)
    log.append(encode_batch([(b"k1", b"in the active segment", [])], NOW))
    before = records_of(lambda o: log.read(o, 1 << 20), log.log_end_offset)
    closed_end = log.active_segment.base_offset
    segments_before = len(log.segments)
    outcome = run_pass(log)
    after = records_of(lambda o: log.read(o, 1 << 20), log.log_end_offset)
    assert after == expected(before, closed_end)
    assert outcome.records_removed == len(before) - len(after)
    assert outcome.upto == closed_end
    assert len(log.segments) < segments_before  # small cleaned segments were merged
    assert log.log_start_offset == 0 and log.log_end_offset == before[-1][0] + 1
    # every record the consumer sees carries the offset it was written at
    assert set(after) <= set(before)
    # a reopened log (clean and after a crash) reads the same
    log.close()
    again = open_log(compact_config())
    assert records_of(lambda o: again.read(o, 1 << 20), again.log_end_offset) == after
    assert again.cleaned_to == closed_end
    again.close(clean=False)
    crashed = open_log(compact_config(), recover=True)
    assert records_of(lambda o: crashed.read(o, 1 << 20), crashed.log_end_offset) == after


def test_tombstones_stay_until_delete_retention_then_go(open_log):
    log = open_log(compact_config(delete_retention_ms=86_400_000))
    fill(log, tombstone_every=5, ts=NOW - 5000)
    before = records_of(lambda o: log.read(o, 1 << 20), log.log_end_offset)
    closed_end = log.active_segment.base_offset
    run_pass(log)
    kept = records_of(lambda o: log.read(o, 1 << 20), log.log_end_offset)
    assert kept == expected(before, closed_end)
    assert any(v is None for _, _, v in kept)
    log.close()
    log = open_log(compact_config(delete_retention_ms=1000))  # the same records are now past the horizon
    run_pass(log, force=True)
    gone = records_of(lambda o: log.read(o, 1 << 20), log.log_end_offset)
    assert gone == expected(before, closed_end, expired_tombstones=True)
    assert not any(v is None for _, _, v in gone)


def test_records_without_key_and_protected_batches_stay(open_log):
    log = open_log(compact_config(cleanup_policy="delete"))
    log.append(encode_batch([(None, b"no key", [])], OLD))  # written before the topic became compacted
    log.close()
    log = open_log(compact_config())
    protected_last = log.append(encode_batch([(b"a", b"old", [])], OLD)).last_offset
    fill(log, keys=3)
    log.append(encode_batch([(b"a", b"new", [])], OLD))
    log.roll()
    run_pass(log, protected=frozenset({protected_last}))
    after = records_of(lambda o: log.read(o, 1 << 20), log.log_end_offset)
    assert (0, None, b"no key") in after
    assert (protected_last, b"a", b"old") in after  # an active producer's last batch is kept whole
    assert after[-1][1:] == (b"a", b"new")


def test_a_batch_keeps_its_offsets_when_it_loses_records(open_log):
    log = open_log(compact_config())
    log.append(encode_batch([(b"x", b"1", []), (b"y", b"2", []), (b"z", b"3", [])], OLD))  # offsets 0-2
    log.append(encode_batch([(b"y", b"4", [])], OLD))
    log.roll()
    run_pass(log)
    sl = log.read(0, 1 << 20)
    data = bytes(sl.view())
    import struct

    base, _, _, _, _, _, last_delta = struct.unpack_from(">qiibIhi", data, 0)
    count = struct.unpack_from(">i", data, 57)[0]
    assert (base, last_delta, count) == (0, 2, 2)
    assert [(r.offset, r.key) for r in decode_batches(data)] == [(0, b"x"), (2, b"z"), (3, b"y")]


def test_reading_an_offset_compaction_removed_returns_what_follows(open_log, part_dir):
    log = open_log(compact_config())
    fill(log, keys=2)  # almost everything is superseded: the first segments empty out
    fill(log, keys=2)
    run_pass(log)
    after = records_of(lambda o: log.read(o, 1 << 20), log.log_end_offset)
    first = after[0][0]
    assert first > 0
    assert decode_batches(bytes(log.read(0, 1 << 20).view()))[0].offset == first
    reader = LogReader(part_dir)
    try:
        got = decode_batches(bytes(reader.read(0, 1 << 20, log.log_end_offset, 0, tail=log.tail).view()))
        assert got[0].offset == first
        assert records_of(lambda o: reader.read(o, 1 << 20, log.log_end_offset, 0, tail=log.tail),
                          log.log_end_offset) == after
    finally:
        reader.close()
    assert os.path.exists(os.path.join(part_dir, segment_name(0) + ".log"))  # holds the log start


def test_a_reader_holding_the_old_files_moves_to_the_cleaned_ones(open_log, part_dir, monkeypatch):
    from broker.log import reader as reader_module

    log = open_log(compact_config())
    fill(log)
    before = records_of(lambda o: log.read(o, 1 << 20), log.log_end_offset)
    reader = LogReader(part_dir)
    try:
        read = lambda o: reader.read(o, 1 << 20, log.log_end_offset, 0, tail=log.tail)  # noqa: E731
        assert records_of(read, log.log_end_offset) == before  # every segment now open in the reader
        run_pass(log)
        after = records_of(lambda o: log.read(o, 1 << 20), log.log_end_offset)
        assert len(after) < len(before)
        monkeypatch.setattr(reader_module, "STALE_CHECK_S", 0.0)
        assert records_of(read, log.log_end_offset) == after
    finally:
        reader.close()


def test_a_pass_is_dropped_when_the_log_changed(open_log):
    log = open_log(compact_config())
    fill(log)
    plan = cleaner.plan(log, NOW)
    outcome = cleaner.clean(plan)
    log.truncate_to(8)
    assert not log.apply_cleaning(outcome)
    assert [o for o, _, _ in records_of(lambda o: log.read(o, 1 << 20), log.log_end_offset)] == list(range(8))


def test_compact_only_topics_are_not_trimmed_by_retention(open_log):
    log = open_log(compact_config(retention_ms=1))
    fill(log)
    assert log.enforce_retention(NOW) == 0
    assert log.log_start_offset == 0
    both = open_log(compact_config(cleanup_policy="compact,delete", retention_ms=1))
    assert both.enforce_retention(NOW) > 0


def test_a_follower_appends_compacted_batches(open_log, tmp_path):
    from broker.log import PartitionLog

    leader = open_log(compact_config())
    fill(leader)
    run_pass(leader)
    follower = PartitionLog.open(str(tmp_path / "replica-0"), compact_config())
    try:
        offset = 0
        while offset < leader.log_end_offset:
            sl = leader.read(offset, 1 << 20)
            if len(sl) == 0:
                break
            res = follower.append_as_follower(bytes(sl.view()))
            offset = res.last_offset + 1
        assert follower.log_end_offset == leader.log_end_offset
        assert (records_of(lambda o: follower.read(o, 1 << 20), follower.log_end_offset)
                == records_of(lambda o: leader.read(o, 1 << 20), leader.log_end_offset))
    finally:
        follower.close()


# --- a crash in the middle of a swap ------------------------------------------------------------------------

def _crash_mid_swap(log, part_dir, moved_log: bool):
    """Do a swap's first steps by hand, as `apply_cleaning` does them, and stop: the marker is written and
    the indexes moved; the cleaned log moved too when `moved_log`; the other members still exist."""
    plan = cleaner.plan(log, NOW)
    outcome = cleaner.clean(plan)
    action = next(a for a in outcome.actions if a.path is not None and len(a.members) > 1)
    with open(os.path.join(part_dir, cleaner.SWAP_MARKER), "w") as f:
        json.dump({"members": action.members}, f)
    work, name = os.path.split(action.path)
    stem = name[:-4]
    for suffix in (".index", ".timeindex"):
        os.replace(os.path.join(work, stem + suffix), os.path.join(part_dir, stem + suffix))
    if moved_log:
        os.replace(action.path, os.path.join(part_dir, stem + ".log"))
    return action


@pytest.mark.parametrize("moved_log", [False, True])
def test_a_swap_interrupted_by_a_crash_is_finished_at_load(open_log, part_dir, moved_log):
    log = open_log(compact_config())
    fill(log)
    log.append(encode_batch([(b"k0", b"active", [])], NOW))
    log.close()
    log = open_log(compact_config(segment_bytes=64 << 10))  # the pass merges the small segments
    before = records_of(lambda o: log.read(o, 1 << 20), log.log_end_offset)
    closed_end = log.active_segment.base_offset
    action = _crash_mid_swap(log, part_dir, moved_log)
    log.close(clean=False)
    again = open_log(compact_config(segment_bytes=64 << 10), recover=True)
    assert not os.path.exists(os.path.join(part_dir, cleaner.SWAP_MARKER))
    assert not os.path.exists(os.path.join(part_dir, cleaner.CLEANING_DIR))
    for base in action.members[1:]:
        assert not os.path.exists(os.path.join(part_dir, segment_name(base) + ".log"))
    got = records_of(lambda o: again.read(o, 1 << 20), again.log_end_offset)
    cleaned = [r for r in expected(before, closed_end) if r[0] < action.members[-1] or r[0] >= closed_end]
    assert [r for r in got if r[0] < action.members[-1] or r[0] >= closed_end] == cleaned
    assert set(got) <= set(before) and got[-1] == before[-1]


def test_a_pass_without_a_marker_leaves_nothing_behind(open_log, part_dir):
    log = open_log(compact_config())
    fill(log)
    before = records_of(lambda o: log.read(o, 1 << 20), log.log_end_offset)
    cleaner.clean(cleaner.plan(log, NOW))  # written, never swapped in: the process died
    log.close(clean=False)
    again = open_log(compact_config(), recover=True)
    assert not os.path.exists(os.path.join(part_dir, cleaner.CLEANING_DIR))
    assert records_of(lambda o: again.read(o, 1 << 20), again.log_end_offset) == before


def test_plan_waits_for_the_dirty_ratio_and_the_compaction_lag(open_log):
    log = open_log(compact_config(min_cleanable_dirty_ratio=0.9))
    fill(log)
    assert cleaner.plan(log, NOW) is not None  # all dirty: ratio 1.0
    run_pass(log)
    fill(log, rounds=2)
    assert cleaner.plan(log, NOW) is None  # a little dirty behind a lot of clean
    assert cleaner.plan(log, NOW, force=True) is not None
    lagged = open_log(compact_config(min_compaction_lag_ms=86_400_000 * 365 * 100))
    assert cleaner.plan(lagged, NOW) is None  # nothing old enough


def test_a_compacted_topic_refuses_records_without_a_key(open_log):
    from broker.log.errors import InvalidRecord

    log = open_log(compact_config())
    for batch in (encode_batch([(b"a", b"1", []), (None, b"2", [])], NOW),
                  compressed([(None, b"x", [])], NOW, 3)):
        with pytest.raises(InvalidRecord, match="without a key"):
            log.append(batch)
        with pytest.raises(InvalidRecord, match="without a key"):
            log.validate(batch)
    assert log.log_end_offset == 0
    assert log.append(encode_batch([(b"a", None, [])], NOW)).last_offset == 0  # a tombstone has a key


def test_deleting_a_topic_forgets_where_its_cleaning_ended(tmp_path):
    from broker.log import checkpoint
    from broker.log.manager import LogManager

    mgr = LogManager([str(tmp_path)], {"log.segment.bytes": 2048})
    mgr.create_topic("c", 1, {"cleanup.policy": "compact", "min.cleanable.dirty.ratio": "0"})
    log = mgr.open_partition("c", 0)
    fill(log)
    run_pass(log)
    path = os.path.join(str(tmp_path), checkpoint.CLEANER_FILE)
    assert checkpoint.read_offsets(path)[("c", 0)] == log.cleaned_to > 0
    mgr.close_all()
    mgr.delete_topic("c")
    assert ("c", 0) not in checkpoint.read_offsets(path)
    mgr.create_topic("c", 1, {"cleanup.policy": "compact"})
    assert mgr.open_partition("c", 0).cleaned_to == 0
    mgr.close_all()


def test_a_pass_over_a_deleted_partition_stops_without_recreating_it(open_log, part_dir):
    import shutil

    log = open_log(compact_config())
    fill(log)
    plan = cleaner.plan(log, NOW)
    log.close(clean=False)
    shutil.rmtree(part_dir)
    with pytest.raises(cleaner.SegmentChanged):
        cleaner.clean(plan)
    assert not os.path.exists(part_dir)


def test_a_compacted_log_rolls_by_max_compaction_lag(open_log, tmp_path):
    from broker.log import PartitionLog

    log = open_log(compact_config(max_compaction_lag_ms=1000, segment_ms=86_400_000))
    t0 = log.active_segment.created_ms  # the clock a new segment's age counts from
    log.append(encode_batch([(b"a", b"1", [])], NOW), now_ms=t0)
    log.append(encode_batch([(b"a", b"2", [])], NOW), now_ms=t0 + 500)
    assert len(log.segments) == 1
    log.append(encode_batch([(b"a", b"3", [])], NOW), now_ms=t0 + 1500)
    assert len(log.segments) == 2  # the first two records can now be cleaned
    plain = PartitionLog.open(str(tmp_path / "plain-0"), small_config(max_compaction_lag_ms=1000,
                                                                      segment_ms=86_400_000))
    try:
        t0 = plain.active_segment.created_ms
        plain.append(encode_batch([(b"a", b"1", [])], NOW), now_ms=t0)
        plain.append(encode_batch([(b"a", b"2", [])], NOW), now_ms=t0 + 1500)
        assert len(plain.segments) == 1  # a log that is not compacted ignores it
    finally:
        plain.close()
