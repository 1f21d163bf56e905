"""Producer id blocks: durable, never reused, handed out in order by a worker's pool."""

import pytest

from broker.producers import ids


def test_blocks_never_overlap_and_survive_a_restart(tmp_path):
    d = str(tmp_path)
    a = ids.allocate_block(d, 10)
    b = ids.allocate_block(d, 10)
    assert (a["start"], b["start"]) == (0, 10)
    assert ids.read_next(str(tmp_path / ids.FILE_NAME)) == 20  # what a restarted supervisor continues from
    assert ids.allocate_block(d)["start"] == 20


def test_unreadable_file_refuses_to_guess(tmp_path):
    (tmp_path / ids.FILE_NAME).write_text("{not json")
    with pytest.raises(ids.IdFileError):
        ids.allocate_block(str(tmp_path))


def test_pool_waits_for_a_block_and_serves_in_order(tmp_path):
    d = str(tmp_path)
    asked = []
    pool = ids.IdPool(asked.append)
    got = []
    for _ in range(3):
        pool.take(got.append)
    assert len(asked) == 1 and got == []  # one request for the block, everyone waits
    asked.pop()(ids.allocate_block(d, 2))
    assert got == [0, 1] and len(asked) == 1  # the block ran out: the third waits for the next one
    asked.pop()(ids.allocate_block(d, 2))
    assert got == [0, 1, 2]
    pool.take(got.append)
    assert got == [0, 1, 2, 3] and not asked


def test_pool_reports_failure(tmp_path):
    asked = []
    pool = ids.IdPool(asked.append)
    got = []
    pool.take(got.append)
    asked.pop()({"error": "controller unavailable"})
    assert got == [None]
