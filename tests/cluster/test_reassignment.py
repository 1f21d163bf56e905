"""Partition reassignment (KIP-455) on three real brokers and a real etcd: moving replicas under load,
raising the replication factor, and the requests that are refused."""

from __future__ import annotations

import os
import time

from tests.cluster.conftest import wait_for
from tests.cluster.test_cluster import SteadyProducer, _admin, check_acknowledged, describe

ALTER, LIST = 45, 46


def alter(bootstrap: str, topic: str, moves: dict) -> dict[int, int]:
    """partition -> error code of an AlterPartitionReassignments (`moves`: partition -> replicas or None)."""
    from tools.client import Client

    with Client(bootstrap) as c:
        reply = c.any.request(ALTER, {"timeout_ms": 30000, "topics": [{"name": topic, "partitions": [
            {"partition_index": p, "replicas": r} for p, r in moves.items()]}]})
    assert reply["error_code"] == 0
    return {p["partition_index"]: p["error_code"] for t in reply["responses"] for p in t["partitions"]}


def create_assigned(bootstrap: str, name: str, assignment: list[list[int]]) -> None:
    from tools.client import Client

    with Client(bootstrap) as c:
        reply = c.any.request(19, {"topics": [{
            "name": name, "num_partitions": -1, "replication_factor": -1, "configs": [],
            "assignments": [{"partition_index": i, "broker_ids": r} for i, r in enumerate(assignment)]}],
            "timeout_ms": 10000, "validate_only": False})
    assert reply["topics"][0]["error_code"] == 0, reply


def test_a_moved_partition_keeps_every_acknowledged_record_and_its_old_replica_deletes_its_copy(cluster3):
    b = cluster3.bootstrap
    create_assigned(b, "mv", [[1, 2], [1, 3]])
    wait_for(lambda: describe(b, "mv")[0][2] == (1, 2) and describe(b, "mv")[1][2] == (1, 3), 15, "in sync")
    with SteadyProducer(b, "mv", 2, rate=2000) as prod:
        wait_for(lambda: len(prod.acked) > 3000, 20, "records acknowledged before the move")
        assert alter(b, "mv", {0: [2, 3]}) == {0: 0}
        # Broker 1 led partition 0 and is not in the target: broker 2 takes over once 3 has caught up.
        wait_for(lambda: describe(b, "mv")[0] == (2, (2, 3), (2, 3)), 30, "partition 0 on brokers 2 and 3")
        done = len(prod.acked)
        wait_for(lambda: len(prod.acked) > done + 500, 20, "records acknowledged after the move")
        prod.finish()
    assert not prod.errors
    check_acknowledged(b, "mv", 2, prod.acked)
    for broker in cluster3.brokers.values():
        assert describe(broker.bootstrap, "mv")[0] == (2, (2, 3), (2, 3))
    one = cluster3.brokers[1]
    wait_for(lambda: not os.path.exists(os.path.join(one.data_dir, "mv-0")), 10, "broker 1's copy of mv-0 gone")
    assert os.path.isdir(os.path.join(one.data_dir, "mv-1"))  # the partition it still keeps is untouched
    assert describe(one.bootstrap, "mv")[1] == (1, (1, 3), (1, 3))
    with open(os.path.join(cluster3.brokers[3].data_dir, "mv-0", "00000000000000000000.log"), "rb") as f:
        assert f.read(8) == (0).to_bytes(8, "big")  # the new replica holds the log from its first offset


def cli(*args):
    import json

    from click.testing import CliRunner

    from tools.cli import main

    res = CliRunner().invoke(main, ["cluster", *args], catch_exceptions=False)
    out = json.loads(res.output) if ("--format" in args or "--json" in args) and res.exit_code == 0 else res.output
    return res.exit_code, out


def test_raising_the_replication_factor_through_the_cli_is_listed_while_it_runs_and_can_be_cancelled(cluster3):
    import signal

    from confluent_kafka import Producer

    b1 = cluster3.brokers[1].bootstrap  # broker 3 is held still below: ask the others
    create_assigned(b1, "rf", [[1]])
    p = Producer({"bootstrap.servers": b1, "acks": "all"})
    acked = {}
    for i in range(300):
        p.produce("rf", b"v%04d" % i, partition=0,
                  on_delivery=lambda e, m: acked.__setitem__(m.value(), (0, m.offset())) if e is None else None)
    assert p.flush(20) == 0 and len(acked) == 300
    # Broker 3's partition owner is stopped, so it cannot catch up: the move stays in progress.
    held = list(cluster3.brokers[3].worker_pids("io").values())
    for pid in held:
        os.kill(pid, signal.SIGSTOP)
    try:
        code, out = cli("reassign", "-b", b1, "--topic", "rf", "--partition", "0", "--replicas", "1,2,3")
        assert code == 0 and "started" in out, out
        code, rows = cli("reassignments", "-b", b1, "--topic", "rf", "--format", "json")
        assert code == 0 and rows == [{"topic": "rf", "partition": 0, "replicas": [1, 2, 3], "adding": [2, 3],
                                       "removing": []}]
        wait_for(lambda: describe(b1, "rf")[0] == (1, (1, 2, 3), (1, 2)), 15, "broker 2 in sync, 3 not yet")
        code, info = cli("info", "-b", b1, "--json")
        assert code == 0 and not [r for r in info["under_replicated_partitions"] if r["topic"] == "rf"]
        code, out = cli("reassign", "-b", b1, "--topic", "rf", "--partition", "0", "--cancel")
        assert code == 0 and "cancelled" in out, out
        wait_for(lambda: describe(b1, "rf")[0] == (1, (1,), (1,)), 15, "back to broker 1 alone")
        code, out = cli("reassign", "-b", b1, "--topic", "rf", "--partition", "0", "--cancel")
        assert code != 0 and "NO_REASSIGNMENT_IN_PROGRESS" in out, out
        code, out = cli("reassign", "-b", b1, "--topic", "rf", "--partition", "0", "--replicas", "1,2,3")
        assert code == 0, out
    finally:
        for pid in held:
            os.kill(pid, signal.SIGCONT)
    wait_for(lambda: describe(b1, "rf")[0] == (1, (1, 2, 3), (1, 2, 3)), 30, "three replicas in sync")
    assert cli("reassignments", "-b", b1)[1].strip() == "no reassignment in progress"
    check_acknowledged(cluster3.bootstrap, "rf", 1, acked)
    # Refusals, per partition, with Kafka's codes.
    assert alter(b1, "rf", {0: [], 1: [1, 2]}) == {0: 39, 1: 3}  # INVALID_REPLICA_ASSIGNMENT, UNKNOWN_TOPIC...
    assert alter(b1, "rf", {0: [1, 1]}) == {0: 39}
    assert alter(b1, "rf", {0: [1, 7]}) == {0: 39}  # broker 7 is not registered
    assert alter(b1, "rf", {0: None}) == {0: 85}  # NO_REASSIGNMENT_IN_PROGRESS
    assert alter(b1, "nope", {0: [1]}) == {0: 3}


def test_a_broker_gone_for_good_is_replaced_and_a_replication_factor_lowered(cluster3):
    from confluent_kafka import Producer

    b1 = cluster3.brokers[1].bootstrap
    create_assigned(b1, "gone", [[3, 1], [1, 2, 3]])
    wait_for(lambda: describe(b1, "gone") == {0: (3, (3, 1), (1, 3)), 1: (1, (1, 2, 3), (1, 2, 3))}, 15, "in sync")
    p = Producer({"bootstrap.servers": cluster3.bootstrap, "acks": "all"})
    acked = {}
    for i in range(400):
        p.produce("gone", b"g%04d" % i, partition=i % 2,
                  on_delivery=lambda e, m: acked.__setitem__(m.value(), (m.partition(), m.offset())) if not e else None)
    assert p.flush(20) == 0 and len(acked) == 400
    cluster3.brokers[3].kill()
    wait_for(lambda: describe(b1, "gone")[0] == (1, (3, 1), (1,)), 20, "broker 3 out of the ISR, 1 leads")
    # Broker 2 takes broker 3's place in partition 0; partition 1 drops to two replicas at once (both in sync).
    assert alter(b1, "gone", {0: [1, 2], 1: [2, 1]}) == {0: 0, 1: 0}
    wait_for(lambda: describe(b1, "gone") == {0: (1, (1, 2), (1, 2)), 1: (1, (2, 1), (1, 2))}, 30,
             "broker 3 replaced")
    check_acknowledged(b1, "gone", 2, acked)
    wait_for(lambda: alter(b1, "gone", {0: [1, 3]}) == {0: 39}, 15, "broker 3 no longer a registered broker")
