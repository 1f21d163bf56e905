"""Large Produce requests land in the network worker's receive arena and their owners append the records
from there: what comes back is byte for byte what was sent, while the arena is reused lap after lap,
and when an I/O worker is killed with references to the arena still queued."""

from __future__ import annotations

import hashlib
import os
import signal
import threading
import time
import urllib.request

from confluent_kafka import Producer

from tests.integration.test_crash import _producer_thread
from tests.integration.test_produce_fetch import _create, consume_confluent
from tools.testing import BrokerProcess
from tools.top.promtext import parse, total

PARTITIONS = 4
# librdkafka puts one partition's batch in a request; 1 MB batches make frames far above the arena threshold.
BIG_BATCHES = {"batch.size": 1_000_000, "linger.ms": 30, "compression.type": "none"}


def value(i: int) -> bytes:
    """Deterministic content of varying size (100..1600 bytes), so a byte out of place is caught."""
    seed = hashlib.blake2b(i.to_bytes(8, "little"), digest_size=16).digest()
    return b"%09d:" % i + seed * (6 + i % 95)


def arena_appends(broker: BrokerProcess) -> float:
    with urllib.request.urlopen(broker.metrics_url, timeout=10) as r:
        return total(parse(r.read().decode()), "hpbroker_arena_appends_total")


def check_stored(bootstrap: str, topic: str, acked: list) -> None:
    got = consume_confluent(bootstrap, topic, len(acked), partitions=PARTITIONS)
    stored = {(p, o): v for p, recs in got.items() for o, v in recs}
    wrong = [(p, o) for p, o, v in acked if stored.get((p, o)) != v]
    assert not wrong, f"{len(wrong)} acknowledged records missing or changed, e.g. {wrong[:3]}"
    for recs in got.values():
        for _, v in recs:
            assert v == value(int(v[:9])), f"record {v[:9]!r} does not hold what was produced"


def test_large_batches_come_back_intact_across_many_arena_laps(tmp_path):
    with BrokerProcess(data_dir=str(tmp_path), network_threads=1, io_threads=2,
                       settings={"metrics.listener": "127.0.0.1:0"}) as b:
        _create(b.bootstrap, "arena", PARTITIONS)
        p = Producer({"bootstrap.servers": b.bootstrap, "acks": "all", **BIG_BATCHES})
        acked, errors = [], []

        def cb(err, msg):
            (errors if err is not None else acked).append(err or (msg.partition(), msg.offset(), msg.value()))

        n = 0
        size = 0
        while size < 80 * 1024 * 1024:  # about 2.5 laps of the 32 MiB arena
            v = value(n)
            try:
                p.produce("arena", v, partition=n % PARTITIONS, on_delivery=cb)
            except BufferError:
                p.poll(0.05)
                continue
            n += 1
            size += len(v)
            if n % 1000 == 0:
                p.poll(0)
        assert p.flush(60) == 0
        assert not errors, errors[:3]
        assert len(acked) == n
        assert arena_appends(b) >= 80, "large requests were not appended from the arena"
        check_stored(b.bootstrap, "arena", acked)


def test_kill_io_worker_with_arena_references_queued(tmp_path):
    with BrokerProcess(data_dir=str(tmp_path), network_threads=1, io_threads=2,
                       settings={"metrics.listener": "127.0.0.1:0"}) as b:
        _create(b.bootstrap, "arena-crash", PARTITIONS)
        stop = threading.Event()
        acked: list = []
        t = threading.Thread(target=_producer_thread,
                             args=(b.bootstrap, "arena-crash", stop, acked,
                                   {"message.timeout.ms": 30000, **BIG_BATCHES}, value, PARTITIONS))
        t.start()
        try:
            time.sleep(2.0)
            b.restart_worker("io")
            before = len(acked)
            time.sleep(2.0)
        finally:
            stop.set()
            t.join(90)
        assert len(acked) > before, "production did not resume after the I/O worker restart"
        assert arena_appends(b) > 0
        check_stored(b.bootstrap, "arena-crash", acked)


def test_a_stalled_owner_never_sees_its_arena_ranges_overwritten(tmp_path):
    """The I/O worker stops while more than an arena's worth of large requests arrives: the references it
    has queued keep their ranges, so new frames go elsewhere (or through the ring), and what it appends once
    it runs again is what was sent."""
    with BrokerProcess(data_dir=str(tmp_path), network_threads=1, io_threads=1,
                       settings={"metrics.listener": "127.0.0.1:0"}) as b:
        _create(b.bootstrap, "arena-stall", PARTITIONS)
        p = Producer({"bootstrap.servers": b.bootstrap, "acks": "1", "message.timeout.ms": 60000,
                      **BIG_BATCHES})
        acked, errors = [], []

        def cb(err, msg):
            (errors if err is not None else acked).append(err or (msg.partition(), msg.offset(), msg.value()))

        def send(first: int, nbytes: int) -> int:
            i, size = first, 0
            while size < nbytes:
                try:
                    p.produce("arena-stall", value(i), partition=i % PARTITIONS, on_delivery=cb)
                except BufferError:
                    p.poll(0.05)
                    continue
                size += len(value(i))
                i += 1
                if i % 1000 == 0:
                    p.poll(0)
            return i

        n = send(0, 8 * 1024 * 1024)
        p.flush(30)
        owner = b.worker_pids("io")[0]
        os.kill(owner, signal.SIGSTOP)
        try:
            n = send(n, 60 * 1024 * 1024)  # nearly twice the 32 MiB arena, all queued behind the stopped owner
            deadline = time.time() + 3
            while time.time() < deadline:
                p.poll(0.1)
        finally:
            os.kill(owner, signal.SIGCONT)
        assert p.flush(90) == 0
        assert not errors, errors[:3]
        assert len(acked) == n
        assert arena_appends(b) > 0
        check_stored(b.bootstrap, "arena-stall", acked)
