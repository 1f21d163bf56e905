"""Storage benchmark: append throughput, offset lookup cost, recovery speed, durable-mode cost.

Run: ``python -m perf.bench_storage [--dir DIR] [--mib 256] [--repeat 3]``
(best of ``--repeat`` runs per row). In-process, one partition, no network.
Append rows write into a preallocated segment (``log.preallocate=true``) or one that grows in steps.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import tempfile
import time

import numpy as np

import hotpath
from broker.log import LogConfig, LogReader, PartitionLog, warmup


def make_batch(batch_bytes: int, record_bytes: int = 1000) -> bytes:
    n = max(1, batch_bytes // (record_bytes + 12))
    values = np.frombuffer(os.urandom(record_bytes), np.uint8)
    data = np.tile(values, n)
    offsets = np.arange(n + 1, dtype=np.int64) * record_bytes
    return hotpath.build_batch(data, offsets, timestamps=np.full(n, int(time.time() * 1000), np.int64)).tobytes()


def fresh_log(root: str, name: str, **cfg) -> PartitionLog:
    path = os.path.join(root, f"{name}-0")
    shutil.rmtree(path, ignore_errors=True)
    config = LogConfig(**{"segment_bytes": 1 << 30, "max_message_bytes": 2 << 20, "retention_ms": -1,
                          "preallocate": True, **cfg})
    return PartitionLog.open(path, config)


def bench_append(root: str, batch_bytes: int, total_bytes: int, group: int = 1, **cfg) -> tuple[float, float]:
    """(GB/s, us per batch); ``group`` > 1: that many batches per ``append_many``, as a busy owner writes
    the appends it finds queued for one partition."""
    payload = make_batch(batch_bytes)
    n = max(group, total_bytes // len(payload) // group * group)
    log = fresh_log(root, f"append{batch_bytes}", segment_bytes=max(1 << 30, n * len(payload) + (1 << 20)), **cfg)
    log.append(payload)  # first append outside the timing (allocations, epoch checkpoint)
    sources = [payload] * group
    t = time.perf_counter()
    if group == 1:
        for _ in range(n):
            log.append(payload)
    else:
        for _ in range(n // group):
            log.append_many(sources)
    dt = time.perf_counter() - t
    log.close(clean=False)
    return n * len(payload) / dt / 1e9, dt / n * 1e6


def bench_lookup(root: str, n_batches: int = 200_000, lookups: int = 20_000) -> dict[str, float]:
    log = fresh_log(root, "lookup", segment_bytes=64 << 20)
    payload = make_batch(1000, record_bytes=90)
    per = hotpath.scan_batches(payload).record_count[0]
    for _ in range(n_batches):
        log.append(payload)
    leo = log.log_end_offset
    rng = random.Random(1)
    offsets = [rng.randrange(leo) for _ in range(lookups)]
    out = {"batches": n_batches * 1.0, "segments": float(len(log.segments))}
    t = time.perf_counter()
    for o in offsets:
        log.read(o, 1)
    out["writer read() us"] = (time.perf_counter() - t) / lookups * 1e6
    t = time.perf_counter()
    for o in offsets:
        log.read(o, 1 << 20)
    out["writer read() 1 MiB us"] = (time.perf_counter() - t) / lookups * 1e6
    rd = LogReader(log.directory)
    t = time.perf_counter()
    for o in offsets:
        rd.read(o, 1, leo, 0)
    out["reader read() us"] = (time.perf_counter() - t) / lookups * 1e6
    t = time.perf_counter()
    for o in offsets:
        log.offset_for_timestamp(0)
    out["offset_for_timestamp us"] = (time.perf_counter() - t) / lookups * 1e6
    rd.close()
    log.close(clean=False)
    out["records per batch"] = float(per)
    return out


def bench_recovery(root: str, total_bytes: int, batch_bytes: int) -> tuple[float, float, int]:
    """(GB/s re-validated, seconds, segments) for an unclean reopen of ``total_bytes`` of data."""
    log = fresh_log(root, f"recover{batch_bytes}", segment_bytes=256 << 20)
    payload = make_batch(batch_bytes)
    for _ in range(max(1, total_bytes // len(payload))):
        log.append(payload)
    size, path, config = log.size_bytes, log.directory, log.config
    log.close(clean=False)
    t = time.perf_counter()
    again = PartitionLog.open(path, config, recover=True)
    dt = time.perf_counter() - t
    assert again.size_bytes == size
    segs = again.load_report.recovered_segments
    again.close(clean=False)
    return size / dt / 1e9, dt, segs


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--dir", default=None, help="data directory (default: a temp dir under /tmp)")
    ap.add_argument("--mib", type=int, default=256, help="MiB appended per throughput row")
    ap.add_argument("--repeat", type=int, default=3, help="runs per row; the best is shown (shared machines)")
    args = ap.parse_args(argv)
    root = args.dir or tempfile.mkdtemp(prefix="bench-storage-")
    os.makedirs(root, exist_ok=True)
    warmup()
    hotpath.warmup()
    total = args.mib << 20
    try:
        print(f"{'append':<44} {'GB/s':>8} {'us/append':>10}")
        gbs, us = max(bench_append(root, 1 << 10, min(total, 16 << 20)) for _ in range(args.repeat))
        print(f"{'1 KiB batches (the per-batch cost)':<44} {gbs:8.2f} {us:10.1f}")
        gbs, us = max(bench_append(root, 1 << 10, min(total, 16 << 20), group=8) for _ in range(args.repeat))
        print(f"{'1 KiB batches, 8 per append_many':<44} {gbs:8.2f} {us:10.1f}")
        for group in (1, 8):
            gbs, us = max(bench_append(root, 64 << 10, total, group=group) for _ in range(args.repeat))
            label = "64 KiB batches" + (f", {group} per append_many" if group > 1 else "")
            print(f"{label:<44} {gbs:8.2f} {us:10.1f}")
        for batch_bytes in (1 << 20, 16 << 10):
            gbs, us = max(bench_append(root, batch_bytes, total) for _ in range(args.repeat))
            label = f"{batch_bytes >> 10} KiB batches, log.preallocate=true"
            print(f"{label:<44} {gbs:8.2f} {us:10.1f}")
        for batch_bytes in (1 << 20, 16 << 10):
            gbs, us = max(bench_append(root, batch_bytes, total, preallocate=False)
                          for _ in range(args.repeat))
            label = f"{batch_bytes >> 10} KiB batches, log.preallocate=false"
            print(f"{label:<44} {gbs:8.2f} {us:10.1f}")
        for batch_bytes in (1 << 20, 16 << 10):
            gbs, us = max(bench_append(root, batch_bytes, min(total, 64 << 20), flush_interval_messages=1)
                          for _ in range(args.repeat))
            label = f"{batch_bytes >> 10} KiB batches, durable (fdatasync each)"
            print(f"{label:<44} {gbs:8.2f} {us:10.1f}")
        print()
        for k, v in bench_lookup(root).items():
            print(f"lookup {k:<37} {v:10.2f}")
        print()
        for batch_bytes in (1 << 20, 16 << 10):
            gbs, dt, segs = max(bench_recovery(root, total, batch_bytes) for _ in range(args.repeat))
            print(f"recovery {batch_bytes >> 10} KiB batches {total >> 20} MiB in {segs} segments:"
                  f" {gbs:.2f} GB/s ({dt * 1000:.0f} ms)")
    finally:
        if args.dir is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
