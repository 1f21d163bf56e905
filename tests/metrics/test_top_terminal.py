"""`hpbroker top` in a real 80x24 terminal (tmux) against a live broker under load; `q` quits cleanly."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
import uuid

import pytest
from confluent_kafka import Producer

from tools.testing import BrokerProcess

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")


class Tmux:
    def __init__(self, command: str):
        self.socket = f"hpbroker-top-{uuid.uuid4().hex[:8]}"
        self._run("new-session", "-d", "-x", "80", "-y", "24", "-s", "top", command)

    def _run(self, *args: str) -> str:
        return subprocess.run(["tmux", "-L", self.socket, "-f", "/dev/null", *args], check=True,
                              capture_output=True, text=True, timeout=10).stdout

    def screen(self) -> str:
        return self._run("capture-pane", "-p", "-t", "top")

    def keys(self, *keys: str) -> None:
        self._run("send-keys", "-t", "top", *keys)

    def wait_for(self, predicate, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        text = ""
        while time.monotonic() < deadline:
            text = self.screen()
            if predicate(text):
                return text
            time.sleep(0.3)
        raise AssertionError("terminal never showed what was expected:\n" + text)

    def kill(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True, timeout=10)


def produce_until(bootstrap: str, stop: threading.Event) -> None:
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    while not stop.is_set():
        for _ in range(200):
            p.produce("top-load", b"x" * 200)
        p.poll(0.02)
    p.flush(10)


def test_top_shows_live_broker_and_quits_on_q_or_ctrl_c(tmp_path):
    broker = BrokerProcess(data_dir=str(tmp_path / "data"), settings={"metrics.listener": "127.0.0.1:0"})
    broker.start()
    stop = threading.Event()
    load = threading.Thread(target=produce_until, args=(broker.bootstrap, stop), daemon=True)
    load.start()
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    top = f"{sys.executable} -m tools.cli top --metrics {broker.metrics_url}"
    # `read` holds the shell between the two runs, so the exit line stays on screen until the test has seen it.
    cmd = f"cd {repo} && {top}; echo TOP-EXITED=$?; read _; {top}; echo AGAIN-EXITED=$?; sleep 60"
    term = Tmux(cmd)
    try:
        def live(text: str) -> bool:
            produce = next((line for line in text.splitlines() if "produce" in line), "")
            return ("hpbroker" in text and "net 0" in text and "top-load-0" in text and "Produce" in text
                    and "rec/s" in produce and " 0 rec/s" not in produce and " 0 B/s" not in produce)

        screen = term.wait_for(live)
        lines = screen.splitlines()
        assert len(lines) <= 24 and all(len(line) <= 80 for line in lines)
        assert "net 1 io 1" in screen and broker.bootstrap in screen
        assert "io 0" in screen and "busiest partitions" in screen and "latency" in screen
        term.keys("q")
        after = term.wait_for(lambda t: "TOP-EXITED=" in t, timeout=15)
        assert "TOP-EXITED=0" in after
        assert "busiest partitions" not in after  # the alternate screen is gone: terminal restored
        term.keys("Enter")
        term.wait_for(lambda t: "busiest partitions" in t, timeout=15)
        term.keys("C-c")
        after = term.wait_for(lambda t: "AGAIN-EXITED=" in t, timeout=15)
        assert "AGAIN-EXITED=0" in after and "Traceback" not in after
    finally:
        term.kill()
        stop.set()
        load.join(15)
        broker.close()
