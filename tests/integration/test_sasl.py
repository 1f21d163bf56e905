"""SASL_PLAINTEXT listeners against a real broker: confluent-kafka, kafka-python and kcat authenticate with
PLAIN and SCRAM, produce and consume through a group; wrong credentials, requests before authentication
and unknown mechanisms are refused over raw sockets; a PLAINTEXT listener of the same broker needs none."""

from __future__ import annotations

import re
import shutil
import socket
import struct
import subprocess
import time
import uuid

import pytest

from netio.codec import decode_response, encode_request
from tests.integration.test_hostile import recv_exact
from tools.testing import BrokerProcess

USERS = {"alice": "alice-s3cret", "bob": "b:0b"}
SASL_RE = re.compile(r"hpbroker ready .*SASL_PLAINTEXT://127\.0\.0\.1:(\d+)")
SASL_HANDSHAKE, SASL_AUTHENTICATE, API_VERSIONS, METADATA, DESCRIBE_CONFIGS = 17, 36, 18, 3, 32
ILLEGAL_SASL_STATE, UNSUPPORTED_SASL_MECHANISM, SASL_AUTHENTICATION_FAILED = 34, 33, 58


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    b = BrokerProcess(data_dir=str(tmp_path_factory.mktemp("sasl") / "data"), settings={
        "listeners": "PLAINTEXT://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:0",
        "sasl.users": ",".join(f"{u}:{p}" for u, p in USERS.items()), "metrics.listener": "127.0.0.1:0"})
    b.start()
    b.sasl_port = next(int(m.group(1)) for m in map(SASL_RE.search, list(b.output)) if m)
    yield b
    b.close()


def sasl_conf(b, mechanism: str, user: str = "alice", password: str | None = None) -> dict:
    return {"bootstrap.servers": f"127.0.0.1:{b.sasl_port}", "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanism": mechanism, "sasl.username": user,
            "sasl.password": USERS[user] if password is None else password}


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_confluent_kafka_authenticates_produces_and_consumes(broker, mechanism):
    from confluent_kafka import Consumer, Producer
    from confluent_kafka.admin import AdminClient

    conf = sasl_conf(broker, mechanism)
    md = AdminClient(conf).list_topics(timeout=10)
    # Metadata asked through the SASL listener names the SASL listener's address, not the PLAINTEXT one.
    assert [(b.host, b.port) for b in md.brokers.values()] == [("127.0.0.1", broker.sasl_port)]
    topic = f"sasl-{mechanism.lower()}"
    acked = []
    p = Producer(dict(conf, **{"linger.ms": 5}))
    for i in range(200):
        p.produce(topic, f"v{i}".encode(), key=str(i % 3).encode(), on_delivery=lambda e, m: acked.append(e))
    assert p.flush(30) == 0
    assert len(acked) == 200 and all(e is None for e in acked)
    c = Consumer(dict(conf, **{"group.id": f"g-{uuid.uuid4().hex[:8]}", "auto.offset.reset": "earliest"}))
    c.subscribe([topic])
    got = []
    deadline = time.monotonic() + 30
    while len(got) < 200 and time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is not None and not m.error():
            got.append(m.value())
    c.close()
    assert sorted(got) == sorted(f"v{i}".encode() for i in range(200))
    users = {m.group(1) for m in re.finditer(r"sasl authenticated .*user=(\S+) mechanism=" + mechanism,
                                             "\n".join(broker.output))}
    assert users == {"alice"}


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256"])
def test_confluent_kafka_with_a_wrong_password_is_refused(broker, mechanism):
    from confluent_kafka import KafkaError, Producer

    errors = []
    p = Producer(dict(sasl_conf(broker, mechanism, password="nope"), error_cb=errors.append))
    p.produce("sasl-refused", b"never")
    deadline = time.monotonic() + 15
    while not any(e.code() == KafkaError._AUTHENTICATION for e in errors) and time.monotonic() < deadline:
        p.poll(0.2)
    assert any(e.code() == KafkaError._AUTHENTICATION for e in errors), errors
    assert p.flush(0) == 1  # nothing was acknowledged


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-512"])
def test_kafka_python_authenticates_produces_and_consumes(broker, mechanism):
    from kafka import KafkaConsumer, KafkaProducer

    conf = dict(bootstrap_servers=f"127.0.0.1:{broker.sasl_port}", security_protocol="SASL_PLAINTEXT",
                sasl_mechanism=mechanism, sasl_plain_username="bob", sasl_plain_password=USERS["bob"])
    topic = f"kp-sasl-{mechanism.lower()}"
    p = KafkaProducer(**conf)
    futures = [p.send(topic, f"r{i}".encode()) for i in range(50)]
    p.flush()
    assert [f.get(10).offset for f in futures if f.get(10).partition == 0] == \
        list(range(sum(1 for f in futures if f.get(10).partition == 0)))
    p.close()
    c = KafkaConsumer(topic, group_id=f"kg-{uuid.uuid4().hex[:8]}", auto_offset_reset="earliest",
                      consumer_timeout_ms=8000, **conf)
    assert sorted(m.value for m in c) == sorted(f"r{i}".encode() for i in range(50))
    c.close()


def aiokafka_round_trip(conf: dict, topic: str, n: int) -> list[bytes]:
    """n records produced to partition 0 with aiokafka, then read back through a new group."""
    import asyncio

    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    async def run() -> list[bytes]:
        p = AIOKafkaProducer(**conf)
        await p.start()
        try:
            for i in range(n):
                await p.send_and_wait(topic, f"a{i}".encode(), partition=0)
        finally:
            await p.stop()
        c = AIOKafkaConsumer(topic, group_id=f"ag-{uuid.uuid4().hex[:8]}", auto_offset_reset="earliest", **conf)
        await c.start()
        got: list[bytes] = []
        try:
            deadline = time.monotonic() + 20
            while len(got) < n and time.monotonic() < deadline:
                for records in (await c.getmany(timeout_ms=1000)).values():
                    got.extend(r.value for r in records)
        finally:
            await c.stop()
        return got

    return asyncio.run(run())


def test_aiokafka_authenticates_produces_and_consumes(broker):
    conf = dict(bootstrap_servers=f"127.0.0.1:{broker.sasl_port}", security_protocol="SASL_PLAINTEXT",
                sasl_mechanism="SCRAM-SHA-256", sasl_plain_username="alice", sasl_plain_password=USERS["alice"])
    assert aiokafka_round_trip(conf, "aio-sasl", 20) == [f"a{i}".encode() for i in range(20)]


@pytest.mark.skipif(shutil.which("kcat") is None, reason="kcat is not installed (apt-get install kcat)")
def test_kcat_authenticates_with_scram_and_plain(broker):
    """kcat's librdkafka (1.x) sends its own nonce again in front of the server's: accepted, as Kafka does."""
    def kcat(mechanism: str, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(["kcat", "-b", f"127.0.0.1:{broker.sasl_port}", "-X", "security.protocol=SASL_PLAINTEXT",
                               "-X", f"sasl.mechanisms={mechanism}", "-X", "sasl.username=alice",
                               "-X", f"sasl.password={USERS['alice']}", *args],
                              input=stdin, capture_output=True, text=True, timeout=60)

    for mechanism in ("SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"):
        r = kcat(mechanism, "-P", "-t", "kcat-sasl", "-p", "0", stdin=f"via-{mechanism}\n")
        assert r.returncode == 0, r.stderr
    r = kcat("SCRAM-SHA-256", "-C", "-t", "kcat-sasl", "-p", "0", "-e", "-f", "%s\n")
    assert r.stdout.split() == ["via-SCRAM-SHA-256", "via-SCRAM-SHA-512", "via-PLAIN"], r.stderr


# -- raw sockets -------------------------------------------------------------------------------------------


def connect(port: int) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def call(s: socket.socket, api_key: int, version: int, body: dict, cid: int = 1) -> dict:
    s.sendall(encode_request(api_key, version, cid, "sasl-test", body))
    frame = recv_exact(s, struct.unpack(">i", recv_exact(s, 4))[0])
    correlation_id, out = decode_response(api_key, version, memoryview(frame))
    assert correlation_id == cid
    return out


def assert_closed(s: socket.socket) -> None:
    s.settimeout(10)
    try:
        assert s.recv(65536) == b""
    except ConnectionResetError:
        pass


def test_requests_before_authentication_close_the_connection(broker):
    s = connect(broker.sasl_port)
    assert call(s, API_VERSIONS, 0, {})["error_code"] == 0  # allowed first, as Kafka allows it
    s.sendall(encode_request(METADATA, 1, 2, "sasl-test", {"topics": None}))
    assert_closed(s)
    # a handshake, then anything but SaslAuthenticate
    s = connect(broker.sasl_port)
    assert call(s, SASL_HANDSHAKE, 1, {"mechanism": "PLAIN"})["error_code"] == 0
    s.sendall(encode_request(METADATA, 1, 2, "sasl-test", {"topics": None}))
    assert_closed(s)


def test_an_unauthenticated_client_may_not_send_a_large_frame(broker):
    s = connect(broker.sasl_port)
    s.sendall(struct.pack(">i", 524289) + b"\0" * 64)  # sasl.server.max.receive.size + 1
    assert_closed(s)
    s = connect(broker.port)  # the PLAINTEXT listener keeps socket.request.max.bytes
    s.sendall(encode_request(METADATA, 1, 1, "sasl-test", {"topics": None}))
    assert recv_exact(s, 4)


def test_unknown_mechanism_and_wrong_password_are_answered_then_closed(broker):
    s = connect(broker.sasl_port)
    r = call(s, SASL_HANDSHAKE, 1, {"mechanism": "GSSAPI"})
    assert r["error_code"] == UNSUPPORTED_SASL_MECHANISM
    assert r["mechanisms"] == ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]
    assert_closed(s)
    s = connect(broker.sasl_port)
    call(s, SASL_HANDSHAKE, 1, {"mechanism": "PLAIN"})
    t0 = time.monotonic()
    r = call(s, SASL_AUTHENTICATE, 1, {"auth_bytes": b"\0alice\0wrong"}, cid=2)
    assert time.monotonic() - t0 >= 0.1  # connection.failed.authentication.delay.ms
    assert r["error_code"] == SASL_AUTHENTICATION_FAILED and "Invalid username or password" in r["error_message"]
    assert_closed(s)
    # a second guess sent before the refusal arrives is not taken: the connection closes after the answer
    s = connect(broker.sasl_port)
    call(s, SASL_HANDSHAKE, 1, {"mechanism": "PLAIN"})
    s.sendall(encode_request(SASL_AUTHENTICATE, 1, 2, "sasl-test", {"auth_bytes": b"\0alice\0wrong"}))
    s.sendall(encode_request(SASL_AUTHENTICATE, 1, 3, "sasl-test", {"auth_bytes": b"\0alice\0" +
                                                                    USERS["alice"].encode()}))
    cid, r = decode_response(SASL_AUTHENTICATE, 1, memoryview(recv_exact(s, struct.unpack(">i", recv_exact(s, 4))[0])))
    assert cid == 2 and r["error_code"] == SASL_AUTHENTICATION_FAILED
    peer = re.compile(rf"peer=127\.0\.0\.1:{s.getsockname()[1]}(\s|$)")
    assert_closed(s)
    lines = [line for line in broker.output if peer.search(line)]
    assert any("request before sasl authentication" in line for line in lines), lines
    assert not any("sasl authenticated" in line for line in lines), lines


def test_v0_handshake_then_raw_tokens(broker):
    """SaslHandshake v0: the tokens follow as bare size-prefixed frames, then Kafka requests as usual."""
    s = connect(broker.sasl_port)
    assert call(s, SASL_HANDSHAKE, 0, {"mechanism": "PLAIN"})["error_code"] == 0
    token = b"\0bob\0" + USERS["bob"].encode()
    s.sendall(struct.pack(">i", len(token)) + token)
    assert recv_exact(s, 4) == b"\0\0\0\0"  # PLAIN's empty answer
    assert call(s, METADATA, 1, {"topics": None}, cid=7)["brokers"][0]["port"] == broker.sasl_port
    # a wrong password in raw mode: the connection is closed without an answer
    s = connect(broker.sasl_port)
    call(s, SASL_HANDSHAKE, 0, {"mechanism": "PLAIN"})
    token = b"\0bob\0wrong"
    s.sendall(struct.pack(">i", len(token)) + token)
    assert_closed(s)


def test_plaintext_listener_needs_no_sasl_and_hides_the_users(broker):
    s = connect(broker.port)
    md = call(s, METADATA, 1, {"topics": None})
    assert [(b["host"], b["port"]) for b in md["brokers"]] == [("127.0.0.1", broker.port)]
    r = call(s, DESCRIBE_CONFIGS, 1, {"resources": [{"resource_type": 4, "resource_name": "0",
                                                     "configuration_keys": ["sasl.users"]}],
                                      "include_synonyms": False}, cid=2)
    (entry,) = r["results"][0]["configs"]
    assert entry["name"] == "sasl.users" and entry["value"] is None and entry["is_sensitive"]
    r = call(s, SASL_HANDSHAKE, 1, {"mechanism": "PLAIN"}, cid=3)
    assert r["error_code"] == ILLEGAL_SASL_STATE
    assert_closed(s)


def hpbroker(*args: str, env: dict | None = None, stdin: str | None = None) -> subprocess.CompletedProcess:
    import os
    import sys

    return subprocess.run([sys.executable, "-m", "tools.cli", *args], input=stdin, capture_output=True, text=True,
                          timeout=60, env=dict(os.environ, **(env or {})))


def test_cli_logs_in_with_each_mechanism(broker):
    bootstrap = f"127.0.0.1:{broker.sasl_port}"
    r = hpbroker("topic", "create", "cli-sasl", "--partitions", "2", "-b", bootstrap,
                 "--sasl-mechanism", "SCRAM-SHA-512", "--sasl-username", "alice", "--sasl-password", USERS["alice"])
    assert r.returncode == 0, r.stderr
    env = {"HPBROKER_BOOTSTRAP": bootstrap, "HPBROKER_SASL_MECHANISM": "SCRAM-SHA-256",
           "HPBROKER_SASL_USERNAME": "bob", "HPBROKER_SASL_PASSWORD": USERS["bob"]}
    r = hpbroker("produce", "cli-sasl", "--partition", "1", env=env, stdin="one\ntwo\n")
    assert r.returncode == 0, r.stderr
    r = hpbroker("consume", "cli-sasl", "--partition", "1", "--from-beginning", "--max", "2",
                 env=dict(env, HPBROKER_SASL_MECHANISM="PLAIN"))
    assert r.returncode == 0 and r.stdout.split() == ["one", "two"], r.stderr
    r = hpbroker("topic", "ls", env=dict(env, HPBROKER_SASL_PASSWORD="wrong"))
    assert r.returncode == 1 and "SASL_AUTHENTICATION_FAILED" in r.stderr
    r = hpbroker("topic", "ls", "-b", f"127.0.0.1:{broker.port}", env=env)  # the PLAINTEXT listener
    assert r.returncode == 1 and "ILLEGAL_SASL_STATE" in r.stderr


def test_logins_are_counted_in_metrics(broker):
    import urllib.request

    from tools.top.promtext import parse, total

    def counts() -> tuple[int, int]:
        with urllib.request.urlopen(broker.metrics_url, timeout=10) as r:
            m = parse(r.read().decode())
        return (int(total(m, "hpbroker_successful_authentications_total")),
                int(total(m, "hpbroker_failed_authentications_total")))

    before = counts()
    s = connect(broker.sasl_port)
    call(s, SASL_HANDSHAKE, 1, {"mechanism": "PLAIN"})
    assert call(s, SASL_AUTHENTICATE, 1, {"auth_bytes": b"\0alice\0" + USERS["alice"].encode()}, cid=2)["error_code"] == 0
    s.close()
    s = connect(broker.sasl_port)
    call(s, SASL_HANDSHAKE, 1, {"mechanism": "SCRAM-SHA-256"})
    r = call(s, SASL_AUTHENTICATE, 1, {"auth_bytes": b"n,,n=nobody,r=abc"}, cid=2)
    assert r["error_code"] == SASL_AUTHENTICATION_FAILED
    s.close()
    assert counts() == (before[0] + 1, before[1] + 1)
