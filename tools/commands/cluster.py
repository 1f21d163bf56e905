"""`hpbroker cluster info`: brokers, controller, topic counts and the partitions that need attention."""

from __future__ import annotations

import click

from tools.commands.common import EXIT_CODES_HELP, client_command, emit
from tools.commands.render import render_cluster, render_partition_health


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


def partition_health(md: dict) -> tuple[list[dict], list[dict]]:
    """(under-replicated, offline) partitions of a Metadata answer, sorted by topic and partition.

    Under-replicated: ISR smaller than the replica list. Offline: no leader (-1). A partition that lost
    its leader usually shows in both lists.
    """
    under, offline = [], []
    for t in sorted(md["topics"], key=lambda t: t["name"]):
        for p in sorted(t["partitions"], key=lambda p: p["partition_index"]):
            row = {"topic": t["name"], "partition": p["partition_index"], "leader": p["leader_id"],
                   "replicas": list(p["replica_nodes"]), "isr": list(p["isr_nodes"])}
            if len(row["isr"]) < len(row["replicas"]):
                under.append(row)
            if row["leader"] < 0:
                offline.append(row)
    return under, offline


@cluster.command("info", epilog=EXIT_CODES_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (same as --format json).")
@client_command
def info(client, fmt, as_json):
    """Show the brokers, the controller, topic and partition counts, and the under-replicated and offline
    partitions.

    The controller is marked with * in the CONTROLLER column. Under-replicated partitions have fewer
    in-sync replicas than replicas; offline partitions have no leader (LEADER -1).
    """
    md = client.metadata(None)
    under, offline = partition_health(md)
    data = {
        "cluster_id": md.get("cluster_id"), "controller_id": md.get("controller_id", -1),
        "brokers": [{"id": b["node_id"], "host": b["host"], "port": b["port"], "rack": b.get("rack")}
                    for b in sorted(md["brokers"], key=lambda b: b["node_id"])],
        "topics": len(md["topics"]), "partitions": sum(len(t["partitions"]) for t in md["topics"]),
        "under_replicated_partitions": under, "offline_partitions": offline,
    }
    emit("json" if as_json else fmt, data, f"{render_cluster(data)}\n\n{render_partition_health(data)}")
