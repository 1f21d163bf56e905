"""Idempotent producers against the real broker: retries after lost responses, owner crashes, raw rules.

A test-side TCP proxy (the broker advertises the proxy's address, so clients reach the broker only through
it) forwards every request but, for some Produce requests, closes the client's connection when the
response comes back instead of passing it on: the batch is in the log, the client does not know, and
retries it. With idempotence the retry is recognised (0 duplicates); without it, duplicates appear.
"""

from __future__ import annotations

import os
import signal
import socket
import struct
import threading
import time

import numpy as np
import pytest

import hotpath
from netio.codec import ErrorCode
from netio.codec.frame import decode_response, encode_request
from tools.testing import BrokerProcess

N_RECORDS = 50_000
PARTITIONS = 4


# -- the proxy ----------------------------------------------------------------------------------------------

def _read_exact(sock: socket.socket, n: int) -> bytes | None:
    buf = bytearray()
    while len(buf) < n:
        try:
            chunk = sock.recv(n - len(buf))
        except OSError:
            return None
        if not chunk:
            return None
        buf += chunk
    return bytes(buf)


def _read_frame(sock: socket.socket) -> bytes | None:
    head = _read_exact(sock, 4)
    if head is None:
        return None
    body = _read_exact(sock, struct.unpack(">i", head)[0])
    return None if body is None else head + body


class DroppingProxy:
    """127.0.0.1 proxy to the broker that loses the response of every `every`-th Produce request (up to
    `max_drops`) by closing that client connection once the broker has answered."""

    def __init__(self, every: int = 0, max_drops: int = 0):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.every = every
        self.max_drops = max_drops
        self.produces = 0
        self.drops = 0
        self.lock = threading.Lock()
        self.target: tuple[str, int] | None = None
        self.closed = False

    def start(self, host: str, port: int) -> "DroppingProxy":
        self.target = (host, port)
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def close(self) -> None:
        self.closed = True
        self.listener.close()

    def _accept(self) -> None:
        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            doomed: list[bytes] = []
            threading.Thread(target=self._requests, args=(client, upstream, doomed), daemon=True).start()
            threading.Thread(target=self._responses, args=(client, upstream, doomed), daemon=True).start()

    def _drop_this(self, frame: bytes) -> bool:
        if struct.unpack_from(">h", frame, 4)[0] != 0 or self.every <= 0:
            return False
        with self.lock:
            self.produces += 1
            if self.drops < self.max_drops and self.produces % self.every == 0:
                self.drops += 1
                return True
        return False

    def _requests(self, client, upstream, doomed) -> None:
        while True:
            frame = _read_frame(client)
            if frame is None:
                _close(upstream)
                return
            drop = self._drop_this(frame)
            if drop:
                doomed.append(frame[8:12])  # correlation id
            try:
                upstream.sendall(frame)
            except OSError:
                _close(client)
                return
            if drop:
                return  # nothing more goes to the broker on this connection

    def _responses(self, client, upstream, doomed) -> None:
        while True:
            frame = _read_frame(upstream)
            if frame is None or (doomed and frame[4:8] == doomed[0]):
                _close(client)
                _close(upstream)
                return
            try:
                client.sendall(frame)
            except OSError:
                _close(upstream)
                return


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()


@pytest.fixture
def proxied(tmp_path):
    """(broker, proxy): the broker advertises the proxy, which forwards to the broker's real port."""
    proxy = DroppingProxy()
    b = BrokerProcess(data_dir=str(tmp_path / "data"),
                      settings={"advertised.listeners": f"PLAINTEXT://127.0.0.1:{proxy.port}"})
    b.start()
    proxy.start("127.0.0.1", b.port)
    yield b, proxy
    proxy.close()
    b.close()


# -- clients ------------------------------------------------------------------------------------------------

def _value(p: int, i: int) -> bytes:
    return b"p%d-%06d" % (p, i)


def _create(bootstrap: str, topic: str) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, PARTITIONS, 1)])[topic].result(15)


def produce_confluent(bootstrap: str, topic: str, n: int, idempotent: bool, during=None) -> list:
    """n records round-robin over the partitions; returns the acknowledged (partition, value) pairs.
    `during(sent, acked)` runs every 1000 sends (to inject faults mid-stream)."""
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": idempotent, "acks": "all",
                  "linger.ms": 5, "batch.num.messages": 500, "retry.backoff.ms": 20})
    acked, errors = [], []

    def cb(err, msg):
        if err is None:
            acked.append((msg.partition(), msg.value()))
        else:
            errors.append(err)

    for i in range(n):
        part = i % PARTITIONS
        while True:
            try:
                p.produce(topic, value=_value(part, i // PARTITIONS), partition=part, on_delivery=cb)
                break
            except BufferError:
                p.poll(0.05)
        if i % 1000 == 0:
            while len(p) > 5000:  # keep a stream going rather than queue everything up front
                p.poll(0.01)
            if during is not None:
                during(i, len(acked))
    assert p.flush(120) == 0
    assert not errors, errors[:3]
    return acked


def produce_kafka_python(bootstrap: str, topic: str, n: int) -> list:
    """kafka-python with its defaults (idempotence on)."""
    from kafka import KafkaProducer

    # Small batches so 50k records make well over a hundred Produce requests for the proxy to choose from.
    p = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, batch_size=4096)
    assert p.config["enable_idempotence"]
    futures = [(i % PARTITIONS, _value(i % PARTITIONS, i // PARTITIONS),
                p.send(topic, value=_value(i % PARTITIONS, i // PARTITIONS), partition=i % PARTITIONS))
               for i in range(n)]
    p.flush(120)
    acked = []
    for part, value, fut in futures:
        fut.get(1)
        acked.append((part, value))
    p.close(10)
    return acked


def consume_all(bootstrap: str, topic: str) -> dict[int, list[bytes]]:
    """Every value of every partition, in offset order, up to the high watermark."""
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "check", "enable.auto.commit": False,
                  "fetch.wait.max.ms": 100})
    ends = {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in range(PARTITIONS)}
    c.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
    got: dict[int, list[bytes]] = {p: [] for p in range(PARTITIONS)}
    done = {p for p, end in ends.items() if end == 0}
    deadline = time.time() + 120
    while len(done) < PARTITIONS and time.time() < deadline:
        for m in c.consume(10000, 0.5):
            assert m.error() is None, m.error()
            got[m.partition()].append(m.value())
            if m.offset() + 1 >= ends[m.partition()]:
                done.add(m.partition())
    c.close()
    assert len(done) == PARTITIONS, (ends, {p: len(v) for p, v in got.items()})
    return got


def duplicates(got: dict[int, list[bytes]]) -> int:
    return sum(len(v) - len(set(v)) for v in got.values())


def check_exactly_once(got: dict[int, list[bytes]], acked: list, n: int) -> None:
    per = n // PARTITIONS
    assert duplicates(got) == 0
    for part in range(PARTITIONS):
        assert got[part] == [_value(part, i) for i in range(per)], f"partition {part}: lost or out of order"
    assert set(acked) == {(p, v) for p, vs in got.items() for v in vs}


# -- acceptance -------------------------------------------------------------------------------------------

def test_lost_responses_confluent_idempotent_then_without_idempotence(proxied):
    b, proxy = proxied
    proxy.every, proxy.max_drops = 5, 20
    _create(b.bootstrap, "idem")
    acked = produce_confluent(b.bootstrap, "idem", N_RECORDS, idempotent=True)
    assert proxy.drops >= 5, proxy.drops
    check_exactly_once(consume_all(b.bootstrap, "idem"), acked, N_RECORDS)

    proxy.produces, proxy.drops = 0, 0
    _create(b.bootstrap, "plain")
    produce_confluent(b.bootstrap, "plain", N_RECORDS, idempotent=False)
    assert proxy.drops >= 5, proxy.drops
    assert duplicates(consume_all(b.bootstrap, "plain")) > 0  # the proxy does force retries


def test_lost_responses_kafka_python_default(proxied):
    b, proxy = proxied
    proxy.every, proxy.max_drops = 3, 20
    _create(b.bootstrap, "kp")
    acked = produce_kafka_python(b.bootstrap, "kp", N_RECORDS)
    assert proxy.drops >= 5, proxy.drops
    check_exactly_once(consume_all(b.bootstrap, "kp"), acked, N_RECORDS)


def test_kill_owner_mid_stream_loses_and_duplicates_nothing(tmp_path):
    with BrokerProcess(data_dir=str(tmp_path / "data"), io_threads=1) as b:
        _create(b.bootstrap, "crash")
        killed = []

        def during(sent: int, acked: int) -> None:
            if not killed and acked and sent >= N_RECORDS // 3:
                pid = b.worker_pids("io")[0]
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)

        acked = produce_confluent(b.bootstrap, "crash", N_RECORDS, idempotent=True, during=during)
        assert killed and b.worker_pids("io")[0] != killed[0]  # the owner was restarted
        check_exactly_once(consume_all(b.bootstrap, "crash"), acked, N_RECORDS)


# -- protocol rules, raw ----------------------------------------------------------------------------------

class Raw:
    def __init__(self, bootstrap: str):
        host, port = bootstrap.split(":")
        self.sock = socket.create_connection((host, int(port)), timeout=15)
        self.corr = 0

    def call(self, key: int, version: int, body: dict) -> dict:
        self.corr += 1
        self.sock.sendall(encode_request(key, version, self.corr, "raw", body))
        frame = _read_frame(self.sock)
        corr, resp = decode_response(key, version, frame[4:])
        assert corr == self.corr
        return resp

    def init_producer_id(self, transactional_id: str | None = None) -> dict:
        return self.call(22, 1, {"transactional_id": transactional_id, "transaction_timeout_ms": 60000})

    def produce(self, topic: str, pid: int, epoch: int, seq: int, n: int = 2) -> tuple[int, int]:
        batch = hotpath.build_records_batch([(None, b"r%d" % (seq + i)) for i in range(n)],
                                            timestamps=np.full(n, int(time.time() * 1000), np.int64),
                                            producer_id=pid, producer_epoch=epoch, base_sequence=seq)
        resp = self.call(0, 8, {"transactional_id": None, "acks": -1, "timeout_ms": 10000, "topic_data": [
            {"name": topic, "partition_data": [{"index": 0, "records": bytes(batch)}]}]})
        part = resp["responses"][0]["partition_responses"][0]
        return part["error_code"], part["base_offset"]


def _create_one(bootstrap: str, topic: str) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(15)


def test_sequence_rules_and_ids_unique_across_restarts(tmp_path):
    b = BrokerProcess(data_dir=str(tmp_path / "data"), network_threads=2)
    try:
        b.start()
        _create_one(b.bootstrap, "raw")
        ids = set()
        conns = [Raw(b.bootstrap) for _ in range(4)]  # spread over both network workers
        for c in conns:
            r = c.init_producer_id()
            assert r["error_code"] == 0 and r["producer_epoch"] == 0
            ids.add(r["producer_id"])
        assert len(ids) == 4
        assert conns[0].init_producer_id("tx")["error_code"] == ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED

        c = conns[0]
        pid = min(ids)
        assert c.produce("raw", pid, 0, 0) == (0, 0)
        assert c.produce("raw", pid, 0, 2) == (0, 2)
        assert c.produce("raw", pid, 0, 0) == (0, 0)  # a retry: its original offset, nothing appended
        assert c.produce("raw", pid, 0, 2) == (0, 2)
        assert c.produce("raw", pid, 0, 7)[0] == ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER
        assert c.produce("raw", pid, 1, 3)[0] == ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER  # new epoch starts at 0
        assert c.produce("raw", pid, 1, 0) == (0, 4)
        assert c.produce("raw", pid, 0, 4)[0] == ErrorCode.INVALID_PRODUCER_EPOCH
        assert c.produce("raw", -1, -1, -1) == (0, 6)  # plain batches skip all of this
        for c in conns:
            c.sock.close()

        b.kill()  # no clean shutdown: no final snapshot, state comes back from the log
        b.start()
        c = Raw(b.bootstrap)
        assert c.produce("raw", pid, 1, 0) == (0, 4)
        assert c.produce("raw", pid, 1, 2) == (0, 8)
        after = c.init_producer_id()
        assert after["error_code"] == 0 and after["producer_id"] > max(ids)
        c.sock.close()

        assert b.stop() == 0  # clean: the state is snapshotted at the log end
        part_dir = tmp_path / "data" / "raw-0"
        assert "00000000000000000010.snapshot" in os.listdir(part_dir)
        b.start()
        c = Raw(b.bootstrap)
        assert c.produce("raw", pid, 1, 2) == (0, 8)
        c.sock.close()

        assert b.stop() == 0
        b.settings["producer.id.expiration.ms"] = "1"
        b.start()
        c = Raw(b.bootstrap)
        assert c.produce("raw", pid, 1, 9) == (0, 10)  # expired: known no more, any sequence starts it again
        c.sock.close()
    finally:
        b.close()
