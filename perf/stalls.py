"""What the machine takes away from a process that never sleeps: gaps in a spinning clock, per core.

One process pinned to each core reads CLOCK_MONOTONIC in a loop. Two reads further apart than the
threshold mean the core ran something else in between: an interrupt, a kernel thread, or, on a VM, the
host not running the vCPU at all. A broker's request whose process is on that core waits the gap out, and
so does a fixed-rate client's next send; W4's p99 is 1% of its records, so a machine that takes a few
milliseconds from a core every second takes a fixed share of that budget whatever runs on it. The suite
records this beside its rows; `hpbroker perf stalls` measures it on its own.

    hpbroker perf stalls --seconds 10 --threshold-us 500
"""

from __future__ import annotations

import json
import os
import signal
import time
from dataclasses import dataclass

THRESHOLD_US = 500  # well above a loop turn (~0.1 µs) and a timer tick's work; below W4's 1 ms target
MAX_GAPS = 100_000  # a child reports at most this many (a core lost every millisecond for 100 s)


@dataclass
class CoreStalls:
    cpu: int
    seconds: float               # how long the core was watched
    gaps: list[tuple[float, float]]  # (start, length) in seconds, start from the watch's start

    @property
    def lost(self) -> float:
        return sum(g for _, g in self.gaps)

    @property
    def longest(self) -> float:
        return max((g for _, g in self.gaps), default=0.0)

    def period(self) -> float | None:
        """The median time between the starts of consecutive gaps: a machine that stalls on a timer shows
        it here (None with fewer than three gaps)."""
        starts = [s for s, _ in self.gaps]
        if len(starts) < 3:
            return None
        steps = sorted(b - a for a, b in zip(starts, starts[1:]))
        return steps[len(steps) // 2]

    def summary(self) -> dict:
        p = self.period()
        return {"cpu": self.cpu, "seconds": round(self.seconds, 3), "gaps": len(self.gaps),
                "lost_ms": round(self.lost * 1e3, 3),
                "lost_fraction": round(self.lost / self.seconds, 6) if self.seconds > 0 else 0.0,
                "longest_ms": round(self.longest * 1e3, 3),
                "period_s": None if p is None else round(p, 3)}


def together(cores: list[CoreStalls]) -> float:
    """Seconds during which every core was inside a gap at once: the whole machine stopped (with one core,
    its own gaps)."""
    if not cores:
        return 0.0
    spans = [(s, s + g) for s, g in cores[0].gaps]
    for core in cores[1:]:
        spans = [(max(a, c), min(b, d)) for a, b in spans for c, d in ((s, s + g) for s, g in core.gaps)
                 if max(a, c) < min(b, d)]
    return sum(b - a for a, b in spans)


def _spin(cpu: int, seconds: float, threshold_ns: int, start_ns: int) -> list[tuple[int, int]]:
    """Pinned to `cpu`, spin until `start_ns + seconds` (CLOCK_MONOTONIC): the gaps over `threshold_ns`."""
    os.sched_setaffinity(0, {cpu})
    clock = time.clock_gettime_ns
    mono = time.CLOCK_MONOTONIC
    end = start_ns + int(seconds * 1e9)
    while clock(mono) < start_ns:  # every child starts watching at the same instant
        pass
    gaps: list[tuple[int, int]] = []
    last = clock(mono)
    while last < end:
        now = clock(mono)
        if now - last > threshold_ns and len(gaps) < MAX_GAPS:
            gaps.append((last - start_ns, now - last))
        last = now
    return gaps


def measure(seconds: float = 3.0, threshold_us: float = THRESHOLD_US, cpus: list[int] | None = None,
            on_start=None) -> list[CoreStalls]:
    """Watch each of `cpus` (default: every core this process may run on) for `seconds`, one forked
    process per core. `on_start(pids)` is called once the watchers are running (tests stop one to make
    a gap of known length)."""
    cpus = sorted(os.sched_getaffinity(0)) if cpus is None else list(cpus)
    start_ns = time.clock_gettime_ns(time.CLOCK_MONOTONIC) + 50_000_000  # time for every fork to get going
    children: list[tuple[int, int, int]] = []  # (cpu, pid, read end)
    try:
        for cpu in cpus:
            r, w = os.pipe()
            pid = os.fork()
            if pid == 0:  # the watcher: spin, write the gaps, leave without running the parent's cleanup
                code = 1
                try:
                    os.close(r)
                    gaps = _spin(cpu, seconds, int(threshold_us * 1e3), start_ns)
                    data = json.dumps(gaps).encode()
                    view = memoryview(data)
                    while view:
                        view = view[os.write(w, view):]
                    code = 0
                finally:
                    os._exit(code)
            os.close(w)
            children.append((cpu, pid, r))
        if on_start is not None:
            on_start([pid for _, pid, _ in children])
        out = []
        while children:
            cpu, pid, r = children[0]
            chunks = []
            while chunk := os.read(r, 1 << 16):
                chunks.append(chunk)
            os.close(r)
            _, status = os.waitpid(pid, 0)
            children.pop(0)  # reaped: its pid may belong to another process from now on
            if not os.WIFEXITED(status) or os.WEXITSTATUS(status) != 0:
                raise RuntimeError(f"the watcher of cpu {cpu} failed (wait status {status})")
            gaps = json.loads(b"".join(chunks))
            out.append(CoreStalls(cpu, seconds, [(s / 1e9, g / 1e9) for s, g in gaps]))
        return out
    finally:
        for _, pid, r in children:  # only those not reaped (an error or an interrupt on the way)
            os.close(r)
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)


def describe(cores: list[CoreStalls], threshold_us: float = THRESHOLD_US) -> str:
    """One line for RESULTS.md: per core the gaps, the share of time lost, the longest and the period."""
    parts = []
    for c in cores:
        s = c.summary()
        text = (f"cpu{c.cpu} {s['gaps']} gap{'s' if s['gaps'] != 1 else ''}, {100 * s['lost_fraction']:.2f}% "
                f"of the time, longest {s['longest_ms']:.1f} ms")
        if s["period_s"] is not None:
            text += f", one every {s['period_s']:.2f} s"
        parts.append(text)
    seconds = max((c.seconds for c in cores), default=0.0)
    both = together(cores) * 1e3
    return (f"{seconds:g} s of a spinning clock on each core, gaps over {threshold_us:g} µs: " + "; ".join(parts)
            + (f"; every core stopped at once for {both:.1f} ms" if len(cores) > 1 else ""))


def report(cores: list[CoreStalls]) -> dict:
    return {"cores": [c.summary() for c in cores], "all_stopped_ms": round(together(cores) * 1e3, 3),
            "gaps": {c.cpu: [[round(s, 6), round(g * 1e3, 3)] for s, g in c.gaps] for c in cores}}
