"""ACLs against a real broker with the authorizer on: admin clients (confluent-kafka, kafka-python) create,
describe and delete bindings; SASL users, anonymous PLAINTEXT clients and client certificates get what the
bindings grant and Kafka's authorization errors for the rest; bindings survive a restart."""

from __future__ import annotations

import re
import shutil
import time
import uuid

import pytest

from tools.testing import BrokerProcess, make_test_certificates

AUTHORIZER = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
USERS = {"admin": "admin-pw", "alice": "alice-pw", "bob": "bob-pw"}
SASL_RE = re.compile(r"hpbroker ready .*SASL_PLAINTEXT://127\.0\.0\.1:(\d+)")
SSL_RE = re.compile(r"hpbroker ready .*SSL://127\.0\.0\.1:(\d+)")


def start(data_dir: str, **extra) -> BrokerProcess:
    b = BrokerProcess(data_dir=data_dir, settings={
        "listeners": "PLAINTEXT://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:0",
        "sasl.users": ",".join(f"{u}:{p}" for u, p in USERS.items()), "authorizer.class.name": AUTHORIZER,
        "super.users": "User:admin", "num.io.threads": 2, **extra})
    b.start()
    b.sasl_port = next(int(m.group(1)) for m in map(SASL_RE.search, list(b.output)) if m)
    return b


def close(b: BrokerProcess) -> None:
    for key in [k for k in _ADMINS if k[0] == b.sasl_port]:
        del _ADMINS[key]
    b.close()


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    # The broker asks itself for group offsets (lag metrics) through the SASL listener, as its super user.
    b = start(str(tmp_path_factory.mktemp("acls") / "data"), **{
        "metrics.listener": "127.0.0.1:0", "inter.broker.listener.name": "SASL_PLAINTEXT",
        "inter.broker.sasl.user": "admin"})
    yield b
    close(b)


def conf(b, user: str) -> dict:
    return {"bootstrap.servers": f"127.0.0.1:{b.sasl_port}", "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanism": "SCRAM-SHA-256", "sasl.username": user, "sasl.password": USERS[user]}


_ADMINS: dict = {}


def admin(b, user: str = "admin"):
    """One client per broker and user, kept: a client dropped while its futures wait fails them."""
    from confluent_kafka.admin import AdminClient

    key = (b.sasl_port, user)
    if key not in _ADMINS:
        _ADMINS[key] = AdminClient(conf(b, user))
    return _ADMINS[key]


def binding(rtype: str, name: str, principal: str, op: str, permission: str = "ALLOW", pattern: str = "LITERAL",
            host: str = "*"):
    from confluent_kafka.admin import AclBinding, AclOperation, AclPermissionType, ResourcePatternType, ResourceType

    return AclBinding(ResourceType[rtype], name, ResourcePatternType[pattern], principal, host, AclOperation[op],
                      AclPermissionType[permission])


def every(principal: str | None = None):
    from confluent_kafka.admin import (AclBindingFilter, AclOperation, AclPermissionType, ResourcePatternType,
                                       ResourceType)

    return AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, principal, None, AclOperation.ANY,
                            AclPermissionType.ANY)


def create_acls(b, bindings, user: str = "admin") -> None:
    for f in admin(b, user).create_acls(bindings).values():
        f.result(timeout=10)


def wait_for_acls(b, principal: str, count: int) -> list:
    """Bindings reach the workers with the next metadata snapshot, a moment after CreateAcls answered."""
    deadline = time.monotonic() + 10
    while True:
        found = admin(b).describe_acls(every(principal)).result(timeout=10)
        if len(found) == count or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def create_topics(b, *names: str, partitions: int = 1) -> None:
    from confluent_kafka.admin import NewTopic

    for f in admin(b).create_topics([NewTopic(n, partitions, 1) for n in names]).values():
        f.result(timeout=10)


def produce(config: dict, topic: str, n: int = 5, **extra) -> list:
    """Delivery errors (None for each delivered record)."""
    from confluent_kafka import Producer

    errors = []
    p = Producer({**config, "message.timeout.ms": 5000, **extra})
    for i in range(n):
        p.produce(topic, f"v{i}".encode(), on_delivery=lambda e, m: errors.append(e and e.name()))
    p.flush(15)
    return errors


def test_acls_are_created_described_and_deleted_by_an_admin_client(broker):
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AclBindingFilter, AclOperation, AclPermissionType, ResourcePatternType
    from confluent_kafka.admin import ResourceType

    p = f"User:acl-{uuid.uuid4().hex[:6]}"
    made = [binding("TOPIC", "orders", p, "WRITE"), binding("TOPIC", "ord", p, "READ", pattern="PREFIXED"),
            binding("GROUP", "billing", p, "READ"), binding("TOPIC", "orders", p, "DELETE", "DENY", host="10.1.2.3")]
    create_acls(broker, made)
    found = wait_for_acls(broker, p, 4)
    assert sorted(map(str, found)) == sorted(map(str, made))
    # MATCH: every binding that applies to topic "orders" (the literal one and the prefix).
    match = AclBindingFilter(ResourceType.TOPIC, "orders", ResourcePatternType.MATCH, p, None, AclOperation.ANY,
                             AclPermissionType.ANY)
    assert sorted(str(x) for x in admin(broker).describe_acls(match).result(timeout=10)) == \
        sorted(map(str, (made[0], made[1], made[3])))
    # A binding Kafka refuses fails alone.
    futures = admin(broker).create_acls([binding("BROKER", "not-the-cluster", p, "ALTER"),
                                         binding("TOPIC", "refunds", p, "READ")])
    results = list(futures.values())
    with pytest.raises(KafkaException, match="INVALID_REQUEST|kafka-cluster"):
        results[0].result(timeout=10)
    assert results[1].result(timeout=10) is None
    wait_for_acls(broker, p, 5)
    deleted = admin(broker).delete_acls([AclBindingFilter(ResourceType.TOPIC, None, ResourcePatternType.ANY, p, None,
                                                          AclOperation.ANY, AclPermissionType.DENY)])
    assert [str(x) for x in next(iter(deleted.values())).result(timeout=10)] == [str(made[3])]
    assert sorted(map(str, wait_for_acls(broker, p, 4))) == \
        sorted(map(str, made[:3] + [binding("TOPIC", "refunds", p, "READ")]))
    next(iter(admin(broker).delete_acls([every(p)]).values())).result(timeout=10)
    assert wait_for_acls(broker, p, 0) == []


def test_users_get_what_the_acls_grant_and_nothing_else(broker):
    from confluent_kafka import Consumer, KafkaError, TopicPartition

    run = uuid.uuid4().hex[:6]
    granted, secret, group, other_group = f"orders-{run}", f"secret-{run}", f"billing-{run}", f"other-{run}"
    create_topics(broker, granted, secret, partitions=2)
    create_acls(broker, [binding("TOPIC", granted, "User:alice", "WRITE"),
                         binding("TOPIC", granted[:8], "User:alice", "READ", pattern="PREFIXED"),
                         binding("GROUP", group, "User:alice", "READ")])
    wait_for_acls(broker, "User:alice", 3)
    alice = conf(broker, "alice")
    # An idempotent producer gets its id with WRITE on some topic (KIP-679), and writes where it may.
    assert produce(alice, granted, 20, **{"enable.idempotence": True}) == [None] * 20
    assert set(produce(alice, secret, 2)) == {"TOPIC_AUTHORIZATION_FAILED"}
    assert set(produce(conf(broker, "bob"), granted, 2)) == {"TOPIC_AUTHORIZATION_FAILED"}
    # librdkafka learns it from Metadata (DESCRIBE refused) before it would send a Produce
    assert any("authorization denied" in line and "principal=User:bob" in line and "operation=DESCRIBE" in line
               and f"resource=topic:{granted}" in line for line in list(broker.output))

    commits = []
    c = Consumer({**alice, "group.id": group, "auto.offset.reset": "earliest", "enable.auto.commit": False,
                  "on_commit": lambda err, partitions: commits.append(partitions)})
    c.subscribe([granted])
    got = []
    deadline = time.monotonic() + 30
    while len(got) < 20 and time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is not None and not m.error():
            got.append(m.value())
    assert sorted(got) == sorted(f"v{i}".encode() for i in range(20))
    # One commit naming a granted and a refused topic: only the granted offsets are stored.
    c.commit(offsets=[TopicPartition(granted, 0, 3), TopicPartition(secret, 0, 7)], asynchronous=True)
    deadline = time.monotonic() + 15
    while not commits and time.monotonic() < deadline:
        c.poll(0.2)
    # librdkafka reports the request's first error on every partition of it; what was stored shows the rest
    errors = {tp.topic: tp.error.code() if tp.error else None for tp in commits[0]}
    assert errors[secret] == KafkaError.TOPIC_AUTHORIZATION_FAILED
    c.close()
    from confluent_kafka import ConsumerGroupTopicPartitions

    offsets = admin(broker).list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])
    stored = {(tp.topic, tp.partition): tp.offset for tp in next(iter(offsets.values())).result(timeout=10)
              .topic_partitions}
    assert stored == {(granted, 0): 3}
    # The lag metrics see the group: the broker logged in to itself as admin (anonymous may not describe it).
    import urllib.request

    deadline = time.monotonic() + 15
    while True:
        text = urllib.request.urlopen(broker.metrics_url, timeout=10).read().decode()
        if f'hpbroker_group_lag{{group="{group}"' in text or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert f'hpbroker_group_lag{{group="{group}",topic="{granted}",partition="0"}}' in text

    c2 = Consumer({**alice, "group.id": other_group, "auto.offset.reset": "earliest"})
    c2.subscribe([granted])
    error = None
    deadline = time.monotonic() + 15
    while error is None and time.monotonic() < deadline:
        m = c2.poll(0.5)
        if m is not None and m.error():
            error = m.error()
    c2.close()
    assert error is not None and error.code() == KafkaError.GROUP_AUTHORIZATION_FAILED

    # Metadata: bob may describe nothing, alice only her topic; the super user everything.
    assert granted not in admin(broker, "bob").list_topics(timeout=10).topics
    seen = admin(broker, "alice").list_topics(timeout=10).topics
    assert granted in seen and secret not in seen
    assert {granted, secret} <= set(admin(broker).list_topics(timeout=10).topics)


def test_anonymous_plaintext_clients_and_changes_by_non_admins_are_refused(broker):
    from confluent_kafka import KafkaException

    topic = f"anon-{uuid.uuid4().hex[:6]}"
    create_topics(broker, topic)
    assert set(produce({"bootstrap.servers": broker.bootstrap}, topic, 2)) == {"TOPIC_AUTHORIZATION_FAILED"}
    with pytest.raises(KafkaException, match="CLUSTER_AUTHORIZATION_FAILED"):
        create_acls(broker, [binding("TOPIC", topic, "User:bob", "ALL")], user="bob")
    from confluent_kafka.admin import NewTopic

    with pytest.raises(KafkaException, match="TOPIC_AUTHORIZATION_FAILED"):
        next(iter(admin(broker, "bob").create_topics([NewTopic(f"{topic}-new", 1, 1)]).values())).result(10)
    with pytest.raises(KafkaException, match="TOPIC_AUTHORIZATION_FAILED"):
        next(iter(admin(broker, "bob").delete_topics([topic]).values())).result(10)
    assert topic in admin(broker).list_topics(timeout=10).topics
    # The anonymous principal gets what a binding grants it, like any other.
    create_acls(broker, [binding("TOPIC", topic, "User:ANONYMOUS", "WRITE")])
    wait_for_acls(broker, "User:ANONYMOUS", 1)
    assert produce({"bootstrap.servers": broker.bootstrap}, topic, 2) == [None, None]


def test_kafka_python_admin_creates_and_describes_acls(broker):
    from kafka.admin import (ACL, ACLFilter, ACLOperation, ACLPermissionType, ACLResourcePatternType,
                             KafkaAdminClient, ResourcePattern, ResourcePatternFilter, ResourceType)

    principal = f"User:kp-{uuid.uuid4().hex[:6]}"
    client = KafkaAdminClient(bootstrap_servers=f"127.0.0.1:{broker.sasl_port}", security_protocol="SASL_PLAINTEXT",
                              sasl_mechanism="PLAIN", sasl_plain_username="admin", sasl_plain_password=USERS["admin"])
    try:
        acl = ACL(principal, "*", ACLOperation.READ, ACLPermissionType.ALLOW,
                  ResourcePattern(ResourceType.TOPIC, "kp-topic", ACLResourcePatternType.LITERAL))
        result = client.create_acls([acl])
        assert result["failed"] == [] and len(result["succeeded"]) == 1
        wait_for_acls(broker, principal, 1)
        flt = ACLFilter(principal, None, ACLOperation.ANY, ACLPermissionType.ANY,
                        ResourcePatternFilter(ResourceType.ANY, None, ACLResourcePatternType.ANY))
        found, error = client.describe_acls(flt)
        assert [(a.principal, a.operation, a.resource_pattern.resource_name) for a in found] == \
            [(principal, ACLOperation.READ, "kp-topic")]
        deleted = client.delete_acls([flt])
        assert len(deleted[0][1]) == 1
    finally:
        client.close()


def test_acls_survive_a_restart_and_allow_everyone_opens_unnamed_resources(tmp_path):
    data = str(tmp_path / "data")
    b = start(data, **{"allow.everyone.if.no.acl.found": "true"})
    try:
        create_topics(b, "open", "closed")
        plain = {"bootstrap.servers": b.bootstrap}
        assert produce(plain, "open", 2) == [None, None]  # no binding names it
        create_acls(b, [binding("TOPIC", "closed", "User:alice", "WRITE")])
        wait_for_acls(b, "User:alice", 1)
        assert set(produce(plain, "closed", 2)) == {"TOPIC_AUTHORIZATION_FAILED"}
    finally:
        for key in [k for k in _ADMINS if k[0] == b.sasl_port]:
            del _ADMINS[key]
        assert b.stop() == 0
    b = start(data, **{"allow.everyone.if.no.acl.found": "true"})
    try:
        assert [str(x) for x in wait_for_acls(b, "User:alice", 1)] == \
            [str(binding("TOPIC", "closed", "User:alice", "WRITE"))]
        plain = {"bootstrap.servers": b.bootstrap}
        assert set(produce(plain, "closed", 2)) == {"TOPIC_AUTHORIZATION_FAILED"}
        assert produce(conf(b, "alice"), "closed", 2) == [None, None]
    finally:
        close(b)


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed (its CLI makes the test "
                                                            "certificates)")
@pytest.mark.parametrize("rules, principal", [
    ("DEFAULT", "User:CN=client"),  # the subject's RFC 2253 name
    ("RULE:^CN=(cli.*)$/$1-app/U,DEFAULT", "User:CLIENT-APP"),
    ("RULE:^CN=nobody$/x/", None),  # no rule maps the certificate: no principal, no connection
])
def test_a_client_certificate_subject_is_the_principal(tmp_path, rules, principal):
    certs = make_test_certificates(tmp_path)
    b = BrokerProcess(data_dir=str(tmp_path / "data"), settings={
        "listeners": "PLAINTEXT://127.0.0.1:0,SSL://127.0.0.1:0", "ssl.keystore.location": certs["keystore"],
        "ssl.truststore.location": certs["ca"], "ssl.client.auth": "required", "ssl.principal.mapping.rules": rules,
        "authorizer.class.name": AUTHORIZER, "super.users": "User:ANONYMOUS"})
    b.start()
    try:
        port = next(int(m.group(1)) for m in map(SSL_RE.search, list(b.output)) if m)
        from confluent_kafka.admin import AdminClient, NewTopic

        plain_admin = AdminClient({"bootstrap.servers": b.bootstrap})
        for f in plain_admin.create_topics([NewTopic(t, 1, 1) for t in ("certs", "other")]).values():
            f.result(timeout=10)
        for f in plain_admin.create_acls([binding("TOPIC", "certs", principal or "User:x", "WRITE")]).values():
            f.result(timeout=10)
        deadline = time.monotonic() + 10
        while not plain_admin.describe_acls(every(principal or "User:x")).result(timeout=10):
            assert time.monotonic() < deadline, "the binding never showed"
            time.sleep(0.1)
        tls = {"bootstrap.servers": f"127.0.0.1:{port}", "security.protocol": "SSL", "ssl.ca.location": certs["ca"],
               "ssl.certificate.location": certs["client_cert"], "ssl.key.location": certs["client_key"]}
        if principal is None:
            assert set(produce(tls, "certs", 1)) == {"_MSG_TIMED_OUT"}
            assert any("client certificate refused" in line and "CN=client" in line for line in list(b.output))
            return
        assert produce(tls, "certs", 3) == [None] * 3
        assert set(produce(tls, "other", 2)) == {"TOPIC_AUTHORIZATION_FAILED"}
        assert any("authorization denied" in line and principal in line and "resource=topic:other" in line
                   for line in list(b.output))
    finally:
        b.close()


def test_the_acl_command_adds_lists_and_removes(broker):
    import json

    from click.testing import CliRunner

    from tools.cli import main

    login = ["--bootstrap", f"127.0.0.1:{broker.sasl_port}", "--sasl-mechanism", "PLAIN", "--sasl-username"]
    principal = f"User:cli-{uuid.uuid4().hex[:6]}"

    def run(user: str, *args: str, code: int = 0):
        result = CliRunner().invoke(main, ["acl", args[0], *login, user, "--sasl-password", USERS[user], *args[1:]],
                                    catch_exceptions=False)
        assert result.exit_code == code, (result.output, result.stderr)
        return result

    run("admin", "add", "--principal", principal, "--operation", "read", "--operation", "write", "--topic", "cli-t",
        "--group", "cli-g")
    run("admin", "add", "--principal", principal, "--operation", "write", "--topic", "cli-", "--prefixed", "--deny")
    rows = json.loads(run("admin", "list", "--principal", principal, "--format", "json").stdout)
    assert sorted((r["resource_type"], r["resource_name"], r["pattern"], r["operation"], r["permission"])
                  for r in rows) == [("group", "cli-g", "literal", "read", "allow"),
                                     ("group", "cli-g", "literal", "write", "allow"),
                                     ("topic", "cli-", "prefixed", "write", "deny"),
                                     ("topic", "cli-t", "literal", "read", "allow"),
                                     ("topic", "cli-t", "literal", "write", "allow")]
    assert "CLUSTER_AUTHORIZATION_FAILED" in run("bob", "list", code=1).stderr
    assert "INVALID_REQUEST" in run("admin", "add", "--principal", "nocolon", "--operation", "read", "--topic", "x",
                                    code=1).stderr
    removed = json.loads(run("admin", "remove", "--principal", principal, "--group", "cli-g", "--format",
                             "json").stdout)
    assert {(r["resource_name"], r["operation"]) for r in removed} == {("cli-g", "read"), ("cli-g", "write")}
    left = json.loads(run("admin", "list", "--principal", principal, "--format", "json").stdout)
    assert {r["resource_name"] for r in left} == {"cli-t", "cli-"}
    run("admin", "remove", "--principal", principal)
    assert json.loads(run("admin", "list", "--principal", principal, "--format", "json").stdout) == []
    # kafka-acls' --producer and --consumer: what each client needs, and enough for it to work
    run("admin", "add", "--principal", "User:alice", "--producer", "--consumer", "--topic", "cli-pc",
        "--group", "cli-pc-g")
    rows = json.loads(run("admin", "list", "--principal", "User:alice", "--topic", "cli-pc", "--format",
                          "json").stdout)
    assert sorted(r["operation"] for r in rows) == ["create", "describe", "read", "write"]
    assert produce(conf(broker, "alice"), "cli-pc", 3) == [None] * 3  # created on first use (CREATE)
    run("admin", "add", "--principal", "User:x", "--consumer", "--topic", "t", code=2)  # no --group


def test_authorized_operations_are_the_principals_own(broker):
    """KIP-430: Metadata and DescribeCluster report what this principal may do, not everything."""
    from broker.security import acl
    from tools.client import Client

    topic = f"ops-{uuid.uuid4().hex[:6]}"
    create_topics(broker, topic)
    create_acls(broker, [binding("TOPIC", topic, "User:bob", "READ"), binding("TOPIC", topic, "User:bob",
                                                                                "ALTER_CONFIGS")])
    wait_for_acls(broker, "User:bob", 2)
    with Client(f"127.0.0.1:{broker.sasl_port}", sasl=("PLAIN", "bob", USERS["bob"])) as c:
        md = c.any.request(3, {"topics": [{"name": topic, "topic_id": bytes(16)}], "allow_auto_topic_creation": False,
                               "include_cluster_authorized_operations": True,
                               "include_topic_authorized_operations": True}, highest=10)
        ops = {acl.READ, acl.DESCRIBE, acl.ALTER_CONFIGS, acl.DESCRIBE_CONFIGS}
        assert md["topics"][0]["topic_authorized_operations"] == sum(1 << op for op in ops)
        assert md["cluster_authorized_operations"] == 0
    with Client(f"127.0.0.1:{broker.sasl_port}", sasl=("PLAIN", "admin", USERS["admin"])) as c:
        cluster = c.any.request(60, {"include_cluster_authorized_operations": True})
        assert cluster["cluster_authorized_operations"] == sum(1 << op for op in acl.SUPPORTED[acl.CLUSTER])


def test_only_cluster_alter_and_describe_manage_scram_users(broker):
    from tools.client import Client

    with Client(f"127.0.0.1:{broker.sasl_port}", sasl=("PLAIN", "bob", USERS["bob"])) as c:
        reply = c.any.request(51, {"deletions": [], "upsertions": [
            {"name": "mallory", "mechanism": 1, "iterations": 4096, "salt": b"s" * 16, "salted_password": b"p" * 32}]})
        assert [(r["user"], r["error_code"]) for r in reply["results"]] == [("mallory", 31)]  # CLUSTER_AUTH...
        assert c.any.request(50, {"users": None})["error_code"] == 31
    with Client(f"127.0.0.1:{broker.sasl_port}", sasl=("PLAIN", "admin", USERS["admin"])) as c:
        assert c.any.request(50, {"users": [{"name": "mallory"}]})["results"][0]["error_code"] == 91  # not made


def test_aiokafka_gets_what_the_acls_grant(broker):
    """aiokafka (its own protocol code): a granted producer writes and a granted group reads; a refused
    topic and a refused group raise aiokafka's authorization errors."""
    import asyncio

    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from aiokafka.errors import GroupAuthorizationFailedError, TopicAuthorizationFailedError

    run = uuid.uuid4().hex[:6]
    topic, group = f"aio-{run}", f"aio-g-{run}"
    create_topics(broker, topic, f"{topic}-secret")
    create_acls(broker, [binding("TOPIC", topic, "User:alice", "ALL"), binding("GROUP", group, "User:alice", "READ")])
    wait_for_acls(broker, "User:alice", 2)
    conf = dict(bootstrap_servers=f"127.0.0.1:{broker.sasl_port}", security_protocol="SASL_PLAINTEXT",
                sasl_mechanism="SCRAM-SHA-512", sasl_plain_username="alice", sasl_plain_password=USERS["alice"])

    async def scenario() -> tuple[list, type, type]:
        p = AIOKafkaProducer(**conf)
        await p.start()
        try:
            for i in range(5):
                await p.send_and_wait(topic, f"a{i}".encode())
            refused_topic = None
            try:
                await p.send_and_wait(f"{topic}-secret", b"x")
            except TopicAuthorizationFailedError as e:
                refused_topic = type(e)
        finally:
            await p.stop()
        c = AIOKafkaConsumer(topic, group_id=group, auto_offset_reset="earliest", **conf)
        await c.start()
        got = []
        try:
            deadline = time.monotonic() + 20
            while len(got) < 5 and time.monotonic() < deadline:
                for records in (await c.getmany(timeout_ms=500)).values():
                    got.extend(r.value for r in records)
        finally:
            await c.stop()
        c2 = AIOKafkaConsumer(topic, group_id=f"{group}-other", auto_offset_reset="earliest", **conf)
        refused_group = None
        try:
            await c2.start()
            await c2.getmany(timeout_ms=5000)
        except GroupAuthorizationFailedError as e:
            refused_group = type(e)
        finally:
            await c2.stop()
        return got, refused_topic, refused_group

    got, refused_topic, refused_group = asyncio.run(scenario())
    assert sorted(got) == [f"a{i}".encode() for i in range(5)]
    assert refused_topic is TopicAuthorizationFailedError
    assert refused_group is GroupAuthorizationFailedError


@pytest.mark.skipif(shutil.which("kcat") is None, reason="kcat is not installed (apt-get install kcat)")
def test_kcat_lists_only_the_topics_its_user_may_describe(broker):
    import subprocess

    topic = f"kcat-{uuid.uuid4().hex[:6]}"
    create_topics(broker, topic)
    create_acls(broker, [binding("TOPIC", topic, "User:alice", "READ")])
    wait_for_acls(broker, "User:alice", 1)

    def listed(user: str) -> set[str]:
        out = subprocess.run(["kcat", "-b", f"127.0.0.1:{broker.sasl_port}", "-X", "security.protocol=SASL_PLAINTEXT",
                              "-X", "sasl.mechanism=SCRAM-SHA-256", "-X", f"sasl.username={user}",
                              "-X", f"sasl.password={USERS[user]}", "-L", "-J"],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        import json

        return {t["topic"] for t in json.loads(out.stdout)["topics"]}

    assert topic in listed("alice")
    assert topic not in listed("bob")
    assert topic in listed("admin")


def test_kafkajs_manages_acls_and_is_refused_where_they_say(broker):
    import json

    from tests.integration import kafkajs

    if kafkajs.missing() is not None:
        pytest.skip(kafkajs.missing())
    topic = f"kjs-{uuid.uuid4().hex[:6]}"
    out = kafkajs.run("acls.js", f"127.0.0.1:{broker.sasl_port}", topic, f"admin:{USERS['admin']}",
                      f"alice:{USERS['alice']}", f"bob:{USERS['bob']}")
    assert out.returncode == 0, out.stderr[-3000:]
    steps = {s["step"]: s for s in map(json.loads, out.stdout.splitlines())}
    assert [(a["name"], a["principal"], a["operation"]) for a in steps["described"]["acls"]] == \
        [(topic, "User:alice", 4)]
    assert steps["granted"] == {"step": "granted", "ok": True, "errorCode": 0}
    assert steps["refused"]["ok"] is False and steps["refused"]["type"] == "TOPIC_AUTHORIZATION_FAILED"
    assert steps["deleted"]["count"] == 1


def test_refusals_are_counted_in_metrics(broker):
    """hpbroker_authorization_denials_total counts every refused check, remembered decisions included."""
    import urllib.request

    from tools.client import Client
    from tools.top.promtext import parse, total

    def denials() -> int:
        with urllib.request.urlopen(broker.metrics_url, timeout=10) as r:
            return int(total(parse(r.read().decode()), "hpbroker_authorization_denials_total"))

    topic = f"counted-{uuid.uuid4().hex[:6]}"
    create_topics(broker, topic)
    before = denials()
    with Client(f"127.0.0.1:{broker.sasl_port}", sasl=("PLAIN", "bob", USERS["bob"])) as c:
        for i in range(3):  # the same question three times on one connection: logged once, counted thrice
            reply = c.any.request(2, {"replica_id": -1, "isolation_level": 0, "topics": [
                {"name": topic, "partitions": [{"partition_index": 0, "current_leader_epoch": -1,
                                                "timestamp": -1}]}]})
            assert reply["topics"][0]["partitions"][0]["error_code"] == 29  # TOPIC_AUTHORIZATION_FAILED
    deadline = time.monotonic() + 10
    while denials() < before + 3:
        assert time.monotonic() < deadline, (before, denials())
        time.sleep(0.2)
    logged = [line for line in list(broker.output) if "authorization denied" in line
              and f"resource=topic:{topic}" in line and "operation=DESCRIBE" in line]
    assert len(logged) == 1


def test_only_cluster_alter_and_describe_reassign_partitions(broker):
    from tools.client import Client

    moves = {"timeout_ms": 1000, "topics": [{"name": "anything", "partitions": [{"partition_index": 0,
                                                                                  "replicas": [0]}]}]}
    with Client(f"127.0.0.1:{broker.sasl_port}", sasl=("PLAIN", "bob", USERS["bob"])) as c:
        reply = c.any.request(45, moves)
        assert reply["error_code"] == 31  # CLUSTER_AUTHORIZATION_FAILED, on the partition too
        assert reply["responses"][0]["partitions"][0]["error_code"] == 31
        assert c.any.request(46, {"timeout_ms": 1000, "topics": None})["error_code"] == 31
    with Client(f"127.0.0.1:{broker.sasl_port}", sasl=("PLAIN", "admin", USERS["admin"])) as c:
        reply = c.any.request(45, moves)
        assert reply["error_code"] == 0 and reply["responses"][0]["partitions"][0]["error_code"] == 3
        assert c.any.request(46, {"timeout_ms": 1000, "topics": None})["error_code"] == 0
