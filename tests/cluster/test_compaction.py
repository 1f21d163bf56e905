"""A compacted topic in a real two-broker cluster: a follower that was away while its leader compacted
catches up from the cleaned log (batches with offset gaps, fewer records than offsets) and, once leader,
serves the same records at the same offsets."""

from __future__ import annotations

import os
import time

from tests.cluster.conftest import Cluster, wait_for
from tests.cluster.test_cluster import create_topic, describe

TOPIC = "cmp"
KEYS = 50


def _compacted(broker) -> bool:
    return any("partition compacted" in line and f"topic={TOPIC} " in line
               for line in broker.log_tail(2000).splitlines())


def _read_all(bootstrap: str) -> list[tuple[int, bytes, bytes | None]]:
    """(offset, key, value) of partition 0 from offset 0 to its end."""
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "verify", "enable.auto.commit": False,
                  "enable.partition.eof": True, "fetch.wait.max.ms": 100,
                  "topic.metadata.refresh.interval.ms": 1000})
    c.assign([TopicPartition(TOPIC, 0, 0)])
    out = []
    deadline = time.monotonic() + 30
    try:
        while time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is None:
                continue
            if m.error() is not None:
                if m.error().code() == -191:  # _PARTITION_EOF
                    return out
                continue
            out.append((m.offset(), m.key(), m.value()))
    finally:
        c.close()
    raise AssertionError(f"partition 0 of {TOPIC} not read to its end within 30 s ({len(out)} records)")


def test_a_follower_catches_up_from_a_compacted_leader(etcd_server, tmp_path):
    from confluent_kafka import Producer

    c = Cluster(etcd_server, tmp_path, 2, {"log.cleaner.backoff.ms": 200})
    try:
        c.start()
        create_topic(c.bootstrap, TOPIC, 1, 2, {"cleanup.policy": "compact", "segment.bytes": "4096",
                                                "min.cleanable.dirty.ratio": "0.01"})
        leader_id = wait_for(lambda: describe(c.bootstrap, TOPIC)[0][0], 10, "a leader")
        leader = c.brokers[leader_id]
        follower_id = next(i for i in c.brokers if i != leader_id)
        follower = c.brokers[follower_id]
        follower.stop()
        wait_for(lambda: describe(leader.bootstrap, TOPIC)[0][2] == (leader_id,), 15, "the ISR shrinks to the leader")

        # small batches: however the client groups the records, the segments roll and the cleaner has work
        p = Producer({"bootstrap.servers": leader.bootstrap, "acks": "all", "linger.ms": 2, "batch.size": 1024})
        delivered = {}
        for i in range(4000):
            key = b"k%03d" % (i % KEYS)
            p.produce(TOPIC, b"v%05d" % i, key=key, partition=0,
                      on_delivery=lambda err, m: delivered.__setitem__(m.offset(), (m.key(), m.value()))
                      if err is None else None)
            if i % 500 == 0:
                p.poll(0)
        assert p.flush(30) == 0 and len(delivered) == 4000
        segments = sorted(n for n in os.listdir(os.path.join(leader.data_dir, f"{TOPIC}-0")) if n.endswith(".log"))
        assert len(segments) > 2, segments
        wait_for(lambda: _compacted(leader), 20, "the leader compacts the partition")
        on_leader = _read_all(leader.bootstrap)
        assert len(on_leader) < 4000  # superseded records are gone
        assert all(delivered[o] == (k, v) for o, k, v in on_leader)  # at the offsets they were written at

        follower.start()
        wait_for(lambda: describe(leader.bootstrap, TOPIC)[0][2] == tuple(sorted(c.brokers)), 30,
                 "the follower catches up and rejoins the ISR")
        leader.stop()
        wait_for(lambda: describe(follower.bootstrap, TOPIC)[0][0] == follower_id, 20, "the follower leads")
        on_follower = _read_all(follower.bootstrap)
        # The follower may have compacted on its own since; what it serves is the leader's records minus
        # superseded ones, each at its offset, with the last value of every key.
        assert set(on_follower) <= set(on_leader)
        assert {k: v for _, k, v in on_follower} == {k: v for _, k, v in on_leader}
        assert on_follower[-1] == on_leader[-1]
    finally:
        c.close()
