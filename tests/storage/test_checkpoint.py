import os

import pytest

from broker.log import checkpoint
from broker.log.epochs import UNDEFINED_EPOCH, LeaderEpochCache


def test_offset_checkpoint_kafka_text_format(tmp_path):
    path = tmp_path / checkpoint.RECOVERY_POINT_FILE
    checkpoint.write_offsets(path, {("b", 1): 7, ("a", 0): 42})
    assert path.read_text() == "0\n2\na 0 42\nb 1 7\n"
    assert checkpoint.read_offsets(path) == {("a", 0): 42, ("b", 1): 7}
    assert not (tmp_path / (checkpoint.RECOVERY_POINT_FILE + ".tmp")).exists()


def test_update_offsets_merges_and_drops(tmp_path):
    path = tmp_path / "cp"
    checkpoint.update_offsets(path, {("a", 0): 1, ("a", 1): 2})
    checkpoint.update_offsets(path, {("a", 1): 5, ("b", 0): 3})
    checkpoint.update_offsets(path, {("a", 0): None})
    assert checkpoint.read_offsets(path) == {("a", 1): 5, ("b", 0): 3}


def test_concurrent_writers_do_not_lose_entries(tmp_path):
    path = tmp_path / "cp"
    pids = []
    for worker in range(4):
        pid = os.fork()
        if pid == 0:
            try:
                for i in range(20):
                    checkpoint.update_offsets(path, {(f"t{worker}", i): i})
            finally:
                os._exit(0)
        pids.append(pid)
    for pid in pids:
        os.waitpid(pid, 0)
    assert len(checkpoint.read_offsets(path)) == 80


@pytest.mark.parametrize("text", ["1\n0\n", "0\n2\na 0 1\n", "0\nx\n", "0\n1\na b c\n", ""])
def test_corrupt_checkpoint_raises(tmp_path, text):
    path = tmp_path / "cp"
    path.write_text(text)
    with pytest.raises(checkpoint.CheckpointError):
        checkpoint.read_offsets(path)


def test_missing_checkpoint_is_empty(tmp_path):
    assert checkpoint.read_offsets(tmp_path / "none") == {}
    assert checkpoint.read_epochs(tmp_path / "none") == []


def test_epoch_cache_assign_and_persist(tmp_path):
    cache = LeaderEpochCache.load(tmp_path)
    assert cache.latest_epoch == UNDEFINED_EPOCH
    assert cache.assign(0, 0) and cache.assign(2, 10) and cache.assign(3, 25)
    assert not cache.assign(3, 30)  # same epoch later: no change
    assert (tmp_path / "leader-epoch-checkpoint").read_text() == "0\n3\n0 0\n2 10\n3 25\n"
    assert LeaderEpochCache.load(tmp_path).entries == [(0, 0), (2, 10), (3, 25)]


def test_epoch_cache_end_offsets(tmp_path):
    cache = LeaderEpochCache(tmp_path, [(1, 0), (3, 10), (5, 20)])
    assert cache.end_offset_for(0, 30) == (UNDEFINED_EPOCH, -1)
    assert cache.end_offset_for(1, 30) == (1, 10)
    assert cache.end_offset_for(2, 30) == (1, 10)  # unknown epoch: largest known below it
    assert cache.end_offset_for(3, 30) == (3, 20)
    assert cache.end_offset_for(5, 30) == (5, 30)  # current epoch ends at the log end
    assert cache.end_offset_for(9, 30) == (5, 30)
    assert cache.epoch_for_offset(15) == 3 and cache.epoch_for_offset(0) == 1


def test_epoch_cache_conflicting_assign_removes_later_entries(tmp_path):
    cache = LeaderEpochCache(tmp_path, [(1, 0), (3, 10), (5, 20)])
    cache.assign(6, 15)  # new leader starting below entries it replaces
    assert cache.entries == [(1, 0), (3, 10), (6, 15)]


def test_epoch_cache_truncation(tmp_path):
    cache = LeaderEpochCache(tmp_path, [(1, 0), (3, 10), (5, 20)])
    cache.truncate_from(20)
    assert cache.entries == [(1, 0), (3, 10)]
    cache.truncate_before(12)
    assert cache.entries == [(3, 12)]
    assert LeaderEpochCache.load(tmp_path).entries == [(3, 12)]


def test_corrupt_epoch_file_is_dropped(tmp_path):
    (tmp_path / "leader-epoch-checkpoint").write_text("garbage")
    assert LeaderEpochCache.load(tmp_path).entries == []
