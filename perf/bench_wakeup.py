"""What one hand-off between two sleeping processes costs: a doorbell ping-pong.

Two processes take turns: the first rings the second's doorbell and sleeps in its selector until the
second rings back; the second sleeps until rung and answers at once. Between rounds the first waits
(sleeping, as a worker between requests does). Each round measures the time the first process spends in
its ring (the waker's syscall, including what the kernel does to wake the other side) and the whole
round trip, with both processes on one CPU and on two. The second process also reports the CPU time it
used per round: being woken, answering and going back to sleep, which is what each hand-off costs a
worker in CPU besides its latency.

    python -m perf.bench_wakeup                 # 2000 rounds, 500 us apart
    python -m perf.bench_wakeup --rounds 5000 --gap-us 200

The workers' hand-offs are these doorbells (``broker.shm.doorbell``) waited on with a selector; a
Produce request crosses two of them inside the broker (to its partition's owner and back).

A second table times the work a woken worker then does, here an owner's append of one 1 KiB batch to a
partition log in a temporary directory: back to back, after sleeping the gap, and after busy-waiting
the gap. Where a sleeping CPU loses what its caches held, the second row shows what that costs each
request at a low rate. The last rows sweep 1 to 64 MiB through the caches between appends instead, with
no sleep: the sweep whose append costs what a worker's does in the broker says how much of its cache
state a worker loses between requests.
"""

from __future__ import annotations

import argparse
import os
import selectors
import signal
import struct
import time
import traceback

from broker.shm.doorbell import Doorbell
from broker.shm.region import unique_name


def _answer(bell_in: Doorbell, bell_out: Doorbell, rounds: int, cpu: int, report: int) -> None:
    """Answer ``rounds`` rings; write to ``report`` the CPU seconds used after the first (which starts both
    sides)."""
    os.sched_setaffinity(0, {cpu})
    sel = selectors.DefaultSelector()
    sel.register(bell_in.fileno(), selectors.EVENT_READ)
    start = 0.0
    for i in range(rounds):
        while not sel.select(1.0):
            pass
        bell_in.drain()
        bell_out.ring()
        if i == 0:
            start = time.process_time()
    os.write(report, struct.pack("d", time.process_time() - start))


def run(rounds: int, gap_us: float, cpus: tuple[int, int]) -> dict:
    """Percentiles (us) of the ring and of the round trip, the answering process pinned to cpus[1], and
    the answering process's CPU per round (us)."""
    ping, pong = Doorbell.create(unique_name("bench-ping")), Doorbell.create(unique_name("bench-pong"))
    report_r, report_w = os.pipe()
    pid = 0
    try:
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                os.close(report_r)
                _answer(ping, pong, rounds + 1, cpus[1], report_w)
                code = 0
            except BaseException:
                traceback.print_exc()
            finally:
                os._exit(code)
        os.close(report_w)
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
                done, status = os.waitpid(pid, os.WNOHANG)
                if done:
                    pid = 0
                    raise _answer_failed(cpus[1], status)
            t2 = time.perf_counter_ns()
            pong.drain()
            if i:  # the first round starts both sides
                rings.append(t1 - t0)
                trips.append(t2 - t0)
            time.sleep(gap_us / 1e6)
        _, status = os.waitpid(pid, 0)
        pid = 0
        report = os.read(report_r, 8)
        if len(report) != 8:
            raise _answer_failed(cpus[1], status)
        (answer_cpu,) = struct.unpack("d", report)
    finally:
        if pid:  # stopped early (a signal, an error): the answering process would wait for rings forever
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        os.close(report_r)
        for bell in (ping, pong):
            bell.close()
            bell.unlink()
    rings.sort()
    trips.sort()

    def pct(v: list, q: float) -> float:
        return v[min(len(v) - 1, int(q * len(v)))] / 1e3

    return {"ring_p50": pct(rings, 0.5), "ring_p90": pct(rings, 0.9),
            "trip_p50": pct(trips, 0.5), "trip_p90": pct(trips, 0.9), "trip_p99": pct(trips, 0.99),
            "answer_cpu": answer_cpu / rounds * 1e6}


def _answer_failed(cpu: int, status: int) -> SystemExit:
    """Exit codes as the supervisor logs them: negative for the signal that killed the process."""
    return SystemExit(f"the answering process on CPU {cpu} failed (exit {os.waitstatus_to_exitcode(status)})")


SWEEP_MIB = (1, 4, 16, 64)  # memory swept through the caches between appends, in the last rows


def work_after_sleep(rounds: int, gap_us: float) -> dict:
    """Percentiles (us) of one 1 KiB append: back to back, after sleeping ``gap_us``, after spinning it, and
    after each sweep of SWEEP_MIB (one store per cache line, no sleep): how much cache a worker must have
    lost to pay what it pays in the broker."""
    import tempfile

    import numpy as np

    import hotpath
    from broker.log import LogConfig, PartitionLog, warmup

    hotpath.warmup()
    warmup()
    values = np.frombuffer(os.urandom(1024), np.uint8)
    batch = hotpath.build_batch(values, np.array([0, 1024], np.int64),
                                timestamps=np.array([int(time.time() * 1000)], np.int64)).tobytes()
    out = {}
    with tempfile.TemporaryDirectory(prefix="bench-wakeup-") as root:
        plog = PartitionLog.open(os.path.join(root, "t-0"), LogConfig(segment_bytes=1 << 30, retention_ms=-1))
        try:
            for _ in range(200):
                plog.append(batch)
            gap = gap_us / 1e6
            pauses = [("back to back", None), ("after a sleep", lambda: time.sleep(gap)),
                      ("after a spin", lambda: _spin(gap))]
            pauses += [(f"after {mib} MiB swept", _sweep(mib)) for mib in SWEEP_MIB]
            for label, pause in pauses:
                took = []
                for _ in range(rounds):
                    if pause is not None:
                        pause()
                    t0 = time.perf_counter_ns()
                    plog.append(batch)
                    took.append(time.perf_counter_ns() - t0)
                took.sort()
                out[label] = (took[len(took) // 2] / 1e3, took[int(len(took) * 0.9)] / 1e3,
                              sum(took) / len(took) / 1e3)
        finally:
            plog.close(clean=False)
    return out


def _sweep(mib: int):
    """A pause that stores to every cache line of ``mib`` MiB, evicting what the caches held."""
    import numpy as np

    buf = np.zeros(mib << 20, np.uint8)
    lines = buf[::64]

    def sweep() -> None:
        np.add(lines, 1, out=lines)

    return sweep


def _spin(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def _stop(signum, frame) -> None:
    raise SystemExit(128 + signum)  # unwinds through `run`, which unlinks its doorbells


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=2000)
    ap.add_argument("--gap-us", type=float, default=500.0, help="sleep between rounds")
    args = ap.parse_args(argv)
    cpus = sorted(os.sched_getaffinity(0))
    cases = [("one CPU", (cpus[0], cpus[0]))]
    if len(cpus) >= 2:
        cases.append(("two CPUs", (cpus[0], cpus[1])))
    print(f"{'placement':<10} {'ring p50':>9} {'ring p90':>9} {'trip p50':>9} {'trip p90':>9} {'trip p99':>9} "
          f"{'answer CPU':>11}  (us; CPU per round)")
    for label, pair in cases:
        r = run(args.rounds, args.gap_us, pair)
        print(f"{label:<10} {r['ring_p50']:9.1f} {r['ring_p90']:9.1f} {r['trip_p50']:9.1f} {r['trip_p90']:9.1f} "
              f"{r['trip_p99']:9.1f} {r['answer_cpu']:11.1f}")
    print()
    print(f"{'one 1 KiB append':<20} {'p50':>7} {'p90':>7} {'mean':>7}  (us; gap {args.gap_us:g} us)")
    for label, (p50, p90, mean) in work_after_sleep(args.rounds, args.gap_us).items():
        print(f"{label:<20} {p50:7.1f} {p90:7.1f} {mean:7.1f}")


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _stop)
    main()
