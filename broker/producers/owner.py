"""Producer state in the partition owner: checks before an append, bookkeeping after it, snapshots, and
what DescribeProducers reports.

An owner extension (see `OWNER_MODULES` in broker/ioworker.py). When a partition opens, its state is
loaded from the newest snapshot and brought to the log end by replaying the batches after it, so
deduplication survives a kill -9 of the owner or of the whole broker. A snapshot is written when the
active segment rolls, every `SNAPSHOT_INTERVAL_S` if the state changed, after a replay, and when the
partition closes with its log end past the last snapshot; so a replay covers about a segment at most.
Only the snapshot at close is fsynced: a snapshot lost or torn in a power failure fails its CRC and the
previous one plus a longer replay takes its place. Idle producers are dropped after
producer.id.expiration.ms.
"""

from __future__ import annotations

import struct
import time

import hotpath
from broker.logfmt import Log
from netio.codec import ErrorCode

from . import snapshot
from .state import ProducerEntry, ProducerError, ProducerStates, last_sequence

log = Log("hpbroker.producers")

SNAPSHOT_INTERVAL_S = 30.0
DESCRIBE_PRODUCERS = 61
REPLAY_READ_BYTES = 8 << 20

# lastOffsetDelta @23, producerId @43, producerEpoch @51, baseSequence @53 (RecordBatch v2 header)
_DELTA = struct.Struct(">i")
_PRODUCER = struct.Struct(">qhi")
_CONTROL_BIT = 0x20


class InvalidRecord(ProducerError):
    error_code = int(ErrorCode.INVALID_RECORD)


def batch_producer(records) -> tuple[int, int, int, int] | None:
    """(producer id, epoch, first sequence, last sequence) of an idempotent request's batch, None for
    batches without a producer id. Produce v3+ carries exactly one batch per partition."""
    if len(records) < 61:
        return None  # the log's validation rejects it
    pid, epoch, first_seq = _PRODUCER.unpack_from(records, 43)
    if pid < 0:
        return None
    if hotpath.first_batch_size(records) != len(records):
        raise InvalidRecord("an idempotent produce request must carry exactly one record batch")
    if first_seq < 0:
        raise InvalidRecord(f"producer {pid} sent a negative sequence")
    return pid, epoch, first_seq, last_sequence(first_seq, _DELTA.unpack_from(records, 23)[0])


def replay(plog, states: ProducerStates, start: int) -> int:
    """Record every producer batch of `plog` from offset `start` to its log end; returns batches seen."""
    end = plog.log_end_offset
    offset = max(start, plog.log_start_offset)
    seen = 0
    while offset < end:
        sl = plog.read(offset, REPLAY_READ_BYTES, max_offset=end)
        if len(sl) == 0:
            break
        res = hotpath.scan_batches(sl.view())
        if res.count == 0:
            break
        bases, deltas = res.base_offset, res.last_offset_delta
        pids, epochs, seqs = res.producer_id, res.producer_epoch, res.base_sequence
        attrs, stamps = res.attributes, res.max_timestamp
        for i in range(res.count):
            base = int(bases[i])
            last = base + int(deltas[i])
            if last < offset or pids[i] < 0 or attrs[i] & _CONTROL_BIT:
                continue
            first_seq = int(seqs[i])
            states.record(int(pids[i]), int(epochs[i]), first_seq, last_sequence(first_seq, int(deltas[i])),
                          base, last, int(stamps[i]))
            seen += 1
        offset = int(bases[res.count - 1]) + int(deltas[res.count - 1]) + 1
    return seen


def load(plog) -> tuple[ProducerStates, int]:
    """State at the log end of `plog` and the offset of the snapshot it started from (-1: none): the
    newest snapshot plus a replay of the batches after it."""
    found = snapshot.load_latest(plog.directory, plog.log_end_offset)
    start, states = found if found is not None else (-1, ProducerStates())
    states.changed = replay(plog, states, max(start, 0)) > 0
    return states, start


class GroupCheck:
    """Producer checks for batches of one partition written together. Each batch is checked against the
    state that the batches let through before it in the group will leave; nothing is recorded until the
    write is done (`ProducerOwner.recorded`). The k-th batch let through (from 0) stands in that state with
    base offset ``-(k + 1)``, so a duplicate of it is told apart and answered once the write's result is
    known."""

    __slots__ = ("states", "overlay", "kept")

    def __init__(self, states: ProducerStates):
        self.states = states
        self.overlay: dict[int, ProducerStates] = {}  # producer id -> its entry with the group's batches
        self.kept: list = []  # per batch let through, in order: its (pid, epoch, first, last seq) or None

    def check(self, records) -> int | None:
        """None: `records` goes into the write (call only for batches that passed the log's validation).
        Otherwise it is a duplicate: the base offset of the original, negative for one of this group.
        Raises a ProducerError to reject."""
        found = batch_producer(records)
        if found is not None:
            pid, epoch, first_seq, last_seq = found
            tentative = self.overlay.get(pid)
            dup = (self.states if tentative is None else tentative).check(pid, epoch, first_seq, last_seq)
            if dup is not None:
                return dup
            if tentative is None:
                e = self.states.entries.get(pid)
                tentative = self.overlay[pid] = ProducerStates(
                    {pid: ProducerEntry(e.epoch, e.last_ms, list(e.batches))} if e is not None else None)
            marker = -len(self.kept) - 1
            tentative.record(pid, epoch, first_seq, last_seq, marker, marker, 0)
        self.kept.append(found)
        return None


class _Partition:
    __slots__ = ("states", "segment_base", "snapshot_offset", "replayed_to", "truncations")

    def __init__(self, states: ProducerStates, segment_base: int, snapshot_offset: int, plog):
        self.states = states
        self.segment_base = segment_base
        self.snapshot_offset = snapshot_offset
        self.replayed_to = plog.log_end_offset  # followed logs: the state covers the log up to here
        self.truncations = plog.truncations


class ProducerOwner:
    """Per owned partition producer state, for the append path of one I/O worker."""

    def __init__(self, worker):
        self.worker = worker
        self.expiration_ms = int(worker.config["producer.id.expiration.ms"])
        self.parts: dict[int, _Partition] = {}
        self.handlers = {DESCRIBE_PRODUCERS: self.describe_producers}
        worker.call_later(SNAPSHOT_INTERVAL_S, self._tick)

    # -- hooks -------------------------------------------------------------------------------------------

    def on_open(self, op) -> None:
        states, snap = load(op.log)
        states.expire(_now_ms(), self.expiration_ms)
        part = self.parts[op.slot] = _Partition(states, op.log.active_segment.base_offset, snap, op.log)
        if _stale(part, op.log):
            self._snapshot(op, part)  # the next open need not replay the same batches again
        log.debug("producer state loaded", topic=op.topic, partition=op.partition, producers=len(states),
                  snapshot=snap)

    def on_close(self, op) -> None:
        part = self.parts.pop(op.slot, None)
        if part is not None and _stale(part, op.log):
            self._snapshot(op, part, fsync=True)

    def close(self) -> None:
        for op in list(self.worker.owned.values()):
            self.on_close(op)

    # -- append path -------------------------------------------------------------------------------------

    def group(self, op) -> GroupCheck:
        """Checks for the batches about to be written together to `op` (see `GroupCheck`)."""
        return GroupCheck(self._part(op).states)

    def recorded(self, op, group: GroupCheck, results: list) -> None:
        """The write of `group`'s batches returned `results` (an AppendResult or an exception each): those
        in the log go into the producer state."""
        part = self._part(op)
        now = _now_ms()
        for found, r in zip(group.kept, results):
            if found is not None and not isinstance(r, Exception):
                part.states.record(*found, r.base_offset, r.last_offset, now)
        self._snapshot_on_roll(op, part)

    def _part(self, op) -> _Partition:
        part = self.parts.get(op.slot)
        if part is None:
            self.on_open(op)
            part = self.parts[op.slot]
        return part

    def _snapshot_on_roll(self, op, part: _Partition) -> None:
        base = op.log.active_segment.base_offset
        if base != part.segment_base:  # the log rolled: bound the replay after a crash to about a segment
            part.segment_base = base
            self._snapshot(op, part)

    def follower_progress(self, op) -> None:
        """A follower appended the leader's batches (or truncated): keep the state what the log says, so
        it is right (and its snapshots are) the moment this replica becomes leader."""
        part = self.parts.get(op.slot)
        plog = op.log
        if part is None or part.truncations != plog.truncations:
            self.on_open(op)  # new here or truncated: snapshots past the end are dropped, the rest replayed
            return
        if plog.log_end_offset > part.replayed_to:
            replay(plog, part.states, part.replayed_to)
            part.replayed_to = plog.log_end_offset
            self._snapshot_on_roll(op, part)

    # -- DescribeProducers --------------------------------------------------------------------------------

    def describe_producers(self, header, body: dict, reply, key: int) -> None:
        """The partitions of a DescribeProducers request this worker owns (broker/api/admin.py merges the
        owners' answers): each producer's epoch, last sequence and the time of its last append."""
        topics = []
        for t in body["topics"]:
            parts = []
            for index in t["partition_indexes"]:
                op, mine = self.worker.owned_partition(t["name"], index)
                if not mine:
                    continue
                if op is None:
                    parts.append({"partition_index": index, "error_code": int(ErrorCode.NOT_LEADER_OR_FOLLOWER),
                                  "active_producers": []})
                    continue
                states = self._part(op).states
                parts.append({"partition_index": index, "error_code": 0, "active_producers": [
                    {"producer_id": pid, "producer_epoch": e.epoch,
                     "last_sequence": e.batches[-1][1] if e.batches else -1, "last_timestamp": e.last_ms,
                     "coordinator_epoch": -1, "current_txn_start_offset": -1}
                    for pid, e in sorted(states.entries.items())]})
            if parts:
                topics.append({"name": t["name"], "partitions": parts})
        reply({"throttle_time_ms": 0, "topics": topics})

    # -- housekeeping ------------------------------------------------------------------------------------

    def _tick(self) -> None:
        now = _now_ms()
        for slot, part in list(self.parts.items()):
            op = self.worker.owned.get(slot)
            if op is None:
                self.parts.pop(slot, None)
                continue
            expired = part.states.expire(now, self.expiration_ms)
            if expired:
                log.info("producers expired", topic=op.topic, partition=op.partition, count=expired)
            if part.states.changed:
                self._snapshot(op, part)
        self.worker.call_later(SNAPSHOT_INTERVAL_S, self._tick)

    def _snapshot(self, op, part: _Partition, fsync: bool = False) -> None:
        offset = op.log.log_end_offset
        try:
            snapshot.write(op.log.directory, offset, part.states, fsync=fsync)
            part.snapshot_offset = offset
        except OSError as e:
            log.error("producer snapshot failed", topic=op.topic, partition=op.partition, error=repr(e))


def _stale(part: _Partition, plog) -> bool:
    """Whether the newest snapshot misses state changes or log batches (an empty log needs none)."""
    leo = plog.log_end_offset
    return part.states.changed or (part.snapshot_offset < leo and leo > plog.log_start_offset)


def _now_ms() -> int:
    return int(time.time() * 1000)


def attach(worker) -> ProducerOwner:
    """The append path reaches the extension as `worker.producers`."""
    owner = ProducerOwner(worker)
    worker.producers = owner
    return owner
