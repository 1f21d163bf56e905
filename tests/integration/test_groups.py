"""Consumer groups with real clients in separate processes against the real broker: assignment across
members, failover of a killed member, exactly-once hand-over through committed offsets, durability of
offsets over restarts and kill -9, static membership, kafka-python's own coordinator code, admin views,
and the protocol-level rules (MEMBER_ID_REQUIRED, -1 for nothing committed, standalone commits)."""

import multiprocessing
import os
import queue
import signal
import struct
import time

import pytest

from tools.testing import BrokerProcess

PARTITIONS = 12
SETTINGS = {"group.initial.rebalance.delay.ms": 0, "offsets.topic.num.partitions": 8}
CONSUMER = {"session.timeout.ms": 6000, "heartbeat.interval.ms": 500, "enable.auto.commit": False,
            "auto.offset.reset": "earliest", "fetch.wait.max.ms": 100, "topic.metadata.refresh.interval.ms": 2000}

SPAWN = multiprocessing.get_context("spawn")


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    b = BrokerProcess(data_dir=str(tmp_path_factory.mktemp("groups")), settings=SETTINGS, network_threads=2,
                      io_threads=2)
    b.start()
    yield b
    b.close()


def _create(bootstrap, topic, partitions=PARTITIONS):
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, partitions, 1)])[topic].result(15)


def _produce(bootstrap, topic, n, partitions=PARTITIONS, tag=b""):
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    for i in range(n):
        p.produce(topic, value=tag + b"%06d" % i, partition=i % partitions)
    assert p.flush(30) == 0


# -- member processes ---------------------------------------------------------------------------------------

def confluent_member(bootstrap, group, topic, name, out, extra):
    """A group member: reports its assignment after every change and every record it consumed; commits
    each record synchronously after reporting it."""
    from confluent_kafka import Consumer, KafkaException

    owned = set()
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "client.id": name, **CONSUMER, **extra})

    def assigned(consumer, parts):
        owned.update(p.partition for p in parts)
        out.put(("assignment", name, sorted(owned)))

    def revoked(consumer, parts):
        owned.difference_update(p.partition for p in parts)
        out.put(("assignment", name, sorted(owned)))

    c.subscribe([topic], on_assign=assigned, on_revoke=revoked, on_lost=revoked)
    try:
        while True:
            msg = c.poll(0.2)
            if msg is None or msg.error():
                continue
            out.put(("record", name, msg.partition(), msg.offset()))
            for _ in range(50):  # the coordinator may be restarting: retry, as an application would
                try:
                    c.commit(message=msg, asynchronous=False)
                    break
                except KafkaException:
                    time.sleep(0.2)
    finally:
        c.close()


def kafka_python_member(bootstrap, group, topic, name, out):
    from kafka import KafkaConsumer

    c = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group, client_id=name,
                      auto_offset_reset="earliest", enable_auto_commit=False, session_timeout_ms=6000,
                      heartbeat_interval_ms=500)
    last = None
    while True:
        # A poll shorter than a rebalance can strand kafka-python 3.0: if its timer expires between the
        # JoinGroup and the SyncGroup response, the join completes in the background, the assignment is never
        # applied and heartbeats stay off until the session expires. Poll long enough for a rebalance here.
        batches = c.poll(timeout_ms=3000)
        now = sorted(tp.partition for tp in c.assignment())
        if now != last:
            out.put(("assignment", name, now))
            last = now
        for msgs in batches.values():
            for msg in msgs:
                out.put(("record", name, msg.partition, msg.offset))
        if batches:
            c.commit()


class Members:
    """Member processes and what they reported."""

    def __init__(self):
        self.out = SPAWN.Queue()
        self.procs: dict[str, multiprocessing.Process] = {}
        self.assignment: dict[str, list[int]] = {}
        self.events: list[tuple] = []
        self.records: list[tuple[int, int]] = []

    def start(self, target, name, *args):
        p = SPAWN.Process(target=target, args=args, daemon=True)
        p.start()
        self.procs[name] = p

    def drain(self, timeout=0.2):
        try:
            while True:
                ev = self.out.get(timeout=timeout)
                self.events.append(ev)
                if ev[0] == "assignment":
                    self.assignment[ev[1]] = ev[2]
                else:
                    self.records.append((ev[2], ev[3]))
                timeout = 0.01
        except queue.Empty:
            pass

    def wait(self, predicate, timeout, what):
        deadline = time.time() + timeout
        while time.time() < deadline:
            self.drain()
            if predicate():
                return
        raise AssertionError(f"timed out waiting for {what}: {self.assignment}")

    def covering(self, names, partitions=PARTITIONS):
        """Every named member has partitions, they are disjoint, and together they cover the topic."""
        parts = [self.assignment.get(n, []) for n in names]
        flat = [p for ps in parts for p in ps]
        return all(parts) and len(flat) == len(set(flat)) and set(flat) == set(range(partitions))

    def kill(self, name):
        os.kill(self.procs[name].pid, signal.SIGKILL)
        self.procs[name].join(10)
        self.assignment.pop(name, None)

    def stop_all(self):
        for p in self.procs.values():
            if p.is_alive():
                p.terminate()
        for p in self.procs.values():
            p.join(10)


@pytest.fixture
def members():
    m = Members()
    yield m
    m.stop_all()


# -- acceptance -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("assignor", ["range", "roundrobin", "cooperative-sticky"])
def test_three_members_split_partitions_and_survive_a_killed_member(broker, members, assignor):
    topic, group = f"split-{assignor}", f"g-split-{assignor}"
    _create(broker.bootstrap, topic)
    names = ["a", "b", "c"]
    for n in names:
        members.start(confluent_member, n, broker.bootstrap, group, topic, n, members.out,
                      {"partition.assignment.strategy": assignor})
    members.wait(lambda: members.covering(names), 45, "three disjoint assignments covering the topic")

    members.kill("c")  # no LeaveGroup: the session timeout has to notice
    members.wait(lambda: members.covering(["a", "b"]), 30, "the survivors taking over c's partitions")

    before = len(members.records)
    _produce(broker.bootstrap, topic, 240)
    members.wait(lambda: len(members.records) - before >= 240, 30, "records produced after the failover")
    time.sleep(1.0)
    members.drain()
    after = members.records[before:]
    assert len(after) == 240 and len(set(after)) == 240  # every record once, none twice
    assert {p for p, _ in after} == set(range(PARTITIONS))


def test_new_member_resumes_exactly_after_committed_offsets(broker, members):
    topic, group = "resume", "g-resume"
    _create(broker.bootstrap, topic, 4)
    _produce(broker.bootstrap, topic, 200, partitions=4)
    members.start(confluent_member, "first", broker.bootstrap, group, topic, "first", members.out, {})
    members.wait(lambda: len(members.records) >= 200, 45, "the first member consuming everything")
    first = set(members.records)
    members.kill("first")  # every reported record was committed before the next one was reported
    _produce(broker.bootstrap, topic, 100, partitions=4, tag=b"late")
    count = len(members.records)
    members.start(confluent_member, "second", broker.bootstrap, group, topic, "second", members.out, {})
    # The first member's (possibly uncommitted) last record may come again; nothing before it may.
    members.wait(lambda: len(members.records) - count >= 100, 45, "the second member catching up")
    time.sleep(1.0)
    members.drain()
    second = members.records[count:]
    assert len(second) == len(set(second))
    redelivered = set(second) & first
    assert len(redelivered) <= 1, redelivered
    by_partition = {}
    for p, o in second:
        by_partition.setdefault(p, []).append(o)
    assert set(by_partition) == set(range(4))
    assert sum(len(v) for v in by_partition.values()) - len(redelivered) == 100


def _committed(bootstrap, group, topic, partitions):
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        got = c.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=20)
        return {tp.partition: (tp.offset, tp.metadata, tp.leader_epoch) for tp in got}
    finally:
        c.close()


def _commit_standalone(bootstrap, group, topic, offsets):
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        tps = [TopicPartition(topic, p, o, metadata=f"m{p}", leader_epoch=0) for p, o in offsets.items()]
        c.commit(offsets=tps, asynchronous=False)
    finally:
        c.close()


def test_deleting_a_topic_drops_its_committed_offsets(tmp_path):
    """As Kafka does: a topic re-created under the same name starts with nothing committed, the group's
    offsets of other topics stay, and the removal outlives a restart (it is stored, not only forgotten)."""
    from confluent_kafka.admin import AdminClient

    nothing = {0: (-1001, None, None), 1: (-1001, None, None)}
    kept = {0: (4, "m0", 0), 1: (6, "m1", 0)}
    with BrokerProcess(data_dir=str(tmp_path), settings=SETTINGS, io_threads=2) as b:
        for topic in ("doomed", "kept"):
            _create(b.bootstrap, topic, 2)
            _produce(b.bootstrap, topic, 10, partitions=2)
            _commit_standalone(b.bootstrap, "g-del", topic, {0: 4, 1: 6})
        assert _committed(b.bootstrap, "g-del", "doomed", 2) == kept
        admin = AdminClient({"bootstrap.servers": b.bootstrap})
        admin.delete_topics(["doomed"])["doomed"].result(30)
        _create(b.bootstrap, "doomed", 2)
        deadline = time.monotonic() + 10  # the owners apply the new metadata on their own schedule
        while _committed(b.bootstrap, "g-del", "doomed", 2) != nothing and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _committed(b.bootstrap, "g-del", "doomed", 2) == nothing
        assert _committed(b.bootstrap, "g-del", "kept", 2) == kept
        assert b.stop() == 0
        b.start()
        assert _committed(b.bootstrap, "g-del", "doomed", 2) == nothing
        assert _committed(b.bootstrap, "g-del", "kept", 2) == kept


def test_offsets_survive_restart_and_kill_9(tmp_path):
    with BrokerProcess(data_dir=str(tmp_path), settings=SETTINGS, io_threads=2) as b:
        _create(b.bootstrap, "durable", 4)
        _produce(b.bootstrap, "durable", 40, partitions=4)
        _commit_standalone(b.bootstrap, "g-durable", "durable", {0: 3, 1: 5, 2: 7})
        first = _committed(b.bootstrap, "g-durable", "durable", 4)
        assert first == {0: (3, "m0", 0), 1: (5, "m1", 0), 2: (7, "m2", 0), 3: (-1001, None, None)}
        assert b.stop() == 0
        b.start()
        assert _committed(b.bootstrap, "g-durable", "durable", 4) == first
        _commit_standalone(b.bootstrap, "g-durable", "durable", {3: 9})
        b.kill()
        b.start()
        after = _committed(b.bootstrap, "g-durable", "durable", 4)
        assert after == {**first, 3: (9, "m3", 0)}

        # Many commits: the coordinator compacts its partition (the log start moves past superseded
        # records) and replay still finds the latest offsets.
        from broker.groups import partition_for
        from tools.client import Client

        conn, _ = _coordinator(b.bootstrap, "g-churn")
        for i in range(1, 261):  # 40 records each: past the compaction threshold
            r = conn.request(8, {"group_id": "g-churn", "generation_id_or_member_epoch": -1, "member_id": "",
                                 "group_instance_id": None, "retention_time_ms": -1,
                                 "topics": [{"name": "durable", "partitions": [
                                     {"partition_index": p, "committed_offset": i + p, "committed_leader_epoch": -1,
                                      "committed_metadata": None} for p in range(4)] * 10}]})
            assert all(p["error_code"] == 0 for p in r["topics"][0]["partitions"])
        conn.close()
        slot = partition_for("g-churn", SETTINGS["offsets.topic.num.partitions"])
        with Client(b.bootstrap) as client:
            deadline = time.time() + 10
            while client.list_offsets("__consumer_offsets", {slot: -2})[slot][0] == 0:
                assert time.time() < deadline, "the offsets partition was never compacted"
                time.sleep(0.2)
        b.kill()
        b.start()
        churn = _committed(b.bootstrap, "g-churn", "durable", 4)
        assert {p: v[0] for p, v in churn.items()} == {p: 260 + p for p in range(4)}
        assert _committed(b.bootstrap, "g-durable", "durable", 4) == after


def test_group_carries_on_over_a_coordinator_crash(broker, members):
    """The I/O workers (coordinators included) die with kill -9 and restart: membership comes back from
    the offsets partition, so the members keep their generation and partitions, and nothing is lost or
    consumed twice."""
    topic, group = "coord-crash", "g-coord-crash"
    _create(broker.bootstrap, topic, 6)
    for n in ("x", "y"):
        members.start(confluent_member, n, broker.bootstrap, group, topic, n, members.out, {})
    members.wait(lambda: members.covering(["x", "y"], 6), 45, "two members sharing the topic")
    _produce(broker.bootstrap, topic, 60, partitions=6)
    members.wait(lambda: len(members.records) >= 60, 30, "the first records")
    before = dict(members.assignment)
    changes = sum(1 for e in members.events if e[0] == "assignment")
    old = broker.worker_pids("io")
    for pid in old.values():
        os.kill(pid, signal.SIGKILL)
    deadline = time.time() + 30
    while any(broker.worker_pids("io").get(i) == pid for i, pid in old.items()):
        assert time.time() < deadline, "I/O workers were not restarted"
        time.sleep(0.1)
    count = len(members.records)
    _produce(broker.bootstrap, topic, 60, partitions=6, tag=b"after")
    members.wait(lambda: len(members.records) - count >= 60, 45, "records produced after the crash")
    time.sleep(1.0)
    members.drain()
    after = members.records[count:]
    assert len(after) == 60 and len(set(after)) == 60 and not set(after) & set(members.records[:count])
    assert members.assignment == before
    assert sum(1 for e in members.events if e[0] == "assignment") == changes  # no rebalance


def test_static_members_rejoin_without_rebalance(broker, members):
    topic, group = "static", "g-static"
    _create(broker.bootstrap, topic, 6)
    for n in ("s1", "s2"):
        members.start(confluent_member, n, broker.bootstrap, group, topic, n, members.out,
                      {"group.instance.id": f"inst-{n}", "session.timeout.ms": 10000})
    members.wait(lambda: members.covering(["s1", "s2"], 6), 45, "two static members sharing the topic")
    before = dict(members.assignment)
    s2_events = sum(1 for e in members.events if e[0] == "assignment" and e[1] == "s2")
    members.kill("s1")
    members.start(confluent_member, "s1", broker.bootstrap, group, topic, "s1", members.out,
                  {"group.instance.id": "inst-s1", "session.timeout.ms": 10000})
    members.wait(lambda: members.assignment.get("s1") == before["s1"], 30, "s1 back with its old partitions")
    time.sleep(2.0)
    members.drain()
    assert sum(1 for e in members.events if e[0] == "assignment" and e[1] == "s2") == s2_events  # s2 untouched
    assert members.assignment["s2"] == before["s2"]


def test_kafka_python_group_consumers(broker, members):
    """kafka-python runs its own coordinator code: two members split the topic, consume every record once
    and commit."""
    topic, group = "kp", "g-kp"
    _create(broker.bootstrap, topic, 4)
    for n in ("kp1", "kp2"):
        members.start(kafka_python_member, n, broker.bootstrap, group, topic, n, members.out)
    members.wait(lambda: members.covering(["kp1", "kp2"], 4), 60, "two kafka-python members sharing the topic")
    _produce(broker.bootstrap, topic, 120, partitions=4)
    members.wait(lambda: len(members.records) >= 120, 60, "kafka-python consuming the topic")
    time.sleep(1.0)
    members.drain()
    assert len(members.records) == len(set(members.records)) == 120
    deadline = time.time() + 10
    while time.time() < deadline:
        committed = _committed(broker.bootstrap, group, topic, 4)
        if all(v[0] == 30 for v in committed.values()):
            break
        time.sleep(0.2)
    assert {p: v[0] for p, v in committed.items()} == {p: 30 for p in range(4)}


def test_admin_describe_list_lag_and_delete(broker, members):
    from confluent_kafka import ConsumerGroupState, ConsumerGroupTopicPartitions, TopicPartition
    from confluent_kafka.admin import AdminClient

    topic, group = "admin-view", "g-admin"
    _create(broker.bootstrap, topic, 4)
    _produce(broker.bootstrap, topic, 40, partitions=4)
    members.start(confluent_member, "m1", broker.bootstrap, group, topic, "m1", members.out, {})
    members.wait(lambda: len(members.records) >= 40, 45, "the member consuming")
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})

    listed = {g.group_id: g for g in admin.list_consumer_groups().result(15).valid}
    assert group in listed and listed[group].is_simple_consumer_group is False

    desc = admin.describe_consumer_groups([group, "g-never-seen"])
    d = desc[group].result(15)
    assert d.state == ConsumerGroupState.STABLE and d.partition_assignor == "range"
    assert len(d.members) == 1 and d.members[0].client_id == "m1" and d.members[0].host == "/127.0.0.1"
    assert sorted(tp.partition for tp in d.members[0].assignment.topic_partitions) == [0, 1, 2, 3]
    assert desc["g-never-seen"].result(15).state == ConsumerGroupState.DEAD

    _produce(broker.bootstrap, topic, 8, partitions=4)  # lag: two more records per partition
    members.wait(lambda: len(members.records) >= 48, 30, "the member catching up")
    members.kill("m1")
    res = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])[group].result(15)
    committed = {tp.partition: tp.offset for tp in res.topic_partitions if tp.topic == topic}
    from confluent_kafka import Consumer

    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "lag-probe"})
    ends = {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in range(4)}
    c.close()
    assert {p: ends[p] - committed[p] for p in range(4)} == {0: 0, 1: 0, 2: 0, 3: 0}

    # A group with live (or not yet expired) members cannot be deleted; once empty it can.
    fut = admin.delete_consumer_groups([group])[group]
    with pytest.raises(Exception) as err:
        fut.result(15)
    assert "NON_EMPTY_GROUP" in str(err.value)
    deadline = time.time() + 20
    while admin.describe_consumer_groups([group])[group].result(15).state != ConsumerGroupState.EMPTY:
        assert time.time() < deadline, "the killed member was never expired"
        time.sleep(0.3)
    admin.delete_consumer_groups([group])[group].result(15)
    assert _committed(broker.bootstrap, group, topic, 4)[0][0] == -1001


# -- protocol rules (raw requests) --------------------------------------------------------------------------

def _coordinator(bootstrap, group):
    from tools.client import Connection, parse_address

    conn = Connection(*parse_address(bootstrap))
    for _ in range(50):
        r = conn.request(10, {"key": group, "key_type": 0})
        if r["error_code"] == 0:
            return conn, r
        time.sleep(0.1)
    raise AssertionError(r)


SUBSCRIPTION_RAW = struct.pack(">hih3si", 0, 1, 3, b"raw", -1)  # ConsumerProtocolSubscription v0: ["raw"]


def test_protocol_rules(broker):
    from netio.codec import ErrorCode as E

    _create(broker.bootstrap, "raw", 2)
    conn, found = _coordinator(broker.bootstrap, "g-raw")
    assert found["port"] == broker.port
    join = {"group_id": "g-raw", "session_timeout_ms": 6000, "rebalance_timeout_ms": 10000, "member_id": "",
            "group_instance_id": None, "protocol_type": "consumer",
            "protocols": [{"name": "range", "metadata": SUBSCRIPTION_RAW}]}
    first = conn.request(11, join, highest=5)
    assert first["error_code"] == E.MEMBER_ID_REQUIRED and first["member_id"]
    member = first["member_id"]
    joined = conn.request(11, {**join, "member_id": member}, highest=5)
    assert joined["error_code"] == 0 and joined["leader"] == member and joined["generation_id"] == 1
    gen = joined["generation_id"]
    synced = conn.request(14, {"group_id": "g-raw", "generation_id": gen, "member_id": member,
                               "group_instance_id": None,
                               "assignments": [{"member_id": member, "assignment": b"mine"}]}, highest=3)
    assert synced == {"throttle_time_ms": 0, "error_code": 0, "assignment": b"mine"}
    hb = {"group_id": "g-raw", "generation_id": gen, "member_id": member, "group_instance_id": None}
    assert conn.request(12, hb)["error_code"] == 0
    assert conn.request(12, {**hb, "generation_id": gen + 5})["error_code"] == E.ILLEGAL_GENERATION
    assert conn.request(12, {**hb, "member_id": "ghost"})["error_code"] == E.UNKNOWN_MEMBER_ID
    bad = conn.request(11, {**join, "session_timeout_ms": 10}, highest=5)
    assert bad["error_code"] == E.INVALID_SESSION_TIMEOUT

    commit = {"group_id": "g-raw", "generation_id_or_member_epoch": gen, "member_id": member,
              "group_instance_id": None, "retention_time_ms": -1,
              "topics": [{"name": "raw", "partitions": [
                  {"partition_index": 0, "committed_offset": 5, "committed_leader_epoch": 0,
                   "committed_metadata": "hello"}]}]}
    assert conn.request(8, commit)["topics"][0]["partitions"][0]["error_code"] == 0
    stale = conn.request(8, {**commit, "generation_id_or_member_epoch": -1, "member_id": ""})
    assert stale["topics"][0]["partitions"][0]["error_code"] == E.UNKNOWN_MEMBER_ID  # not standalone: group live
    fetched = conn.request(9, {"group_id": "g-raw", "topics": [{"name": "raw", "partition_indexes": [0, 1]}]})
    parts = {p["partition_index"]: p for p in fetched["topics"][0]["partitions"]}
    assert (parts[0]["committed_offset"], parts[0]["metadata"], parts[0]["committed_leader_epoch"]) == (5, "hello", 0)
    assert parts[1]["committed_offset"] == -1 and parts[1]["error_code"] == 0
    everything = conn.request(9, {"group_id": "g-raw", "topics": None})
    listed = [(t["name"], [p["partition_index"] for p in t["partitions"]]) for t in everything["topics"]]
    assert listed == [("raw", [0])]

    od = conn.request(47, {"group_id": "g-raw", "topics": [{"name": "raw", "partitions": [{"partition_index": 0}]}]})
    assert od["topics"][0]["partitions"][0]["error_code"] == E.GROUP_SUBSCRIBED_TO_TOPIC

    left = conn.request(13, {"group_id": "g-raw", "members": [{"member_id": member, "group_instance_id": None},
                                                              {"member_id": "ghost", "group_instance_id": None}]})
    assert [m["error_code"] for m in left["members"]] == [0, E.UNKNOWN_MEMBER_ID]

    # Empty now: a standalone commit (generation -1, no member) is accepted, OffsetDelete removes it.
    solo = conn.request(8, {**commit, "generation_id_or_member_epoch": -1, "member_id": ""})
    assert solo["topics"][0]["partitions"][0]["error_code"] == 0
    od = conn.request(47, {"group_id": "g-raw", "topics": [{"name": "raw", "partitions": [{"partition_index": 0}]}]})
    assert od["error_code"] == 0 and od["topics"][0]["partitions"][0]["error_code"] == 0
    fetched = conn.request(9, {"group_id": "g-raw", "topics": [{"name": "raw", "partition_indexes": [0]}]})
    assert fetched["topics"][0]["partitions"][0]["committed_offset"] == -1
    assert conn.request(11, {**join, "protocol_type": ""}, highest=5)["error_code"] == E.INCONSISTENT_GROUP_PROTOCOL
    conn.close()


def test_admin_fan_out_over_coordinators(broker):
    """Groups spread over both I/O workers: ListGroups and DescribeGroups merge every coordinator's part."""
    from tools.client import Connection, parse_address

    from broker.groups import partition_for

    _create(broker.bootstrap, "fan", 1)
    groups = [f"fan-{i}" for i in range(12)]
    assert len({partition_for(g, SETTINGS["offsets.topic.num.partitions"]) % 2 for g in groups}) == 2
    conn = Connection(*parse_address(broker.bootstrap))
    for g in groups:
        _coordinator(broker.bootstrap, g)[0].close()
        r = conn.request(8, {"group_id": g, "generation_id_or_member_epoch": -1, "member_id": "",
                             "group_instance_id": None, "retention_time_ms": -1,
                             "topics": [{"name": "fan", "partitions": [
                                 {"partition_index": 0, "committed_offset": 1, "committed_leader_epoch": -1,
                                  "committed_metadata": None}]}]})
        assert r["topics"][0]["partitions"][0]["error_code"] == 0
    listed = {g["group_id"] for g in conn.request(16, {}, highest=2)["groups"]}
    assert set(groups) <= listed
    states = {g["group_id"]: g["group_state"] for g in conn.request(16, {"states_filter": []})["groups"]}
    assert all(states[g] == "Empty" for g in groups)  # v4: every group with its state
    assert set(groups) <= {g["group_id"] for g in conn.request(16, {"states_filter": ["empty"]})["groups"]}
    assert not set(groups) & {g["group_id"] for g in conn.request(16, {"states_filter": ["Stable"]})["groups"]}
    described = conn.request(15, {"groups": groups + ["fan-none"], "include_authorized_operations": False})
    assert [d["group_id"] for d in described["groups"]] == groups + ["fan-none"]
    assert [d["group_state"] for d in described["groups"]] == ["Empty"] * 12 + ["Dead"]
    deleted = conn.request(42, {"groups_names": groups[:6] + ["fan-none"]})
    assert [r["error_code"] for r in deleted["results"]] == [0] * 6 + [69]  # GROUP_ID_NOT_FOUND
    listed = {g["group_id"] for g in conn.request(16, {})["groups"]}
    assert set(groups[6:]) <= listed and not set(groups[:6]) & listed
    conn.close()
