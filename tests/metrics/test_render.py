"""Dashboard renderers on fixed snapshots: what an operator reads in an 80x24 terminal."""

from __future__ import annotations

from rich.console import Console

from tests.metrics.snapshots import BUSY, DOWN
from tools.top.render import (make_layout, render_groups, render_header, render_latency, render_workers,
                              short_bytes, sparkline)
from tools.top.snapshot import Header


def draw(renderable, width: int = 80, height: int | None = None) -> list[str]:
    c = Console(width=width, height=height or 24, record=True, force_terminal=False, color_system=None)
    with c.capture() as cap:
        c.print(renderable, height=height) if height else c.print(renderable)
    return cap.get().splitlines()


def test_full_frame_fits_80x24_and_shows_every_section():
    lines = draw(make_layout(BUSY, 80, 24), 80, 24)
    assert len(lines) == 24
    assert all(len(line) <= 80 for line in lines)
    text = "\n".join(lines)
    for needle in ("hpbroker 0.1.0", "up 01:02:05", "net 2 io 2", "PLAINTEXT://127.0.0.1:9092",
                   "2.5 MiB/s", "5.0k rec/s", "workers", "net 0", "123456", "210M", "93%", "down",
                   "busiest partitions", "orders-0", "23.9k*", "consumer groups", "billing", "1.2k",
                   "Produce", "4.06", "45", "q quit"):
        assert needle in text, needle
    assert "more" in text  # twelve partitions do not fit: the panel says how many are hidden


def test_bigger_terminal_shows_more_rows():
    small = "\n".join(draw(make_layout(BUSY, 80, 24), 80, 24))
    big = "\n".join(draw(make_layout(BUSY, 120, 50), 120, 50))
    assert "orders-11" not in small and "orders-11" in big


def test_unreachable_endpoint_is_said_plainly():
    text = "\n".join(draw(make_layout(DOWN, 80, 24), 80, 24))
    assert "cannot read http://127.0.0.1:9/metrics" in text


def test_sparkline_scales_to_its_maximum_and_keeps_the_last_values():
    assert sparkline((0.0, 5.0, 10.0), 10) == "▁▅█"
    assert sparkline((1.0, 2.0, 3.0, 100.0, 8.0), 2) == "█▂"  # only the last `width` values
    assert sparkline((0.0, 0.0), 5) == "▁▁"
    assert sparkline((), 5) == ""


def test_workers_table_marks_restarts_and_dead_workers():
    text = "\n".join(draw(render_workers(BUSY.workers), 60))
    assert "net 1 ↻2" in text
    assert "io 1" in text and "down" in text


def test_latency_without_observations_shows_dashes():
    text = "\n".join(draw(render_latency(BUSY.latency), 50))
    row = next(line for line in text.splitlines() if "OffsetCommit" in line)
    assert row.split()[-2:] == ["-", "-"]


def test_groups_panel_without_group_metrics():
    assert "no consumer-group metrics" in "\n".join(draw(render_groups(None), 50))
    assert "no consumer groups" in "\n".join(draw(render_groups(()), 50))


def test_short_bytes():
    assert [short_bytes(n) for n in (512, 9.5 * 1024, 210 * 2**20, 1.2 * 2**30)] == ["512B", "9.5K", "210M", "1.2G"]


def test_header_shows_quota_throttling_only_when_it_happens():
    quiet = "\n".join(draw(render_header(Header("u", "0.1.0", 5.0, "PLAINTEXT://h:1", "2", "2"))))
    assert "throttled" not in quiet
    busy = "\n".join(draw(render_header(Header("u", "0.1.0", 5.0, "PLAINTEXT://h:1", "2", "2",
                                                throttled_per_s=2.5))))
    assert "throttled 2.5/s" in busy and "PLAINTEXT://h:1" in busy
