"""ListOffsets: earliest and latest come from the shared partition-state table; by-timestamp lookups and
the record with the largest timestamp (-3, KIP-734) go to the owner, which holds the time index."""

from __future__ import annotations

from broker.security.acl import DESCRIBE, TOPIC
from netio.codec import ErrorCode

EARLIEST = -2
LATEST = -1
MAX_TIMESTAMP = -3


def handle_list_offsets(dispatcher, conn, header, body: dict, slot) -> None:
    ctx = dispatcher.ctx
    md = ctx.metadata.current(max_age=0)
    out: dict[str, list] = {}
    outstanding = [0]

    def finish() -> None:
        slot.reply({"throttle_time_ms": 0,
                    "topics": [{"name": t, "partitions": ps} for t, ps in out.items()]})

    def entry(topic: str, partition: int, error: int, offset: int = -1, timestamp: int = -1,
              epoch: int = -1) -> None:
        out.setdefault(topic, []).append({"partition_index": partition, "error_code": error,
                                          "timestamp": timestamp, "offset": offset, "leader_epoch": epoch})

    may = dispatcher.access(conn)
    for t in body["topics"]:
        name = t["name"]
        info = md.topic(name)
        denied = may is not None and not may(DESCRIBE, TOPIC, name)
        for p in t["partitions"]:
            index = p["partition_index"]
            part = info.partitions[index] if info is not None and 0 <= index < len(info.partitions) else None
            if denied:
                entry(name, index, int(ErrorCode.TOPIC_AUTHORIZATION_FAILED))
                continue
            if part is None:
                entry(name, index, int(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION))
                continue
            if not ctx.leads(part):
                entry(name, index, int(ErrorCode.NOT_LEADER_OR_FOLLOWER))
                continue
            ts = p["timestamp"]
            if ts in (EARLIEST, LATEST):
                leo, hw, log_start, epoch, _version, _tail = ctx.partition_state(part)
                entry(name, index, 0, log_start if ts == EARLIEST else hw, -1, epoch)
            elif ts < 0 and ts != MAX_TIMESTAMP:
                entry(name, index, int(ErrorCode.INVALID_REQUEST))
            else:
                outstanding[0] += 1

                def done(result, name=name, index=index):
                    _token, error, offset, timestamp, epoch = result
                    entry(name, index, error, offset, timestamp, epoch)
                    outstanding[0] -= 1
                    if outstanding[0] == 0:
                        finish()

                ctx.io.list_offset(part.owner, part.slot, name, index, ts, done)
    if outstanding[0] == 0:
        finish()


HANDLERS = {2: handle_list_offsets}
