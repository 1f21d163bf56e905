import json
import re

import pytest
from click.testing import CliRunner

from broker.api.admin import APPEND, SUBTRACT, apply_ops
from broker.api.configs import (DEFAULT_CONFIG, DYNAMIC_TOPIC_CONFIG, STATIC_BROKER_CONFIG, broker_configs,
                                topic_configs)
from broker.config import DYNAMIC_LOG_KEYS, ConfigError, hostport, load_config, parse_listeners
from broker.log.config import effective_log_config, validate_topic_configs
from tools.cli import main


def test_defaults_match_kafka_semantics():
    cfg = load_config()
    assert cfg["socket.request.max.bytes"] == 104857600
    assert cfg.listeners[0].port == 9092 and cfg.listeners[0].host == "127.0.0.1"
    assert cfg.log_retention_ms == 168 * 3600_000
    assert cfg.log_roll_ms == 168 * 3600_000
    assert cfg["num.io.threads"] >= 1 and cfg["num.network.threads"] >= 1
    assert all(src == "default" for src in cfg.sources.values())


def test_retention_precedence_ms_over_minutes_over_hours():
    cfg = load_config(overrides=["log.retention.hours=1", "log.retention.minutes=5"])
    assert cfg.log_retention_ms == 5 * 60_000
    cfg = load_config(overrides=["log.retention.minutes=5", "log.retention.ms=1234"])
    assert cfg.log_retention_ms == 1234
    assert load_config(overrides=["log.retention.hours=-1"]).log_retention_ms == -1


def test_file_then_flags(tmp_path):
    props = tmp_path / "server.properties"
    props.write_text("# comment\nnum.partitions=3\nlog.dirs = /tmp/a,/tmp/b\nbroker.id: 7\n")
    cfg = load_config(str(props), ["num.partitions=5"])
    assert cfg["num.partitions"] == 5 and cfg.sources["num.partitions"] == "flag"
    assert cfg["broker.id"] == 7 and cfg.sources["broker.id"] == "file"
    assert cfg.log_dirs == ("/tmp/a", "/tmp/b")


@pytest.mark.parametrize("setting, fragment", [
    ("num.io.thread=2", "did you mean num.io.threads"),
    ("num.partitions=0", "num.partitions: 0 is out of range"),
    ("auto.create.topics.enable=maybe", "expected true or false"),
    ("listeners=127.0.0.1:9092", "expected NAME://host:port"),
    ("listeners=PLAINTEXT://127.0.0.1:70000", "port out of range"),
    ("log.message.timestamp.type=Wallclock", "not one of CreateTime, LogAppendTime"),
    ("message.max.bytes=lots", "expected an integer"),
])
def test_bad_settings_name_the_key(setting, fragment):
    with pytest.raises(ConfigError, match=fragment.replace(".", r"\.")):
        load_config(overrides=[setting])


def test_cli_exits_2_on_bad_config(tmp_path):
    runner = CliRunner()
    r = runner.invoke(main, ["start", "--set", "log.segment.byte=100"])
    assert r.exit_code == 2
    assert "log.segment.byte" in r.output and "log.segment.bytes" in r.output
    r = runner.invoke(main, ["start", "--set", f"log.dirs={tmp_path}", "--set", "num.network.threads=-1"])
    assert r.exit_code == 2 and "num.network.threads" in r.output


def test_config_show_reports_sources(tmp_path):
    props = tmp_path / "server.properties"
    props.write_text("num.partitions=3\n")
    r = CliRunner().invoke(main, ["config", "show", "--config", str(props), "--set", "num.io.threads=4",
                                  "--format", "json"])
    assert r.exit_code == 0, r.output
    shown = json.loads(r.output)
    assert shown["num.partitions"] == {"value": "3", "source": "file"}
    assert shown["num.io.threads"] == {"value": "4", "source": "flag"}
    assert shown["socket.request.max.bytes"] == {"value": "104857600", "source": "default"}
    text = CliRunner().invoke(main, ["config", "show", "--set", "num.io.threads=4"]).output
    line = next(l for l in text.splitlines() if l.startswith("num.io.threads "))
    assert "4" in line and "(flag)" in line


def test_an_ipv6_listener_is_written_back_in_brackets():
    (v6, v4) = parse_listeners("PLAINTEXT://[::1]:9092, PLAINTEXT://127.0.0.1:9093")
    assert (v6.host, v6.port) == ("::1", 9092)
    assert str(v6) == "PLAINTEXT://[::1]:9092" and str(v4) == "PLAINTEXT://127.0.0.1:9093"
    assert parse_listeners(str(v6)) == (v6,)
    assert hostport("::1", 9404) == "[::1]:9404" and hostport("localhost", 9092) == "localhost:9092"


@pytest.mark.parametrize("settings,fragment", [
    (["listeners=SASL_PLAINTEXT://127.0.0.1:0"], "sasl.users: a SASL listener with PLAIN or SCRAM needs"),
    (["listeners=SASL_SSL://127.0.0.1:0", "ssl.keystore.location=/k.pem"], "sasl.users: a SASL listener with PLAIN or SCRAM needs"),
    (["listeners=SSL://127.0.0.1:0"], "ssl.keystore.location: a TLS listener needs"),
    (["listeners=SSL://127.0.0.1:0", "ssl.keystore.location=/k.pem", "ssl.client.auth=required"],
     "ssl.truststore.location: ssl.client.auth needs"),
    (["ssl.client.auth=sometimes"], "not one of none, requested, required"),
    (["listeners=SASL_PLAINTEXT://127.0.0.1:0", "sasl.users=alice"], "user:password pairs"),
    (["listeners=SASL_PLAINTEXT://127.0.0.1:0", "sasl.users=a:b", "sasl.enabled.mechanisms=GSSAPI"],
     "GSSAPI not served"),
    (["listeners=TLS://127.0.0.1:0"], "not one of PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL"),
    (["listeners=SASL_PLAINTEXT://127.0.0.1:0,PLAINTEXT://127.0.0.1:0", "sasl.users=a:b",
      "etcd.connect=127.0.0.1:2379"], "inter.broker.sasl.user: a SASL inter-broker listener needs"),
    (["listeners=PLAINTEXT://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:0", "sasl.users=a:b",
      "inter.broker.listener.name=SASL_PLAINTEXT", "inter.broker.sasl.user=nobody"], "needs a user of sasl.users"),
    (["inter.broker.listener.name=SSL"], "SSL is not one of the listeners"),
    (["sasl.mechanism.inter.broker.protocol=GSSAPI"], "not one of PLAIN"),
    (["listeners=PLAINTEXT://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:0", "sasl.users=a:b",
      "advertised.listeners=PLAINTEXT://h:1"], "same listeners"),
    (["authorizer.class.name=com.example.MyAuthorizer"], "com.example.MyAuthorizer is not served"),
    (["authorizer.class.name=kafka.security.authorizer.AclAuthorizer", "super.users=admin"],
     "'admin' is not a principal"),
])
def test_sasl_listener_settings_are_checked(settings, fragment):
    with pytest.raises(ConfigError, match=fragment.replace(".", r"\.")):
        load_config(overrides=settings)


def test_oauthbearer_alone_needs_no_password_users():
    cfg = load_config(overrides=["listeners=SASL_PLAINTEXT://127.0.0.1:0", "sasl.enabled.mechanisms=OAUTHBEARER",
                                 "sasl.oauthbearer.expected.audience=kafka,kafka-internal"])
    assert list(cfg["sasl.enabled.mechanisms"]) == ["OAUTHBEARER"] and not cfg["sasl.users"]
    assert list(cfg["sasl.oauthbearer.expected.audience"]) == ["kafka", "kafka-internal"]
    with pytest.raises(ConfigError, match="PLAIN or SCRAM needs"):
        load_config(overrides=["listeners=SASL_PLAINTEXT://127.0.0.1:0", "sasl.enabled.mechanisms=OAUTHBEARER,PLAIN"])


def test_an_authorizer_kafka_names_is_accepted():
    cfg = load_config(overrides=["authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
                                 "super.users=User:admin;User:CN=ops,O=Example", "allow.everyone.if.no.acl.found=true"])
    assert cfg["super.users"] == "User:admin;User:CN=ops,O=Example" and cfg["allow.everyone.if.no.acl.found"]
    assert load_config()["authorizer.class.name"] is None


def test_sasl_users_are_never_shown(tmp_path):
    cfg = load_config(overrides=["listeners=PLAINTEXT://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:0",
                                 "sasl.users=alice:s3cret"])
    assert cfg["sasl.users"] == ("alice:s3cret",) and cfg.display_value("sasl.users") == "[hidden]"
    out = CliRunner().invoke(main, ["config", "show", "--set", "sasl.users=alice:s3cret"]).output
    assert "sasl.users" in out and "s3cret" not in out


def test_cleaner_keys_have_kafkas_defaults_and_reach_the_log_defaults():
    cfg = load_config()
    assert cfg["log.cleanup.policy"] == ("delete",) and cfg["log.cleaner.enable"] is True
    assert (cfg["log.cleaner.threads"], cfg["log.cleaner.backoff.ms"], cfg["log.cleaner.dedupe.buffer.size"]) == \
        (1, 15000, 134217728)
    assert cfg["log.cleaner.min.cleanable.ratio"] == 0.5
    assert cfg.display_value("log.cleaner.min.cleanable.ratio") == "0.5"
    defaults = cfg.log_defaults()
    assert defaults["log.cleanup.policy"] == "delete" and defaults["log.cleaner.delete.retention.ms"] == 86400000
    assert defaults["log.cleaner.min.compaction.lag.ms"] == 0
    assert defaults["log.cleaner.max.compaction.lag.ms"] == 2**63 - 1
    for key in ("log.cleanup.policy", "log.cleaner.min.cleanable.ratio", "log.cleaner.delete.retention.ms",
                "log.cleaner.min.compaction.lag.ms", "log.cleaner.max.compaction.lag.ms"):
        assert key in DYNAMIC_LOG_KEYS
    dynamic = cfg.log_defaults({"log.cleanup.policy": ["compact"], "log.cleaner.min.cleanable.ratio": 0.1})
    log = effective_log_config({}, dynamic)
    assert (log.cleanup_policy, log.min_cleanable_dirty_ratio) == ("compact", 0.1)


def test_cleaner_keys_from_the_file_and_flags():
    cfg = load_config(overrides=["log.cleanup.policy=delete, compact", "log.cleaner.min.cleanable.ratio=0.25",
                                 "log.cleaner.enable=false"])
    assert cfg["log.cleanup.policy"] == ("delete", "compact") and cfg["log.cleaner.enable"] is False
    assert effective_log_config({}, cfg.log_defaults()).cleanup_policy == "compact,delete"
    assert cfg["log.cleaner.min.cleanable.ratio"] == 0.25


@pytest.mark.parametrize("setting, fragment", [
    ("log.cleanup.policy=compress", "log.cleanup.policy='compress'"),
    ("log.cleanup.policy=delete,delete", "named twice"),
    ("log.cleanup.policy=", "expected a comma-separated list"),
    ("log.cleaner.min.cleanable.ratio=1.01", "out of range [0, 1]"),
    ("log.cleaner.min.cleanable.ratio=-0.5", "out of range [0, 1]"),
    ("log.cleaner.min.cleanable.ratio=inf", "expected a finite number"),
    ("log.cleaner.min.cleanable.ratio=half", "expected a number"),
    ("log.cleaner.max.compaction.lag.ms=0", "out of range"),
    ("log.cleaner.threads=0", "out of range"),
    ("log.cleaner.dedupe.buffer.size=1024", "out of range"),
])
def test_bad_cleaner_settings_stop_the_start(setting, fragment):
    with pytest.raises(ConfigError, match=re.escape(fragment)):
        load_config(overrides=[setting])


def _described(cfg, overrides, scopes=None):
    return {c["name"]: c for c in topic_configs(cfg, overrides, None, 3, synonyms=True, scopes=scopes)}


def test_describe_configs_shows_the_compaction_keys_with_kafkas_types():
    cfg = load_config()
    topic = _described(cfg, {})
    policy, ratio = topic["cleanup.policy"], topic["min.cleanable.dirty.ratio"]
    assert (policy["value"], policy["config_type"], policy["config_source"]) == ("delete", 7, DEFAULT_CONFIG)
    assert [s["name"] for s in policy["synonyms"]] == ["log.cleanup.policy"]
    assert (ratio["value"], ratio["config_type"], ratio["is_default"]) == ("0.5", 6, True)
    for key in ("delete.retention.ms", "min.compaction.lag.ms", "max.compaction.lag.ms", "retention.ms",
                "segment.ms", "retention.bytes", "flush.messages"):
        assert topic[key]["config_type"] == 5  # LONG
    for key in ("segment.bytes", "max.message.bytes", "min.insync.replicas", "index.interval.bytes"):
        assert topic[key]["config_type"] == 3  # INT, as Kafka types them
    assert topic["max.compaction.lag.ms"]["value"] == str(2**63 - 1)

    topic = _described(cfg, {"cleanup.policy": "compact,delete", "min.cleanable.dirty.ratio": 0.1})
    assert (topic["cleanup.policy"]["value"], topic["cleanup.policy"]["config_source"]) == \
        ("compact,delete", DYNAMIC_TOPIC_CONFIG)
    assert [s["name"] for s in topic["cleanup.policy"]["synonyms"]] == ["cleanup.policy", "log.cleanup.policy"]
    assert topic["min.cleanable.dirty.ratio"]["value"] == "0.1"

    static = load_config(overrides=["log.cleanup.policy=compact"])
    assert _described(static, {})["cleanup.policy"]["value"] == "compact"
    assert _described(static, {})["cleanup.policy"]["config_source"] == STATIC_BROKER_CONFIG
    dynamic = {"": {"log.cleanup.policy": ["compact", "delete"], "log.cleaner.min.cleanable.ratio": 0.2}}
    topic = _described(cfg, {}, dynamic)
    assert (topic["cleanup.policy"]["value"], topic["min.cleanable.dirty.ratio"]["value"]) == ("compact,delete", "0.2")


def test_describe_configs_shows_the_broker_cleaner_keys():
    cfg = load_config()
    broker = {c["name"]: c for c in broker_configs(cfg, None, 3)}
    assert (broker["log.cleanup.policy"]["value"], broker["log.cleanup.policy"]["config_type"]) == ("delete", 7)
    assert (broker["log.cleaner.min.cleanable.ratio"]["value"],
            broker["log.cleaner.min.cleanable.ratio"]["config_type"]) == ("0.5", 6)
    assert (broker["log.cleaner.enable"]["value"], broker["log.cleaner.enable"]["config_type"]) == ("true", 1)
    assert broker["log.cleaner.threads"]["config_type"] == 3 and broker["log.cleaner.threads"]["read_only"]
    assert not broker["log.cleanup.policy"]["read_only"]
    dynamic = broker_configs(cfg, ["log.cleanup.policy"], 3, {"": {"log.cleanup.policy": ("delete", "compact")}})
    assert dynamic[0]["value"] == "delete,compact"


@pytest.mark.parametrize("current, op, value, inherited, expected", [
    ({}, APPEND, "compact", "delete", "delete,compact"),
    ({"cleanup.policy": "delete"}, APPEND, "compact", "delete", "delete,compact"),
    ({}, APPEND, "delete", "compact", "compact,delete"),  # from the value the topic inherits
    ({"cleanup.policy": "compact,delete"}, SUBTRACT, "delete", "delete", "compact"),
    ({"cleanup.policy": "compact"}, APPEND, " compact ", "delete", "compact"),
])
def test_append_and_subtract_edit_cleanup_policy(current, op, value, inherited, expected):
    new = apply_ops(current, [["cleanup.policy", op, value]], {"cleanup.policy": inherited})
    assert new == {"cleanup.policy": expected}
    assert validate_topic_configs(new)["cleanup.policy"] in ("delete", "compact", "compact,delete")
