"""CreateTopics, DeleteTopics, CreatePartitions: forwarded to the controller, answered on its reply."""

from __future__ import annotations

from netio.codec import ErrorCode


def _controller_down(results: list[dict], key: str = "name") -> list[dict]:
    return [{key: r, "error_code": int(ErrorCode.COORDINATOR_NOT_AVAILABLE), "error_message": None}
            for r in results]


def handle_create_topics(dispatcher, conn, header, body: dict, slot) -> None:
    topics = []
    for t in body["topics"]:
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
        slot.reply({"throttle_time_ms": 0, "topics": results})

    dispatcher.ctx.controller.call({"op": "create_topics", "topics": topics,
                                    "validate_only": bool(body.get("validate_only"))}, reply)


def handle_delete_topics(dispatcher, conn, header, body: dict, slot) -> None:
    names = list(body["topic_names"])

    def reply(msg: dict) -> None:
        results = msg.get("results") or _controller_down(names)
        slot.reply({"throttle_time_ms": 0, "responses": results})

    dispatcher.ctx.controller.call({"op": "delete_topics", "names": names}, reply)


def handle_create_partitions(dispatcher, conn, header, body: dict, slot) -> None:
    topics = [{"name": t["name"], "count": t["count"],
               "assignments": [{"broker_ids": list(a["broker_ids"])} for a in t.get("assignments") or []]}
              for t in body["topics"]]

    def reply(msg: dict) -> None:
        results = msg.get("results") or _controller_down([t["name"] for t in topics])
        slot.reply({"throttle_time_ms": 0, "results": results})

    dispatcher.ctx.controller.call({"op": "create_partitions", "topics": topics,
                                    "validate_only": bool(body.get("validate_only"))}, reply)


HANDLERS = {19: handle_create_topics, 20: handle_delete_topics, 37: handle_create_partitions}
