"""Committed group offsets: read (OffsetFetch) and write (OffsetCommit) at the group's coordinator.

Commits here are made outside any generation (generation -1, no member id), which Kafka accepts only
while the group has no active members: the way operators reset offsets.
"""

from __future__ import annotations

from tools.client import check

OFFSET_COMMIT, OFFSET_FETCH = 8, 9


def committed_offsets(client, group: str, topics: list[str] | None = None) -> dict[str, dict[int, int]]:
    """{topic: {partition: committed offset}}; topics None: every topic the group has offsets for."""
    conn = client.coordinator(group)
    want = None
    if topics is not None:
        want = [{"name": t, "partition_indexes": sorted(client.leaders(t))} for t in topics]
    reply = conn.request(OFFSET_FETCH, {"group_id": group, "topics": want, "require_stable": False})
    check(reply.get("error_code", 0), what=f"offsets of group {group!r}")
    out: dict[str, dict[int, int]] = {}
    for t in reply["topics"]:
        for p in t["partitions"]:
            check(p["error_code"], what=f"offset of {t['name']}-{p['partition_index']}")
            if p["committed_offset"] >= 0:
                out.setdefault(t["name"], {})[p["partition_index"]] = p["committed_offset"]
    return out


def commit_offsets(client, group: str, offsets: dict[str, dict[int, int]]) -> None:
    conn = client.coordinator(group)
    body = {"group_id": group, "generation_id_or_member_epoch": -1, "member_id": "", "group_instance_id": None,
            "retention_time_ms": -1,
            "topics": [{"name": t, "partitions": [{"partition_index": p, "committed_offset": o,
                                                   "committed_leader_epoch": -1, "committed_metadata": ""}
                                                  for p, o in sorted(ps.items())]}
                       for t, ps in offsets.items()]}
    reply = conn.request(OFFSET_COMMIT, body)
    for t in reply["topics"]:
        for p in t["partitions"]:
            check(p["error_code"], what=f"committing {t['name']}-{p['partition_index']} for group {group!r}")
