"""New connections end up spread evenly over the network workers, whatever SO_REUSEPORT's hash picks.

Each connection is checked to be served (an ApiVersions round trip) after it may have been handed to
another worker, and the connections each network worker process holds must differ by at most one.
"""

from __future__ import annotations

import os
import signal
import socket
import time
import urllib.request

import psutil
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from netio.codec import decode_response
from tests.integration.test_hostile import API_VERSIONS, api_versions_request, recv_frame
from tools.testing import BrokerProcess
from tools.top.promtext import parse, total


def read_response(s: socket.socket) -> tuple[int, int]:
    """(correlation id, error code) of one ApiVersions response."""
    cid, body = decode_response(API_VERSIONS, 3, recv_frame(s))
    return cid, body["error_code"]


def open_counts(b: BrokerProcess) -> dict[int, int]:
    """Client connections each network worker process holds now (its sockets on the broker's port).

    Read from the processes rather than /metrics: a scrape opens a connection of its own to the broker.
    """
    counts = {}
    for index, pid in b.worker_pids("network").items():
        proc = psutil.Process(pid)
        conns = proc.net_connections("tcp") if hasattr(proc, "net_connections") else proc.connections("tcp")
        counts[index] = sum(1 for c in conns if c.status == psutil.CONN_ESTABLISHED and c.laddr.port == b.port)
    return counts


def handed_off(b: BrokerProcess) -> int:
    with urllib.request.urlopen(b.metrics_url, timeout=10) as r:
        return int(total(parse(r.read().decode()), "hpbroker_connections_handed_off_total"))


def settle(b: BrokerProcess, expected_total: int) -> dict[int, int]:
    """The counts once every live connection is in a worker (a hand-off is adopted asynchronously)."""
    deadline = time.monotonic() + 10
    while True:
        counts = open_counts(b)
        if sum(counts.values()) == expected_total or time.monotonic() > deadline:
            return counts
        time.sleep(0.05)


def connect_and_ask(b: BrokerProcess, n: int, start_id: int = 0) -> list[socket.socket]:
    socks = []
    for i in range(n):
        s = socket.create_connection(("127.0.0.1", b.port), timeout=10)
        s.sendall(api_versions_request(start_id + i))  # sent at once: it may wait in the socket while handed over
        assert read_response(s) == (start_id + i, 0)
        socks.append(s)
    return socks


@pytest.fixture
def broker3(tmp_path):
    b = BrokerProcess(data_dir=str(tmp_path / "data"), settings={"metrics.listener": "127.0.0.1:0"},
                      network_threads=3, io_threads=1)
    b.start()
    try:
        yield b
    finally:
        b.close()


def test_sequential_connections_are_balanced(broker3):
    socks = connect_and_ask(broker3, 30)
    try:
        counts = settle(broker3, 30)
        assert sum(counts.values()) == 30
        assert max(counts.values()) - min(counts.values()) <= 1, counts
        assert handed_off(broker3) >= 1  # SO_REUSEPORT's hash alone almost never spreads 30 this evenly
        # every connection still answers, wherever it lives now
        for i, s in enumerate(socks):
            s.sendall(api_versions_request(1000 + i))
            assert read_response(s) == (1000 + i, 0)
    finally:
        for s in socks:
            s.close()


def test_connections_after_a_burst_even_out_the_workers(broker3):
    """A burst is accepted at once by several workers (each passes at most one connection at a time to a
    worker that has not adopted its last one, so nobody piles onto a worker that is slow to run); the
    connections that come after it all go to the least loaded workers until they are level."""
    socks = [socket.create_connection(("127.0.0.1", broker3.port), timeout=10) for _ in range(30)]
    try:
        for i, s in enumerate(socks):
            s.sendall(api_versions_request(i))
        for i, s in enumerate(socks):
            assert read_response(s) == (i, 0)
        counts = settle(broker3, 30)
        assert sum(counts.values()) == 30
        top = max(counts.values())
        missing = sum(top - c for c in counts.values())
        socks += connect_and_ask(broker3, missing + 3, start_id=100)
        after = settle(broker3, 30 + missing + 3)
        assert after == {w: top + 1 for w in counts}, (counts, after)
    finally:
        for s in socks:
            s.close()


def test_a_restarted_worker_gets_the_new_connections(tmp_path):
    with BrokerProcess(data_dir=str(tmp_path / "data"), settings={"metrics.listener": "127.0.0.1:0"},
                       network_threads=2, io_threads=1) as b:
        first = connect_and_ask(b, 10)
        second = []
        try:
            assert settle(b, 10) == {0: 5, 1: 5}
            b.restart_worker("network", 1)  # its five connections die with it
            deadline = time.monotonic() + 60
            while sum("network worker started" in line and "worker=1" in line for line in list(b.output)) < 2:
                assert time.monotonic() < deadline, b.log_tail()
                time.sleep(0.05)
            assert settle(b, 5) == {0: 5, 1: 0}
            second = connect_and_ask(b, 10, start_id=100)
            counts = settle(b, 15)
            assert sum(counts.values()) == 15 and abs(counts[0] - counts[1]) <= 1, counts
        finally:
            for s in first + second:
                s.close()


def test_real_clients_are_served_across_workers(tmp_path):
    """Two producers and a consumer (several connections each) through a broker that moves connections."""
    with BrokerProcess(data_dir=str(tmp_path / "data"), settings={"metrics.listener": "127.0.0.1:0", "num.partitions": 2},
                       network_threads=2, io_threads=2) as b:
        producers = [Producer({"bootstrap.servers": b.bootstrap, "linger.ms": 2, "acks": "all"}) for _ in range(2)]
        for n, p in enumerate(producers):
            for i in range(1000):
                p.produce("placed", f"{n}-{i}".encode(), partition=n)
        for p in producers:
            assert p.flush(30) == 0
        c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "placed-g", "enable.auto.commit": False})
        c.assign([TopicPartition("placed", 0, 0), TopicPartition("placed", 1, 0)])
        got: dict[int, list[bytes]] = {0: [], 1: []}
        deadline = time.monotonic() + 30
        while sum(map(len, got.values())) < 2000 and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is not None and not m.error():
                got[m.partition()].append(m.value())
        c.close()
        for n in (0, 1):
            assert got[n] == [f"{n}-{i}".encode() for i in range(1000)]


def test_connections_passed_to_a_worker_that_dies_are_served_by_its_successor(tmp_path):
    """A hand-off waits in the dead worker's inbox (the supervisor keeps it open); the restarted worker
    adopts it, just as it inherits the connections queued on its listening socket."""
    with BrokerProcess(data_dir=str(tmp_path / "data"), settings={"metrics.listener": "127.0.0.1:0"},
                       network_threads=2, io_threads=1) as b:
        held = connect_and_ask(b, 2)
        assert settle(b, 2) == {0: 1, 1: 1}
        victim = b.worker_pids("network")[1]
        os.kill(victim, signal.SIGSTOP)  # alive to the others' checks, but adopts nothing
        stuck = []
        try:
            before = handed_off(b)
            deadline = time.monotonic() + 30
            while handed_off(b) == before:  # until worker 0 has passed one to the stopped worker
                assert time.monotonic() < deadline, "no connection was handed to the stopped worker"
                s = socket.create_connection(("127.0.0.1", b.port), timeout=10)
                s.sendall(api_versions_request(500 + len(stuck)))
                s.settimeout(0.3)
                try:
                    assert read_response(s) == (500 + len(stuck), 0)  # worker 0 kept it
                    held.append(s)
                except socket.timeout:
                    stuck.append(s)  # queued for worker 1: in its inbox or its accept queue
            assert stuck
            os.kill(victim, signal.SIGKILL)
            os.kill(victim, signal.SIGCONT)
            for i, s in enumerate(stuck):
                s.settimeout(60)
                assert read_response(s) == (500 + i, 0)
        finally:
            for s in held + stuck:
                s.close()
