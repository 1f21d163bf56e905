"""Log compaction (cleanup.policy=compact) against a real broker, through real clients over a socket.

Keyed records go in with confluent-kafka (idempotent, uncompressed and with every codec), the broker's
cleaner compacts the closed segments on its own schedule (log.cleaner.backoff.ms), and what confluent-kafka,
kafka-python and kcat read back is compared record by record with what the producer's delivery reports
said was written at each offset: per key only the last record below the active segment, at its original
offset; everything in the active segment; tombstones until delete.retention.ms has passed; the same after a
restart; a read from an offset compaction removed starts at the next record that is left.
"""

from __future__ import annotations

import base64
import json
import os
import random
import re
import shutil
import subprocess
import time
import uuid

import pytest

from broker.producers.state import MAX_BATCHES
from tests.integration import kafkajs
from tools.testing import BrokerProcess

PARTITIONS = 2
KEYS = 60
RECORDS = 3000  # per topic: about 8 segments of 8 KiB per partition uncompressed, 3-5 compressed
TAIL = 2 * MAX_BATCHES  # see produce_compactable
CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]
COMPACT = {"cleanup.policy": "compact", "segment.bytes": "8192", "min.cleanable.dirty.ratio": "0.01"}
COMPACTED_RE = re.compile(r"partition compacted .*\btopic=(\S+) partition=(\d+) upto=(\d+) "
                          r"records_read=(\d+) records_removed=(\d+)")

Records = dict[int, tuple[bytes | None, bytes | None]]  # offset -> (key, value), one partition


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    b = BrokerProcess(data_dir=str(tmp_path_factory.mktemp("compaction") / "data"), io_threads=2,
                      settings={"log.cleaner.backoff.ms": 200, "metrics.listener": "127.0.0.1:0"})
    b.start()
    try:
        yield b
    finally:
        b.close()


# --- helpers -----------------------------------------------------------------------------------------------

def create(b: BrokerProcess, topic: str, partitions: int = PARTITIONS, **extra: str) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": b.bootstrap})
    admin.create_topics([NewTopic(topic, partitions, 1, config={**COMPACT, **extra})])[topic].result(30)


class Writer:
    """A confluent-kafka producer that records, per partition, what each delivery report says is at each
    offset."""

    def __init__(self, b: BrokerProcess, **conf):
        from confluent_kafka import Producer

        self.producer = Producer({"bootstrap.servers": b.bootstrap, "acks": "all", "linger.ms": 2,
                                  "batch.size": 4096, **conf})
        self.delivered: dict[int, Records] = {}
        self.errors: list = []

    def _report(self, err, msg) -> None:
        if err is not None:
            self.errors.append(err)
        else:
            self.delivered.setdefault(msg.partition(), {})[msg.offset()] = (msg.key(), msg.value())

    def send(self, topic: str, key: bytes, value: bytes | None, partition: int | None = None) -> None:
        kw = {} if partition is None else {"partition": partition}
        self.producer.produce(topic, key=key, value=value, on_delivery=self._report, **kw)
        self.producer.poll(0)

    def flush(self) -> None:
        assert self.producer.flush(30) == 0
        assert self.errors == []


def active_base(b: BrokerProcess, topic: str, partition: int) -> int:
    """The base offset of the partition's active segment: its largest `<base>.log`."""
    directory = os.path.join(b.data_dir, f"{topic}-{partition}")
    return max(int(n[:-4]) for n in os.listdir(directory) if re.fullmatch(r"\d{20}\.log", n))


def segment_bases(b: BrokerProcess, topic: str, partition: int) -> list[int]:
    directory = os.path.join(b.data_dir, f"{topic}-{partition}")
    return sorted(int(n[:-4]) for n in os.listdir(directory) if re.fullmatch(r"\d{20}\.log", n))


def passes(b: BrokerProcess, topic: str) -> list[tuple[int, int, int, int]]:
    """(partition, upto, records_read, records_removed) of every "partition compacted" line for `topic`."""
    out = []
    for line in list(b.output):
        m = COMPACTED_RE.search(line)
        if m and m.group(1) == topic:
            out.append(tuple(int(g) for g in m.groups()[1:]))
    return out


def wait_compacted(b: BrokerProcess, topic: str, partitions: int = PARTITIONS, after: int = 0,
                   timeout: float = 20.0) -> dict[int, int]:
    """Wait until, for every partition, a pass logged after the first `after` lines of this topic's passes
    cleaned everything below the active segment; returns the active base offsets."""
    deadline = time.monotonic() + timeout
    while True:
        bases = {p: active_base(b, topic, p) for p in range(partitions)}
        assert all(bases.values()), f"no segment of {topic} rolled: nothing for the cleaner"
        done = {}
        for part, upto, _, _ in passes(b, topic)[after:]:
            done[part] = max(done.get(part, 0), upto)
        if all(done.get(p, -1) >= bases[p] for p in range(partitions)):
            assert done == bases, (done, bases)  # a pass never cleans into the active segment
            return bases
        assert time.monotonic() < deadline, f"{topic} not compacted up to {bases} (passes {done}):\n" \
                                            + b.log_tail(40)
        time.sleep(0.1)


def expected(delivered: Records, base: int, expire_tombstones: bool = False) -> list[tuple]:
    """What compaction leaves of one partition whose active segment starts at `base`: below it the last
    record of each key (without its tombstone when `expire_tombstones`), from it on everything."""
    last: dict[bytes, int] = {}
    for off in sorted(delivered):
        if off < base:
            last[delivered[off][0]] = off
    out = []
    for off in sorted(delivered):
        key, value = delivered[off]
        if off >= base or (last[key] == off and not (expire_tombstones and value is None)):
            out.append((off, key, value))
    return out


def consume_confluent(b: BrokerProcess, topic: str, partitions: int = PARTITIONS) -> dict[int, list[tuple]]:
    """Every record of every partition from the beginning, read with confluent-kafka (assigned, no group)."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "unused", "enable.auto.commit": False,
                  "enable.partition.eof": True, "fetch.wait.max.ms": 100})
    got: dict[int, list[tuple]] = {p: [] for p in range(partitions)}
    try:
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
        eof: set[int] = set()
        deadline = time.monotonic() + 20
        while len(eof) < partitions:
            assert time.monotonic() < deadline, f"confluent-kafka did not reach the end of {topic}: {eof}"
            m = c.poll(0.2)
            if m is None:
                continue
            if m.error():
                assert m.error().code() == KafkaError._PARTITION_EOF, m.error()
                eof.add(m.partition())
                continue
            got[m.partition()].append((m.offset(), m.key(), m.value()))
    finally:
        c.close()
    return got


def consume_kafka_python(b: BrokerProcess, topic: str, partitions: int = PARTITIONS) -> dict[int, list[tuple]]:
    """The same with kafka-python: assigned partitions, seek_to_beginning, read up to the end offsets."""
    from kafka import KafkaConsumer, TopicPartition

    c = KafkaConsumer(bootstrap_servers=b.bootstrap, group_id=None, enable_auto_commit=False,
                      fetch_max_wait_ms=100)
    got: dict[int, list[tuple]] = {p: [] for p in range(partitions)}
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        c.assign(tps)
        c.seek_to_beginning()
        ends = c.end_offsets(tps)
        deadline = time.monotonic() + 20
        while any(c.position(tp) < ends[tp] for tp in tps):
            assert time.monotonic() < deadline, f"kafka-python did not reach the end of {topic}"
            for tp, msgs in c.poll(timeout_ms=200).items():
                got[tp.partition].extend((m.offset, m.key, m.value) for m in msgs)
    finally:
        c.close()
    return got


def check_partition(got: list[tuple], delivered: Records, want: list[tuple]) -> None:
    offsets = [o for o, _, _ in got]
    assert all(a < b for a, b in zip(offsets, offsets[1:])), "offsets not strictly increasing"
    for off, key, value in got:
        assert delivered.get(off) == (key, value), f"offset {off}: read {(key, value)}, written {delivered.get(off)}"
    assert got == want


# --- keyed records, every codec ----------------------------------------------------------------------------

def produce_compactable(b: BrokerProcess, topic: str, codec: str) -> tuple[Writer, dict[bytes, bytes | None]]:
    """RECORDS records over KEYS keys (every 11th a tombstone), idempotent; then per partition a tail of
    TAIL single-record batches of keys of their own, large and incompressible so that they roll a segment
    every two records; then three records of one key (the last a tombstone) that stay in the active segment.

    The tail is there because the cleaner keeps the producer's last batch in the partition whole when all its
    records are superseded: a pass that runs while the producer writes leaves such a batch, and only a pass
    after the producer wrote on removes it.
    With the tail, the last pass runs after the last roll, when the protected batches hold only records that
    survive anyway, so the result is exactly what the rules say wherever the segments rolled."""
    w = Writer(b, **{"enable.idempotence": True, "compression.type": codec})
    rng = random.Random(codec)
    last: dict[bytes, bytes | None] = {}
    for i in range(RECORDS):
        key = f"key-{rng.randrange(KEYS):03d}".encode()
        value = None if i % 11 == 0 else f"{key.decode()}={i}:{rng.getrandbits(64):016x}".encode()
        w.send(topic, key, value)
        last[key] = value
    w.flush()
    for p in range(PARTITIONS):
        for j in range(TAIL):
            key, value = f"tail-{p}-{j}".encode(), rng.randbytes(3000)
            w.send(topic, key, value, partition=p)
            w.flush()  # one batch each
            last[key] = value
        for value in (b"first", b"second", None):
            w.send(topic, f"active-{p}".encode(), value, partition=p)
            w.flush()
            last[f"active-{p}".encode()] = value
    return w, last


@pytest.fixture(scope="module")
def compacted(broker):
    """One compacted topic per codec, produced together and waited for together (the cleaner works through
    them on its own schedule): codec -> (topic, delivered records per partition, last value per key,
    active base offset per partition)."""
    out = {}
    for codec in CODECS:
        topic = f"compact-{codec}"
        create(broker, topic)
        w, last = produce_compactable(broker, topic, codec)
        out[codec] = (topic, w.delivered, last)
    return {codec: (topic, delivered, last, wait_compacted(broker, topic))
            for codec, (topic, delivered, last) in out.items()}


@pytest.mark.parametrize("codec", CODECS)
def test_compaction_keeps_the_last_record_of_each_key_at_its_offset(broker, compacted, codec):
    topic, delivered, last, bases = compacted[codec]
    removed = sum(r for _, _, _, r in passes(broker, topic))
    assert removed > 0
    by_confluent = consume_confluent(broker, topic)
    by_kafka_python = consume_kafka_python(broker, topic)
    total = 0
    for p in range(PARTITIONS):
        want = expected(delivered[p], bases[p])
        in_active = [k for o, (k, _) in sorted(delivered[p].items()) if o >= bases[p]]
        assert in_active[-3:] == [f"active-{p}".encode()] * 3  # a key repeated in the active segment
        for got in (by_confluent[p], by_kafka_python[p]):
            check_partition(got, delivered[p], want)
            below = [k for o, k, _ in got if o < bases[p]]
            assert len(below) == len(set(below)), "a key appears twice in the cleaned segments"
            assert [r for r in got if r[0] >= bases[p]] == sorted(
                (o, k, v) for o, (k, v) in delivered[p].items() if o >= bases[p])  # the active segment as written
        total += len(by_confluent[p])
    produced = sum(len(d) for d in delivered.values())
    assert total < produced
    # the passes' records_removed add up to what is gone: a record is counted by the pass that removes it
    assert removed == produced - total
    # the last value of every key is the one produced last (tombstones included: delete.retention.ms is a day)
    final = {}
    for p in range(PARTITIONS):
        for _, k, v in by_confluent[p]:
            final[k] = v
    assert final == last


def test_compacted_partitions_read_the_same_after_a_restart(broker, compacted):
    topics = [compacted[c][0] for c in ("none", "zstd")]
    before = {t: consume_confluent(broker, t) for t in topics}
    files = {(t, p): segment_bases(broker, t, p) for t in topics for p in range(PARTITIONS)}
    assert broker.stop() == 0
    broker.start()
    for t in topics:
        assert consume_confluent(broker, t) == before[t]
        assert consume_kafka_python(broker, t) == before[t]
    assert {(t, p): segment_bases(broker, t, p) for t in topics for p in range(PARTITIONS)} == files
    for codec in ("none", "zstd"):
        topic, delivered, _, bases = compacted[codec]
        for p in range(PARTITIONS):
            assert before[topic][p] == expected(delivered[p], bases[p])


# --- tombstones --------------------------------------------------------------------------------------------

def test_tombstones_go_after_delete_retention(broker):
    """Keys, then tombstones for some, then records of keys of their own to roll segments: once a pass runs
    after delete.retention.ms has passed for the tombstones' segments, the deleted keys have no record left
    below the active segment, and the others keep their last value."""
    topic = "compact-tombstones"
    create(broker, topic, partitions=1, **{"delete.retention.ms": "1000"})
    w = Writer(broker)  # not idempotent: no producer state keeps batches whole
    for rnd in range(3):
        for k in range(40):
            w.send(topic, f"k{k:02d}".encode(), f"k{k:02d}-round{rnd}".encode())
    w.flush()
    for k in range(15):
        w.send(topic, f"k{k:02d}".encode(), None)
    w.flush()
    filler = b"f" * 200
    n = 0

    def fill(count: int) -> None:
        nonlocal n
        for _ in range(count):
            w.send(topic, f"filler-{n:04d}".encode(), filler)
            n += 1
        w.flush()

    fill(150)  # about 4 segments: the tombstones' segment closes
    wait_compacted(broker, topic, 1)
    time.sleep(1.5)  # delete.retention.ms past the newest record of every closed segment
    first_base = active_base(broker, topic, 0)
    seen = len(passes(broker, topic))
    fill(100)  # new closed segments: the partition is dirty again, and the next pass runs after the horizon
    assert active_base(broker, topic, 0) > first_base
    base = wait_compacted(broker, topic, 1, after=seen)[0]

    delivered = w.delivered[0]
    tombstoned = {f"k{k:02d}".encode() for k in range(15)}
    assert all(o < base for o, (k, _) in delivered.items() if k in tombstoned)
    want = expected(delivered, base, expire_tombstones=True)
    for got in (consume_confluent(broker, topic, 1)[0], consume_kafka_python(broker, topic, 1)[0]):
        check_partition(got, delivered, want)
        keys = {k for _, k, _ in got}
        assert not keys & tombstoned
        assert {k: v for _, k, v in got if k.startswith(b"k")} == {
            f"k{k:02d}".encode(): f"k{k:02d}-round2".encode() for k in range(15, 40)}


# --- configs, and reading from a removed offset -----------------------------------------------------------

def test_describe_configs_shows_compact(broker, compacted):
    from confluent_kafka.admin import AdminClient, ConfigResource, ConfigSource

    topic = compacted["none"][0]
    res = ConfigResource(ConfigResource.Type.TOPIC, topic)
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    cfg = admin.describe_configs([res])[res].result(30)
    assert cfg["cleanup.policy"].value == "compact"
    assert cfg["cleanup.policy"].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    assert cfg["min.cleanable.dirty.ratio"].value == "0.01"
    assert cfg["segment.bytes"].value == "8192"


def removed_offsets(b: BrokerProcess, topic: str, p: int, delivered: Records, kept: list[int]) -> list[int]:
    """Offsets compaction removed to read from: the first one, and (when the cleaned segments have one)
    one after the last record left in its segment, whose next record is in a later segment."""
    gone = sorted(set(delivered) - set(kept))
    picks = [gone[0]]
    bases = segment_bases(b, topic, p)
    for lo, hi in zip(bases, bases[1:]):
        inside = [o for o in kept if lo <= o < hi]
        if hi - 1 in gone and (not inside or inside[-1] < hi - 1):
            picks.append(hi - 1)
            break
    return picks


def test_reading_from_a_removed_offset_starts_at_the_next_record(broker, compacted):
    from confluent_kafka import Consumer, TopicPartition
    from kafka import KafkaConsumer, TopicPartition as KTopicPartition

    topic, delivered, _, bases = compacted["none"]
    p = 0
    want = expected(delivered[p], bases[p])
    kept = [o for o, _, _ in want]
    picks = removed_offsets(broker, topic, p, delivered[p], kept)
    assert picks[0] < bases[p]

    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "unused", "enable.auto.commit": False})
    try:
        assert c.get_watermark_offsets(TopicPartition(topic, p), timeout=10) == (0, max(delivered[p]) + 1)
    finally:
        c.close()

    for start in picks:
        nxt = min(o for o in kept if o > start)
        record = next(r for r in want if r[0] == nxt)

        c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "unused", "enable.auto.commit": False})
        try:
            c.assign([TopicPartition(topic, p, start)])
            m = None
            deadline = time.monotonic() + 10
            while m is None:
                assert time.monotonic() < deadline, f"confluent-kafka read nothing from offset {start}"
                m = c.poll(0.2)
            assert m.error() is None, m.error()
            assert (m.offset(), m.key(), m.value()) == record
        finally:
            c.close()

        k = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None, enable_auto_commit=False,
                          fetch_max_wait_ms=100)
        try:
            tp = KTopicPartition(topic, p)
            k.assign([tp])
            k.seek(tp, start)
            msgs = []
            deadline = time.monotonic() + 10
            while not msgs:
                assert time.monotonic() < deadline, f"kafka-python read nothing from offset {start}"
                msgs = k.poll(timeout_ms=200, max_records=1).get(tp, [])
            assert (msgs[0].offset, msgs[0].key, msgs[0].value) == record
        finally:
            k.close()

        if shutil.which("kcat"):
            out = subprocess.run(["kcat", "-C", "-b", broker.bootstrap, "-t", topic, "-p", str(p), "-o", str(start),
                                  "-c", "1", "-e", "-q", "-f", "%o %k %s\\n"],
                                 capture_output=True, text=True, timeout=30)
            assert out.returncode == 0, out.stderr
            assert out.stdout == f"{nxt} {record[1].decode()} {record[2].decode() if record[2] else ''}\n"


def test_metrics_count_the_passes_the_log_reports(broker, compacted):
    """The cleaner's counters agree with the passes the broker logged since it last started."""
    import urllib.request

    from tools.top.promtext import parse, total

    with urllib.request.urlopen(broker.metrics_url, timeout=10) as r:
        families = parse(r.read().decode())
    lines = broker.log_tail(2000).splitlines()
    since_start = lines[max(i for i, line in enumerate(lines) if line.startswith("hpbroker ready")):]
    passes = [COMPACTED_RE.search(line) for line in since_start if "partition compacted" in line]
    assert passes
    assert int(total(families, "hpbroker_log_cleaner_passes_total")) == len(passes)
    assert int(total(families, "hpbroker_log_cleaner_records_removed_total")) == sum(int(m.group(5)) for m in passes)
    assert int(total(families, "hpbroker_log_cleaner_bytes_freed_total")) > 0


def test_a_record_without_a_key_is_refused_on_a_compacted_topic(broker):
    from confluent_kafka import KafkaError, Producer

    topic = f"nokey-{uuid.uuid4().hex[:6]}"
    create(broker, topic, partitions=1)
    errors = []
    p = Producer({"bootstrap.servers": broker.bootstrap, "message.timeout.ms": 10000, "retries": 0})
    p.produce(topic, b"no key", partition=0, on_delivery=lambda err, m: errors.append(err))
    p.flush(15)  # a batch is refused whole, so the keyed record goes in a batch of its own
    p.produce(topic, b"keyed", key=b"k", partition=0, on_delivery=lambda err, m: errors.append(err))
    p.flush(15)
    assert len(errors) == 2
    assert errors[0] is not None and errors[0].code() == KafkaError.INVALID_RECORD
    assert errors[1] is None


def test_kill_9_while_compacting_loses_nothing_acknowledged(tmp_path):
    """Three kill -9s of the whole broker while an idempotent producer writes and passes run back to back:
    after each restart (which finishes or drops an interrupted pass) the producer carries on, and at the end
    every record read back is the one acknowledged at its offset and every key ends at its last value."""
    from confluent_kafka import Producer

    topic = "crash"
    rng = random.Random(9)
    b = BrokerProcess(data_dir=str(tmp_path / "data"), io_threads=1, settings={"log.cleaner.backoff.ms": 50})
    b.start()
    try:
        create(b, topic, partitions=1, **{"segment.bytes": "16384"})
        p = Producer({"bootstrap.servers": b.bootstrap, "acks": "all", "enable.idempotence": True,
                      "linger.ms": 2, "batch.size": 4096, "message.timeout.ms": 120000})
        delivered: Records = {}
        errors = []
        last: dict[bytes, bytes] = {}

        def report(err, msg):
            if err is not None:
                errors.append(err)
            else:
                delivered[msg.offset()] = (msg.key(), msg.value())

        for crash in range(4):
            seen = len(passes(b, topic))
            for i in range(3000):
                key = b"k%03d" % rng.randrange(200)
                value = b"%d-%d-%s" % (crash, i, os.urandom(8).hex().encode())
                p.produce(topic, value, key=key, partition=0, on_delivery=report)
                p.poll(0)
                last[key] = value
            if crash == 3:
                break  # after the third restart: records that roll segments again, so a pass must follow
            deadline = time.monotonic() + 20
            while len(passes(b, topic)) <= seen and time.monotonic() < deadline:
                p.poll(0.05)  # until a pass has run since the (re)start
            time.sleep(rng.random() * 0.1)
            b.kill()
            b.output.clear()
            b.start()
        assert p.flush(120) == 0 and errors == []
        assert len(delivered) == 12000
        base = wait_compacted(b, topic, partitions=1)

        got = consume_confluent(b, topic, partitions=1)[0]
        assert got and all(delivered[o] == (k, v) for o, k, v in got)  # each at the offset it was acknowledged at
        assert [o for o, _, _ in got] == sorted({o for o, _, _ in got})
        assert {k: v for _, k, v in got} == last  # every key at its last value
        below = [k for o, k, _ in got if o < base[0]]
        assert len(below) == len(set(below))
        assert [r for r in got if r[0] >= base[0]] == [(o, *delivered[o]) for o in sorted(delivered) if o >= base[0]]
    finally:
        b.close()


def consume_aiokafka(b: BrokerProcess, topic: str, partitions: int = PARTITIONS) -> dict[int, list[tuple]]:
    """The same with aiokafka (its own protocol code): assigned partitions, from the beginning to the end."""
    import asyncio

    from aiokafka import AIOKafkaConsumer, TopicPartition

    async def read() -> dict[int, list[tuple]]:
        c = AIOKafkaConsumer(bootstrap_servers=b.bootstrap, group_id=None, enable_auto_commit=False,
                             fetch_max_wait_ms=100)
        await c.start()
        got: dict[int, list[tuple]] = {p: [] for p in range(partitions)}
        try:
            tps = [TopicPartition(topic, p) for p in range(partitions)]
            c.assign(tps)
            await c.seek_to_beginning(*tps)
            ends = await c.end_offsets(tps)
            deadline = time.monotonic() + 20
            while [tp for tp in tps if await c.position(tp) < ends[tp]]:
                assert time.monotonic() < deadline, f"aiokafka did not reach the end of {topic}"
                for tp, msgs in (await c.getmany(timeout_ms=200)).items():
                    got[tp.partition].extend((m.offset, m.key, m.value) for m in msgs)
        finally:
            await c.stop()
        return got

    return asyncio.run(read())


def consume_kafkajs(b: BrokerProcess, topic: str, partitions: int = PARTITIONS) -> dict[int, list[tuple]]:
    """The same with kafkajs (Node.js), through a consumer group of its own."""
    out = kafkajs.run("read_all.js", b.bootstrap, topic, f"{topic}-kafkajs")
    assert out.returncode == 0, out.stderr[-3000:]
    got: dict[int, list[tuple]] = {p: [] for p in range(partitions)}
    for p, offset, key, value in json.loads(out.stdout)["records"]:
        got[p].append((offset, None if key is None else base64.b64decode(key),
                       None if value is None else base64.b64decode(value)))
    return {p: sorted(recs) for p, recs in got.items()}


@pytest.mark.parametrize("client", ["aiokafka", pytest.param("kafkajs", marks=pytest.mark.skipif(
    kafkajs.missing() is not None, reason=str(kafkajs.missing())))])
@pytest.mark.parametrize("codec", ["none", "gzip"])  # kafkajs reads no other codec without plugins
def test_other_clients_read_compacted_partitions(broker, compacted, client, codec):
    """aiokafka and kafkajs read the batches compaction rewrote (fewer records than offsets, offset gaps)
    exactly as confluent-kafka does."""
    topic = compacted[codec][0]
    want = consume_confluent(broker, topic)
    got = (consume_aiokafka if client == "aiokafka" else consume_kafkajs)(broker, topic)
    for p in want:
        assert got[p] == want[p], f"partition {p}: offsets {[o for o, _, _ in got[p]]} read, " \
                                  f"{[o for o, _, _ in want[p]]} wanted"
