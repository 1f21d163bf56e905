"""Pure renderers: a `Snapshot` in, rich renderables out. `make_layout` fits everything to the terminal
(80x24 at least); each panel shows as many rows as its region has room for."""

from __future__ import annotations

from rich import box
from rich.layout import Layout
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from tools.top.snapshot import GroupRow, Header, LatencyRow, PartitionRow, Snapshot, Throughput, WorkerRow

SPARK = "▁▂▃▄▅▆▇█"


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def short_bytes(n: float) -> str:
    """At most five characters: 512B, 9.5K, 210M, 1.2G."""
    for unit in ("B", "K", "M", "G", "T"):
        if abs(n) < 1000 or unit == "T":
            return f"{n:.0f}{unit}" if unit == "B" or n >= 10 else f"{n:.1f}{unit}"
        n /= 1024
    return f"{n:.0f}T"


def human_count(n: float) -> str:
    for unit in ("", "k", "M", "G"):
        if abs(n) < 1000 or unit == "G":
            return f"{n:.0f}{unit}" if unit == "" else f"{n:.1f}{unit}"
        n /= 1000
    return f"{n:.1f}G"


def duration(s: float) -> str:
    s = int(s)
    d, s = divmod(s, 86400)
    h, s = divmod(s, 3600)
    m, s = divmod(s, 60)
    return f"{d}d{h:02d}h{m:02d}m" if d else f"{h:02d}:{m:02d}:{s:02d}"


def sparkline(values: tuple[float, ...], width: int) -> str:
    """The last `width` values as block characters scaled to their maximum (blank: no data yet)."""
    vals = list(values)[-width:] if width > 0 else []
    top = max(vals, default=0.0)
    if top <= 0:
        return SPARK[0] * len(vals)
    return "".join(SPARK[min(len(SPARK) - 1, int(v / top * (len(SPARK) - 1) + 0.5))] for v in vals)


def render_header(h: Header) -> Text:
    t = Text(no_wrap=True, overflow="ellipsis")
    t.append("hpbroker ", style="bold cyan")
    t.append(f"{h.version}  ")
    if h.error:
        t = Text(f"hpbroker top: {h.error}\nretrying every second; q quits", style="bold red")
        return t
    t.append(f"up {duration(h.uptime_s)}  ")
    t.append(f"net {h.network_threads} io {h.io_threads}  ", style="dim")
    if h.throttled_per_s > 0:  # clients over their quotas: worth a glance before the listeners
        n = h.throttled_per_s
        t.append(f"throttled {n:.1f}/s  " if n < 10 else f"throttled {human_count(n)}/s  ", style="bold yellow")
    t.append(h.listeners or "-")
    t.append("\n")
    t.append(h.url, style="dim")
    t.append("   q quit", style="dim")
    return t


def render_throughput(t: Throughput, width: int = 80) -> Text:
    spark_w = max(0, width - 34)
    out = Text(no_wrap=True, overflow="crop")
    out.append("produce ", style="bold green")
    out.append(f"{human_bytes(t.bytes_in_per_s) + '/s':>12} {human_count(t.records_in_per_s) + ' rec/s':>11} ")
    out.append(sparkline(t.history_in, spark_w), style="green")
    out.append("\nconsume ", style="bold magenta")
    out.append(f"{human_bytes(t.bytes_out_per_s) + '/s':>12} {'':>11} ")
    out.append(sparkline(t.history_out, spark_w), style="magenta")
    return out


def _table(first: str, *numbers: tuple[str, int]) -> Table:
    """The first (name) column takes what is left and gives way with an ellipsis; numbers keep their width."""
    table = Table(box=None, expand=True, pad_edge=False, padding=0, show_header=True,
                  header_style="bold")
    table.add_column(first, no_wrap=True, overflow="ellipsis", ratio=1)
    for name, width in numbers:
        table.add_column(name, justify="right", no_wrap=True, overflow="crop", width=width + 1)
    return table


def _more(table: Table, left: int, cols: int) -> None:
    if left > 0:
        table.add_row(f"+{left} more", *[""] * (cols - 1), style="dim")


def render_workers(rows: tuple[WorkerRow, ...], max_rows: int = 100) -> Table:
    table = _table("worker", ("pid", 7), ("cpu%", 4), ("rss", 5), ("req/s", 5), ("ring", 4))
    shown = rows if len(rows) <= max_rows else rows[:max(0, max_rows - 1)]
    for w in shown:
        style = "red" if not w.pid else ("yellow" if w.ring_fill > 0.8 else None)
        name = f"{'net' if w.role == 'network' else w.role} {w.index}" + (f" ↻{w.restarts}" if w.restarts else "")
        table.add_row(name, str(w.pid) if w.pid else "down", f"{w.cpu_pct:.0f}", short_bytes(w.rss_bytes),
                      human_count(w.requests_per_s), f"{w.ring_fill * 100:.0f}%", style=style)
    _more(table, len(rows) - len(shown), 6)
    return table


def render_partitions(rows: tuple[PartitionRow, ...], max_rows: int = 100) -> Table:
    table = _table("partition", ("rec/s", 6), ("end", 7), ("disk", 5))
    shown = rows if len(rows) <= max_rows else rows[:max(0, max_rows - 1)]
    for p in shown:
        lagging = p.high_watermark != p.log_end_offset
        table.add_row(f"{p.topic}-{p.partition}", human_count(p.records_per_s),
                      human_count(p.log_end_offset) + ("*" if lagging else ""), short_bytes(p.size_bytes))
    _more(table, len(rows) - len(shown), 4)
    return table


def render_groups(rows: tuple[GroupRow, ...] | None, max_rows: int = 100):
    if rows is None:
        return Text("no consumer-group metrics from this broker", style="dim")
    if not rows:
        return Text("no consumer groups with committed offsets", style="dim")
    table = _table("group", ("parts", 5), ("lag", 6))
    shown = rows if len(rows) <= max_rows else rows[:max(0, max_rows - 1)]
    for g in shown:
        table.add_row(g.group, str(g.partitions), human_count(g.lag), style="yellow" if g.lag else None)
    _more(table, len(rows) - len(shown), 3)
    return table


def _ms(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:.2f}" if v < 10 else f"{v:.0f}"


def render_latency(rows: tuple[LatencyRow, ...], max_rows: int = 100) -> Table:
    table = _table("api", ("req/s", 5), ("p50ms", 6), ("p99ms", 6))
    shown = rows if len(rows) <= max_rows else rows[:max(0, max_rows - 1)]
    for r in shown:
        table.add_row(r.api, human_count(r.requests_per_s), _ms(r.p50_ms), _ms(r.p99_ms))
    _more(table, len(rows) - len(shown), 4)
    return table


def make_layout(s: Snapshot, width: int = 80, height: int = 24) -> Layout:
    """The whole frame for a `width` x `height` terminal."""
    root = Layout()
    if s.header.error:
        root.update(Panel(render_header(s.header), title="hpbroker top"))
        return root
    header_h, tput_h = 2, 4
    body = max(6, height - header_h - tput_h)
    mid_h = body // 2
    low_h = body - mid_h
    rows_mid = max(1, mid_h - 3)  # panel borders and the table heading
    rows_low = max(1, low_h - 3)
    root.split_column(Layout(name="header", size=header_h), Layout(name="tput", size=tput_h),
                      Layout(name="mid", size=mid_h), Layout(name="low", size=low_h))
    root["header"].update(render_header(s.header))
    root["tput"].update(Panel(render_throughput(s.throughput, width - 4), title="throughput", box=box.ROUNDED))
    root["mid"].split_row(Layout(name="workers", ratio=11), Layout(name="latency", ratio=9))
    root["low"].split_row(Layout(name="partitions", ratio=11), Layout(name="groups", ratio=9))
    root["workers"].update(Panel(render_workers(s.workers, rows_mid), title="workers", box=box.ROUNDED))
    root["latency"].update(Panel(render_latency(s.latency, rows_mid), title="latency (total)", box=box.ROUNDED))
    root["partitions"].update(Panel(render_partitions(s.partitions, rows_low), title="busiest partitions",
                                    box=box.ROUNDED))
    root["groups"].update(Panel(render_groups(s.groups, rows_low), title="consumer groups", box=box.ROUNDED))
    return root
