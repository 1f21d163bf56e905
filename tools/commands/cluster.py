"""`hpbroker cluster info`: brokers, controller, topic counts and the partitions that need attention;
`hpbroker cluster elect-leaders`: leadership back to preferred replicas; `hpbroker cluster reassign` and
`reassignments`: moving replicas between brokers; `hpbroker cluster config` and `alter-config`: the
cluster-wide dynamic broker defaults."""

from __future__ import annotations

import sys

import click

from netio.codec import ErrorCode
from tools.client import KafkaError, check
from tools.commands.common import EXIT_CODES_HELP, EXIT_KAFKA_ERROR, client_command, emit, parse_pairs
from tools.commands.render import (render_cluster, render_elections, render_partition_health,
                                   render_reassignments, table)
from tools.commands.topic import CONFIG_SOURCES

ELECT_LEADERS = 43
ALTER_PARTITION_REASSIGNMENTS, LIST_PARTITION_REASSIGNMENTS = 45, 46


@click.group(epilog=EXIT_CODES_HELP)
def cluster():
    """Inspect the cluster as a whole.

    A cluster is the set of brokers that share topic metadata. One of them is the controller: it
    creates and deletes topics and decides which broker leads each partition. Clients may bootstrap from
    any broker; they learn the others from its Metadata answer.

    Each partition has replicas (the brokers that keep a copy) and an ISR, the in-sync replicas that have
    everything the leader acknowledged. A partition is under-replicated when its ISR is smaller than its
    replica list (a follower is down or lagging) and offline when it has no leader (no in-sync replica is
    alive): it accepts no reads or writes until one returns.
    """


def partition_health(md: dict, adding: dict | None = None) -> tuple[list[dict], list[dict]]:
    """(under-replicated, offline) partitions of a Metadata answer, sorted by topic and partition.

    Under-replicated: ISR smaller than the replication factor, which for a partition being reassigned is its
    replica list without the adding replicas (`adding`: (topic, partition) -> ids), as Kafka's TopicCommand
    counts it: new replicas catching up are no loss. Offline: no leader (-1). A partition that lost its
    leader usually shows in both lists.
    """
    rows = _partition_rows(md)
    adding = adding or {}

    def factor(r: dict) -> int:
        return len([b for b in r["replicas"] if b not in adding.get((r["topic"], r["partition"]), ())])

    return ([r for r in rows if len(r["isr"]) < factor(r)], [r for r in rows if r["leader"] < 0])


def list_reassignments(conn, topics: list[dict] | None) -> list[dict]:
    """The running reassignments ListPartitionReassignments reports, a row per partition."""
    reply = conn.request(LIST_PARTITION_REASSIGNMENTS, {"timeout_ms": 60000, "topics": topics})
    check(reply["error_code"], reply.get("error_message"), "listing partition reassignments")
    return [{"topic": t["name"], "partition": p["partition_index"], "replicas": list(p["replicas"]),
             "adding": list(p["adding_replicas"]), "removing": list(p["removing_replicas"])}
            for t in sorted(reply["topics"], key=lambda t: t["name"])
            for p in sorted(t["partitions"], key=lambda p: p["partition_index"])]


def not_preferred_led(md: dict) -> list[dict]:
    """Partitions led by another than their preferred (first) replica, as after a failover until leadership
    is moved back (`hpbroker cluster elect-leaders`, or the controller on its own)."""
    return [r for r in _partition_rows(md) if r["leader"] >= 0 and r["replicas"] and r["leader"] != r["replicas"][0]]


def _partition_rows(md: dict) -> list[dict]:
    return [{"topic": t["name"], "partition": p["partition_index"], "leader": p["leader_id"],
             "replicas": list(p["replica_nodes"]), "isr": list(p["isr_nodes"])}
            for t in sorted(md["topics"], key=lambda t: t["name"])
            for p in sorted(t["partitions"], key=lambda p: p["partition_index"])]


@cluster.command("info", epilog=EXIT_CODES_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (same as --format json).")
@client_command
def info(client, fmt, as_json):
    """Show the brokers, the controller, topic and partition counts, and the under-replicated, offline and
    not-preferred-led partitions.

    The controller is marked with * in the CONTROLLER column. Under-replicated partitions have fewer
    in-sync replicas than replicas; offline partitions have no leader (LEADER -1); the others are led by
    another than their preferred (first) replica, as after a failover (see `cluster elect-leaders`).
    """
    md = client.metadata(None)
    try:
        moving = {(r["topic"], r["partition"]): r["adding"] for r in list_reassignments(client.any, None)}
    except KafkaError:  # not authorized to describe the cluster, or a broker without the API
        moving = {}
    under, offline = partition_health(md, moving)
    data = {
        "cluster_id": md.get("cluster_id"), "controller_id": md.get("controller_id", -1),
        "brokers": [{"id": b["node_id"], "host": b["host"], "port": b["port"], "rack": b.get("rack")}
                    for b in sorted(md["brokers"], key=lambda b: b["node_id"])],
        "topics": len(md["topics"]), "partitions": sum(len(t["partitions"]) for t in md["topics"]),
        "under_replicated_partitions": under, "offline_partitions": offline,
        "not_preferred_leader_partitions": not_preferred_led(md),
    }
    emit("json" if as_json else fmt, data, f"{render_cluster(data)}\n\n{render_partition_health(data)}")


@cluster.command("elect-leaders", epilog=EXIT_CODES_HELP)
@click.option("--topic", help="Only this topic's partitions (default: every partition in the cluster).")
@click.option("--partition", "partitions", type=int, multiple=True,
              help="Only this partition of --topic; repeat for several.")
@click.option("--unclean", is_flag=True,
              help="Elect a leader for partitions that have none, from any live replica (may lose acknowledged "
                   "records) instead of moving leadership to the preferred replica.")
@client_command
def elect_leaders(client, fmt, topic, partitions, unclean):
    """Give each partition's leadership back to its preferred replica (the first in its replica list), as
    Kafka's kafka-leader-election does. After a broker fails and returns, the partitions it led stay with
    other brokers until this runs, or until the controller does it on its own (auto.leader.rebalance.enable,
    every leader.imbalance.check.interval.seconds).

    The preferred replica takes over only when it is alive and in sync. The request goes to the controller.
    Without --topic, every partition is tried and only those that needed an election are listed.
    """
    if partitions and not topic:
        raise click.UsageError("--partition needs --topic")
    wanted = None
    if topic:
        wanted = [{"topic": topic, "partitions": list(partitions) or sorted(client.leaders(topic))}]
    reply = client.controller().request(ELECT_LEADERS, {"election_type": 1 if unclean else 0,
                                                        "topic_partitions": wanted, "timeout_ms": 60000})
    if reply.get("error_code"):
        raise KafkaError(reply["error_code"], None, "elect leaders")
    rows = [{"topic": r["topic"], "partition": p["partition_id"], "error": ErrorCode(p["error_code"]).name
             if p["error_code"] else None}
            for r in reply["replica_election_results"] for p in r["partition_result"]]
    emit(fmt, rows, render_elections(rows))
    if any(r["error"] not in (None, "ELECTION_NOT_NEEDED") for r in rows):
        sys.exit(EXIT_KAFKA_ERROR)


@cluster.command("reassign", epilog=EXIT_CODES_HELP)
@click.option("--topic", required=True, help="The topic whose partitions move.")
@click.option("--partition", "partitions", type=int, multiple=True, required=True,
              help="A partition to move; repeat for several (each gets the same replica list).")
@click.option("--replicas", help="The new replica list, broker ids separated by commas; the first is preferred leader.")
@click.option("--cancel", is_flag=True, help="Cancel the running move instead: back to the original replicas.")
@client_command
def reassign(client, fmt, topic, partitions, replicas, cancel):
    """Move a partition's replicas to other brokers, change its replication factor, or replace a broker that
    is gone for good (Kafka's kafka-reassign-partitions, KIP-455).

    While the move runs the partition has the new replicas and the old ones together: the new ones copy the
    log from the leader and join the ISR once caught up; then the controller drops the replicas not in
    the list (a leader among them hands over to the first new replica in sync) and those brokers delete
    their copy. Producers and consumers carry on throughout. Follow it with `cluster reassignments`.
    """
    if cancel == bool(replicas):
        raise click.UsageError("give either --replicas ID,ID,... or --cancel")
    target = None
    if replicas:
        try:
            target = [int(x) for x in replicas.split(",") if x.strip()]
        except ValueError:
            raise click.UsageError(f"--replicas {replicas!r}: broker ids separated by commas") from None
    reply = client.any.request(ALTER_PARTITION_REASSIGNMENTS, {"timeout_ms": 60000, "topics": [
        {"name": topic, "partitions": [{"partition_index": p, "replicas": target} for p in partitions]}]})
    check(reply["error_code"], reply.get("error_message"), "reassigning partitions")
    rows = [{"topic": t["name"], "partition": p["partition_index"],
             "error": ErrorCode(p["error_code"]).name if p["error_code"] else None,
             "message": p.get("error_message")}
            for t in reply["responses"] for p in t["partitions"]]
    done = "cancelled" if cancel else "started"
    emit(fmt, rows, table(["TOPIC", "PARTITION", "RESULT"],
                          [[r["topic"], r["partition"], f"{r['error']}: {r['message']}" if r["error"] and r["message"]
                            else r["error"] or done] for r in rows]))
    if any(r["error"] for r in rows):
        sys.exit(EXIT_KAFKA_ERROR)


@cluster.command("reassignments", epilog=EXIT_CODES_HELP)
@click.option("--topic", help="Only this topic's partitions.")
@client_command
def reassignments(client, fmt, topic):
    """The partition moves still running: each partition's replicas, the ones being added (still catching
    up) and the ones to be removed once they have."""
    topics = None
    if topic:
        topics = [{"name": topic, "partition_indexes": sorted(client.leaders(topic))}]
    rows = list_reassignments(client.any, topics)
    emit(fmt, rows, render_reassignments(rows))


DESCRIBE_CONFIGS, INCREMENTAL_ALTER_CONFIGS, BROKER_RESOURCE = 32, 44, 4


_BROKER_HELP = "One broker's own dynamic configs (kafka-configs --entity-name) instead of the cluster-wide defaults."


@cluster.command("config", epilog=EXIT_CODES_HELP)
@click.option("--all", "show_all", is_flag=True, help="Every broker key, not only the dynamic ones.")
@click.option("--broker", type=int, default=None, help=_BROKER_HELP)
@client_command
def config(client, fmt, show_all, broker):
    """The dynamic broker configs set with `cluster alter-config`: the cluster-wide defaults (source
    dynamic-default) or, with --broker, that broker's own over them (dynamic-broker); with --all every other
    key with where its value comes from."""
    conn = client.any if broker is None else client.broker(broker)
    reply = conn.request(DESCRIBE_CONFIGS, {"resources": [
        {"resource_type": BROKER_RESOURCE, "resource_name": "" if broker is None else str(broker),
         "configuration_keys": None}]})
    res = reply["results"][0]
    check(res["error_code"], res.get("error_message"), "describing the broker configs")
    rows = [{"name": c["name"], "value": c["value"], "source": CONFIG_SOURCES.get(c["config_source"], "?"),
             "dynamic": not c["read_only"]} for c in res["configs"]
            if show_all or CONFIG_SOURCES.get(c["config_source"]) in ("dynamic-default", "dynamic-broker")]
    emit(fmt, rows, table(["NAME", "VALUE", "SOURCE"], [[r["name"], r["value"], r["source"]] for r in rows])
         if rows else "no dynamic configs set")


@cluster.command("alter-config", epilog=EXIT_CODES_HELP)
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Set a dynamic default (repeatable).")
@click.option("--delete", "deletes", multiple=True, metavar="KEY",
              help="Remove a dynamic value so the one under it applies again (repeatable).")
@click.option("--broker", type=int, default=None, help=_BROKER_HELP)
@client_command
def alter_config(client, fmt, sets, deletes, broker):
    """Change cluster-wide defaults of the log settings topics inherit, on every broker at once (what
    `kafka-configs --entity-type brokers --entity-default --alter` does): log.retention.ms,
    log.retention.bytes, log.segment.bytes, log.roll.ms, log.flush.interval.messages, log.flush.interval.ms,
    log.index.interval.bytes, log.index.size.max.bytes, log.message.timestamp.type, log.preallocate,
    log.cleanup.policy, log.cleaner.min.cleanable.ratio, log.cleaner.delete.retention.ms,
    log.cleaner.min.compaction.lag.ms, log.cleaner.max.compaction.lag.ms.
    Topics with their own value keep it. With --broker, only that broker takes the values, over the
    cluster-wide ones."""
    ops = [{"name": k, "config_operation": 0, "value": v} for k, v in parse_pairs(sets, "--set")]
    ops += [{"name": k, "config_operation": 1, "value": None} for k in deletes]
    if not ops:
        raise click.UsageError("nothing to change: give --set KEY=VALUE or --delete KEY")
    reply = client.any.request(INCREMENTAL_ALTER_CONFIGS, {"resources": [
        {"resource_type": BROKER_RESOURCE, "resource_name": "" if broker is None else str(broker), "configs": ops}],
        "validate_only": False})
    what = "the cluster-wide broker defaults" if broker is None else f"broker {broker}'s configs"
    for r in reply["responses"]:
        check(r["error_code"], r.get("error_message"), f"altering {what}")
    emit(fmt, {"broker": broker, "set": dict(parse_pairs(sets, "--set")), "deleted": list(deletes)},
         f"{what} altered")
