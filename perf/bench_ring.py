"""Throughput of one shared-memory ring between two processes.

The producer runs in a forked child and the consumer in the parent, each pinned to its own CPU
when the machine has two.  Both use the real blocking paths (``wait_space`` when full, ``wait``
when empty), so the numbers include doorbells and backpressure.

    python -m perf.bench_ring                 # all cases, best of 3 rounds each
    python -m perf.bench_ring --case small --seconds 2 --rounds 5

Wall-clock rates, so other load on the machine lowers them; the best round is reported.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import time

from broker.shm.ring import Ring

MIB = 1 << 20


def _pin(cpu: int) -> None:
    try:
        cpus = sorted(os.sched_getaffinity(0))
        if len(cpus) >= 2:
            os.sched_setaffinity(0, {cpus[cpu % len(cpus)]})
    except (AttributeError, OSError):
        pass


def _produce(ring: Ring, count: int, size: int, batch: int) -> None:
    _pin(0)
    payload = os.urandom(size)
    sent = 0
    if batch <= 1:
        put = ring.try_put
        while sent < count:
            if put(1, payload):
                sent += 1
            else:
                ring.wait_space(size, timeout=1.0)
    else:
        chunk = [payload] * batch
        while sent < count:
            want = min(batch, count - sent)
            n = ring.put_batch(1, chunk if want == batch else chunk[:want])
            sent += n
            if n < want:
                ring.wait_space(size, timeout=1.0)
    while not ring.put_batch(2, [b""]):  # kind 2 = end of stream
        ring.wait_space(0, timeout=1.0)


def _consume(ring: Ring, batch: int, copy: bool, size: int) -> int:
    _pin(1)
    received = 0
    sink = bytearray(max(size, 1))
    while True:
        got = ring.peek_batch(batch) if batch > 1 else [m] if (m := ring.peek()) else []
        if not got:
            ring.wait(timeout=1.0)
            continue
        done = False
        for kind, view in got:
            if kind == 2:
                done = True
                break
            if copy:
                sink[: len(view)] = view
            received += 1
        del view
        got.clear()
        ring.advance()
        if done:
            return received


def run_case(count: int, size: int, capacity: int, batch: int, copy: bool) -> dict:
    ctx = mp.get_context("fork")
    with Ring.create(capacity) as ring:
        child = ctx.Process(target=_produce, args=(ring, count, size, batch))
        start = time.perf_counter()
        child.start()
        received = _consume(ring, batch, copy, size)
        elapsed = time.perf_counter() - start
        child.join()
        stats = ring.stats
    if received != count or child.exitcode != 0:
        raise RuntimeError(f"received {received}/{count}, producer exit {child.exitcode}")
    return {
        "size": size,
        "batch": batch,
        "copy": copy,
        "messages": count,
        "seconds": round(elapsed, 3),
        "msgs_per_s": round(count / elapsed),
        "gb_per_s": round(count * size / elapsed / 1e9, 3),
        "full_events": stats.full_events,
    }


CASES = {
    "small": [dict(size=64, batch=1, copy=False), dict(size=64, batch=256, copy=False)],
    "large": [dict(size=64 * 1024, batch=1, copy=False), dict(size=64 * 1024, batch=1, copy=True)],
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--case", choices=[*CASES, "all"], default="all")
    ap.add_argument("--seconds", type=float, default=2.0, help="rough duration per case")
    ap.add_argument("--rounds", type=int, default=3, help="runs per case; the best is kept")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    results = []
    for name, variants in CASES.items():
        if args.case not in (name, "all"):
            continue
        for v in variants:
            # Calibrate: a short run, then scale the count to the requested duration.
            small = v["size"] < 4096
            capacity = 4 * MIB if small else 16 * MIB
            probe = run_case(20_000 if small else 2_000, capacity=capacity, **v)
            count = max(1000, int(probe["msgs_per_s"] * args.seconds))
            runs = [run_case(count, capacity=capacity, **v) for _ in range(args.rounds)]
            results.append(max(runs, key=lambda r: r["msgs_per_s"]))
    if args.json:
        print(json.dumps(results, indent=1))
        return
    print(f"# {platform.processor() or platform.machine()}, python {platform.python_version()}")
    for r in results:
        mode = f"batch {r['batch']}" if r["batch"] > 1 else "per message"
        copy = ", consumer copies" if r["copy"] else ""
        print(
            f"{r['size']:>6} B  {mode:<12}{copy:<18} {r['msgs_per_s']:>11,} msg/s "
            f"{r['gb_per_s']:7.2f} GB/s  full={r['full_events']}"
        )


if __name__ == "__main__":
    main()
