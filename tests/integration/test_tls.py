"""SSL and SASL_SSL listeners against a real broker: confluent-kafka, kafka-python, aiokafka and kcat verify
the broker's certificate, produce and consume (fetch responses are read from the segments and encrypted,
not sent with sendfile); client certificates when ssl.client.auth asks; plaintext sent to a TLS port, or an
unknown client certificate, closes only that connection."""

from __future__ import annotations

import re
import shutil
import socket
import ssl
import struct
import subprocess
import sys
import time
import uuid

import pytest

from netio.codec import decode_response, encode_request
from tests.integration.test_sasl import aiokafka_round_trip
from tools.testing import BrokerProcess, make_test_certificates

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed (its CLI "
                                                                        "makes the test certificates)")

PORT_RE = {name: re.compile(rf"hpbroker ready .*[,=]{name}://127\.0\.0\.1:(\d+)")
           for name in ("SSL", "SASL_SSL")}
METADATA = 3


@pytest.fixture(scope="module")
def certs(tmp_path_factory) -> dict[str, str]:
    return make_test_certificates(tmp_path_factory.mktemp("certs"))


def start(tmp_path_factory, settings: dict) -> BrokerProcess:
    b = BrokerProcess(data_dir=str(tmp_path_factory.mktemp("tls") / "data"), settings=settings)
    b.start()
    out = "\n".join(b.output)
    b.tls_ports = {name: int(m.group(1)) for name, rx in PORT_RE.items() if (m := rx.search(out))}
    return b


@pytest.fixture(scope="module")
def broker(tmp_path_factory, certs):
    b = start(tmp_path_factory, {"listeners": "PLAINTEXT://127.0.0.1:0,SSL://127.0.0.1:0,SASL_SSL://127.0.0.1:0",
                                 "ssl.keystore.location": certs["keystore"],
                                 "sasl.users": "alice:alice-s3cret"})
    yield b
    b.close()


@pytest.fixture(scope="module")
def mtls_broker(tmp_path_factory, certs):
    b = start(tmp_path_factory, {"listeners": "PLAINTEXT://127.0.0.1:0,SSL://127.0.0.1:0",
                                 "ssl.keystore.location": certs["keystore"],
                                 "ssl.truststore.location": certs["ca"], "ssl.client.auth": "required"})
    yield b
    b.close()


def confluent_round_trip(conf: dict, topic: str, n: int = 3000, size: int = 2000) -> None:
    """n records of `size` bytes produced and consumed through a group, every byte compared."""
    from confluent_kafka import Consumer, Producer

    acked = []
    p = Producer(dict(conf, **{"linger.ms": 5}))
    for i in range(n):
        p.produce(topic, i.to_bytes(4, "big") * (size // 4), on_delivery=lambda e, m: acked.append(e))
        if i % 500 == 0:
            p.poll(0)
    assert p.flush(30) == 0
    assert len(acked) == n and all(e is None for e in acked)
    c = Consumer(dict(conf, **{"group.id": f"g-{uuid.uuid4().hex[:8]}", "auto.offset.reset": "earliest",
                               "fetch.max.bytes": 4 << 20}))
    c.subscribe([topic])
    seen = set()
    deadline = time.monotonic() + 60
    while len(seen) < n and time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is not None and not m.error():
            v = m.value()
            i = int.from_bytes(v[:4], "big")
            assert v == i.to_bytes(4, "big") * (size // 4)
            seen.add(i)
    c.close()
    assert seen == set(range(n))


@pytest.mark.parametrize("protocol", ["SSL", "SASL_SSL"])
def test_confluent_kafka_over_tls(broker, certs, protocol):
    from confluent_kafka.admin import AdminClient

    port = broker.tls_ports[protocol]
    conf = {"bootstrap.servers": f"127.0.0.1:{port}", "security.protocol": protocol,
            "ssl.ca.location": certs["ca"]}  # librdkafka checks the name: the IP in the certificate
    if protocol == "SASL_SSL":
        conf.update({"sasl.mechanism": "PLAIN", "sasl.username": "alice", "sasl.password": "alice-s3cret"})
    md = AdminClient(conf).list_topics(timeout=10)
    assert [(b.host, b.port) for b in md.brokers.values()] == [("127.0.0.1", port)]
    confluent_round_trip(conf, f"tls-{protocol.lower()}")


def test_kafka_python_and_aiokafka_over_tls(broker, certs):
    from aiokafka.helpers import create_ssl_context
    from kafka import KafkaConsumer, KafkaProducer

    bootstrap = f"127.0.0.1:{broker.tls_ports['SASL_SSL']}"
    conf = dict(bootstrap_servers=bootstrap, security_protocol="SASL_SSL", ssl_cafile=certs["ca"],
                sasl_mechanism="SCRAM-SHA-512", sasl_plain_username="alice", sasl_plain_password="alice-s3cret")
    p = KafkaProducer(**conf)
    for f in [p.send("kp-tls", f"k{i}".encode() * 500, partition=0) for i in range(100)]:
        f.get(10)
    p.close()
    c = KafkaConsumer("kp-tls", group_id=f"kg-{uuid.uuid4().hex[:8]}", auto_offset_reset="earliest",
                      consumer_timeout_ms=8000, **conf)
    assert [m.value for m in c] == [f"k{i}".encode() * 500 for i in range(100)]
    c.close()

    aconf = dict(bootstrap_servers=f"127.0.0.1:{broker.tls_ports['SSL']}", security_protocol="SSL",
                 ssl_context=create_ssl_context(cafile=certs["ca"]))
    assert aiokafka_round_trip(aconf, "aio-tls", 30) == [f"a{i}".encode() for i in range(30)]


@pytest.mark.skipif(shutil.which("kcat") is None, reason="kcat is not installed (apt-get install kcat)")
def test_kcat_over_tls(broker, certs):
    common = ["-b", f"127.0.0.1:{broker.tls_ports['SSL']}", "-X", "security.protocol=SSL",
              "-X", f"ssl.ca.location={certs['ca']}"]
    r = subprocess.run(["kcat", *common, "-P", "-t", "kcat-tls", "-p", "0"], input="one\ntwo\n",
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    r = subprocess.run(["kcat", *common, "-C", "-t", "kcat-tls", "-p", "0", "-e", "-f", "%s\n"],
                       capture_output=True, text=True, timeout=60)
    assert r.stdout.split() == ["one", "two"], r.stderr


def test_client_certificates_when_required(mtls_broker, certs):
    from confluent_kafka import KafkaError, Producer

    port = mtls_broker.tls_ports["SSL"]
    conf = {"bootstrap.servers": f"127.0.0.1:{port}", "security.protocol": "SSL",
            "ssl.ca.location": certs["ca"]}
    confluent_round_trip(dict(conf, **{"ssl.certificate.location": certs["client_cert"],
                                       "ssl.key.location": certs["client_key"]}), "mtls", n=200)
    for extra in ({}, {"ssl.certificate.location": certs["stranger_cert"],
                       "ssl.key.location": certs["stranger_key"]}):
        errors = []
        p = Producer(dict(conf, error_cb=errors.append, **extra))
        p.produce("mtls", b"never")
        deadline = time.monotonic() + 15
        while not errors and time.monotonic() < deadline:
            p.poll(0.2)
        assert errors and all(e.code() in (KafkaError._SSL, KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN)
                              for e in errors), errors
        assert p.flush(0) == 1
    assert any("read failed" in line and "CERTIFICATE" in line.upper() for line in mtls_broker.output)


def test_plaintext_to_a_tls_port_closes_only_that_connection(broker, certs):
    port = broker.tls_ports["SSL"]
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(encode_request(METADATA, 1, 1, "tls-test", {"topics": None}))
    data = b""
    try:
        while chunk := s.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass
    assert data == b"" or data[0] == 0x15, data[:16]  # no Kafka answer: a TLS alert record at most, then EOF
    peer = f"127.0.0.1:{s.getsockname()[1]}"
    deadline = time.monotonic() + 5
    while not any(f"peer={peer}" in line and "read failed" in line for line in broker.output):
        assert time.monotonic() < deadline, broker.log_tail()
        time.sleep(0.05)
    # the same worker still serves TLS clients, and a raw TLS socket speaks Kafka as usual
    ctx = ssl.create_default_context(cafile=certs["ca"])
    with ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10), server_hostname="127.0.0.1") as t:
        t.sendall(encode_request(METADATA, 1, 7, "tls-test", {"topics": None}))
        head = b""
        while len(head) < 4:
            head += t.recv(4 - len(head))
        body = b""
        while len(body) < struct.unpack(">i", head)[0]:
            body += t.recv(65536)
        cid, md = decode_response(METADATA, 1, memoryview(body))
        assert cid == 7 and md["brokers"][0]["port"] == port


def test_a_missing_keystore_stops_the_start(tmp_path):
    r = subprocess.run([sys.executable, "-m", "tools.cli", "start", "--set", "listeners=SSL://127.0.0.1:0",
                        "--set", f"ssl.keystore.location={tmp_path / 'missing.pem'}",
                        "--set", f"log.dirs={tmp_path / 'data'}", "--set", "metrics.listener=none"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "ssl.keystore.location" in r.stderr + r.stdout


def hpbroker(*args: str, env: dict | None = None, stdin: str | None = None) -> subprocess.CompletedProcess:
    import os

    return subprocess.run([sys.executable, "-m", "tools.cli", *args], input=stdin, capture_output=True, text=True,
                          timeout=60, env=dict(os.environ, **(env or {})))


def test_cli_over_tls_and_with_a_client_certificate(broker, mtls_broker, certs):
    env = {"HPBROKER_BOOTSTRAP": f"127.0.0.1:{broker.tls_ports['SASL_SSL']}", "HPBROKER_SSL_CA": certs["ca"],
           "HPBROKER_SASL_MECHANISM": "SCRAM-SHA-256", "HPBROKER_SASL_USERNAME": "alice",
           "HPBROKER_SASL_PASSWORD": "alice-s3cret"}
    assert hpbroker("topic", "create", "cli-tls", "--partitions", "1", env=env).returncode == 0
    r = hpbroker("produce", "cli-tls", env=env, stdin="first\nsecond\n")
    assert r.returncode == 0, r.stderr
    r = hpbroker("consume", "cli-tls", "--from-beginning", "--max", "2", env=env)
    assert r.returncode == 0 and r.stdout.split() == ["first", "second"], r.stderr
    r = hpbroker("topic", "ls", "--tls", "-b", f"127.0.0.1:{broker.tls_ports['SSL']}")  # the system's CAs only
    assert r.returncode == 4 and "CERTIFICATE_VERIFY_FAILED" in r.stderr
    mtls = ["-b", f"127.0.0.1:{mtls_broker.tls_ports['SSL']}", "--ssl-ca", certs["ca"]]
    r = hpbroker("topic", "ls", *mtls, "--ssl-cert", certs["client_cert"], "--ssl-key", certs["client_key"])
    assert r.returncode == 0, r.stderr
    assert hpbroker("topic", "ls", *mtls).returncode == 4
