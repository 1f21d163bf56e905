"""`hpbroker cluster info`: brokers, controller, cluster id and topic count."""

from __future__ import annotations

import click

from tools.commands.common import EXIT_CODES_HELP, client_command, emit
from tools.commands.render import render_cluster


@click.group(epilog=EXIT_CODES_HELP)
def cluster():
    """Inspect the cluster as a whole.

    A cluster is the set of brokers that share topic metadata. One of them is the controller: it
    creates and deletes topics and decides which broker leads each partition. Clients may bootstrap from
    any broker; they learn the others from its Metadata answer.
    """


@cluster.command("info", epilog=EXIT_CODES_HELP)
@client_command
def info(client, fmt):
    """Show the brokers, the controller, the cluster id and how many topics and partitions exist."""
    md = client.metadata(None)
    data = {
        "cluster_id": md.get("cluster_id"), "controller_id": md.get("controller_id", -1),
        "brokers": [{"id": b["node_id"], "host": b["host"], "port": b["port"], "rack": b.get("rack")}
                    for b in sorted(md["brokers"], key=lambda b: b["node_id"])],
        "topics": len(md["topics"]), "partitions": sum(len(t["partitions"]) for t in md["topics"]),
    }
    emit(fmt, data, render_cluster(data))
