"""CreateTopics, DeleteTopics, CreatePartitions: forwarded to the controller, answered on its reply.

With an authorizer, a topic the client may not create (CREATE on the cluster or the topic), delete (DELETE)
or grow (ALTER) is answered TOPIC_AUTHORIZATION_FAILED here and never reaches the controller."""

from __future__ import annotations

from broker.security.acl import ALTER, CLUSTER, CLUSTER_NAME, CREATE, DELETE, TOPIC
from netio.codec import ErrorCode

_DENIED = "Authorization failed."


def _in_order(names: list[str], denied: set[str], results: list[dict], key: str = "name") -> list[dict]:
    """The controller's results and the refusals, in request order."""
    if not denied:
        return results
    by_name = {r[key]: r for r in results}
    return [by_name[n] if n in by_name else
            {key: n, "error_code": int(ErrorCode.TOPIC_AUTHORIZATION_FAILED), "error_message": _DENIED}
            for n in names if n in by_name or n in denied]


def _controller_down(results: list[dict], key: str = "name") -> list[dict]:
    return [{key: r, "error_code": int(ErrorCode.COORDINATOR_NOT_AVAILABLE), "error_message": None}
            for r in results]


def handle_create_topics(dispatcher, conn, header, body: dict, slot) -> None:
    may = dispatcher.access(conn)
    names = [t["name"] for t in body["topics"]]
    denied = set()
    if may is not None and not may(CREATE, CLUSTER, CLUSTER_NAME):
        denied = {n for n in names if not may(CREATE, TOPIC, n)}
    topics = []
    for t in body["topics"]:
        if t["name"] in denied:
            continue
        topics.append({
            "name": t["name"],
            "num_partitions": t["num_partitions"],
            "replication_factor": t["replication_factor"],
            "assignments": [{"partition_index": a["partition_index"], "broker_ids": list(a["broker_ids"])}
                            for a in t.get("assignments") or []],
            "configs": {c["name"]: c["value"] for c in t.get("configs") or []},
        })

    def reply(msg: dict) -> None:
        results = msg.get("results") or _controller_down([t["name"] for t in topics])
        slot.reply({"throttle_time_ms": 0, "topics": _in_order(names, denied, results)})

    if not topics:
        return reply({"results": []})
    dispatcher.ctx.controller.call({"op": "create_topics", "topics": topics,
                                    "validate_only": bool(body.get("validate_only"))}, reply)


def handle_delete_topics(dispatcher, conn, header, body: dict, slot) -> None:
    names = list(body["topic_names"])
    may = dispatcher.access(conn)
    denied = {n for n in names if not may(DELETE, TOPIC, n)} if may is not None else set()
    allowed = [n for n in names if n not in denied]

    def reply(msg: dict) -> None:
        results = msg.get("results") or _controller_down(allowed)
        slot.reply({"throttle_time_ms": 0, "responses": _in_order(names, denied, results)})

    if not allowed:
        return reply({"results": []})
    dispatcher.ctx.controller.call({"op": "delete_topics", "names": allowed}, reply)


def handle_create_partitions(dispatcher, conn, header, body: dict, slot) -> None:
    may = dispatcher.access(conn)
    names = [t["name"] for t in body["topics"]]
    denied = {n for n in names if not may(ALTER, TOPIC, n)} if may is not None else set()
    topics = [{"name": t["name"], "count": t["count"],
               "assignments": [{"broker_ids": list(a["broker_ids"])} for a in t.get("assignments") or []]}
              for t in body["topics"] if t["name"] not in denied]

    def reply(msg: dict) -> None:
        results = msg.get("results") or _controller_down([t["name"] for t in topics])
        slot.reply({"throttle_time_ms": 0, "results": _in_order(names, denied, results)})

    if not topics:
        return reply({"results": []})
    dispatcher.ctx.controller.call({"op": "create_partitions", "topics": topics,
                                    "validate_only": bool(body.get("validate_only"))}, reply)


HANDLERS = {19: handle_create_topics, 20: handle_delete_topics, 37: handle_create_partitions}
