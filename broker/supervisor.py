"""The supervisor: binds listeners once, forks the workers, restarts the ones that die, stops them all.

It owns lifecycle and nothing else on the request path. Signal handlers only record the signal; one loop
dispatches `handle_<signal>`. A worker that dies is restarted with backoff; a worker that keeps failing
right after start stops the broker with EXIT_WORKER_BOOT_FAILURE instead of respawning forever.
"""

from __future__ import annotations

import base64
import errno
import os
import resource
import signal
import socket
import sys
import time
from dataclasses import dataclass, field
from typing import Callable

from broker.config import TLS_LISTENERS, BrokerConfig, Listener, hostport, serves_oauthbearer
from broker.control import Channel, ChannelClosed
from broker.logfmt import Log
from broker.metadata import BrokerInfo, ClusterMetadata, MetadataView
from broker.security.acl import AclBinding, AclFilter
from netio.codec import ErrorCode

log = Log("hpbroker.supervisor")

EXIT_OK = 0
EXIT_STARTUP_FAILURE = 1
EXIT_WORKER_BOOT_FAILURE = 3

# A worker that exits within this many seconds of starting counts as a boot failure.
BOOT_FAILURE_WINDOW_S = 2.0
MAX_BOOT_FAILURES = 5
STOP_GRACE_S = 10.0
# ...and an I/O worker this much more per partition it owns: it flushes and closes every log before it exits
# (about 1 ms each measured with thousands of partitions), and one killed mid-close makes the stop unclean.
STOP_GRACE_PER_PARTITION_S = 0.005
READY_TIMEOUT_S = 120.0
CLUSTER_CHECK_INTERVAL_S = 1.0


def raise_fd_limit() -> None:
    """Lift the soft descriptor limit to the hard one, before the workers are forked (they inherit it): every
    client connection costs a network worker one descriptor, every closed segment costs its owner one (its
    map's) and its readers up to four."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            pass  # a limit we may not raise: the workers run with the soft one


class StartupError(Exception):
    """The broker cannot start (port in use, data directory unusable); the message says why."""


@dataclass
class WorkerSpec:
    role: str  # "network" | "io"
    index: int
    target: Callable[["Supervisor", int], None]
    pid: int = 0
    started_at: float = 0.0
    boot_failures: int = 0
    restarts: int = 0
    restart_at: float = 0.0
    channel: Channel | None = None  # the supervisor's end of this worker's control channel


@dataclass
class BoundListener:
    listener: Listener
    port: int
    sockets: list[socket.socket] = field(default_factory=list)

    def __str__(self) -> str:
        """The listener with the port it bound (port 0 picks one), as the ready line and /metrics show it."""
        return f"{self.listener.name}://{hostport(self.listener.host, self.port)}"


def _listen_socket(host: str, port: int, reuseport: bool) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(family, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuseport:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        s.bind((host, port))
    except OSError:
        s.close()
        raise
    return s


def check_tls(cfg) -> None:
    """A TLS listener's certificate, key and trust store load, before anything starts (each network
    worker builds its own context from them)."""
    from netio.tls import TLSConfigError, server_context

    if any(lst.name in TLS_LISTENERS for lst in cfg.listeners):
        try:
            server_context(cfg)
        except TLSConfigError as e:
            raise StartupError(str(e)) from None


def bind_listener(listener: Listener, copies: int) -> BoundListener:
    """One SO_REUSEPORT socket per network worker, so the kernel spreads connections across workers.

    A probe bind without SO_REUSEPORT first: with it, a second broker on the same port would silently
    share the port instead of failing.
    """
    try:
        probe = _listen_socket(listener.host, listener.port, reuseport=False)
    except OSError as e:
        if e.errno == errno.EADDRINUSE:
            raise StartupError(f"listener {listener}: address already in use") from None
        raise StartupError(f"listener {listener}: cannot bind: {e.strerror}") from None
    port = probe.getsockname()[1]
    probe.close()
    bound = BoundListener(listener, port)
    try:
        for _ in range(copies):
            s = _listen_socket(listener.host, port, reuseport=True)
            s.listen(1024)
            bound.sockets.append(s)
    except OSError as e:
        for s in bound.sockets:
            s.close()
        raise StartupError(f"listener {listener}: cannot bind port {port}: {e.strerror}") from None
    return bound


def prepare_data_dirs(dirs: tuple[str, ...]) -> None:
    for d in dirs:
        try:
            os.makedirs(d, exist_ok=True)
            probe = os.path.join(d, f".write-probe-{os.getpid()}")
            with open(probe, "wb") as f:
                f.write(b"x")
            os.unlink(probe)
        except OSError as e:
            raise StartupError(f"data directory {d} is not writable: {e.strerror}") from None


class Supervisor:
    def __init__(self, config: BrokerConfig, out=None):
        self.config = config
        self.out = out or sys.stdout
        self.bound: list[BoundListener] = []
        self.handoff: list[tuple[socket.socket, socket.socket]] = []  # per network worker: (inbox, sender)
        self.workers: list[WorkerSpec] = []
        self.signals: list[int] = []
        self.stopping = False
        self.exit_code = EXIT_OK
        self.is_child = False
        self._sig_r = self._sig_w = -1
        self._ready_r = self._ready_w = -1
        self.metadata: ClusterMetadata | None = None
        self.shared = None
        self.log_manager = None
        self.controller = None
        self.child_channel: Channel | None = None  # in a child: its end of the control channel
        self.clean_start = True
        self.clean_stop = True
        self.metrics = None  # broker.metrics.MetricsRegion: one counter block per worker
        self.metrics_server = None
        self.group_offsets = None  # () -> [(group, topic, partition, committed offset)]
        self.node = None  # broker.cluster.node.ClusterNode when etcd.connect is set
        self.next_cluster_check = 0.0
        self.deferred: list[tuple[WorkerSpec, dict]] = []  # worker requests read while waiting for replies
        self.started_at = time.time()

    # -- start ---------------------------------------------------------------------------------------------

    def start(self) -> None:
        from broker.controller import Controller
        from broker.ioworker import run_io_worker
        from broker.log import LogManager
        from broker.shared import PARTITION_SLOTS, SharedState
        from netio.process import run_network_worker

        raise_fd_limit()
        cfg = self.config
        prepare_data_dirs(cfg.log_dirs)
        check_tls(cfg)
        if serves_oauthbearer(cfg) and not cfg["sasl.oauthbearer.jwks.endpoint.url"]:
            log.warning("oauthbearer accepts unsecured tokens: anyone can log in as anyone; set "
                        "sasl.oauthbearer.jwks.endpoint.url outside development")
        n_net = cfg["num.network.threads"]
        n_io = cfg["num.io.threads"]
        self.bound = [bind_listener(lst, n_net) for lst in cfg.listeners]
        if n_net > 1:
            from netio.handoff import create_pairs

            self.handoff = create_pairs(n_net)
        self.log_manager = LogManager(list(cfg.log_dirs), cfg.log_defaults())
        self.clean_start = self.log_manager.was_clean_shutdown()  # the manager consumed the markers
        endpoints = self.advertised()
        me = BrokerInfo(cfg["broker.id"], endpoints[0][1], endpoints[0][2], endpoints=endpoints)
        if cfg["etcd.connect"]:
            self.node = self._join_cluster(me)
        from broker.controller import StoreUnreadable

        try:
            self.controller = Controller(cfg, self.log_manager, n_io, PARTITION_SLOTS, me, self.metadata_dir,
                                         node=self.node)
        except StoreUnreadable as e:
            raise StartupError(str(e)) from None
        self.controller.ensure_internal_topics()
        if self.node is not None:
            self.controller.refresh(lambda hidden: None)  # no worker runs yet
        self.shared = SharedState.create(n_net, n_io, self._largest_message(), cfg["quota.window.num"])
        self._start_metrics(n_net + n_io, PARTITION_SLOTS)
        self.metadata = self.controller.metadata
        self._reset_slots(self.metadata)
        self.metadata.save(self.metadata_dir)
        self.controller.on_change = self._on_metadata_change
        for i in range(n_net):
            self.workers.append(WorkerSpec("network", i, run_network_worker))
        for i in range(n_io):
            self.workers.append(WorkerSpec("io", i, run_io_worker))

    def _join_cluster(self, me: BrokerInfo):
        from broker.cluster.etcd import EtcdError
        from broker.cluster.node import ClusterNode

        node = ClusterNode(self.config, me)
        try:
            node.start()
        except (EtcdError, OSError) as e:
            node.stop()
            raise StartupError(f"etcd.connect {self.config['etcd.connect']}: {e}") from None
        return node

    def _cluster_tick(self, woken: bool = False) -> None:
        """Cluster mode: after a watch event (or once a second) reload etcd's state and act on it."""
        now = time.monotonic()
        if not woken and now < self.next_cluster_check:
            return
        self.next_cluster_check = now + CLUSTER_CHECK_INTERVAL_S
        try:
            self.controller.refresh(self._hide_before_delete)
        except Exception as e:
            log.warning("cluster state refresh failed", error=repr(e))

    def _start_metrics(self, blocks: int, slots: int) -> None:
        """Counter blocks for the workers; the /metrics socket is bound now so a busy port fails the start."""
        from broker.metrics import MetricsRegion
        from broker.metrics.server import MetricsServer

        self.metrics = MetricsRegion.create(blocks, slots)
        where = self.config.metrics_listener
        if where is None:
            return
        from broker.metrics.exposition import render
        from broker.metrics.groups import GroupOffsets
        from broker.security.interbroker import InterBroker

        self.group_offsets = GroupOffsets(self._local_address, InterBroker(self.config)).rows
        try:
            self.metrics_server = MetricsServer(where[0], where[1], lambda: render(self))
        except OSError as e:
            raise StartupError(f"metrics.listener {hostport(*where)}: cannot bind: {e.strerror}") from None

    def _local_address(self) -> tuple[str, int]:
        """Where this process reaches its own inter-broker listener: over TLS its advertised address, the name
        its certificate carries."""
        name = self.config["inter.broker.listener.name"] or self.config.listeners[0].name
        if name in TLS_LISTENERS:
            return next((h, p) for n, h, p in self.advertised() if n == name)
        b = next(x for x in self.bound if x.listener.name == name)
        host = b.listener.host
        return ("127.0.0.1" if host in ("0.0.0.0", "") else "::1" if host == "::" else host), b.port

    def _largest_message(self) -> int:
        biggest = self.config["message.max.bytes"]
        for name in self.log_manager.topics():
            biggest = max(biggest, self.log_manager.log_config(name).max_message_bytes)
        return biggest

    def _reset_slots(self, md: ClusterMetadata, only_new_since: ClusterMetadata | None = None) -> None:
        """Slots of partitions no owner has opened yet read as log end offset -1 ("not available")."""
        old = set()
        if only_new_since is not None:
            old = {p.slot for t in only_new_since.topics.values() for p in t.partitions}
        for t in md.topics.values():
            for p in t.partitions:
                if p.slot >= 0 and p.slot not in old:
                    self.shared.table.claim(p.slot, -1, -1, -1, -1)

    def _on_metadata_change(self, md: ClusterMetadata) -> None:
        self._reset_slots(md, self.metadata)
        self.metadata = md
        md.save(self.metadata_dir)
        self._sync_io_workers()

    def _sync_io_workers(self, timeout: float = 10.0) -> None:
        """Tell every I/O worker the snapshot moved and wait until each has opened/closed its partitions."""
        waiting = {}
        for w in self.workers:
            if w.role == "io" and w.pid and w.channel is not None:
                try:
                    w.channel.send({"op": "metadata", "id": self.metadata.version})
                    waiting[w.channel.fileno()] = w
                except ChannelClosed:
                    pass
        import select

        deadline = time.monotonic() + timeout
        while waiting and time.monotonic() < deadline:
            r, _, _ = select.select(list(waiting), [], [], max(0.0, deadline - time.monotonic()))
            for fd in r:
                w = waiting[fd]
                try:
                    msgs = w.channel.receive()
                except ChannelClosed:
                    waiting.pop(fd, None)
                    continue
                for msg in msgs:
                    if "op" in msg:  # the worker's own request, crossing our message: served after this
                        self.deferred.append((w, msg))
                    elif msg.get("id") == self.metadata.version:
                        waiting.pop(fd, None)
        if waiting:
            log.warning("io workers did not confirm metadata", workers=[w.index for w in waiting.values()])

    def partition_dir(self, topic: str, partition: int) -> str:
        return self.log_manager.partition_dir(topic, partition)

    def worker_incarnation(self, role: str, index: int) -> int:
        """How many times this worker was restarted; a restarted I/O worker recovers its logs."""
        for w in self.workers:
            if w.role == role and w.index == index:
                return w.restarts
        return 0

    @property
    def metadata_dir(self) -> str:
        return self.config.log_dirs[0]

    def advertised(self) -> tuple[tuple[str, str, int], ...]:
        """(listener, host, port) advertised for each listener, with port 0 replaced by the port bound."""
        adv = self.config["advertised.listeners"]
        if adv:
            return tuple((a.name, a.host, a.port) for a in adv)
        out = []
        for b in self.bound:
            host = b.listener.host
            if host in ("0.0.0.0", "::", ""):
                host = socket.gethostname()
            out.append((b.listener.name, host, b.port))
        return tuple(out)

    def metadata_view(self) -> MetadataView:
        return MetadataView(self.metadata_dir, self.metadata)

    # -- run -----------------------------------------------------------------------------------------------

    def run(self) -> int:
        self._sig_r, self._sig_w = os.pipe()
        os.set_blocking(self._sig_w, False)
        os.set_blocking(self._sig_r, False)
        self._ready_r, self._ready_w = os.pipe()
        signal.set_wakeup_fd(self._sig_w)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD, signal.SIGHUP):
            signal.signal(sig, self._record_signal)
        for w in self.workers:
            self._spawn(w)
        if not self._wait_ready():
            self.exit_code = EXIT_WORKER_BOOT_FAILURE
            self._stop_all()
            return self.exit_code
        listeners = ",".join(map(str, self.bound))
        metrics = "none"
        if self.metrics_server is not None:
            self.metrics_server.start()
            metrics = "http://%s/metrics" % hostport(*self.metrics_server.address)
        self._announce(f"hpbroker ready broker.id={self.config['broker.id']} listeners={listeners} "
                       f"log.dirs={','.join(self.config.log_dirs)} pid={os.getpid()} metrics={metrics}")
        log.info("ready", listeners=listeners, network_workers=self.config["num.network.threads"])
        while not self.stopping:
            self._wait_for_signal(timeout=self._next_timer())
            for sig in self._take_signals():
                getattr(self, f"handle_{signal.Signals(sig).name.lower()}", lambda: None)()
            self._reap()
            self._restart_due()
            if self.node is not None:
                self._cluster_tick()
            while self.deferred:
                w, msg = self.deferred.pop(0)
                self._serve_messages(w, [msg])
        self._stop_all()
        return self.exit_code

    def _record_signal(self, signum, frame) -> None:
        self.signals.append(signum)

    def _take_signals(self) -> list[int]:
        out, self.signals = self.signals, []
        return out

    def _wait_for_signal(self, timeout: float) -> None:
        """Sleep until a signal arrives, a worker sends a control message, or `timeout` passes."""
        import select

        chans = {w.channel.fileno(): w for w in self.workers if w.channel is not None and w.pid}
        extra = [self.node.fileno()] if self.node is not None else []
        try:
            r, _, _ = select.select([self._sig_r, *chans, *extra], [], [], timeout)
        except InterruptedError:
            return
        for fd in r:
            if extra and fd == extra[0]:
                self.node.drain()
                self._cluster_tick(woken=True)
            elif fd == self._sig_r:
                try:
                    os.read(self._sig_r, 4096)
                except BlockingIOError:
                    pass
            else:
                self._serve_control(chans[fd])

    def _serve_control(self, w: WorkerSpec) -> None:
        try:
            msgs = w.channel.receive()
        except ChannelClosed:
            return
        self._serve_messages(w, msgs)

    def _serve_messages(self, w: WorkerSpec, msgs: list[dict]) -> None:
        for msg in msgs:
            if "op" not in msg:
                continue  # a late confirmation of a metadata change
            try:
                reply = self._control_request(msg)
            except Exception as e:
                log.error("control request failed", exc_info=True, op=msg.get("op"))
                reply = {"error": repr(e)}
            reply["reply_to"] = msg.get("id")
            try:
                w.channel.send(reply)
            except ChannelClosed:
                pass

    def _control_request(self, msg: dict) -> dict:
        op = msg.get("op")
        c = self.controller
        if op in ("create_topics", "delete_topics", "create_partitions", "alter_topic_configs", "create_acls",
                  "delete_acls", "alter_scram", "alter_broker_defaults", "alter_quotas"):
            if self.node is not None:  # act on the newest cluster state, then show workers the result
                c.refresh(self._hide_before_delete)
            reply = self._topic_op(op, msg)
            if self.node is not None:
                c.refresh(self._hide_before_delete)
            return reply
        if op == "isr_update":
            if self.node is None:
                return {"error_code": int(ErrorCode.INVALID_REQUEST)}
            code = self.node.update_isr(msg["topic"], msg["partition"], msg["leader_epoch"], msg["isr"])
            if code == ErrorCode.NONE:
                self.controller.refresh(self._hide_before_delete)
            return {"error_code": int(code)}
        if op == "elect_leaders":
            return self._elect_leaders(msg)
        if op == "alter_reassignments":
            return self._alter_reassignments(msg)
        if op == "producer_id_block":
            from broker.producers.ids import BLOCK_SIZE, allocate_block

            if self.node is not None:
                return self.node.producer_id_block(BLOCK_SIZE)
            return allocate_block(self.config.log_dirs[0])
        return {"error": f"unknown op {op!r}"}

    def _elect_leaders(self, msg: dict) -> dict:
        """ElectLeaders. A single broker leads every partition it has, each partition's only replica, so
        nothing needs an election; in a cluster the controller elects (other brokers say NOT_CONTROLLER,
        and clients ask again where Metadata names the controller)."""
        wanted = None if msg["partitions"] is None else [(t, p) for t, p in msg["partitions"]]
        if self.node is None:
            results = []
            for t, p in wanted or ():
                info = self.metadata.topic(t)
                known = info is not None and 0 <= p < len(info.partitions)
                code = ErrorCode.ELECTION_NOT_NEEDED if known else ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
                results.append((t, p, int(code)))
            return {"error_code": 0, "results": results}
        if not self.node.is_controller:
            return {"error_code": int(ErrorCode.NOT_CONTROLLER), "results": []}
        results = self.node.elect_leaders(msg["election_type"] == 1, wanted)
        if any(code == 0 for _t, _p, code in results):
            self.controller.refresh(self._hide_before_delete)
        return {"error_code": 0, "results": results}

    def _alter_reassignments(self, msg: dict) -> dict:
        """AlterPartitionReassignments: (topic, partition, error code, message) per partition asked. A single
        broker is every partition's only possible replica, so only [its own id] is accepted (nothing moves)."""
        from broker.cluster.node import assignment_problem

        results = []
        if self.node is None:
            me = self.config["broker.id"]
            for t, p, target in msg["partitions"]:
                info = self.metadata.topic(t)
                if info is None or not 0 <= p < len(info.partitions):
                    code, text = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, f"Unable to find partition {t}:{p}."
                elif target is None:
                    code, text = ErrorCode.NO_REASSIGNMENT_IN_PROGRESS, "No partition reassignment is in progress."
                elif list(target) != [me]:
                    code = ErrorCode.INVALID_REPLICA_ASSIGNMENT
                    text = assignment_problem(target, {me}) or f"A single broker's only replica is broker {me}."
                else:
                    code, text = ErrorCode.NONE, None
                results.append((t, p, int(code), text))
            return {"results": results}
        for t, p, target in msg["partitions"]:
            try:
                code, text = self.node.alter_reassignment(t, p, None if target is None else list(target))
            except Exception as e:
                log.error("partition reassignment failed", topic=t, partition=p, error=repr(e))
                code, text = ErrorCode.UNKNOWN_SERVER_ERROR, str(e)
            results.append((t, p, int(code), text))
        if any(code == 0 for _t, _p, code, _m in results):
            self.controller.refresh(self._hide_before_delete)
        return {"results": results}

    def _topic_op(self, op: str, msg: dict) -> dict:
        c = self.controller
        if op == "create_acls":
            return {"results": c.create_acls([AclBinding(*b) for b in msg["bindings"]])}
        if op == "alter_broker_defaults":
            err, text = c.alter_broker_defaults(msg.get("scope", ""), msg.get("configs"), msg.get("ops"))
            return {"error_code": int(err), "error_message": text}
        if op == "alter_scram":  # bytes travel base64 in the JSON control message
            b64 = base64.b64decode
            return {"results": c.alter_scram([(u, m) for u, m in msg["deletions"]],
                                             [(u, m, i, b64(salt), b64(salted))
                                              for u, m, i, salt, salted in msg["upsertions"]])}
        if op == "alter_quotas":
            return {"results": c.alter_quotas(msg["entries"], msg.get("validate_only", False))}
        if op == "delete_acls":
            return {"results": [[code, text, [list(b) for b in found]]
                                for code, text, found in c.delete_acls([AclFilter(*f) for f in msg["filters"]])]}
        if op == "create_topics":
            return {"results": c.create_topics(msg["topics"], msg.get("validate_only", False))}
        if op == "delete_topics":
            return {"results": c.delete_topics(msg["names"], self._hide_before_delete)}
        if op == "create_partitions":
            return {"results": c.create_partitions(msg["topics"], msg.get("validate_only", False))}
        err, text = c.alter_topic_configs(msg["name"], msg.get("configs") or {}, msg.get("ops"))
        return {"error_code": int(err), "error_message": text}

    def _hide_before_delete(self, hidden: ClusterMetadata) -> None:
        """Publish a snapshot without the doomed topics and wait until the owners closed their logs."""
        self.metadata = hidden
        hidden.save(self.metadata_dir)
        self._sync_io_workers()

    def _next_timer(self) -> float:
        pending = [w.restart_at for w in self.workers if w.pid == 0 and w.restart_at]
        if not pending:
            return 1.0
        return max(0.0, min(1.0, min(pending) - time.monotonic()))

    def _announce(self, line: str) -> None:
        """The line tools parse (the ready line), in one write: the workers log to the same pipe when output
        is captured, and a pipe keeps a write this short whole, where print's separate newline let another
        process's log line land inside it."""
        self.out.write(line + "\n")
        self.out.flush()

    def _wait_ready(self) -> bool:
        """Each worker writes one byte when its kernels are warm and it serves; wait for all of them."""
        import select

        need = len(self.workers)
        deadline = time.monotonic() + READY_TIMEOUT_S
        while need > 0:
            left = deadline - time.monotonic()
            if left <= 0 or self.stopping:
                return False
            r, _, _ = select.select([self._ready_r, self._sig_r], [], [], min(left, 0.5))
            if self._ready_r in r:
                need -= len(os.read(self._ready_r, 4096))
            if self._sig_r in r:
                try:
                    os.read(self._sig_r, 4096)
                except BlockingIOError:
                    pass
            for sig in self._take_signals():
                if sig in (signal.SIGTERM, signal.SIGINT):
                    self.stopping = True
                    return False
            if self._reap():
                if any(w.boot_failures for w in self.workers):
                    log.error("worker failed during start")
                    return False
        return True

    # -- signals -------------------------------------------------------------------------------------------

    def handle_sigterm(self) -> None:
        log.info("stopping", signal="SIGTERM")
        self.stopping = True

    def handle_sigint(self) -> None:
        log.info("stopping", signal="SIGINT")
        self.stopping = True

    def handle_sighup(self) -> None:
        log.info("SIGHUP ignored: configuration is read at start")

    def handle_sigchld(self) -> None:
        pass  # _reap runs after every signal batch

    # -- workers -------------------------------------------------------------------------------------------

    def _spawn(self, w: WorkerSpec) -> None:
        if w.channel is not None:
            w.channel.close()
        ours, theirs = Channel.pair()
        pid = os.fork()
        if pid == 0:
            self.is_child = True
            code = 0
            try:
                signal.set_wakeup_fd(-1)
                for sig in (signal.SIGCHLD, signal.SIGHUP):
                    signal.signal(sig, signal.SIG_DFL)
                os.close(self._sig_r)
                os.close(self._sig_w)
                os.close(self._ready_r)
                ours.close()
                if self.metrics_server is not None:
                    self.metrics_server.httpd.socket.close()
                for other in self.workers:
                    if other.channel is not None and other is not w:
                        other.channel.close()
                self.child_channel = theirs
                w.target(self, w.index)
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else 1
            except BaseException:
                log.error("worker crashed", exc_info=True, role=w.role, worker=w.index)
                code = 1
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        theirs.close()
        w.channel = ours
        w.pid = pid
        w.started_at = time.monotonic()
        w.restart_at = 0.0
        log.info("worker started", role=w.role, worker=w.index, child=pid)

    def notify_ready(self) -> None:
        """Called in a worker once it serves."""
        os.write(self._ready_w, b"r")

    def _reap(self) -> bool:
        reaped = False
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return reaped
            if pid == 0:
                return reaped
            reaped = True
            for w in self.workers:
                if w.pid == pid:
                    self._on_exit(w, status)

    def _on_exit(self, w: WorkerSpec, status: int) -> None:
        w.pid = 0
        if self.stopping:
            if w.role == "io" and os.waitstatus_to_exitcode(status) != 0:
                self.clean_stop = False
            return
        lived = time.monotonic() - w.started_at
        code = os.waitstatus_to_exitcode(status)
        w.boot_failures = w.boot_failures + 1 if lived < BOOT_FAILURE_WINDOW_S else 0
        log.warning("worker exited", role=w.role, worker=w.index, exit=code, lived_s=round(lived, 2))
        if w.role == "io":
            self._tell_network_workers({"op": "io_exited", "io": w.index})
        if w.boot_failures >= MAX_BOOT_FAILURES:
            log.error("worker keeps failing at start; stopping the broker", role=w.role, worker=w.index)
            self.exit_code = EXIT_WORKER_BOOT_FAILURE
            self.stopping = True
            return
        w.restarts += 1
        delay = min(5.0, 0.1 * 2 ** w.boot_failures) if w.boot_failures else 0.05
        w.restart_at = time.monotonic() + delay

    def _tell_network_workers(self, msg: dict) -> None:
        for other in self.workers:
            if other.role == "network" and other.pid and other.channel is not None:
                try:
                    other.channel.send(msg)
                except ChannelClosed:
                    pass

    def _restart_due(self) -> None:
        now = time.monotonic()
        for w in self.workers:
            if w.pid == 0 and w.restart_at and now >= w.restart_at and not self.stopping:
                self._spawn(w)

    def _stop_all(self) -> None:
        """Network workers first (they stop accepting and drain what is in flight), then the I/O workers
        (they finish what is in their rings and close their logs)."""
        self.stopping = True
        if self.metrics_server is not None:
            self.metrics_server.stop()
        for role in ("network", "io"):
            self._stop_role(role)
        while any(w.pid for w in self.workers):
            self._reap()
            time.sleep(0.01)
        self._close_sockets()
        for w in self.workers:
            if w.channel is not None:
                w.channel.close()
        if self.shared is not None:
            self.shared.destroy()
        if self.metrics is not None:
            self.metrics.destroy()
        if self.node is not None:
            self.node.stop()
        if self.log_manager is not None and self.exit_code == EXIT_OK and self.clean_stop:
            self.log_manager.mark_clean_shutdown()
        log.info("stopped", exit=self.exit_code, clean=self.clean_stop)

    def _close_sockets(self) -> None:
        for b in self.bound:
            for s in b.sockets:
                s.close()
        for pair in self.handoff:
            for s in pair:
                s.close()

    def _stop_role(self, role: str) -> None:
        group = [w for w in self.workers if w.role == role]
        for w in group:
            if w.pid:
                try:
                    os.kill(w.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + stop_grace(role, self.metadata)
        while any(w.pid for w in group) and time.monotonic() < deadline:
            self._reap()
            time.sleep(0.02)
        for w in group:
            if w.pid:
                self.clean_stop = False
                log.warning("worker did not stop in time; killing", role=w.role, worker=w.index)
                try:
                    os.kill(w.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

    def abandon_start(self) -> None:
        if self.node is not None:
            self.node.stop()
        self._close_sockets()
        if self.shared is not None:
            self.shared.destroy()
        if self.metrics is not None:
            self.metrics.destroy()
        if self.metrics_server is not None:
            self.metrics_server.httpd.server_close()


def stop_grace(role: str, metadata: ClusterMetadata | None) -> float:
    """How long a worker of `role` may take to stop after SIGTERM before it is killed."""
    if role != "io" or metadata is None:
        return STOP_GRACE_S
    owned: dict[int, int] = {}
    for t in metadata.topics.values():
        for p in t.partitions:
            if p.slot >= 0:
                owned[p.owner] = owned.get(p.owner, 0) + 1
    return STOP_GRACE_S + STOP_GRACE_PER_PARTITION_S * max(owned.values(), default=0)


def run_broker(config: BrokerConfig, out=None) -> int:
    sup = Supervisor(config, out)
    try:
        sup.start()
    except StartupError as e:
        sup.abandon_start()
        print(f"hpbroker: cannot start: {e}", file=sys.stderr, flush=True)
        return EXIT_STARTUP_FAILURE
    except BaseException:
        sup.abandon_start()
        raise
    return sup.run()
