"""OffsetForLeaderEpoch (api 23): where a leader epoch ended in this leader's log.

A follower asks it before fetching from a new leader (or after a new leader epoch) and truncates its log to
the answer, so it never keeps records the new leader does not have. Served in the network worker: the
owner persists the leader-epoch checkpoint on every change (atomically replaced), and the latest epoch
ends at the log end offset the owner published in the partition-state table.
"""

from __future__ import annotations

from broker.log.epochs import LeaderEpochCache
from broker.security.acl import CLUSTER, CLUSTER_ACTION, CLUSTER_NAME, DESCRIBE, TOPIC
from netio.codec import ErrorCode


def end_offset(ctx, topic: str, part, leader_epoch: int, current_epoch: int) -> dict:
    """One partition's answer: error_code, leader_epoch, end_offset."""
    out = {"error_code": 0, "partition": part.partition, "leader_epoch": -1, "end_offset": -1}
    if part.leader != ctx.config["broker.id"] or part.slot < 0:
        out["error_code"] = int(ErrorCode.NOT_LEADER_OR_FOLLOWER)
        return out
    leo, _hw, _start, epoch, _version, _tail = ctx.partition_state(part)
    if leo < 0:
        out["error_code"] = int(ErrorCode.NOT_LEADER_OR_FOLLOWER)  # the owner has not opened it yet
        return out
    if current_epoch >= 0 and current_epoch != epoch:
        out["error_code"] = int(ErrorCode.FENCED_LEADER_EPOCH if current_epoch < epoch
                                else ErrorCode.UNKNOWN_LEADER_EPOCH)
        return out
    try:
        cache = LeaderEpochCache.load(ctx.reader(topic, part.partition).directory)
    except OSError:
        out["error_code"] = int(ErrorCode.KAFKA_STORAGE_ERROR)
        return out
    out["leader_epoch"], out["end_offset"] = cache.end_offset_for(leader_epoch, leo)
    return out


def handle_offset_for_leader_epoch(dispatcher, conn, header, body: dict, slot) -> None:
    ctx = dispatcher.ctx
    md = ctx.metadata.current(max_age=0)
    topics = []
    may = dispatcher.access(conn)
    follower = body.get("replica_id", -1) >= 0
    for t in body["topics"]:
        name = t["topic"]
        info = md.topic(name)
        parts = []
        # Kafka: a follower needs CLUSTER_ACTION, a client DESCRIBE on the topic
        denied = may is not None and not (may(CLUSTER_ACTION, CLUSTER, CLUSTER_NAME) if follower
                                          else may(DESCRIBE, TOPIC, name))
        for p in t["partitions"]:
            index = p["partition"]
            part = info.partitions[index] if info is not None and 0 <= index < len(info.partitions) else None
            if denied:
                parts.append({"error_code": int(ErrorCode.TOPIC_AUTHORIZATION_FAILED), "partition": index,
                              "leader_epoch": -1, "end_offset": -1})
                continue
            if part is None:
                parts.append({"error_code": int(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION), "partition": index,
                              "leader_epoch": -1, "end_offset": -1})
                continue
            parts.append(end_offset(ctx, name, part, p["leader_epoch"], p.get("current_leader_epoch", -1)))
        topics.append({"topic": name, "partitions": parts})
    slot.reply({"throttle_time_ms": 0, "topics": topics})


HANDLERS = {23: handle_offset_for_leader_epoch}
