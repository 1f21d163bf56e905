"""The same workloads through confluent-kafka (librdkafka): what a realistic client gets.

Same process interface as `perf.loadgen` (spec, shared counters, result queue). Produce latency is
librdkafka's own per-message latency (from `produce()` to the delivery report); at a fixed rate it is
measured from the scheduled time instead, as in the raw driver.
"""

from __future__ import annotations

import time

import numpy as np

from broker.config import hostport
from perf.histogram import Histogram
from perf.counters import BYTES, ERRORS, LAST, RECORDS, REQUESTS, STARTED
from perf.loadgen import ConsumeSpec, ProduceSpec


def _bootstrap(leaders: dict) -> str:
    return hostport(*next(iter(leaders.values())))


def run_producer(spec: ProduceSpec, counters, results) -> None:
    try:
        results.put(("ok", _produce(spec, counters).to_state()))
    except Exception as exc:
        counters[ERRORS] += 1
        results.put(("error", f"{type(exc).__name__}: {exc}"))


def _produce(spec: ProduceSpec, counters) -> Histogram:
    from confluent_kafka import Producer

    hist = Histogram()
    conf = {"bootstrap.servers": _bootstrap(spec.leaders), "acks": str(spec.acks),
            "linger.ms": spec.linger_ms, "batch.size": max(spec.batch_bytes, 1024),
            "queue.buffering.max.messages": 1_000_000, "queue.buffering.max.kbytes": 1_048_576,
            "compression.type": "none", "enable.idempotence": spec.idempotent,
            "max.in.flight.requests.per.connection": spec.inflight}
    producer = Producer(conf)
    parts = sorted(spec.leaders)
    rng = np.random.default_rng(spec.seed)
    values = [rng.bytes(spec.record_size) for _ in range(64)]
    interval = 1e9 / spec.rate if spec.rate > 0 else 0.0
    start = time.monotonic_ns()
    counters[STARTED] = start

    # A delivery report only notes its latency; the histogram and the shared counters take them in bulk
    # after each poll (`fold`), so the measuring adds little to what the client itself costs per record.
    latencies: list[int] = []
    note = latencies.append
    clock = time.monotonic_ns

    def delivered(err, msg):
        if err is not None:
            counters[ERRORS] += 1
        elif interval:
            note(clock() - int.from_bytes(msg.key(), "big"))
        else:
            note(int(msg.latency() * 1e9))

    def fold() -> None:
        if latencies:
            hist.record_many(latencies)
            counters[RECORDS] += len(latencies)
            counters[BYTES] += len(latencies) * spec.record_size
            counters[LAST] = clock()  # reports are served inside poll(), just before this
            latencies.clear()

    def poll(timeout: float) -> None:
        producer.poll(timeout)
        fold()

    deadline = time.monotonic() + spec.time_limit
    for i in range(spec.num_records):
        key = None
        if interval:
            due = start + int(i * interval)
            poll(0)  # delivery reports as they arrive: a report's latency is taken when it is served
            wait = due - time.monotonic_ns()
            while wait > 0:  # poll() waits in whole milliseconds (a shorter timeout returns at once): sleep instead
                if wait >= 1_000_000:
                    poll(0.001)
                else:
                    time.sleep(wait / 1e9)
                wait = due - time.monotonic_ns()
            key = due.to_bytes(8, "big")
        while True:
            try:
                producer.produce(spec.topic, values[i & 63], key, partition=parts[i % len(parts)],
                                 on_delivery=delivered)
                break
            except BufferError:
                poll(0.001)
        if i & 1023 == 0:
            poll(0)
            counters[REQUESTS] += 1
            if time.monotonic() > deadline:
                break
    while producer.flush(1.0) and time.monotonic() < deadline:
        fold()
    fold()
    return hist


def run_consumer(spec: ConsumeSpec, counters, totals, results) -> None:
    try:
        results.put(("ok", _consume(spec, counters, totals).to_state()))
    except Exception as exc:
        counters[ERRORS] += 1
        results.put(("error", f"{type(exc).__name__}: {exc}"))


def _consume(spec: ConsumeSpec, counters, totals) -> Histogram:
    from confluent_kafka import Consumer, TopicPartition

    hist = Histogram()
    consumer = Consumer({"bootstrap.servers": _bootstrap(spec.leaders), "group.id": "hpbroker-perf",
                         "enable.auto.commit": False, "fetch.max.bytes": 64 << 20,
                         "max.partition.fetch.bytes": spec.partition_max_bytes,
                         "queued.max.messages.kbytes": 1 << 20, "fetch.wait.max.ms": spec.max_wait_ms})
    consumer.assign([TopicPartition(spec.topic, p, spec.start_offsets.get(p, 0)) for p in sorted(spec.leaders)])
    deadline = time.monotonic() + spec.time_limit
    counters[STARTED] = time.monotonic_ns()
    try:
        while time.monotonic() < deadline and sum(t[RECORDS] for t in totals) < spec.num_records:
            msgs = consumer.consume(10000, 0.2)
            if not msgs:
                continue
            now = time.monotonic_ns()
            good = 0
            nbytes = 0
            for m in msgs:
                if m.error() is not None:
                    counters[ERRORS] += 1
                    continue
                good += 1
                nbytes += len(m.value() or b"")
                if spec.key_times:
                    hist.record(now - int.from_bytes(m.key(), "big"))
            counters[RECORDS] += good
            counters[BYTES] += nbytes
            if good:
                counters[LAST] = now
            counters[REQUESTS] += 1
    finally:
        consumer.close()
    return hist
