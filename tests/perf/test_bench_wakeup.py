"""`python -m perf.bench_wakeup`: its tables, a failed answering process, and a stop by signal that leaves
no doorbell FIFO or answering process behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import psutil
import pytest

from broker.shm.region import SHM_DIR
from perf import bench_wakeup


def _bells(pid: int) -> list[str]:
    return sorted(p.name for p in SHM_DIR.glob(f"hpb-{pid}-bench-*"))


def test_a_ping_pong_times_every_round_and_unlinks_its_doorbells():
    cpu = min(os.sched_getaffinity(0))
    r = bench_wakeup.run(40, 50.0, (cpu, cpu))
    assert set(r) == {"ring_p50", "ring_p90", "trip_p50", "trip_p90", "trip_p99", "answer_cpu"}
    assert 0 < r["ring_p50"] <= r["ring_p90"]
    assert r["ring_p50"] <= r["trip_p50"] <= r["trip_p90"] <= r["trip_p99"]  # a round trip holds its ring
    assert r["answer_cpu"] > 0
    assert _bells(os.getpid()) == []


def test_an_answering_process_that_fails_at_start_is_reported_not_waited_for():
    cpu = min(os.sched_getaffinity(0))
    bad = os.cpu_count() + 4096  # setting the affinity to it fails in the answering process
    t0 = time.monotonic()
    with pytest.raises(SystemExit, match=rf"the answering process on CPU {bad} failed \(exit 1\)"):
        bench_wakeup.run(5, 0.0, (cpu, bad))
    assert time.monotonic() - t0 < 10
    assert _bells(os.getpid()) == []


def test_both_tables_name_every_case(capsys):
    bench_wakeup.main(["--rounds", "5", "--gap-us", "50"])
    out = capsys.readouterr().out
    rows = {line.split("  ")[0].strip(): line for line in out.splitlines() if line.strip()}
    assert "one CPU" in rows
    if len(os.sched_getaffinity(0)) >= 2:
        assert "two CPUs" in rows
    labels = ["back to back", "after a sleep", "after a spin"] + [f"after {m} MiB swept"
                                                                    for m in bench_wakeup.SWEEP_MIB]
    for label in labels:
        p50, p90, mean = (float(v) for v in rows[label][len(label):].split())
        assert 0 < p50 <= p90 and mean > 0, rows[label]


def test_sigterm_unlinks_the_doorbells_and_stops_the_answering_process():
    proc = subprocess.Popen([sys.executable, "-m", "perf.bench_wakeup", "--rounds", "1000000", "--gap-us", "1000"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        children: list[psutil.Process] = []
        while time.monotonic() < deadline and not (len(_bells(proc.pid)) == 2 and children):
            time.sleep(0.05)
            children = psutil.Process(proc.pid).children()
        assert len(_bells(proc.pid)) == 2 and len(children) == 1, "the ping-pong never started"
        time.sleep(0.3)  # rounds under way
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
        assert proc.returncode == 128 + signal.SIGTERM, err.decode(errors="replace")
        assert _bells(proc.pid) == []
        gone, alive = psutil.wait_procs(children, timeout=5)
        assert alive == [], "the answering process outlived the benchmark"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
