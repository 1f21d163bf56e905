"""The supervisor: binds listeners once, forks the workers, restarts the ones that die, stops them all.

It owns lifecycle and nothing else on the request path. Signal handlers only record the signal; one loop
dispatches `handle_<signal>`. A worker that dies is restarted with backoff; a worker that keeps failing
right after start stops the broker with EXIT_WORKER_BOOT_FAILURE instead of respawning forever.
"""

from __future__ import annotations

import errno
import os
import signal
import socket
import sys
import time
import uuid
from dataclasses import dataclass, field
from typing import Callable

from broker.config import BrokerConfig, Listener
from broker.logfmt import Log
from broker.metadata import BrokerInfo, ClusterMetadata, MetadataView, load_snapshot

log = Log("hpbroker.supervisor")

EXIT_OK = 0
EXIT_STARTUP_FAILURE = 1
EXIT_WORKER_BOOT_FAILURE = 3

# A worker that exits within this many seconds of starting counts as a boot failure.
BOOT_FAILURE_WINDOW_S = 2.0
MAX_BOOT_FAILURES = 5
STOP_GRACE_S = 10.0
READY_TIMEOUT_S = 120.0


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


@dataclass
class BoundListener:
    listener: Listener
    port: int
    sockets: list[socket.socket] = field(default_factory=list)


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
        self.workers: list[WorkerSpec] = []
        self.signals: list[int] = []
        self.stopping = False
        self.exit_code = EXIT_OK
        self.is_child = False
        self._sig_r = self._sig_w = -1
        self._ready_r = self._ready_w = -1
        self.metadata: ClusterMetadata | None = None

    # -- start ---------------------------------------------------------------------------------------------

    def start(self) -> None:
        cfg = self.config
        prepare_data_dirs(cfg.log_dirs)
        n_net = cfg["num.network.threads"]
        self.bound = [bind_listener(lst, n_net) for lst in cfg.listeners]
        self.metadata = self._initial_metadata()
        self.metadata.save(self.metadata_dir)
        from netio.process import run_network_worker

        for i in range(n_net):
            self.workers.append(WorkerSpec("network", i, run_network_worker))

    @property
    def metadata_dir(self) -> str:
        return self.config.log_dirs[0]

    def advertised(self) -> list[tuple[str, int]]:
        """Advertised endpoints, with port 0 replaced by the port actually bound."""
        adv = self.config["advertised.listeners"]
        if adv:
            return [(a.host, a.port) for a in adv]
        out = []
        for b in self.bound:
            host = b.listener.host
            if host in ("0.0.0.0", "::", ""):
                host = socket.gethostname()
            out.append((host, b.port))
        return out

    def _initial_metadata(self) -> ClusterMetadata:
        prior = load_snapshot(self.metadata_dir)
        host, port = self.advertised()[0]
        broker_id = self.config["broker.id"]
        cluster_id = prior.cluster_id if prior else uuid.uuid4().hex[:22]
        topics = prior.topics if prior else {}
        version = (prior.version + 1) if prior else 1
        return ClusterMetadata(version, cluster_id, broker_id, (BrokerInfo(broker_id, host, port),), topics)

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
        listeners = ",".join(f"{b.listener.name}://{b.listener.host}:{b.port}" for b in self.bound)
        print(f"hpbroker ready broker.id={self.config['broker.id']} listeners={listeners} "
              f"log.dirs={','.join(self.config.log_dirs)} pid={os.getpid()}", file=self.out, flush=True)
        log.info("ready", listeners=listeners, network_workers=self.config["num.network.threads"])
        while not self.stopping:
            self._wait_for_signal(timeout=self._next_timer())
            for sig in self._take_signals():
                getattr(self, f"handle_{signal.Signals(sig).name.lower()}", lambda: None)()
            self._reap()
            self._restart_due()
        self._stop_all()
        return self.exit_code

    def _record_signal(self, signum, frame) -> None:
        self.signals.append(signum)

    def _take_signals(self) -> list[int]:
        out, self.signals = self.signals, []
        return out

    def _wait_for_signal(self, timeout: float) -> None:
        import select

        try:
            r, _, _ = select.select([self._sig_r], [], [], timeout)
        except InterruptedError:
            return
        if r:
            try:
                os.read(self._sig_r, 4096)
            except BlockingIOError:
                pass

    def _next_timer(self) -> float:
        pending = [w.restart_at for w in self.workers if w.pid == 0 and w.restart_at]
        if not pending:
            return 1.0
        return max(0.0, min(1.0, min(pending) - time.monotonic()))

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
            return
        lived = time.monotonic() - w.started_at
        code = os.waitstatus_to_exitcode(status)
        w.boot_failures = w.boot_failures + 1 if lived < BOOT_FAILURE_WINDOW_S else 0
        log.warning("worker exited", role=w.role, worker=w.index, exit=code, lived_s=round(lived, 2))
        if w.boot_failures >= MAX_BOOT_FAILURES:
            log.error("worker keeps failing at start; stopping the broker", role=w.role, worker=w.index)
            self.exit_code = EXIT_WORKER_BOOT_FAILURE
            self.stopping = True
            return
        w.restarts += 1
        delay = min(5.0, 0.1 * 2 ** w.boot_failures) if w.boot_failures else 0.05
        w.restart_at = time.monotonic() + delay

    def _restart_due(self) -> None:
        now = time.monotonic()
        for w in self.workers:
            if w.pid == 0 and w.restart_at and now >= w.restart_at and not self.stopping:
                self._spawn(w)

    def _stop_all(self) -> None:
        self.stopping = True
        for w in self.workers:
            if w.pid:
                try:
                    os.kill(w.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + STOP_GRACE_S
        while any(w.pid for w in self.workers) and time.monotonic() < deadline:
            self._reap()
            time.sleep(0.02)
        for w in self.workers:
            if w.pid:
                log.warning("worker did not stop in time; killing", role=w.role, worker=w.index)
                try:
                    os.kill(w.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        while any(w.pid for w in self.workers):
            self._reap()
            time.sleep(0.01)
        for b in self.bound:
            for s in b.sockets:
                s.close()
        log.info("stopped", exit=self.exit_code)


def run_broker(config: BrokerConfig, out=None) -> int:
    sup = Supervisor(config, out)
    try:
        sup.start()
    except StartupError as e:
        print(f"hpbroker: cannot start: {e}", file=sys.stderr, flush=True)
        return EXIT_STARTUP_FAILURE
    return sup.run()
