import json

import pytest
from click.testing import CliRunner

from broker.config import ConfigError, hostport, load_config, parse_listeners
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
    (["listeners=SASL_PLAINTEXT://127.0.0.1:0"], "sasl.users: a SASL listener needs"),
    (["listeners=SASL_SSL://127.0.0.1:0", "ssl.keystore.location=/k.pem"], "sasl.users: a SASL listener needs"),
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
