"""`hpbroker perf compare`: two brokers, one workload run against each in turn."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import textwrap

from perf.compare import order
from tools.testing import BrokerProcess


def test_runs_alternate_so_neither_side_always_goes_first():
    assert order(1) == ["A", "B"]
    assert order(3) == ["A", "B", "B", "A", "A", "B"]


def test_two_brokers_with_different_settings_each_take_their_turns():
    """Through the CLI: each side's settings reach its broker (one I/O worker more on A), every run
    completes, and the medians and ratios are those of the runs reported."""
    out = subprocess.run(
        [sys.executable, "-m", "tools.cli", "perf", "compare", "--workload", "w4", "--scale", "0.01", "--rounds", "2",
         "--a-set", "num.io.threads=2", "--b-set", "num.io.threads=1", "--json"],
        capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    r = json.loads(out.stdout.strip().splitlines()[-1])
    assert r["order"] == ["A", "B", "B", "A"]
    assert r["workers"]["A"] == r["workers"]["B"] + 1
    assert r["settings"] == {"A": {"num.io.threads": "2"}, "B": {"num.io.threads": "1"}}
    for side in ("A", "B"):
        runs = r["runs"][side]
        assert len(runs) == 2
        assert all(run["records"] == 1000 and run["errors"] == 0 and run["complete"] for run in runs)
        assert all(run["cpu_us_per_record"] > 0 for run in runs)  # each broker's own processes were metered
        assert all(run["client_us_per_record"] > 0 for run in runs)  # and the load processes
        for key in ("records_per_sec", "p99_ms", "cpu_us_per_record", "client_us_per_record"):
            assert r["median"][side][key] == statistics.median(run[key] for run in runs)
    for key in ("records_per_sec", "p99_ms"):
        assert abs(r["b_over_a"][key] - r["median"]["B"][key] / r["median"]["A"][key]) < 1e-9
    table = out.stdout
    assert "W4, 2 rounds" in table and "num.io.threads=2" in table and "B/A" in table


def test_a_side_whose_broker_refuses_its_settings_ends_the_comparison_with_the_reason():
    out = subprocess.run(
        [sys.executable, "-m", "tools.cli", "perf", "compare", "--workload", "W4", "--scale", "0.01", "--rounds", "1",
         "--b-set", "num.io.threads=0"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 1
    assert "hpbroker perf compare: broker B:" in out.stderr and "num.io.threads" in out.stderr
    assert "Traceback" not in out.stderr


def test_a_workload_the_suite_does_not_have_is_a_usage_error():
    out = subprocess.run([sys.executable, "-m", "tools.cli", "perf", "compare", "--workload", "W9"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert "'W9' is not one of W1, W2, W3, W4, W7" in out.stderr


def test_a_broker_can_run_from_another_source_tree(tmp_path):
    """`source`: the broker command runs from that tree (here a stand-in that only announces itself)."""
    tools = tmp_path / "tools"
    tools.mkdir()
    (tools / "__init__.py").write_text("")
    (tools / "cli.py").write_text(textwrap.dedent("""
        import os, sys, time
        print(f"from {os.getcwd()}: hpbroker ready listeners=PLAINTEXT://127.0.0.1:1", flush=True)
        time.sleep(60)
    """))
    b = BrokerProcess(source=str(tmp_path)).start(timeout=30)
    try:
        assert b.port == 1
        assert any(line.startswith(f"from {tmp_path}:") for line in b.output)
    finally:
        b.kill()
