"""Live progress (rich, on stderr) and the final summary table; pure render functions over plain values."""

from __future__ import annotations

import sys

from rich.console import Console
from rich.live import Live
from rich.table import Table

from perf.counters import BYTES, ERRORS, RECORDS, REQUESTS


def render_progress(label: str, counts: list[int], target: int, elapsed: float, rate: float) -> Table:
    t = Table(title=f"hpbroker perf {label}", show_header=True, expand=False)
    for col in ("elapsed", "records", "done", "records/s (now)", "MB/s (avg)", "requests", "errors"):
        t.add_column(col, justify="right")
    done = counts[RECORDS] / target * 100 if target else 100.0
    t.add_row(f"{elapsed:6.1f} s", f"{counts[RECORDS]:,}", f"{min(done, 100):5.1f}%", f"{rate:,.0f}",
              f"{counts[BYTES] / max(elapsed, 1e-9) / 1e6:,.1f}", f"{counts[REQUESTS]:,}", str(counts[ERRORS]))
    return t


def render_summary(result: dict) -> Table:
    t = Table(title=f"{result['mode']} ({result['client']})", show_header=False)
    t.add_column("metric")
    t.add_column("value", justify="right")
    t.add_row("records", f"{result['records']:,}")
    t.add_row("records/s", f"{result['records_per_sec']:,.0f}")
    t.add_row("MB/s", f"{result['mb_per_sec']:,.1f}")
    t.add_row("elapsed", f"{result['elapsed_s']:.3f} s")
    if result.get("client_cpu_s") is not None:
        t.add_row("load processes' CPU", f"{result['client_cpu_s']:.2f} s")
    lat = result["latency_ms"]
    t.add_row("latency ms p50 / p90 / p99", f"{lat['p50']:.3f} / {lat['p90']:.3f} / {lat['p99']:.3f}")
    t.add_row("latency ms p99.9 / max", f"{lat['p999']:.3f} / {lat['max']:.3f}")
    if "produce_latency_ms" in result:
        pl = result["produce_latency_ms"]
        t.add_row("produce-to-ack ms p50 / p99 / max", f"{pl['p50']:.3f} / {pl['p99']:.3f} / {pl['max']:.3f}")
    t.add_row("errors", str(result["errors"]))
    for f in result.get("failures", []):
        t.add_row("failure", f)
    return t


class Progress:
    """A rich Live view refreshed by the runner; silent when disabled or when stderr is not a terminal."""

    def __init__(self, enabled: bool = True):
        self.console = Console(file=sys.stderr)
        self.enabled = enabled and self.console.is_terminal
        self.live: Live | None = None
        self._last = (0.0, 0)

    def __enter__(self) -> "Progress":
        self._last = (0.0, 0)
        if self.enabled:
            self.live = Live(console=self.console, auto_refresh=False, transient=False)
            self.live.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self.live is not None:
            self.live.__exit__(*exc)
            self.live = None

    def update(self, label: str, counts: list[int], target: int, elapsed: float) -> None:
        t0, r0 = self._last
        rate = (counts[RECORDS] - r0) / (elapsed - t0) if elapsed > t0 else 0.0
        self._last = (elapsed, counts[RECORDS])
        if self.live is not None:
            self.live.update(render_progress(label, counts, target, elapsed, rate), refresh=True)
