"""Metadata: brokers, controller and per-partition leaders, replicas and ISR, from the cluster snapshot."""

from __future__ import annotations

from broker.api.acls import CLUSTER_OPERATIONS, TOPIC_OPERATIONS
from netio.codec import ErrorCode


def _partition_entry(p) -> dict:
    return {
        "error_code": int(ErrorCode.NONE),
        "partition_index": p.partition,
        "leader_id": p.leader,
        "leader_epoch": p.leader_epoch,
        "replica_nodes": list(p.replicas),
        "isr_nodes": list(p.isr),
        "offline_replicas": [],
    }


def topic_entry(t) -> dict:
    return {
        "error_code": int(ErrorCode.NONE),
        "name": t.name,
        "topic_id": t.topic_id,
        "is_internal": t.internal,
        "partitions": [_partition_entry(p) for p in t.partitions],
    }


def missing_topic_entry(name: str, error: ErrorCode) -> dict:
    return {"error_code": int(error), "name": name, "topic_id": bytes(16), "is_internal": False,
            "partitions": []}


def handle_metadata(dispatcher, conn, header, body: dict, slot) -> None:
    ctx = dispatcher.ctx
    md = ctx.metadata.current(max_age=0)
    requested = body.get("topics")
    if requested is None or (header.api_version == 0 and not requested):
        _reply(slot, body, md, [topic_entry(t) for t in md.topics.values()])
        return
    names = [t["name"] for t in requested]
    missing = [n for n in names if md.topic(n) is None]
    auto = body.get("allow_auto_topic_creation", True) and ctx.config["auto.create.topics.enable"]
    if not missing or not auto:
        _reply(slot, body, md, _entries(md, names, {}))
        return

    def created(msg: dict) -> None:
        errors = {r["name"]: r["error_code"] for r in msg.get("results") or []}
        now = ctx.metadata.current(max_age=0)
        _reply(slot, body, now, _entries(now, names, errors))

    ctx.controller.call({"op": "create_topics", "auto": True, "topics": [
        {"name": n, "num_partitions": -1, "replication_factor": -1, "assignments": [], "configs": {}}
        for n in missing]}, created)


def _entries(md, names: list[str], create_errors: dict) -> list[dict]:
    out = []
    for name in names:
        t = md.topic(name)
        if t is not None:
            out.append(topic_entry(t))
            continue
        code = create_errors.get(name, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)
        if code in (ErrorCode.NONE, ErrorCode.TOPIC_ALREADY_EXISTS):
            code = ErrorCode.LEADER_NOT_AVAILABLE  # being created: the client asks again
        out.append(missing_topic_entry(name, ErrorCode(code)))
    return out


def _reply(slot, body: dict, md, topics: list[dict]) -> None:
    if body.get("include_topic_authorized_operations"):
        for t in topics:  # every topic answered, as Kafka does, missing ones included
            t["topic_authorized_operations"] = TOPIC_OPERATIONS
    reply = {
        "throttle_time_ms": 0,
        "brokers": [{"node_id": b.node_id, "host": b.host, "port": b.port, "rack": b.rack} for b in md.brokers],
        "cluster_id": md.cluster_id,
        "controller_id": md.controller_id,
        "topics": topics,
    }
    if body.get("include_cluster_authorized_operations"):
        reply["cluster_authorized_operations"] = CLUSTER_OPERATIONS
    slot.reply(reply)


HANDLERS = {3: handle_metadata}
