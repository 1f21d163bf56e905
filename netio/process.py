"""Entry point of a forked network worker: warm the kernels, attach shared memory, build the handler
context, serve.

`NetContext` is everything a request handler in a network worker may use: configuration, the metadata
view, the rings to partition owners (`io`), the controller channel, the shared partition-state table and
read-only views of partition logs for Fetch.
"""

from __future__ import annotations

import heapq
import os
import time

from broker.config import BrokerConfig
from broker.logfmt import Log
from broker.metadata import MetadataView

log = Log("hpbroker.net")

READER_KEEPS_CLOSED = 2  # closed segments a partition's reader keeps open: a consumer crossing into the next one


class NetContext:
    def __init__(self, config: BrokerConfig, metadata: MetadataView, worker_index: int, shared, io, controller,
                 log_manager):
        from broker.api.fetch import ParkedFetches

        self.config = config
        self.broker_id = config["broker.id"]
        self.metadata = metadata
        self.worker_index = worker_index
        self.shared = shared
        self.table = shared.table
        self.io = io
        self.controller = controller
        self.max_ring_message = shared.max_message
        self.parked_fetches = ParkedFetches(self)
        self._log_manager = log_manager  # a forked copy: used read-only, for partition directories
        self._readers: dict[tuple[str, int], object] = {}
        self._reader_version = -1
        self.opened_closed: set = set()  # readers that opened a closed segment since `close_idle_segments`
        self.timers: list[tuple[float, int, object]] = []  # (when, sequence, fn): `call_later`
        self._timer_seq = 0
        from broker.quotas import QuotaMeter

        self.quotas = QuotaMeter(shared.quotas, worker_index, config["quota.window.size.seconds"] * 1000,
                                 config["quota.window.num"])
        self.authorizing = bool(config["authorizer.class.name"])
        self._authorizer = None
        self._acl_version = -1

    def authorizer(self):
        """The ACL authorizer over the current snapshot's bindings (`broker.security.acl.Authorizer`), or
        None when authorizer.class.name is unset. Rebuilt only when the bindings changed, so its
        remembered decisions survive snapshots that changed something else."""
        if not self.authorizing:
            return None
        md = self.metadata.current()
        if md.version != self._acl_version:
            self._acl_version = md.version
            if self._authorizer is None or self._authorizer.bindings != md.acls:
                from broker.security.acl import Authorizer, parse_super_users

                cfg = self.config
                self._authorizer = Authorizer(md.acls, parse_super_users(cfg["super.users"]),
                                              cfg["allow.everyone.if.no.acl.found"])
        return self._authorizer

    # -- timers ----------------------------------------------------------------------------------------

    def call_later(self, delay: float, fn) -> None:
        """Run `fn()` in this worker's loop once `delay` seconds have passed (a delayed answer)."""
        self._timer_seq += 1
        heapq.heappush(self.timers, (time.monotonic() + delay, self._timer_seq, fn))

    def run_timers(self) -> None:
        now = time.monotonic()
        while self.timers and self.timers[0][0] <= now:
            fn = heapq.heappop(self.timers)[2]
            try:
                fn()
            except Exception as e:  # a bug in one delayed answer must not take the worker down
                log.error("timer failed", worker=self.worker_index, error=repr(e), exc_info=True)

    # -- partition state -------------------------------------------------------------------------------

    def leads(self, part) -> bool:
        """This broker leads the partition and hosts its log (on a single node: every partition)."""
        return part.slot >= 0 and part.leader == self.broker_id

    def partition_state(self, part) -> tuple[int, int, int, int, int, tuple | None]:
        """(log end offset, high watermark, log start offset, leader epoch, version, tail) as the owner
        published them; log end offset -1 while the owner has not opened the partition. ``tail``: what a
        reader may touch of the segment being appended to (``LogReader.read``)."""
        version, st = self.table.read_versioned(part.slot)
        return st.log_end_offset, st.high_watermark, st.log_start_offset, st.leader_epoch, version, st.tail

    def reader(self, topic: str, partition: int):
        """The partition's reader. Readers are keyed by topic id: a topic deleted and re-created under the
        same name has new segment files at the same paths and base offsets, which an old reader would not
        notice (it keeps the deleted files open)."""
        from broker.log import LogReader

        md = self.metadata.current()
        if md.version != self._reader_version:  # topics may have been deleted and re-created
            self._reader_version = md.version
            self._log_manager.reload()
            live = {(t.name, p.partition, t.topic_id) for t in md.topics.values() for p in t.partitions}
            for key in [k for k in self._readers if k not in live]:
                self._readers.pop(key).close()
        info = md.topic(topic)
        key = (topic, partition, info.topic_id if info is not None else None)
        r = self._readers.get(key)
        if r is None:
            r = LogReader(self._log_manager.partition_dir(topic, partition), self.opened_closed.add)
            self._readers[key] = r
        return r

    def close_idle_segments(self) -> None:
        """Between requests: each reader that opened closed segments keeps the last few it read open."""
        for r in self.opened_closed:
            r.close_idle(READER_KEEPS_CLOSED)
        self.opened_closed.clear()

    def encode_fetch(self, version: int, correlation_id: int, topics: list, throttle_ms: int = 0):
        """Response parts: encoded header/field bytes, and segment byte ranges for os.sendfile."""
        from netio.codec.fetch import PartitionData, encode_fetch_response
        from netio.connection import FilePart

        out = []
        for topic, parts in topics:
            pds = []
            for p in parts:
                rec = p["records"]
                if hasattr(rec, "fd"):
                    rec = FilePart(os.dup(rec.fd), rec.position, rec.length)
                pds.append(PartitionData(p["partition_index"], p["error_code"], p["high_watermark"],
                                         p["last_stable_offset"], p["log_start_offset"], None, -1, rec))
            out.append((topic, pds))
        return encode_fetch_response(version, correlation_id, throttle_ms, 0, 0, out)


class NetPump:
    """Connects the worker's event loop to the rings and timers: what to wait on, and what to run after."""

    def __init__(self, ctx: NetContext):
        self.ctx = ctx
        self.worker = None
        self._watching: dict[int, int] = {}

    def fds(self) -> list:
        fds = [(r.fileno(), r.drain_wakeups) for r in self.ctx.io.done]  # only the bells that rang
        fds.append((self.ctx.controller.channel.fileno(), self.ctx.controller.on_readable))
        fds.append((self.ctx.table.fileno(self.ctx.worker_index), self._table_rang))
        return fds

    def _table_rang(self) -> None:
        """Parked fetches are looked at in run(), after every wakeup; the bell is emptied here. An owner
        that read a watch flag just before `unwatch` cleared it rings after the drain there: left in the
        pipe, that ring would keep the selector readable and the loop awake with nothing to do."""
        self.ctx.table.drain_bell(self.ctx.worker_index)

    def flush_wakeups(self) -> None:
        for ring in self.ctx.io.req:
            ring.flush_wakeup()

    def before_wait(self) -> float:
        """Announce sleep on the completion rings and on the slots parked fetches wait for; 0 when
        something already arrived."""
        from broker.shm.ring import prepare_wait_all

        self.flush_wakeups()  # one doorbell per owner for everything this pass put in its ring
        if self.ctx.io.backlog_pending():
            return 0.001
        if not prepare_wait_all(self.ctx.io.done):
            return 0.0
        self._watching = self.ctx.parked_fetches.watched_versions()
        if self._watching and not self.ctx.table.watch(self.ctx.worker_index, self._watching):
            self._watching = {}
            self.after_wait()
            return 0.0
        deadline = self.ctx.parked_fetches.next_deadline()
        if self.ctx.timers:
            deadline = min(deadline or float("inf"), self.ctx.timers[0][0])
        if deadline is None:
            return 1.0
        return max(0.0, min(1.0, deadline - time.monotonic()))

    def look(self) -> bool:
        """Ring the owners for this pass's requests; True when completions are waiting (a pass that does
        not sleep)."""
        self.flush_wakeups()
        return any(r.has_data() for r in self.ctx.io.done)

    def after_wait(self) -> None:
        for r in self.ctx.io.done:
            r.finish_wait(drain=False)  # a rung bell is readable: the selector's callback drains it
        if self._watching:
            self.ctx.table.unwatch(self.ctx.worker_index, self._watching)
            self._watching = {}

    def describe(self) -> dict:
        io = self.ctx.io
        return {"pending": len(io.pending), "backlog": [len(q) for q in io.backlog],
                "parked_fetches": len(self.ctx.parked_fetches.parked),
                "req_used": [r.used_bytes() for r in io.req], "done_used": [r.used_bytes() for r in io.done]}

    def run(self) -> int:
        """Completions delivered, backlogs moved, parked fetches checked; returns the completions' count."""
        io = self.ctx.io
        if self.ctx.opened_closed:  # before any fetch of this pass reads (and holds slices)
            self.ctx.close_idle_segments()
        n = io.poll()
        if io.backlog_pending():
            io.flush_backlog()
        self.ctx.parked_fetches.check()
        if self.ctx.timers:
            self.ctx.run_timers()
        if self.worker is not None:
            self.worker.resume_paused(io.blocked_conns)
        return n


def run_network_worker(sup, index: int) -> None:
    import hotpath
    from broker.log import warmup as broker_log_warmup
    from broker.api import Dispatcher
    from broker.control import ControlClient
    from broker.ioclient import IOClient
    from broker.config import TLS_LISTENERS
    from netio.tls import server_context
    from netio.worker import NetworkWorker

    from broker.logfmt import set_context

    set_context(role="network", worker=index)
    hotpath.warmup()
    broker_log_warmup()  # the segment-walk kernels used by Fetch and recovery
    cfg = sup.config
    shared = sup.shared.attach_in_child()
    if sup.metrics is not None:
        from broker.metrics import PROC
        from broker.metrics.block import ROLE_NETWORK

        PROC.bind(sup.metrics, index, ROLE_NETWORK, index)
    arena = None
    if shared.arenas[index] is not None:
        from broker.shm.arena import ArenaAllocator

        arena = ArenaAllocator(shared.arenas[index], shared.request_rings_for_net(index))
    io = IOClient(shared.request_rings_for_net(index), shared.completion_rings_for_net(index), arena)
    for ring in io.req:
        ring.defer_wakeups()
    controller = ControlClient(sup.child_channel)
    controller.on_notice = lambda msg: io.abandon_forwards(msg["io"]) if msg.get("op") == "io_exited" else None
    ctx = NetContext(cfg, sup.metadata_view(), index, shared, io, controller, sup.log_manager)
    pump = NetPump(ctx)
    socks = [b.sockets[index] for b in sup.bound]
    for b in sup.bound:  # close the other workers' copies so a dead worker's socket really goes away
        for i, s in enumerate(b.sockets):
            if i != index:
                s.close()
    placement = None
    if sup.handoff:
        from netio.handoff import Placement

        placement = Placement.for_worker(sup.handoff, index, sup.metrics)
    names = [b.listener.name for b in sup.bound]
    tls = None
    if any(name in TLS_LISTENERS for name in names):
        tls = server_context(cfg)  # loaded once by the supervisor already: a failure here is a changed file
    worker = NetworkWorker(index, socks, Dispatcher(ctx), cfg["socket.request.max.bytes"],
                           sndbuf=cfg["socket.send.buffer.bytes"], rcvbuf=cfg["socket.receive.buffer.bytes"],
                           pump=pump, arena=arena, placement=placement, listener_names=names, tls=tls)
    pump.worker = worker
    sup.notify_ready()
    worker.run()
