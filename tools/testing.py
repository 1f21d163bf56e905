"""Run a real hpbroker as a child process for tests: ephemeral port, temporary data directory.

The broker is started exactly as an operator would (`hpbroker start ...`, its real supervisor and
workers), and its address is read from the `ready` line, so there is no race on picking a free port.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque

from broker.config import hostport

READY_RE = re.compile(r"hpbroker ready .*listeners=PLAINTEXT://(\[[^\]\s]+\]|[^:,\s]+):(\d+)")
METRICS_RE = re.compile(r"hpbroker ready .* metrics=(http://\S+)")
WORKER_RE = re.compile(r"worker started role=(\w+) worker=(\d+) child=(\d+)")


def kill_group(proc: subprocess.Popen | None) -> None:
    """SIGKILL a child started with `start_new_session=True` and everything it forked; reap it."""
    if proc is None:
        return
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


class BrokerProcess:
    def __init__(self, data_dir: str | None = None, settings: dict | None = None, port: int = 0,
                 host: str = "127.0.0.1", network_threads: int | None = 1, io_threads: int | None = 1,
                 source: str | None = None, cpus: set[int] | None = None):
        """`source`: a source tree to run the broker from instead of the installed one (comparing two).
        `network_threads`/`io_threads` None: the broker's default. `cpus`: the CPUs the broker may run on
        (its affinity, as `taskset` would set it)."""
        self._tmp = None
        self.source = os.path.abspath(source) if source else None
        if data_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="hpbroker-test-")
            data_dir = self._tmp.name
        self.data_dir = data_dir
        self.settings = {"listeners": f"PLAINTEXT://{hostport(host, port)}", "log.dirs": data_dir,
                         "metrics.listener": "none"}
        for key, n in (("num.network.threads", network_threads), ("num.io.threads", io_threads)):
            if n is not None:
                self.settings[key] = str(n)
        self.settings.update({k: str(v) for k, v in (settings or {}).items()})
        self.cpus = cpus
        self.proc: subprocess.Popen | None = None
        self.host = host
        self.port = 0
        self.metrics_url: str | None = None  # from the ready line when metrics.listener is set
        self.output: deque[str] = deque(maxlen=2000)
        self._ready = threading.Event()
        self._reader: threading.Thread | None = None

    @property
    def bootstrap(self) -> str:
        return hostport(self.host, self.port)

    def command(self) -> list[str]:
        cmd = [sys.executable, "-m", "tools.cli", "start"]
        for k, v in self.settings.items():
            cmd += ["--set", f"{k}={v}"]
        return cmd

    def start(self, timeout: float = 120.0) -> "BrokerProcess":
        if self.proc is not None and self.proc.poll() is None:
            raise RuntimeError(f"the broker at {self.bootstrap} is already running (pid {self.proc.pid})")
        if self.port:  # a restart keeps the same address
            self.settings["listeners"] = f"PLAINTEXT://{hostport(self.host, self.port)}"
        self._ready.clear()
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        if self.source:
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [self.source, env.get("PYTHONPATH")]))
        self.proc = subprocess.Popen(self.command(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=env, start_new_session=True, text=True,
                                     cwd=self.source, preexec_fn=self._pin if self.cpus else None)
        self._reader = threading.Thread(target=self._read_output, args=(self.proc,), daemon=True)
        self._reader.start()
        deadline = time.monotonic() + timeout
        while not self._ready.wait(0.05):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise RuntimeError("broker did not become ready:\n" + self.log_tail())
        return self

    def _pin(self) -> None:
        os.sched_setaffinity(0, self.cpus)

    def _read_output(self, proc: subprocess.Popen) -> None:
        for line in proc.stdout:
            self.output.append(line.rstrip("\n"))
            m = READY_RE.search(line)
            if m:
                self.port = int(m.group(2))
                mm = METRICS_RE.search(line)
                self.metrics_url = mm.group(1) if mm else None
                self._ready.set()

    def log_tail(self, n: int = 60) -> str:
        return "\n".join(list(self.output)[-n:])

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM and wait: the clean shutdown path. Returns the exit status."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise

    def kill(self) -> None:
        """SIGKILL the whole process group: supervisor and workers die at once, as in a crash."""
        kill_group(self.proc)

    def worker_pids(self, role: str) -> dict[int, int]:
        """Live worker pids by index, for one role ("network" or "io"), from the supervisor's log lines."""
        out = {}
        for line in list(self.output):
            m = WORKER_RE.search(line)
            if m and m.group(1) == role:
                out[int(m.group(2))] = int(m.group(3))
        return out

    def restart_worker(self, role: str, index: int = 0, timeout: float = 20.0) -> int:
        """kill -9 one worker and wait until the supervisor has started its successor; the new pid."""
        victim = self.worker_pids(role)[index]
        os.kill(victim, signal.SIGKILL)
        deadline = time.time() + timeout
        while self.worker_pids(role).get(index) == victim and time.time() < deadline:
            time.sleep(0.1)
        pid = self.worker_pids(role)[index]
        assert pid != victim, f"{role} worker {index} was not restarted"
        return pid

    def child_pids(self) -> list[int]:
        import psutil

        return [c.pid for c in psutil.Process(self.proc.pid).children()]

    def pids(self) -> list[int]:
        """The supervisor and its workers."""
        return [self.proc.pid, *self.child_pids()]

    def close(self) -> None:
        try:
            self.stop()
            # Shown by pytest only when the test failed: the broker's side of the story.
            print(f"--- broker log ({self.bootstrap}) ---\n{self.log_tail(80)}")
        finally:
            if self._tmp is not None:
                self._tmp.cleanup()

    def __enter__(self) -> "BrokerProcess":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()


def make_test_certificates(directory) -> dict[str, str]:
    """A throwaway CA and what TLS tests and benchmarks need, made with the openssl command line (EC P-256,
    valid for a day) in `directory`: the broker's key and chain for 127.0.0.1 and localhost
    (`keystore`, as ssl.keystore.location takes it), a client certificate of the same CA (`client_cert`,
    `client_key`) and one of another CA (`stranger_cert`, `stranger_key`). Paths by name."""
    from pathlib import Path

    d = Path(directory)

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True, timeout=60)

    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    for ca in ("ca", "other-ca"):
        openssl("req", "-x509", *ec, "-keyout", f"{ca}.key", "-out", f"{ca}.pem", "-days", "1",
                "-subj", f"/CN=hpbroker test {ca}")
    for name, ca, san in (("server", "ca", "IP:127.0.0.1,DNS:localhost"), ("client", "ca", None),
                          ("stranger", "other-ca", None)):
        openssl("req", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}")
        ext = []
        if san:
            (d / f"{name}.ext").write_text(f"subjectAltName={san}\n")
            ext = ["-extfile", f"{name}.ext"]
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key", "-CAcreateserial",
                "-out", f"{name}.pem", "-days", "1", *ext)
    (d / "keystore.pem").write_text((d / "server.key").read_text() + (d / "server.pem").read_text())
    return {"ca": str(d / "ca.pem"), "keystore": str(d / "keystore.pem"), "client_cert": str(d / "client.pem"),
            "client_key": str(d / "client.key"), "stranger_cert": str(d / "stranger.pem"),
            "stranger_key": str(d / "stranger.key")}
