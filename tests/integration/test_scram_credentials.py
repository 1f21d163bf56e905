"""SCRAM users managed while the broker runs (KIP-554): confluent-kafka's admin client adds, describes and
deletes credentials; clients log in with them at once, with nothing but the mechanism they were made for;
refused changes get Kafka's errors; credentials survive a restart."""

from __future__ import annotations

import re
import time
import uuid

import pytest

from tools.client import Client
from tools.testing import BrokerProcess

SASL_RE = re.compile(r"hpbroker ready .*SASL_PLAINTEXT://127\.0\.0\.1:(\d+)")
ADMIN_PW = "admin-pw"
DESCRIBE, ALTER = 50, 51
RESOURCE_NOT_FOUND, DUPLICATE_RESOURCE, UNACCEPTABLE_CREDENTIAL, UNSUPPORTED_SASL_MECHANISM = 91, 92, 93, 33


def start(data_dir: str) -> BrokerProcess:
    b = BrokerProcess(data_dir=data_dir, settings={"listeners": "PLAINTEXT://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:0",
                                                   "sasl.users": f"admin:{ADMIN_PW}"})
    b.start()
    b.sasl_port = next(int(m.group(1)) for m in map(SASL_RE.search, list(b.output)) if m)
    return b


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    b = start(str(tmp_path_factory.mktemp("scram") / "data"))
    yield b
    b.close()


def login(b, mechanism: str, user: str, password: str) -> str | None:
    """None when the login succeeded (and a Metadata request was answered), else the error name. PLAIN and
    the refusals through the project's client; a successful SCRAM login through librdkafka, producing."""
    from tools.client import KafkaError

    try:
        with Client(f"127.0.0.1:{b.sasl_port}", timeout=10, sasl=(mechanism, user, password)) as c:
            c.metadata()
    except KafkaError as e:
        return e.name if e.code is not None else str(e)
    if mechanism != "PLAIN":
        from confluent_kafka import Producer

        delivered = []
        p = Producer({"bootstrap.servers": f"127.0.0.1:{b.sasl_port}", "security.protocol": "SASL_PLAINTEXT",
                      "sasl.mechanism": mechanism, "sasl.username": user, "sasl.password": password,
                      "message.timeout.ms": 8000})
        p.produce("scram-logins", b"x", on_delivery=lambda e, m: delivered.append(e))
        p.flush(10)
        assert delivered == [None], f"librdkafka could not log in as {user} with {mechanism}: {delivered}"
    return None


def upsert(admin, user: str, mechanism: str, password: str, iterations: int = 4096) -> None:
    from confluent_kafka.admin import ScramCredentialInfo, ScramMechanism, UserScramCredentialUpsertion

    info = ScramCredentialInfo(ScramMechanism[mechanism.replace("-", "_")], iterations)
    for f in admin.alter_user_scram_credentials([UserScramCredentialUpsertion(user, info,
                                                                              password.encode())]).values():
        f.result(timeout=10)


def test_a_user_added_at_runtime_logs_in_and_is_gone_once_deleted(broker):
    from confluent_kafka.admin import AdminClient, ScramMechanism, UserScramCredentialDeletion

    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    user = f"carol-{uuid.uuid4().hex[:6]}"
    assert login(broker, "SCRAM-SHA-256", user, "c4rol") == "SASL_AUTHENTICATION_FAILED"
    upsert(admin, user, "SCRAM-SHA-256", "c4rol", iterations=8192)
    described = admin.describe_user_scram_credentials([user])[user].result(timeout=10)
    assert [(i.mechanism, i.iterations) for i in described.scram_credential_infos] == \
        [(ScramMechanism.SCRAM_SHA_256, 8192)]
    assert user in admin.describe_user_scram_credentials().result(timeout=10)
    assert login(broker, "SCRAM-SHA-256", user, "c4rol") is None
    assert login(broker, "SCRAM-SHA-256", user, "wrong") == "SASL_AUTHENTICATION_FAILED"
    assert login(broker, "SCRAM-SHA-512", user, "c4rol") == "SASL_AUTHENTICATION_FAILED"  # no credential for it
    assert login(broker, "PLAIN", user, "c4rol") == "SASL_AUTHENTICATION_FAILED"  # PLAIN knows only sasl.users
    # A new password replaces the old one.
    upsert(admin, user, "SCRAM-SHA-256", "n3w")
    assert login(broker, "SCRAM-SHA-256", user, "c4rol") == "SASL_AUTHENTICATION_FAILED"
    assert login(broker, "SCRAM-SHA-256", user, "n3w") is None
    # A stored credential of a sasl.users user wins over its configured password, for SCRAM only.
    upsert(admin, "admin", "SCRAM-SHA-512", "other")
    assert login(broker, "SCRAM-SHA-512", "admin", "other") is None
    assert login(broker, "SCRAM-SHA-512", "admin", ADMIN_PW) == "SASL_AUTHENTICATION_FAILED"
    assert login(broker, "PLAIN", "admin", ADMIN_PW) is None
    deletion = UserScramCredentialDeletion(user, ScramMechanism.SCRAM_SHA_256)
    admin.alter_user_scram_credentials([deletion])[user].result(timeout=10)
    assert login(broker, "SCRAM-SHA-256", user, "n3w") == "SASL_AUTHENTICATION_FAILED"
    with pytest.raises(Exception, match="RESOURCE_NOT_FOUND|does not exist"):
        admin.describe_user_scram_credentials([user])[user].result(timeout=10)


def test_refused_changes_get_kafkas_errors(broker):
    salt, salted = b"s" * 16, b"p" * 32
    with Client(broker.bootstrap) as c:
        reply = c.any.request(ALTER, {"deletions": [{"name": "nobody", "mechanism": 1}], "upsertions": [
            {"name": "few", "mechanism": 1, "iterations": 100, "salt": salt, "salted_password": salted},
            {"name": "many", "mechanism": 2, "iterations": 20000, "salt": salt, "salted_password": salted},
            {"name": "odd", "mechanism": 9, "iterations": 4096, "salt": salt, "salted_password": salted},
            {"name": "twice", "mechanism": 1, "iterations": 4096, "salt": salt, "salted_password": salted},
            {"name": "twice", "mechanism": 1, "iterations": 4096, "salt": salt, "salted_password": salted},
            {"name": "fine", "mechanism": 2, "iterations": 4096, "salt": salt, "salted_password": salted}]})
        assert [(r["user"], r["error_code"]) for r in reply["results"]] == [
            ("nobody", RESOURCE_NOT_FOUND), ("few", UNACCEPTABLE_CREDENTIAL), ("many", UNACCEPTABLE_CREDENTIAL),
            ("odd", UNSUPPORTED_SASL_MECHANISM), ("twice", DUPLICATE_RESOURCE), ("fine", 0)]
        reply = c.any.request(DESCRIBE, {"users": [{"name": "fine"}, {"name": "twice"}, {"name": "few"},
                                                   {"name": "few"}]})
        assert [(r["user"], r["error_code"], [(i["mechanism"], i["iterations"]) for i in r["credential_infos"]])
                for r in reply["results"]] == [("fine", 0, [(2, 4096)]), ("twice", RESOURCE_NOT_FOUND, []),
                                               ("few", DUPLICATE_RESOURCE, []), ("few", DUPLICATE_RESOURCE, [])]


def test_credentials_survive_a_restart(tmp_path):
    from confluent_kafka.admin import AdminClient

    data = str(tmp_path / "data")
    b = start(data)
    try:
        upsert(AdminClient({"bootstrap.servers": b.bootstrap}), "dave", "SCRAM-SHA-512", "d4ve")
        assert login(b, "SCRAM-SHA-512", "dave", "d4ve") is None
    finally:
        assert b.stop() == 0
    b = start(data)
    try:
        deadline = time.monotonic() + 10
        while (outcome := login(b, "SCRAM-SHA-512", "dave", "d4ve")) is not None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert outcome is None
    finally:
        b.close()
