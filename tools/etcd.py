"""Run a real single-member etcd for tests: loopback, ephemeral ports, a temporary data directory.

etcd has no "port 0" for its listeners, so free ports are found by binding port 0 and releasing it; a port
taken in between makes etcd exit, and start() tries again with new ports. Short election and heartbeat
intervals make the member ready in a fraction of a second and allow 1-second leases.
"""

from __future__ import annotations

import http.client
import os
import shutil
import socket
import subprocess
import time

from tools.testing import kill_group

ETCD_PATHS = ("/usr/bin/etcd",)


def etcd_binary() -> str | None:
    for path in ETCD_PATHS:
        if os.access(path, os.X_OK):
            return path
    return shutil.which("etcd")


def etcd_available() -> bool:
    return etcd_binary() is not None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class EtcdServer:
    """Starts /usr/bin/etcd (or `etcd` on PATH) on 127.0.0.1 with ephemeral client and peer ports and a temp
    data dir; `.endpoint` is "127.0.0.1:PORT"; context manager; `.stop()` kills it and removes the data.

    `kill()` stops the process but keeps its data and ports: a later `start()` brings the same member back
    at the same address, as after a crash and restart.
    """

    ATTEMPTS = 3

    def __init__(self, data_dir: str):
        self.data_dir = data_dir
        self.client_port = 0
        self.peer_port = 0
        self.proc: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.client_port}"

    @property
    def log_path(self) -> str:
        return os.path.join(self.data_dir, "etcd.log")

    def command(self) -> list[str]:
        client = f"http://127.0.0.1:{self.client_port}"
        peer = f"http://127.0.0.1:{self.peer_port}"
        return [etcd_binary() or "etcd", "--name", "test", "--data-dir", os.path.join(self.data_dir, "member"),
                "--listen-client-urls", client, "--advertise-client-urls", client,
                "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                "--initial-cluster", f"test={peer}", "--initial-cluster-state", "new",
                "--heartbeat-interval", "10", "--election-timeout", "100",
                "--logger", "zap", "--log-level", "error"]

    def start(self, timeout: float = 20.0) -> "EtcdServer":
        """Start (or restart after kill()) and wait until etcd serves requests."""
        if not etcd_available():
            raise RuntimeError("etcd is not installed (Debian/Ubuntu: apt-get install etcd-server)")
        os.makedirs(self.data_dir, exist_ok=True)
        fixed = self.client_port != 0  # a restart keeps the address clients already use
        for _ in range(self.ATTEMPTS):
            if not fixed:
                self.client_port, self.peer_port = _free_port(), _free_port()
                shutil.rmtree(os.path.join(self.data_dir, "member"), ignore_errors=True)
            with open(self.log_path, "ab") as out:
                self.proc = subprocess.Popen(self.command(), stdout=out, stderr=subprocess.STDOUT,
                                             stdin=subprocess.DEVNULL, start_new_session=True)
            if self._wait_ready(timeout):
                return self
            self.kill()
        raise RuntimeError(f"etcd did not start on {self.endpoint}:\n{self.log_tail()}")

    def _wait_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.client_port, timeout=1.0)
                try:
                    conn.request("POST", "/v3/kv/range", b'{"key": "AA=="}')
                    if conn.getresponse().status == 200:
                        return True
                finally:
                    conn.close()
            except (OSError, http.client.HTTPException):
                pass
            time.sleep(0.02)
        return False

    def kill(self) -> None:
        """SIGKILL etcd, keeping its data: a crash."""
        kill_group(self.proc)
        self.proc = None

    def stop(self) -> None:
        self.kill()
        shutil.rmtree(self.data_dir, ignore_errors=True)

    def log_tail(self, n: int = 40) -> str:
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""

    def __enter__(self) -> "EtcdServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
