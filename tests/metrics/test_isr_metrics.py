"""ISR metrics of a real single-node broker: every hosted partition is its own only replica and in sync."""

from __future__ import annotations

import time
import urllib.request

from confluent_kafka.admin import AdminClient, NewTopic

from tools.testing import BrokerProcess
from tools.top.promtext import parse, total


def scrape(url: str):
    with urllib.request.urlopen(url, timeout=10) as r:
        return parse(r.read().decode())


def test_created_topic_reports_one_replica_in_sync_and_nothing_under_replicated(tmp_path):
    with BrokerProcess(data_dir=str(tmp_path / "data"), settings={"metrics.listener": "127.0.0.1:0"}) as b:
        admin = AdminClient({"bootstrap.servers": b.bootstrap})
        admin.create_topics([NewTopic("isr-metrics", 3, 1)])["isr-metrics"].result(30)
        deadline = time.monotonic() + 30
        while True:
            s = scrape(b.metrics_url)
            rows = [lab for lab, _ in s.get("hpbroker_partition_isr_size", ()) if lab["topic"] == "isr-metrics"]
            if len(rows) == 3 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        for p in range(3):
            assert total(s, "hpbroker_partition_isr_size", topic="isr-metrics", partition=p) == 1
            assert total(s, "hpbroker_partition_replicas", topic="isr-metrics", partition=p) == 1
        assert sorted(lab["partition"] for lab in rows) == ["0", "1", "2"]
        assert [v for _, v in s["hpbroker_under_replicated_partitions"]] == [0]
        isr = {(lab["topic"], lab["partition"]) for lab, _ in s["hpbroker_partition_isr_size"]}
        replicas = {(lab["topic"], lab["partition"]) for lab, _ in s["hpbroker_partition_replicas"]}
        assert isr == replicas  # one series of each per hosted partition
