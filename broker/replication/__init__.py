"""Replication inside an I/O worker: the role of each hosted partition and what that role does.

Every partition this worker owns is either led here (the snapshot's leader is this broker) or followed.
A led partition with more than one replica gets a `LeaderState` (`leader.py`): followers' positions arrive
as REPLICA_POS ring messages from the network workers that served their Fetch requests, the high watermark
is the smallest log end offset over the ISR, acks=all appends are answered when it covers them, and ISR
changes are asked of the supervisor over the control channel ({"op": "isr_update"}; the new ISR comes back
in the next metadata snapshot). A followed partition is copied from its leader by the worker's
`ReplicaFetcher` (`follower.py`). A partition with one replica needs none of this: its high watermark
follows its log end offset, as on a single node.

The high watermarks of replicated partitions are checkpointed every 5 s (and at close) in each log
directory's `replication-offset-checkpoint`, as Kafka does, so a restarted broker does not show records
that were never committed: a reopened log starts from its checkpointed high watermark, not its log end.
"""

from __future__ import annotations

import os
import selectors
import time

from broker import ipc
from broker.log import checkpoint
from broker.control import ChannelClosed
from broker.logfmt import Log
from broker.replication.follower import ReplicaFetcher
from broker.replication.leader import LeaderState

log = Log("hpbroker.replication")

TICK_S = 0.25  # acks=all timeouts are checked this often
ISR_CHECK_MAX_S = 1.0  # lagging followers are looked for every replica.lag.time.max.ms / 2, at most this
HW_CHECKPOINT_FILE = "replication-offset-checkpoint"
HW_CHECKPOINT_S = 5.0


def restore_high_watermark(plog) -> None:
    """A freshly opened replicated log: its high watermark as last checkpointed (the log end if none)."""
    try:
        hw = checkpoint.read_offset(os.path.join(plog.log_dir, HW_CHECKPOINT_FILE), plog.topic, plog.partition, None)
    except OSError:
        return
    if hw is not None:
        plog.high_watermark = hw  # clamped to [log start, log end]


def save_high_watermarks(logs) -> None:
    """Checkpoint the high watermarks of `logs`, one locked update per log directory."""
    by_dir: dict[str, dict] = {}
    for plog in logs:
        by_dir.setdefault(plog.log_dir, {})[(plog.topic, plog.partition)] = plog.high_watermark
    for log_dir, updates in by_dir.items():
        checkpoint.update_offsets(os.path.join(log_dir, HW_CHECKPOINT_FILE), updates)


class Replication:
    def __init__(self, worker):
        self.worker = worker
        self.config = worker.config
        self.me = worker.config["broker.id"]
        self.lag_s = worker.config["replica.lag.time.max.ms"] / 1000.0
        self.ack_timeout_s = worker.config["replica.ack.timeout.ms"] / 1000.0
        self.leaders: dict[int, LeaderState] = {}  # slot -> state, led partitions with several replicas
        self.fetcher: ReplicaFetcher | None = None
        self.isr_calls: dict[int, int] = {}  # control request id -> slot
        self._next_id = 0
        self._ticking = False
        self.isr_check_s = min(self.lag_s / 2, ISR_CHECK_MAX_S)
        self._next_isr_check = 0.0
        self._saved_hw: dict[int, int] = {}  # slot -> high watermark last checkpointed
        self._checkpointing = False

    # -- roles --------------------------------------------------------------------------------------------

    def min_isr(self, md, topic: str) -> int:
        info = md.topic(topic)
        value = info.configs.get("min.insync.replicas") if info is not None else None
        return int(value) if value is not None else int(self.config["min.insync.replicas"])

    def opened(self, op) -> None:
        """A replicated log was just opened here: its high watermark from the checkpoint."""
        if len(op.replicas) > 1:
            restore_high_watermark(op.log)
            self.track_high_watermark(op)

    def track_high_watermark(self, op) -> None:
        """Checkpoint `op`'s high watermark from now on (opened replicated, or a reassignment gave it
        followers: its high watermark is then its log end, never the older value a checkpoint may hold)."""
        self._saved_hw[op.slot] = op.log.high_watermark
        if not self._checkpointing:
            self._checkpointing = True
            self.worker.call_later(HW_CHECKPOINT_S, self._checkpoint_tick)

    def checkpoint(self) -> None:
        """Write the high watermarks that moved since the last checkpoint."""
        changed = []
        for op in self.worker.owned.values():
            if len(op.replicas) > 1 and self._saved_hw.get(op.slot) != op.log.high_watermark:
                changed.append(op)
        if not changed:
            return
        try:
            save_high_watermarks([op.log for op in changed])
        except OSError as e:
            log.error("high watermark checkpoint failed", error=repr(e))
            return
        for op in changed:
            self._saved_hw[op.slot] = op.log.high_watermark

    def _checkpoint_tick(self) -> None:
        self.worker.call_later(HW_CHECKPOINT_S, self._checkpoint_tick)
        self.checkpoint()

    def become_leader(self, op, md, now: float) -> None:
        """`op` is led here from now on (or under a new epoch)."""
        self.drop_leader(op)
        plog = op.log
        if len(op.replicas) <= 1:
            plog.high_watermark = None
            return
        leo = plog.log_end_offset
        if op.leader_epoch > plog.leader_epoch_cache.latest_epoch:  # followers ask where epochs end
            plog.leader_epoch_cache.assign(op.leader_epoch, leo)
        state = LeaderState(self.me, op.replicas, op.isr, plog.high_watermark, leo, now, self.lag_s,
                            self.min_isr(md, op.topic))
        state.advance(leo)
        plog.high_watermark = state.hw
        op.leader_state = state
        self.leaders[op.slot] = state
        if not self._ticking:
            self._ticking = True
            self.worker.call_later(TICK_S, self._tick)

    def become_follower(self, op) -> None:
        self.drop_leader(op)
        op.log.high_watermark = op.log.high_watermark  # frozen here; the leader's Fetch answers move it

    def drop_leader(self, op) -> None:
        state = self.leaders.pop(op.slot, None)
        op.leader_state = None
        if state is not None:
            state.abandon()

    def update_assignment(self, op, md, now: float) -> None:
        """Same leader and epoch, possibly a new ISR or replica list."""
        state = op.leader_state
        if state is not None:
            state.update_assignment(op.replicas, op.isr, self.min_isr(md, op.topic), now)
            self._advanced(op, state, now)

    def sync_followers(self, md) -> None:
        """Point the replica fetcher at the leaders of the partitions followed here."""
        wanted = {}
        listener = self.config["inter.broker.listener.name"] or self.config.listeners[0].name
        brokers = {b.node_id: b.address(listener) for b in md.brokers}
        for op in self.worker.owned.values():
            if not op.is_leader and len(op.replicas) > 1:
                wanted[(op.topic, op.partition)] = (op.slot, op.leader, op.leader_epoch, brokers.get(op.leader))
        if not wanted and self.fetcher is None:
            return
        if self.fetcher is None:
            self.fetcher = ReplicaFetcher(self.me, self.config, self._follower_log, self._follower_progress)
            self.worker.sel.register(self.fetcher.fileno(), selectors.EVENT_READ, "replica")
        self.fetcher.assign(wanted)

    def _follower_log(self, slot: int):
        op = self.worker.owned.get(slot)
        return op.log if op is not None and not op.is_leader else None

    def _follower_progress(self, slot: int) -> None:
        op = self.worker.owned.get(slot)
        if op is not None:
            self.worker.producers.follower_progress(op)
            self.worker.publish(op)

    # -- leader side --------------------------------------------------------------------------------------

    def replica_pos(self, payload) -> None:
        slot, partition, replica_id, fetch_offset, topic = ipc.parse_replica_pos(payload)
        state = self.leaders.get(slot)
        if state is None:
            return
        op = self.worker.owned.get(slot)
        if op is None or op.topic != topic or op.partition != partition:
            return
        now = time.monotonic()
        if state.follower_fetch(replica_id, fetch_offset, op.log.log_end_offset, now):
            self._advanced(op, state, now)
        if replica_id not in state.isr:
            self._maybe_change_isr(op, state, now)

    def appended(self, op, state: LeaderState) -> None:
        """The leader appended: with an ISR of one the high watermark moves at once."""
        if state.advance(op.log.log_end_offset):
            op.log.high_watermark = state.hw

    def wait_for_isr(self, op, state: LeaderState, last_offset: int, done, timeout_ms: int | None = None) -> int | None:
        """Wait for the ISR up to the request's timeout_ms (Kafka's rule), never past replica.ack.timeout.ms."""
        timeout = self.ack_timeout_s if timeout_ms is None else min(max(timeout_ms, 0) / 1000.0, self.ack_timeout_s)
        return state.wait_for(last_offset, time.monotonic(), timeout, done)

    def _advanced(self, op, state: LeaderState, now: float) -> None:
        state.advance(op.log.log_end_offset)
        if state.hw != op.log.high_watermark:
            op.log.high_watermark = state.hw
            self.worker.publish(op)
        if state.complete(now):
            self.worker.flush_completions()

    def _maybe_change_isr(self, op, state: LeaderState, now: float) -> None:
        isr = state.isr_change(op.log.log_end_offset, now)
        if isr is None:
            return
        self._next_id += 1
        self.isr_calls[self._next_id] = op.slot
        log.info("isr change asked", topic=op.topic, partition=op.partition, isr=list(isr), old=list(state.isr),
                 epoch=op.leader_epoch)
        try:
            self.worker.channel.send({"op": "isr_update", "id": self._next_id, "topic": op.topic,
                                      "partition": op.partition, "leader_epoch": op.leader_epoch,
                                      "isr": list(isr)})
        except ChannelClosed:
            self.isr_calls.pop(self._next_id, None)
            state.isr_answered(-1, time.monotonic())  # the supervisor is gone: the next check decides again

    def control_reply(self, msg: dict) -> None:
        slot = self.isr_calls.pop(msg.get("reply_to"), None)
        if slot is None:
            return
        state = self.leaders.get(slot)
        code = int(msg.get("error_code", 0) or 0)
        if code:
            log.warning("isr change refused", slot=slot, code=code)
        if state is not None:
            state.isr_answered(code, time.monotonic())

    def _tick(self) -> None:
        if not self.leaders:
            self._ticking = False
            return
        self.worker.call_later(TICK_S, self._tick)
        now = time.monotonic()
        check_isr = now >= self._next_isr_check
        if check_isr:
            self._next_isr_check = now + self.isr_check_s
        for slot, state in list(self.leaders.items()):
            op = self.worker.owned.get(slot)
            if op is None:
                continue
            if check_isr:
                self._maybe_change_isr(op, state, now)
            if state.acks and state.complete(now):
                self.worker.flush_completions()

    # -- follower side ------------------------------------------------------------------------------------

    def poll(self) -> None:
        if self.fetcher is not None and not self.fetcher.results.empty():
            self.fetcher.poll()

    def close(self) -> None:
        self.checkpoint()
        for slot in list(self.leaders):
            op = self.worker.owned.get(slot)
            if op is not None:
                self.drop_leader(op)
        if self.fetcher is not None:
            self.fetcher.close()
            self.fetcher = None
