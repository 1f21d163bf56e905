"""What one hand-off between two sleeping processes costs: a doorbell ping-pong.

Two processes take turns: the first rings the second's doorbell and sleeps in its selector until the
second rings back; the second sleeps until rung and answers at once. Between rounds the first waits
(sleeping, as a worker between requests does). Each round measures the time the first process spends in
its ring (the waker's syscall, including what the kernel does to wake the other side) and the whole
round trip, with both processes on one CPU and on two.

    python -m perf.bench_wakeup                 # 2000 rounds, 500 us apart
    python -m perf.bench_wakeup --rounds 5000 --gap-us 200

The workers' hand-offs are these doorbells (``broker.shm.doorbell``) waited on with a selector; a
Produce request crosses two of them inside the broker (to its partition's owner and back).
"""

from __future__ import annotations

import argparse
import os
import selectors
import time

from broker.shm.doorbell import Doorbell
from broker.shm.region import unique_name


def _answer(bell_in: Doorbell, bell_out: Doorbell, rounds: int, cpu: int) -> None:
    os.sched_setaffinity(0, {cpu})
    sel = selectors.DefaultSelector()
    sel.register(bell_in.fileno(), selectors.EVENT_READ)
    for _ in range(rounds):
        while not sel.select(1.0):
            pass
        bell_in.drain()
        bell_out.ring()


def run(rounds: int, gap_us: float, cpus: tuple[int, int]) -> dict:
    """Percentiles (us) of the ring and of the round trip, the answering process pinned to cpus[1]."""
    ping, pong = Doorbell.create(unique_name("bench-ping")), Doorbell.create(unique_name("bench-pong"))
    try:
        pid = os.fork()
        if pid == 0:
            try:
                _answer(ping, pong, rounds + 1, cpus[1])
            finally:
                os._exit(0)
        os.sched_setaffinity(0, {cpus[0]})
        sel = selectors.DefaultSelector()
        sel.register(pong.fileno(), selectors.EVENT_READ)
        rings, trips = [], []
        time.sleep(0.2)
        for i in range(rounds + 1):
            t0 = time.perf_counter_ns()
            ping.ring()
            t1 = time.perf_counter_ns()
            while not sel.select(1.0):
                pass
            t2 = time.perf_counter_ns()
            pong.drain()
            if i:  # the first round starts both sides
                rings.append(t1 - t0)
                trips.append(t2 - t0)
            time.sleep(gap_us / 1e6)
        os.waitpid(pid, 0)
    finally:
        for bell in (ping, pong):
            bell.close()
            bell.unlink()
    rings.sort()
    trips.sort()

    def pct(v: list, q: float) -> float:
        return v[min(len(v) - 1, int(q * len(v)))] / 1e3

    return {"ring_p50": pct(rings, 0.5), "ring_p90": pct(rings, 0.9),
            "trip_p50": pct(trips, 0.5), "trip_p90": pct(trips, 0.9), "trip_p99": pct(trips, 0.99)}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=2000)
    ap.add_argument("--gap-us", type=float, default=500.0, help="sleep between rounds")
    args = ap.parse_args(argv)
    cpus = sorted(os.sched_getaffinity(0))
    cases = [("one CPU", (cpus[0], cpus[0]))]
    if len(cpus) >= 2:
        cases.append(("two CPUs", (cpus[0], cpus[1])))
    print(f"{'placement':<10} {'ring p50':>9} {'ring p90':>9} {'trip p50':>9} {'trip p90':>9} {'trip p99':>9}  (us)")
    for label, pair in cases:
        r = run(args.rounds, args.gap_us, pair)
        print(f"{label:<10} {r['ring_p50']:9.1f} {r['ring_p90']:9.1f} {r['trip_p50']:9.1f} {r['trip_p90']:9.1f} "
              f"{r['trip_p99']:9.1f}")


if __name__ == "__main__":
    main()
