"""Admin APIs with real clients: confluent-kafka's AdminClient and producer, kafka-python's admin."""

import os
import time
import uuid

import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import (AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, ConfigSource,
                                   NewPartitions, NewTopic)

from tools.testing import BrokerProcess


@pytest.fixture(scope="module")
def live():
    """One broker for this module, with two I/O workers (so requests span partition owners) and a fast
    retention check."""
    with BrokerProcess(io_threads=2, settings={"log.retention.check.interval.ms": 200}) as b:
        yield b


def admin(b):
    return AdminClient({"bootstrap.servers": b.bootstrap})


def create(b, partitions=1, **configs):
    name = f"adm-{uuid.uuid4().hex[:8]}"
    a = admin(b)
    fs = a.create_topics([NewTopic(name, partitions, 1, config={k.replace("_", "."): str(v)
                                                                      for k, v in configs.items()})])
    fs[name].result(30)
    return name


def produce(b, topic, n, partition=0, size=10, **conf):
    p = Producer({"bootstrap.servers": b.bootstrap, "linger.ms": 0, **conf})
    reports = []
    for i in range(n):
        p.produce(topic, b"x" * size, partition=partition, on_delivery=lambda err, msg: reports.append((err, msg)))
        p.poll(0)
    p.flush(30)
    return reports


def configs_of(b, rtype, name):
    res = ConfigResource(rtype, name)
    a = admin(b)
    return a.describe_configs([res])[res].result(30)


def test_describe_configs_reports_every_default_with_its_source(live):
    name = create(live, retention_ms=3600000)
    topic = configs_of(live, ConfigResource.Type.TOPIC, name)
    assert topic["retention.ms"].value == "3600000"
    assert topic["retention.ms"].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    assert topic["cleanup.policy"].value == "delete"
    assert topic["segment.bytes"].source == ConfigSource.DEFAULT_CONFIG.value
    chain = [(s.name, s.value, s.source) for s in topic["retention.ms"].synonyms.values()]
    assert chain[0] == ("retention.ms", "3600000", ConfigSource.DYNAMIC_TOPIC_CONFIG.value)
    assert chain[1][0] == "log.retention.ms" and chain[1][2] == ConfigSource.DEFAULT_CONFIG.value
    for key in ("retention.bytes", "segment.ms", "max.message.bytes", "message.timestamp.type",
                "min.insync.replicas"):
        assert key in topic
    broker = configs_of(live, ConfigResource.Type.BROKER, "0")
    assert broker["log.retention.check.interval.ms"].value == "200"
    assert broker["log.retention.check.interval.ms"].source == ConfigSource.STATIC_BROKER_CONFIG.value
    assert broker["num.partitions"].source == ConfigSource.DEFAULT_CONFIG.value
    assert broker["num.partitions"].is_read_only


@pytest.mark.parametrize("version", [0, 3])
def test_describe_configs_answers_every_key_for_a_null_or_empty_key_list(live, version):
    """As Kafka's ConfigHelper: null and [] both mean every key; a list names the keys wanted."""
    from netio.codec import ErrorCode
    from perf import wire

    name = create(live, retention_ms=3600000)
    conn = wire.Connection("127.0.0.1", live.port)
    try:
        def described(rtype, rname, keys):
            body = {"resources": [{"resource_type": rtype, "resource_name": rname, "configuration_keys": keys}],
                    "include_synonyms": False, "include_documentation": False}
            (result,) = conn.call(32, version, body)["results"]
            assert result["error_code"] == ErrorCode.NONE, result
            return {c["name"]: c["value"] for c in result["configs"]}

        every = described(2, name, None)
        assert every["retention.ms"] == "3600000" and "segment.bytes" in every and len(every) > 10
        assert described(2, name, []) == every
        assert described(2, name, ["retention.ms", "cleanup.policy"]) == {"retention.ms": "3600000",
                                                                          "cleanup.policy": "delete"}
        brokers = described(4, "0", None)
        assert described(4, "0", []) == brokers and "num.partitions" in brokers
    finally:
        conn.close()


def test_topic_configs_for_compression_indexes_and_preallocation(live):
    """compression.type=producer (what the broker does: batches stay as produced) is accepted, another
    codec is refused; segment.index.bytes and preallocate (off by default here) shape the topic's files."""
    name = create(live, compression_type="producer", preallocate="true", segment_index_bytes=4096,
                  segment_bytes=64 << 20)
    topic = configs_of(live, ConfigResource.Type.TOPIC, name)
    assert topic["compression.type"].value == "producer"
    assert (topic["preallocate"].value, topic["segment.index.bytes"].value) == ("true", "4096")
    assert produce(live, name, 5) and all(err is None for err, _ in produce(live, name, 5))
    d = os.path.join(live.data_dir, f"{name}-0")
    stats = {f.rsplit(".", 1)[1]: os.stat(os.path.join(d, f)) for f in os.listdir(d)
             if f.startswith("0000") and f.rsplit(".", 1)[1] in ("log", "index")}
    assert stats["index"].st_size == 4096
    assert stats["log"].st_blocks * 512 >= 64 << 20  # all of segment.bytes taken at once
    with pytest.raises(KafkaException, match="only compression.type=producer"):
        create(live, compression_type="zstd")


def test_alter_configs_replaces_and_incremental_edits(live):
    name = create(live, retention_ms=3600000)
    a = admin(live)
    res = ConfigResource(ConfigResource.Type.TOPIC, name, set_config={"retention.bytes": "5000000"})
    a.alter_configs([res])[res].result(30)
    cfg = configs_of(live, ConfigResource.Type.TOPIC, name)
    assert cfg["retention.bytes"].value == "5000000"
    assert cfg["retention.ms"].source == ConfigSource.DEFAULT_CONFIG.value  # AlterConfigs replaces the set

    inc = ConfigResource(ConfigResource.Type.TOPIC, name, incremental_configs=[
        ConfigEntry("segment.ms", "600000", incremental_operation=AlterConfigOpType.SET),
        ConfigEntry("retention.bytes", None, incremental_operation=AlterConfigOpType.DELETE)])
    a.incremental_alter_configs([inc])[inc].result(30)
    cfg = configs_of(live, ConfigResource.Type.TOPIC, name)
    assert cfg["segment.ms"].value == "600000" and cfg["segment.ms"].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    assert cfg["retention.bytes"].source == ConfigSource.DEFAULT_CONFIG.value

    compact = ConfigResource(ConfigResource.Type.TOPIC, name, incremental_configs=[
        ConfigEntry("cleanup.policy", "compact", incremental_operation=AlterConfigOpType.SET),
        ConfigEntry("min.cleanable.dirty.ratio", "0.1", incremental_operation=AlterConfigOpType.SET)])
    a.incremental_alter_configs([compact])[compact].result(30)
    cfg = configs_of(live, ConfigResource.Type.TOPIC, name)
    assert cfg["cleanup.policy"].value == "compact"
    assert cfg["cleanup.policy"].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    assert cfg["min.cleanable.dirty.ratio"].value == "0.1"
    both = ConfigResource(ConfigResource.Type.TOPIC, name, incremental_configs=[
        ConfigEntry("cleanup.policy", "delete", incremental_operation=AlterConfigOpType.APPEND)])
    a.incremental_alter_configs([both])[both].result(30)
    assert configs_of(live, ConfigResource.Type.TOPIC, name)["cleanup.policy"].value == "compact,delete"
    for bad in ("compress", "delete,delete"):
        wrong = ConfigResource(ConfigResource.Type.TOPIC, name, incremental_configs=[
            ConfigEntry("cleanup.policy", bad, incremental_operation=AlterConfigOpType.SET)])
        with pytest.raises(KafkaException) as e:
            a.incremental_alter_configs([wrong])[wrong].result(30)
        assert e.value.args[0].code() == 40  # INVALID_CONFIG
    broker = ConfigResource(ConfigResource.Type.BROKER, "0", incremental_configs=[
        ConfigEntry("num.partitions", "3", incremental_operation=AlterConfigOpType.SET)])
    with pytest.raises(KafkaException):
        a.incremental_alter_configs([broker])[broker].result(30)
    missing = ConfigResource(ConfigResource.Type.TOPIC, "no-such-topic", set_config={"retention.ms": "1"})
    with pytest.raises(KafkaException):
        a.alter_configs([missing])[missing].result(30)


def test_create_partitions(live):
    name = create(live, partitions=1)
    a = admin(live)
    a.create_partitions([NewPartitions(name, 3)])[name].result(30)
    md = a.list_topics(name, timeout=10)
    assert sorted(md.topics[name].partitions) == [0, 1, 2]
    with pytest.raises(KafkaException):
        a.create_partitions([NewPartitions(name, 2)])[name].result(30)


def test_delete_records_across_owners(live):
    name = create(live, partitions=4)
    for p in range(4):
        produce(live, name, 5, partition=p)
    a = admin(live)
    tps = [TopicPartition(name, 0, 3), TopicPartition(name, 1, 5), TopicPartition(name, 2, -1),
           TopicPartition(name, 3, 0)]
    results = a.delete_records(tps)
    lows = {tp.partition: f.result(30).low_watermark for tp, f in results.items()}
    assert lows == {0: 3, 1: 5, 2: 5, 3: 0}
    c = Consumer({"bootstrap.servers": live.bootstrap, "group.id": "lw"})
    try:
        for p, low in lows.items():
            assert c.get_watermark_offsets(TopicPartition(name, p), timeout=10) == (low, 5)
    finally:
        c.close()
    beyond = a.delete_records([TopicPartition(name, 0, 99)])
    with pytest.raises(KafkaException) as e:
        list(beyond.values())[0].result(30)
    assert e.value.args[0].code() == 1  # OFFSET_OUT_OF_RANGE


def test_list_consumer_group_offsets(live):
    from confluent_kafka import ConsumerGroupTopicPartitions

    name = create(live, partitions=2)
    produce(live, name, 3, partition=0)
    group = f"g-{uuid.uuid4().hex[:6]}"
    c = Consumer({"bootstrap.servers": live.bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        c.commit(offsets=[TopicPartition(name, 0, 2), TopicPartition(name, 1, 0)], asynchronous=False)
    finally:
        c.close()
    req = ConsumerGroupTopicPartitions(group, [TopicPartition(name, 0), TopicPartition(name, 1)])
    a = admin(live)
    res = a.list_consumer_group_offsets([req])[group].result(30)
    assert {tp.partition: tp.offset for tp in res.topic_partitions} == {0: 2, 1: 0}


def test_log_append_time_topic_stamps_records(live):
    from confluent_kafka import TIMESTAMP_CREATE_TIME, TIMESTAMP_LOG_APPEND_TIME

    name = create(live, message_timestamp_type="LogAppendTime")
    before = int(time.time() * 1000)
    reports = produce(live, name, 1)
    err, msg = reports[0]
    assert err is None
    ts_type, ts = msg.timestamp()
    assert ts_type == TIMESTAMP_LOG_APPEND_TIME and before - 1000 <= ts <= int(time.time() * 1000) + 1000

    # switching back at run time: the open log takes the change
    res = ConfigResource(ConfigResource.Type.TOPIC, name, incremental_configs=[
        ConfigEntry("message.timestamp.type", "CreateTime", incremental_operation=AlterConfigOpType.SET)])
    a = admin(live)
    a.incremental_alter_configs([res])[res].result(30)
    err, msg = produce(live, name, 1)[0]
    assert err is None and msg.timestamp()[0] == TIMESTAMP_CREATE_TIME


def test_max_message_bytes_and_retention_apply_to_open_logs(live):
    name = create(live)
    assert produce(live, name, 1, size=5000)[0][0] is None
    a = admin(live)
    res = ConfigResource(ConfigResource.Type.TOPIC, name, set_config={"max.message.bytes": "1000"})
    a.alter_configs([res])[res].result(30)
    err, _ = produce(live, name, 1, size=5000)[0]
    assert err is not None and err.code() == 10  # MESSAGE_TOO_LARGE

    # small segments, then a tiny retention.bytes: old segments go at the next retention check
    res = ConfigResource(ConfigResource.Type.TOPIC, name, set_config={"segment.bytes": "1024"})
    a.alter_configs([res])[res].result(30)
    for _ in range(6):
        assert all(err is None for err, _ in produce(live, name, 3, size=200))
    part_dir = os.path.join(live.data_dir, f"{name}-0")
    assert len([f for f in os.listdir(part_dir) if f.endswith(".log")]) > 2
    res = ConfigResource(ConfigResource.Type.TOPIC, name, set_config={"segment.bytes": "1024",
                                                                      "retention.bytes": "1"})
    a.alter_configs([res])[res].result(30)
    c = Consumer({"bootstrap.servers": live.bootstrap, "group.id": "rt"})
    try:
        deadline = time.monotonic() + 20
        low = 0
        while time.monotonic() < deadline:
            low, high = c.get_watermark_offsets(TopicPartition(name, 0), timeout=10)
            if low > 0:
                break
            time.sleep(0.1)
        assert 0 < low < high == 19
    finally:
        c.close()


def _batch_bytes(path: str) -> int:
    """Bytes of the record batches at the start of a segment file: each batch header's length field,
    followed until the zeros the writer has not reached yet."""
    with open(path, "rb") as f:
        data = f.read()
    pos = 0
    while pos + 12 <= len(data):
        length = int.from_bytes(data[pos + 8:pos + 12], "big")
        if length == 0:
            break
        pos += 12 + length
    return pos


def test_describe_log_dirs_reports_the_bytes_of_each_partition_s_batches(live):
    """A partition's size is what its batches take, not the file the active segment is extended to ahead
    of its writer (segment.bytes)."""
    from kafka.admin import KafkaAdminClient

    name = create(live, partitions=2)
    reports = produce(live, name, 10, partition=1, size=100)
    assert [err for err, _ in reports] == [None] * 10
    k = KafkaAdminClient(bootstrap_servers=live.bootstrap)
    try:
        reply = k.describe_log_dirs()
    finally:
        k.close()
    brokers = reply.to_object() if hasattr(reply, "to_object") else reply
    (broker,) = brokers
    (log_dir,) = broker["log_dirs"]
    assert log_dir["log_dir"] == live.data_dir and log_dir["error_code"] == 0
    sizes = {p["partition_index"]: p["partition_size"]
             for t in log_dir["topics"] if t["name"] == name for p in t["partitions"]}
    segment = os.path.join(live.data_dir, f"{name}-1", "00000000000000000000.log")
    written = _batch_bytes(segment)
    assert os.path.getsize(segment) > 1 << 20 > written > 10 * 100  # the file runs far past its batches
    assert sizes == {0: 0, 1: written}


def test_min_insync_replicas_above_the_isr_refuses_acks_all(live):
    name = create(live, min_insync_replicas=2)
    err, _ = produce(live, name, 1, acks="all", retries=0, **{"message.timeout.ms": 5000})[0]
    assert err is not None and err.code() == 19  # NOT_ENOUGH_REPLICAS
    err, _ = produce(live, name, 1, acks=1)[0]
    assert err is None


def test_a_deleted_and_recreated_topic_serves_only_its_new_records(live):
    """Each incarnation of a topic name is read back alone: readers of the deleted one (same paths, same base
    offsets) must not serve its files."""
    name = create(live, partitions=2)
    a = admin(live)
    for generation in range(3):
        p = Producer({"bootstrap.servers": live.bootstrap, "linger.ms": 0})
        for j in range(20):
            p.produce(name, f"gen{generation}-{j}".encode(), partition=j % 2)
        assert p.flush(30) == 0
        c = Consumer({"bootstrap.servers": live.bootstrap, "group.id": f"g-{uuid.uuid4().hex[:6]}",
                      "enable.auto.commit": False, "fetch.wait.max.ms": 50})
        c.assign([TopicPartition(name, part, 0) for part in range(2)])
        got, deadline = [], time.monotonic() + 30
        while len(got) < 20 and time.monotonic() < deadline:
            m = c.poll(0.2)
            if m is not None and m.error() is None:
                got.append(m.value().decode())
        time.sleep(0.3)  # anything beyond the 20 records (a deleted incarnation's) would arrive by now
        extra = c.consume(100, timeout=0.5)
        c.close()
        assert sorted(got) == sorted(f"gen{generation}-{j}" for j in range(20)), got
        assert [m.value() for m in extra if m.error() is None] == []
        a.delete_topics([name])[name].result(30)
        a.create_topics([NewTopic(name, 2, 1)])[name].result(30)


def test_acl_apis_answer_security_disabled(live):
    """No authorizer: DescribeAcls, CreateAcls and DeleteAcls are served and answer SECURITY_DISABLED, as
    a Kafka broker without an authorizer does, so admin clients report ACLs as off."""
    from confluent_kafka.admin import (AclBinding, AclBindingFilter, AclOperation, AclPermissionType,
                                       ResourcePatternType, ResourceType)

    a = admin(live)
    any_acl = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, None, None, AclOperation.ANY,
                               AclPermissionType.ANY)
    # librdkafka drops DescribeAcls' error code (an empty listing, as against Kafka); kafka-python below
    # raises it.
    assert a.describe_acls(any_acl).result(30) == []
    binding = AclBinding(ResourceType.TOPIC, "t", ResourcePatternType.LITERAL, "User:alice", "*",
                         AclOperation.READ, AclPermissionType.ALLOW)
    for fut in a.create_acls([binding]).values():
        with pytest.raises(KafkaException, match="SECURITY_DISABLED"):
            fut.result(30)
    for fut in a.delete_acls([any_acl]).values():
        with pytest.raises(KafkaException, match="SECURITY_DISABLED"):
            fut.result(30)

    from kafka.admin import ACLFilter, ACLOperation, ACLPermissionType, KafkaAdminClient, ResourcePatternFilter
    from kafka.admin import ACLResourcePatternType, ResourceType as KResourceType
    from kafka.errors import SecurityDisabledError

    ka = KafkaAdminClient(bootstrap_servers=live.bootstrap)
    try:
        with pytest.raises(SecurityDisabledError):
            ka.describe_acls(ACLFilter(principal=None, host="*", operation=ACLOperation.ANY,
                                       permission_type=ACLPermissionType.ANY,
                                       resource_pattern=ResourcePatternFilter(KResourceType.TOPIC, None,
                                                                              ACLResourcePatternType.ANY)))
    finally:
        ka.close()


def test_authorized_operations_are_every_supported_one_when_asked(live):
    """No authorizer: a request that asks for authorized operations (KIP-430) gets every operation the resource
    type supports, as Kafka's AuthHelper answers without an authorizer; one that does not ask gets none."""
    from confluent_kafka import TopicCollection
    from confluent_kafka.admin import AclOperation as Op

    from perf import wire

    name = create(live)
    group = f"ops-{uuid.uuid4().hex[:8]}"
    c = Consumer({"bootstrap.servers": live.bootstrap, "group.id": group, "auto.offset.reset": "earliest"})
    c.subscribe([name])
    deadline = time.time() + 30
    while not c.assignment() and time.time() < deadline:
        c.poll(0.2)
    assert c.assignment()
    a = admin(live)
    try:
        topic_ops = {Op.READ, Op.WRITE, Op.CREATE, Op.DESCRIBE, Op.DELETE, Op.ALTER, Op.DESCRIBE_CONFIGS,
                     Op.ALTER_CONFIGS}
        (f,) = a.describe_topics(TopicCollection([name]), include_authorized_operations=True).values()
        assert set(f.result(30).authorized_operations) == topic_ops
        (f,) = a.describe_topics(TopicCollection([name])).values()
        assert f.result(30).authorized_operations is None

        cluster = a.describe_cluster(include_authorized_operations=True).result(30)
        assert set(cluster.authorized_operations) == {Op.CREATE, Op.CLUSTER_ACTION, Op.DESCRIBE_CONFIGS,
                                                      Op.ALTER_CONFIGS, Op.IDEMPOTENT_WRITE, Op.ALTER, Op.DESCRIBE}
        assert a.describe_cluster().result(30).authorized_operations is None

        (f,) = a.describe_consumer_groups([group], include_authorized_operations=True).values()
        described = f.result(30)
        assert len(described.members) == 1
        assert set(described.authorized_operations) == {Op.READ, Op.DESCRIBE, Op.DELETE}
        (f,) = a.describe_consumer_groups([group]).values()
        assert f.result(30).authorized_operations is None
    finally:
        c.close()

    # Metadata v8: a topic that does not exist is answered with its operations too; the cluster's bit field
    # is the same as DescribeCluster's.
    conn = wire.Connection("127.0.0.1", live.port)
    try:
        body = {"topics": [{"name": name}, {"name": f"missing-{uuid.uuid4().hex[:8]}"}],
                "allow_auto_topic_creation": False, "include_cluster_authorized_operations": True,
                "include_topic_authorized_operations": True}
        resp = conn.call(3, 8, body)
        assert [t["topic_authorized_operations"] for t in resp["topics"]] == [3576, 3576]
        assert resp["topics"][1]["error_code"] != 0
        assert resp["cluster_authorized_operations"] == 8096
        body.update(include_cluster_authorized_operations=False, include_topic_authorized_operations=False)
        resp = conn.call(3, 8, body)
        assert [t["topic_authorized_operations"] for t in resp["topics"]] == [-2**31, -2**31]
        assert resp["cluster_authorized_operations"] == -2**31
    finally:
        conn.close()


def test_describe_topic_partitions_pages_through_topics_with_a_cursor(live):
    """DescribeTopicPartitions (KIP-966) through kafka-python's admin client, paged as Kafka pages it: topics in
    name order, at most the asked number of partitions per response, and a cursor naming where the next page
    starts; then the wire request with the cases the client does not send."""
    from kafka.admin import KafkaAdminClient

    from perf import wire

    tag = uuid.uuid4().hex[:8]
    names = {}
    a = admin(live)
    for suffix, partitions in (("b", 3), ("a", 2), ("c", 1)):
        names[suffix] = f"dtp-{tag}-{suffix}"
        a.create_topics([NewTopic(names[suffix], partitions, 1)])[names[suffix]].result(30)
    ordered = [names["a"], names["b"], names["c"]]  # 2, 3 and 1 partitions
    missing = f"dtp-{tag}-missing"

    k = KafkaAdminClient(bootstrap_servers=live.bootstrap)
    try:
        whole = k.describe_topic_partitions([names["c"], missing, names["a"], names["b"], "bad/name"])
        assert whole["next_cursor"] is None
        got = {t["name"]: t for t in whole["topics"]}
        assert [t["name"] for t in whole["topics"]] == ["bad/name", *ordered, missing]  # in name order
        assert [p["partition_index"] for p in got[names["b"]]["partitions"]] == [0, 1, 2]
        p0 = got[names["b"]]["partitions"][0]
        assert p0["error_code"] == 0 and p0["leader_id"] == 0 and p0["replica_nodes"] == [0] \
            and p0["isr_nodes"] == [0] and p0["leader_epoch"] >= 0
        assert got[names["b"]]["error_code"] == 0 and got[names["b"]]["is_internal"] is False
        assert got[names["b"]]["topic_authorized_operations"] == 3576
        assert got[missing]["error_code"] == 3 and got[missing]["partitions"] == []  # UNKNOWN_TOPIC_OR_PARTITION
        assert got["bad/name"]["error_code"] == 17  # INVALID_TOPIC_EXCEPTION

        # Two partitions a page: a's two, then b's first two, then b's last and c's only one.
        pages, cursor = [], None
        while True:
            page = k.describe_topic_partitions(ordered, response_partition_limit=2, cursor=cursor)
            pages.append([(t["name"], [p["partition_index"] for p in t["partitions"]]) for t in page["topics"]])
            cursor = page["next_cursor"]
            if cursor is None:
                break
            assert len(pages) < 10
        assert pages == [[(names["a"], [0, 1])],
                         [(names["b"], [0, 1])],
                         [(names["b"], [2]), (names["c"], [0])]]
    finally:
        k.close()

    conn = wire.Connection("127.0.0.1", live.port)
    try:
        def call(topics, limit=2000, cursor=None):
            return conn.call(75, 0, {"topics": [{"name": n} for n in topics], "response_partition_limit": limit,
                                     "cursor": cursor})

        # A page that ends exactly where a topic ends points at the next topic's first partition.
        resp = call(ordered, limit=2)
        assert [t["name"] for t in resp["topics"]] == [names["a"]]
        assert resp["next_cursor"] == {"topic_name": names["b"], "partition_index": 0}
        # No topics named: every topic, missing ones unmentioned; the cursor skips the names before it.
        resp = call([], cursor={"topic_name": names["b"], "partition_index": 1})
        listed = [t["name"] for t in resp["topics"]]
        assert listed[:2] == [names["b"], names["c"]] and listed == sorted(listed) and missing not in listed
        assert [p["partition_index"] for p in resp["topics"][0]["partitions"]] == [1, 2]
        assert resp["topics"][0]["partitions"][0]["eligible_leader_replicas"] == []
        # A cursor whose topic the list leaves out: INVALID_REQUEST for every topic asked for.
        resp = call([names["c"]], cursor={"topic_name": names["a"], "partition_index": 0})
        assert [(t["name"], t["error_code"], t["partitions"]) for t in resp["topics"]] == [(names["c"], 42, [])]
        assert resp["next_cursor"] is None
    finally:
        conn.close()


def test_describe_producers_reports_each_partitions_idempotent_producers(live):
    """DescribeProducers (KIP-664) through kafka-python's admin client: an idempotent confluent-kafka producer's
    id, epoch and last sequence on each partition it wrote, from the partitions' owners (the topic spans both
    I/O workers); errors for what cannot be described, over the wire."""
    from kafka import TopicPartition as KTP
    from kafka.admin import KafkaAdminClient

    from perf import wire

    name = create(live, partitions=4)
    before = int(time.time() * 1000)
    p = Producer({"bootstrap.servers": live.bootstrap, "enable.idempotence": True, "linger.ms": 0})
    errors = []
    for i in range(7):  # partition 0 gets 4 records, partition 1 gets 3; partitions 2 and 3 none
        p.produce(name, b"v%d" % i, partition=i % 2, on_delivery=lambda err, msg: errors.append(err) if err else None)
        p.flush(10)  # one batch each: sequences 0, 1, 2, ...
    assert p.flush(10) == 0 and errors == []
    plain = Producer({"bootstrap.servers": live.bootstrap, "linger.ms": 0})  # no producer id: not listed
    plain.produce(name, b"plain", partition=2)
    assert plain.flush(10) == 0

    k = KafkaAdminClient(bootstrap_servers=live.bootstrap)
    try:
        got = k.describe_producers([KTP(name, i) for i in range(4)])
    finally:
        k.close()
    states = {tp.partition: s.active_producers for tp, s in got.items()}
    assert set(states) == {0, 1, 2, 3} and states[2] == [] and states[3] == []
    (a,), (b,) = states[0], states[1]
    assert a.producer_id == b.producer_id >= 0 and a.producer_epoch == b.producer_epoch >= 0
    assert (a.last_sequence, b.last_sequence) == (3, 2)
    assert before <= min(a.last_timestamp, b.last_timestamp) <= int(time.time() * 1000)
    assert (a.coordinator_epoch, a.current_transaction_start_offset) == (-1, -1)

    conn = wire.Connection("127.0.0.1", live.port)
    try:
        resp = conn.call(61, 0, {"topics": [{"name": name, "partition_indexes": [1, 9]},
                                            {"name": f"missing-{uuid.uuid4().hex[:8]}", "partition_indexes": [0]},
                                            {"name": "bad/name", "partition_indexes": [0]}]})
        parts = [[(x["partition_index"], x["error_code"], len(x["active_producers"])) for x in t["partitions"]]
                 for t in resp["topics"]]
        # In request order: partition 1 described, 9 unknown; a missing topic; an invalid name (17).
        assert parts == [[(1, 0, 1), (9, 3, 0)], [(0, 3, 0)], [(0, 17, 0)]]
        assert resp["topics"][2]["partitions"][0]["error_message"]
    finally:
        conn.close()


def test_elect_leaders_on_one_broker_needs_no_election(live):
    """ElectLeaders on a single broker: every partition's only replica leads it, so each named partition is
    ELECTION_NOT_NEEDED (84), as Kafka answers for a partition led by its preferred replica; asking for every
    partition lists none. confluent-kafka and kafka-python's admin calls, then the wire for the error cases."""
    from confluent_kafka import ElectionType
    from kafka.admin import KafkaAdminClient

    from perf import wire

    name = create(live, partitions=2)
    a = admin(live)
    for kind in (ElectionType.PREFERRED, ElectionType.UNCLEAN):
        got = a.elect_leaders(kind, [TopicPartition(name, 0), TopicPartition(name, 1)]).result(30)
        assert sorted(tp.partition for tp in got) == [0, 1]
        assert all(err is not None and err.code() == 84 for err in got.values()), got
    k = KafkaAdminClient(bootstrap_servers=live.bootstrap)
    try:
        resp = k.elect_leaders(0, {name: [0, 1]})  # ElectionNotNeeded is not raised
        assert [(r.topic, [(p.partition_id, p.error_code) for p in r.partition_result])
                for r in resp.replica_election_results] == [(name, [(0, 84), (1, 84)])]
    finally:
        k.close()

    conn = wire.Connection("127.0.0.1", live.port)
    try:
        everything = conn.call(43, 1, {"election_type": 0, "topic_partitions": None, "timeout_ms": 1000})
        assert everything["error_code"] == 0 and everything["replica_election_results"] == []
        missing = f"missing-{uuid.uuid4().hex[:8]}"
        resp = conn.call(43, 2, {"election_type": 1, "timeout_ms": 1000,
                                 "topic_partitions": [{"topic": missing, "partitions": [0]},
                                                      {"topic": name, "partitions": [7]}]})
        assert [(r["topic"], [(p["partition_id"], p["error_code"]) for p in r["partition_result"]])
                for r in resp["replica_election_results"]] == [(missing, [(0, 3)]), (name, [(7, 3)])]
        bad = conn.call(43, 1, {"election_type": 5, "timeout_ms": 1000,
                                "topic_partitions": [{"topic": name, "partitions": [0]}]})
        assert bad["error_code"] == 42  # INVALID_REQUEST, on the partition too
        assert bad["replica_election_results"][0]["partition_result"][0]["error_code"] == 42
    finally:
        conn.close()

    import json
    import subprocess
    import sys

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "tools.cli", "cluster", "elect-leaders", "-b", live.bootstrap,
                               *args], capture_output=True, text=True, timeout=60)

    out = cli("--topic", name, "--format", "json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == [{"topic": name, "partition": p, "error": "ELECTION_NOT_NEEDED"} for p in (0, 1)]
    out = cli()
    assert out.returncode == 0 and "no partition needed an election" in out.stdout, out
    assert cli("--partition", "0").returncode == 2  # a partition needs its topic


def test_a_single_broker_accepts_only_itself_as_a_partitions_replicas(live):
    """AlterPartitionReassignments on a single node: [its own id] is a no-op, anything else is refused as
    Kafka refuses an assignment naming brokers it does not have, and there is never a move to cancel."""
    from tools.client import Client

    name = create(live, partitions=2)
    missing = f"missing-{uuid.uuid4().hex[:8]}"
    with Client(live.bootstrap) as c:
        me = c.metadata([])["brokers"][0]["node_id"]
        reply = c.any.request(45, {"timeout_ms": 1000, "topics": [
            {"name": name, "partitions": [{"partition_index": 0, "replicas": [me]},
                                          {"partition_index": 1, "replicas": [me, me + 1]},
                                          {"partition_index": 1, "replicas": []},
                                          {"partition_index": 0, "replicas": None},
                                          {"partition_index": 9, "replicas": [me]}]},
            {"name": missing, "partitions": [{"partition_index": 0, "replicas": [me]}]}]})
        assert reply["error_code"] == 0
        assert [(t["name"], [(p["partition_index"], p["error_code"]) for p in t["partitions"]])
                for t in reply["responses"]] == [(name, [(0, 0), (1, 39), (1, 39), (0, 85), (9, 3)]),
                                                 (missing, [(0, 3)])]
        assert "no such broker is registered" in reply["responses"][0]["partitions"][1]["error_message"]
        assert c.any.request(46, {"timeout_ms": 1000, "topics": None})["topics"] == []


def test_no_transactions_and_no_reassignments_are_listed(live):
    """ListTransactions and ListPartitionReassignments through kafka-python's admin client: hpbroker refuses
    transactional producers and a single broker never moves replicas, so both lists are empty; a state filter
    that names no transaction state is echoed back as unknown, as Kafka does."""
    from kafka.admin import KafkaAdminClient

    from perf import wire

    name = create(live, partitions=2)
    k = KafkaAdminClient(bootstrap_servers=live.bootstrap)
    try:
        assert k.list_transactions() == {0: []}
        assert k.list_transactions(state_filters=["Ongoing"], duration_filter_ms=1000) == {0: []}
        assert k.list_partition_reassignments() == {}
        assert k.list_partition_reassignments({name: [0, 1]}) == {}
    finally:
        k.close()
    conn = wire.Connection("127.0.0.1", live.port)
    try:
        resp = conn.call(66, 1, {"state_filters": ["Ongoing", "Sleeping"], "producer_id_filters": [7],
                                 "duration_filter": -1})
        assert (resp["error_code"], resp["unknown_state_filters"], resp["transaction_states"]) == (0, ["Sleeping"], [])
    finally:
        conn.close()


def test_cluster_wide_dynamic_defaults_reach_topics_without_their_own(tmp_path):
    """kafka-configs --entity-type brokers --entity-default: log.retention.ms set at run time applies to open
    logs of topics that do not override it, shows as DYNAMIC_DEFAULT_BROKER_CONFIG, survives a restart and
    goes back to the static value when deleted; --entity-name 0 layers the broker's own value over it
    (DYNAMIC_BROKER_CONFIG); other broker keys stay static. (confluent-kafka cannot name the default, an
    empty broker name, so those requests go through the project's client.)"""
    from tools.client import Client

    data = str(tmp_path / "data")
    settings = {"log.retention.check.interval.ms": 200}
    dynamic = ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG.value
    SET, DELETE, BROKER, INCREMENTAL_ALTER_CONFIGS, DESCRIBE_CONFIGS = 0, 1, 4, 44, 32

    def alter(b, name, key, value, op=SET):
        with Client(b.bootstrap) as c:
            reply = c.any.request(INCREMENTAL_ALTER_CONFIGS, {"resources": [
                {"resource_type": BROKER, "resource_name": name,
                 "configs": [{"name": key, "config_operation": op, "value": value}]}], "validate_only": False})
        r = reply["responses"][0]
        return r["error_code"], r["error_message"]

    def broker_default(b, key, name=""):
        with Client(b.bootstrap) as c:
            reply = c.any.request(DESCRIBE_CONFIGS, {"resources": [
                {"resource_type": BROKER, "resource_name": name, "configuration_keys": [key]}]})
        entry = reply["results"][0]["configs"][0]
        return entry["value"], entry["config_source"], entry["read_only"]

    def low(b, name):
        c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "wm"})
        try:
            return c.get_watermark_offsets(TopicPartition(name, 0), timeout=10)[0]
        finally:
            c.close()

    with BrokerProcess(data_dir=data, io_threads=2, settings=settings) as b:
        inherits, own = create(b, segment_bytes=1024), create(b, segment_bytes=1024, retention_ms=3600000)
        for name in (inherits, own):
            assert all(err is None for err, _ in produce(b, name, 60, size=100))
        assert low(b, inherits) == 0
        assert alter(b, "", "log.retention.ms", "1000") == (0, None)
        assert broker_default(b, "log.retention.ms") == ("1000", dynamic, False)
        assert broker_default(b, "num.io.threads")[2] is True
        topic = configs_of(b, ConfigResource.Type.TOPIC, inherits)
        assert (topic["retention.ms"].value, topic["retention.ms"].source) == ("1000", dynamic)
        assert configs_of(b, ConfigResource.Type.TOPIC, own)["retention.ms"].value == "3600000"
        deadline = time.monotonic() + 20
        while low(b, inherits) == 0:  # the open log took the new retention: closed segments go
            assert time.monotonic() < deadline, "retention never applied"
            time.sleep(0.3)
        assert low(b, own) == 0
        code, message = alter(b, "", "num.io.threads", "4")
        assert code == 42 and "dynamically" in message  # INVALID_REQUEST
        code, message = alter(b, "7", "log.retention.ms", "5")
        assert code == 42 and "Unexpected broker id" in message
        assert alter(b, "", "log.segment.bytes", "10")[0] == 40  # INVALID_CONFIG: under the minimum
        assert alter(b, "", "log.cleanup.policy", "compact,compact")[0] == 40
        assert alter(b, "", "log.cleaner.min.cleanable.ratio", "2")[0] == 40
        assert alter(b, "", "log.cleanup.policy", "delete,compact") == (0, None)  # a list and a double
        assert alter(b, "", "log.cleaner.min.cleanable.ratio", "0.2") == (0, None)
    with BrokerProcess(data_dir=data, io_threads=2, settings=settings) as b:
        assert broker_default(b, "log.retention.ms") == ("1000", dynamic, False)
        assert broker_default(b, "log.cleanup.policy") == ("delete,compact", dynamic, False)
        topic = configs_of(b, ConfigResource.Type.TOPIC, inherits)
        assert (topic["cleanup.policy"].value, topic["cleanup.policy"].source) == ("delete,compact", dynamic)
        assert (topic["min.cleanable.dirty.ratio"].value, topic["min.cleanable.dirty.ratio"].source) == ("0.2", dynamic)
        assert alter(b, "", "log.cleanup.policy", None, DELETE) == (0, None)
        assert alter(b, "", "log.cleaner.min.cleanable.ratio", None, DELETE) == (0, None)
        assert configs_of(b, ConfigResource.Type.TOPIC, inherits)["cleanup.policy"].value == "delete"
        own_broker = ConfigSource.DYNAMIC_BROKER_CONFIG.value
        assert alter(b, "0", "log.retention.ms", "7200000") == (0, None)  # this broker's own, over the default
        assert broker_default(b, "log.retention.ms", "0") == ("7200000", own_broker, False)
        assert broker_default(b, "log.retention.ms") == ("1000", dynamic, False)
        topic = configs_of(b, ConfigResource.Type.TOPIC, inherits)
        assert (topic["retention.ms"].value, topic["retention.ms"].source) == ("7200000", own_broker)
        assert alter(b, "", "log.retention.ms", None, DELETE) == (0, None)
        assert broker_default(b, "log.retention.ms")[1] != dynamic
        assert configs_of(b, ConfigResource.Type.TOPIC, inherits)["retention.ms"].source == own_broker
        assert alter(b, "0", "log.retention.ms", None, DELETE) == (0, None)
        assert configs_of(b, ConfigResource.Type.TOPIC, inherits)["retention.ms"].source not in (dynamic,
                                                                                              own_broker)
