"""The I/O worker process: the one writer of the partitions it owns.

It consumes append and offset-lookup requests from one ring per network worker, appends record batches
straight from the ring into the partition's segment, publishes the new log end offset and high watermark
in the shared partition-state table (waking network workers parked on long-poll fetches), and posts a
completion on the paired ring. Only after the batch is in the segment (and fsynced where the flush policy
asks) is a completion with success posted, so an acknowledgement always means "in the log".

A restarted I/O worker attaches to the same rings and continues with the oldest unconsumed request: a
request that the previous incarnation appended but did not complete is appended again and completed once
(at-least-once, as a Kafka client retry would do), never acknowledged without being in the log.

In a cluster each owned partition is led or followed here (`broker.replication`): appends reach only led
partitions, an acks=all append to a replicated partition is answered once the ISR has it, and followed
partitions are written by the replica fetcher. Extensions (producer state, group coordinators) are told
of led partitions: becoming leader (or a new leader epoch) opens the partition for them, so their state is
rebuilt from the log the followers copied; a role change or a partition leaving this worker closes it
(a followed partition is closed too: producer state keeps up with followed logs, see `follower_progress`).
"""

from __future__ import annotations

import heapq
import importlib
import itertools
import selectors
import signal
import time
from typing import Callable

from broker import ipc
from broker.config import dynamic_log_defaults
from broker.log.log import now_ms
from broker.logfmt import Log
from broker.metrics import PROC, now_us
from broker.metrics.block import STAGE
from broker.replication import Replication
from broker.shm import layout as _ml
from netio.codec import ErrorCode

log = Log("hpbroker.io")

BATCH = 64
FLUSH_CHECK_INTERVAL_S = 0.01  # time-based flush (flush.ms) is checked this often
CONTROL_CHECK_INTERVAL_S = 0.005  # while rings keep the worker busy, the supervisor's channel is read this often
_OWNER_STAGE = STAGE["owner"]

# Modules that extend the partition owner: each defines `attach(worker) -> extension`. An extension may
# have `handlers` ({api_key: fn(header, body, reply)} for requests forwarded here whole), and the hooks
# `on_open(owned_partition)`, `on_close(owned_partition)` and `close()`. `reply(body)` may be called later
# (a parked JoinGroup); request data a handler keeps past its return must be copied (views die with the
# ring entry). Timers: `worker.call_later(delay_s, fn)`.
OWNER_MODULES: tuple[str, ...] = ("broker.records_admin", "broker.producers.owner", "broker.groups.coordinator",
                                  "broker.compaction")


def error_code_for(exc: Exception) -> int:
    code = getattr(exc, "error_code", None)
    if code is not None:
        return int(code)
    if isinstance(exc, OSError):
        return int(ErrorCode.KAFKA_STORAGE_ERROR)
    return int(ErrorCode.UNKNOWN_SERVER_ERROR)


class OwnedPartition:
    __slots__ = ("topic", "partition", "slot", "log", "leader_epoch", "leader", "replicas", "isr", "is_leader",
                 "leader_state")

    def __init__(self, topic: str, partition: int, slot: int, plog, leader_epoch: int, leader: int = -1,
                 replicas: tuple = (), isr: tuple = (), is_leader: bool = True):
        self.topic = topic
        self.partition = partition
        self.slot = slot
        self.log = plog
        self.leader_epoch = leader_epoch
        self.leader = leader
        self.replicas = replicas
        self.isr = isr
        self.is_leader = is_leader  # False: followed here, written only by the replica fetcher
        self.leader_state = None  # broker.replication.leader.LeaderState when led with several replicas


class IOWorker:
    def __init__(self, index: int, shared, config, metadata_view, channel, log_manager, recover: bool | None):
        self.index = index
        self.shared = shared  # broker.shared.SharedState attached in this process
        self.config = config
        self.metadata = metadata_view
        self.channel = channel
        self.mgr = log_manager  # inherited from the supervisor; only its open_partition is used here
        self.recover = recover  # None: recover only if the last shutdown was not clean
        self.req = shared.request_rings_for_io(index)
        self.done = shared.completion_rings_for_io(index)
        self.arenas = shared.arenas  # [network worker]: where APPEND_REF records lie
        for ring in self.done:
            ring.defer_wakeups()  # flushed once per batch and once per loop pass (timer-driven replies)
        self.table = shared.table
        self.owned: dict[int, OwnedPartition] = {}
        self.md_version = -1
        self.stopping = False
        self.next_retention = 0.0
        self.next_flush_check = 0.0
        self.retention_interval = config["log.retention.check.interval.ms"] / 1000.0
        self.timers: list[tuple[float, int, Callable[[], None]]] = []
        self._timer_seq = itertools.count()
        self.sel = selectors.DefaultSelector()
        self.replication = Replication(self)
        self.extensions = [importlib.import_module(m).attach(self) for m in OWNER_MODULES]
        self.owner_handlers: dict[int, Callable] = {}
        for ext in self.extensions:
            self.owner_handlers.update(getattr(ext, "handlers", {}))

    # -- extension support --------------------------------------------------------------------------------

    def call_later(self, delay: float, fn: Callable[[], None]) -> None:
        heapq.heappush(self.timers, (time.monotonic() + delay, next(self._timer_seq), fn))

    def run_timers(self, now: float) -> None:
        while self.timers and self.timers[0][0] <= now:
            _, _, fn = heapq.heappop(self.timers)
            try:
                fn()
            except Exception as e:
                log.error("timer failed", exc_info=True, worker=self.index, error=repr(e))

    def _notify(self, hook: str, *args) -> None:
        for ext in self.extensions:
            fn = getattr(ext, hook, None)
            if fn is not None:
                try:
                    fn(*args)
                except Exception as e:
                    log.error("extension hook failed", exc_info=True, hook=hook, error=repr(e))

    # -- partitions ---------------------------------------------------------------------------------------

    def sync_partitions(self) -> None:
        """Open the partitions this worker owns in the current snapshot; close the ones that went away."""
        md = self.metadata.current(max_age=0)
        if md.version == self.md_version:
            return
        self.md_version = md.version
        self.mgr.reload()  # the supervisor changed the topic catalogue
        me = self.config["broker.id"]
        # the dynamic defaults in force here, which _reconfigure applies to open logs
        self.mgr.broker_config = self.config.log_defaults(dynamic_log_defaults(md.broker_configs, me))
        now = time.monotonic()
        wanted = {}
        for t in md.topics.values():
            for p in t.partitions:
                if p.owner == self.index:
                    wanted[p.slot] = (t.name, p)
        for slot in [s for s, op in self.owned.items() if wanted.get(s, (None,))[0] != op.topic]:
            op = self.owned.pop(slot)
            self.replication.drop_leader(op)
            self._notify("on_close", op)
            self.mgr.close_partition(op.topic, op.partition)
            log.info("partition closed", topic=op.topic, partition=op.partition, worker=self.index)
        self._reconfigure()
        for slot, (name, p) in wanted.items():
            op = self.owned.get(slot)
            if op is not None:
                self._update_role(op, p, md, me, now)
                continue
            try:
                plog = self.mgr.open_partition(name, p.partition, recover=self.recover)
            except Exception as e:
                log.error("partition open failed", topic=name, partition=p.partition, error=repr(e))
                continue
            op = OwnedPartition(name, p.partition, slot, plog, p.leader_epoch, p.leader, tuple(p.replicas),
                                tuple(p.isr), p.leader == me)
            self.owned[slot] = op
            self.replication.opened(op)
            self._take_role(op, md, now)
            self.publish(op)
            if op.is_leader:
                self._notify("on_open", op)
            log.debug("partition opened", topic=name, partition=p.partition, slot=slot,
                      leo=plog.log_end_offset, leader=p.leader)
        self.replication.sync_followers(md)
        self._notify("on_metadata", md)
        PROC.scalars[_ml.MS_PARTITIONS] = len(self.owned)

    def _take_role(self, op: OwnedPartition, md, now: float) -> None:
        if op.is_leader:
            self.replication.become_leader(op, md, now)
        else:
            self.replication.become_follower(op)

    def _update_role(self, op: OwnedPartition, p, md, me: int, now: float) -> None:
        """A partition already open here: a new leader or epoch is a role change (the extensions close it,
        and open it again if it is led here now); a new ISR or replica list only updates the leader's view."""
        is_leader = p.leader == me
        was_replicated = len(op.replicas) > 1
        op.replicas, op.isr = tuple(p.replicas), tuple(p.isr)
        if is_leader == op.is_leader and p.leader_epoch == op.leader_epoch and p.leader == op.leader:
            if is_leader and was_replicated != (len(op.replicas) > 1):
                # a reassignment gave a lone replica followers (or took its last ones): the leader starts
                # (or stops) tracking them and the high watermark, under the same epoch
                self.replication.become_leader(op, md, now)
                if len(op.replicas) > 1:
                    self.replication.track_high_watermark(op)
                self.publish(op)
                log.info("partition replication changed", topic=op.topic, partition=op.partition,
                         replicas=list(op.replicas), epoch=op.leader_epoch)
                return
            self.replication.update_assignment(op, md, now)
            return
        self._notify("on_close", op)
        op.leader, op.leader_epoch, op.is_leader = p.leader, p.leader_epoch, is_leader
        self._take_role(op, md, now)
        self.publish(op)
        if is_leader:
            self._notify("on_open", op)
        log.info("partition role changed", topic=op.topic, partition=op.partition, leader=p.leader,
                 epoch=p.leader_epoch, role="leader" if is_leader else "follower")

    def _reconfigure(self) -> None:
        """Topic configs changed (AlterConfigs): open logs and their segments take the new settings."""
        configs = {}
        for op in self.owned.values():
            if op.topic not in configs:
                try:
                    configs[op.topic] = self.mgr.log_config(op.topic)
                except Exception as e:
                    log.error("topic config unreadable", topic=op.topic, error=repr(e))
                    configs[op.topic] = None
            cfg = configs[op.topic]
            if cfg is not None and cfg != op.log.config:
                op.log.config = cfg
                for seg in op.log.segments:
                    seg.config = cfg
                log.info("partition reconfigured", topic=op.topic, partition=op.partition)

    def publish(self, op: OwnedPartition) -> None:
        plog = op.log
        self.table.publish(op.slot, plog.log_end_offset, plog.high_watermark, plog.log_start_offset,
                           op.leader_epoch, plog.tail)

    def partition(self, slot: int, topic: str, partition: int) -> OwnedPartition | None:
        op = self.owned.get(slot)
        if op is None or op.topic != topic or op.partition != partition:
            self.sync_partitions()
            op = self.owned.get(slot)
            if op is None or op.topic != topic or op.partition != partition:
                return None
        return op

    def owned_partition(self, topic: str, partition: int) -> tuple[OwnedPartition | None, bool]:
        """For a request forwarded to every owner it names: (the open partition or None, whether this worker
        owns it). An owner answers only for what it owns; one it owns but cannot open answers with an error."""
        info = self.metadata.current().topic(topic)
        if info is None or not 0 <= partition < len(info.partitions):
            return None, False
        p = info.partitions[partition]
        if p.owner != self.index:
            return None, False
        return self.partition(p.slot, topic, partition), True

    # -- requests -----------------------------------------------------------------------------------------

    def handle_appends(self, ring_index: int, run: list) -> list[bytes]:
        """Completions to post for consecutive APPEND/APPEND_REF messages of one ring (those left out are
        posted later: acks=all waiting for the ISR).

        Those for the same partition are written together (``PartitionLog.append_checked``: one roll check,
        one write, one flush decision, one publication), each still validated, checked against its
        producer's sequence and answered on its own.
        A busy owner finds dozens of appends queued per pass, several for each of its partitions."""
        t0 = now_us()
        replies: list[bytes] = []
        groups: dict = {}
        for kind, payload in run:
            token, slot, partition, acks, timeout_ms, topic, records = ipc.parse_append(payload)
            if kind == ipc.APPEND_REF:
                records = self._arena_records(ring_index, records)
                if records is None:
                    log.error("APPEND_REF outside the receive arena", ring=ring_index, topic=topic,
                              partition=partition)
                    replies.append(ipc.append_done(token, int(ErrorCode.UNKNOWN_SERVER_ERROR)))
                    continue
            items = groups.get((slot, topic, partition))
            if items is None:
                items = groups[(slot, topic, partition)] = []
            items.append((token, acks, timeout_ms, records))
        for (slot, topic, partition), items in groups.items():
            op = self.partition(slot, topic, partition)
            if op is None or not op.is_leader:
                replies.extend(ipc.append_done(item[0], int(ErrorCode.NOT_LEADER_OR_FOLLOWER)) for item in items)
            else:
                self._append(ring_index, op, items, t0, replies)
        return replies

    def _append(self, ring_index: int, op: OwnedPartition, items: list, t0: int, replies: list) -> None:
        """The appends one pass found for a partition: written with one write, answered one by one. Each is
        validated first, then checked against the producer state the batches before it leave (a batch
        refused, or a retry of one already written, is answered without being written)."""
        started = now_us()
        group = self.producers.group(op)
        kept, checked, dups = [], [], []  # dups: (token, k) of duplicates of the k-th batch kept
        for item in items:
            try:
                valid = op.log.validate(item[3])
                dup = group.check(item[3])
            except Exception as e:
                replies.append(self._rejected(op, item[0], e))
                continue
            if dup is None:
                kept.append(item)
                checked.append(valid)
            elif dup >= 0:  # already in the log: its original offset, nothing appended
                replies.append(self._duplicate(op, item[0], dup))
            else:
                dups.append((item[0], -dup - 1))
        if not kept:
            return
        try:
            results = op.log.append_checked(checked, leader_epoch=op.leader_epoch)
        except Exception as e:  # what append raises is returned per source; anything else fails them all
            results = [e] * len(kept)
        self.producers.recorded(op, group, results)
        for token, k in dups:
            r = results[k]
            replies.append(self._rejected(op, token, r) if isinstance(r, Exception) else
                           self._duplicate(op, token, r.base_offset))
        done = []
        for item, r in zip(kept, results):
            if isinstance(r, Exception):
                replies.append(self._rejected(op, item[0], r))
            else:
                done.append((item, r))
        if not done:
            return
        if len(items) > 1:
            PROC.scalars[_ml.MS_GROUPED_APPENDS] += len(done)
        state = op.leader_state
        if state is not None:
            self.replication.appended(op, state)
        self.publish(op)
        end = now_us()
        self._count_in(op.slot, [r for _, r in done], end - t0)
        share = (end - started) // len(done)  # each append's part of this partition's write (request quotas)
        for (token, acks, timeout_ms, _), r in done:
            reply = self._completion(ring_index, op, state, token, acks, timeout_ms, r, share)
            if reply is not None:
                replies.append(reply)

    def _completion(self, ring_index: int, op: OwnedPartition, state, token: int, acks: int, timeout_ms: int,
                    r, owner_us: int) -> bytes | None:
        if state is not None and acks == -1:
            return self._wait_for_isr(ring_index, token, op, state, r, timeout_ms, owner_us)
        return ipc.append_done(token, 0, r.base_offset, r.log_append_time, op.log.log_start_offset, owner_us)

    @staticmethod
    def _duplicate(op: OwnedPartition, token: int, offset: int) -> bytes:
        """A retried batch already written: success with its original offset, nothing appended."""
        log.debug("duplicate batch", topic=op.topic, partition=op.partition, offset=offset)
        return ipc.append_done(token, 0, offset, -1, op.log.log_start_offset)

    @staticmethod
    def _rejected(op: OwnedPartition, token: int, e: Exception) -> bytes:
        code = error_code_for(e)
        level = log.error if code == ErrorCode.KAFKA_STORAGE_ERROR else log.warning
        level("append rejected", topic=op.topic, partition=op.partition, error=repr(e), code=code)
        return ipc.append_done(token, code)

    @staticmethod
    def _count_in(slot: int, results: list, elapsed_us: int) -> None:
        """The appends one write made for a partition: counted together, each observed as taking
        ``elapsed_us`` (they were answered together)."""
        records = size = 0
        for r in results:
            records += r.record_count
            size += r.size
        PROC.scalars[_ml.MS_RECORDS_IN] += records
        PROC.scalars[_ml.MS_BYTES_IN] += size
        PROC.slot_add(0, slot, size)
        PROC.slot_add(1, slot, records)
        PROC.observe(_OWNER_STAGE, 0, elapsed_us, len(results))

    def _arena_records(self, ring_index: int, ref: memoryview) -> memoryview | None:
        arena = self.arenas[ring_index]  # one per network worker, as the request rings
        if arena is None or len(ref) != ipc.ARENA_REF_SIZE:
            return None
        return arena.view(*ipc.parse_arena_ref(ref))

    def _wait_for_isr(self, ring_index: int, token: int, op: OwnedPartition, state, r,
                      timeout_ms: int, owner_us: int) -> bytes | None:
        def reply(code: int) -> bytes:
            if code:
                log.warning("acks=all append failed", topic=op.topic, partition=op.partition, code=code)
            return ipc.append_done(token, code, -1 if code else r.base_offset, r.log_append_time,
                                   op.log.log_start_offset, owner_us)

        code = self.replication.wait_for_isr(op, state, r.last_offset,
                                             lambda code: self._post_later(ring_index, reply(code)), timeout_ms)
        if code is not None:
            return reply(code)
        self.post(self.done[ring_index], ipc.APPEND_DEFERRED, ipc.append_deferred(token))
        return None

    def _post_later(self, ring_index: int, reply: bytes) -> None:
        out = self.done[ring_index]
        if self.stopping:
            out.try_put(ipc.APPEND_DONE, reply)  # the network workers may be gone already: never wait
        else:
            self.post(out, ipc.APPEND_DONE, reply)

    def flush_completions(self) -> None:
        """Completions posted outside a ring pass (acks=all answered by a follower's progress) go out now."""
        for ring in self.done:
            ring.flush_wakeup()

    def handle_list_offset(self, payload: memoryview) -> bytes:
        token, slot, partition, timestamp, topic = ipc.parse_list_offset(payload)
        op = self.partition(slot, topic, partition)
        if op is None or not op.is_leader:
            return ipc.list_offset_done(token, int(ErrorCode.NOT_LEADER_OR_FOLLOWER))
        plog = op.log
        try:
            if timestamp == -2:
                return ipc.list_offset_done(token, 0, plog.log_start_offset, -1, op.leader_epoch)
            if timestamp == -1:
                return ipc.list_offset_done(token, 0, plog.high_watermark, -1, op.leader_epoch)
            found = plog.offset_for_max_timestamp() if timestamp == -3 else plog.offset_for_timestamp(timestamp)
        except Exception as e:
            return ipc.list_offset_done(token, error_code_for(e))
        if found is None:
            return ipc.list_offset_done(token, 0, -1, -1, -1)
        offset, ts, epoch = found
        return ipc.list_offset_done(token, 0, offset, ts, epoch)

    def handle_forward(self, ring_index: int, payload: memoryview) -> None:
        """A whole request for an owner-side handler; its reply may come now or later."""
        from netio.codec import CodecError, decode_request, encode_response

        token, key, frame = ipc.parse_forward(payload)
        out = self.done[ring_index]
        sent = []

        def reply(body: dict | None) -> None:
            if sent:
                return
            sent.append(True)
            data = b"" if body is None else encode_response(h.api_key, h.api_version, h.correlation_id, body)
            self.post(out, ipc.FORWARD_DONE, ipc.forward_done_header(token), data)

        try:
            req = decode_request(frame)
        except CodecError as e:
            log.error("forwarded request does not decode", error=str(e))
            self.post(out, ipc.FORWARD_DONE, ipc.forward_done_header(token), b"")
            return
        h = req.header
        handler = self.owner_handlers.get(h.api_key)
        if handler is None:
            log.error("no owner handler", api_key=h.api_key)
            reply(None)
            return
        try:
            handler(h, req.body, reply, key)
        except Exception as e:
            log.error("owner handler failed", exc_info=True, api_key=h.api_key, error=repr(e))
            reply(None)

    def post(self, out, kind: int, *parts) -> None:
        """Completion to a network worker; waits for room rather than drop it."""
        while not out.try_put(kind, *parts):
            out.flush_wakeup()
            out.wait_space(sum(len(p) for p in parts) + 64, timeout=1.0)

    def _post_all(self, out, replies: list) -> None:
        """A pass's completions, in order: each run of one kind published together (one head update for
        the run), what does not fit waits for room as ``post`` does."""
        i, end = 0, len(replies)
        while i < end:
            kind = replies[i][0]
            j = i + 1
            while j < end and replies[j][0] == kind:
                j += 1
            payloads = [reply for _, reply in replies[i:j]]
            for reply in payloads[out.put_batch(kind, payloads):]:
                self.post(out, kind, reply)
            i = j

    def poll_rings(self) -> int:
        handled = 0
        for n, ring in enumerate(self.req):
            msgs = ring.peek_batch(BATCH)
            if not msgs:
                continue
            replies = []
            run = []  # consecutive appends: written per partition, before any other message is looked at
            for kind, payload in msgs:
                if kind == ipc.APPEND or kind == ipc.APPEND_REF:
                    run.append((kind, payload))
                    continue
                if run:
                    replies.extend((ipc.APPEND_DONE, reply) for reply in self.handle_appends(n, run))
                    run = []
                if kind == ipc.REPLICA_POS:
                    self.replication.replica_pos(payload)
                elif kind == ipc.LIST_OFFSET:
                    replies.append((ipc.LIST_OFFSET_DONE, self.handle_list_offset(payload)))
                elif kind == ipc.FORWARD:
                    self.handle_forward(n, payload)
                else:
                    log.error("unknown ring message", kind=kind, ring=n)
            if run:
                replies.extend((ipc.APPEND_DONE, reply) for reply in self.handle_appends(n, run))
            out = self.done[n]
            self._post_all(out, replies)
            out.flush_wakeup()
            ring.advance()
            handled += len(msgs)
            PROC.scalars[_ml.MS_IO_MESSAGES] += len(msgs)
        return handled

    # -- housekeeping -------------------------------------------------------------------------------------

    def housekeeping(self, now: float) -> None:
        self.run_timers(now)
        self.replication.poll()
        for ring in self.done:
            ring.flush_wakeup()
        if now < self.next_flush_check:
            return
        self.next_flush_check = now + FLUSH_CHECK_INTERVAL_S  # a pass over every partition, not per batch
        wall_ms = now_ms()  # one clock read for the pass: flush.ms and retention
        for op in self.owned.values():
            tick = getattr(op.log, "maybe_flush", None)
            if tick is not None:
                try:
                    tick(wall_ms)
                except Exception as e:
                    log.error("flush failed", topic=op.topic, partition=op.partition, error=repr(e))
        try:
            self.mgr.write_due_checkpoints()
        except Exception as e:
            log.error("checkpoint failed", worker=self.index, error=repr(e))
        if now >= self.next_retention:
            self.next_retention = now + self.retention_interval
            for op in self.owned.values():
                try:
                    if op.log.enforce_retention(wall_ms):
                        self.publish(op)
                except Exception as e:
                    log.error("retention failed", topic=op.topic, partition=op.partition, error=repr(e))

    def handle_control(self) -> None:
        from broker.control import ChannelClosed

        try:
            msgs = self.channel.receive()
        except ChannelClosed:
            self.stopping = True
            return
        for msg in msgs:
            if "reply_to" in msg:
                self.replication.control_reply(msg)
                continue
            op = msg.get("op")
            if op == "metadata":
                self.sync_partitions()
                if "id" in msg:
                    self.channel.send({"id": msg["id"], "ok": True})

    # -- loop ---------------------------------------------------------------------------------------------

    def request_stop(self, *_):
        self.stopping = True

    def run(self, on_ready) -> None:
        from broker.shm.ring import prepare_wait_all

        signal.signal(signal.SIGTERM, self.request_stop)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        self.sync_partitions()
        sel = self.sel
        for ring in self.req:
            sel.register(ring.fileno(), selectors.EVENT_READ, ring)
        sel.register(self.channel.fileno(), selectors.EVENT_READ, "control")
        on_ready()
        log.info("io worker started", worker=self.index, partitions=len(self.owned))
        next_control = 0.0
        while not self.stopping:
            if self.poll_rings():
                now = time.monotonic()
                if now >= next_control:  # not every pass: an idle channel costs a failed recv each time
                    next_control = now + CONTROL_CHECK_INTERVAL_S
                    self.handle_control()
                self.housekeeping(now)
                continue
            if prepare_wait_all(self.req):
                timeout = 0.5
                if self.timers:
                    timeout = max(0.0, min(timeout, self.timers[0][0] - time.monotonic()))
                try:
                    for key, _ in sel.select(timeout=timeout):
                        if key.data == "control":
                            self.handle_control()
                        elif key.data == "replica":
                            self.replication.fetcher.poll()
                        else:
                            key.data.drain_wakeups()  # a request ring's doorbell rang
                finally:
                    for ring in self.req:
                        ring.finish_wait(drain=False)  # only the bells the selector reported are read
            self.housekeeping(time.monotonic())
        # Finish what is already in the rings, then close the logs cleanly.
        while self.poll_rings():
            pass
        self.replication.close()
        for ext in self.extensions:
            close = getattr(ext, "close", None)
            if close is not None:
                close()
        for (topic, partition), e in self.mgr.close_partitions([(op.topic, op.partition)
                                                                  for op in self.owned.values()]):
            log.error("close failed", topic=topic, partition=partition, error=repr(e))
        log.info("io worker stopped", worker=self.index)


def run_io_worker(sup, index: int) -> None:
    import hotpath
    from broker.log import warmup as broker_log_warmup

    from broker.logfmt import set_context

    set_context(role="io", worker=index)
    hotpath.warmup()
    broker_log_warmup()  # the segment-walk kernels used by Fetch and recovery
    shared = sup.shared.attach_in_child()
    if sup.metrics is not None:
        from broker.metrics.block import ROLE_IO

        PROC.bind(sup.metrics, sup.config["num.network.threads"] + index, ROLE_IO, index)
    worker = IOWorker(index, shared, sup.config, sup.metadata_view(), sup.child_channel, sup.log_manager,
                      recover=True if sup.worker_incarnation("io", index) else None)
    worker.run(sup.notify_ready)
