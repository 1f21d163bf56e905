"""Produce: route each partition's records to its owning I/O worker; answer when all have completed.

The response goes out only after every partition's completion arrived, and a completion with success is
posted by the owner only after the batch is in the segment, so acks=1/-1 never acknowledge a record that
is not in the log. acks=0 takes no response; an error on such a request closes the connection, as Kafka
does, because the client has no other way to learn of it.
"""

from __future__ import annotations

import hotpath
from broker.metrics import PROC
from broker.quotas import PRODUCE, throttle
from broker.shm import layout as _ml
from broker.security.acl import TOPIC, WRITE
from netio.codec import ErrorCode
from netio.codec.produce import encode_produce_response

MIN_SERVED_VERSION = 3  # magic-2 batches; v0-2 are advertised only for old librdkafka feature probing


class ProduceState:
    __slots__ = ("slot", "version", "acks", "results", "outstanding", "conn", "throttle_ms", "owner_us")

    def __init__(self, slot, version: int, acks: int, conn):
        self.slot = slot
        self.version = version
        self.acks = acks
        self.results: dict[str, list[tuple]] = {}
        self.outstanding = 0
        self.conn = conn
        self.throttle_ms = 0
        self.owner_us = 0  # the owners' time on this request's appends (request quotas)

    def add(self, topic: str, partition: int, error: int, base_offset: int = -1, log_append_time: int = -1,
            log_start: int = -1, message: str | None = None) -> None:
        self.results.setdefault(topic, []).append(
            (partition, error, base_offset, log_append_time, log_start, message))

    def finish(self) -> None:
        for ps in self.results.values():
            for p in ps:
                if p[1]:
                    PROC.error(0, p[1])
        if self.acks == 0:
            bad = [(t, p[0], p[1]) for t, ps in self.results.items() for p in ps if p[1]]
            if bad:
                t, p, code = bad[0]
                if self.conn.close_reason is None:
                    self.conn.close_reason = f"acks=0 produce to {t}-{p} failed with {ErrorCode(code).name}"
                self.conn.flush()
            return
        s = self.slot
        if s.request_time is not None:  # as Kafka, a request quota applies to acks=1 and -1 only
            self.throttle_ms = max(self.throttle_ms, s.request_time.charge(self.owner_us))
        s.reply_parts([encode_produce_response(self.version, s.correlation_id, list(self.results.items()),
                                               self.throttle_ms)])


def handle_produce(dispatcher, conn, header, req, slot) -> None:
    """`req` is the fast path's ProduceRequest: flat (topic, partition, records) triples."""
    ctx = dispatcher.ctx
    version = header.api_version
    acks = req.acks
    state = ProduceState(slot, version, acks, conn)
    if version < MIN_SERVED_VERSION:
        code = int(ErrorCode.UNSUPPORTED_VERSION)
    elif acks not in (0, 1, -1):
        code = int(ErrorCode.INVALID_REQUIRED_ACKS)
    elif req.transactional_id is not None:
        code = int(ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED)
    else:
        code = 0
    md = ctx.metadata.current()
    if md.quotas:
        state.throttle_ms = _over_quota(dispatcher, conn, header, md)
    io = ctx.io
    may = dispatcher.access(conn)
    for name, index, records in req.partitions:
        if code:
            state.add(name, index, code)
            continue
        if may is not None and not may(WRITE, TOPIC, name):
            state.add(name, index, int(ErrorCode.TOPIC_AUTHORIZATION_FAILED))
            continue
        info = md.topics.get(name)
        if info is None or not 0 <= index < len(info.partitions):
            md = ctx.metadata.current(max_age=0)  # created a moment ago, perhaps through another worker
            info = md.topics.get(name)
        part = info.partitions[index] if info is not None and 0 <= index < len(info.partitions) else None
        if part is None:
            state.add(name, index, int(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION))
        elif not ctx.leads(part):
            state.add(name, index, int(ErrorCode.NOT_LEADER_OR_FOLLOWER))
        elif records is None or len(records) == 0:
            state.add(name, index, int(ErrorCode.INVALID_RECORD), message="no record batch")
        elif _more_than_one_batch(records):
            state.add(name, index, int(ErrorCode.INVALID_RECORD),
                      message=f"Produce requests with version {version} are only allowed to contain exactly "
                              "one record batch per partition")
        elif len(records) > ctx.max_ring_message:
            state.add(name, index, int(ErrorCode.MESSAGE_TOO_LARGE))
        elif acks == -1 and len(part.isr) < info.configs.get("min.insync.replicas",
                                                             ctx.config["min.insync.replicas"]):
            state.add(name, index, int(ErrorCode.NOT_ENOUGH_REPLICAS))
        else:
            state.outstanding += 1
            io.append(part.owner, part.slot, name, index, acks, records, _completion(state, name, index), conn,
                      req.timeout_ms)
    if acks == 0:
        slot.no_reply()
    if state.outstanding == 0:
        state.finish()


def _over_quota(dispatcher, conn, header, md) -> int:
    """Count the request's bytes against the client's producer_byte_rate; the throttle time it earned. As
    in Kafka, the request is served either way: the quota delays the client's next requests."""
    ctx = dispatcher.ctx
    quota = dispatcher.client_quota(md, PRODUCE, conn, header)
    if quota is None:
        return 0
    ms = ctx.quotas.record(quota, PRODUCE, len(dispatcher.frame))
    if ms:
        throttle(ctx, conn, ms, _ml.MS_THROTTLED_PRODUCE)
    return ms


def _more_than_one_batch(records) -> bool:
    """Bytes follow the first batch. Kafka refuses those records for Produce v3+ with INVALID_RECORD; a
    first batch that is itself malformed (a negative batchLength, too few bytes) is the owner's scan to
    judge (CORRUPT_MESSAGE or INVALID_RECORD)."""
    return len(records) >= hotpath.LOG_OVERHEAD and \
        hotpath.LOG_OVERHEAD <= hotpath.first_batch_size(records) < len(records)


def _completion(state: ProduceState, topic: str, partition: int):
    def done(result: tuple) -> None:
        _token, error, base_offset, log_append_time, log_start = result[:5]
        if len(result) > 5:
            state.owner_us += result[5]
        state.add(topic, partition, error, base_offset, log_append_time, log_start)
        state.outstanding -= 1
        if state.outstanding == 0:
            state.finish()

    return done


HANDLERS = {0: handle_produce}
