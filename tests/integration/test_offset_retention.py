"""offsets.retention.minutes against a real broker (KIP-211), at its smallest (one minute): a standalone
consumer's offsets and an emptied group's go a minute after their commit or the group's emptying, the group
with them; a live group keeps the offsets of what it subscribes to and loses those of a topic it does not."""

from __future__ import annotations

import threading
import time
import uuid

import pytest

from tools.client import Client
from tools.testing import BrokerProcess

LIST_GROUPS, OFFSET_FETCH = 16, 9


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    b = BrokerProcess(data_dir=str(tmp_path_factory.mktemp("retention") / "data"), settings={
        "offsets.retention.minutes": 1, "offsets.retention.check.interval.ms": 1000,
        "group.initial.rebalance.delay.ms": 0})
    b.start()
    yield b
    b.close()


def committed(bootstrap: str, group: str) -> dict[tuple[str, int], int]:
    with Client(bootstrap) as c:
        reply = c.coordinator(group).request(OFFSET_FETCH, {"group_id": group, "topics": None})
    return {(t["name"], p["partition_index"]): p["committed_offset"] for t in reply["topics"]
            for p in t["partitions"] if p["committed_offset"] >= 0}


def listed(bootstrap: str) -> set[str]:
    with Client(bootstrap) as c:
        return {g["group_id"] for g in c.any.request(LIST_GROUPS, {})["groups"]}


def test_offsets_expire_as_kafka_expires_them(broker):
    from confluent_kafka import Consumer, Producer, TopicPartition

    run = uuid.uuid4().hex[:6]
    topic, other = f"kept-{run}", f"other-{run}"
    p = Producer({"bootstrap.servers": broker.bootstrap})
    for t in (topic, other):
        for i in range(10):
            p.produce(t, f"v{i}".encode(), partition=0)
    assert p.flush(15) == 0

    def consumer(group: str) -> Consumer:
        return Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group, "enable.auto.commit": False,
                         "auto.offset.reset": "earliest", "session.timeout.ms": 10000})

    lone, left, live = f"lone-{run}", f"left-{run}", f"live-{run}"
    c = consumer(lone)  # standalone: assigned, never joins
    c.assign([TopicPartition(topic, 0)])
    c.commit(offsets=[TopicPartition(topic, 0, 4)], asynchronous=False)
    c.close()

    c = consumer(left)  # a group that commits and then empties
    c.subscribe([topic])
    while c.poll(0.5) is None:
        pass
    c.commit(offsets=[TopicPartition(topic, 0, 5)], asynchronous=False)
    c.close()

    stop = threading.Event()
    polled = []

    def keep_consuming():
        c = consumer(live)
        c.subscribe([topic])
        committed_once = False
        while not stop.is_set():
            m = c.poll(0.2)
            if m is not None and not m.error():
                polled.append(m.offset())
            if polled and not committed_once:
                c.commit(offsets=[TopicPartition(topic, 0, 6), TopicPartition(other, 0, 3)], asynchronous=False)
                committed_once = True
        c.close()

    t = threading.Thread(target=keep_consuming, daemon=True)
    t.start()
    try:
        deadline = time.monotonic() + 30
        while committed(broker.bootstrap, live) != {(topic, 0): 6, (other, 0): 3}:
            assert time.monotonic() < deadline, "the live group's commit never showed"
            time.sleep(0.5)
        assert committed(broker.bootstrap, lone) == {(topic, 0): 4}
        assert committed(broker.bootstrap, left) == {(topic, 0): 5}
        assert {lone, left, live} <= listed(broker.bootstrap)

        deadline = time.monotonic() + 90  # a minute, the check interval and the commits' spread
        while committed(broker.bootstrap, live) != {(topic, 0): 6}:
            assert time.monotonic() < deadline, committed(broker.bootstrap, live)
            time.sleep(1)
        assert committed(broker.bootstrap, lone) == {}
        assert committed(broker.bootstrap, left) == {}
        groups = listed(broker.bootstrap)
        assert live in groups and lone not in groups and left not in groups
        assert t.is_alive() and polled  # the live group kept its members all along
    finally:
        stop.set()
        t.join(timeout=20)
    assert any("offsets expired" in line and f"group={left}" in line and "group_removed=True" in line
               for line in list(broker.output))
