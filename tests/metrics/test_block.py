"""Counter blocks: a forked writer's updates are read by the parent through the shared region."""

from __future__ import annotations

import os

import pytest

from broker.metrics.block import ROLE_IO, STAGE, MetricsRegion, ProcessMetrics, errors_in
from broker.shm import layout as L


@pytest.fixture
def region():
    r = MetricsRegion.create(3, 64)
    yield r
    r.destroy()


def test_child_writes_parent_reads(region):
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            m = ProcessMetrics(slots=64)
            m.bind(region, 2, ROLE_IO, 1)
            m.add(L.MS_RECORDS_IN, 5)
            m.request(0)
            m.request(0)
            m.request(200)  # outside the table: ignored, not a crash
            m.error(0, -1)
            m.error(0, 0)  # success is not an error
            m.error(1, 6)
            m.observe(STAGE["total"], 0, 50)
            m.observe(STAGE["total"], 0, 3000)
            m.observe(STAGE["total"], 0, 10**9)  # beyond the last bound: +Inf bucket
            m.slot_add(1, 63, 7)
            m.slot_add(1, 64, 7)  # outside the table: ignored
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    v = region.block(2)
    assert (v.pid, v.role, v.index) == (pid, "io", 1) and v.started_ns > 0
    assert v.scalars[L.MS_RECORDS_IN] == 5
    assert v.requests[0] == 2 and v.requests.sum() == 2
    assert v.errors[0, 0] == 1 and v.errors[1, 7] == 1 and v.errors.sum() == 2
    row = v.latency[STAGE["total"], 0]
    assert row[0] == 1 and row[L.LATENCY_BOUNDS_US.index(5000)] == 1 and row[L.BUCKETS - 1] == 1
    assert row[L.BUCKETS] == 3 and row[L.BUCKETS + 1] == 50 + 3000 + 10**9
    assert v.per_slot[1, 63] == 7 and v.per_slot.sum() == 7
    assert region.block(0).pid == 0 and region.block(0).words.sum() == 0  # other blocks untouched


def test_rebind_keeps_counts_and_resets_open_connections(region):
    m = ProcessMetrics(slots=64)
    m.bind(region, 0, ROLE_IO, 0)
    m.add(L.MS_CONN_OPEN, 3)
    m.add(L.MS_CONN_CREATED, 3)
    again = ProcessMetrics(slots=64)
    again.bind(region, 0, ROLE_IO, 0)  # a restarted worker
    assert again.scalars[L.MS_CONN_CREATED] == 3 and again.scalars[L.MS_CONN_OPEN] == 0


def test_region_size_matches_layout(region):
    assert region.region.size == L.metrics_region_size(3, 64)
    assert region.block_words == L.metrics_block_words(64) and region.slots == 64


def test_errors_in_finds_nested_codes():
    body = {"error_code": 0, "topics": [{"partitions": [{"error_code": 3}, {"error_code": 0}]},
                                        {"error_code": 36, "configs": None}]}
    assert sorted(errors_in(body, [])) == [3, 36]


def test_observations_made_together_count_each(region):
    """An owner's grouped appends are observed once with their number: the histogram reads as if each
    had been observed on its own."""
    m = ProcessMetrics(slots=64)
    m.bind(region, 1, ROLE_IO, 0)
    m.observe(STAGE["owner"], 0, 3000, 4)
    m.observe(STAGE["owner"], 0, 50)
    row = region.block(1).latency[STAGE["owner"], 0]
    assert row[L.LATENCY_BOUNDS_US.index(5000)] == 4 and row[0] == 1
    assert row[L.BUCKETS] == 5 and row[L.BUCKETS + 1] == 4 * 3000 + 50
