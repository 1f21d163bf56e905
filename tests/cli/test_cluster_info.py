"""`hpbroker cluster info` against a live single-node broker, and its partition-health view of a
three-broker Metadata answer (a lost follower, a lost leader) that one node cannot produce."""

import json

from click.testing import CliRunner

from tools.cli import main
from tools.commands.cluster import not_preferred_led, partition_health
from tools.commands.render import render_partition_health


def invoke(*args):
    return CliRunner().invoke(main, ["cluster", "info", *args], catch_exceptions=False)


def test_single_node_is_its_own_controller_with_nothing_under_replicated(kafka_broker):
    res = invoke("--bootstrap", kafka_broker)
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    port = kafka_broker.rsplit(":", 1)[1]
    assert lines[1] == "CONTROLLER  0"
    assert ["0", "127.0.0.1", port, "-", "*"] in [line.split() for line in lines]
    assert "UNDER-REPLICATED PARTITIONS  0" in lines and "OFFLINE PARTITIONS  0" in lines
    assert "NOT LED BY THEIR PREFERRED REPLICA  0" in lines


def test_json_is_one_object_with_brokers_counts_and_partition_health(kafka_broker):
    res = invoke("--bootstrap", kafka_broker, "--json")
    assert res.exit_code == 0, res.output
    info = json.loads(res.stdout)
    port = int(kafka_broker.rsplit(":", 1)[1])
    assert info["brokers"] == [{"id": 0, "host": "127.0.0.1", "port": port, "rack": None}]
    assert info["controller_id"] == 0 and info["cluster_id"]
    assert info["topics"] >= 0 and info["partitions"] >= info["topics"]
    assert info["under_replicated_partitions"] == [] and info["offline_partitions"] == []
    assert info["not_preferred_leader_partitions"] == []
    assert json.loads(invoke("--bootstrap", kafka_broker, "--format", "json").stdout) == info


def test_unreachable_bootstrap_is_one_line_and_a_failed_exit():
    res = invoke("--bootstrap", "127.0.0.1:1")
    assert res.exit_code == 4  # the client commands' "broker could not be reached"
    assert res.stdout == ""
    assert res.stderr.count("\n") == 1 and res.stderr.startswith("hpbroker: cannot connect to 127.0.0.1:1")


def _partition(index, leader, replicas, isr):
    return {"error_code": 0, "partition_index": index, "leader_id": leader, "leader_epoch": 3,
            "replica_nodes": replicas, "isr_nodes": isr, "offline_replicas": []}


THREE_BROKERS = {"topics": [
    {"name": "orders", "partitions": [_partition(1, 2, [2, 3, 1], [2, 3]), _partition(0, 1, [1, 2, 3], [1, 2, 3])]},
    {"name": "audit", "partitions": [_partition(0, -1, [3], [3]), _partition(1, -1, [1, 3], [])]},
]}


def test_follower_loss_is_under_replicated_and_leader_loss_is_offline():
    under, offline = partition_health(THREE_BROKERS)
    assert under == [{"topic": "audit", "partition": 1, "leader": -1, "replicas": [1, 3], "isr": []},
                     {"topic": "orders", "partition": 1, "leader": 2, "replicas": [2, 3, 1], "isr": [2, 3]}]
    assert [(r["topic"], r["partition"]) for r in offline] == [("audit", 0), ("audit", 1)]
    text = render_partition_health({"under_replicated_partitions": under, "offline_partitions": offline,
                                    "not_preferred_leader_partitions": []})
    lines = text.splitlines()
    assert lines[0] == "UNDER-REPLICATED PARTITIONS  2"
    assert lines[1].split() == ["TOPIC", "PARTITION", "LEADER", "REPLICAS", "ISR"]
    assert lines[2].split() == ["audit", "1", "-1", "1,3", "-"]
    assert lines[3].split() == ["orders", "1", "2", "2,3,1", "2,3"]
    assert "OFFLINE PARTITIONS  2" in lines
    assert lines[lines.index("OFFLINE PARTITIONS  2") + 3].split() == ["audit", "1", "-1", "1,3", "-"]
    assert lines[-1] == "NOT LED BY THEIR PREFERRED REPLICA  0"


def test_a_partition_led_by_another_than_its_first_replica_is_listed():
    md = {"topics": [{"name": "orders", "partitions": [
        _partition(0, 1, [1, 2, 3], [1, 2, 3]),  # led by its preferred replica
        _partition(1, 3, [2, 3, 1], [3, 1]),  # broker 2 failed: 3 took over
        _partition(2, -1, [3], [3]),  # offline: no leader to move
    ]}]}
    moved = not_preferred_led(md)
    assert moved == [{"topic": "orders", "partition": 1, "leader": 3, "replicas": [2, 3, 1], "isr": [3, 1]}]
    text = render_partition_health({"under_replicated_partitions": [], "offline_partitions": [],
                                    "not_preferred_leader_partitions": moved})
    lines = text.splitlines()
    assert "NOT LED BY THEIR PREFERRED REPLICA  1" in lines
    assert lines[-1].split() == ["orders", "1", "3", "2,3,1", "3,1"]
