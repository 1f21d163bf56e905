"""Client quota administration against a real broker: AlterClientQuotas and DescribeClientQuotas through the
`hpbroker quota` command and the raw protocol, for every kind of entity; Kafka's describe filters; removals;
validate_only; every refusal with Kafka's error code; quotas surviving a restart; and the authorizer asking
for ALTER_CONFIGS / DESCRIBE_CONFIGS on the cluster."""

from __future__ import annotations

import json
import re
import time
import uuid

import pytest
from click.testing import CliRunner

from broker.metadata import load_snapshot
from broker.quotas import entity_key, resolve
from netio.codec import ErrorCode
from tools.cli import main
from tools.client import Client
from tools.testing import BrokerProcess

DESCRIBE, ALTER = 48, 49
EXACT, DEFAULT, SPECIFIED = 0, 1, 2
INVALID_REQUEST = int(ErrorCode.INVALID_REQUEST)
P, C = "producer_byte_rate", "consumer_byte_rate"


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    b = BrokerProcess(data_dir=str(tmp_path_factory.mktemp("quotas") / "data")).start()
    yield b
    b.close()


@pytest.fixture
def fresh(tmp_path):
    """A broker of its own, for tests that look at every stored quota."""
    b = BrokerProcess(data_dir=str(tmp_path / "data")).start()
    yield b
    b.close()


def entity(**names) -> list[dict]:
    """entity(user="alice", client_id=None): the protocol's entity list; None names the default."""
    return [{"entity_type": t.replace("_", "-"), "entity_name": n} for t, n in names.items()]


def op(key: str, value: float | None) -> dict:
    return {"key": key, "value": 0.0 if value is None else value, "remove": value is None}


def alter(c: Client, entries: list[tuple[list, list]], validate_only: bool = False, version: int | None = None):
    """[(error code, message)] of AlterClientQuotas, one per entry, each answered with its own entity."""
    reply = c.any.request(ALTER, {"entries": [{"entity": e, "ops": o} for e, o in entries],
                                  "validate_only": validate_only}, highest=version)
    assert [r["entity"] for r in reply["entries"]] == [e for e, _o in entries]
    return [(r["error_code"], r["error_message"]) for r in reply["entries"]]


def component(etype: str, match_type: int, match: str | None = None) -> dict:
    return {"entity_type": etype, "match_type": match_type, "match": match}


def describe(c: Client, components: list[dict], strict: bool = False, version: int | None = None) -> dict:
    """{frozenset of (type, name): {key: value}}; raises AssertionError on an error answer."""
    reply = c.any.request(DESCRIBE, {"components": components, "strict": strict}, highest=version)
    assert reply["error_code"] == 0, reply
    return {frozenset((e["entity_type"], e["entity_name"]) for e in entry["entity"]):
            {v["key"]: v["value"] for v in entry["values"]} for entry in reply["entries"]}


def describe_error(c: Client, components: list[dict], strict: bool = False) -> tuple[int, str]:
    reply = c.any.request(DESCRIBE, {"components": components, "strict": strict})
    assert reply["entries"] is None
    return reply["error_code"], reply["error_message"]


def key(**names) -> frozenset:
    return frozenset((t.replace("_", "-"), n) for t, n in names.items())


def cli(bootstrap: str, *args: str, code: int = 0, login: tuple = ()):
    result = CliRunner().invoke(main, ["quota", args[0], "--bootstrap", bootstrap, *login, *args[1:]],
                                catch_exceptions=False)
    assert result.exit_code == code, (result.output, result.stderr)
    return result


def test_the_quota_command_sets_and_describes_every_kind_of_entity(broker):
    u, app = f"u-{uuid.uuid4().hex[:6]}", f"app-{uuid.uuid4().hex[:6]}"
    cli(broker.bootstrap, "alter", "--user", u, "--add", f"{P}=1048576", "--add", f"{C}=2097152")
    cli(broker.bootstrap, "alter", "--client-id", app, "--add", f"{P}=4096")
    cli(broker.bootstrap, "alter", "--user", u, "--client-id", app, "--add", f"{C}=8192")
    cli(broker.bootstrap, "alter", "--user-default", "--add", f"{P}=100000")
    cli(broker.bootstrap, "alter", "--client-id-default", "--add", f"{C}=200000")
    cli(broker.bootstrap, "alter", "--user", u, "--client-id-default", "--add", f"{P}=300000")
    cli(broker.bootstrap, "alter", "--user-default", "--client-id-default", "--add", f"{P}=400000")

    rows = json.loads(cli(broker.bootstrap, "describe", "--format", "json").stdout)
    every = {json.dumps(r["entity"], sort_keys=True): r["quotas"] for r in rows}
    assert every[json.dumps({"user": u}, sort_keys=True)] == {C: 2097152, P: 1048576}
    assert every[json.dumps({"client-id": app}, sort_keys=True)] == {P: 4096}
    assert every[json.dumps({"user": u, "client-id": app}, sort_keys=True)] == {C: 8192}
    assert every[json.dumps({"user": None}, sort_keys=True)] == {P: 100000}
    assert every[json.dumps({"client-id": None}, sort_keys=True)] == {C: 200000}
    assert every[json.dumps({"user": u, "client-id": None}, sort_keys=True)] == {P: 300000}
    assert every[json.dumps({"user": None, "client-id": None}, sort_keys=True)] == {P: 400000}

    # Entity options describe exactly that entity, as kafka-configs does.
    assert json.loads(cli(broker.bootstrap, "describe", "--user", u, "--format", "json").stdout) == [
        {"entity": {"user": u}, "quotas": {C: 2097152, P: 1048576}}]
    text = cli(broker.bootstrap, "describe", "--user", u, "--client-id-default").stdout
    assert f"user={u},client-id=<default>  {P}=300000" in text
    assert cli(broker.bootstrap, "describe", "--user-default").stdout.splitlines()[1:] == [
        f"user=<default>  {P}=100000"]
    assert cli(broker.bootstrap, "describe", "--client-id", "nobody").stdout.splitlines() == ["ENTITY  QUOTAS"]

    # The same through the protocol, v0 (non-flexible) and v1.
    with Client(broker.bootstrap) as c:
        for version in (0, 1):
            assert describe(c, [component("user", EXACT, u), component("client-id", EXACT, app)], True,
                            version) == {key(user=u, client_id=app): {C: 8192.0}}
            assert describe(c, [component("client-id", DEFAULT)], True, version) == {
                key(client_id=None): {C: 200000.0}}

    # What the enforcement reads: the snapshot's quotas, and the most specific entity wins.
    quotas = load_snapshot(broker.data_dir).quotas
    assert quotas[entity_key({"user": u, "client-id": app})] == {C: 8192.0}
    assert resolve(quotas, C, u, app) == (8192.0, (u, app))
    assert resolve(quotas, P, u, app) == (300000.0, (u, app))
    assert resolve(quotas, P, u, "other")[0] == 300000.0
    assert resolve(quotas, P, "someone", app)[0] == 400000.0


def test_the_protocol_alters_every_kind_of_entity_and_the_filters_match_as_kafkas(fresh):
    with Client(fresh.bootstrap) as c:
        assert describe(c, []) == {}
        results = alter(c, [
            (entity(user="alice"), [op(P, 1000)]),
            (entity(user="bob"), [op(C, 2000)]),
            (entity(client_id="app"), [op(P, 3000)]),
            (entity(user="alice", client_id="app"), [op(P, 4000), op(C, 4500)]),
            (entity(user="alice", client_id=None), [op(P, 5000)]),
            (entity(user=None), [op(C, 6000)]),
            (entity(client_id=None), [op(P, 7000)]),
            (entity(user=None, client_id=None), [op(C, 8000)]),
        ], version=0)
        assert results == [(0, None)] * 8
        everything = describe(c, [])
        assert len(everything) == 8 and everything[key(user="alice", client_id="app")] == {P: 4000.0, C: 4500.0}
        assert describe(c, [], strict=True) == {}  # strict with no component: only the empty entity, never stored

        # exact name: every entity naming alice, or only alice alone when strict
        assert set(describe(c, [component("user", EXACT, "alice")])) == {
            key(user="alice"), key(user="alice", client_id="app"), key(user="alice", client_id=None)}
        assert set(describe(c, [component("user", EXACT, "alice")], strict=True)) == {key(user="alice")}
        # default name
        assert set(describe(c, [component("user", DEFAULT)])) == {key(user=None), key(user=None, client_id=None)}
        assert set(describe(c, [component("user", DEFAULT)], strict=True)) == {key(user=None)}
        # any specified name: every entity with that type, its default included (Kafka's rule)
        assert set(describe(c, [component("client-id", SPECIFIED)], strict=True)) == {
            key(client_id="app"), key(client_id=None)}
        assert set(describe(c, [component("client-id", SPECIFIED)])) == {
            key(client_id="app"), key(client_id=None), key(user="alice", client_id="app"),
            key(user="alice", client_id=None), key(user=None, client_id=None)}
        # two components
        assert set(describe(c, [component("user", SPECIFIED), component("client-id", DEFAULT)], strict=True)) == {
            key(user="alice", client_id=None), key(user=None, client_id=None)}
        assert set(describe(c, [component("user", EXACT, "alice"), component("client-id", EXACT, "app")])) == {
            key(user="alice", client_id="app")}
        # ip is a type Kafka knows; hpbroker stores none
        assert describe(c, [component("ip", SPECIFIED)]) == {}


def test_removing_a_key_and_the_last_key(fresh):
    with Client(fresh.bootstrap) as c:
        assert alter(c, [(entity(user="carol"), [op(P, 1000), op(C, 2000)])]) == [(0, None)]
        assert alter(c, [(entity(user="carol"), [op(P, None)])]) == [(0, None)]
        assert describe(c, [component("user", EXACT, "carol")]) == {key(user="carol"): {C: 2000.0}}
        # removing a key that is not set is no error (Kafka's rule); the entity keeps its other key
        assert alter(c, [(entity(user="carol"), [op(P, None)])]) == [(0, None)]
        assert alter(c, [(entity(user="carol"), [op(C, None)])]) == [(0, None)]
        assert describe(c, [component("user", EXACT, "carol")]) == {}
        assert load_snapshot(fresh.data_dir).quotas == {}
        # a set and a removal in one entry apply together
        assert alter(c, [(entity(client_id="x"), [op(P, 10), op(C, 20)])]) == [(0, None)]
        assert alter(c, [(entity(client_id="x"), [op(P, None), op(C, 30)])], version=0) == [(0, None)]
        assert describe(c, []) == {key(client_id="x"): {C: 30.0}}
    cli(fresh.bootstrap, "alter", "--client-id", "x", "--delete", C)
    assert cli(fresh.bootstrap, "describe").stdout.splitlines() == ["ENTITY  QUOTAS"]


def test_validate_only_checks_and_stores_nothing(fresh):
    with Client(fresh.bootstrap) as c:
        assert alter(c, [(entity(user="dave"), [op(P, 1000)]), (entity(user="eve"), [op(P, 0.5)])],
                     validate_only=True) == [(0, None), (INVALID_REQUEST, f"{P} cannot be a fractional value.")]
        assert describe(c, []) == {}
        assert alter(c, [(entity(user="dave"), [op(P, 1000)])]) == [(0, None)]
        assert alter(c, [(entity(user="dave"), [op(P, None)])], validate_only=True) == [(0, None)]
        assert describe(c, []) == {key(user="dave"): {P: 1000.0}}
    result = cli(fresh.bootstrap, "alter", "--user", "dave", "--add", f"{P}=5", "--validate-only")
    assert "would change" in result.stdout
    assert load_snapshot(fresh.data_dir).quotas == {entity_key({"user": "dave"}): {P: 1000.0}}


def test_refusals_get_kafkas_error_codes_and_change_nothing(fresh):
    refused = [  # one entity each: an entity named by two entries is a refusal of its own
        (entity(ip="10.0.0.1"), [op("connection_creation_rate", 10)], "hpbroker does not enforce ip"),
        (entity(ip=None), [op("connection_creation_rate", 10)], "hpbroker does not enforce ip"),
        (entity(user="a1"), [op("connection_creation_rate", 50)], "hpbroker does not enforce connection_creation"),
        (entity(user="a2"), [op("controller_mutation_rate", 5)], "hpbroker does not enforce controller_mutation"),
        (entity(client_id="a3"), [op("connection_creation_rate", 5)], "hpbroker does not enforce connection_creat"),
        (entity(group="g"), [op(P, 10)], "Unhandled client quota entity type: group"),
        ([], [op(P, 10)], "Invalid empty client quota entity"),
        (entity(user="a4") + entity(user="a5"), [op(P, 10)], "duplicate entity entry user"),
        (entity(user=""), [op(P, 10)], "Empty user not supported"),
        (entity(client_id=""), [op(P, 10)], "Empty client-id not supported"),
        (entity(user="b1"), [op("bytes_per_fortnight", 10)], "Invalid configuration key bytes_per_fortnight"),
        (entity(user="b2"), [op(P, 0)], f"Quota {P} must be greater than 0"),
        (entity(user="b3"), [op(C, -5)], f"Quota {C} must be greater than 0"),
        (entity(user="b4"), [op(P, 1024.5)], f"{P} cannot be a fractional value."),
        (entity(user="b5"), [op(P, 2.0 ** 64)], f"Proposed value for {P} is too large for a LONG."),
        (entity(user="b6"), [op(P, 10), op(P, 20)], f"Duplicate quota key {P}"),
        (entity(user="b7"), [op(P, 10), op(C, 1.5)], f"{C} cannot be a fractional value."),  # nothing of it stored
    ]
    with Client(fresh.bootstrap) as c:
        results = alter(c, [(e, o) for e, o, _m in refused] + [(entity(user="ok"), [op(P, 1e6)])])
        for (e, _o, message), (code, text) in zip(refused, results):
            assert code == INVALID_REQUEST and message in text, (e, code, text)
        assert results[-1] == (0, None)
        # one entity named by two entries: both refused, neither stored
        assert alter(c, [(entity(user="twice"), [op(P, 10)]), (entity(user="twice"), [op(C, 10)])]) == [
            (INVALID_REQUEST, "Ignoring duplicate entity user=twice")] * 2  # Kafka answers the entity once
        assert describe(c, []) == {key(user="ok"): {P: 1e6}}

        # describe filters Kafka refuses: an unknown type is UNSUPPORTED_VERSION (a newer broker may know it)
        assert describe_error(c, [component("group", EXACT, "g")]) == (
            int(ErrorCode.UNSUPPORTED_VERSION), "Unsupported entity type group")
        for components, message in (
                ([component("user", EXACT, "a"), component("user", DEFAULT)], "cannot appear more than once"),
                ([component("", SPECIFIED)], "Invalid empty entity type."),
                ([component("user", EXACT)], "MATCH_TYPE_EXACT, but set match string to null"),
                ([component("user", DEFAULT, "a")], "MATCH_TYPE_DEFAULT, but also specified a match string"),
                ([component("user", SPECIFIED, "a")], "MATCH_TYPE_SPECIFIED, but also specified a match string"),
                ([component("user", 7)], "Unknown match type 7"),
                ([component("ip", SPECIFIED), component("user", SPECIFIED)], "IP filter component should not")):
            code, text = describe_error(c, components)
            assert code == INVALID_REQUEST and message in text, (components, code, text)

    result = cli(fresh.bootstrap, "alter", "--user", "x", "--add", "controller_mutation_rate=50", code=1)
    assert "INVALID_REQUEST" in result.stderr and "hpbroker does not enforce controller_mutation_rate" in result.stderr
    assert f"{P} cannot be a fractional value" in cli(fresh.bootstrap, "alter", "--client-id", "y", "--add", f"{P}=0.5",
                                                      code=1).stderr
    cli(fresh.bootstrap, "alter", "--user", "x", "--add", "producer_byte_rate=fast", code=2)
    cli(fresh.bootstrap, "alter", "--user", "x", "--user-default", "--add", f"{P}=5", code=2)
    cli(fresh.bootstrap, "alter", "--add", f"{P}=5", code=2)  # no entity
    assert load_snapshot(fresh.data_dir).quotas == {entity_key({"user": "ok"}): {P: 1e6}}


def test_quotas_survive_a_restart(tmp_path):
    b = BrokerProcess(data_dir=str(tmp_path / "data")).start()
    try:
        with Client(b.bootstrap) as c:
            assert alter(c, [(entity(user="frank"), [op(P, 1000)]),
                             (entity(user=None, client_id="svc"), [op(C, 2000)])]) == [(0, None)] * 2
        assert b.stop() == 0
        b.start()
        with Client(b.bootstrap) as c:
            assert describe(c, []) == {key(user="frank"): {P: 1000.0}, key(user=None, client_id="svc"): {C: 2000.0}}
        b.kill()  # and after a crash: the store is replaced atomically and fsynced
        b.start()
        with Client(b.bootstrap) as c:
            assert len(describe(c, [])) == 2
    finally:
        b.close()


SASL_RE = re.compile(r"hpbroker ready .*SASL_PLAINTEXT://127\.0\.0\.1:(\d+)")
USERS = {"admin": "admin-pw", "bob": "bob-pw"}


def test_an_authorizer_wants_alter_configs_and_describe_configs_on_the_cluster(tmp_path):
    from broker.security import acl

    b = BrokerProcess(data_dir=str(tmp_path / "data"), settings={
        "listeners": "PLAINTEXT://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:0",
        "sasl.users": ",".join(f"{u}:{p}" for u, p in USERS.items()),
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "super.users": "User:admin"}).start()
    try:
        port = next(int(m.group(1)) for m in map(SASL_RE.search, list(b.output)) if m)

        def login(user: str) -> Client:
            return Client(f"127.0.0.1:{port}", sasl=("PLAIN", user, USERS[user]))

        failed = int(ErrorCode.CLUSTER_AUTHORIZATION_FAILED)
        with login("bob") as c:
            assert alter(c, [(entity(user="bob"), [op(P, 1e9)]), (entity(user=None), [op(P, 1)])]) == [
                (failed, "Cluster authorization failed.")] * 2
            assert describe_error(c, []) == (failed, "Cluster authorization failed.")
        with login("admin") as c:
            assert alter(c, [(entity(user="bob"), [op(P, 2048)])]) == [(0, None)]
            reply = c.any.request(30, {"creations": [{
                "resource_type": acl.CLUSTER, "resource_name": acl.CLUSTER_NAME, "resource_pattern_type": acl.LITERAL,
                "principal": "User:bob", "host": "*", "operation": acl.DESCRIBE_CONFIGS,
                "permission_type": acl.ALLOW}]})
            assert [r["error_code"] for r in reply["results"]] == [0]
        with login("bob") as c:
            deadline = time.monotonic() + 10
            while True:  # the binding reaches the workers with the next snapshot
                reply = c.any.request(DESCRIBE, {"components": [], "strict": False})
                if reply["error_code"] == 0 or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            assert reply["error_code"] == 0 and len(reply["entries"]) == 1
            # DESCRIBE_CONFIGS does not let bob raise his own quota
            assert alter(c, [(entity(user="bob"), [op(P, 1e9)])]) == [(failed, "Cluster authorization failed.")]
        bob = ("--sasl-mechanism", "PLAIN", "--sasl-username", "bob", "--sasl-password", USERS["bob"])
        sasl = f"127.0.0.1:{port}"
        assert "CLUSTER_AUTHORIZATION_FAILED" in cli(sasl, "alter", "--user", "bob", "--add", f"{P}=1",
                                                     code=1, login=bob).stderr
        admin = ("--sasl-mechanism", "PLAIN", "--sasl-username", "admin", "--sasl-password", USERS["admin"])
        assert f"user=bob  {P}=2048" in cli(sasl, "describe", "--user", "bob", login=admin).stdout
    finally:
        b.close()
