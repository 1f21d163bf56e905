"""Snapshot files: round trip, CRC protection, which snapshot a partition loads."""

import os

from broker.producers import snapshot
from broker.producers.state import ProducerEntry, ProducerStates


def sample() -> ProducerStates:
    return ProducerStates({
        5: ProducerEntry(0, 1_700_000_000_000, [(0, 9, 0, 9), (10, 19, 10, 19)]),
        1 << 40: ProducerEntry(3, 12, [(2147483640, 5, 100, 113)]),
        77: ProducerEntry(1, 0, []),
    })


def test_round_trip(tmp_path):
    d = str(tmp_path)
    states = sample()
    path = snapshot.write(d, 120, states)
    assert os.path.basename(path) == "00000000000000000120.snapshot"
    offset, loaded = snapshot.load_latest(d, 120)
    assert offset == 120 and loaded.entries == states.entries and not loaded.changed


def test_corrupt_snapshot_is_ignored_and_removed(tmp_path):
    d = str(tmp_path)
    snapshot.write(d, 10, sample())
    path = snapshot.write(d, 20, ProducerStates())
    data = bytearray(open(path, "rb").read())
    data[-1] ^= 0xFF
    open(path, "wb").write(bytes(data))
    offset, loaded = snapshot.load_latest(d, 100)
    assert offset == 10 and loaded.entries == sample().entries
    assert snapshot.list_snapshots(d) == [10]


def test_snapshots_past_the_log_end_are_removed(tmp_path):
    d = str(tmp_path)
    snapshot.write(d, 10, sample())
    snapshot.write(d, 50, ProducerStates())
    offset, _ = snapshot.load_latest(d, 30)  # the log was truncated to 30
    assert offset == 10 and snapshot.list_snapshots(d) == [10]
    assert snapshot.load_latest(str(tmp_path / "missing"), 10) is None


def test_only_the_newest_snapshots_are_kept(tmp_path):
    d = str(tmp_path)
    for off in (1, 2, 3, 4):
        snapshot.write(d, off, sample(), fsync=False)
    assert snapshot.list_snapshots(d) == [3, 4]
    assert not [n for n in os.listdir(d) if n.endswith(".tmp")]
