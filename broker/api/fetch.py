"""Fetch: served in the network worker straight from segment files, never through the partition's owner.

Offsets and visibility come from the shared partition-state table (the owner publishes log end offset and
high watermark after each append); bytes come from the segment files as (fd, position, length) ranges that
the connection hands to `os.sendfile`. A fetch that finds fewer than min_bytes parks until an owner
publishes progress on one of its partitions (the owner rings this worker's doorbell) or max_wait_ms passes.

Only the partition's leader serves it. A follower broker's Fetch (replica_id >= 0, from a live broker that is
one of the partition's replicas) reads up to the log end offset instead of the high watermark, and each of
its fetch offsets is posted to the partition's owner (REPLICA_POS): that is how the leader learns the
follower's log end offset, moves the high watermark and keeps the ISR.
"""

from __future__ import annotations

import time

from broker.logfmt import Log
from broker.metrics import PROC
from broker.quotas import FETCH, max_fetch_bytes, throttle
from broker.shm import layout as _ml
from broker.security.acl import CLUSTER, CLUSTER_ACTION, CLUSTER_NAME, READ, TOPIC
from netio.codec import ErrorCode

log = Log("hpbroker.fetch")


class PendingFetch:
    __slots__ = ("conn", "slot", "version", "correlation_id", "deadline", "min_bytes", "max_bytes",
                 "partitions", "versions", "isolation_level", "sent", "replica_id", "denied", "quota")

    def __init__(self, conn, slot, version, correlation_id, deadline, min_bytes, max_bytes, partitions,
                 isolation_level, replica_id=-1):
        self.conn = conn
        self.slot = slot
        self.version = version
        self.correlation_id = correlation_id
        self.deadline = deadline
        self.min_bytes = min_bytes
        self.max_bytes = max_bytes
        self.partitions = partitions  # [(topic, partition, fetch_offset, partition_max_bytes, current_epoch)]
        self.versions: dict[int, int] = {}  # slot -> partition-state version this request last saw
        self.isolation_level = isolation_level
        self.sent: list[tuple[int, int]] = []  # (slot, bytes) read for the response, for bytes-out metrics
        self.replica_id = replica_id  # >= 0: a follower broker fetching (reads up to the log end offset)
        self.denied: set[str] | None = None  # topics the client may not read: TOPIC_AUTHORIZATION_FAILED
        self.quota: tuple[float, int] | None = None  # the consumer_byte_rate the response counts against


def _topics_of(req) -> list[tuple[str, int, int, int, int]]:
    return [(topic, p.partition, p.fetch_offset, p.partition_max_bytes, p.current_leader_epoch)
            for topic, parts in req.topics for p in parts]


def read_partitions(ctx, req: PendingFetch) -> tuple[list, int, bool]:
    """One pass over the request's partitions: (per-topic results, bytes found, any error)."""
    md = ctx.metadata.current()
    budget = req.max_bytes
    total = 0
    errors = False
    topics: dict[str, list] = {}
    req.versions = {}
    req.sent = []
    me = ctx.config["broker.id"]
    replica = req.replica_id
    denied = req.denied
    for topic, partition, offset, pmax, current_epoch in req.partitions:
        if denied and topic in denied:
            topics.setdefault(topic, []).append(
                {"partition_index": partition, "error_code": int(ErrorCode.TOPIC_AUTHORIZATION_FAILED),
                 "high_watermark": -1, "last_stable_offset": -1, "log_start_offset": -1,
                 "aborted_transactions": None, "preferred_read_replica": -1, "records": b""})
            errors = True
            continue
        info = md.topic(topic)
        if info is None or not 0 <= partition < len(info.partitions):
            md = ctx.metadata.current(max_age=0)  # created a moment ago, perhaps through another worker
            info = md.topic(topic)
        part = info.partitions[partition] if info is not None and 0 <= partition < len(info.partitions) else None
        entry = {"partition_index": partition, "error_code": 0, "high_watermark": -1,
                 "last_stable_offset": -1, "log_start_offset": -1, "aborted_transactions": None,
                 "preferred_read_replica": -1, "records": b""}
        topics.setdefault(topic, []).append(entry)
        if part is None:
            entry["error_code"] = int(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)
            errors = True
            continue
        if part.leader != me or (replica != -1 and replica not in part.replicas):
            entry["error_code"] = int(ErrorCode.NOT_LEADER_OR_FOLLOWER)
            errors = True
            continue
        leo, hw, log_start, epoch, version, tail = ctx.partition_state(part)
        req.versions[part.slot] = version
        entry["high_watermark"] = hw
        entry["last_stable_offset"] = hw
        entry["log_start_offset"] = log_start
        if leo < 0:
            entry["error_code"] = int(ErrorCode.NOT_LEADER_OR_FOLLOWER)  # owner has not opened it yet
            errors = True
            continue
        if current_epoch >= 0 and current_epoch != epoch:
            entry["error_code"] = int(ErrorCode.FENCED_LEADER_EPOCH if current_epoch < epoch
                                      else ErrorCode.UNKNOWN_LEADER_EPOCH)
            errors = True
            continue
        if offset < log_start or offset > leo:
            entry["error_code"] = int(ErrorCode.OFFSET_OUT_OF_RANGE)
            errors = True
            continue
        visible = hw if replica < 0 else leo
        if offset >= visible:
            continue
        limit = min(pmax, budget)  # the reader returns at least one whole batch, as Kafka's first does
        if limit <= 0:
            continue
        try:
            fs = ctx.reader(topic, partition).read(offset, limit, visible, log_start, tail=tail)
        except Exception as e:
            code = getattr(e, "error_code", None)
            entry["error_code"] = int(code) if code is not None else int(ErrorCode.KAFKA_STORAGE_ERROR)
            if code is None:
                log.error("fetch read failed", topic=topic, partition=partition, offset=offset, error=repr(e))
            errors = True
            continue
        if fs.length:
            entry["records"] = fs
            req.sent.append((part.slot, fs.length))
            total += fs.length
            budget -= fs.length
    return [(t, ps) for t, ps in topics.items()], total, errors


def respond(ctx, req: PendingFetch, topics: list) -> None:
    rt = req.slot.request_time
    request_ms = rt.charge() if rt is not None else 0
    bytes_ms = 0
    if req.quota is not None:
        size = sum(n for _slot, n in req.sent)
        bytes_ms = ctx.quotas.record(req.quota, FETCH, size)
        if bytes_ms or request_ms:  # the client is told to wait and gets nothing now, so nothing is counted
            ctx.quotas.take_back(req.quota, FETCH, size)
        if bytes_ms:
            throttle(ctx, req.conn, bytes_ms, _ml.MS_THROTTLED_FETCH)
    if bytes_ms or request_ms:  # as Kafka answers a fetch over either quota
        req.slot.reply_parts(ctx.encode_fetch(req.version, req.correlation_id, [], max(bytes_ms, request_ms)))
        return
    for slot, n in req.sent:
        PROC.slot_add(2, slot, n)
    for _topic, entries in topics:
        for e in entries:
            if e["error_code"]:
                PROC.error(1, e["error_code"])
    req.slot.reply_parts(ctx.encode_fetch(req.version, req.correlation_id, topics))


def handle_fetch(dispatcher, conn, header, body, slot) -> None:
    """`body` is the fast path's decoded FetchRequest (netio.codec.fetch)."""
    ctx = dispatcher.ctx
    max_bytes = body.max_bytes if body.max_bytes > 0 else 0x7FFFFFFF
    req = PendingFetch(conn, slot, header.api_version, header.correlation_id,
                       time.monotonic() + max(0, body.max_wait_ms) / 1000.0, body.min_bytes, max_bytes,
                       _topics_of(body), body.isolation_level, body.replica_id)
    may = dispatcher.access(conn)
    if may is not None:  # a follower needs CLUSTER_ACTION; a consumer READ on each topic
        if body.replica_id >= 0:
            if not may(CLUSTER_ACTION, CLUSTER, CLUSTER_NAME):
                req.denied = {t for t, *_ in req.partitions}
        else:
            req.denied = {t for t in {t for t, *_ in req.partitions} if not may(READ, TOPIC, t)}
    if body.replica_id >= 0 and not req.denied and not _from_live_broker(ctx, req):
        req.replica_id = -2  # answered NOT_LEADER_OR_FOLLOWER per partition (no replica has that id)
    elif body.replica_id < 0:
        md = ctx.metadata.current()
        if md.quotas:
            _apply_quota(dispatcher, conn, header, md, req)
    topics, total, errors = read_partitions(ctx, req)
    if errors or total >= req.min_bytes or body.max_wait_ms <= 0 or not req.versions:
        respond(ctx, req, topics)
        return
    ctx.parked_fetches.park(req)


def _apply_quota(dispatcher, conn, header, md, req: PendingFetch) -> None:
    """A consumer under a consumer_byte_rate: its response counts against it, and is never larger than
    the quota allows over its windows (a larger one would be throttled whatever the client did)."""
    ctx = dispatcher.ctx
    quota = dispatcher.client_quota(md, FETCH, conn, header)
    if quota is not None:
        req.quota = quota
        req.max_bytes = min(req.max_bytes, max_fetch_bytes(quota[0], ctx.quotas.window_ms, ctx.quotas.samples))


def _from_live_broker(ctx, req: PendingFetch) -> bool:
    """A follower's Fetch: True when it comes from a live broker; then every fetch offset it carries
    goes to the partition's owner (also those returning nothing: that is how a caught-up follower
    shows it)."""
    md = ctx.metadata.current()
    replica = req.replica_id
    if not any(b.node_id == replica for b in md.brokers):
        return False
    for topic, partition, offset, _pmax, _epoch in req.partitions:
        info = md.topic(topic)
        if info is None or not 0 <= partition < len(info.partitions):
            continue
        part = info.partitions[partition]
        if part.slot >= 0 and replica in part.replicas:
            ctx.io.replica_pos(part.owner, part.slot, topic, partition, replica, offset)
    return True


class ParkedFetches:
    """Long-poll fetches of one network worker, re-read when a partition they wait on moved (its
    version in the partition-state table changed) or their max_wait_ms passed."""

    def __init__(self, ctx):
        self.ctx = ctx
        self.parked: list[PendingFetch] = []

    def park(self, req: PendingFetch) -> None:
        self.parked.append(req)

    def watched_versions(self) -> dict[int, int]:
        out: dict[int, int] = {}
        for req in self.parked:
            out.update(req.versions)
        return out

    def next_deadline(self) -> float | None:
        if not self.parked:  # every pass of the worker's loop asks; usually nothing is parked
            return None
        return min(r.deadline for r in self.parked)

    def check(self) -> None:
        if not self.parked:
            return
        now = time.monotonic()
        table = self.ctx.table
        keep = []
        for req in self.parked:
            if req.conn.closed:
                continue
            expired = now >= req.deadline
            if not expired and all(table.version(s) == v for s, v in req.versions.items()):
                keep.append(req)
                continue
            topics, total, errors = read_partitions(self.ctx, req)
            if expired or errors or total >= req.min_bytes:
                respond(self.ctx, req, topics)
            else:
                keep.append(req)
        self.parked = keep


HANDLERS = {1: handle_fetch}
