"""Compaction benchmark: how fast one cleaning pass reads a partition and writes what survives.

Run: ``python -m perf.bench_compaction [--records 1000000] [--record-bytes 100] [--repeat 3]``
In-process, one partition, no network: the pass the owner's cleaner thread runs (``cleaner.plan``,
``cleaner.clean``, ``PartitionLog.apply_cleaning``) over closed segments of 64 MiB. Rows vary the number of
distinct keys (how much a pass removes) and the producer's codec (compressed batches that lose records are
decompressed and compressed again). Prints the best of ``--repeat`` runs per row.
"""

from __future__ import annotations

import argparse
import os
import shutil
import struct
import tempfile
import time

import crc32c
import numpy as np

import hotpath
from broker.log import LogConfig, PartitionLog, cleaner
from netio.codec.records import compress

CODECS = {"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}


def make_batches(records: int, record_bytes: int, keys: int, per_batch: int, codec: int) -> list[bytes]:
    rng = np.random.default_rng(7)
    out = []
    ts = int(time.time() * 1000) - 3_600_000
    for start in range(0, records, per_batch):
        n = min(per_batch, records - start)
        ks = rng.integers(0, keys, n)
        recs = [(b"key-%08d" % k, os.urandom(record_bytes // 2).hex().encode()[:record_bytes]) for k in ks]
        raw = hotpath.build_records_batch(recs, timestamps=np.full(n, ts, np.int64))
        if codec:
            body = compress(codec, raw[61:])
            head = bytearray(raw[:61])
            struct.pack_into(">h", head, 21, codec)
            struct.pack_into(">i", head, 8, 61 - 12 + len(body))
            struct.pack_into(">I", head, 17, crc32c.crc32c(bytes(head[21:]) + body))
            raw = bytes(head) + body
        out.append(bytes(raw))
    return out


def one_pass(root: str, batches: list[bytes]) -> tuple[float, int, int, int, int]:
    """(seconds, records read, records removed, bytes before, bytes after) of one pass over `batches`."""
    path = os.path.join(root, "bench-0")
    shutil.rmtree(path, ignore_errors=True)
    for name in os.listdir(root):  # the previous row's checkpoints: this partition starts over
        if name.endswith("checkpoint"):
            os.unlink(os.path.join(root, name))
    log = PartitionLog.open(path, LogConfig(segment_bytes=64 << 20, max_message_bytes=16 << 20, retention_ms=-1,
                                            cleanup_policy="compact", min_cleanable_dirty_ratio=0.0))
    try:
        for b in batches:
            log.append(b)
        log.roll()
        t = time.perf_counter()
        plan = cleaner.plan(log, int(time.time() * 1000))
        outcome = cleaner.clean(plan)
        log.apply_cleaning(outcome)
        dt = time.perf_counter() - t
        return dt, outcome.records_read, outcome.records_removed, outcome.bytes_before, outcome.bytes_after
    finally:
        log.close(clean=False)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--dir", default=None, help="data directory (default: a temp dir under /tmp)")
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--record-bytes", type=int, default=100)
    ap.add_argument("--per-batch", type=int, default=500, help="records per producer batch")
    ap.add_argument("--repeat", type=int, default=3, help="runs per row; the best is shown (shared machines)")
    args = ap.parse_args(argv)
    hotpath.warmup()
    root = args.dir or tempfile.mkdtemp(prefix="hpbroker-bench-compaction-")
    try:
        print(f"{args.records} records of {args.record_bytes} B, {args.per_batch} per batch")
        print(f"{'keys':>10} {'codec':>6} {'records/s':>12} {'MB/s read':>10} {'removed':>8} {'MB in':>8} "
              f"{'MB out':>8} {'seconds':>8}")
        for keys, codec in ((args.records // 10, "none"), (args.records, "none"), (1000, "none"),
                            (args.records // 10, "lz4"), (args.records // 10, "zstd")):
            batches = make_batches(args.records, args.record_bytes, keys, args.per_batch, CODECS[codec])
            dt, read, removed, before, after = min(one_pass(root, batches) for _ in range(args.repeat))
            print(f"{keys:>10} {codec:>6} {read / dt:>12,.0f} {before / dt / 1e6:>10.1f} "
                  f"{removed / max(read, 1):>8.1%} {before / 1e6:>8.1f} {after / 1e6:>8.1f} {dt:>8.2f}")
    finally:
        if args.dir is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
