"""Client quotas enforced: a producer or consumer over its byte rate is told to wait (throttle_time_ms) and
is not read meanwhile, so it is slowed to its quota; nothing it sent is lost. The rate is the broker's, over
every connection of the quota's entity, whichever network worker serves them.

The brokers here measure rates over two windows of one second (`quota.window.num=2`), so a test needs only
a few seconds of traffic to be well over a quota."""

from __future__ import annotations

import re
import socket
import struct
import time
import urllib.request
import uuid

import pytest

import hotpath
from netio.codec import decode_response, encode_request
from tests.integration.test_connection_placement import open_counts
from tools.client import Client
from tools.testing import BrokerProcess
from tools.top.promtext import parse, total

PRODUCE, FETCH, ALTER_CLIENT_QUOTAS = 0, 1, 49
PRODUCE_V, FETCH_V = 7, 11
SASL_RE = re.compile(r"hpbroker ready .*SASL_PLAINTEXT://127\.0\.0\.1:(\d+)")
SETTINGS = {"quota.window.num": "2", "quota.window.size.seconds": "1", "num.network.threads": "2",
            "metrics.listener": "127.0.0.1:0",
            "listeners": "PLAINTEXT://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:0", "sasl.users": "alice:alice-pw"}


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    b = BrokerProcess(data_dir=str(tmp_path_factory.mktemp("quotas") / "data"), settings=SETTINGS)
    b.start()
    b.sasl_port = next(int(m.group(1)) for m in map(SASL_RE.search, list(b.output)) if m)
    yield b
    b.close()


def alter(b: BrokerProcess, entity: dict, **values) -> None:
    """Set (a number) or remove (None) quota values of `entity` ({"client-id": name} ...) and wait until the
    network workers can have seen them."""
    body = {"entries": [{"entity": [{"entity_type": t, "entity_name": n} for t, n in entity.items()],
                         "ops": [{"key": k, "value": float(v or 0), "remove": v is None} for k, v in values.items()]}],
            "validate_only": False}
    with Client(b.bootstrap) as c:
        reply = c.controller().request(ALTER_CLIENT_QUOTAS, body)
    assert [e["error_code"] for e in reply["entries"]] == [0], reply
    time.sleep(0.3)  # workers re-read the metadata snapshot at most every 50 ms


def create_topic(b: BrokerProcess, name: str, partitions: int = 1) -> None:
    from perf import wire

    conn = wire.Connection(*wire.parse_bootstrap(b.bootstrap))
    try:
        wire.ensure_topic(conn, name, partitions)
    finally:
        conn.close()


def metric(b: BrokerProcess, name: str) -> float:
    with urllib.request.urlopen(b.metrics_url, timeout=10) as r:
        return total(parse(r.read().decode()), name)


class Raw:
    """One connection speaking Produce v7 / Fetch v11 with a client id of our choosing."""

    def __init__(self, b: BrokerProcess, client_id: str):
        self.sock = socket.create_connection(("127.0.0.1", b.port), timeout=30)
        self.client_id = client_id
        self.cid = 0

    def call(self, api_key: int, version: int, body: dict) -> dict:
        self.cid += 1
        self.sock.sendall(encode_request(api_key, version, self.cid, self.client_id, body))
        size = struct.unpack(">i", self._read(4))[0]
        cid, reply = decode_response(api_key, version, self._read(size))
        assert cid == self.cid
        return reply

    def produce(self, topic: str, payload: bytes) -> dict:
        records = hotpath.build_records_batch([(None, payload)])
        return self.call(PRODUCE, PRODUCE_V, {
            "transactional_id": None, "acks": 1, "timeout_ms": 30000,
            "topic_data": [{"name": topic, "partition_data": [{"index": 0, "records": records}]}]})

    def fetch(self, topic: str, offset: int, max_bytes: int = 64 << 20) -> dict:
        return self.call(FETCH, FETCH_V, {
            "replica_id": -1, "max_wait_ms": 0, "min_bytes": 1, "max_bytes": max_bytes, "isolation_level": 0,
            "session_id": 0, "session_epoch": -1, "rack_id": "",
            "topics": [{"topic": topic, "partitions": [
                {"partition": 0, "current_leader_epoch": -1, "fetch_offset": offset, "log_start_offset": -1,
                 "partition_max_bytes": 1 << 20}]}],
            "forgotten_topics_data": []})

    def _read(self, n: int) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            assert chunk, "connection closed by the broker"
            buf += chunk
        return bytes(buf)

    def close(self) -> None:
        self.sock.close()


def at_window_start() -> None:
    """Wait for the start of a one-second quota window. The broker numbers windows by the same monotonic
    clock, so a rate taken in the next few milliseconds spans just over one window."""
    while time.monotonic() % 1.0 > 0.01:
        time.sleep(0.002)


def produce_errors(reply: dict) -> list[int]:
    return [p["error_code"] for t in reply["responses"] for p in t["partition_responses"]]


def test_a_client_id_s_quota_counts_its_connections_on_every_network_worker(broker):
    """Two connections of one client id, served by different network workers, share one producer_byte_rate:
    the second connection's request is throttled for what both sent, then waits out its throttle time
    before the broker reads its next request. Without the quota nothing is throttled."""
    topic = f"q-shared-{uuid.uuid4().hex[:8]}"
    create_topic(broker, topic)
    app = f"shared-{uuid.uuid4().hex[:8]}"
    alter(broker, {"client-id": app}, producer_byte_rate=100_000)
    before = open_counts(broker)
    a = Raw(broker, app)
    time.sleep(0.5)
    b = Raw(broker, app)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # a connection may be handed to the other worker after accept
            counts = open_counts(broker)
            grown = sorted(i for i in counts if counts[i] > before.get(i, 0))
            if len(grown) == 2:
                break
            time.sleep(0.1)
        assert len(grown) == 2, f"the two connections are not on two workers: {before} -> {counts}"

        at_window_start()
        first = a.produce(topic, b"a" * 80_000)  # 80 KB over a span of just over a second: under 100 KB/s
        assert produce_errors(first) == [0] and first["throttle_time_ms"] == 0, first
        second = b.produce(topic, b"b" * 80_000)  # so is this connection's alone, but not the two together
        answered = time.monotonic()
        assert produce_errors(second) == [0], second
        waited = second["throttle_time_ms"]
        assert 50 <= waited <= 2000, second
        third = b.produce(topic, b"c")  # not read before the throttle time is over
        assert time.monotonic() - answered >= waited / 1000.0 * 0.9, (waited, time.monotonic() - answered)
        assert produce_errors(third) == [0]
        assert metric(broker, "hpbroker_quota_throttled_produce_total") >= 1
        assert metric(broker, "hpbroker_quota_throttle_ms_total") >= waited

        alter(broker, {"client-id": app}, producer_byte_rate=None)
        for _ in range(5):
            reply = a.produce(topic, b"d" * 100_000)
            assert produce_errors(reply) == [0] and reply["throttle_time_ms"] == 0, reply
    finally:
        a.close()
        b.close()
    got = Raw(broker, "reader")
    try:
        offsets = []
        offset = 0
        while True:
            reply = got.fetch(topic, offset)
            part = reply["responses"][0]["partitions"][0]
            batches = list(hotpath_batches(part["records"]))
            if not batches:
                break
            offsets += [o for o, _ in batches]
            offset = batches[-1][0] + 1
        assert offsets == list(range(8)), "every produced record is in the log, once"
    finally:
        got.close()


def hotpath_batches(records: bytes):
    """(base offset, length) of each whole batch in a fetched records section."""
    pos = 0
    while pos + 12 <= len(records):
        base, length = struct.unpack_from(">qi", records, pos)
        if pos + 12 + length > len(records):
            return
        yield base, length
        pos += 12 + length


def test_a_consumer_over_its_rate_gets_capped_then_empty_throttled_fetches(broker):
    """consumer_byte_rate: one response carries at most what the quota allows over its windows, and a
    consumer over the rate gets an empty response with a throttle time (nothing counted for it)."""
    topic = f"q-fetch-{uuid.uuid4().hex[:8]}"
    create_topic(broker, topic)
    writer = Raw(broker, "writer")
    try:
        for i in range(20):
            assert produce_errors(writer.produce(topic, bytes([65 + i]) * 10_000)) == [0]
    finally:
        writer.close()
    app = f"reader-{uuid.uuid4().hex[:8]}"
    alter(broker, {"client-id": app}, consumer_byte_rate=40_000)
    r = Raw(broker, app)
    try:
        reply = r.fetch(topic, 0)
        assert reply["throttle_time_ms"] == 0, reply
        part = reply["responses"][0]["partitions"][0]
        got = list(hotpath_batches(part["records"]))
        # 40 KB/s over one window: at most 40 KB, or the first batch whole (each is just over 10 KB).
        assert 1 <= len(got) <= 4, got
        assert sum(12 + n for _, n in got) <= 40_000
        throttled = None
        offset = got[-1][0] + 1
        for _ in range(5):
            reply = r.fetch(topic, offset)
            if reply["throttle_time_ms"]:
                throttled = reply
                break
            offset = list(hotpath_batches(reply["responses"][0]["partitions"][0]["records"]))[-1][0] + 1
        assert throttled is not None, "a consumer reading ~40 KB per request back to back is never throttled"
        assert throttled["responses"] == [], throttled
        assert metric(broker, "hpbroker_quota_throttled_fetch_total") >= 1
    finally:
        r.close()


def test_a_user_quota_applies_to_every_client_id_of_that_user(broker):
    """A SASL user's producer_byte_rate: the user's requests are throttled whatever their client id, while
    an anonymous client with the same client id is not."""
    topic = f"q-user-{uuid.uuid4().hex[:8]}"
    create_topic(broker, topic)
    alter(broker, {"user": "alice"}, producer_byte_rate=50_000)
    body = {"transactional_id": None, "acks": 1, "timeout_ms": 30000,
            "topic_data": [{"name": topic, "partition_data": [
                {"index": 0, "records": hotpath.build_records_batch([(None, b"u" * 40_000)])}]}]}
    anonymous = Client(broker.bootstrap)
    try:
        with Client(f"127.0.0.1:{broker.sasl_port}", sasl=("PLAIN", "alice", "alice-pw")) as alice:
            conn = alice.controller()
            replies = [conn.request(PRODUCE, body, highest=PRODUCE_V) for _ in range(3)]
        assert all(produce_errors(x) == [0] for x in replies)
        assert max(x["throttle_time_ms"] for x in replies) > 0, replies
        conn = anonymous.controller()
        replies = [conn.request(PRODUCE, body, highest=PRODUCE_V) for _ in range(3)]
        assert [x["throttle_time_ms"] for x in replies] == [0, 0, 0], replies
    finally:
        anonymous.close()
        alter(broker, {"user": "alice"}, producer_byte_rate=None)


def test_librdkafka_producer_and_consumer_are_slowed_to_their_quotas(broker):
    """confluent-kafka, unchanged: a producer and a consumer over their quotas see throttle events and take
    at least as long as their quotas allow; every record arrives. A producer without a quota, at the same
    time, sees none."""
    from confluent_kafka import Consumer, Producer, TopicPartition

    topic = f"q-rdk-{uuid.uuid4().hex[:8]}"
    create_topic(broker, topic)
    limit = 300_000
    slow, fast = f"slow-{uuid.uuid4().hex[:6]}", f"fast-{uuid.uuid4().hex[:6]}"
    alter(broker, {"client-id": slow}, producer_byte_rate=limit, consumer_byte_rate=limit)
    n, size = 1500, 1024
    throttles: dict[str, list] = {slow: [], fast: []}

    def producer(client_id: str) -> Producer:
        return Producer({"bootstrap.servers": broker.bootstrap, "client.id": client_id, "linger.ms": 5,
                         "batch.size": 65536, "acks": 1,
                         "throttle_cb": lambda ev, c=client_id: throttles[c].append(ev.throttle_time)})

    delivered = []
    p_slow, p_fast = producer(slow), producer(fast)
    start = time.monotonic()
    for i in range(n):
        for p in (p_slow, p_fast):
            while True:
                try:
                    p.produce(topic, value=b"%06d" % i + b"x" * (size - 6),
                              on_delivery=lambda e, m: delivered.append(e))
                    break
                except BufferError:
                    p.poll(0.05)
        p_slow.poll(0)
        p_fast.poll(0)
    assert p_fast.flush(60) == 0
    assert p_slow.flush(60) == 0
    elapsed = time.monotonic() - start
    assert delivered.count(None) == 2 * n, [e for e in delivered if e is not None][:3]
    # What the slow producer sent is at most its limit over the run plus what a two-window span allows.
    assert elapsed >= n * size / limit - 2.0 - 0.5, elapsed
    # librdkafka reports each change of a broker's throttle time, the return to 0 included.
    assert any(t > 0 for t in throttles[slow]), throttles[slow][:5]
    assert not any(t > 0 for t in throttles[fast]), throttles[fast][:5]
    del p_slow, p_fast

    c_throttles: list = []
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": f"g-{slow}", "client.id": slow,
                  "enable.auto.commit": False, "fetch.max.bytes": 1 << 20,
                  "throttle_cb": lambda ev: c_throttles.append(ev.throttle_time)})
    try:
        c.assign([TopicPartition(topic, 0, 0)])
        seen = 0
        start = time.monotonic()
        deadline = start + 60
        while seen < 2 * n and time.monotonic() < deadline:
            for m in c.consume(500, timeout=0.5):
                assert m.error() is None, m.error()
                seen += 1
        elapsed = time.monotonic() - start
    finally:
        c.close()
    assert seen == 2 * n
    assert elapsed >= 2 * n * size / limit - 2.0 - 0.5, elapsed
    assert any(t > 0 for t in c_throttles), c_throttles[:5]


def test_kafka_python_producer_and_consumer_are_slowed_to_their_quotas(broker):
    """kafka-python, unchanged, under both quotas: every record is produced without an error and consumed,
    each taking at least what its quota allows."""
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition

    topic = f"q-kp-{uuid.uuid4().hex[:8]}"
    create_topic(broker, topic)
    client = f"kp-{uuid.uuid4().hex[:6]}"
    limit, n, size = 300_000, 1500, 1024
    alter(broker, {"client-id": client}, producer_byte_rate=limit, consumer_byte_rate=limit)
    p = KafkaProducer(bootstrap_servers=broker.bootstrap, client_id=client, linger_ms=5, batch_size=65536)
    start = time.monotonic()
    futures = [p.send(topic, b"%06d" % i + b"k" * (size - 6)) for i in range(n)]
    p.flush(60)
    elapsed = time.monotonic() - start
    p.close()
    assert [f.exception for f in futures if f.exception] == []
    assert elapsed >= n * size / limit - 2.0 - 0.5, elapsed
    c = KafkaConsumer(bootstrap_servers=broker.bootstrap, client_id=client, enable_auto_commit=False,
                      consumer_timeout_ms=30000)
    try:
        c.assign([TopicPartition(topic, 0)])
        c.seek_to_beginning()
        start = time.monotonic()
        got = []
        for m in c:
            got.append(int(m.value[:6]))
            if len(got) == n:
                break
        elapsed = time.monotonic() - start
    finally:
        c.close()
    assert got == list(range(n))
    assert elapsed >= n * size / limit - 2.0 - 0.5, elapsed


def test_request_percentage_throttles_a_client_whose_requests_take_too_much_broker_time(broker):
    """request_percentage (1% of a core: 10 ms of broker time a second): a client sending requests back to
    back is told to wait, at most one window (Kafka's bound), and is not read meanwhile; its Produce
    responses carry the throttle time too. Another client id is left alone."""
    METADATA, METADATA_V = 3, 5
    app = f"chatty-{uuid.uuid4().hex[:6]}"
    other = f"calm-{uuid.uuid4().hex[:6]}"
    topic = f"q-req-{uuid.uuid4().hex[:8]}"
    create_topic(broker, topic)
    alter(broker, {"client-id": app}, request_percentage=1)
    body = {"topics": None, "allow_auto_topic_creation": False}
    chatty, calm = Raw(broker, app), Raw(broker, other)
    try:
        calm_throttles = [calm.call(METADATA, METADATA_V, body)["throttle_time_ms"] for _ in range(300)]
        assert calm_throttles == [0] * 300
        waited = 0
        for _ in range(5000):
            waited = chatty.call(METADATA, METADATA_V, body)["throttle_time_ms"]
            if waited:
                break
        assert 0 < waited <= 1000, waited  # the window is one second
        answered = time.monotonic()
        chatty.call(METADATA, METADATA_V, body)
        assert time.monotonic() - answered >= waited / 1000.0 * 0.9
        produced = []
        for _ in range(200):
            reply = chatty.produce(topic, b"r" * 100_000)
            assert produce_errors(reply) == [0]
            produced.append(reply["throttle_time_ms"])
        assert max(produced) > 0, "a client appending 100 KB batches back to back at 1% is never throttled"
        assert metric(broker, "hpbroker_quota_throttled_request_total") >= 2
    finally:
        chatty.close()
        calm.close()
        alter(broker, {"client-id": app}, request_percentage=None)
