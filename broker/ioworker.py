"""The I/O worker process: the one writer of the partitions it owns.

It consumes append and offset-lookup requests from one ring per network worker, appends record batches
straight from the ring into the partition's segment, publishes the new log end offset and high watermark
in the shared partition-state table (waking network workers parked on long-poll fetches), and posts a
completion on the paired ring. Only after the batch is in the segment (and fsynced where the flush policy
asks) is a completion with success posted, so an acknowledgement always means "in the log".

A restarted I/O worker attaches to the same rings and continues with the oldest unconsumed request: a
request that the previous incarnation appended but did not complete is appended again and completed once
(at-least-once, as a Kafka client retry would do), never acknowledged without being in the log.
"""

from __future__ import annotations

import os
import selectors
import signal
import time

from broker import ipc
from broker.logfmt import Log
from netio.codec import ErrorCode

log = Log("hpbroker.io")

BATCH = 64


def error_code_for(exc: Exception) -> int:
    code = getattr(exc, "error_code", None)
    if code is not None:
        return int(code)
    if isinstance(exc, OSError):
        return int(ErrorCode.KAFKA_STORAGE_ERROR)
    return int(ErrorCode.UNKNOWN_SERVER_ERROR)


class OwnedPartition:
    __slots__ = ("topic", "partition", "slot", "log", "leader_epoch")

    def __init__(self, topic: str, partition: int, slot: int, plog, leader_epoch: int):
        self.topic = topic
        self.partition = partition
        self.slot = slot
        self.log = plog
        self.leader_epoch = leader_epoch


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
        self.table = shared.table
        self.owned: dict[int, OwnedPartition] = {}
        self.md_version = -1
        self.stopping = False
        self.next_retention = 0.0
        self.retention_interval = config["log.retention.check.interval.ms"] / 1000.0

    # -- partitions ---------------------------------------------------------------------------------------

    def sync_partitions(self) -> None:
        """Open the partitions this worker owns in the current snapshot; close the ones that went away."""
        md = self.metadata.current()
        if md.version == self.md_version:
            return
        self.md_version = md.version
        self.mgr.reload()  # the supervisor changed the topic catalogue
        wanted = {}
        for t in md.topics.values():
            for p in t.partitions:
                if p.owner == self.index:
                    wanted[p.slot] = (t.name, p)
        for slot in [s for s, op in self.owned.items() if wanted.get(s, (None,))[0] != op.topic]:
            op = self.owned.pop(slot)
            self.mgr.close_partition(op.topic, op.partition)
            log.info("partition closed", topic=op.topic, partition=op.partition, worker=self.index)
        for slot, (name, p) in wanted.items():
            if slot in self.owned:
                continue
            try:
                plog = self.mgr.open_partition(name, p.partition, recover=self.recover)
            except Exception as e:
                log.error("partition open failed", topic=name, partition=p.partition, error=repr(e))
                continue
            op = OwnedPartition(name, p.partition, slot, plog, p.leader_epoch)
            self.owned[slot] = op
            self.publish(op)
            log.debug("partition opened", topic=name, partition=p.partition, slot=slot,
                      leo=plog.log_end_offset)

    def publish(self, op: OwnedPartition) -> None:
        plog = op.log
        self.table.publish(op.slot, plog.log_end_offset, plog.high_watermark, plog.log_start_offset,
                           op.leader_epoch)

    def partition(self, slot: int, topic: str, partition: int) -> OwnedPartition | None:
        op = self.owned.get(slot)
        if op is None or op.topic != topic or op.partition != partition:
            self.sync_partitions()
            op = self.owned.get(slot)
            if op is None or op.topic != topic or op.partition != partition:
                return None
        return op

    # -- requests -----------------------------------------------------------------------------------------

    def handle_append(self, ring_index: int, payload: memoryview) -> bytes:
        token, slot, partition, acks, topic, records = ipc.parse_append(payload)
        op = self.partition(slot, topic, partition)
        if op is None:
            return ipc.append_done(token, int(ErrorCode.NOT_LEADER_OR_FOLLOWER))
        try:
            r = op.log.append(records, leader_epoch=op.leader_epoch)
        except Exception as e:
            code = error_code_for(e)
            level = log.error if code == ErrorCode.KAFKA_STORAGE_ERROR else log.warning
            level("append rejected", topic=topic, partition=partition, error=repr(e), code=code)
            return ipc.append_done(token, code)
        self.publish(op)
        return ipc.append_done(token, 0, r.base_offset, r.log_append_time, op.log.log_start_offset)

    def handle_list_offset(self, payload: memoryview) -> bytes:
        token, slot, partition, timestamp, topic = ipc.parse_list_offset(payload)
        op = self.partition(slot, topic, partition)
        if op is None:
            return ipc.list_offset_done(token, int(ErrorCode.NOT_LEADER_OR_FOLLOWER))
        plog = op.log
        try:
            if timestamp == -2:
                return ipc.list_offset_done(token, 0, plog.log_start_offset, -1, op.leader_epoch)
            if timestamp == -1:
                return ipc.list_offset_done(token, 0, plog.high_watermark, -1, op.leader_epoch)
            found = plog.offset_for_timestamp(timestamp)
        except Exception as e:
            return ipc.list_offset_done(token, error_code_for(e))
        if found is None:
            return ipc.list_offset_done(token, 0, -1, -1, -1)
        offset, ts = found
        return ipc.list_offset_done(token, 0, offset, ts, op.leader_epoch)

    def poll_rings(self) -> int:
        handled = 0
        for n, ring in enumerate(self.req):
            msgs = ring.peek_batch(BATCH)
            if not msgs:
                continue
            replies = []
            for kind, payload in msgs:
                if kind == ipc.APPEND:
                    replies.append((ipc.APPEND_DONE, self.handle_append(n, payload)))
                elif kind == ipc.LIST_OFFSET:
                    replies.append((ipc.LIST_OFFSET_DONE, self.handle_list_offset(payload)))
                else:
                    log.error("unknown ring message", kind=kind, ring=n)
            out = self.done[n]
            for kind, reply in replies:
                while not out.try_put(kind, reply):
                    out.wait_space(len(reply) + 64, timeout=1.0)
                    if self.stopping:
                        break
            ring.advance()
            handled += len(msgs)
        return handled

    # -- housekeeping -------------------------------------------------------------------------------------

    def housekeeping(self, now: float) -> None:
        for op in self.owned.values():
            tick = getattr(op.log, "maybe_flush", None)
            if tick is not None:
                try:
                    tick()
                except Exception as e:
                    log.error("flush failed", topic=op.topic, partition=op.partition, error=repr(e))
        if now >= self.next_retention:
            self.next_retention = now + self.retention_interval
            now_ms = int(time.time() * 1000)
            for op in self.owned.values():
                try:
                    if op.log.enforce_retention(now_ms):
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
        sel = selectors.DefaultSelector()
        for ring in self.req:
            sel.register(ring.fileno(), selectors.EVENT_READ)
        sel.register(self.channel.fileno(), selectors.EVENT_READ, "control")
        on_ready()
        log.info("io worker started", worker=self.index, partitions=len(self.owned))
        while not self.stopping:
            if self.poll_rings():
                self.handle_control()
                self.housekeeping(time.monotonic())
                continue
            if prepare_wait_all(self.req):
                try:
                    for key, _ in sel.select(timeout=0.5):
                        if key.data == "control":
                            self.handle_control()
                finally:
                    for ring in self.req:
                        ring.finish_wait()
            self.housekeeping(time.monotonic())
        # Finish what is already in the rings, then close the logs cleanly.
        while self.poll_rings():
            pass
        for op in self.owned.values():
            try:
                self.mgr.close_partition(op.topic, op.partition)
            except Exception as e:
                log.error("close failed", topic=op.topic, partition=op.partition, error=repr(e))
        log.info("io worker stopped", worker=self.index)


def run_io_worker(sup, index: int) -> None:
    import hotpath

    hotpath.warmup()
    shared = sup.shared.attach_in_child()
    worker = IOWorker(index, shared, sup.config, sup.metadata_view(), sup.child_channel, sup.log_manager,
                      recover=True if sup.worker_incarnation("io", index) else None)
    worker.run(sup.notify_ready)
