from __future__ import annotations

import multiprocessing as mp
import os
import pickle
import signal

import pytest

from broker.shm import layout
from broker.shm.region import (
    SharedRegion,
    cleanup_stale,
    list_segments,
    owner_pid,
    segment_name,
    segment_path,
    unique_name,
)

FORK = mp.get_context("fork")


def test_names_carry_the_owner_pid():
    name = segment_name("ring-a")
    assert name == f"hpb-{os.getpid()}-ring-a"
    assert owner_pid(name) == os.getpid()
    assert owner_pid("not-ours") is None
    assert unique_name("x") != unique_name("x")
    with pytest.raises(ValueError):
        segment_name("../etc")


def test_create_attach_share_bytes_and_only_creator_unlinks():
    name = unique_name("t")
    with SharedRegion.create(name, 4096, layout.KIND_METRICS) as region:
        assert region.is_creator and region.creator_pid == os.getpid()
        region.buf[100:105] = b"hello"
        other = SharedRegion.attach(name, layout.KIND_METRICS)
        assert bytes(other.buf[100:105]) == b"hello"
        assert not other.is_creator
        assert other.unlink() is False and segment_path(name).exists()
        other.close()
        assert other.closed
    assert not segment_path(name).exists()


def test_create_refuses_existing_name_and_attach_checks_the_preamble():
    name = unique_name("t")
    with SharedRegion.create(name, 128, layout.KIND_RING):
        with pytest.raises(FileExistsError):
            SharedRegion.create(name, 128, layout.KIND_RING)
        with pytest.raises(ValueError, match="kind"):
            SharedRegion.attach(name, layout.KIND_PARTITIONS)
    junk = segment_path(unique_name("junk"))
    junk.write_bytes(b"\0" * 128)
    try:
        with pytest.raises(ValueError, match="magic"):
            SharedRegion.attach(junk.name)
    finally:
        junk.unlink()


def test_pickles_as_its_name():
    name = unique_name("t")
    with SharedRegion.create(name, 256, layout.KIND_METRICS) as region:
        data = pickle.dumps(region)
        assert len(data) < 200  # the name, not the memory
        region.buf[64] = 7
        copy = pickle.loads(data)
        assert copy.name == name and copy.buf[64] == 7 and not copy.is_creator
        copy.close()


def _child_tries_unlink(region, q):
    q.put((region.is_creator, region.unlink(), bytes(region.buf[64:66])))


def test_forked_child_uses_inherited_mapping_but_cannot_unlink(fork_child):
    name = unique_name("t")
    with SharedRegion.create(name, 256, layout.KIND_METRICS) as region:
        region.buf[64:66] = b"ok"
        q = FORK.Queue()
        p = fork_child(_child_tries_unlink, region, q)
        assert q.get(timeout=10) == (False, False, b"ok")
        p.join(10)
        assert segment_path(name).exists()


def _create_and_hang(q):
    region = SharedRegion.create(segment_name("stale-test"), 256, layout.KIND_METRICS)
    q.put(region.name)
    signal.pause()


def test_cleanup_stale_removes_dead_owners_and_keeps_live_ones(fork_child):
    q = FORK.Queue()
    p = fork_child(_create_and_hang, q)
    dead_name = q.get(timeout=10)
    os.kill(p.pid, signal.SIGKILL)  # like a supervisor killed with -9: no unlink ran
    p.join(10)
    assert segment_path(dead_name).exists()
    live = SharedRegion.create(unique_name("live"), 256, layout.KIND_METRICS)
    try:
        removed = cleanup_stale()
        assert dead_name in removed
        assert not segment_path(dead_name).exists()
        assert segment_path(live.name).exists() and live.name not in removed
        assert dead_name not in list_segments(pid=p.pid)
    finally:
        live.close()
        live.unlink()
