"""The replica fetcher against one real broker acting as leader, the follower being a local PartitionLog.

The broker's own id is a live broker and a replica of its partitions, so its Fetch with replica_id = 0 is
served as a follower's: up to the log end offset, and answered with Kafka's errors for a wrong replica or
leader epoch. OffsetForLeaderEpoch is checked against the same broker.
"""

from __future__ import annotations

import os
import select
import time

import numpy as np
import pytest
from confluent_kafka import Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

import hotpath
from broker.config import load_config
from broker.log import LogConfig, PartitionLog
from broker.replication.follower import ReplicaFetcher
from netio.codec import ErrorCode
from tools.client import Connection
from tools.testing import BrokerProcess

FETCHER_CONFIG = load_config(overrides=["replica.fetch.wait.max.ms=100", "replica.fetch.max.bytes=2000",
                                         "replica.fetch.backoff.ms=50", "replica.socket.timeout.ms=5000"])


@pytest.fixture(scope="module")
def leader(tmp_path_factory):
    b = BrokerProcess(data_dir=str(tmp_path_factory.mktemp("leader")))
    b.start()
    yield b
    b.close()


def create(b: BrokerProcess, name: str) -> None:
    admin = AdminClient({"bootstrap.servers": b.bootstrap})
    admin.create_topics([NewTopic(name, 1, 1)])[name].result(15)


def produce(b: BrokerProcess, topic: str, batches: int, per_batch: int) -> None:
    p = Producer({"bootstrap.servers": b.bootstrap, "linger.ms": 0, "compression.type": "none"})
    for i in range(batches):
        for j in range(per_batch):
            p.produce(topic, b"value-%d-%d" % (i, j), partition=0)
        assert p.flush(15) == 0


class Follower:
    """A follower's log of one partition and the fetcher that fills it."""

    def __init__(self, leader: BrokerProcess, directory, topic: str, epoch: int = 0):
        self.dir = os.path.join(str(directory), f"{topic}-0")
        self.log = PartitionLog.open(self.dir, LogConfig(segment_bytes=1 << 20, preallocate=False))
        self.progress = 0

        def progressed(slot: int) -> None:
            self.progress += 1

        self.fetcher = ReplicaFetcher(0, FETCHER_CONFIG, lambda slot: self.log, progressed)
        self.fetcher.assign({(topic, 0): (0, 0, epoch, (leader.host, leader.port))})

    def run_until(self, done, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not done():
            assert time.monotonic() < deadline, f"follower stuck at {self.log.log_end_offset}"
            select.select([self.fetcher.fileno()], [], [], 0.2)
            self.fetcher.poll()

    def close(self) -> None:
        self.fetcher.close()
        self.log.close()


def segment_bytes(directory: str, base: int = 0, limit: int = 1 << 20) -> bytes:
    """The first `limit` bytes (a segment file is allocated ahead of its data)."""
    with open(os.path.join(directory, f"{base:020d}.log"), "rb") as f:
        return f.read(limit)


def assert_same_log(leader: BrokerProcess, f: Follower) -> None:
    """The follower's one segment is byte for byte the leader's segment from the follower's first offset on
    (from its start unless the follower began at the leader's log start), and the leader has nothing after."""
    seg = f.log.active_segment
    assert len(f.log.segments) == 1
    mine = segment_bytes(f.dir, seg.base_offset)[:seg.size]
    theirs = segment_bytes(os.path.join(leader.data_dir, os.path.basename(f.dir)))
    assert len(mine) > 0
    start = theirs.find(mine)
    assert start == 0 or (seg.base_offset > 0 and start > 0)
    assert not theirs[start + len(mine):].strip(b"\0")


def test_follower_copies_the_leader_byte_for_byte(leader, tmp_path):
    create(leader, "copy")
    produce(leader, "copy", 12, 25)
    f = Follower(leader, tmp_path, "copy")
    try:
        f.run_until(lambda: f.log.log_end_offset == 300 and f.log.high_watermark == 300)
        assert f.progress >= 2  # several fetches of at most 2000 bytes each
        assert_same_log(leader, f)
        assert f.log.leader_epoch_cache.entries == [(0, 0)]
        produce(leader, "copy", 2, 10)  # a parked replica fetch wakes on the leader's append
        f.run_until(lambda: f.log.log_end_offset == 320 and f.log.high_watermark == 320)
        assert_same_log(leader, f)
    finally:
        f.close()


@pytest.mark.parametrize("local_epoch", [0, 5])
def test_diverged_follower_truncates_to_the_leader_end(leader, tmp_path, local_epoch):
    """Epoch 0: the tail is in the leader's epoch, cut at the leader's end. Epoch 5: an epoch the leader
    never had, cut where the follower's epoch 0 ended."""
    topic = f"diverge{local_epoch}"
    create(leader, topic)
    produce(leader, topic, 4, 10)
    f = Follower(leader, tmp_path, topic)
    try:
        f.run_until(lambda: f.log.log_end_offset == 40)
    finally:
        f.close()
    # Records the leader never had, written here in the same epoch (a former leader's unreplicated tail).
    plog = PartitionLog.open(f.dir, LogConfig(segment_bytes=1 << 20, preallocate=False))
    batch = hotpath.build_records_batch([(None, b"lost-%d" % i) for i in range(7)],
                                        timestamps=np.full(7, int(time.time() * 1000), np.int64))
    plog.append(batch, leader_epoch=local_epoch)
    assert plog.log_end_offset == 47
    plog.close()
    produce(leader, topic, 1, 3)  # the leader moved on meanwhile: 43 records
    f = Follower(leader, tmp_path, topic)
    try:
        f.run_until(lambda: f.log.log_end_offset == 43 and f.log.high_watermark == 43)
        assert_same_log(leader, f)
        assert f.log.leader_epoch_cache.entries == [(0, 0)]
    finally:
        f.close()


def test_follower_behind_the_leader_log_start_restarts_there(leader, tmp_path):
    create(leader, "behind")
    produce(leader, "behind", 10, 5)
    admin = AdminClient({"bootstrap.servers": leader.bootstrap})
    results = admin.delete_records([TopicPartition("behind", 0, 32)])
    assert list(results.values())[0].result(15).low_watermark == 32
    f = Follower(leader, tmp_path, "behind")
    try:
        f.run_until(lambda: f.log.log_end_offset == 50 and f.log.log_start_offset == 32)
        assert f.log.segments[0].base_offset <= 32  # the batch holding offset 32 is copied whole
        assert f.log.high_watermark == 50
        assert_same_log(leader, f)
    finally:
        f.close()


def _fetch(conn: Connection, replica_id: int, topic: str, offset: int, epoch: int = -1) -> dict:
    body = {"replica_id": replica_id, "max_wait_ms": 0, "min_bytes": 1, "max_bytes": 1 << 20,
            "isolation_level": 0, "session_id": 0, "session_epoch": -1,
            "topics": [{"topic": topic, "partitions": [
                {"partition": 0, "current_leader_epoch": epoch, "fetch_offset": offset, "log_start_offset": -1,
                 "partition_max_bytes": 1 << 20}]}],
            "forgotten_topics_data": [], "rack_id": ""}
    return conn._call(1, 11, body)["responses"][0]["partitions"][0]


def _epochs(conn: Connection, topic: str, epoch: int, current: int = -1) -> dict:
    body = {"replica_id": 0, "topics": [{"topic": topic, "partitions": [
        {"partition": 0, "current_leader_epoch": current, "leader_epoch": epoch}]}]}
    return conn._call(23, 3, body)["topics"][0]["partitions"][0]


def test_replica_fetch_and_epoch_answers(leader):
    create(leader, "answers")
    produce(leader, "answers", 2, 5)
    conn = Connection(leader.host, leader.port)
    try:
        ok = _fetch(conn, 0, "answers", 0, epoch=0)
        assert ok["error_code"] == 0 and ok["high_watermark"] == 10 and len(ok["records"]) > 0
        assert _fetch(conn, 0, "answers", 10)["error_code"] == 0  # caught up: nothing, no error
        assert _fetch(conn, 7, "answers", 0)["error_code"] == ErrorCode.NOT_LEADER_OR_FOLLOWER  # no such broker
        assert _fetch(conn, 0, "answers", 0, epoch=3)["error_code"] == ErrorCode.UNKNOWN_LEADER_EPOCH
        assert _fetch(conn, -1, "answers", 0, epoch=3)["error_code"] == ErrorCode.UNKNOWN_LEADER_EPOCH
        assert _fetch(conn, 0, "answers", 11)["error_code"] == ErrorCode.OFFSET_OUT_OF_RANGE

        e = _epochs(conn, "answers", 0)
        assert (e["error_code"], e["leader_epoch"], e["end_offset"]) == (0, 0, 10)
        e = _epochs(conn, "answers", 4)  # newer than any epoch here: the latest one, ending at the log end
        assert (e["error_code"], e["leader_epoch"], e["end_offset"]) == (0, 0, 10)
        assert _epochs(conn, "answers", 0, current=2)["error_code"] == ErrorCode.UNKNOWN_LEADER_EPOCH
        assert _epochs(conn, "answers", 0, current=0)["error_code"] == 0
        assert _epochs(conn, "no-such-topic", 0)["error_code"] == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
    finally:
        conn.close()
