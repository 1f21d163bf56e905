"""The hand-run benchmarks (`python -m perf.bench_*`, quoted with their commands in perf/RESULTS.md) still run
to the end and report every row, at their smallest sizes. No timing is asserted: a rate only has to be a
positive number."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys

import pytest


def _bench(module: str, *args: str, timeout: float = 180) -> str:
    done = subprocess.run([sys.executable, "-m", f"perf.{module}", *args], capture_output=True, text=True,
                          timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_bench_codec_compares_every_fast_path_with_the_generic_codec():
    rows = json.loads(_bench("bench_codec", "--seconds", "0.02", "--json"))
    cases = [r["case"] for r in rows]
    assert any(c.startswith("Produce") and "request decode" in c for c in cases), cases
    assert any(c.startswith("Fetch") and "response encode" in c for c in cases), cases
    for r in rows:
        assert r["generic_ops"] > 0 and r["fast_ops"] > 0, r
        assert r["ratio"] == pytest.approx(r["fast_ops"] / r["generic_ops"], rel=0.02), r


def test_bench_hotpath_reports_crc_scan_and_builder_rates():
    out = _bench("bench_hotpath", "--quick", "--no-startup")
    for label in ("crc32c 1 KiB", "crc32c 16 KiB", "crc32c 1 MiB", "scan CRC", "scan deep", "build 100 x 100 B"):
        rows = [line for line in out.splitlines() if label in line]
        assert rows, f"no {label!r} row in:\n{out}"
        for line in rows:
            rate = re.search(r"\|\s*([\d.]+) (?:GB/s|M records/s|us/call)", line)
            assert rate and float(rate.group(1)) > 0, line


def test_bench_ring_moves_every_message_of_each_case():
    rows = json.loads(_bench("bench_ring", "--seconds", "0.05", "--rounds", "1", "--json"))
    assert {(r["size"], r["batch"], r["copy"]) for r in rows} == {
        (64, 1, False), (64, 256, False), (65536, 1, False), (65536, 1, True)}
    for r in rows:
        assert r["messages"] > 0 and r["msgs_per_s"] > 0, r


def test_bench_loopback_reports_a_rate_per_pair_count():
    out = _bench("bench_loopback", "--pairs", "1", "2", "--seconds", "0.2")
    rates = re.findall(r"loopback TCP, (\d) pair\(s\), \d+ B sends: ([\d.]+) GB/s", out)
    assert [p for p, _ in rates] == ["1", "2"], out
    assert all(float(r) > 0 for _, r in rates), out


def test_bench_storage_reports_appends_lookups_and_recovery(tmp_path):
    out = _bench("bench_storage", "--dir", str(tmp_path), "--mib", "1", "--repeat", "1")
    for label in ("1 KiB batches (the per-batch cost)", "64 KiB batches", "durable (fdatasync each)",
                  "lookup writer read() us", "lookup offset_for_timestamp us", "recovery 16 KiB batches"):
        assert label in out, f"no {label!r} row in:\n{out}"
    appends = re.findall(r"^\S.*batches.*?\s([\d.]+)\s+([\d.]+)$", out, re.M)
    assert appends and all(float(gbs) > 0 and float(us) > 0 for gbs, us in appends), out


@pytest.mark.skipif(shutil.which("etcd") is None, reason="etcd (Debian's etcd-server) is not installed")
def test_bench_replication_runs_its_three_workloads_without_errors():
    out = _bench("bench_replication", "--num-records", "5000", "--partitions", "2", "--producers", "1")
    runs = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert [(r["mode"], r["acks"]) for r in runs][:2] == [("produce", -1), ("produce", 1)], out
    assert runs[-1]["mode"] == "consume", out
    for r in runs:
        assert r["errors"] == 0 and r["records"] == 5000 and r["complete"], r


def test_bench_compaction_reports_every_row(tmp_path):
    out = _bench("bench_compaction", "--dir", str(tmp_path), "--records", "20000", "--repeat", "1")
    rows = re.findall(r"^\s*(\d+)\s+(none|lz4|zstd)\s+([\d,]+)\s+([\d.]+)\s+([\d.]+)%", out, re.M)
    assert [(k, c) for k, c, *_ in rows] == [("2000", "none"), ("20000", "none"), ("1000", "none"),
                                             ("2000", "lz4"), ("2000", "zstd")], out
    for _, _, rate, mb, removed in rows:
        assert int(rate.replace(",", "")) > 0 and float(mb) > 0 and 0 < float(removed) < 100, out
