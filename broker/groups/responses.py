"""Whole-request error answers for the group APIs: the network side uses them while a coordinator
partition is not loaded (COORDINATOR_NOT_AVAILABLE), the owner side for a group it does not coordinate
(NOT_COORDINATOR). Every partition or member named in the request gets the code."""

from __future__ import annotations

FIND_COORDINATOR, OFFSET_COMMIT, OFFSET_FETCH, JOIN_GROUP, HEARTBEAT, LEAVE_GROUP, SYNC_GROUP = 10, 8, 9, 11, 12, 13, 14
DESCRIBE_GROUPS, LIST_GROUPS, DELETE_GROUPS, OFFSET_DELETE = 15, 16, 42, 47


def _per_partition(topics, code: int, index_key: str = "partition_index") -> list:
    return [{"name": t["name"], "partitions": [{"partition_index": p[index_key] if isinstance(p, dict) else p,
                                               "error_code": code, "committed_offset": -1,
                                               "committed_leader_epoch": -1, "metadata": ""}
                                              for p in t["partitions" if "partitions" in t else
                                                        "partition_indexes"]]}
            for t in topics or []]


def error_body(api_key: int, body: dict, code: int) -> dict:
    if api_key == JOIN_GROUP:
        return {"throttle_time_ms": 0, "error_code": code, "generation_id": -1, "protocol_name": "",
                "leader": "", "member_id": body.get("member_id", ""), "members": []}
    if api_key == SYNC_GROUP:
        return {"throttle_time_ms": 0, "error_code": code, "assignment": b""}
    if api_key == HEARTBEAT:
        return {"throttle_time_ms": 0, "error_code": code}
    if api_key == LEAVE_GROUP:
        members = [{"member_id": m["member_id"], "group_instance_id": m.get("group_instance_id"),
                    "error_code": code} for m in body.get("members") or []]
        return {"throttle_time_ms": 0, "error_code": code, "members": members}
    if api_key == OFFSET_COMMIT:
        return {"throttle_time_ms": 0, "topics": _per_partition(body["topics"], code)}
    if api_key == OFFSET_FETCH:
        return {"throttle_time_ms": 0, "error_code": code, "topics": _per_partition(body.get("topics"), code)}
    if api_key == OFFSET_DELETE:
        return {"error_code": code, "throttle_time_ms": 0, "topics": _per_partition(body["topics"], 0)}
    if api_key == DESCRIBE_GROUPS:
        return {"throttle_time_ms": 0, "groups": [describe_error(g, code) for g in body["groups"]]}
    if api_key == DELETE_GROUPS:
        return {"throttle_time_ms": 0, "results": [{"group_id": g, "error_code": code}
                                                   for g in body["groups_names"]]}
    if api_key == LIST_GROUPS:
        return {"throttle_time_ms": 0, "error_code": code, "groups": []}
    raise ValueError(f"not a group api: {api_key}")


def describe_error(group_id: str, code: int) -> dict:
    return {"error_code": code, "group_id": group_id, "group_state": "", "protocol_type": "",
            "protocol_data": "", "members": []}
