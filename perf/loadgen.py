"""Load-generating processes over the harness's own client: producers (max rate or scheduled) and consumers.

Each process gets a frozen spec, reports progress through four shared int64 counters (records, bytes,
errors, requests) and hands its latency histogram back at the end. Latency is taken from the *scheduled*
send time: at a fixed rate every record has a due time fixed in advance (start + i / rate), so a stalled
broker shows up as latency of every record that should have been sent meanwhile (no coordinated
omission). At max rate a record's due time is when its request was sent.
"""

from __future__ import annotations

import select as _select
import selectors
import struct
import time
from dataclasses import dataclass, field

import numpy as np

import hotpath
from perf import wire
from perf.counters import BYTES, ERRORS, LAST, RECORDS, REQUESTS, STARTED
from perf.histogram import FEW, Histogram

TEMPLATES = 4
_KEY = struct.Struct(">q")
_PRODUCER = struct.Struct(">qhi")  # producerId @43, producerEpoch @51, baseSequence @53 of a RecordBatch
_CRC = struct.Struct(">I")         # @17, over the bytes from attributes (@21) to the end


# Per record without key or headers: length, attributes, timestamp delta, offset delta, key length,
# value length and header count; an upper bound for values under 2 MiB and up to 2M records per batch.
RECORD_FRAMING = 3 + 1 + 5 + 3 + 1 + 3 + 1


def records_per_batch(batch_bytes: int, record_size: int) -> int:
    """Records per batch such that the encoded batch (header and record framing) fits `batch_bytes`, as
    Kafka's batch.size counts it; a batch can then never exceed max.message.bytes by its framing."""
    return max(1, (batch_bytes - hotpath.HEADER_SIZE) // (record_size + RECORD_FRAMING))


@dataclass(frozen=True)
class ProduceSpec:
    topic: str
    leaders: dict              # partition -> (host, port), only this process's partitions
    record_size: int
    num_records: int
    acks: int = 1
    batch_bytes: int = 65536   # as Kafka's batch.size
    linger_ms: float = 0.0
    rate: float = 0.0          # records/s for this process; 0 = as fast as the broker acknowledges
    inflight: int = 8
    key_times: bool = False    # e2e: every record's key is its scheduled send time (monotonic ns)
    time_limit: float = 600.0
    seed: int = 0
    connections: int = 1       # connections per broker, partitions spread over them
    idempotent: bool = False   # producer id and per-partition sequences in every batch (acks=all)
    interpreted: bool = False  # at a fixed rate, the interpreted loop even where the compiled one serves

    @property
    def batch_records(self) -> int:
        return records_per_batch(self.batch_bytes, self.record_size)


@dataclass(frozen=True)
class ConsumeSpec:
    topic: str
    leaders: dict
    num_records: int           # stop when all consumers together have this many
    partition_max_bytes: int = 4 << 20
    max_wait_ms: int = 100
    key_times: bool = False
    time_limit: float = 600.0
    start_offsets: dict = field(default_factory=dict)
    connections: int = 1
    discard_records: bool = False  # read batch headers only; bodies are dropped in the kernel (MSG_TRUNC)


def payload_pool(record_size: int, count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Random record values (incompressible, as a benchmark should be) as one column + offsets."""
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 256, record_size * count, dtype=np.uint8)
    return data, np.arange(count + 1, dtype=np.int64) * record_size


def build(record_size: int, n: int, seed: int, keys_ns=None) -> np.ndarray:
    return batch_of(payload_pool(record_size, n, seed)[0], record_size, n, keys_ns)


def batch_of(data: np.ndarray, record_size: int, n: int, keys_ns=None) -> np.ndarray:
    """A batch of the first `n` values of the column `data`, record i keyed by `keys_ns[i]` (8 bytes,
    big-endian) when keys are given."""
    offsets = np.arange(n + 1, dtype=np.int64) * record_size
    if keys_ns is None:
        return hotpath.build_batch(data[:n * record_size], offsets)
    keys = np.asarray(keys_ns, ">i8").view(np.uint8)
    return hotpath.build_batch(data[:n * record_size], offsets, keys, np.arange(n + 1, dtype=np.int64) * 8)


def _by_leader(leaders: dict, connections: int = 1) -> dict[tuple, list[int]]:
    """Partitions per connection, keyed by (leader address, connection number).

    Several connections to one broker let a run use every network worker of a broker that spreads
    connections by hash (`SO_REUSEPORT`), independently of where one connection happens to land.
    """
    per_leader: dict = {}
    for p, addr in sorted(leaders.items()):
        per_leader.setdefault(tuple(addr), []).append(p)
    out: dict = {}
    for addr, parts in per_leader.items():
        for k in range(min(max(connections, 1), len(parts))):
            out[(addr, k)] = parts[k::max(connections, 1)]
    return out


def _connect(groups: dict) -> dict:
    return {key: wire.Connection(*key[0]) for key in groups}


def fixed_rate_loop(spec: ProduceSpec) -> str | None:
    """Which loop sends `spec` at its fixed rate: "compiled" (perf/fixedrate.py), or "interpreted" on
    request, when the compiled loop's templates would not fit its budget, or with the hotpath kernels
    uncompiled (HPBROKER_NO_JIT); None at max rate."""
    from perf import fixedrate  # which builds on this module

    if spec.rate <= 0:
        return None
    if spec.interpreted or not fixedrate.AVAILABLE or fixedrate.template_bytes(spec) > fixedrate.TEMPLATE_BYTES:
        return "interpreted"
    return "compiled"


def run_producer(spec: ProduceSpec, counters, results) -> None:
    """Process entry point: produce `spec.num_records`, then put ("ok", histogram state) or ("error", why)."""
    try:
        loop = fixed_rate_loop(spec)
        if loop is None:
            hist = _max_rate(spec, counters)
        elif loop == "interpreted":
            hist = _scheduled(spec, counters)
        else:
            hist = _scheduled_compiled(spec, counters)
        results.put(("ok", hist.to_state()))
    except Exception as exc:  # reported to the parent, which exits non-zero
        counters[ERRORS] += 1
        results.put(("error", f"{type(exc).__name__}: {exc}"))


class Idempotence:
    """An idempotent producer's id, epoch and next sequence per partition. `stamp` writes them into the
    batches of a request about to be sent, and the batch CRC with them (it covers the producer fields)."""

    def __init__(self, producer_id: int, epoch: int):
        self.producer_id = producer_id
        self.epoch = epoch
        self.next_seq: dict[int, int] = {}

    def stamp(self, frame: bytearray, layout: list[tuple[int, int, int, int]]) -> None:
        """`layout`: (partition, position, size, records) of each batch in `frame`."""
        view = memoryview(frame)
        for p, pos, size, count in layout:
            seq = self.next_seq.get(p, 0)
            _PRODUCER.pack_into(frame, pos + 43, self.producer_id, self.epoch, seq)
            _CRC.pack_into(frame, pos + 17, hotpath.crc32c(view[pos + 21:pos + size]))
            self.next_seq[p] = (seq + count) & 0x7FFFFFFF  # sequences wrap from INT32_MAX to 0


def _request(spec: ProduceSpec, batches: dict[int, np.ndarray], counts: dict[int, int]):
    """A Produce frame for `batches` and where each batch lies in it (for `Idempotence.stamp`)."""
    frame = wire.produce_frame(spec.topic, batches, spec.acks)
    layout = []
    for p, b in sorted(batches.items()):
        raw = b.tobytes()
        layout.append((p, frame.find(raw), len(raw), counts[p]))  # random values: found where they are
    return frame, layout


def _max_rate(spec: ProduceSpec, counters) -> Histogram:
    """Pre-encoded requests sent back to back, `inflight` outstanding per connection."""
    hist = Histogram()
    groups = _by_leader(spec.leaders, spec.connections)
    conns = _connect(groups)
    idem = Idempotence(*wire.init_producer_id(next(iter(conns.values())))) if spec.idempotent else None
    plans = []
    for addr, parts in groups.items():
        per_request = spec.batch_records * len(parts)
        frames = [_request(spec, {p: build(spec.record_size, spec.batch_records, spec.seed * 7919 + t * 131 + p)
                                  for p in parts}, dict.fromkeys(parts, spec.batch_records))
                  for t in range(TEMPLATES)]
        plans.append([addr, parts, per_request, frames])
    remaining = spec.num_records
    per_conn_left = _split(remaining, [p[2] for p in plans])
    sel = selectors.DefaultSelector()
    for addr in conns:
        sel.register(conns[addr].sock, selectors.EVENT_READ, addr)
    state = {addr: [left, 0] for (addr, *_), left in zip(plans, per_conn_left)}   # records left, template no
    plan_of = {p[0]: p for p in plans}
    deadline = time.monotonic() + spec.time_limit
    acks0 = spec.acks == 0
    counters[STARTED] = time.monotonic_ns()
    while True:
        busy = False
        for addr, conn in conns.items():
            left, t = state[addr]
            _, parts, per_request, frames = plan_of[addr]
            while left > 0 and len(conn.pending) < spec.inflight:
                if left >= per_request:
                    (frame, layout), n = frames[t % TEMPLATES], per_request
                else:
                    (frame, layout), n = _tail_frame(spec, parts, left), left
                if idem is not None:
                    idem.stamp(frame, layout)
                sent = time.monotonic_ns()
                conn.send(frame, wire.PRODUCE, wire.PRODUCE_V, (sent, n, n * spec.record_size))
                left -= n
                t += 1
                if acks0:
                    conn.pending.pop()
                    _count(counters, hist, n, n * spec.record_size, 0, sent)
            state[addr] = [left, t]
            busy = busy or left > 0 or bool(conn.pending)
        if not busy or time.monotonic() > deadline:
            break
        for key, _ in sel.select(1.0):
            conn = conns[key.data]
            while True:
                (corr, _, _, (sent, n, nbytes)), frame = conn.recv()
                errors = wire.produce_errors(frame)
                _count(counters, hist, 0 if errors else n, 0 if errors else nbytes, errors, sent)
                if not conn.pending or not conn.has_buffered_frame():
                    break
    sel.close()
    for conn in conns.values():
        conn.close()
    return hist


def _count(counters, hist: Histogram, n: int, nbytes: int, errors: int, sent: int) -> None:
    if n:
        now = time.monotonic_ns()
        hist.record(now - sent, n)
        counters[LAST] = now
    counters[RECORDS] += n
    counters[BYTES] += nbytes
    counters[ERRORS] += errors
    counters[REQUESTS] += 1


def _split(total: int, weights: list[int]) -> list[int]:
    shares = [total * w // sum(weights) for w in weights]
    shares[0] += total - sum(shares)
    return shares


def _tail_frame(spec: ProduceSpec, parts: list[int], left: int):
    """The last, partial request: `left` records spread over the partitions (frame, layout)."""
    counts = {p: c for p, c in zip(parts, _split(left, [1] * len(parts))) if c > 0}
    return _request(spec, {p: build(spec.record_size, c, spec.seed + p) for p, c in counts.items()}, counts)


def _scheduled(spec: ProduceSpec, counters) -> Histogram:
    """Fixed rate: record i is due at start + i / rate; a batch leaves when full or its oldest waited linger.

    The compiled loop (`_scheduled_compiled`, perf/fixedrate.py) runs this schedule by default; this one is
    its oracle in the tests and sends what it does not take (`fixed_rate_loop`). It runs once per request on a machine the broker shares, so every microsecond it spends is taken from the
    broker it measures: no numpy for the few records of a request, one `select(2)` call without the
    `selectors` wrapper, and the in-flight total kept as a count."""
    hist = Histogram()
    parts = sorted(spec.leaders)
    groups = _by_leader(spec.leaders, spec.connections)
    conns = _connect(groups)
    conn_of = {p: conns[key] for key, ps in groups.items() for p in ps}
    by_fd = {conn.sock.fileno(): conn for conn in conns.values()}
    socks = [conn.sock for conn in conns.values()]
    batch_records = spec.batch_records
    record_size = spec.record_size
    data, _ = payload_pool(record_size, batch_records, spec.seed)
    framers = {p: wire.SinglePartitionFrames(spec.topic, p, spec.acks) for p in parts}
    templates: dict[tuple[int, int], bytearray] = {}
    interval = 1e9 / spec.rate
    linger = int(spec.linger_ms * 1e6)
    num_records, inflight, acks0 = spec.num_records, spec.inflight, spec.acks == 0
    start = time.monotonic_ns() + 20_000_000
    counters[STARTED] = start
    sent_records = 0
    outstanding = 0  # requests sent and not yet answered, over all connections
    rotate = 0
    deadline = time.monotonic_ns() + int(spec.time_limit * 1e9)
    monotonic_ns = time.monotonic_ns
    # select(2), not epoll or poll: their timeouts are whole milliseconds, and Python rounds a shorter wait
    # up to 1 ms, which would send every record due within that millisecond up to 1 ms late.
    select = _select.select
    while sent_records < num_records or outstanding:
        now = monotonic_ns()
        if now > deadline:
            break
        due = min(num_records, int((now - start) / interval) + 1) if now >= start else 0
        pending = due - sent_records
        oldest = start + int(sent_records * interval)
        blocked = False
        if pending > 0 and (pending >= batch_records or now - oldest >= linger or due == num_records):
            p = parts[rotate % len(parts)]
            conn = conn_of[p]
            if len(conn.pending) < inflight:
                n = min(pending, batch_records)
                frame = templates.get((p, n))
                if frame is None:
                    keys = None
                    if spec.key_times:
                        keys = start + (np.arange(sent_records, sent_records + n) * interval).astype(np.int64)
                    frame = framers[p].frame(batch_of(data, record_size, n, keys))
                    if not spec.key_times:  # same records each time: encode once per (partition, count)
                        templates[(p, n)] = frame
                conn.send(frame, wire.PRODUCE, wire.PRODUCE_V, (sent_records, n))
                if acks0:
                    conn.pending.pop()
                    _count_scheduled(counters, hist, start, interval, sent_records, n, record_size, 0)
                else:
                    outstanding += 1
                sent_records += n
                rotate += 1
                continue
            blocked = True
        # wait for a response or for the next record's due time / linger expiry
        if sent_records < num_records and not blocked:
            next_due = start + int((sent_records + (pending if pending > 0 else 0)) * interval)
            wake = min(next_due, oldest + linger) if pending > 0 else next_due
            timeout = max(0.0, (wake - monotonic_ns()) / 1e9)
        else:
            timeout = 1.0
        readable, _, _ = select(socks, (), (), timeout)
        for sock in readable:
            conn = by_fd[sock.fileno()]
            while conn.pending:
                (_, _, _, (first, n)), frame = conn.recv()
                outstanding -= 1
                errors = wire.produce_errors(frame)
                _count_scheduled(counters, hist, start, interval, first, 0 if errors else n, record_size, errors)
                if not conn.has_buffered_frame():
                    break
    for conn in conns.values():
        conn.close()
    return hist


def _scheduled_compiled(spec: ProduceSpec, counters) -> Histogram:
    """`_scheduled`'s schedule and batching through the compiled loop (perf/fixedrate.py)."""
    from perf import fixedrate
    parts = sorted(spec.leaders)
    groups = _by_leader(spec.leaders, spec.connections)
    conns = _connect(groups)
    keys = list(conns)
    conn_of = [next(i for i, key in enumerate(keys) if p in groups[key]) for p in parts]
    data, _ = payload_pool(spec.record_size, spec.batch_records, spec.seed)
    try:
        return fixedrate.scheduled(spec, counters, [conns[key] for key in keys], conn_of, data)
    finally:
        for conn in conns.values():
            conn.close()


def _count_scheduled(counters, hist: Histogram, start: int, interval: float, first: int, n: int,
                     record_size: int, errors: int) -> None:
    """Records first..first+n-1 (due at start + i * interval) acknowledged now."""
    if n:
        now = time.monotonic_ns()
        if n == 1:
            hist.record(now - start - int(first * interval))
        elif n <= FEW:  # a list: the histogram takes a few values without numpy
            hist.record_many([now - start - int(i * interval) for i in range(first, first + n)])
        else:
            hist.record_many(now - start - (np.arange(first, first + n) * interval).astype(np.int64))
        counters[LAST] = now
        counters[BYTES] += n * record_size
    counters[RECORDS] += n
    counters[ERRORS] += errors
    counters[REQUESTS] += 1


def run_consumer(spec: ConsumeSpec, counters, totals, results) -> None:
    """Process entry point: fetch until `totals` (all consumers' record counters) reach the target."""
    try:
        hist = _consume(spec, counters, totals)
        results.put(("ok", hist.to_state()))
    except Exception as exc:
        counters[ERRORS] += 1
        results.put(("error", f"{type(exc).__name__}: {exc}"))


def _consume(spec: ConsumeSpec, counters, totals) -> Histogram:
    hist = Histogram()
    groups = _by_leader(spec.leaders, spec.connections)
    conns = _connect(groups)
    offsets = {addr: {p: spec.start_offsets.get(p, 0) for p in parts} for addr, parts in groups.items()}
    sel = selectors.DefaultSelector()
    for addr, conn in conns.items():
        sel.register(conn.sock, selectors.EVENT_READ, addr)
        conn.send(wire.fetch_frame(spec.topic, offsets[addr], spec.max_wait_ms, spec.partition_max_bytes),
                  wire.FETCH, wire.FETCH_V)
    deadline = time.monotonic() + spec.time_limit
    counters[STARTED] = time.monotonic_ns()
    while time.monotonic() < deadline:
        if sum(t[RECORDS] for t in totals) >= spec.num_records:
            break
        for key, _ in sel.select(0.5):
            addr = key.data
            conn = conns[addr]
            if spec.discard_records:
                parts = conn.recv_fetch_discarding()[1]
                now = time.monotonic_ns()
            else:
                _, frame = conn.recv()
                now = time.monotonic_ns()
                parts = walk_and_time(frame, spec.key_times, hist, now)
            for partition, error, records, nbytes, next_offset, spans in parts:
                if error:
                    counters[ERRORS] += 1
                    continue
                if next_offset >= 0:
                    offsets[addr][partition] = next_offset
                counters[RECORDS] += records
                counters[BYTES] += nbytes
                if records:
                    counters[LAST] = now
            counters[REQUESTS] += 1
            conn.send(wire.fetch_frame(spec.topic, offsets[addr], spec.max_wait_ms, spec.partition_max_bytes),
                      wire.FETCH, wire.FETCH_V)
    sel.close()
    for conn in conns.values():
        conn.close()
    return hist


def walk_and_time(frame, key_times: bool, hist: Histogram, now: int):
    parts = wire.walk_fetch(frame, want_batches=key_times)
    if key_times:
        for part in parts:
            for start, end in part[5]:
                keys = wire.batch_keys(frame, start, end)
                sched = np.array([_KEY.unpack(k)[0] for k in keys if len(k) == 8], np.int64)
                hist.record_many(now - sched)
    return parts
