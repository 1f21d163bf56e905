"""Metadata: brokers, controller and per-partition leaders, replicas and ISR, from the cluster snapshot."""

from __future__ import annotations

from broker.api.acls import CLUSTER_OPERATIONS, TOPIC_OPERATIONS
from broker.log import InvalidTopic
from broker.log.config import validate_topic_name
from broker.security.acl import CLUSTER, CLUSTER_NAME, CREATE, DESCRIBE, TOPIC
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


def topic_entry(t, partitions=None) -> dict:
    """Topic `t` with all its partitions, or those of `partitions` (a slice of them)."""
    return {
        "error_code": int(ErrorCode.NONE),
        "name": t.name,
        "topic_id": t.topic_id,
        "is_internal": t.internal,
        "partitions": [_partition_entry(p) for p in (t.partitions if partitions is None else partitions)],
    }


def missing_topic_entry(name: str, error: ErrorCode) -> dict:
    return {"error_code": int(error), "name": name, "topic_id": bytes(16), "is_internal": False,
            "partitions": []}


def missing_topic_error(name: str) -> tuple[ErrorCode, str | None]:
    """What a request naming a topic that does not exist gets, as Kafka answers: INVALID_TOPIC_EXCEPTION
    (and why) for a name no topic may have, else UNKNOWN_TOPIC_OR_PARTITION."""
    try:
        validate_topic_name(name)
    except InvalidTopic as e:
        return ErrorCode.INVALID_TOPIC_EXCEPTION, str(e)
    return ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, None


def handle_metadata(dispatcher, conn, header, body: dict, slot) -> None:
    """With an authorizer, as Kafka answers: all topics means those the client may describe; a topic named
    but not describable, or missing and not creatable (CREATE on the cluster or the topic), gets
    TOPIC_AUTHORIZATION_FAILED."""
    ctx = dispatcher.ctx
    md = ctx.metadata.current(max_age=0)
    may = dispatcher.access(conn)
    requested = body.get("topics")
    if requested is None or (header.api_version == 0 and not requested):
        _reply(dispatcher, slot, body, md, [topic_entry(t) for t in md.topics.values()
                                            if may is None or may(DESCRIBE, TOPIC, t.name)])
        return
    names = [t["name"] for t in requested]
    denied = {n for n in names if not may(DESCRIBE, TOPIC, n)} if may is not None else set()
    missing = [n for n in names if md.topic(n) is None and n not in denied]
    auto = body.get("allow_auto_topic_creation", True) and ctx.config["auto.create.topics.enable"]
    if auto and missing and may is not None and not may(CREATE, CLUSTER, CLUSTER_NAME):
        denied.update(n for n in missing if not may(CREATE, TOPIC, n))
        missing = [n for n in missing if n not in denied]
    if not missing or not auto:
        _reply(dispatcher, slot, body, md, _entries(md, names, {}, denied))
        return

    def created(msg: dict) -> None:
        errors = {r["name"]: r["error_code"] for r in msg.get("results") or []}
        now = ctx.metadata.current(max_age=0)
        _reply(dispatcher, slot, body, now, _entries(now, names, errors, denied))

    ctx.controller.call({"op": "create_topics", "auto": True, "topics": [
        {"name": n, "num_partitions": -1, "replication_factor": -1, "assignments": [], "configs": {}}
        for n in missing]}, created)


def _entries(md, names: list[str], create_errors: dict, denied: set) -> list[dict]:
    out = []
    for name in names:
        if name in denied:
            out.append(missing_topic_entry(name, ErrorCode.TOPIC_AUTHORIZATION_FAILED))
            continue
        t = md.topic(name)
        if t is not None:
            out.append(topic_entry(t))
            continue
        code = create_errors.get(name, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)
        if code in (ErrorCode.NONE, ErrorCode.TOPIC_ALREADY_EXISTS):
            code = ErrorCode.LEADER_NOT_AVAILABLE  # being created: the client asks again
        out.append(missing_topic_entry(name, ErrorCode(code)))
    return out


def _reply(dispatcher, slot, body: dict, md, topics: list[dict]) -> None:
    conn = slot.conn
    listener = conn.listener
    if body.get("include_topic_authorized_operations"):
        for t in topics:  # every topic answered, as Kafka does, missing ones included
            t["topic_authorized_operations"] = dispatcher.operations(conn, TOPIC, t["name"], TOPIC_OPERATIONS)
    reply = {
        "throttle_time_ms": 0,
        "brokers": [{"node_id": b.node_id, "host": host, "port": port, "rack": b.rack}
                    for b, host, port in md.brokers_on(listener)],
        "cluster_id": md.cluster_id,
        "controller_id": md.controller_id,
        "topics": topics,
    }
    if body.get("include_cluster_authorized_operations"):
        reply["cluster_authorized_operations"] = dispatcher.operations(conn, CLUSTER, CLUSTER_NAME,
                                                                      CLUSTER_OPERATIONS)
    slot.reply(reply)


def handle_describe_topic_partitions(dispatcher, conn, header, body: dict, slot) -> None:
    """DescribeTopicPartitions (KIP-966), as Kafka answers it: the topics asked for (none: every topic) in
    name order from the cursor's topic on, partitions from the cursor's index in that topic, and at most
    min(max.request.partition.size.limit, response_partition_limit) partitions, with `next_cursor` naming
    where the next page starts. A cursor whose topic the list leaves out makes the request invalid."""
    ctx = dispatcher.ctx
    md = ctx.metadata.current(max_age=0)
    requested = [t["name"] for t in body["topics"]]
    cursor = body.get("cursor")
    first = cursor["topic_name"] if cursor is not None else ""
    every = not requested
    may = dispatcher.access(conn)
    names = sorted({n for n in (md.topics if every else requested) if n >= first
                    and (not every or may is None or may(DESCRIBE, TOPIC, n))})
    denied = {n for n in names if not may(DESCRIBE, TOPIC, n)} if may is not None and not every else set()
    if cursor is not None and not every and first not in names:
        slot.reply({"throttle_time_ms": 0, "topics": [
            {"error_code": int(ErrorCode.INVALID_REQUEST), "name": n, "partitions": []} for n in requested]})
        return
    limit = min(ctx.config["max.request.partition.size.limit"], body["response_partition_limit"])
    topics, next_cursor = _page(md, names, first, cursor["partition_index"] if cursor is not None else 0, limit,
                                every, denied)
    for t in topics:
        t["topic_authorized_operations"] = dispatcher.operations(conn, TOPIC, t["name"], TOPIC_OPERATIONS)
    slot.reply({"throttle_time_ms": 0, "topics": topics, "next_cursor": next_cursor})


def _page(md, names: list[str], first: str, first_index: int, limit: int, every: bool,
          denied: set) -> tuple[list, dict | None]:
    """The topics of one page and the cursor after it (None: nothing left). A topic is cut where the limit
    falls; a page that ends exactly at a topic's end points the cursor at the next topic's partition 0.
    Missing topics are answered with an error only when they were named."""
    out: list[dict] = []
    remaining = limit
    for name in names:
        if remaining > 0:
            t = md.topic(name)
            if name in denied:
                out.append(missing_topic_entry(name, ErrorCode.TOPIC_AUTHORIZATION_FAILED))
                continue
            if t is None:
                if not every:
                    out.append(missing_topic_entry(name, missing_topic_error(name)[0]))
                continue
            start = first_index if name == first else 0
            upper = min(len(t.partitions), start + remaining)
            entry = topic_entry(t, t.partitions[max(start, 0):upper])
            for p in entry["partitions"]:  # no eligible-leader-replica sets (KIP-966's ELR) are kept
                p["eligible_leader_replicas"], p["last_known_elr"] = [], []
            out.append(entry)
            if upper < len(t.partitions):
                return out, {"topic_name": name, "partition_index": upper}
            remaining -= len(entry["partitions"])
        elif remaining == 0:
            return out, {"topic_name": name, "partition_index": 0}
    return out, None


HANDLERS = {3: handle_metadata, 75: handle_describe_topic_partitions}
