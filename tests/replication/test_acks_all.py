"""acks=all on three real brokers and etcd: an append waits for the ISR, and the high watermark with it.

A follower stopped with SIGSTOP stays in the ISR (replica.lag.time.max.ms is long here), so the leader can
neither answer an acks=all append nor show its records to consumers: after replica.ack.timeout.ms the
append is answered REQUEST_TIMED_OUT, and once the follower runs again the high watermark covers it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time

import numpy as np
import pytest

import hotpath
from netio.codec import ErrorCode
from tests.cluster.conftest import wait_for
from tools.client import Client, Connection

SETTINGS = {"broker.session.timeout.ms": 30000, "replica.lag.time.max.ms": 30000, "replica.ack.timeout.ms": 1500}


@pytest.fixture
def cluster(tmp_path, request):
    from tests.cluster.conftest import Cluster
    from tools.etcd import EtcdServer, etcd_available

    if not etcd_available():
        pytest.skip("etcd is not installed (apt-get install etcd-server): cluster tests need a real etcd")
    etcd = EtcdServer(str(tmp_path / "etcd")).start()
    c = Cluster(etcd, tmp_path, 3, {**SETTINGS, **getattr(request, "param", {})})
    try:
        c.start()
        yield c
    finally:
        c.close()
        etcd.stop()


def produce(conn: Connection, topic: str, n: int, timeout_ms: int = 10000) -> tuple[int, int]:
    batch = hotpath.build_records_batch([(None, b"r%d" % i) for i in range(n)],
                                        timestamps=np.full(n, int(time.time() * 1000), np.int64))
    resp = conn._call(0, 8, {"transactional_id": None, "acks": -1, "timeout_ms": timeout_ms, "topic_data": [
        {"name": topic, "partition_data": [{"index": 0, "records": bytes(batch)}]}]})
    part = resp["responses"][0]["partition_responses"][0]
    return part["error_code"], part["base_offset"]


def partition_state(bootstrap: str, topic: str) -> tuple[int, tuple, tuple]:
    from confluent_kafka.admin import AdminClient

    md = AdminClient({"bootstrap.servers": bootstrap}).list_topics(topic, timeout=10)
    p = md.topics[topic].partitions[0]
    return p.leader, tuple(p.replicas), tuple(sorted(p.isrs))


def high_watermark(bootstrap: str, topic: str) -> int:
    with Client(bootstrap) as cl:
        return cl.list_offsets(topic, {0: -1})[0][0]


def in_sync_topic(cluster, name: str) -> tuple[int, tuple]:
    """Create a topic of one partition on three replicas; (leader, replicas) once all three are in sync."""
    from confluent_kafka.admin import AdminClient, NewTopic

    b = cluster.bootstrap
    admin = AdminClient({"bootstrap.servers": b})
    admin.create_topics([NewTopic(name, 1, 3)], operation_timeout=10)[name].result(15)

    def in_sync():
        state = partition_state(b, name)
        return state if len(state[2]) == 3 else None

    leader, replicas, _ = wait_for(in_sync, 30, "all three replicas in sync")
    lead = cluster.brokers[leader]
    wait_for(lambda: partition_state(lead.bootstrap, name)[0] == leader, 10, "the leader knows it leads")
    return leader, replicas


def test_acks_all_waits_for_a_stopped_follower_then_times_out(cluster):
    leader, replicas = in_sync_topic(cluster, "wait")
    lead = cluster.brokers[leader]
    conn = wait_for(lambda: Connection(lead.host, lead.port), 10, "leader reachable")
    try:
        assert produce(conn, "wait", 2) == (0, 0)
        follower = next(r for r in replicas if r != leader)
        os.killpg(cluster.brokers[follower].proc.pid, signal.SIGSTOP)
        try:
            assert produce(conn, "wait", 3) == (ErrorCode.REQUEST_TIMED_OUT, -1)
            assert high_watermark(lead.bootstrap, "wait") == 2  # the 3 records are not visible
            assert partition_state(lead.bootstrap, "wait")[2] == tuple(sorted(replicas))
        finally:
            os.killpg(cluster.brokers[follower].proc.pid, signal.SIGCONT)
        wait_for(lambda: high_watermark(lead.bootstrap, "wait") == 5, 20, "the high watermark covers the batch")
        assert produce(conn, "wait", 1) == (0, 5)
    finally:
        conn.close()


@contextlib.contextmanager
def leader_with_stopped_follower(cluster, topic: str):
    """(leader, connection to it) for a new in-sync topic holding one record, with a follower stopped by
    SIGSTOP (so it stays in the ISR) until the block ends."""
    leader, replicas = in_sync_topic(cluster, topic)
    lead = cluster.brokers[leader]
    follower = cluster.brokers[next(r for r in replicas if r != leader)]
    conn = wait_for(lambda: Connection(lead.host, lead.port), 10, "leader reachable")
    try:
        assert produce(conn, topic, 1) == (0, 0)
        os.killpg(follower.proc.pid, signal.SIGSTOP)
        try:
            yield lead, conn
        finally:
            os.killpg(follower.proc.pid, signal.SIGCONT)
    finally:
        conn.close()


@pytest.mark.parametrize("cluster", [{"replica.ack.timeout.ms": 120000}], indirect=True)
def test_acks_all_times_out_after_the_requests_own_timeout(cluster):
    """Kafka's rule: the leader waits for the ISR no longer than the Produce request's timeout_ms."""
    with leader_with_stopped_follower(cluster, "short") as (_, conn):
        t = time.monotonic()
        assert produce(conn, "short", 2, timeout_ms=1000) == (ErrorCode.REQUEST_TIMED_OUT, -1)
        waited = time.monotonic() - t
        assert 0.9 <= waited < 10, f"answered after {waited:.1f} s; the request allowed 1 s"


@pytest.mark.parametrize("cluster", [{"replica.ack.timeout.ms": 120000}], indirect=True)
def test_acks_all_waiting_in_a_dead_io_worker_is_answered(cluster):
    """The leader's I/O worker dies holding an acks=all append: the network worker answers it
    REQUEST_TIMED_OUT at once (the client retries) instead of leaving the connection waiting."""
    import threading

    with leader_with_stopped_follower(cluster, "dies") as (lead, conn):
        answer = []
        t = threading.Thread(target=lambda: answer.append(produce(conn, "dies", 2, timeout_ms=120000)),
                             daemon=True)
        t.start()
        t.join(1.0)
        assert not answer, "the append should wait for the stopped follower"
        os.kill(lead.worker_pids("io")[0], signal.SIGKILL)
        t.join(30)  # the connection's own timeout is 30 s; the request's and replica.ack.timeout.ms are 120 s
        assert answer == [(ErrorCode.REQUEST_TIMED_OUT, -1)]
    conn = wait_for(lambda: Connection(lead.host, lead.port), 10, "leader reachable")
    try:
        wait_for(lambda: produce(conn, "dies", 1)[0] == 0, 30, "acks=all appends succeed again")
    finally:
        conn.close()
