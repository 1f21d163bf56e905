"""SASL/OAUTHBEARER against a real broker: librdkafka's unsecured development tokens, tokens signed by an
identity provider's key (a JWKS served over HTTP on loopback) through confluent-kafka's and kafka-python's
token callbacks, refusals of tokens the broker cannot trust, and a login that lasts only as long as its
token."""

from __future__ import annotations

import http.server
import json
import re
import socket
import struct
import threading
import time
import uuid

import pytest

from netio.codec import decode_response, encode_request
from tests.broker import oauth_tokens as tok
from tests.integration import kafkajs
from tests.integration.test_hostile import recv_exact
from tools.testing import BrokerProcess

SASL_RE = re.compile(r"hpbroker ready .*SASL_PLAINTEXT://127\.0\.0\.1:(\d+)")
SASL_HANDSHAKE, SASL_AUTHENTICATE = 17, 36
SASL_AUTHENTICATION_FAILED = 58
IDP_KEY = tok.rsa_key()
ROGUE_KEY = tok.rsa_key()
ISSUER = "https://idp.example"


def start(tmp_path_factory, name: str, **settings) -> BrokerProcess:
    b = BrokerProcess(data_dir=str(tmp_path_factory.mktemp(name) / "data"), settings={
        "listeners": "PLAINTEXT://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:0", "sasl.enabled.mechanisms": "OAUTHBEARER",
        **settings})
    b.start()
    b.sasl_port = next(int(m.group(1)) for m in map(SASL_RE.search, list(b.output)) if m)
    return b


@pytest.fixture(scope="module")
def unsecured(tmp_path_factory):
    b = start(tmp_path_factory, "oauth-unsecured", **{"connections.max.reauth.ms": "600000"})
    yield b
    b.close()


class _Jwks(http.server.BaseHTTPRequestHandler):
    body = json.dumps(tok.jwks((IDP_KEY, "idp-1"))).encode()

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def signed(tmp_path_factory):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Jwks)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    b = start(tmp_path_factory, "oauth-signed", **{
        "sasl.oauthbearer.jwks.endpoint.url": f"http://127.0.0.1:{server.server_address[1]}/jwks",
        "sasl.oauthbearer.expected.audience": "kafka", "sasl.oauthbearer.expected.issuer": ISSUER,
        "quota.window.num": "2"})
    yield b
    b.close()
    server.shutdown()


def conf(b: BrokerProcess, **more) -> dict:
    return {"bootstrap.servers": f"127.0.0.1:{b.sasl_port}", "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanism": "OAUTHBEARER", **more}


def round_trip(b: BrokerProcess, **more) -> list[bytes]:
    """Produce three records and read them back through a group, logged in with `more`'s token settings."""
    from confluent_kafka import Consumer, Producer

    topic = f"oauth-{uuid.uuid4().hex[:8]}"
    delivered = []
    p = Producer(conf(b, **more, **{"message.timeout.ms": 15000}))
    for i in range(3):
        p.produce(topic, b"v%d" % i, on_delivery=lambda e, m: delivered.append(e))
    p.flush(20)
    assert delivered == [None] * 3, delivered
    c = Consumer(conf(b, **more, **{"group.id": f"g-{topic}", "auto.offset.reset": "earliest"}))
    got = []
    try:
        c.subscribe([topic])
        deadline = time.monotonic() + 30
        while len(got) < 3 and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is not None and m.error() is None:
                got.append(m.value())
    finally:
        c.close()
    return got


def logins(b: BrokerProcess, user: str) -> int:
    return sum(1 for line in list(b.output) if "sasl authenticated" in line and f"user={user}" in line
               and "mechanism=OAUTHBEARER" in line)


def test_librdkafka_unsecured_development_token(unsecured):
    """librdkafka builds an unsecured token from `sasl.oauthbearer.config`; without a JWKS the broker takes it
    (and said at start that it would), and the principal is the token's subject."""
    assert any("oauthbearer accepts unsecured tokens" in line for line in list(unsecured.output))
    assert round_trip(unsecured, **{"sasl.oauthbearer.config": "principal=svc-orders",
                                    "enable.sasl.oauthbearer.unsecure.jwt": True}) == [b"v0", b"v1", b"v2"]
    assert logins(unsecured, "svc-orders") >= 2


def signed_token(key=IDP_KEY, kid: str = "idp-1", sub: str = "svc-billing", **claims) -> str:
    return tok.signed(tok.claims(sub, aud="kafka", iss=ISSUER, **claims), key, kid)


def test_confluent_kafka_signed_token(signed):
    """An identity provider's RS256 token through confluent-kafka's oauth_cb: verified against the JWKS the
    broker fetched over HTTP."""

    def oauth_cb(_config):
        token = signed_token()
        return token, time.time() + 3600

    assert round_trip(signed, oauth_cb=oauth_cb) == [b"v0", b"v1", b"v2"]
    assert logins(signed, "svc-billing") >= 2


def test_kafka_python_signed_token(signed):
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition
    try:
        from kafka.net.sasl.oauth import AbstractTokenProvider
    except ImportError:  # kafka-python before 3.0
        from kafka.sasl.oauth import AbstractTokenProvider

    class Provider(AbstractTokenProvider):
        def token(self):
            return signed_token(sub="svc-python")

    common = {"bootstrap_servers": f"127.0.0.1:{signed.sasl_port}", "security_protocol": "SASL_PLAINTEXT",
              "sasl_mechanism": "OAUTHBEARER", "sasl_oauth_token_provider": Provider()}
    topic = f"oauth-kp-{uuid.uuid4().hex[:8]}"
    p = KafkaProducer(**common)
    p.send(topic, b"from-python").get(timeout=30)
    p.close()
    c = KafkaConsumer(**common, consumer_timeout_ms=15000)
    try:
        c.assign([TopicPartition(topic, 0)])
        c.seek_to_beginning()
        assert [m.value for m in c][:1] == [b"from-python"]
    finally:
        c.close()
    assert logins(signed, "svc-python") >= 1


def handshake(b: BrokerProcess) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", b.sasl_port), timeout=10)
    s.sendall(encode_request(SASL_HANDSHAKE, 1, 1, "raw", {"mechanism": "OAUTHBEARER"}))
    _, body = decode_response(SASL_HANDSHAKE, 1, recv_exact(s, struct.unpack(">i", recv_exact(s, 4))[0]))
    assert body["error_code"] == 0, body
    return s


def authenticate(s: socket.socket, token: bytes, cid: int) -> dict:
    s.sendall(encode_request(SASL_AUTHENTICATE, 1, cid, "raw", {"auth_bytes": token}))
    _, body = decode_response(SASL_AUTHENTICATE, 1, recv_exact(s, struct.unpack(">i", recv_exact(s, 4))[0]))
    return body


@pytest.mark.parametrize("what,token", [
    ("signed by another key", lambda: signed_token(ROGUE_KEY)),
    ("for another audience", lambda: tok.signed(tok.claims(aud="other", iss=ISSUER), IDP_KEY, "idp-1")),
    ("expired", lambda: signed_token(lifetime_s=-3600)),
    ("unsecured", lambda: tok.unsecured(tok.claims(aud="kafka", iss=ISSUER))),
])
def test_tokens_the_broker_cannot_trust_are_refused(signed, what, token):
    """RFC 7628's exchange: the broker answers the bad token with its JSON error, the client acknowledges it,
    and the login fails with SASL_AUTHENTICATION_FAILED."""
    s = handshake(signed)
    try:
        first = authenticate(s, tok.client_first(token()), 2)
        assert first["error_code"] == 0 and json.loads(first["auth_bytes"]) == {"status": "invalid_token"}, what
        second = authenticate(s, b"\x01", 3)
        assert second["error_code"] == SASL_AUTHENTICATION_FAILED, (what, second)
    finally:
        s.close()


def test_a_login_lasts_as_long_as_its_token(unsecured):
    """With connections.max.reauth.ms (600 s here) a token expiring in 20 s gives a 20 s session (KIP-368)."""
    s = handshake(unsecured)
    try:
        body = authenticate(s, tok.client_first(tok.unsecured(tok.claims("short-lived", lifetime_s=20))), 2)
        assert body["error_code"] == 0 and body["auth_bytes"] == b""
        assert 15_000 <= body["session_lifetime_ms"] <= 20_000, body
    finally:
        s.close()


def test_cli_logs_in_with_a_token(signed):
    """`hpbroker --sasl-mechanism OAUTHBEARER --sasl-oauthbearer-token`: a trusted token works, another does
    not (exit 1, the broker's error named)."""
    import os
    import subprocess
    import sys

    def hpbroker(*args: str, token: str) -> subprocess.CompletedProcess:
        env = dict(os.environ, HPBROKER_SASL_OAUTHBEARER_TOKEN=token)
        return subprocess.run([sys.executable, "-m", "tools.cli", *args, "-b", f"127.0.0.1:{signed.sasl_port}",
                               "--sasl-mechanism", "OAUTHBEARER"], capture_output=True, text=True, timeout=60,
                              env=env)

    r = hpbroker("topic", "create", "oauth-cli", "--partitions", "1", token=signed_token(sub="ops"))
    assert r.returncode == 0, r.stderr
    assert logins(signed, "ops") >= 1
    r = hpbroker("topic", "ls", token=signed_token(ROGUE_KEY, sub="ops"))
    assert r.returncode == 1 and "SASL_AUTHENTICATION_FAILED" in r.stderr, r.stderr


@pytest.mark.skipif(kafkajs.missing() is not None, reason=str(kafkajs.missing()))
def test_kafkajs_token_login_under_its_user_s_quota(signed):
    """kafkajs logs in with a signed token; the quotas of the token's user apply to it: it is slowed to them,
    and every record it sent comes back."""
    from tools.client import Client

    user = f"svc-js-{uuid.uuid4().hex[:6]}"
    limit, n = 300_000, 1500
    body = {"entries": [{"entity": [{"entity_type": "user", "entity_name": user}],
                         "ops": [{"key": k, "value": float(limit), "remove": False}
                                 for k in ("producer_byte_rate", "consumer_byte_rate")]}], "validate_only": False}
    with Client(signed.bootstrap) as c:
        assert [e["error_code"] for e in c.controller().request(49, body)["entries"]] == [0]
    time.sleep(0.3)
    topic = f"oauth-js-{uuid.uuid4().hex[:8]}"
    out = kafkajs.run("oauth_quota.js", f"127.0.0.1:{signed.sasl_port}", topic, str(n), timeout=180,
                      TOKEN=signed_token(sub=user))
    assert out.returncode == 0, out.stderr[-3000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert sorted(got["seen"]) == list(range(n))
    bound_ms = (n * 1024 / limit - 2.0 - 0.5) * 1000  # a two-window span lets up to two seconds' worth through
    assert got["produceMs"] >= bound_ms and got["consumeMs"] >= bound_ms, got | {"seen": len(got["seen"])}
    assert logins(signed, user) >= 2
