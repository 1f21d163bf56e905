from __future__ import annotations

import pickle
import threading
import time

import pytest

from broker.shm import layout
from broker.shm.partitions import PartitionState, PartitionTable, SlotBusy


@pytest.fixture
def table():
    with PartitionTable.create(32, watchers=3) as t:
        yield t


def test_unclaimed_slots_read_as_empty_and_claim_bumps_generation(table):
    assert table.read(0) == PartitionState(0, 0, 0, -1, 0)
    assert table.claim(5, epoch=3) == 1
    assert table.read(5) == PartitionState(0, 0, 0, 3, 1)
    table.publish(5, 100, 90, 10, 3)
    assert table.read(5) == (100, 90, 10, 3, 1, -1, 0, 0) and table.read(5).tail is None
    table.publish(5, 120, 90, 10, 3, (64, 2**31 - 1, 7))
    assert table.read(5) == (120, 90, 10, 3, 1, 64, 2**31 - 1, 7) and table.read(5).tail == (64, 2**31 - 1, 7)
    assert table.read(4).tail is None and table.read(6).tail is None  # a slot's fields stay in its line
    assert table.claim(5) == 2  # topic deleted and recreated: readers see a new generation
    assert table.read(5) == PartitionState(0, 0, 0, 0, 2) and table.read(5).tail is None
    with pytest.raises(IndexError):
        table.read(32)


def test_version_grows_by_two_per_publish(table):
    v0 = table.version(1)
    assert table.publish(1, 1, 1, 0, 0) == v0 + 2
    table.publish(1, 2, 2, 0, 0)
    seq, state = table.read_versioned(1)
    assert seq == v0 + 4 and state.log_end_offset == 2
    assert seq % 2 == 0


def test_attach_by_pickled_name_sees_the_owner_publish(table):
    table.publish(7, 42, 40, 0, 1)
    other = pickle.loads(pickle.dumps(table))
    try:
        assert other.read(7)[:5] == (42, 40, 0, 1, 0)
        assert other.slots == 32 and other.watchers == 3
        assert other.unlink() is False
    finally:
        other.close()


def _slot_offset(slot: int) -> int:
    return layout.PART_SLOTS_START + slot * layout.PART_SLOT_SIZE


def test_reader_waits_out_a_writer_in_progress_and_never_sees_half_a_publish(table):
    table.publish(2, 10, 10, 0, 1)
    off = _slot_offset(2)
    seq = table.version(2)
    # the owner is mid-publish: seq odd, two of the four offsets already new
    layout.U64.pack_into(table._mm, off, seq + 1)
    layout.I64.pack_into(table._mm, off + layout.SLOT_OFF_FIELDS, 20)
    layout.I64.pack_into(table._mm, off + layout.SLOT_OFF_FIELDS + 8, 20)
    result = []
    reader = threading.Thread(target=lambda: result.append(table.read(2)))
    reader.start()
    time.sleep(0.01)
    assert not result  # still retrying: an odd seq is never trusted
    layout.I64.pack_into(table._mm, off + layout.SLOT_OFF_FIELDS + 16, 5)
    layout.U64.pack_into(table._mm, off, seq + 2)
    reader.join(5)
    assert [r[:5] for r in result] == [(20, 20, 5, 1, 0)]


def test_owner_dead_mid_publish_gives_retriable_error_until_republished(table):
    off = _slot_offset(4)
    layout.U64.pack_into(table._mm, off, table.version(4) + 1)  # left odd forever
    with pytest.raises(SlotBusy) as exc:
        table.read(4)
    assert exc.value.error_code == 5  # LEADER_NOT_AVAILABLE
    version = table.publish(4, 9, 9, 0, 2)  # the restarted owner recovers the slot
    assert version % 2 == 0
    assert table.read(4)[:5] == (9, 9, 0, 2, 0)


def _hammer(table: PartitionTable, slot: int, stop) -> None:
    i = 0
    while not stop.is_set():
        i += 1
        table.publish(slot, i, i - 1, i // 2, i % 1000, (i, i * 3 % 2**31, i % 97))


def test_seqlock_snapshots_are_consistent_under_a_concurrent_writer(table, fork_child):
    import multiprocessing as mp

    stop = mp.get_context("fork").Event()
    table.claim(9, leo=0, hw=-1, log_start=0, epoch=0)  # the writer's invariant at i = 0
    fork_child(_hammer, table, 9, stop)
    seen = set()
    deadline = time.monotonic() + 20  # on a loaded machine the writer may get little CPU: read until it raced
    reads = 0
    while time.monotonic() < deadline and (len(seen) <= 20 or reads <= 1000):
        leo, hw, start, epoch, _gen, *tail = table.read(9)
        assert (hw, start, epoch) == (leo - 1, leo // 2, leo % 1000)
        assert leo == 0 or tail == [leo, leo * 3 % 2**31, leo % 97]
        seen.add(leo)
        reads += 1
    stop.set()
    assert len(seen) > 20 and reads > 1000  # the writer really raced the reader


def test_watch_refuses_to_sleep_if_the_version_already_moved(table):
    v = table.version(3)
    table.publish(3, 1, 1, 0, 0)
    assert table.watch(0, {3: v}) is False
    row = layout.watch_offset(table.slots, table.watchers, 3)
    assert table._mm[row] == 0  # nothing left announced


def test_publish_rings_only_the_watchers_of_that_slot(table):
    import select

    v3, v4 = table.version(3), table.version(4)
    assert table.watch(1, {3: v3})
    assert table.watch(2, {4: v4})
    table.publish(3, 5, 5, 0, 0)
    ready = select.select([table.fileno(0), table.fileno(1), table.fileno(2)], [], [], 0)[0]
    assert ready == [table.fileno(1)]
    table.unwatch(1, [3])
    table.unwatch(2, [4])
    table.publish(3, 6, 6, 0, 0)
    assert select.select([table.fileno(1)], [], [], 0)[0] == []


def _publish_later(table: PartitionTable, slot: int, delay: float) -> None:
    time.sleep(delay)
    table.publish(slot, 77, 77, 0, 0)


def test_parked_fetch_is_woken_by_another_process(table, fork_child):
    versions = {6: table.version(6), 8: table.version(8)}
    assert table.wait_change(0, versions, timeout=0.05) == []
    fork_child(_publish_later, table, 8, 0.1)
    start = time.monotonic()
    assert table.wait_change(0, versions, timeout=10) == [8]
    assert time.monotonic() - start < 5
    assert table.read(8).log_end_offset == 77


def test_create_validates_arguments():
    with pytest.raises(ValueError):
        PartitionTable.create(0)
    with pytest.raises(ValueError):
        PartitionTable.create(4, watchers=0)
