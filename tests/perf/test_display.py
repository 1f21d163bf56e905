"""Progress and summary renderers on fixed snapshots."""

import io

from rich.console import Console

from perf.display import render_progress, render_summary


def text(renderable) -> str:
    console = Console(width=140, record=True, file=io.StringIO())
    console.print(renderable)
    return console.export_text()


def test_progress_shows_counts_rate_and_share_done():
    out = text(render_progress("produce", [250_000, 256_000_000, 2, 300, 0, 0], 1_000_000, 2.0, 125_000.0))
    assert "250,000" in out and "25.0%" in out and "125,000" in out and "128.0" in out and "300" in out


def test_summary_shows_percentiles_and_errors():
    result = {"mode": "e2e", "client": "native", "records": 1000, "records_per_sec": 500.0, "mb_per_sec": 0.5,
              "elapsed_s": 2.0, "errors": 0, "failures": ["one broken pipe"],
              "latency_ms": {"p50": 1.5, "p90": 2.0, "p99": 3.25, "p999": 4.0, "max": 9.5, "mean": 1.7},
              "produce_latency_ms": {"p50": 0.5, "p90": 0.7, "p99": 0.9, "p999": 1.0, "max": 1.1, "mean": 0.6}}
    out = text(render_summary(result))
    assert "e2e (native)" in out and "1,000" in out
    assert "1.500 / 2.000 / 3.250" in out and "4.000 / 9.500" in out
    assert "0.500 / 0.900 / 1.100" in out and "one broken pipe" in out
