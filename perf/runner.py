"""Runs a workload: creates the topic, forks the load processes, shows live progress, sums up the result.

The result is one flat dict (what `--json` prints): records, records_per_sec, mb_per_sec, elapsed_s,
latency_ms {p50, p90, p99, p999, max, mean}, errors, requests, client_cpu_s (the load processes' CPU time),
plus the workload's parameters. `records` is capped at the target, records_counted is what the load
processes counted, latency_samples how many values latency_ms is taken from. Rates are over the span
from the first process's start to the last acknowledgement (or consumed record). A consume run also
lists each consumer's partitions and the records it counted (processes), so a count can be checked
against what those partitions hold.
"""

from __future__ import annotations

import multiprocessing
import time
from dataclasses import dataclass, replace

from perf import confluent, loadgen, wire
from perf.display import Progress
from perf.histogram import Histogram
from perf.counters import BYTES, COUNTERS, CPU_NS, ERRORS, LAST, RECORDS, REQUESTS, STARTED
from perf.loadgen import ConsumeSpec, ProduceSpec, records_per_batch


@dataclass(frozen=True)
class Workload:
    bootstrap: str
    topic: str
    num_records: int
    record_size: int = 1024
    partitions: int = 8
    acks: int = 1
    producers: int = 1
    consumers: int = 1
    batch_size: int = 65536          # bytes per partition batch, as Kafka's batch.size
    linger_ms: float = 0.0
    rate: float = 0.0                # records/s over all producers; 0 = max
    inflight: int = 8
    client: str = "native"           # or "confluent"
    connections: int = 1             # per process and broker (native client)
    time_limit: float = 600.0
    topic_configs: tuple = ()
    discard_records: bool = False    # consumers (native client): batch bodies never leave the kernel
    idempotent: bool = False         # a producer id and sequences in every batch (acks=all, at most 5 in flight)
    interpreted_loop: bool = False   # at a fixed rate (native): the interpreted loop, the compiled one's oracle

    def __post_init__(self):
        if self.discard_records and self.client != "native":
            raise ValueError("--discard-records needs the native client")
        if self.interpreted_loop and (self.client != "native" or not self.rate):
            raise ValueError("--interpreted-loop is the native client's fixed-rate loop: it needs --rate")
        if self.idempotent:  # what Kafka's idempotent producer requires
            if self.client == "native" and self.rate:
                raise ValueError("--idempotent with the native client runs at max rate only (no --rate)")
            if self.acks != -1:
                raise ValueError("--idempotent needs --acks all")
            if self.inflight > 5:
                raise ValueError("--idempotent allows at most 5 requests in flight (--inflight)")

    @property
    def batch_records(self) -> int:
        return records_per_batch(self.batch_size, self.record_size)


def _on_bootstrap(w: Workload, call, *args):
    """`call(conn, *args)` on a connection of its own to the workload's bootstrap broker."""
    conn = wire.Connection(*wire.parse_bootstrap(w.bootstrap))
    try:
        return call(conn, *args)
    finally:
        conn.close()


def prepare_topic(w: Workload) -> dict[int, tuple[str, int]]:
    return _on_bootstrap(w, wire.ensure_topic, w.topic, w.partitions, dict(w.topic_configs))


def delete_topic(w: Workload) -> None:
    _on_bootstrap(w, wire.delete_topic, w.topic)


def _assign(leaders: dict, n: int) -> list[dict]:
    parts = sorted(leaders)
    if n >= len(parts):
        return [{parts[i % len(parts)]: leaders[parts[i % len(parts)]]} for i in range(n)]
    return [{p: leaders[p] for p in parts[i::n]} for i in range(n)]


def _shares(total: int, n: int) -> list[int]:
    return [total // n + (1 if i < total % n else 0) for i in range(n)]


class _Group:
    """Forked load processes with their shared counters and result queue."""

    def __init__(self):
        self.ctx = multiprocessing.get_context("fork")
        self.results = self.ctx.Queue()
        self.procs: list = []
        self.counters: list = []

    def counter(self):
        c = self.ctx.Array("q", COUNTERS, lock=False)
        self.counters.append(c)
        return c

    def start(self, target, spec, counters, *args) -> None:
        """A load process running `target(spec, counters, *args)`; `counters` is its own."""
        p = self.ctx.Process(target=_load_process, args=(target, spec, counters) + args, daemon=True)
        p.start()
        self.procs.append(p)

    def cpu_seconds(self) -> float:
        """CPU time the processes used, every thread of each (librdkafka's too), from start to end."""
        return sum(c[CPU_NS] for c in self.counters) / 1e9

    def totals(self) -> list[int]:
        return [sum(c[i] for c in self.counters) for i in range(COUNTERS)]

    def span(self) -> float:
        """Seconds from the first process's start to the last record any of them counted."""
        starts = [c[STARTED] for c in self.counters if c[STARTED]]
        ends = [c[LAST] for c in self.counters if c[LAST]]
        return (max(ends) - min(starts)) / 1e9 if starts and ends else 0.0

    def alive(self) -> bool:
        return any(p.is_alive() for p in self.procs)

    def collect(self, hist: Histogram, failures: list[str]) -> None:
        for _ in self.procs:
            try:
                status, payload = self.results.get(timeout=30)
            except Exception:
                failures.append("a load process exited without a result")
                continue
            if status == "ok":
                hist.merge(Histogram.from_state(payload))
            else:
                failures.append(payload)
        for p in self.procs:
            p.join(10)


def _load_process(target, spec, counters, *args) -> None:
    """A load process: `target`, then its CPU time in its counters (read by the parent after the join)."""
    cpu = time.process_time_ns()
    try:
        target(spec, counters, *args)
    finally:
        counters[CPU_NS] = time.process_time_ns() - cpu


def _client_loaded(w: Workload) -> None:
    """The client library imported before the load processes fork, so none of them spends CPU time on it."""
    if w.client == "confluent":
        import confluent_kafka  # noqa: F401


def _loop(w: Workload, specs: list[ProduceSpec]) -> str | None:
    """Which of the native client's fixed-rate loops sent the records (`loadgen.fixed_rate_loop`), if one
    did; both names when the producer processes differed."""
    if w.client != "native":
        return None
    loops = sorted({loop for loop in map(loadgen.fixed_rate_loop, specs) if loop})
    return "+".join(loops) or None


def _summary(w: Workload, mode: str, counts: list[int], elapsed: float, hist: Histogram,
             failures: list[str], target: int, client_cpu_s: float, loop: str | None = None) -> dict:
    records = min(counts[RECORDS], target)
    elapsed = max(elapsed, 1e-9)
    per_record = counts[BYTES] / counts[RECORDS] if counts[RECORDS] else 0
    return {
        "mode": mode, "client": w.client, "topic": w.topic, "records": records,
        "records_counted": counts[RECORDS], "latency_samples": hist.count,
        "records_per_sec": round(counts[RECORDS] / elapsed, 1),
        "mb_per_sec": round(counts[BYTES] / elapsed / 1e6, 2),
        "elapsed_s": round(elapsed, 3), "latency_ms": {k: round(v, 4) for k, v in hist.summary_ms().items()},
        "errors": counts[ERRORS] + len(failures), "requests": counts[REQUESTS],
        "record_size": w.record_size, "avg_record_bytes": round(per_record, 1), "partitions": w.partitions,
        "acks": w.acks, "producers": w.producers, "consumers": w.consumers, "batch_size": w.batch_size,
        "linger_ms": w.linger_ms, "rate": w.rate, "discard_records": w.discard_records,
        "loop": loop,
        "client_cpu_s": round(client_cpu_s, 3),
        "complete": counts[RECORDS] >= target and not failures,
        "failures": failures[:5],
    }


def _watch(group: _Group, progress: Progress, label: str, target: int, start: float) -> None:
    """Refresh the progress display until every process exits."""
    while group.alive():
        progress.update(label, group.totals(), target, time.monotonic() - start)
        time.sleep(0.2)
    progress.update(label, group.totals(), target, time.monotonic() - start)


def run_produce(w: Workload, progress: Progress | None = None, key_times: bool = False) -> dict:
    leaders = prepare_topic(w)
    return _produce(w, leaders, progress or Progress(enabled=False), key_times)


def _produce_specs(w: Workload, leaders: dict, key_times: bool) -> list[ProduceSpec]:
    rate = w.rate / w.producers if w.rate else 0.0
    return [ProduceSpec(topic=w.topic, leaders=own, record_size=w.record_size, num_records=n, acks=w.acks,
                        batch_bytes=w.batch_size, linger_ms=w.linger_ms, rate=rate, inflight=w.inflight,
                        key_times=key_times, time_limit=w.time_limit, seed=i,
                        connections=w.connections, idempotent=w.idempotent, interpreted=w.interpreted_loop)
            for i, (own, n) in enumerate(zip(_assign(leaders, w.producers), _shares(w.num_records, w.producers)))]


def _produce(w: Workload, leaders: dict, progress: Progress, key_times: bool) -> dict:
    import hotpath

    hotpath.warmup()
    _client_loaded(w)
    target = loadgen.run_producer if w.client == "native" else confluent.run_producer
    group = _Group()
    start = time.monotonic()
    specs = _produce_specs(w, leaders, key_times)
    for spec in specs:
        group.start(target, spec, group.counter(), group.results)
    hist, failures = Histogram(), []
    with progress:
        _watch(group, progress, "produce", w.num_records, start)
    group.collect(hist, failures)
    return _summary(w, "produce", group.totals(), group.span(), hist, failures, w.num_records,
                    group.cpu_seconds(), _loop(w, specs))


def run_consume(w: Workload, progress: Progress | None = None) -> dict:
    leaders = _on_bootstrap(w, wire.leaders, w.topic)
    w = replace(w, partitions=len(leaders))
    progress = progress or Progress(enabled=False)
    group = _Group()
    _client_loaded(w)
    target = loadgen.run_consumer if w.client == "native" else confluent.run_consumer
    start = time.monotonic()
    specs = [ConsumeSpec(topic=w.topic, leaders=own, num_records=w.num_records, time_limit=w.time_limit,
                         connections=w.connections, discard_records=w.discard_records)
             for own in _assign(leaders, w.consumers)[:max(1, min(w.consumers, len(leaders)))]]
    for spec in specs:
        group.counter()
    for spec, c in zip(specs, group.counters):
        group.start(target, spec, c, group.counters, group.results)
    hist, failures = Histogram(), []
    with progress:
        _watch(group, progress, "consume", w.num_records, start)
    group.collect(hist, failures)
    out = _summary(w, "consume", group.totals(), group.span(), hist, failures, w.num_records,
                   group.cpu_seconds())
    out["processes"] = [{"partitions": sorted(spec.leaders), "records": c[RECORDS]}
                        for spec, c in zip(specs, group.counters)]
    return out


def run_e2e(w: Workload, progress: Progress | None = None) -> dict:
    """Produce at `w.rate` while consuming; latency is consume time minus each record's scheduled send time."""
    if not w.rate:
        raise ValueError("e2e needs a fixed --rate")
    leaders = prepare_topic(w)
    starts = _on_bootstrap(w, _end_offsets, w.topic, sorted(leaders))
    import hotpath

    hotpath.warmup()
    progress = progress or Progress(enabled=False)
    consumers, producers = _Group(), _Group()
    _client_loaded(w)
    cons_target = loadgen.run_consumer if w.client == "native" else confluent.run_consumer
    prod_target = loadgen.run_producer if w.client == "native" else confluent.run_producer
    specs = [ConsumeSpec(topic=w.topic, leaders=own, num_records=w.num_records, key_times=True,
                         time_limit=w.time_limit, max_wait_ms=100, start_offsets=starts)
             for own in _assign(leaders, min(w.consumers, len(leaders)))]
    for _ in specs:
        consumers.counter()
    for spec, c in zip(specs, consumers.counters):
        consumers.start(cons_target, spec, c, consumers.counters, consumers.results)
    time.sleep(0.3)                       # consumers connected and polling before the first record is due
    start = time.monotonic()
    specs = _produce_specs(w, leaders, key_times=True)
    for spec in specs:
        producers.start(prod_target, spec, producers.counter(), producers.results)
    e2e, acks, failures = Histogram(), Histogram(), []
    with progress:
        _watch(consumers, progress, "e2e", w.num_records, start)
    producers.collect(acks, failures)
    consumers.collect(e2e, failures)
    out = _summary(w, "e2e", consumers.totals(), consumers.span(), e2e, failures, w.num_records,
                   consumers.cpu_seconds() + producers.cpu_seconds(), _loop(w, specs))
    out["produce_latency_ms"] = {k: round(v, 4) for k, v in acks.summary_ms().items()}
    out["produced"] = producers.totals()[RECORDS]
    out["errors"] += producers.totals()[ERRORS]
    return out


def _end_offsets(conn: wire.Connection, topic: str, partitions: list[int]) -> dict[int, int]:
    body = {"replica_id": -1, "isolation_level": 0, "topics": [{"name": topic, "partitions": [
        {"partition_index": p, "current_leader_epoch": -1, "timestamp": -1} for p in partitions]}]}
    resp = conn.call(wire.LIST_OFFSETS, 2, body)
    return {p["partition_index"]: max(p["offset"], 0) for t in resp["topics"] for p in t["partitions"]}
