"""Two scrapes of Prometheus text in, one snapshot out: rates, windowed percentiles, ring fill, groups."""

from __future__ import annotations

from collections import deque

import pytest

from tools.top.collector import build, normalize_url, quantile
from tools.top.promtext import parse, total

PAGE = """\
# HELP hpbroker_info x
# TYPE hpbroker_info gauge
hpbroker_info{{version="0.1.0",broker_id="0",listeners="PLAINTEXT://h:9092",network_threads="1",io_threads="1"}} 1
hpbroker_start_time_seconds 1000.0
hpbroker_scrape_time_seconds {now}
hpbroker_worker_up{{role="network",worker="0",pid="11"}} 1
hpbroker_worker_up{{role="io",worker="0",pid="0"}} 0
hpbroker_worker_restarts_total{{role="io",worker="0"}} 1
hpbroker_process_cpu_seconds_total{{role="network",worker="0"}} {cpu}
hpbroker_process_resident_memory_bytes{{role="network",worker="0"}} 1048576
hpbroker_worker_requests_total{{role="network",worker="0"}} {reqs}
hpbroker_bytes_in_total {bin}
hpbroker_bytes_out_total 0
hpbroker_records_in_total {rin}
hpbroker_requests_total{{api="Produce"}} {reqs}
hpbroker_request_latency_seconds_bucket{{api="Produce",stage="total",le="0.001"}} {fast}
hpbroker_request_latency_seconds_bucket{{api="Produce",stage="total",le="0.01"}} {reqs}
hpbroker_request_latency_seconds_bucket{{api="Produce",stage="total",le="+Inf"}} {reqs}
hpbroker_ring_used_bytes{{direction="request",network="0",io="0"}} 250
hpbroker_ring_capacity_bytes{{direction="request",network="0",io="0"}} 1000
hpbroker_partition_log_end_offset{{topic="a\\"b",partition="0"}} {rin}
hpbroker_partition_high_watermark{{topic="a\\"b",partition="0"}} {rin}
hpbroker_group_lag{{group="g",topic="a",partition="0"}} 7
hpbroker_group_lag{{group="g",topic="a",partition="1"}} 3
hpbroker_quota_throttled_produce_total{{role="network",worker="0"}} {reqs}
hpbroker_quota_throttled_fetch_total{{role="network",worker="0"}} {fast}
"""


def page(now, cpu, reqs, fast, bin_, rin):
    return parse(PAGE.format(now=now, cpu=cpu, reqs=reqs, fast=fast, bin=bin_, rin=rin))


def test_parse_labels_escapes_and_totals():
    s = page(1010, 1.0, 10, 5, 100, 10)
    assert total(s, "hpbroker_partition_log_end_offset", topic='a"b') == 10
    assert total(s, "hpbroker_group_lag", group="g") == 10
    assert s["hpbroker_info"][0][0]["listeners"] == "PLAINTEXT://h:9092"


def test_rates_from_two_scrapes_and_history():
    hist = (deque(maxlen=60), deque(maxlen=60))
    first = build("u", page(1010, 1.0, 10, 10, 1000, 10), None, 0.0, hist)
    assert first.throughput.bytes_in_per_s == 0 and hist[0] == deque()
    snap = build("u", page(1012, 2.0, 30, 10, 5000, 50), page(1010, 1.0, 10, 10, 1000, 10), 2.0, hist)
    assert snap.header.uptime_s == 12 and snap.header.version == "0.1.0"
    assert snap.header.throttled_per_s == 10  # 20 more throttled produce requests in 2 s, fetch unchanged
    assert snap.throughput.bytes_in_per_s == 2000 and snap.throughput.records_in_per_s == 20
    assert snap.throughput.history_in == (2000.0,)
    net = next(w for w in snap.workers if w.role == "network")
    assert net.cpu_pct == pytest.approx(50.0) and net.requests_per_s == 10 and net.ring_fill == 0.25
    io = next(w for w in snap.workers if w.role == "io")
    assert io.pid == 0 and io.restarts == 1
    assert snap.partitions[0].records_per_s == 20
    assert snap.groups[0].group == "g" and snap.groups[0].lag == 10 and snap.groups[0].partitions == 2
    # in the last two seconds all 20 new requests took 1-10 ms: the window, not the history, decides
    lat = snap.latency[0]
    assert lat.api == "Produce" and 1.0 < lat.p50_ms <= 10.0


def test_quantile_interpolates_within_the_bucket():
    b = [(0.001, 50.0), (0.01, 100.0), (float("inf"), 100.0)]
    assert quantile(b, 0.5) == pytest.approx(0.001)
    assert quantile(b, 0.75) == pytest.approx(0.0055)
    assert quantile([(0.001, 0.0), (float("inf"), 0.0)], 0.5) is None
    assert quantile([(0.001, 0.0), (float("inf"), 4.0)], 0.5) == 0.001  # beyond the last bound


def test_normalize_url():
    assert normalize_url("127.0.0.1:9404") == "http://127.0.0.1:9404/metrics"
    assert normalize_url("http://h:1/x") == "http://h:1/x"
