"""`hpbroker demo` in a real terminal: the dashboard fills with the demo load; q stops the broker and the
load processes (found by the data directory or the address on their command lines) and removes the data."""

from __future__ import annotations

import os
import re
import sys
import time

import psutil

from tests.metrics.test_top_terminal import Tmux, pytestmark  # noqa: F401  (skips without tmux)


def test_demo_runs_load_and_cleans_up_on_q():
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    cmd = (f"cd {repo} && {sys.executable} -m tools.cli demo --rate 500 --size 100 --network-threads 1 "
           f"--io-threads 1; echo DEMO-EXITED=$?; sleep 60")
    term = Tmux(cmd)
    try:
        def busy(text: str) -> bool:
            return "demo-readers" in text and re.search(r"demo-\d", text) is not None and "Produce" in text

        term.wait_for(busy, timeout=150)  # broker start, topic creation and the first group commit
        term.keys("q")
        after = term.wait_for(lambda t: "DEMO-EXITED=" in t, timeout=60)
        assert "DEMO-EXITED=0" in after and "Traceback" not in after
        data_dir = re.search(r"starting a broker in (\S+) \.\.\.", after).group(1)
        assert not os.path.exists(data_dir)
        bootstrap = re.search(r"broker at (\S+),", after).group(1)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            left = [p for p in psutil.process_iter(["cmdline"])
                    if any(data_dir in a or bootstrap == a for a in (p.info["cmdline"] or ()))]
            if not left:
                break
            time.sleep(0.2)
        assert not left
    finally:
        term.kill()



def test_closing_the_terminal_stops_the_demo_and_what_it_started():
    """The terminal goes away (tmux killed: SIGHUP) while the demo runs: the broker and the load it started
    stop and its data directory is removed, as with q."""
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    marker = f"--rate {os.getpid() % 1000 + 100}"  # tells this demo from any other on the machine
    term = Tmux(f"cd {repo} && {sys.executable} -m tools.cli demo {marker} --size 100 --network-threads 1 "
                f"--io-threads 1")
    try:
        term.wait_for(lambda t: "demo-readers" in t and "Produce" in t, timeout=150)
        demo = next(p for p in psutil.process_iter(["cmdline"])
                    if "demo" in (p.info["cmdline"] or ()) and marker in " ".join(p.info["cmdline"]))
        started = demo.children(recursive=True)
        data_dir = next(a.split("=", 1)[1] for p in started for a in p.cmdline() if a.startswith("log.dirs="))
        assert len(started) >= 3  # the broker's supervisor and workers, the e2e load, the group reader
    finally:
        term.kill()
    gone, alive = psutil.wait_procs(started, timeout=30)
    assert not alive, alive
    deadline = time.monotonic() + 10
    while os.path.exists(data_dir) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not os.path.exists(data_dir)
