"""`hpbroker perf suite`: repeated runs reduced to the median one, and the whole command end to end at a tiny
scale against the broker it starts itself."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time

import pytest

from perf.runner import Workload, run_produce
from perf.suite import guest_settings, median_run, metered, page_cache_write_rates, paired, repeated, span_cores


def result(records_per_sec: float, p99: float, errors: int = 0, failures=()) -> dict:
    return {"records_per_sec": records_per_sec, "latency_ms": {"p50": p99 / 2, "p99": p99}, "errors": errors,
            "failures": list(failures), "tag": (records_per_sec, p99)}


def test_the_median_run_is_reported_whole():
    runs = [result(300, 9.0), result(100, 1.0, errors=2, failures=["x"]), result(200, 5.0, failures=["y"])]
    chosen = median_run(runs, "records_per_sec")
    assert chosen["tag"] == (200, 5.0)  # every column from one run: the median by records/s
    assert chosen["runs"] == [300, 100, 200]
    assert chosen["errors"] == 2 and chosen["failures"] == ["x", "y"]  # errors from every run, not only it
    assert median_run(runs, "p99")["tag"] == (200, 5.0)


def test_of_an_even_count_the_worse_middle_run_is_reported():
    runs = [result(100, 1.0), result(400, 4.0), result(200, 2.0), result(300, 3.0)]
    assert median_run(runs, "records_per_sec")["tag"] == (200, 2.0)  # the slower of 200 and 300
    assert median_run(runs, "p99")["tag"] == (300, 3.0)  # the higher of p99 2 and 3


def test_paired_runs_alternate_and_report_the_median_fraction_of_the_sink(monkeypatch):
    """Broker and sink runs take turns (sink first, then broker first, ...); the row is the broker run of the
    pair with the median fraction, whole, and the fractions and the sink's rates come with it."""
    import perf.suite as suite

    deleted, order = [], []
    monkeypatch.setattr(suite.runner, "delete_topic", lambda w: deleted.append(w.topic))
    broker_rates, sink_rates = iter([100e3, 90e3, 30e3]), iter([200e3, 100e3, 100e3])

    def at_broker(w, progress=None):
        order.append(("broker", w.bootstrap))
        return result(next(broker_rates), 1.0)

    def at_sink(w, progress=None):
        order.append(("sink", w.bootstrap))
        return result(next(sink_rates), 1.0)

    w = Workload("127.0.0.1:1", "w7", 1000, 1024, client="confluent")
    r = paired(at_broker, at_sink, w, "127.0.0.1:2", 3)
    assert order == [("sink", "127.0.0.1:2"), ("broker", "127.0.0.1:1"), ("broker", "127.0.0.1:1"),
                     ("sink", "127.0.0.1:2"), ("sink", "127.0.0.1:2"), ("broker", "127.0.0.1:1")]
    assert r["runs"] == [0.5, 0.9, 0.3] and r["sink_runs"] == [200e3, 100e3, 100e3]
    assert r["tag"] == (100e3, 1.0) and r["of_sink"] == 0.5  # the median fraction's broker run, whole
    assert deleted == ["w7", "w7"]  # the broker's topic, before every run but the first
    assert suite._spread(r["runs"], "of_sink", r) == "3 pairs: 0.50 (0.30-0.90) of the sink (sink 100-200k)"


def test_metered_reads_the_servers_cpu_time_and_its_wait_for_a_core():
    """Four busy processes pinned to one CPU: each runs about a quarter of the time and waits the rest."""
    if not os.path.exists(f"/proc/{os.getpid()}/schedstat"):
        pytest.skip("this kernel keeps no schedstat")
    cpu = min(os.sched_getaffinity(0))
    spin = "import os, time\nos.sched_setaffinity(0, {%d})\nend = time.time() + 30\nwhile time.time() < end: pass" % cpu
    procs = [subprocess.Popen([sys.executable, "-c", spin]) for _ in range(4)]
    try:
        time.sleep(0.5)  # all started and pinned

        def run(w, progress=None):
            time.sleep(1.0)
            return {"records": 1000, "records_per_sec": 1000.0}

        r = metered(run, [procs[0].pid])(None)
    finally:
        for p in procs:
            p.kill()
            p.wait()
    assert 0.03 < r["server_cpu_s"] < 0.45, r  # a quarter, or less where other tests share the CPU
    assert 0.55 < r["server_wait_s"] < 1.0, r
    assert span_cores(r, "server_wait_s") == r["server_wait_s"]  # over the run's 1 s span


def test_the_page_cache_probe_measures_both_writes_and_leaves_nothing(tmp_path):
    new, slowest, again = page_cache_write_rates(str(tmp_path), megabytes=8)
    assert 0 < slowest <= new and again > 0
    assert list(tmp_path.iterdir()) == []


def _sysfs(root, files: dict) -> str:
    for path, text in files.items():
        f = root / path
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(text + "\n")
    return str(root)


def test_the_machine_line_names_how_a_guest_idles_and_gives_memory_back(tmp_path):
    balloon = {"bus/virtio/devices/virtio0/device": "0x0005",
               "bus/virtio/devices/virtio1/device": "0x0002",
               "bus/virtio/devices/virtio1/features": "1" * 64}  # a block device: its bit 5 means something else
    guest = _sysfs(tmp_path / "guest", {
        "devices/system/cpu/cpuidle/current_driver": "haltpoll",
        "module/haltpoll/parameters/guest_halt_poll_ns": "0",
        "module/page_reporting/parameters/page_reporting_order": "9",
        "bus/virtio/devices/virtio0/features": "0110010" + "0" * 57, **balloon})
    assert guest_settings(guest) == ["cpuidle haltpoll, guest_halt_poll_ns 0",
                                     "free page reporting to the host, order 9"]
    # The balloon did not negotiate reporting: freed memory stays with the guest, whatever the module says.
    quiet = _sysfs(tmp_path / "quiet", {
        "devices/system/cpu/cpuidle/current_driver": "acpi_idle",
        "module/page_reporting/parameters/page_reporting_order": "9",
        "bus/virtio/devices/virtio0/features": "0110000" + "0" * 57, **balloon})
    assert guest_settings(quiet) == ["cpuidle acpi_idle"]
    assert guest_settings(str(tmp_path / "bare")) == []  # no sysfs at all: nothing claimed


def test_repeated_produce_runs_start_from_an_empty_topic(broker):
    from confluent_kafka import Consumer, TopicPartition

    w = Workload(broker.bootstrap, "again", 3000, 200, partitions=3, producers=1, batch_size=4000)
    r = repeated(run_produce, w, 3, fresh=True)
    assert len(r["runs"]) == 3 and r["errors"] == 0 and r["records"] == 3000
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "unused"})
    try:
        ends = [c.get_watermark_offsets(TopicPartition("again", p), timeout=10) for p in range(3)]
    finally:
        c.close()
    assert sum(high - low for low, high in ends) == 3000, ends  # the last run's records only


def test_suite_appends_a_section_with_every_row(tmp_path):
    results = tmp_path / "RESULTS.md"
    results.write_text("# earlier results\n")
    proc = subprocess.run([sys.executable, "-m", "tools.cli", "perf", "suite", "--scale", "0.0005", "--only", "W1",
                           "--only", "W4", "--only", "W5", "--only", "W7", "--repeat", "2", "--results", str(results)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = results.read_text()
    assert text.startswith("# earlier results\n")  # appended, not overwritten
    assert re.search(r"^## perf suite, \d{4}-\d\d-\d\d \d\d:\d\d UTC$", text, re.M)
    assert "Machine: " in text and "Commit: " in text and "Each workload ran 2 times" in text
    number = r"(\d+\.\d\d)"
    probe = re.search(rf"^Page cache, .*GB/s: at the start, {number} into new pages \(slowest quarter {number}\), "
                      rf"{number} over the same pages; at the end, {number} into new pages \(slowest quarter {number}\), "
                      rf"{number} over the same pages", text, re.M)
    assert probe and all(float(v) > 0 for v in probe.groups()), text[:2000]
    core = r"cpu\d+ \d+ gaps?, \d+\.\d\d% of the time, longest \d+\.\d ms(, one every \d+\.\d\d s)?"
    stalls = re.search(rf"^Time the machine took from busy cores .*: at the start: 0\.5 s of a spinning clock on "
                       rf"each core, gaps over 500 µs: {core}(; {core})*.*; at the end: 0\.5 s .*\.$", text, re.M)
    assert stalls, text[:2000]
    rows = [line.split(" | ") for line in text.splitlines() if re.match(r"^\| W\d ", line)]
    assert [r[0] for r in rows] == ["| W1", "| W1", "| W1", "| W4", "| W4", "| W5", "| W5", "| W5", "| W7", "| W7",
                                    "| W7", "| W7"]
    for r in rows:
        records, rate, cores, waiting = int(r[2].replace(",", "")), float(r[3].replace(",", "")), r[9], r[10]
        client, errors, runs = r[11], r[12], r[13]
        assert records >= 1000 and rate > 0 and errors == "0", r
        assert 0 <= float(cores) < 64, r  # CPU time comes in 10 ms ticks: a tiny run may read none
        # The load processes' CPU time covers their whole life (connecting included), over the measured span.
        assert 0 < float(client) < 10_000, r
        # The wait is read around the whole run, start-up included, and divided by the measured span: a run
        # of a few milliseconds can read dozens. A unit slip (ns for s) would read ~1e9.
        assert 0 <= float(waiting) < 10_000, r
        if r[0] == "| W7":  # each run through the broker paired with one against the null sink
            assert re.fullmatch(r"2 pairs: \d+\.\d\d \(\d+\.\d\d-\d+\.\d\d\) of the sink \(sink [\d.]+-[\d.]+[kM]\)",
                                runs), r
        else:
            assert runs.startswith("1 run:" if "backlog fill" in r[1] else "2 runs:"), r
    assert any(float(r[9]) > 0 for r in rows)  # the broker's CPU time is read around the runs
    assert any(float(r[10]) > 0 for r in rows)  # and so is the time its threads waited for a core
    assert sum("runs: p99 " in r[13] for r in rows) == 2  # the two fixed-rate W4 rows are judged by p99
    targets = [r[14].rstrip(" |") for r in rows]  # only the row a target is read from names it
    w7 = "broker not the bottleneck (~250k rec/s client)"
    assert targets == ["≥ 1,000,000 rec/s (1 GB/s)"] * 2 + ["", "produce-to-ack p99 ≤ 1 ms", "", "", "≥ 2 GB/s", "",
                                                            w7, w7, "", ""]
    assert "W7 (one confluent-kafka producer) pairs each run" in text
    commands = re.findall(r"^- (W\d): `(hpbroker perf [^`]+)`", text, re.M)
    assert len(commands) == len(rows)
    assert all("--inflight 5" in c for name, c in commands if name == "W4")
    assert [c.endswith("--idempotent") for name, c in commands if name == "W1"] == [False, False, True]
    assert [c.endswith("--discard-records") for name, c in commands if name == "W5"] == [False, False, True]
    assert all("--client confluent" in c for name, c in commands if name == "W7")
