"""The /metrics endpoint of a real broker under real clients: counters move with the traffic."""

from __future__ import annotations

import time
import urllib.error
import urllib.request

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from tools.testing import BrokerProcess
from tools.top.promtext import parse, total

N = 2000


def scrape(url: str):
    with urllib.request.urlopen(url, timeout=10) as r:
        assert r.headers["Content-Type"].startswith("text/plain")
        return parse(r.read().decode())


@pytest.fixture(scope="module")
def loaded_broker(tmp_path_factory):
    b = BrokerProcess(data_dir=str(tmp_path_factory.mktemp("metrics") / "data"),
                      settings={"metrics.listener": "127.0.0.1:0"}, network_threads=2, io_threads=2)
    b.start()
    try:
        p = Producer({"bootstrap.servers": b.bootstrap, "linger.ms": 5})
        for i in range(N):
            p.produce("obs", b"v" * 100, key=str(i % 7).encode())
        assert p.flush(30) == 0
        c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "obs-g", "enable.auto.commit": False})
        c.assign([TopicPartition("obs", 0, 0)])
        got, deadline = 0, time.monotonic() + 30
        while got < N and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is not None and not m.error():
                got += 1
        c.close()
        assert got == N
        yield b
    finally:
        b.close()


def test_ready_line_names_the_metrics_address(loaded_broker):
    assert loaded_broker.metrics_url.startswith("http://127.0.0.1:")
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(loaded_broker.metrics_url.replace("/metrics", "/nope"), timeout=10)
    assert e.value.code == 404


def test_records_and_bytes_per_topic_and_total(loaded_broker):
    s = scrape(loaded_broker.metrics_url)
    assert total(s, "hpbroker_records_in_total") == N
    assert total(s, "hpbroker_topic_records_in_total", topic="obs") == N
    bytes_in = total(s, "hpbroker_topic_bytes_in_total", topic="obs")
    assert bytes_in >= N * 100
    assert total(s, "hpbroker_topic_bytes_out_total", topic="obs") >= bytes_in  # everything read once
    assert total(s, "hpbroker_network_bytes_in_total") > bytes_in
    assert total(s, "hpbroker_partition_log_end_offset", topic="obs", partition=0) == N
    assert total(s, "hpbroker_partition_high_watermark", topic="obs", partition=0) == N
    assert total(s, "hpbroker_partition_log_start_offset", topic="obs", partition=0) == 0
    assert total(s, "hpbroker_partition_size_bytes", topic="obs", partition=0) > 0


def test_requests_latency_and_connections(loaded_broker):
    s = scrape(loaded_broker.metrics_url)
    assert total(s, "hpbroker_requests_total", api="Produce") >= 1
    assert total(s, "hpbroker_requests_total", api="Fetch") >= 1
    for stage in ("queue", "io", "send", "total", "owner"):
        count = total(s, "hpbroker_request_latency_seconds_count", api="Produce", stage=stage)
        inf = total(s, "hpbroker_request_latency_seconds_bucket", api="Produce", stage=stage, le="+Inf")
        assert count >= 1 and inf == count
    assert total(s, "hpbroker_connections_created_total") >= 2
    assert total(s, "hpbroker_connections_closed_total") >= 2
    assert total(s, "hpbroker_connections_open") == total(s, "hpbroker_connections_created_total") - total(
        s, "hpbroker_connections_closed_total")
    assert total(s, "hpbroker_ring_capacity_bytes", direction="request", network=0, io=0) > 0


def test_errors_per_api_and_code(loaded_broker):
    p = Producer({"bootstrap.servers": loaded_broker.bootstrap})
    md = p.list_topics(timeout=10)
    assert "obs" in md.topics
    c = Consumer({"bootstrap.servers": loaded_broker.bootstrap, "group.id": "obs-err"})
    c.assign([TopicPartition("obs", 0, N + 1000)])  # past the end: OFFSET_OUT_OF_RANGE
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        c.poll(0.2)
        if total(scrape(loaded_broker.metrics_url), "hpbroker_errors_total", api="Fetch",
                 error="OFFSET_OUT_OF_RANGE"):
            break
    c.close()
    s = scrape(loaded_broker.metrics_url)
    assert total(s, "hpbroker_errors_total", api="Fetch", error="OFFSET_OUT_OF_RANGE", code=1) >= 1


def test_processes_and_restarts(loaded_broker):
    import os
    import signal

    s = scrape(loaded_broker.metrics_url)
    roles = {lab["role"] for lab, _ in s["hpbroker_process_resident_memory_bytes"]}
    assert roles == {"supervisor", "network", "io"}
    assert all(v > 0 for _, v in s["hpbroker_process_resident_memory_bytes"])
    net1 = loaded_broker.worker_pids("network")[1]
    os.kill(net1, signal.SIGKILL)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        s = scrape(loaded_broker.metrics_url)
        up = [lab for lab, v in s["hpbroker_worker_up"] if lab["role"] == "network" and lab["worker"] == "1"]
        if total(s, "hpbroker_worker_restarts_total", role="network", worker=1) == 1 and up \
                and up[0]["pid"] not in ("0", str(net1)):
            break
        time.sleep(0.2)
    assert total(s, "hpbroker_worker_restarts_total", role="network", worker=1) == 1
    # the restarted worker keeps counting from its predecessor's values
    assert total(s, "hpbroker_records_in_total") == N


def test_grafana_dashboard_queries_only_metrics_the_broker_exposes(loaded_broker):
    import json
    import re
    from pathlib import Path

    dash = json.loads((Path(__file__).resolve().parents[2] / "tools" / "grafana-dashboard.json").read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", ())]
    assert len(exprs) >= 20
    used = {re.sub(r"_(bucket|sum|count)$", "", m) for e in exprs for m in re.findall(r"hpbroker_[a-z_]+", e)}
    s = scrape(loaded_broker.metrics_url)
    exposed = {re.sub(r"_(bucket|sum|count)$", "", name) for name in s}
    with urllib.request.urlopen(loaded_broker.metrics_url, timeout=10) as r:
        declared = set(re.findall(r"^# TYPE (\S+)", r.read().decode(), re.M))
    missing = used - exposed - declared
    assert not missing - {"hpbroker_group_lag", "hpbroker_group_committed_offset"}, missing


def test_consumer_group_committed_offset_and_lag(loaded_broker):
    c = Consumer({"bootstrap.servers": loaded_broker.bootstrap, "group.id": "obs-lag", "enable.auto.commit": False})
    c.commit(offsets=[TopicPartition("obs", 0, 1500)], asynchronous=False)
    c.close()
    deadline = time.monotonic() + 20  # group offsets are cached for a few seconds
    while time.monotonic() < deadline:
        s = scrape(loaded_broker.metrics_url)
        if total(s, "hpbroker_group_committed_offset", group="obs-lag", topic="obs", partition=0) == 1500:
            break
        time.sleep(0.5)
    assert total(s, "hpbroker_group_committed_offset", group="obs-lag", topic="obs", partition=0) == 1500
    assert total(s, "hpbroker_group_lag", group="obs-lag", topic="obs", partition=0) == N - 1500


def test_busy_metrics_port_fails_the_start(tmp_path):
    import socket
    import subprocess
    import sys

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        r = subprocess.run([sys.executable, "-m", "tools.cli", "start", "--set", "listeners=PLAINTEXT://127.0.0.1:0",
                            "--set", f"log.dirs={tmp_path}", "--set", f"metrics.listener=127.0.0.1:{port}"],
                           capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    assert f"metrics.listener 127.0.0.1:{port}: cannot bind" in r.stderr
