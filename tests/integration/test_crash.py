"""Crashes during production: nothing acknowledged is ever lost."""

import threading
import time
from collections import Counter

from tests.integration.test_produce_fetch import PARTITIONS, _create, consume_confluent
from tools.testing import BrokerProcess


def _producer_thread(bootstrap, topic, stop, acked, extra, value=lambda i: b"v%08d" % i, partitions=PARTITIONS):
    """acks=all records until `stop`; the acknowledged ones go to `acked` as (partition, offset, value)."""
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 2,
                  "message.timeout.ms": 20000, **extra})

    def cb(err, msg):
        if err is None:
            acked.append((msg.partition(), msg.offset(), msg.value()))

    i = 0
    while not stop.is_set():
        try:
            p.produce(topic, value=value(i), partition=i % partitions, on_delivery=cb)
            i += 1
        except BufferError:
            p.poll(0.01)
        if i % 500 == 0:
            p.poll(0)
            time.sleep(0.001)
    p.flush(30)


def _all_records(bootstrap, topic, at_least):
    got = consume_confluent(bootstrap, topic, at_least)
    return {(part, off): v for part, recs in got.items() for off, v in recs}


def test_kill_io_worker_during_acks_all(tmp_path):
    with BrokerProcess(data_dir=str(tmp_path), network_threads=1, io_threads=2) as b:
        _create(b.bootstrap, "crash-io")
        stop = threading.Event()
        acked: list = []
        t = threading.Thread(target=_producer_thread, args=(b.bootstrap, "crash-io", stop, acked, {}))
        t.start()
        time.sleep(1.5)
        b.restart_worker("io")
        before = len(acked)
        time.sleep(2.0)
        stop.set()
        t.join(60)
        assert len(acked) > before, "production did not resume after the I/O worker restart"
        stored = _all_records(b.bootstrap, "crash-io", len(acked))
        missing = [(p, o) for p, o, v in acked if stored.get((p, o)) != v]
        assert not missing, f"{len(missing)} acknowledged records missing, e.g. {missing[:3]}"


def test_kill_broker_mid_produce_then_restart(tmp_path):
    b = BrokerProcess(data_dir=str(tmp_path), network_threads=2, io_threads=2)
    b.start()
    try:
        _create(b.bootstrap, "crash-all")
        stop = threading.Event()
        acked: list = []
        # No client retries: a record in flight at the crash fails instead of being re-sent, so every
        # acknowledged record must be in the log exactly once.
        t = threading.Thread(target=_producer_thread,
                             args=(b.bootstrap, "crash-all", stop, acked, {"retries": 0}))
        t.start()
        time.sleep(2.0)
        b.kill()
        stop.set()
        t.join(60)
        assert acked, "nothing was acknowledged before the crash"
        b.start()
        stored = consume_confluent(b.bootstrap, "crash-all", len(acked))
        values = {}
        for part, recs in stored.items():
            offsets = [o for o, _ in recs]
            assert offsets == sorted(set(offsets))
            for o, v in recs:
                values[(part, o)] = v
        missing = [(p, o) for p, o, v in acked if values.get((p, o)) != v]
        assert not missing, f"{len(missing)} acknowledged records missing after kill -9, e.g. {missing[:3]}"
        seen = Counter(v for recs in stored.values() for _, v in recs)
        dup = [v for _, _, v in acked if seen[v] > 1]
        assert not dup, f"acknowledged records stored twice: {dup[:3]}"
    finally:
        b.close()
