"""Produce and fetch through real clients against the real multiprocess broker."""

import os
import time

import pytest

import hotpath
from tests.storage.storage_helpers import descriptors_under
from tools.testing import BrokerProcess

N_RECORDS = 100_000
PARTITIONS = 8


def _value(p: int, i: int) -> bytes:
    return b"p%d-%07d-" % (p, i) + b"x" * (i % 50)


def _create(bootstrap: str, topic: str, partitions: int = PARTITIONS, **configs) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    fut = admin.create_topics([NewTopic(topic, partitions, 1, config={k: str(v) for k, v in configs.items()})])
    fut[topic].result(15)


def produce_confluent(bootstrap: str, topic: str, per_partition: int, acks="all", **extra) -> list:
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": bootstrap, "acks": acks, "linger.ms": 5, **extra})
    acked = []
    errors = []

    def cb(err, msg):
        if err is None:
            acked.append((msg.partition(), msg.offset(), msg.value()))
        else:
            errors.append(err)

    for i in range(per_partition):
        for part in range(PARTITIONS):
            while True:
                try:
                    p.produce(topic, value=_value(part, i), key=b"k%d" % i, partition=part, on_delivery=cb)
                    break
                except BufferError:
                    p.poll(0.05)
        if i % 1000 == 0:
            p.poll(0)
    assert p.flush(60) == 0
    assert not errors, errors[:3]
    return acked


def consume_confluent(bootstrap: str, topic: str, expected: int, partitions=PARTITIONS) -> dict:
    """Every record of the topic up to each partition's high watermark (at least `expected` in all)."""
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "unused", "enable.auto.commit": False,
                  "fetch.wait.max.ms": 100})
    ends = {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in range(partitions)}
    assert sum(ends.values()) >= expected, (ends, expected)
    c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    got: dict[int, list] = {p: [] for p in range(partitions)}
    done = {p for p in range(partitions) if ends[p] == 0}
    deadline = time.time() + 120
    while len(done) < partitions and time.time() < deadline:
        for m in c.consume(10000, 0.5):
            assert m.error() is None, m.error()
            got[m.partition()].append((m.offset(), m.value()))
            if m.offset() + 1 >= ends[m.partition()]:
                done.add(m.partition())
    c.close()
    return got


def check_partitions(got: dict, per_partition: int) -> None:
    for part, recs in got.items():
        assert [o for o, _ in recs] == list(range(per_partition)), f"partition {part} offsets"
        assert [v for _, v in recs] == [_value(part, i) for i in range(per_partition)], f"partition {part} order"


@pytest.mark.parametrize("net,io", [(1, 1), (1, 2), (1, 4), (2, 1), (2, 2), (2, 4)])
def test_confluent_round_trip(tmp_path, net, io):
    with BrokerProcess(data_dir=str(tmp_path), network_threads=net, io_threads=io) as b:
        _create(b.bootstrap, "rt")
        per = N_RECORDS // PARTITIONS
        acked = produce_confluent(b.bootstrap, "rt", per)
        assert len(acked) == N_RECORDS
        check_partitions(consume_confluent(b.bootstrap, "rt", N_RECORDS), per)


@pytest.mark.parametrize("net,io", [(1, 1), (1, 2), (1, 4), (2, 1), (2, 2), (2, 4)])
def test_kafka_python_round_trip(tmp_path, net, io):
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition

    with BrokerProcess(data_dir=str(tmp_path), network_threads=net, io_threads=io) as b:
        _create(b.bootstrap, "kp")
        per = N_RECORDS // PARTITIONS
        prod = KafkaProducer(bootstrap_servers=b.bootstrap, acks="all", linger_ms=5, batch_size=65536)
        futures = []
        for i in range(per):
            for part in range(PARTITIONS):
                futures.append(prod.send("kp", value=_value(part, i), partition=part))
        prod.flush(120)
        offsets = [f.get(timeout=30) for f in futures]
        assert all(md.offset >= 0 for md in offsets)
        prod.close()
        cons = KafkaConsumer(bootstrap_servers=b.bootstrap, enable_auto_commit=False, fetch_max_wait_ms=100,
                             consumer_timeout_ms=10000)
        cons.assign([TopicPartition("kp", p) for p in range(PARTITIONS)])
        cons.seek_to_beginning()
        got = {p: [] for p in range(PARTITIONS)}
        n = 0
        for m in cons:
            got[m.partition].append((m.offset, m.value))
            n += 1
            if n == N_RECORDS:
                break
        cons.close()
        check_partitions(got, per)


def test_fetch_from_middle_and_list_offsets(broker):
    from confluent_kafka import Consumer, TopicPartition

    _create(broker.bootstrap, "mid", partitions=PARTITIONS)
    per = 2000
    produce_confluent(broker.bootstrap, "mid", per)
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "unused", "enable.auto.commit": False})
    low, high = c.get_watermark_offsets(TopicPartition("mid", 3), timeout=10)
    assert (low, high) == (0, per)
    c.assign([TopicPartition("mid", 3, 1234)])
    first = None
    while first is None:
        m = c.poll(5)
        assert m is not None
        first = m
    assert first.offset() == 1234 and first.value() == _value(3, 1234)
    c.close()


def test_offsets_for_times_finds_the_record_inside_a_compressed_batch(broker):
    """ListOffsets by timestamp answers with the first record whose own timestamp reaches the target,
    also when it sits in the middle of a batch the producer compressed."""
    from confluent_kafka import Consumer, Producer, TopicPartition

    _create(broker.bootstrap, "by-time", partitions=1)
    p = Producer({"bootstrap.servers": broker.bootstrap, "compression.type": "lz4", "linger.ms": 500})
    base = 1_700_000_000_000
    for i in range(100):  # one batch: record i stamped base + 10 * i
        p.produce("by-time", b"by-time record %d " % i * 8, partition=0, timestamp=base + 10 * i)
    assert p.flush(15) == 0
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "unused", "enable.auto.commit": False})
    try:
        for target, want in ((base - 1, 0), (base + 10 * 37, 37), (base + 10 * 37 + 1, 38), (base + 990, 99),
                             (base + 991, -1)):
            (tp,) = c.offsets_for_times([TopicPartition("by-time", 0, target)], timeout=10)
            assert tp.error is None and tp.offset == want, (target, tp)
    finally:
        c.close()
    d = os.path.join(broker.data_dir, "by-time-0")
    (seg,) = [f for f in os.listdir(d) if f.endswith(".log")]
    with open(os.path.join(d, seg), "rb") as f:
        scan = hotpath.scan_batches(f.read())  # stops at the segment's preallocated zero tail
    batches = [(int(b), int(b + delta), int(attrs) & 0x07)  # (first offset, last offset, codec) per batch
               for b, delta, attrs in zip(scan.base_offset, scan.last_offset_delta, scan.attributes)]
    # librdkafka mostly sends the 100 records as one batch, under load at times the first few on their own:
    # either way the records the lookups found above lie inside an lz4 batch, after its first record
    assert batches[-1][1] == 99, batches
    for offset in (37, 38, 99):
        ((first, last, codec),) = [b for b in batches if b[0] <= offset <= b[1]]
        assert codec == 3 and first < offset, batches


def test_list_offsets_max_timestamp_finds_the_record_holding_it(broker):
    """ListOffsets -3 (KIP-734, AdminClient.list_offsets with OffsetSpec.max_timestamp): the first record
    with the largest timestamp, wherever it sits in its batch; -1 on an empty partition."""
    from confluent_kafka import Producer, TopicPartition
    from confluent_kafka.admin import AdminClient, OffsetSpec

    _create(broker.bootstrap, "max-ts", partitions=2)
    p = Producer({"bootstrap.servers": broker.bootstrap, "compression.type": "zstd", "linger.ms": 500})
    stamps = [5000, 9000, 7000, 9000, 3000] * 20  # the largest first at offset 1, again later
    for i, ts in enumerate(stamps):
        p.produce("max-ts", b"max-ts record %d " % i * 8, partition=0, timestamp=1_700_000_000_000 + ts)
    assert p.flush(15) == 0
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    asked = {TopicPartition("max-ts", 0): OffsetSpec.max_timestamp(),
             TopicPartition("max-ts", 1): OffsetSpec.max_timestamp()}
    got = {tp.partition: f.result(10) for tp, f in admin.list_offsets(asked).items()}
    assert (got[0].offset, got[0].timestamp) == (1, 1_700_000_009_000)
    assert got[1].offset == -1


def test_fetch_file_ranges_do_not_leak_descriptors(broker):
    """Fetch responses carry duplicated segment descriptors; every one is closed once sent."""
    import psutil

    _create(broker.bootstrap, "fds", partitions=PARTITIONS)
    produce_confluent(broker.bootstrap, "fds", 500)
    net = psutil.Process(broker.worker_pids("network")[0])
    consume_confluent(broker.bootstrap, "fds", 500 * PARTITIONS)  # warms readers and connections
    before = net.num_fds()
    for _ in range(5):
        consume_confluent(broker.bootstrap, "fds", 500 * PARTITIONS)
    time.sleep(0.5)
    assert net.num_fds() - before < 16, (before, net.num_fds())


def test_closed_segments_cost_their_owner_one_descriptor_each(broker):
    """A partition keeps every segment of its retention; the owner holds each closed one's read-only map
    (a descriptor of its own), and maps its indexes when a lookup needs them. Consumers still read the
    oldest segments and ListOffsets by time still finds offsets in them, also after a restart. A network
    worker that served the whole history keeps only the last closed segments it read open."""
    from confluent_kafka import Producer, TopicPartition
    from confluent_kafka.admin import AdminClient, OffsetSpec

    _create(broker.bootstrap, "many-segs", partitions=1, **{"segment.bytes": 16384, "retention.ms": -1})
    p = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all", "linger.ms": 0, "batch.size": 4096})
    n, t0 = 600, 1_700_000_000_000
    for i in range(n):
        p.produce("many-segs", b"%04d-" % i + b"s" * 1000, partition=0, timestamp=t0 + i * 1000)
    assert p.flush(30) == 0
    part_dir = os.path.join(broker.data_dir, "many-segs-0")

    def check() -> None:
        closed = len([f for f in os.listdir(part_dir) if f.endswith(".log")]) - 1
        assert closed >= 20
        deadline = time.monotonic() + 10  # a roll's background flush holds descriptors while it runs
        while True:
            held = sum(len(descriptors_under(part_dir, pid)) for pid in broker.worker_pids("io").values())
            if held <= closed + 4 or time.monotonic() > deadline:  # active: its file and 3 maps
                break
            time.sleep(0.1)
        assert held <= closed + 4, (held, closed)
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        tp = TopicPartition("many-segs", 0)
        for i in (3, 250, 597):
            found = admin.list_offsets({tp: OffsetSpec.for_timestamp(t0 + i * 1000 - 500)})[tp].result(10)
            assert (found.offset, found.timestamp) == (i, t0 + i * 1000)
        got = consume_confluent(broker.bootstrap, "many-segs", n, partitions=1)[0]
        assert [v[:4] for _, v in got] == [b"%04d" % i for i in range(n)]
        net = broker.worker_pids("network")[0]
        deadline = time.monotonic() + 10  # closed between requests, within a second of the last one
        while len(descriptors_under(part_dir, net)) > 4 * 3 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(descriptors_under(part_dir, net)) <= 4 * 3  # two closed segments and the active one

    check()
    assert broker.stop() == 0
    broker.start()
    check()


def test_long_poll_returns_when_data_arrives(broker):
    """A consumer parked on an empty partition (fetch.wait.max.ms=5000) gets a new record promptly."""
    import threading

    from confluent_kafka import Consumer, Producer, TopicPartition

    _create(broker.bootstrap, "lp", partitions=1)
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "unused", "fetch.wait.max.ms": 5000,
                  "enable.auto.commit": False})
    c.assign([TopicPartition("lp", 0, 0)])
    assert c.poll(1.5) is None  # connected and parked, nothing yet
    p = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 0})
    sent = {}

    def send():
        sent["t"] = time.monotonic()
        p.produce("lp", b"wake")
        p.flush(5)

    threading.Timer(0.5, send).start()
    m = None
    while m is None:
        m = c.poll(10)
    latency = time.monotonic() - sent["t"]
    assert m.value() == b"wake"
    assert latency < 1.5, f"long poll answered after {latency:.2f}s"
    c.close()


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
def test_compressed_batches_are_stored_and_served_as_produced(broker, codec):
    """Clients compress; the broker validates header and CRC, stores the batch as is and serves it back."""
    from confluent_kafka import Consumer, Producer, TopicPartition

    topic = f"z-{codec}"
    _create(broker.bootstrap, topic, partitions=1)
    p = Producer({"bootstrap.servers": broker.bootstrap, "compression.type": codec, "linger.ms": 100})
    values = [b"%s-%06d-" % (codec.encode(), i) + b"abc" * (i % 40) for i in range(3000)]
    for v in values:
        p.produce(topic, v, partition=0)
    assert p.flush(30) == 0
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "unused", "enable.auto.commit": False})
    c.assign([TopicPartition(topic, 0, 0)])
    got = []
    deadline = time.time() + 30
    while len(got) < len(values) and time.time() < deadline:
        for m in c.consume(1000, 0.5):
            assert m.error() is None, m.error()
            got.append(m.value())
    c.close()
    assert got == values
    d = os.path.join(broker.data_dir, f"{topic}-0")
    codecs: dict[int, int] = {}  # codec id -> records stored in batches of that codec
    for seg in sorted(f for f in os.listdir(d) if f.endswith(".log")):
        with open(os.path.join(d, seg), "rb") as f:
            data = f.read()
        pos = 0
        while pos + 61 <= len(data):
            length = int.from_bytes(data[pos + 8:pos + 12], "big")
            if length == 0:
                break  # preallocated tail
            attrs = int.from_bytes(data[pos + 21:pos + 23], "big")
            count = int.from_bytes(data[pos + 57:pos + 61], "big")
            codecs[attrs & 0x07] = codecs.get(attrs & 0x07, 0) + count
            pos += 12 + length
    codec_id = {"gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}[codec]
    # librdkafka sends a batch uncompressed when compressing would not shrink it (a few short records; how
    # many land in such batches depends on timing); everything else is stored with the producer's codec.
    assert set(codecs) <= {0, codec_id}, codecs
    assert sum(codecs.values()) == len(values), codecs
    assert codecs.get(codec_id, 0) >= len(values) * 0.95, "the stored batches keep the producer's compression"


def test_workers_idle_after_traffic_without_cpu(tmp_path):
    """Every doorbell rung during traffic is drained: a worker left with a readable bell would wake at
    once from every wait and spin. After produce and fetch through 2 network and 2 I/O workers, each
    worker stays asleep."""
    import psutil

    b = BrokerProcess(data_dir=str(tmp_path / "d"), network_threads=2, io_threads=2)
    b.start()
    try:
        _create(b.bootstrap, "idle")
        acked = produce_confluent(b.bootstrap, "idle", 200, acks=1)
        assert len(acked) == 200 * PARTITIONS
        check_partitions(consume_confluent(b.bootstrap, "idle", 200 * PARTITIONS), 200)
        workers = [psutil.Process(pid) for role in ("network", "io") for pid in b.worker_pids(role).values()]
        assert len(workers) == 4
        time.sleep(0.5)  # the clients' connections close; timers of the traffic run out
        before = [sum(w.cpu_times()[:2]) for w in workers]
        time.sleep(2.0)
        used = [sum(w.cpu_times()[:2]) - t for w, t in zip(workers, before)]
        assert max(used) < 0.1, used
    finally:
        b.close()


def test_a_late_long_poll_wakeup_leaves_the_network_workers_asleep(tmp_path):
    """An owner that read a parked fetch's watch flag just before the network worker cleared it rings the
    worker's partition-table bell after the worker drained it. That ring is rung here from outside, on
    every network worker's bell, with no fetch parked: each worker wakes once, empties the bell and sleeps
    again, instead of finding it readable on every pass and spinning."""
    import glob

    import psutil

    from broker.shm.doorbell import Doorbell

    b = BrokerProcess(data_dir=str(tmp_path / "d"), network_threads=2, io_threads=2)
    b.start()
    try:
        workers = [psutil.Process(pid) for pid in b.worker_pids("network").values()]
        bells = sorted(glob.glob(f"/dev/shm/hpb-{b.proc.pid}-parts*.w*"))
        assert len(workers) == 2 and len(bells) == 2, bells
        for path in bells:
            bell = Doorbell.attach(os.path.basename(path))
            bell.ring()
            bell.close()
        time.sleep(0.2)
        before = [sum(w.cpu_times()[:2]) for w in workers]
        time.sleep(1.5)
        used = [sum(w.cpu_times()[:2]) - t for w, t in zip(workers, before)]
        assert max(used) < 0.1, used
        _create(b.bootstrap, "after-bell")
        acked = produce_confluent(b.bootstrap, "after-bell", 10, acks=1)
        assert len(acked) == 10 * PARTITIONS
    finally:
        b.close()


def test_a_partition_s_records_hold_exactly_one_batch(broker):
    """Produce v3+ carries one record batch per partition: records with a second batch behind the first are
    refused with INVALID_RECORD and none of them is written, while the request's other partition is
    appended as usual."""
    from perf import wire

    conn = wire.Connection(*wire.parse_bootstrap(broker.bootstrap))
    try:
        wire.ensure_topic(conn, "one-batch", 2)
        first = hotpath.build_records_batch([(None, b"a"), (None, b"b")])
        second = hotpath.build_records_batch([(None, b"c")])
        conn.send(wire.produce_frame("one-batch", {0: first + second, 1: first}, acks=1), wire.PRODUCE,
                  wire.PRODUCE_V)
        _, frame = conn.recv()
        _, body = wire.decode_response(wire.PRODUCE, wire.PRODUCE_V, bytes(frame))
        parts = {p["index"]: p for p in body["responses"][0]["partition_responses"]}
        assert parts[0]["error_code"] == 87, parts[0]  # INVALID_RECORD
        assert parts[1]["error_code"] == 0 and parts[1]["base_offset"] == 0, parts[1]
    finally:
        conn.close()
    got = consume_confluent(broker.bootstrap, "one-batch", 2, partitions=2)
    assert got == {0: [], 1: [(0, b"a"), (1, b"b")]}
