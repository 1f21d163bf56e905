"""Every CLI command against a live hpbroker, started by the project's own `kafka_broker` pytest plugin."""

import json
import time
import uuid

from click.testing import CliRunner

from tools.cli import main


def run(bootstrap, *args, input=None, code=0):
    result = CliRunner().invoke(main, [*args[:2], "--bootstrap", bootstrap, *args[2:]] if len(args) >= 2
                                else list(args), input=input, catch_exceptions=False)
    assert result.exit_code == code, (result.output, result.stderr)
    return result


def run_json(bootstrap, *args, **kw):
    return json.loads(run(bootstrap, *args[:2], "--format", "json", *args[2:], **kw).stdout)


def fresh(prefix="t"):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_topic_lifecycle(kafka_broker):
    name = fresh()
    run(kafka_broker, "topic", "create", name, "--partitions", "2", "--config", "retention.ms=3600000")
    out = run(kafka_broker, "topic", "create", name, "--partitions", "2", code=1)
    assert "TOPIC_ALREADY_EXISTS" in out.stderr
    listed = run_json(kafka_broker, "topic", "list")
    assert {"name": name, "partitions": 2, "replication_factor": 1, "internal": False} in listed
    assert name in run(kafka_broker, "topic", "ls").stdout

    desc = run_json(kafka_broker, "topic", "describe", name)
    assert [p["partition"] for p in desc["partitions"]] == [0, 1]
    assert all(p["leader"] == 0 and p["high_watermark"] == 0 for p in desc["partitions"])
    configs = {c["name"]: c for c in desc["configs"]}
    assert configs["retention.ms"]["value"] == "3600000" and configs["retention.ms"]["source"] == "topic"
    assert configs["segment.bytes"]["source"] == "default"
    assert "PARTITION  LEADER" in run(kafka_broker, "topic", "describe", name).stdout

    run(kafka_broker, "topic", "alter-config", name, "--set", "retention.bytes=1000000", "--delete", "retention.ms")
    configs = {c["name"]: c for c in run_json(kafka_broker, "topic", "describe", name)["configs"]}
    assert configs["retention.bytes"]["value"] == "1000000" and configs["retention.bytes"]["source"] == "topic"
    assert configs["retention.ms"]["source"] == "default"
    run(kafka_broker, "topic", "alter-config", name, "--set", "cleanup.policy=delete,compact")
    configs = {c["name"]: c for c in run_json(kafka_broker, "topic", "describe", name)["configs"]}
    assert configs["cleanup.policy"]["value"] == "compact,delete" and configs["cleanup.policy"]["source"] == "topic"
    bad = run(kafka_broker, "topic", "alter-config", name, "--set", "cleanup.policy=compress", code=1)
    assert "INVALID_CONFIG" in bad.stderr and "compress" in bad.stderr
    run(kafka_broker, "topic", "alter-config", name, code=2)

    run(kafka_broker, "topic", "add-partitions", name, "--total", "4")
    assert len(run_json(kafka_broker, "topic", "describe", name)["partitions"]) == 4
    assert "INVALID_PARTITIONS" in run(kafka_broker, "topic", "add-partitions", name, "--total", "3", code=1).stderr

    run(kafka_broker, "topic", "delete", name)
    assert "UNKNOWN_TOPIC_OR_PARTITION" in run(kafka_broker, "topic", "describe", name, code=1).stderr


def test_produce_and_consume(kafka_broker):
    name = fresh()
    run(kafka_broker, "topic", "create", name, "--partitions", "3")
    lines = "".join(f"key{i % 4}:value {i}\n" for i in range(40)) + "no key here\n"
    res = run(kafka_broker, "produce", name, "--key-separator", ":", "--header", "src=test", "-H", "n=1", input=lines)
    assert "produced 41 records" in res.stderr

    out = run(kafka_broker, "consume", name, "--from-beginning", "--max", "41", "--format", "json").stdout
    records = [json.loads(line) for line in out.splitlines()]
    assert len(records) == 41
    assert sorted(r["value"] for r in records) == sorted([f"value {i}" for i in range(40)] + ["no key here"])
    by_key = {}
    for r in records:
        assert r["headers"] == {"src": "test", "n": "1"}
        if r["key"] is not None:
            by_key.setdefault(r["key"], set()).add(r["partition"])
    assert all(len(ps) == 1 for ps in by_key.values())  # one key, one partition
    assert [r["value"] for r in records if r["key"] == "key1"] == [f"value {i}" for i in range(1, 40, 4)]

    # --partition and --offset choose where to read; text output carries the requested fields
    p = records[0]["partition"]
    in_p = [r for r in records if r["partition"] == p]
    text = run(kafka_broker, "consume", name, "-p", str(p), "--offset", "1", "--max", "1",
               "--print", "partition,offset,key,headers").stdout.strip()
    second = in_p[1]
    assert text == (f"partition={p}\toffset=1\tkey={second['key'] or ''}\theaders=src=test,n=1\t{second['value']}")

    # a fixed partition; without --from-beginning only new records are read (none here: stops at --timeout)
    run(kafka_broker, "produce", name, "--partition", "2", input="a\nb\n")
    tail = run(kafka_broker, "consume", name, "-p", "2", "--timeout", "0.3")
    assert tail.stdout == "" and "consumed 0 records" in tail.stderr
    assert "UNKNOWN_TOPIC_OR_PARTITION" in run(kafka_broker, "consume", name, "-p", "9", "--max", "1", code=1).stderr


def test_consume_with_group_resumes_where_it_stopped(kafka_broker):
    name, group = fresh(), fresh("g")
    run(kafka_broker, "topic", "create", name, "--partitions", "1")
    run(kafka_broker, "produce", name, input="".join(f"{i}\n" for i in range(10)))
    first = run(kafka_broker, "consume", name, "--group", group, "--from-beginning", "--max", "4").stdout.split()
    second = run(kafka_broker, "consume", name, "--group", group, "--max", "6").stdout.split()
    assert first == ["0", "1", "2", "3"] and second == ["4", "5", "6", "7", "8", "9"]


def test_cluster_info(kafka_broker):
    info = run_json(kafka_broker, "cluster", "info")
    port = int(kafka_broker.rsplit(":", 1)[1])
    assert info["brokers"] == [{"id": 0, "host": "127.0.0.1", "port": port, "rack": None}]
    assert info["controller_id"] == 0 and info["topics"] >= 1 and info["cluster_id"]
    assert "CONTROLLER" in run(kafka_broker, "cluster", "info").stdout


def test_unreachable_broker_exits_4():
    res = CliRunner().invoke(main, ["topic", "list", "--bootstrap", "127.0.0.1:1"])
    assert res.exit_code == 4 and "cannot connect" in res.stderr


def test_bootstrap_from_environment(kafka_broker):
    res = CliRunner(env={"HPBROKER_BOOTSTRAP": kafka_broker}).invoke(main, ["cluster", "info", "--format", "json"])
    assert res.exit_code == 0 and json.loads(res.stdout)["controller_id"] == 0


def _consume_in_group(bootstrap, topic, group, count):
    """A real confluent-kafka member: joins the group, reads `count` records, commits, stays joined."""
    from confluent_kafka import Consumer

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest",
                  "enable.auto.commit": False, "session.timeout.ms": 6000})
    c.subscribe([topic])
    got = 0
    deadline = time.monotonic() + 60
    while got < count and time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is not None and not m.error():
            got += 1
    c.commit(asynchronous=False)
    return c, got


def committed(bootstrap, group):
    return {o["partition"]: o["committed_offset"] for o in run_json(bootstrap, "group", "describe", group)["offsets"]}


def test_group_commands(kafka_broker):
    name, group = fresh(), fresh("g")
    run(kafka_broker, "topic", "create", name, "--partitions", "2")
    run(kafka_broker, "produce", name, "-p", "0", input="".join(f"{i}\n" for i in range(6)))
    run(kafka_broker, "produce", name, "-p", "1", input="".join(f"{i}\n" for i in range(4)))
    consumer, got = _consume_in_group(kafka_broker, name, group, 10)
    assert got == 10
    try:
        assert {"group": group, "protocol_type": "consumer", "state": "Stable", "coordinator": 0} in \
            run_json(kafka_broker, "group", "list")
        desc = run_json(kafka_broker, "group", "describe", group)
        assert desc["state"] == "Stable" and len(desc["members"]) == 1
        assert desc["members"][0]["assignment"] == {name: [0, 1]}
        assert {(o["partition"], o["committed_offset"], o["end_offset"], o["lag"]) for o in desc["offsets"]} == \
            {(0, 6, 6, 0), (1, 4, 4, 0)}
        busy = run(kafka_broker, "group", "reset-offsets", group, "--topic", name, "--to-earliest", code=1)
        assert "NON_EMPTY_GROUP" in busy.stderr
    finally:
        consumer.close()

    rows = run_json(kafka_broker, "group", "reset-offsets", group, "--topic", name, "--to-offset", "2")
    assert [(r["partition"], r["old_offset"], r["new_offset"]) for r in rows] == [(0, 6, 2), (1, 4, 2)]
    desc = run_json(kafka_broker, "group", "describe", group)
    assert desc["state"] == "Empty" and desc["total_lag"] == 4 + 2
    assert "TOTAL LAG    6" in run(kafka_broker, "group", "describe", group).stdout

    run(kafka_broker, "group", "reset-offsets", group, "--topic", name, "--to-latest", "-p", "1")
    run(kafka_broker, "group", "reset-offsets", group, "--topic", name, "--to-earliest", "-p", "0", "--dry-run")
    offsets = committed(kafka_broker, group)
    assert offsets == {0: 2, 1: 4}
    run(kafka_broker, "group", "reset-offsets", group, "--topic", name, "--to-datetime", "2000-01-01T00:00:00Z")
    offsets = committed(kafka_broker, group)
    assert offsets == {0: 0, 1: 0}
    run(kafka_broker, "group", "reset-offsets", group, "--topic", name, "--to-datetime", "2999-01-01T00:00:00Z")
    offsets = committed(kafka_broker, group)
    assert offsets == {0: 6, 1: 4}
    run(kafka_broker, "group", "reset-offsets", group, "--topic", name, code=2)

    run(kafka_broker, "group", "delete", group)
    assert group not in [g["group"] for g in run_json(kafka_broker, "group", "list")]
    assert "GROUP_ID_NOT_FOUND" in run(kafka_broker, "group", "describe", group, code=1).stderr


def test_help_explains_concepts():
    out = CliRunner().invoke(main, ["group", "--help"]).stdout
    assert "lag" in out.lower() and "rebalance" in out.lower()
    assert "Exit codes" in CliRunner().invoke(main, ["topic", "create", "--help"]).stdout


def test_reset_offsets_to_a_datetime_finds_the_first_later_record(kafka_broker):
    from datetime import datetime, timezone

    name, group = fresh(), fresh("g")
    run(kafka_broker, "topic", "create", name, "--partitions", "1")
    run(kafka_broker, "produce", name, input="old1\nold2\nold3\n")
    time.sleep(0.05)
    mark = datetime.now(timezone.utc).isoformat()
    time.sleep(0.05)
    run(kafka_broker, "produce", name, input="new1\nnew2\n")
    rows = run_json(kafka_broker, "group", "reset-offsets", group, "--topic", name, "--to-datetime", mark)
    assert rows == [{"topic": name, "partition": 0, "old_offset": None, "new_offset": 3}]
    assert run(kafka_broker, "consume", name, "--group", group, "--max", "2").stdout.split() == ["new1", "new2"]


def test_consume_reads_what_librdkafka_compressed(kafka_broker):
    """Producers compress; `consume` reads batches in every codec Kafka defines, as librdkafka writes them."""
    from confluent_kafka import Producer

    for codec in ("gzip", "snappy", "lz4", "zstd"):
        name = fresh(codec)
        run(kafka_broker, "topic", "create", name, "--partitions", "1")
        p = Producer({"bootstrap.servers": kafka_broker, "compression.type": codec, "linger.ms": 50})
        values = [f"{codec} record {i} " * 8 for i in range(200)]  # compressible: stored compressed
        for v in values:
            p.produce(name, v.encode())
        assert p.flush(15) == 0
        out = run(kafka_broker, "consume", name, "--from-beginning", "--max", "200").stdout
        assert out.splitlines() == values, codec


def test_consume_reports_records_it_cannot_read(kafka_broker):
    """A stored batch whose compressed records are damaged (the broker checks header and CRC, as it
    stores batches as produced): `consume` says which partition and why, with exit code 1."""
    import struct

    import crc32c

    from netio.codec.records import encode_batch
    from tools.client import Connection, parse_address

    name = fresh("damaged")
    run(kafka_broker, "topic", "create", name, "--partitions", "1")
    plain = encode_batch([(None, b"v", [])], 5)
    bad = bytearray(plain[:61]) + b"\x00not lz4 at all\xff" * 4
    struct.pack_into(">h", bad, 21, 3)  # lz4
    struct.pack_into(">i", bad, 8, len(bad) - 12)
    struct.pack_into(">I", bad, 17, crc32c.crc32c(bytes(bad[21:])))
    conn = Connection(*parse_address(kafka_broker))
    try:
        r = conn.request(0, {"transactional_id": None, "acks": 1, "timeout_ms": 10000, "topic_data": [
            {"name": name, "partition_data": [{"index": 0, "records": bytes(bad)}]}]}, highest=8)
        assert r["responses"][0]["partition_responses"][0]["error_code"] == 0
    finally:
        conn.close()
    res = run(kafka_broker, "consume", name, "--from-beginning", "--max", "1", code=1)
    assert "reading " + name + "-0: CORRUPT_MESSAGE (batch at offset 0: lz4 data does not decompress" in res.stderr
    assert "Traceback" not in res.stderr


def test_acl_commands_say_when_the_broker_has_no_authorizer(kafka_broker):
    assert "SECURITY_DISABLED" in run(kafka_broker, "acl", "list", code=1).stderr
    out = run(kafka_broker, "acl", "add", "--principal", "User:a", "--operation", "read", "--topic", "t", code=1)
    assert "SECURITY_DISABLED" in out.stderr
    assert run(kafka_broker, "acl", "add", "--principal", "User:a", "--operation", "read", code=2)


def test_user_commands_store_list_and_delete_scram_credentials(kafka_broker):
    name = fresh("user")
    run(kafka_broker, "user", "set", name, "--password", "s3cret", "--mechanism", "SCRAM-SHA-512",
        "--iterations", "8192")
    assert run_json(kafka_broker, "user", "list", name) == [
        {"user": name, "mechanism": "SCRAM-SHA-512", "iterations": 8192}]
    run(kafka_broker, "user", "set", name, input="n3w\nn3w\n")  # prompted; every mechanism by default
    assert {r["mechanism"] for r in run_json(kafka_broker, "user", "list", name)} == {"SCRAM-SHA-256",
                                                                                     "SCRAM-SHA-512"}
    assert name in {r["user"] for r in run_json(kafka_broker, "user", "list")}
    run(kafka_broker, "user", "delete", name, "--mechanism", "SCRAM-SHA-256")
    assert [r["mechanism"] for r in run_json(kafka_broker, "user", "list", name)] == ["SCRAM-SHA-512"]
    run(kafka_broker, "user", "delete", name)
    assert "RESOURCE_NOT_FOUND" in run(kafka_broker, "user", "list", name, code=1).stderr
    assert "RESOURCE_NOT_FOUND" in run(kafka_broker, "user", "delete", name, code=1).stderr
    run(kafka_broker, "user", "set", name, "--password", "x", "--iterations", "100", code=2)


def test_cluster_wide_dynamic_defaults_through_the_cli(kafka_broker):
    assert "no dynamic configs" in run(kafka_broker, "cluster", "config").stdout
    run(kafka_broker, "cluster", "alter-config", "--set", "log.retention.bytes=1073741824")
    try:
        rows = run_json(kafka_broker, "cluster", "config")
        assert rows == [{"name": "log.retention.bytes", "value": "1073741824", "source": "dynamic-default",
                         "dynamic": True}]
        every = {r["name"]: r for r in run_json(kafka_broker, "cluster", "config", "--all")}
        assert every["num.io.threads"]["dynamic"] is False and every["log.retention.bytes"]["dynamic"] is True
        assert every["log.retention.ms"]["dynamic"] is True and every["log.retention.ms"]["source"] != "dynamic-default"
        name = fresh()
        run(kafka_broker, "topic", "create", name)
        configs = {c["name"]: c for c in run_json(kafka_broker, "topic", "describe", name)["configs"]}
        assert configs["retention.bytes"]["value"] == "1073741824"
        assert configs["retention.bytes"]["source"] == "dynamic-default"
        out = run(kafka_broker, "cluster", "alter-config", "--set", "num.io.threads=8", code=1)
        assert "INVALID_REQUEST" in out.stderr and "dynamically" in out.stderr
        # one broker's own value, over the cluster-wide one
        run(kafka_broker, "cluster", "alter-config", "--broker", "0", "--set", "log.retention.bytes=2147483648")
        assert run_json(kafka_broker, "cluster", "config", "--broker", "0") == [
            {"name": "log.retention.bytes", "value": "2147483648", "source": "dynamic-broker", "dynamic": True}]
        configs = {c["name"]: c for c in run_json(kafka_broker, "topic", "describe", name)["configs"]}
        assert (configs["retention.bytes"]["value"], configs["retention.bytes"]["source"]) == \
            ("2147483648", "dynamic-broker")
        assert "Unexpected broker id" in run(kafka_broker, "cluster", "alter-config", "--broker", "9", "--set",
                                             "log.retention.bytes=1", code=1).stderr
    finally:
        run(kafka_broker, "cluster", "alter-config", "--delete", "log.retention.bytes")
        run(kafka_broker, "cluster", "alter-config", "--broker", "0", "--delete", "log.retention.bytes")
    assert run_json(kafka_broker, "cluster", "config") == []
    assert run_json(kafka_broker, "cluster", "config", "--broker", "0") == []
