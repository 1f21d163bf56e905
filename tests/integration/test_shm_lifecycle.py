"""Shared memory of a broker run: gone after a clean stop; left by kill -9 and removed by the next start."""

import glob
import os

from tools.testing import BrokerProcess


def _segments(pid: int) -> list[str]:
    return glob.glob(f"/dev/shm/hpb-{pid}-*")


def test_clean_stop_leaves_no_shared_memory(tmp_path):
    b = BrokerProcess(data_dir=str(tmp_path), network_threads=2, io_threads=2)
    b.start()
    pid = b.proc.pid
    assert _segments(pid), "the running broker should have its rings and tables in /dev/shm"
    assert b.stop() == 0
    assert _segments(pid) == []


def test_start_after_kill_9_removes_stale_segments(tmp_path):
    b = BrokerProcess(data_dir=str(tmp_path / "a"))
    b.start()
    dead = b.proc.pid
    b.kill()
    stale = _segments(dead)
    assert stale, "kill -9 gives the supervisor no chance to unlink"
    with BrokerProcess(data_dir=str(tmp_path / "b")):
        assert _segments(dead) == []
        assert not any(os.path.exists(p) for p in stale)
