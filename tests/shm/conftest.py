"""Every shm test must leave /dev/shm as it found it (for segments this process owns)."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal

import pytest

from broker.shm.region import list_segments


@pytest.fixture(autouse=True)
def no_leftover_segments():
    before = set(list_segments(pid=os.getpid()))
    yield
    left = set(list_segments(pid=os.getpid())) - before
    assert not left, f"shared-memory names left behind: {sorted(left)}"


@pytest.fixture
def fork_child():
    """Start forked daemon processes; any still alive at teardown are killed, so a failing
    assertion in the parent never leaves a child behind (or hangs the run joining it)."""
    started = []

    def start(target, *args):
        proc = mp.get_context("fork").Process(target=target, args=args, daemon=True)
        proc.start()
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.is_alive():
            os.kill(proc.pid, signal.SIGKILL)
        proc.join(10)
