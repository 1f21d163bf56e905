"""`hpbroker topic ...`: create, list, describe, delete, alter-config, add-partitions."""

from __future__ import annotations

import click

from tools.client import ErrorCode, check
from tools.commands.common import EXIT_CODES_HELP, client_command, emit, parse_pairs
from tools.commands.render import render_topic, render_topic_list

CREATE_TOPICS, DELETE_TOPICS, CREATE_PARTITIONS = 19, 20, 37
DESCRIBE_CONFIGS, INCREMENTAL_ALTER_CONFIGS = 32, 44
TOPIC_RESOURCE = 2
CONFIG_SOURCES = {0: "unknown", 1: "topic", 2: "dynamic-broker", 3: "dynamic-default", 4: "broker",
                  5: "default", 6: "broker-logger"}
TIMEOUT_MS = 30000


@click.group(epilog=EXIT_CODES_HELP)
def topic():
    """Create, inspect and change topics.

    A topic is a named stream of records split into partitions. Each partition is an ordered,
    append-only log: records get consecutive offsets, and ordering holds only within a partition, so
    records with the same key (which go to the same partition) stay in order. More partitions let more
    consumers of one group read in parallel. A partition's log keeps records until retention
    (retention.ms / retention.bytes) removes whole old segments; its LOG-START offset is the oldest
    record still kept and its HIGH-WATERMARK the offset the next record will get.
    """


@topic.command("create", epilog=EXIT_CODES_HELP)
@click.argument("name")
@click.option("--partitions", "-p", type=int, default=-1,
              help="Number of partitions (default: the broker's num.partitions).")
@click.option("--replication-factor", "-r", type=int, default=-1,
              help="Copies of each partition (default: the broker's).")
@click.option("--config", "-c", "configs", multiple=True, metavar="KEY=VALUE",
              help="Topic config override, repeatable, e.g. -c retention.ms=3600000.")
@client_command
def create(client, fmt, name, partitions, replication_factor, configs):
    """Create topic NAME."""
    body = {"topics": [{"name": name, "num_partitions": partitions, "replication_factor": replication_factor,
                        "assignments": [], "configs": [{"name": k, "value": v}
                                                       for k, v in parse_pairs(configs, "--config")]}],
            "timeout_ms": TIMEOUT_MS, "validate_only": False}
    reply = client.controller().request(CREATE_TOPICS, body)
    for t in reply["topics"]:
        check(t["error_code"], t.get("error_message"), f"creating topic {name!r}")
    emit(fmt, {"name": name, "created": True}, f"topic {name} created")


def _list_topics(client) -> list[dict]:
    md = client.metadata(None)
    out = []
    for t in sorted(md["topics"], key=lambda t: t["name"]):
        parts = t["partitions"]
        out.append({"name": t["name"], "partitions": len(parts),
                    "replication_factor": len(parts[0]["replica_nodes"]) if parts else 0,
                    "internal": bool(t.get("is_internal"))})
    return out


@topic.command("list", epilog=EXIT_CODES_HELP)
@click.option("--internal/--no-internal", default=True, show_default=True, help="Show internal topics.")
@client_command
def list_(client, fmt, internal):
    """List topics with their partition counts (alias: ls)."""
    topics = [t for t in _list_topics(client) if internal or not t["internal"]]
    emit(fmt, topics, render_topic_list(topics))


@topic.command("ls", hidden=True)
@click.option("--internal/--no-internal", default=True)
@client_command
def ls(client, fmt, internal):
    """List topics (alias of `list`)."""
    topics = [t for t in _list_topics(client) if internal or not t["internal"]]
    emit(fmt, topics, render_topic_list(topics))


def describe_configs(client, name: str) -> list[dict]:
    body = {"resources": [{"resource_type": TOPIC_RESOURCE, "resource_name": name, "configuration_keys": None}],
            "include_synonyms": False, "include_documentation": False}
    reply = client.any.request(DESCRIBE_CONFIGS, body)
    out = []
    for r in reply["results"]:
        check(r["error_code"], r.get("error_message"), f"configs of topic {name!r}")
        for c in sorted(r["configs"], key=lambda c: c["name"]):
            source = c.get("config_source", -1)
            if source in (-1, None):
                source = 5 if c.get("is_default") else 1
            out.append({"name": c["name"], "value": c["value"], "source": CONFIG_SOURCES.get(source, str(source)),
                        "read_only": c["read_only"]})
    return out


@topic.command("describe", epilog=EXIT_CODES_HELP)
@click.argument("name")
@client_command
def describe(client, fmt, name):
    """Show a topic's partitions (leader, replicas, in-sync replicas, log start and high watermark) and its
    configs with where each value comes from (topic override, broker setting or default)."""
    t = client.topic(name)
    parts = sorted(t["partitions"], key=lambda p: p["partition_index"])
    indexes = [p["partition_index"] for p in parts]
    earliest = client.list_offsets(name, {i: -2 for i in indexes})
    latest = client.list_offsets(name, {i: -1 for i in indexes})
    desc = {
        "name": name, "topic_id": t.get("topic_id").hex() if isinstance(t.get("topic_id"), bytes) else None,
        "internal": bool(t.get("is_internal")),
        "partitions": [{"partition": p["partition_index"], "leader": p["leader_id"],
                        "leader_epoch": p.get("leader_epoch", -1), "replicas": list(p["replica_nodes"]),
                        "isr": list(p["isr_nodes"]), "log_start_offset": earliest[p["partition_index"]][0],
                        "high_watermark": latest[p["partition_index"]][0],
                        "status": "OK" if not p["error_code"] else ErrorCode(p["error_code"]).name}
                       for p in parts],
        "configs": describe_configs(client, name),
    }
    emit(fmt, desc, render_topic(desc))


@topic.command("delete", epilog=EXIT_CODES_HELP)
@click.argument("names", nargs=-1, required=True)
@client_command
def delete(client, fmt, names):
    """Delete topics and all their records. This cannot be undone."""
    reply = client.controller().request(DELETE_TOPICS, {"topic_names": list(names), "timeout_ms": TIMEOUT_MS})
    for r in reply["responses"]:
        check(r["error_code"], r.get("error_message"), f"deleting topic {r['name']!r}")
    emit(fmt, {"deleted": list(names)}, "\n".join(f"topic {n} deleted" for n in names))


@topic.command("alter-config", epilog=EXIT_CODES_HELP)
@click.argument("name")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Set a topic override (repeatable).")
@click.option("--delete", "deletes", multiple=True, metavar="KEY",
              help="Remove a topic override so the broker value applies again (repeatable).")
@client_command
def alter_config(client, fmt, name, sets, deletes):
    """Change topic NAME's config overrides; other overrides are kept.

    Changes apply to the live topic: e.g. lowering retention.ms lets the next retention check remove
    older segments, and message.timestamp.type=LogAppendTime makes the broker stamp records on arrival.
    """
    ops = [{"name": k, "config_operation": 0, "value": v} for k, v in parse_pairs(sets, "--set")]
    ops += [{"name": k, "config_operation": 1, "value": None} for k in deletes]
    if not ops:
        raise click.UsageError("nothing to change: give --set KEY=VALUE or --delete KEY")
    body = {"resources": [{"resource_type": TOPIC_RESOURCE, "resource_name": name, "configs": ops}],
            "validate_only": False}
    reply = client.any.request(INCREMENTAL_ALTER_CONFIGS, body)
    for r in reply["responses"]:
        check(r["error_code"], r.get("error_message"), f"altering configs of topic {name!r}")
    emit(fmt, {"name": name, "set": dict(parse_pairs(sets, "--set")), "deleted": list(deletes)},
         f"topic {name} configs altered")


@topic.command("add-partitions", epilog=EXIT_CODES_HELP)
@click.argument("name")
@click.option("--total", type=int, required=True, help="The partition count after the change (must grow).")
@client_command
def add_partitions(client, fmt, name, total):
    """Grow topic NAME to --total partitions.

    Existing records stay where they are; keyed records produced later may map to a different partition
    than before, so per-key ordering across the change is not guaranteed.
    """
    body = {"topics": [{"name": name, "count": total, "assignments": None}], "timeout_ms": TIMEOUT_MS,
            "validate_only": False}
    reply = client.controller().request(CREATE_PARTITIONS, body)
    for r in reply["results"]:
        check(r["error_code"], r.get("error_message"), f"adding partitions to {name!r}")
    emit(fmt, {"name": name, "partitions": total}, f"topic {name} now has {total} partitions")

