"""Three real brokers and a real etcd on loopback: membership, replica placement, replication, failover."""

from __future__ import annotations

import time

import pytest

from tests.cluster.conftest import Cluster, wait_for


def _admin(bootstrap: str):
    from confluent_kafka.admin import AdminClient

    return AdminClient({"bootstrap.servers": bootstrap})


def create_topic(bootstrap: str, name: str, partitions: int, rf: int, configs: dict | None = None) -> None:
    from confluent_kafka.admin import NewTopic

    admin = _admin(bootstrap)
    fut = admin.create_topics([NewTopic(name, partitions, rf, config=configs or {})], operation_timeout=10)[name]
    fut.result(15)


def acks_all_errors(config: dict, topic: str, n: int = 20) -> set:
    """The delivery errors (None: delivered) of `n` acks=all records over partitions 0 and 1 of `topic`."""
    from confluent_kafka import Producer

    errors = []
    p = Producer({**config, "acks": "all", "message.timeout.ms": 10000})
    for i in range(n):
        p.produce(topic, f"v{i}".encode(), partition=i % 2, on_delivery=lambda e, m: errors.append(e and e.name()))
    p.flush(20)
    return set(errors)


def describe(bootstrap: str, topic: str) -> dict:
    """partition -> (leader, replicas, isr) as the cluster reports it."""
    md = _admin(bootstrap).list_topics(topic, timeout=10)
    t = md.topics[topic]
    return {p.id: (p.leader, tuple(p.replicas), tuple(sorted(p.isrs))) for p in t.partitions.values()}


def consume_all(bootstrap: str, topic: str, partitions: int, expect: int, timeout: float = 60) -> dict:
    """partition -> [(offset, value)] up to `expect` records in all."""
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "verify", "enable.auto.commit": False,
                  "fetch.wait.max.ms": 100, "topic.metadata.refresh.interval.ms": 1000})
    c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    got: dict[int, list] = {p: [] for p in range(partitions)}
    n = 0
    deadline = time.monotonic() + timeout
    while n < expect and time.monotonic() < deadline:
        for m in c.consume(5000, 0.5):
            if m.error() is None:
                got[m.partition()].append((m.offset(), m.value()))
                n += 1
    c.close()
    return got


def log_bytes(partition_dir: str) -> bytes:
    """The record batches of a partition's segments, up to the last complete one (segment files are
    longer than their contents while active)."""
    import os

    out = []
    for seg in sorted(f for f in os.listdir(partition_dir) if f.endswith(".log")):
        with open(os.path.join(partition_dir, seg), "rb") as f:
            while True:
                head = f.read(12)
                if len(head) < 12:
                    break
                length = int.from_bytes(head[8:12], "big")
                if length <= 0:
                    break
                body = f.read(length)
                if len(body) < length:
                    break
                out.append(head + body)
    return b"".join(out)


def test_brokers_register_and_topics_are_replicated(cluster3):
    b = cluster3.bootstrap
    md = _admin(b).list_topics(timeout=10)
    assert sorted(md.brokers) == [1, 2, 3]
    assert md.controller_id in (1, 2, 3)
    create_topic(b, "r3", 6, 3, {"min.insync.replicas": "2"})
    parts = wait_for(lambda: describe(b, "r3"), 10, "topic visible")
    assert len(parts) == 6
    assert {p[0] for p in parts.values()} == {1, 2, 3}  # leadership spread over the brokers
    for leader, replicas, isr in parts.values():
        assert sorted(replicas) == [1, 2, 3] and leader == replicas[0] and isr == (1, 2, 3)
    # Every broker answers Metadata the same way.
    for broker in cluster3.brokers.values():
        assert describe(broker.bootstrap, "r3") == parts


def test_acks_all_round_trip_and_followers_hold_the_same_bytes(cluster3):
    import os

    from confluent_kafka import Producer

    b = cluster3.bootstrap
    create_topic(b, "rt", 3, 3, {"min.insync.replicas": "2"})
    p = Producer({"bootstrap.servers": b, "acks": "all", "enable.idempotence": True, "linger.ms": 5})
    acked = []
    for i in range(3000):
        p.produce("rt", b"v%05d" % i, partition=i % 3,
                  on_delivery=lambda err, m: acked.append((m.partition(), m.offset())) if err is None else None)
    assert p.flush(30) == 0
    assert len(acked) == 3000
    got = consume_all(b, "rt", 3, 3000)
    assert sum(len(v) for v in got.values()) == 3000
    for part, recs in got.items():
        assert [v for _, v in recs] == [b"v%05d" % i for i in range(part, 3000, 3)]

    def same_bytes():
        for part in range(3):
            logs = []
            for broker in cluster3.brokers.values():
                logs.append(log_bytes(os.path.join(broker.data_dir, f"rt-{part}")))
            if not (logs[0] == logs[1] == logs[2] and logs[0]):
                return False
        return True

    wait_for(same_bytes, 15, "every replica holds the leader's batches")


class SteadyProducer:
    """An idempotent acks=all confluent-kafka producer sending unique values in a thread, remembering the
    offset at which each value was acknowledged."""

    def __init__(self, bootstrap: str, topic: str, partitions: int, rate: int = 2000):
        import threading

        from confluent_kafka import Producer

        self.topic, self.partitions, self.rate = topic, partitions, rate
        self.p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True,
                           "linger.ms": 5, "topic.metadata.refresh.interval.ms": 1000,
                           "message.timeout.ms": 120000})
        self.acked: dict[bytes, tuple[int, int]] = {}
        self.errors: list[str] = []
        self.sent = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _done(self, err, m) -> None:
        if err is None:
            self.acked[m.value()] = (m.partition(), m.offset())
        else:
            self.errors.append(str(err))

    def _run(self) -> None:
        start = time.monotonic()
        while not self.stop.is_set():
            due = int((time.monotonic() - start) * self.rate)
            while self.sent < due:
                v = b"rec-%08d" % self.sent
                try:
                    self.p.produce(self.topic, v, partition=self.sent % self.partitions, on_delivery=self._done)
                except BufferError:
                    break
                self.sent += 1
            self.p.poll(0.01)

    def __enter__(self) -> "SteadyProducer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if not self.stop.is_set():
            self.stop.set()
            self.thread.join()

    def finish(self) -> None:
        self.stop.set()
        self.thread.join()
        assert self.p.flush(120) == 0


def check_acknowledged(bootstrap: str, topic: str, partitions: int, acked: dict) -> None:
    """Every acknowledged value is in the log at its acknowledged offset, and no value appears twice."""
    got = consume_all(bootstrap, topic, partitions, len(acked), timeout=90)
    seen: dict[bytes, tuple[int, int]] = {}
    for part, recs in got.items():
        for off, v in recs:
            assert v not in seen, f"duplicate {v!r} at {part}/{off} and {seen[v]}"
            seen[v] = (part, off)
    missing = [v for v, where in acked.items() if seen.get(v) != where]
    assert not missing, f"{len(missing)} acknowledged records not at their offsets, e.g. " \
                        f"{[(v, acked[v], seen.get(v)) for v in missing[:5]]}"


def _isr(bootstrap: str, topic: str, partition: int) -> tuple[int, ...]:
    return describe(bootstrap, topic)[partition][2]


def test_leader_killed_three_times_loses_and_duplicates_nothing(cluster3):
    b = cluster3.bootstrap
    create_topic(b, "fo", 2, 3, {"min.insync.replicas": "2"})
    with SteadyProducer(b, "fo", 2) as prod:
        for _round in range(3):
            time.sleep(2)
            leader = describe(cluster3.bootstrap, "fo")[0][0]
            victim = cluster3.brokers[leader]
            acked_before = len(prod.acked)
            victim.kill()
            time.sleep(10)
            victim.start()
            wait_for(lambda: leader in _isr(victim.bootstrap, "fo", 0) and leader in _isr(victim.bootstrap, "fo", 1),
                     60, f"broker {leader} back in the ISR")
            assert len(prod.acked) > acked_before  # production went on across the failover
        prod.finish()
    assert len(prod.acked) == prod.sent and not prod.errors
    check_acknowledged(cluster3.bootstrap, "fo", 2, prod.acked)


def test_stopped_follower_leaves_and_rejoins_the_isr(etcd_server, tmp_path):
    import os
    import signal

    from tests.cluster.conftest import Cluster

    c = Cluster(etcd_server, tmp_path, 3, {"broker.session.timeout.ms": 20000,
                                            "replica.lag.time.max.ms": 2000}).start()
    try:
        b = c.bootstrap
        create_topic(b, "st", 1, 3, {"min.insync.replicas": "2"})
        leader, replicas, _ = describe(b, "st")[0]
        follower = next(r for r in replicas if r != leader)
        with SteadyProducer(b, "st", 1, rate=500) as prod:
            time.sleep(1)
            os.killpg(c.brokers[follower].proc.pid, signal.SIGSTOP)
            try:
                t0 = time.monotonic()
                wait_for(lambda: follower not in _isr(c.brokers[leader].bootstrap, "st", 0), 15,
                         "the stopped follower leaves the ISR")
                shrunk_after = time.monotonic() - t0
                n = len(prod.acked)
                wait_for(lambda: len(prod.acked) > n + 200, 15, "acks=all production goes on with 2 in sync")
            finally:
                os.killpg(c.brokers[follower].proc.pid, signal.SIGCONT)
            wait_for(lambda: follower in _isr(c.brokers[leader].bootstrap, "st", 0), 30,
                     "the follower rejoins the ISR")
            prod.finish()
        print(f"ISR shrank {shrunk_after:.1f}s after SIGSTOP (replica.lag.time.max.ms=2000)")
        check_acknowledged(b, "st", 1, prod.acked)
    finally:
        c.close()


def test_two_of_three_down_refuses_acks_all(cluster3):
    from kafka import KafkaProducer
    from kafka.errors import NotEnoughReplicasError

    b = cluster3.bootstrap
    create_topic(b, "nr", 1, 3, {"min.insync.replicas": "2"})
    leader, replicas, _ = describe(b, "nr")[0]
    survivor = cluster3.brokers[leader]
    for r in replicas:
        if r != leader:
            cluster3.brokers[r].kill()
    wait_for(lambda: _isr(survivor.bootstrap, "nr", 0) == (leader,), 20, "the ISR shrinks to the leader")
    before = describe(survivor.bootstrap, "nr")
    p = KafkaProducer(bootstrap_servers=survivor.bootstrap, acks="all", retries=0, enable_idempotence=False)
    with pytest.raises(NotEnoughReplicasError):
        p.send("nr", b"refused", partition=0).get(15)
    p.close(5)
    from tools.client import Client

    with Client(survivor.bootstrap) as cl:
        assert cl.list_offsets("nr", {0: -1})[0][0] == 0  # nothing became visible (high watermark)
    assert before[0][0] == leader


def _cluster_info(bootstrap: str) -> dict:
    import json
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "tools.cli", "cluster", "info", "--bootstrap", bootstrap.split(",")[0],
                          "--json"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_cluster_info_and_group_coordinator_follow_a_broker_failure(cluster3):
    """Committed offsets live in the replicated __consumer_offsets; when the coordinator's broker dies the
    group's new coordinator (the new leader of its offsets partition) still has them."""
    from confluent_kafka import Consumer, Producer

    from broker.groups import partition_for

    b = cluster3.bootstrap
    info = _cluster_info(b)
    assert sorted(x["node_id"] if "node_id" in x else x["id"] for x in info["brokers"]) == [1, 2, 3]
    assert info["under_replicated_partitions"] == []
    create_topic(b, "cg", 3, 3, {"min.insync.replicas": "2"})
    p = Producer({"bootstrap.servers": b, "acks": "all", "linger.ms": 5})
    for i in range(3000):
        p.produce("cg", b"m%05d" % i, partition=i % 3)
    assert p.flush(30) == 0

    c = Consumer({"bootstrap.servers": b, "group.id": "g1", "enable.auto.commit": False,
                  "auto.offset.reset": "earliest"})
    c.subscribe(["cg"])
    got = []
    while len(got) < 1500:
        for m in c.consume(500, 1.0):
            assert m.error() is None, m.error()
            got.append(m)
    # A partition not consumed yet has no position (-1001): nothing is committed for it, so the group
    # starts it from the earliest offset again.
    committed = {tp.partition: max(tp.offset, 0) for tp in c.commit(asynchronous=False)}
    c.close()
    assert sum(committed.values()) >= 1000

    coordinator = describe(b, "__consumer_offsets")[partition_for("g1", 4)][0]
    # The commit was answered only once every in-sync replica of the offsets partition had it.
    cluster3.brokers[coordinator].kill()
    survivors = ",".join(x.bootstrap for i, x in cluster3.brokers.items() if i != coordinator)
    wait_for(lambda: describe(survivors, "__consumer_offsets")[partition_for("g1", 4)][0] not in (coordinator, -1),
             20, "the offsets partition has a new leader")
    info = _cluster_info(survivors)
    assert info["under_replicated_partitions"], info  # the dead broker's replicas are out of sync
    assert all(coordinator not in r["isr"] or r["isr"] == [coordinator] for r in info["under_replicated_partitions"])

    c = Consumer({"bootstrap.servers": survivors, "group.id": "g1", "enable.auto.commit": False,
                  "auto.offset.reset": "earliest"})
    c.subscribe(["cg"])
    first: dict[int, int] = {}
    n = 0
    want = {part: off for part, off in committed.items() if off < 1000}  # 1000 records per partition
    deadline = time.monotonic() + 60
    while (len(first) < len(want) or n < 3000 - sum(committed.values())) and time.monotonic() < deadline:
        for m in c.consume(500, 1.0):
            if m.error() is None:
                first.setdefault(m.partition(), m.offset())
                n += 1
    c.close()
    assert first == want  # resumed exactly where the group committed, on the new coordinator
    assert n == 3000 - sum(committed.values())


def test_unreachable_etcd_fails_the_start_with_a_reason(tmp_path):
    import socket
    import subprocess
    import sys

    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = subprocess.run([sys.executable, "-m", "tools.cli", "start", "--set", "listeners=PLAINTEXT://127.0.0.1:0",
                          "--set", f"log.dirs={tmp_path / 'data'}", "--set", "metrics.listener=none",
                          "--set", f"etcd.connect=127.0.0.1:{port}"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 1
    assert f"etcd.connect 127.0.0.1:{port}" in out.stderr


def test_deleting_a_topic_drops_its_offsets_on_the_group_coordinator(cluster3):
    """In a cluster the coordinator of a group's offsets partition learns of the deletion from etcd: a
    topic re-created under the same name starts with nothing committed; other topics keep their offsets."""
    from confluent_kafka import Consumer, TopicPartition

    b = cluster3.bootstrap
    for topic in ("gone", "stays"):
        create_topic(b, topic, 2, 3)
    c = Consumer({"bootstrap.servers": b, "group.id": "g-del", "enable.auto.commit": False})
    # The coordinator refuses commits for topics its metadata does not list yet (UNKNOWN_TOPIC_OR_PART, as
    # Kafka's does); the new topics reach it through etcd a moment after CreateTopics answers.
    wait_for(lambda: c.commit(offsets=[TopicPartition(t, p, 5 + p) for t in ("gone", "stays") for p in range(2)],
                              asynchronous=False), 20, "the commit is accepted")
    c.close()

    def committed(topic: str) -> list[int]:
        c = Consumer({"bootstrap.servers": b, "group.id": "g-del"})
        try:
            return [tp.offset for tp in c.committed([TopicPartition(topic, p) for p in range(2)], timeout=20)]
        finally:
            c.close()

    assert committed("gone") == [5, 6]
    admin = _admin(b)
    admin.delete_topics(["gone"], operation_timeout=10)["gone"].result(15)
    wait_for(lambda: "gone" not in _admin(b).list_topics(timeout=10).topics, 20, "the topic is gone")
    create_topic(b, "gone", 2, 3)
    wait_for(lambda: committed("gone") == [-1001, -1001], 20, "the re-created topic has nothing committed")
    assert committed("stays") == [5, 6]


def _lose_preferred_leadership(c, topic: str, while_down=None) -> tuple[int, int]:
    """Kill the broker leading partition 0 (its preferred replica), let another take over (then call
    `while_down(survivors' bootstrap)`), start it again and wait until it is back in sync: partition 0 is then
    led by another than its preferred replica. Returns (the preferred replica, the leader now)."""
    leader, replicas, _ = describe(c.bootstrap, topic)[0]
    assert leader == replicas[0]
    victim = c.brokers[leader]
    victim.kill()
    survivors = ",".join(x.bootstrap for i, x in c.brokers.items() if i != leader)
    wait_for(lambda: describe(survivors, topic)[0][0] not in (leader, -1), 30, "partition 0 fails over")
    if while_down is not None:
        while_down(survivors)
    victim.start()
    wait_for(lambda: leader in _isr(victim.bootstrap, topic, 0), 60, f"broker {leader} back in the ISR")
    return leader, describe(c.bootstrap, topic)[0][0]


def _imbalance(broker) -> float:
    import urllib.request

    from tools.top.promtext import parse, total

    with urllib.request.urlopen(broker.metrics_url, timeout=10) as r:
        return total(parse(r.read().decode()), "hpbroker_preferred_replica_imbalance")


def test_elect_leaders_moves_leadership_back_to_the_preferred_replica(etcd_server, tmp_path):
    """After a failover and the old leader's return, a preferred election (confluent-kafka's elect_leaders,
    sent to the controller) gives partition 0 back to its first replica while an acks=all producer writes:
    nothing acknowledged is lost or duplicated. A broker that is not the controller answers NOT_CONTROLLER,
    and a partition with a leader needs no unclean election."""
    from confluent_kafka import ElectionType, TopicPartition

    from perf import wire

    c = Cluster(etcd_server, tmp_path, 3, {"auto.leader.rebalance.enable": False,
                                            "metrics.listener": "127.0.0.1:0"}).start()
    try:
        create_topic(c.bootstrap, "pl", 3, 3, {"min.insync.replicas": "2"})
        def elect_while_down(survivors: str) -> None:
            admin = _admin(survivors)  # held: a client collected mid-request cancels it
            got = admin.elect_leaders(ElectionType.PREFERRED, [TopicPartition("pl", 0)]).result(30)
            assert [e.code() for e in got.values()] == [80]  # PREFERRED_LEADER_NOT_AVAILABLE: it is down

        with SteadyProducer(c.bootstrap, "pl", 3, rate=500) as prod:
            time.sleep(1)
            preferred, interim = _lose_preferred_leadership(c, "pl", elect_while_down)
            assert interim != preferred
            time.sleep(2)
            assert describe(c.bootstrap, "pl")[0][0] == interim  # nothing moves it back on its own here
            # Operators see it: `cluster info` lists the partition, and its leader's /metrics counts it.
            assert ("pl", 0) in [(r["topic"], r["partition"])
                                 for r in _cluster_info(c.bootstrap)["not_preferred_leader_partitions"]]
            wait_for(lambda: _imbalance(c.brokers[interim]) >= 1, 10, "the interim leader counts the partition")

            a = _admin(c.bootstrap)
            got = a.elect_leaders(ElectionType.PREFERRED, [TopicPartition("pl", 0)]).result(30)
            assert list(got.values()) == [None], got
            wait_for(lambda: describe(c.bootstrap, "pl")[0][0] == preferred, 20, "partition 0 led by its preferred")
            got = a.elect_leaders(ElectionType.UNCLEAN, [TopicPartition("pl", 1)]).result(30)
            assert [e.code() for e in got.values()] == [84]  # ELECTION_NOT_NEEDED: it has a leader

            controller = _cluster_info(c.bootstrap)["controller_id"]
            other = next(b for i, b in c.brokers.items() if i != controller)
            conn = wire.Connection("127.0.0.1", other.port)
            try:
                resp = conn.call(43, 1, {"election_type": 0, "timeout_ms": 1000,
                                         "topic_partitions": [{"topic": "pl", "partitions": [0]}]})
            finally:
                conn.close()
            assert resp["error_code"] == 41  # NOT_CONTROLLER
            import json
            import subprocess
            import sys

            def elect_all() -> list:
                out = subprocess.run([sys.executable, "-m", "tools.cli", "cluster", "elect-leaders", "-b", c.bootstrap,
                                      "--format", "json"], capture_output=True, text=True, timeout=60)
                assert out.returncode == 0, out
                return json.loads(out.stdout)

            # The offsets partitions the killed broker led moved too; every partition is tried, those
            # already led by their preferred replica left out.
            moved = elect_all()
            assert all(r["error"] is None and r["topic"] == "__consumer_offsets" for r in moved), moved
            wait_for(lambda: all(leader == replicas[0] for leader, replicas, _ in
                                 describe(c.bootstrap, "__consumer_offsets").values()), 20, "offsets leaders")
            assert elect_all() == []
            assert _cluster_info(c.bootstrap)["not_preferred_leader_partitions"] == []
            wait_for(lambda: sum(_imbalance(b) for b in c.brokers.values()) == 0, 10, "no broker counts any")
            n = len(prod.acked)
            wait_for(lambda: len(prod.acked) > n + 200, 30, "production goes on under the moved leadership")
            prod.finish()
        assert len(prod.acked) == prod.sent and not prod.errors
        check_acknowledged(c.bootstrap, "pl", 3, prod.acked)
    finally:
        c.close()


def test_the_controller_gives_leadership_back_to_preferred_replicas_on_its_own(etcd_server, tmp_path):
    """auto.leader.rebalance.enable (Kafka's default): every leader.imbalance.check.interval.seconds the
    controller moves partitions led by another than their preferred replica back, once it is in sync."""
    c = Cluster(etcd_server, tmp_path, 3, {"leader.imbalance.check.interval.seconds": 2}).start()
    try:
        create_topic(c.bootstrap, "ab", 3, 3, {"min.insync.replicas": "2"})
        preferred, _ = _lose_preferred_leadership(c, "ab")
        wait_for(lambda: describe(c.bootstrap, "ab")[0][0] == preferred, 30, "partition 0 led by its preferred")
        assert all(leader == replicas[0] for leader, replicas, _ in describe(c.bootstrap, "ab").values())
    finally:
        c.close()


def test_acls_live_in_etcd_and_every_broker_enforces_them(etcd_server, tmp_path):
    """A binding created through one broker is stored in etcd, shown and enforced by the others, and its
    deletion through another broker reaches all. Replication runs over the PLAINTEXT listener as
    User:ANONYMOUS, which is why that principal is a super user here (as in Kafka)."""
    import re

    from confluent_kafka.admin import (AclBinding, AclBindingFilter, AclOperation, AclPermissionType,
                                       ResourcePatternType, ResourceType)

    c = Cluster(etcd_server, tmp_path, 2, settings={
        "listeners": "PLAINTEXT://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:0", "sasl.users": "alice:a-pw,bob:b-pw",
        "authorizer.class.name": "kafka.security.authorizer.AclAuthorizer", "super.users": "User:ANONYMOUS"}).start()
    try:
        sasl = {i: next(int(m.group(1)) for line in list(b.output)
                        if (m := re.search(r"hpbroker ready .*SASL_PLAINTEXT://127\.0\.0\.1:(\d+)", line)))
                for i, b in c.brokers.items()}
        b1, b2 = c.brokers[1].bootstrap, c.brokers[2].bootstrap
        create_topic(b1, "guarded", 2, 2)
        grant = AclBinding(ResourceType.TOPIC, "guarded", ResourcePatternType.LITERAL, "User:alice", "*",
                           AclOperation.WRITE, AclPermissionType.ALLOW)
        admin1, admin2 = _admin(b1), _admin(b2)
        assert admin1.create_acls([grant])[grant].result(10) is None
        every = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, None, None, AclOperation.ANY,
                                 AclPermissionType.ANY)
        wait_for(lambda: [str(x) for x in admin2.describe_acls(every).result(10)] == [str(grant)], 15,
                 "broker 2 shows the binding made through broker 1")

        def produce(user: str, password: str) -> set:
            return acks_all_errors({"bootstrap.servers": f"127.0.0.1:{sasl[2]}", "security.protocol": "SASL_PLAINTEXT",
                                    "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": user,
                                    "sasl.password": password}, "guarded")

        wait_for(lambda: describe(b1, "guarded")[0][2] == (1, 2) and describe(b1, "guarded")[1][2] == (1, 2), 15,
                 "both replicas in sync")
        assert produce("alice", "a-pw") == {None}  # acks=all: the followers fetched as ANONYMOUS
        assert produce("bob", "b-pw") == {"TOPIC_AUTHORIZATION_FAILED"}
        deleted = admin2.delete_acls([every])[every].result(10)
        assert [str(x) for x in deleted] == [str(grant)]
        wait_for(lambda: admin1.describe_acls(every).result(10) == [], 15, "broker 1 sees the deletion")
        wait_for(lambda: produce("alice", "a-pw") == {"TOPIC_AUTHORIZATION_FAILED"}, 20, "alice refused again")

        # SCRAM credentials live in etcd too: stored through broker 1, a login at broker 2 takes them.
        from confluent_kafka.admin import (AdminClient, ScramCredentialInfo, ScramMechanism,
                                           UserScramCredentialUpsertion)

        upsert = UserScramCredentialUpsertion("carol", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 4096),
                                              b"c-pw")
        admin1.alter_user_scram_credentials([upsert])["carol"].result(10)
        carol = AdminClient({"bootstrap.servers": f"127.0.0.1:{sasl[2]}", "security.protocol": "SASL_PLAINTEXT",
                             "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": "carol", "sasl.password": "c-pw"})
        assert carol.list_topics(timeout=10).brokers  # logged in
    finally:
        c.close()


def test_replication_over_a_sasl_listener_as_a_super_user(etcd_server, tmp_path):
    """inter.broker.listener.name=SASL_PLAINTEXT: followers log in as inter.broker.sasl.user, the only super
    user, so acks=all with min.insync.replicas=2 succeeds while the anonymous PLAINTEXT listener is refused
    everything the ACLs do not grant."""
    import re

    from confluent_kafka.admin import (AclBinding, AclOperation, AclPermissionType, AdminClient, NewTopic,
                                       ResourcePatternType, ResourceType)

    c = Cluster(etcd_server, tmp_path, 2, settings={
        "listeners": "PLAINTEXT://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:0",
        "sasl.users": "broker:b-pw,alice:a-pw", "inter.broker.listener.name": "SASL_PLAINTEXT",
        "inter.broker.sasl.user": "broker", "sasl.mechanism.inter.broker.protocol": "SCRAM-SHA-256",
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "super.users": "User:broker"}).start()
    try:
        sasl = {i: next(int(m.group(1)) for line in list(b.output)
                        if (m := re.search(r"hpbroker ready .*SASL_PLAINTEXT://127\.0\.0\.1:(\d+)", line)))
                for i, b in c.brokers.items()}

        def conf(user: str, password: str, broker: int = 1) -> dict:
            return {"bootstrap.servers": f"127.0.0.1:{sasl[broker]}", "security.protocol": "SASL_PLAINTEXT",
                    "sasl.mechanism": "PLAIN", "sasl.username": user, "sasl.password": password}

        admin = AdminClient(conf("broker", "b-pw"))
        admin.create_topics([NewTopic("locked", 2, 2, config={"min.insync.replicas": "2"})])["locked"].result(15)
        grant = AclBinding(ResourceType.TOPIC, "locked", ResourcePatternType.LITERAL, "User:alice", "*",
                           AclOperation.WRITE, AclPermissionType.ALLOW)
        admin.create_acls([grant])[grant].result(10)

        wait_for(lambda: acks_all_errors(conf("alice", "a-pw", 2), "locked") == {None}, 30,
                 "acks=all through replicas on SASL")
        parts = admin.list_topics("locked", timeout=10).topics["locked"].partitions.values()
        assert all(sorted(p.isrs) == [1, 2] for p in parts)
        assert acks_all_errors({"bootstrap.servers": c.brokers[1].bootstrap}, "locked") == \
            {"TOPIC_AUTHORIZATION_FAILED"}

        # A cluster-wide dynamic default goes through etcd: set at broker 1, shown by broker 2.
        from tools.client import Client

        with Client(f"127.0.0.1:{sasl[1]}", sasl=("PLAIN", "broker", "b-pw")) as cl:
            reply = cl.any.request(44, {"resources": [{"resource_type": 4, "resource_name": "", "configs": [
                {"name": "log.retention.ms", "config_operation": 0, "value": "7200000"}]}], "validate_only": False})
            assert reply["responses"][0]["error_code"] == 0

        def shown(broker: int) -> tuple:
            with Client(f"127.0.0.1:{sasl[broker]}", sasl=("PLAIN", "broker", "b-pw")) as cl:
                entry = cl.any.request(32, {"resources": [{"resource_type": 2, "resource_name": "locked",
                                                           "configuration_keys": ["retention.ms"]}]})
            e = entry["results"][0]["configs"][0]
            return e["value"], e["config_source"]

        wait_for(lambda: shown(2) == ("7200000", 3), 15, "broker 2 shows the dynamic default")
        # Broker 2's own value, set through broker 1: broker 2 takes it, broker 1 keeps the default.
        with Client(f"127.0.0.1:{sasl[1]}", sasl=("PLAIN", "broker", "b-pw")) as cl:
            reply = cl.any.request(44, {"resources": [{"resource_type": 4, "resource_name": "2", "configs": [
                {"name": "log.retention.ms", "config_operation": 0, "value": "3600000"}]}], "validate_only": False})
            assert reply["responses"][0]["error_code"] == 0
        wait_for(lambda: shown(2) == ("3600000", 2), 15, "broker 2 shows its own value")
        assert shown(1) == ("7200000", 3)
    finally:
        c.close()


@pytest.mark.skipif(__import__("shutil").which("openssl") is None, reason="openssl is not installed (its CLI "
                                                                         "makes the test certificates)")
def test_replication_over_mutual_tls_as_the_brokers_certificate(etcd_server, tmp_path):
    """inter.broker.listener.name=SSL with ssl.client.auth=required: followers check the leader's certificate
    and show their own, whose subject (CN=server) is the brokers' principal and the only super user."""
    import re

    from confluent_kafka.admin import AdminClient, NewTopic

    from tools.testing import make_test_certificates

    (tmp_path / "certs").mkdir()
    certs = make_test_certificates(tmp_path / "certs")
    c = Cluster(etcd_server, tmp_path, 2, settings={
        "listeners": "PLAINTEXT://127.0.0.1:0,SSL://127.0.0.1:0", "inter.broker.listener.name": "SSL",
        "ssl.keystore.location": certs["keystore"], "ssl.truststore.location": certs["ca"],
        "ssl.client.auth": "required", "authorizer.class.name": "kafka.security.authorizer.AclAuthorizer",
        "super.users": "User:CN=server;User:CN=client"}).start()
    try:
        ssl_port = {i: next(int(m.group(1)) for line in list(b.output)
                            if (m := re.search(r"hpbroker ready .*SSL://127\.0\.0\.1:(\d+)", line)))
                    for i, b in c.brokers.items()}
        tls = {"bootstrap.servers": f"127.0.0.1:{ssl_port[1]}", "security.protocol": "SSL",
               "ssl.ca.location": certs["ca"], "ssl.certificate.location": certs["client_cert"],
               "ssl.key.location": certs["client_key"]}
        admin = AdminClient(tls)
        admin.create_topics([NewTopic("tls-rep", 2, 2, config={"min.insync.replicas": "2"})])["tls-rep"].result(15)

        wait_for(lambda: acks_all_errors(tls, "tls-rep") == {None}, 30, "acks=all through replicas on mutual TLS")
        parts = admin.list_topics("tls-rep", timeout=10).topics["tls-rep"].partitions.values()
        assert all(sorted(p.isrs) == [1, 2] for p in parts)
    finally:
        c.close()
