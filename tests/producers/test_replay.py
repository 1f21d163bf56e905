"""Producer state rebuilt from a real partition log, with and without snapshots."""

import os

import numpy as np
import pytest

import hotpath
from broker.log import LogConfig, PartitionLog
from broker.producers import owner, snapshot
from broker.producers.state import OutOfOrderSequence


def pbatch(pid: int, epoch: int, seq: int, n: int = 3) -> bytes:
    return hotpath.build_records_batch([(b"k", b"v%d" % i) for i in range(n)],
                                       timestamps=np.full(n, 1_000, np.int64),
                                       producer_id=pid, producer_epoch=epoch, base_sequence=seq)


def config() -> LogConfig:
    return LogConfig(segment_bytes=4 << 10, index_interval_bytes=256, segment_index_bytes=4096, retention_ms=-1,
                     file_delete_delay_ms=0)


def fill(plog) -> dict:
    """Batches from two producers and plain ones; returns what each producer's state must hold."""
    seqs = {11: 0, 12: 0}
    for i in range(60):
        pid = 11 if i % 3 == 0 else 12 if i % 3 == 1 else -1
        if pid < 0:
            plog.append(hotpath.build_records_batch([(None, b"plain")]))
            continue
        plog.append(pbatch(pid, 2, seqs[pid]))
        seqs[pid] += 3
    return seqs


def test_batch_producer_reads_the_header():
    assert owner.batch_producer(hotpath.build_records_batch([(None, b"x")])) is None
    b = pbatch(5, 1, 2147483646, n=4)
    assert owner.batch_producer(b) == (5, 1, 2147483646, 1)
    with pytest.raises(owner.InvalidRecord):
        owner.batch_producer(b + b)


def test_rebuilt_without_snapshot_after_unclean_close(tmp_path):
    d = str(tmp_path / "t-0")
    plog = PartitionLog.open(d, config())
    seqs = fill(plog)
    assert len(plog.segments) > 1
    before, snap = owner.load(plog)
    assert snap == -1
    plog.close(clean=False)
    plog = PartitionLog.open(d, config(), recover=True)
    try:
        states, _ = owner.load(plog)
        assert states.entries == before.entries
        for pid, nxt in seqs.items():
            last = states.entries[pid].batches[-1]
            assert last[1] == nxt - 1
            assert states.check(pid, 2, last[0], last[1]) == last[2]  # a retry of the newest batch
            assert states.check(pid, 2, nxt, nxt + 2) is None
            with pytest.raises(OutOfOrderSequence):
                states.check(pid, 2, nxt + 3, nxt + 5)
    finally:
        plog.close()


def test_snapshot_plus_replay_equals_full_replay(tmp_path):
    d = str(tmp_path / "t-0")
    plog = PartitionLog.open(d, config())
    try:
        fill(plog)
        mid = plog.log_end_offset
        snapshot.write(d, mid, owner.load(plog)[0])
        fill(plog)
        from_snapshot, snap = owner.load(plog)
        assert snap == mid
        for offset in snapshot.list_snapshots(d):
            os.unlink(os.path.join(d, snapshot.snapshot_name(offset)))
        assert owner.load(plog)[0].entries == from_snapshot.entries
    finally:
        plog.close()
