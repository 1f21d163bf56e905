"""Throughput of the hotpath kernels, next to the C `crc32c` package measured in the same run.

    python -m perf.bench_hotpath            # full table
    python -m perf.bench_hotpath --quick    # fewer rounds

Each figure is the best of several rounds (the machine is shared; the best round is the least
disturbed), and the two CRC implementations alternate round by round so drift hits both alike.
Startup rows run `import hotpath; hotpath.warmup()` in a fresh interpreter, first against an empty
numba cache directory (cold) and then again against the cache it filled (warm).
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time

import numpy as np

import hotpath


def _best_rate(fn, arg, reps: int, rounds: int, units_per_call: float) -> float:
    best = 0.0
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(reps):
            fn(arg)
        best = max(best, reps * units_per_call / (time.perf_counter() - t0))
    return best


def bench_crc(rounds: int) -> list[tuple[str, str, str]]:
    try:
        import crc32c as c_package
    except ImportError:
        c_package = None
    rows = []
    rng = np.random.default_rng(0)
    for size, label in ((1024, "1 KiB"), (16384, "16 KiB"), (1 << 20, "1 MiB")):
        data = rng.integers(0, 256, size, dtype=np.uint8).tobytes()
        reps = max(20, (64 << 20) // size)
        ours = theirs = 0.0
        for _ in range(rounds):
            ours = max(ours, _best_rate(hotpath.crc32c, data, reps, 1, size))
            if c_package is not None:
                theirs = max(theirs, _best_rate(c_package.crc32c, data, reps, 1, size))
        ratio = f"{ours / theirs:.2f}x" if theirs else "n/a"
        rows.append((f"crc32c {label} (bytes)", f"{ours / 1e9:.2f} GB/s",
                     f"C crc32c {theirs / 1e9:.2f} GB/s, ratio {ratio}" if theirs else "crc32c package absent"))
    return rows


def _records_buffer(n_batches: int, per_batch: int, value_size: int) -> bytes:
    rng = np.random.default_rng(1)
    values = rng.integers(0, 256, per_batch * value_size, dtype=np.uint8)
    offsets = np.arange(0, per_batch * value_size + 1, value_size, dtype=np.int64)
    one = hotpath.build_batch(values, offsets, timestamps=1_700_000_000_000).tobytes()
    return one * n_batches


def bench_scan(rounds: int) -> list[tuple[str, str, str]]:
    rows = []
    for per_batch, label in ((100, "100 x 100 B records per batch"), (1, "1 x 100 B record per batch")):
        buf = np.frombuffer(_records_buffer(max(1, 8000 // per_batch), per_batch, 100), np.uint8)
        for deep in (False, True):
            rate = _best_rate(lambda b: hotpath.scan_batches(b, deep=deep), buf, 20, rounds, len(buf))
            res = hotpath.scan_batches(buf, deep=deep)
            assert res.ok
            rows.append((f"scan {'deep' if deep else 'CRC '} {len(buf) >> 10} KiB", f"{rate / 1e9:.2f} GB/s",
                         f"{label}, {res.count} batches/call"))
    single = _records_buffer(1, 10, 100)
    rate = _best_rate(lambda b: hotpath.scan_batches(b, deep=True), single, 20000, rounds, 1)
    rows.append(("scan one produce batch", f"{1e6 / rate:.2f} us/call", f"{len(single)} B, 10 records, deep"))
    buf = bytearray(_records_buffer(1, 10, 100))
    res = hotpath.scan_batches(buf)
    rate = _best_rate(lambda b: hotpath.assign_offsets(b, res, 1000, 1), buf, 20000, rounds, 1)
    rows.append(("assign_offsets one batch", f"{1e6 / rate:.2f} us/call", "bytearray receive buffer"))
    return rows


def bench_builder(rounds: int) -> list[tuple[str, str, str]]:
    rows = []
    rng = np.random.default_rng(2)
    for per_batch in (100, 1000, 10000):
        values = rng.integers(0, 256, per_batch * 100, dtype=np.uint8)
        offsets = np.arange(0, per_batch * 100 + 1, 100, dtype=np.int64)
        keys = rng.integers(0, 256, per_batch * 8, dtype=np.uint8)
        key_offsets = np.arange(0, per_batch * 8 + 1, 8, dtype=np.int64)
        stamps = np.arange(per_batch, dtype=np.int64) + 1_700_000_000_000
        reps = max(5, 200_000 // per_batch)
        rate = _best_rate(lambda v: hotpath.build_batch(v, offsets, timestamps=stamps), values, reps, rounds,
                          per_batch)
        rows.append((f"build {per_batch} x 100 B records", f"{rate / 1e6:.2f} M records/s", "null keys"))
        rate = _best_rate(lambda v: hotpath.build_batch(v, offsets, keys, key_offsets, timestamps=stamps),
                          values, reps, rounds, per_batch)
        rows.append((f"build {per_batch} x 100 B records", f"{rate / 1e6:.2f} M records/s", "8-byte keys"))
    return rows


def bench_startup() -> list[tuple[str, str, str]]:
    code = ("import time; t = time.perf_counter(); import hotpath; t1 = time.perf_counter(); "
            "hotpath.warmup(); print(t1 - t, time.perf_counter() - t1)")
    rows = []
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        for label in ("cold (empty cache)", "warm (cache filled)"):
            out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
            imp, warm = map(float, out.stdout.split())
            rows.append((f"import + warmup, {label}", f"{imp + warm:.2f} s", f"import {imp:.2f} s, warmup {warm:.2f} s"))
    return rows


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds")
    parser.add_argument("--no-startup", action="store_true", help="skip the cold/warm startup rows")
    args = parser.parse_args(argv)
    rounds = 3 if args.quick else 7
    hotpath.warmup()
    rows = bench_crc(rounds) + bench_scan(rounds) + bench_builder(rounds)
    if not args.no_startup:
        rows += bench_startup()
    print(f"CPU: {cpu_model()}, {os.cpu_count()} CPUs; crc32c kernel: "
          f"{'SSE4.2 crc32, 3 streams' if hotpath.HAS_SSE42 else 'portable slicing-by-8'}")
    width = max(len(r[0]) for r in rows)
    print(f"| {'kernel'.ljust(width)} | result | notes |")
    print(f"|{'-' * (width + 2)}|---|---|")
    for name, value, note in rows:
        print(f"| {name.ljust(width)} | {value} | {note} |")


if __name__ == "__main__":
    main()
