"""The command a suite row records re-creates that row's workload when run: RESULTS.md can be reproduced."""

from __future__ import annotations

import shlex
from dataclasses import fields

import pytest
from click.testing import CliRunner

import perf.cli
import perf.runner
from perf.runner import Workload
from perf.suite import command_line

SUITE_ONLY = {"time_limit", "topic_configs"}  # set by the suite, not part of a workload's command


@pytest.fixture
def parsed(monkeypatch):
    """Run `hpbroker perf VERB ...` through the real option parser; return the Workload it would drive."""
    seen = []
    for name in ("run_produce", "run_consume", "run_e2e"):
        monkeypatch.setattr(perf.runner, name, lambda w, *a, **k: seen.append(w) or {})
    monkeypatch.setattr(perf.cli, "_emit", lambda result, as_json: None)

    def run(line: str) -> Workload:
        args = shlex.split(line.replace(" --bootstrap B ", " --bootstrap 127.0.0.1:9 "))
        assert args[:2] == ["hpbroker", "perf"]
        result = CliRunner().invoke(perf.cli.perf, args[2:], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        assert len(seen) == 1
        return seen.pop()

    return run


CASES = [
    ("produce", Workload("B", "w4", 100_000, 1024, acks=1, rate=10_000, batch_size=16384, inflight=5)),
    ("produce", Workload("B", "w7", 500_000, 1024, producers=1, client="confluent", linger_ms=5, inflight=3)),
    ("produce", Workload("B", "w7i", 500_000, 1024, acks=-1, client="confluent", linger_ms=5, inflight=5,
                         idempotent=True)),
    ("produce", Workload("B", "w1i", 2_000_000, 1024, acks=-1, producers=2, inflight=5, idempotent=True)),
    ("produce", Workload("B", "w3", 300_000, 100, acks=-1, producers=2, partitions=3, connections=2)),
    ("e2e", Workload("B", "w4e2e", 50_000, 1024, rate=10_000, batch_size=16384, inflight=5, consumers=2)),
    ("consume", Workload("B", "w5", 3_000_000, 1024, consumers=2, connections=3)),
    ("consume", Workload("B", "w5d", 3_000_000, 1024, consumers=2, discard_records=True)),
]


@pytest.mark.parametrize("verb,w", CASES, ids=[f"{v}-{w.topic}" for v, w in CASES])
def test_a_recorded_command_recreates_its_workload(parsed, verb, w):
    got = parsed(command_line(verb, w))
    for f in fields(Workload):
        if f.name in SUITE_ONLY or f.name == "bootstrap":
            continue
        if verb == "consume" and f.name not in ("topic", "num_records", "consumers", "client", "connections",
                                                "discard_records"):
            continue  # consume takes no producer options
        assert getattr(got, f.name) == getattr(w, f.name), f.name
