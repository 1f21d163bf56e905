"""DescribeCluster: brokers, controller and cluster id (what admin clients show as "cluster info")."""

from __future__ import annotations

from broker.api.acls import CLUSTER_OPERATIONS
from broker.security.acl import CLUSTER, CLUSTER_NAME


def handle_describe_cluster(dispatcher, conn, header, body: dict, slot) -> None:
    md = dispatcher.ctx.metadata.current(max_age=0)
    reply = {
        "throttle_time_ms": 0, "error_code": 0, "error_message": None, "endpoint_type": 1,
        "cluster_id": md.cluster_id, "controller_id": md.controller_id,
        "brokers": [{"broker_id": b.node_id, "host": host, "port": port, "rack": b.rack}
                    for b, host, port in md.brokers_on(conn.listener)],
    }
    if body.get("include_cluster_authorized_operations"):
        reply["cluster_authorized_operations"] = dispatcher.operations(conn, CLUSTER, CLUSTER_NAME,
                                                                      CLUSTER_OPERATIONS)
    slot.reply(reply)


HANDLERS = {60: handle_describe_cluster}
