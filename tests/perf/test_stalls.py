"""`hpbroker perf stalls`: gaps in a clock spun on each core, and what they add up to."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

from perf.stalls import CoreStalls, describe, measure, together


def test_summary_of_known_gaps():
    c = CoreStalls(0, 2.0, [(0.10, 0.002), (0.60, 0.004), (1.10, 0.001), (1.70, 0.003)])
    s = c.summary()
    assert s["gaps"] == 4 and s["lost_ms"] == 10.0 and s["longest_ms"] == 4.0
    assert s["lost_fraction"] == 0.005
    assert s["period_s"] == 0.5  # steps 0.5, 0.5, 0.6: the median
    assert CoreStalls(1, 2.0, [(0.1, 0.002), (0.9, 0.002)]).period() is None  # too few gaps to tell
    line = describe([c], 500)
    assert line == ("2 s of a spinning clock on each core, gaps over 500 µs: cpu0 4 gaps, 0.50% of the time, "
                    "longest 4.0 ms, one every 0.50 s")


def test_together_is_the_time_every_core_was_stopped():
    a = CoreStalls(0, 1.0, [(0.100, 0.010), (0.500, 0.002)])
    b = CoreStalls(1, 1.0, [(0.105, 0.010), (0.300, 0.002)])
    assert abs(together([a, b]) - 0.005) < 1e-12  # only 0.105-0.110 is inside gaps of both
    assert together([a, b, CoreStalls(2, 1.0, [])]) == 0.0  # a core that never stopped
    assert abs(together([a]) - 0.012) < 1e-12
    assert "every core stopped at once for 5.0 ms" in describe([a, b])


def test_a_watcher_stopped_for_a_while_reports_that_gap():
    """SIGSTOP a core's watcher for 80 ms: it reports a gap at least that long, at about that time."""
    cpu = min(os.sched_getaffinity(0))
    at = {}

    def stop_one(pids):
        def run():
            time.sleep(0.3)
            at["t"] = time.monotonic()
            os.kill(pids[0], signal.SIGSTOP)
            time.sleep(0.08)
            os.kill(pids[0], signal.SIGCONT)
        threading.Thread(target=run, daemon=True).start()

    start = time.monotonic()
    cores = measure(1.0, 500, cpus=[cpu], on_start=stop_one)
    assert [c.cpu for c in cores] == [cpu] and cores[0].seconds == 1.0
    big = [(s, g) for s, g in cores[0].gaps if g >= 0.075]
    assert len(big) == 1, cores[0].gaps
    s, g = big[0]
    assert g < 0.5  # the stop, not the whole run
    assert abs((start + 0.05 + s) - at["t"]) < 0.1  # where it happened: watching starts 50 ms after measure()
    assert cores[0].lost >= g and cores[0].longest == g


def test_cli_prints_a_line_per_core_and_json():
    proc = subprocess.run([sys.executable, "-m", "tools.cli", "perf", "stalls", "--seconds", "0.2", "--json"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert lines[0].startswith("0.2 s of a spinning clock on each core, gaps over 500 µs: cpu")
    out = json.loads(lines[-1])
    cpus = sorted(os.sched_getaffinity(0))
    assert [c["cpu"] for c in out["cores"]] == cpus
    assert all(c["seconds"] == 0.2 and c["gaps"] == len(out["gaps"][str(c["cpu"])]) for c in out["cores"])
    assert [line.split(":")[0] for line in lines[1:-1]] == [f"cpu{c}" for c in cpus]
