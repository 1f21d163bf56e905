"""The other clients applications run, each against the real broker over loopback: kcat (librdkafka's
command-line tool), aiokafka (asyncio, its own protocol code) and kafkajs (Node.js). Each produces, reads
back through a consumer group and sees the group's committed offsets. A test skips when its client is not
installed (`.ci/run` installs all three)."""

import asyncio
import json
import os
import shutil
import subprocess

import pytest

from tests.integration import kafkajs
from tests.integration.test_produce_fetch import _create
from tools.testing import BrokerProcess

JS_DIR = os.path.join(os.path.dirname(__file__), "js")


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    b = BrokerProcess(data_dir=str(tmp_path_factory.mktemp("clients")),
                      settings={"group.initial.rebalance.delay.ms": 0}, network_threads=2, io_threads=2)
    b.start()
    yield b
    b.close()


def _kcat(*args: str, stdin: str | None = None) -> str:
    out = subprocess.run(["kcat", *args], input=stdin, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout


def _latest(bootstrap: str, topic: str, partitions: int) -> dict[int, int]:
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "offsets-reader"})
    try:
        return {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in range(partitions)}
    finally:
        c.close()


@pytest.mark.skipif(shutil.which("kcat") is None, reason="kcat is not installed (apt-get install kcat)")
def test_kcat_produces_reads_back_and_consumes_through_a_group(broker):
    topic = "kcat"
    _create(broker.bootstrap, topic, 3)
    b = broker.bootstrap
    plain = "".join(f"k{i}:plain-{i}\n" for i in range(300))
    lz4 = "".join(f"k{i}:lz4-{i}\n" for i in range(300))
    _kcat("-P", "-b", b, "-t", topic, "-K:", "-X", "acks=all", stdin=plain)
    _kcat("-P", "-b", b, "-t", topic, "-K:", "-X", "acks=all", "-z", "lz4", stdin=lz4)
    expected = sorted((plain + lz4).splitlines())

    read = _kcat("-C", "-b", b, "-t", topic, "-e", "-q", "-f", "%k:%s\\n").splitlines()
    assert sorted(read) == expected

    meta = json.loads(_kcat("-L", "-J", "-b", b, "-t", topic))
    (t,) = [t for t in meta["topics"] if t["topic"] == topic]
    assert sorted(p["partition"] for p in t["partitions"]) == [0, 1, 2]
    assert {p["leader"] for p in t["partitions"]} == {meta["controllerid"]}

    group = ["-b", b, "-G", "kcat-group", "-X", "auto.offset.reset=earliest", "-e", "-q", "-f", "%k:%s\\n", topic]
    assert sorted(_kcat(*group).splitlines()) == expected
    # The group committed what it read: the same group starts where it stopped.
    assert _kcat(*group).splitlines() == []


def test_aiokafka_round_trip_with_idempotence_gzip_and_a_group(broker):
    aiokafka = pytest.importorskip("aiokafka")
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.structs import TopicPartition

    topic, group = "aiokafka", "aiokafka-group"
    b = broker.bootstrap

    async def scenario() -> tuple[list, list, dict, dict]:
        admin = AIOKafkaAdminClient(bootstrap_servers=b)
        await admin.start()
        try:
            await admin.create_topics([NewTopic(topic, num_partitions=4, replication_factor=1)])
        finally:
            await admin.close()
        sent = []
        for compression, idempotent in ((None, True), ("gzip", False)):
            p = aiokafka.AIOKafkaProducer(bootstrap_servers=b, acks="all", compression_type=compression,
                                          enable_idempotence=idempotent)
            await p.start()
            try:
                futures = [await p.send(topic, f"{compression}-{i}".encode(), key=str(i).encode())
                           for i in range(500)]
                sent += [(m.partition, m.offset) for m in await asyncio.gather(*futures)]
            finally:
                await p.stop()
        c = aiokafka.AIOKafkaConsumer(topic, bootstrap_servers=b, group_id=group, auto_offset_reset="earliest",
                                      enable_auto_commit=False)
        await c.start()
        got = []
        try:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 30
            while len(got) < 1000 and loop.time() < deadline:
                for msgs in (await c.getmany(timeout_ms=500)).values():
                    got += [m.value.decode() for m in msgs]
            await c.commit()
            positions = {tp.partition: await c.position(tp) for tp in c.assignment()}
            committed = {p: await c.committed(TopicPartition(topic, p)) for p in range(4)}
        finally:
            await c.stop()
        return sent, got, positions, committed

    sent, got, positions, committed = asyncio.run(scenario())
    assert len(set(sent)) == 1000  # every record acknowledged at its own offset
    assert sorted(got) == sorted([f"None-{i}" for i in range(500)] + [f"gzip-{i}" for i in range(500)])
    ends = _latest(b, topic, 4)
    assert sum(ends.values()) == 1000
    assert positions == ends
    assert committed == ends


@pytest.mark.skipif(kafkajs.missing() is not None, reason=str(kafkajs.missing()))
def test_kafkajs_round_trip_with_idempotence_gzip_and_a_group(broker):
    topic = "kafkajs"
    out = kafkajs.run("round_trip.js", broker.bootstrap, topic)
    assert out.returncode == 0, out.stderr[-3000:]
    steps = {s["step"]: s for s in map(json.loads, out.stdout.splitlines())}
    assert steps["metadata"]["partitions"] == [0, 1, 2]
    results = steps["produced"]["results"]
    assert results and all(r["errorCode"] == 0 for r in results)
    expected = sorted(f"kafkajs-{b}-{i}" for b in range(4) for i in range(250))
    assert sorted(steps["consumed"]["values"]) == expected
    ends = _latest(broker.bootstrap, topic, 3)
    assert sum(ends.values()) == 1000
    offsets = steps["offsets"]
    assert {p["partition"]: p["high"] for p in offsets["ends"]} == ends
    assert {p["partition"]: p["offset"] for p in offsets["committed"]} == ends


def test_transactional_producers_fail_at_once_with_the_reason(broker):
    """Transactions are not supported. A producer with a transactional.id learns it at its first step,
    looking up its transaction coordinator, from an error clients treat as final, instead of retrying
    until its timeout."""
    import time

    from confluent_kafka import KafkaException, Producer

    p = Producer({"bootstrap.servers": broker.bootstrap, "transactional.id": "tx-confluent"})
    t0 = time.monotonic()
    with pytest.raises(KafkaException) as err:
        p.init_transactions(30)
    assert time.monotonic() - t0 < 10
    e = err.value.args[0]
    assert e.fatal() and e.name() == "TRANSACTIONAL_ID_AUTHORIZATION_FAILED"
    assert "transactions are not supported" in e.str()

    aiokafka = pytest.importorskip("aiokafka")
    from aiokafka.errors import TransactionalIdAuthorizationFailed

    async def start() -> None:
        producer = aiokafka.AIOKafkaProducer(bootstrap_servers=broker.bootstrap, transactional_id="tx-aiokafka")
        try:
            await asyncio.wait_for(producer.start(), 20)
        finally:
            await producer.stop()

    with pytest.raises(TransactionalIdAuthorizationFailed):
        asyncio.run(start())


def test_librdkafka_lists_groups_with_their_states(broker):
    """ListGroups v4 (KIP-518): librdkafka's AdminClient gets each group's state and filters by it."""
    import time

    from confluent_kafka import Consumer, ConsumerGroupState, Producer
    from confluent_kafka.admin import AdminClient

    _create(broker.bootstrap, "listed", 1)
    p = Producer({"bootstrap.servers": broker.bootstrap})
    p.produce("listed", b"x")
    assert p.flush(10) == 0
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "listed-group", "auto.offset.reset": "earliest"})
    c.subscribe(["listed"])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and (m := c.poll(0.5)) is None:
        pass
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})

    def listed(states=None) -> dict:
        kw = {"states": states} if states else {}
        return {g.group_id: g.state for g in admin.list_consumer_groups(**kw).result(10).valid}

    try:
        assert m is not None and not m.error()
        assert listed()["listed-group"] == ConsumerGroupState.STABLE
        assert "listed-group" in listed({ConsumerGroupState.STABLE})
        assert "listed-group" not in listed({ConsumerGroupState.EMPTY})
    finally:
        c.close()
    assert listed({ConsumerGroupState.EMPTY}).get("listed-group") == ConsumerGroupState.EMPTY
    assert "listed-group" not in listed({ConsumerGroupState.STABLE})
