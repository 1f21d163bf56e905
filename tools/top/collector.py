"""Scrapes /metrics once a second and turns two consecutive scrapes into a `Snapshot` (rates, windowed
percentiles). The only module of `top` that does I/O."""

from __future__ import annotations

import time
import urllib.request
from collections import deque

from tools.top.promtext import Samples, parse, total
from tools.top.snapshot import (GroupRow, Header, LatencyRow, PartitionRow, Snapshot, Throughput,
                                WorkerRow)

HISTORY = 60
DEFAULT_URL = "http://127.0.0.1:9404/metrics"


def normalize_url(url: str) -> str:
    """`host:port` or a full URL; the path defaults to /metrics."""
    if "://" not in url:
        url = "http://" + url
    scheme, rest = url.split("://", 1)
    if "/" not in rest:
        rest += "/metrics"
    return f"{scheme}://{rest}"


def quantile(bounds: list[tuple[float, float]], q: float) -> float | None:
    """Quantile of a cumulative histogram [(upper bound, cumulative count)], interpolated in the bucket."""
    if not bounds or bounds[-1][1] <= 0:
        return None
    want = q * bounds[-1][1]
    prev_le, prev_c = 0.0, 0.0
    for le, c in bounds:
        if c >= want:
            if le == float("inf"):
                return prev_le
            if c == prev_c:
                return le
            return prev_le + (le - prev_le) * (want - prev_c) / (c - prev_c)
        prev_le, prev_c = le, c
    return prev_le


def _latency_buckets(s: Samples, stage: str) -> dict[str, list[tuple[float, float]]]:
    out: dict[str, dict[float, float]] = {}
    for lab, v in s.get("hpbroker_request_latency_seconds_bucket", ()):
        if lab.get("stage") == stage:
            out.setdefault(lab["api"], {})[float(lab["le"])] = v
    return {api: sorted(b.items()) for api, b in out.items()}


def build(url: str, cur: Samples, prev: Samples | None, dt: float, history: tuple[deque, deque]) -> Snapshot:
    """A snapshot from the current scrape, the previous one (for rates) and the rolling history."""
    def rate(name: str, **match) -> float:
        if prev is None or dt <= 0:
            return 0.0
        return max(0.0, (total(cur, name, **match) - total(prev, name, **match)) / dt)

    info = cur.get("hpbroker_info", [({}, 0)])[0][0]
    start = total(cur, "hpbroker_start_time_seconds")
    now = total(cur, "hpbroker_scrape_time_seconds") or time.time()
    throttled = sum(rate(f"hpbroker_quota_throttled_{kind}_total") for kind in ("produce", "fetch", "request"))
    header = Header(url, info.get("version", "?"), max(0.0, now - start) if start else 0.0,
                    info.get("listeners", ""), info.get("network_threads", "?"), info.get("io_threads", "?"),
                    throttled_per_s=throttled)

    bin_, bout = rate("hpbroker_bytes_in_total"), rate("hpbroker_bytes_out_total")
    if prev is not None:
        history[0].append(bin_)
        history[1].append(bout)
    tput = Throughput(bin_, bout, rate("hpbroker_records_in_total"), tuple(history[0]), tuple(history[1]))

    fills: dict[tuple[str, int], float] = {}
    caps = {(lab["network"], lab["io"]): v for lab, v in cur.get("hpbroker_ring_capacity_bytes", ())
            if lab.get("direction") == "request"}
    for lab, used in cur.get("hpbroker_ring_used_bytes", ()):
        if lab.get("direction") != "request":
            continue
        cap = caps.get((lab["network"], lab["io"])) or 1
        for key in (("network", int(lab["network"])), ("io", int(lab["io"]))):
            fills[key] = max(fills.get(key, 0.0), used / cap)
    workers = []
    for lab, up in cur.get("hpbroker_worker_up", ()):
        role, idx = lab["role"], int(lab["worker"])
        cpu = rate("hpbroker_process_cpu_seconds_total", role=role, worker=idx) * 100
        rss = total(cur, "hpbroker_process_resident_memory_bytes", role=role, worker=idx)
        name = "hpbroker_worker_requests_total" if role == "network" else "hpbroker_io_messages_total"
        workers.append(WorkerRow(role, idx, int(lab.get("pid", 0)) if up else 0, cpu, int(rss),
                                 rate(name, role=role, worker=idx), fills.get((role, idx), 0.0),
                                 int(total(cur, "hpbroker_worker_restarts_total", role=role, worker=idx))))

    parts = []
    hw = {(lab["topic"], lab["partition"]): v for lab, v in cur.get("hpbroker_partition_high_watermark", ())}
    size = {(lab["topic"], lab["partition"]): v for lab, v in cur.get("hpbroker_partition_size_bytes", ())}
    prev_leo = {}
    if prev is not None:
        prev_leo = {(lab["topic"], lab["partition"]): v for lab, v in prev.get("hpbroker_partition_log_end_offset", ())}
    for lab, leo in cur.get("hpbroker_partition_log_end_offset", ()):
        key = (lab["topic"], lab["partition"])
        r = max(0.0, (leo - prev_leo[key]) / dt) if key in prev_leo and dt > 0 else 0.0
        parts.append(PartitionRow(key[0], int(key[1]), r, int(leo), int(hw.get(key, -1)), int(size.get(key, 0))))
    parts.sort(key=lambda p: (-p.records_per_s, -p.log_end_offset, p.topic, p.partition))

    groups = None
    if "hpbroker_group_lag" in cur or "hpbroker_group_committed_offset" in cur:
        agg: dict[str, list[int]] = {}
        for lab, v in cur.get("hpbroker_group_lag", ()):
            g = agg.setdefault(lab["group"], [0, 0])
            g[0] += 1
            g[1] += int(v)
        groups = tuple(sorted((GroupRow(g, n, lag) for g, (n, lag) in agg.items()), key=lambda r: -r.lag))

    now_b = _latency_buckets(cur, "total")
    prev_b = _latency_buckets(prev, "total") if prev is not None else {}
    lat = []
    for api, buckets in now_b.items():
        before = dict(prev_b.get(api, ()))
        window = [(le, c - before.get(le, 0.0)) for le, c in buckets]
        if not window or window[-1][1] <= 0:
            window = buckets  # nothing new this second: show the percentiles since start
        p50, p99 = quantile(window, 0.5), quantile(window, 0.99)
        lat.append(LatencyRow(api, rate("hpbroker_requests_total", api=api),
                              None if p50 is None else p50 * 1000, None if p99 is None else p99 * 1000))
    lat.sort(key=lambda r: (-r.requests_per_s, r.api))
    return Snapshot(header, tput, tuple(workers), tuple(parts), groups, tuple(lat))


class Collector:
    def __init__(self, url: str = DEFAULT_URL, timeout: float = 2.0):
        self.url = normalize_url(url)
        self.timeout = timeout
        self._prev: Samples | None = None
        self._prev_t = 0.0
        self._history = (deque(maxlen=HISTORY), deque(maxlen=HISTORY))

    def scrape(self) -> Samples:
        with urllib.request.urlopen(self.url, timeout=self.timeout) as r:
            return parse(r.read().decode("utf-8", "replace"))

    def snapshot(self) -> Snapshot:
        t = time.monotonic()
        try:
            cur = self.scrape()
        except Exception as e:  # unreachable broker: the frame says so and the next tick retries
            self._prev = None
            return Snapshot(Header(self.url, error=f"cannot read {self.url}: {getattr(e, 'reason', e)}"))
        snap = build(self.url, cur, self._prev, t - self._prev_t, self._history)
        self._prev, self._prev_t = cur, t
        return snap
