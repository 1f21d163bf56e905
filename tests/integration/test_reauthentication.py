"""SASL re-authentication (KIP-368) with connections.max.reauth.ms: a login says how long it lasts; librdkafka
logs in again on its connections and keeps producing; a deleted user's connections end at their next
re-authentication; a connection that lets its session lapse is closed; a re-login may not change the
principal or the mechanism."""

from __future__ import annotations

import re
import time

import pytest

from netio.codec import encode_request
from tests.integration.test_sasl import assert_closed, call, connect
from tools.testing import BrokerProcess

SASL_RE = re.compile(r"hpbroker ready .*SASL_PLAINTEXT://127\.0\.0\.1:(\d+)")
REAUTH_MS = 1500
SASL_HANDSHAKE, SASL_AUTHENTICATE, METADATA = 17, 36, 3
ILLEGAL_SASL_STATE, SASL_AUTHENTICATION_FAILED = 34, 58


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    b = BrokerProcess(data_dir=str(tmp_path_factory.mktemp("reauth") / "data"), settings={
        "listeners": "PLAINTEXT://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:0",
        "sasl.users": "alice:alice-pw,bob:bob-pw", "connections.max.reauth.ms": REAUTH_MS,
        "connection.failed.authentication.delay.ms": 0})
    b.start()
    b.sasl_port = next(int(m.group(1)) for m in map(SASL_RE.search, list(b.output)) if m)
    yield b
    b.close()


def plain_login(s, user: str, password: str, cid: int = 1) -> dict:
    assert call(s, SASL_HANDSHAKE, 1, {"mechanism": "PLAIN"}, cid)["error_code"] == 0
    return call(s, SASL_AUTHENTICATE, 1, {"auth_bytes": f"\0{user}\0{password}".encode()}, cid + 1)


def test_a_login_says_how_long_it_lasts_and_a_lapsed_session_is_closed(broker):
    s = connect(broker.sasl_port)
    reply = plain_login(s, "alice", "alice-pw")
    assert reply["error_code"] == 0 and reply["session_lifetime_ms"] == REAUTH_MS
    assert call(s, METADATA, 1, {"topics": []}, 3)["brokers"]
    # Logging in again before the end extends the session.
    time.sleep(REAUTH_MS / 2000)
    assert plain_login(s, "alice", "alice-pw", 4)["error_code"] == 0
    time.sleep(REAUTH_MS / 1000 * 0.7)  # past the first session's end, inside the second's
    assert call(s, METADATA, 1, {"topics": []}, 6)["brokers"]
    time.sleep(REAUTH_MS / 1000)
    s.sendall(encode_request(METADATA, 1, 7, "t", {"topics": []}))
    assert_closed(s)
    # the worker logs before it closes, but the line reaches this process through a pipe and a reader thread
    deadline = time.monotonic() + 5
    while not any("sasl session expired" in line and "principal=User:alice" in line for line in list(broker.output)):
        assert time.monotonic() < deadline, "no 'sasl session expired' line for User:alice"
        time.sleep(0.05)


def test_a_re_login_may_not_change_principal_or_mechanism(broker):
    s = connect(broker.sasl_port)
    assert plain_login(s, "alice", "alice-pw")["error_code"] == 0
    assert call(s, SASL_HANDSHAKE, 1, {"mechanism": "PLAIN"}, 3)["error_code"] == 0
    reply = call(s, SASL_AUTHENTICATE, 1, {"auth_bytes": b"\0bob\0bob-pw"}, 4)
    assert reply["error_code"] == SASL_AUTHENTICATION_FAILED and "principal" in reply["error_message"]
    assert_closed(s)
    s = connect(broker.sasl_port)
    assert plain_login(s, "alice", "alice-pw")["error_code"] == 0
    assert call(s, SASL_HANDSHAKE, 1, {"mechanism": "SCRAM-SHA-256"}, 3)["error_code"] == ILLEGAL_SASL_STATE
    assert_closed(s)


def test_librdkafka_re_authenticates_and_a_deleted_user_is_cut_off(broker):
    from confluent_kafka import Producer
    from confluent_kafka.admin import (AdminClient, ScramCredentialInfo, ScramMechanism,
                                       UserScramCredentialDeletion, UserScramCredentialUpsertion)

    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    info = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 4096)
    admin.alter_user_scram_credentials([UserScramCredentialUpsertion("rita", info, b"rita-pw")])["rita"].result(10)
    errors, delivered = [], []
    p = Producer({"bootstrap.servers": f"127.0.0.1:{broker.sasl_port}", "security.protocol": "SASL_PLAINTEXT",
                  "sasl.mechanism": "SCRAM-SHA-256", "sasl.username": "rita", "sasl.password": "rita-pw",
                  "message.timeout.ms": 3000, "error_cb": lambda e: errors.append(e.code())})

    def produce_for(seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            p.produce("reauth", b"x", on_delivery=lambda e, m: delivered.append(e))
            p.poll(0.1)
        p.flush(5)

    produce_for(REAUTH_MS / 1000 * 3)  # three session lifetimes
    assert delivered and all(e is None for e in delivered), delivered[-3:]
    relogins = [line for line in list(broker.output) if "sasl re-authenticated" in line and "user=rita" in line]
    assert len(relogins) >= 2, relogins
    admin.alter_user_scram_credentials([UserScramCredentialDeletion("rita", ScramMechanism.SCRAM_SHA_256)])[
        "rita"].result(10)
    delivered.clear()
    produce_for(REAUTH_MS / 1000 * 2 + 3)
    assert any(e is not None for e in delivered)  # its re-login was refused: no connection to send on
    assert any("sasl authentication failed" in line and "Invalid user credentials" in line
               for line in list(broker.output))
