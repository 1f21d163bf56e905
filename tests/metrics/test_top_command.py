"""`hpbroker top` resolves its endpoint (flag, --config, default) and says plainly when it cannot read it."""

from __future__ import annotations

import socket
import subprocess
import sys


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def top(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tools.cli", "top", "--frames", "1", *args], capture_output=True,
                          text=True, timeout=60, stdin=subprocess.DEVNULL)


def test_unreachable_endpoint_from_config(tmp_path):
    port = free_port()
    props = tmp_path / "server.properties"
    props.write_text(f"metrics.listener=0.0.0.0:{port}\n")
    r = top("--config", str(props))
    assert r.returncode == 0, r.stderr
    assert f"cannot read http://127.0.0.1:{port}/metrics" in r.stdout


def test_metrics_flag_takes_host_port():
    port = free_port()
    r = top("--metrics", f"127.0.0.1:{port}")
    assert r.returncode == 0 and f"http://127.0.0.1:{port}/metrics" in r.stdout


def test_config_that_disables_metrics_is_a_usage_error(tmp_path):
    props = tmp_path / "server.properties"
    props.write_text("metrics.listener=none\n")
    r = top("--config", str(props))
    assert r.returncode == 2 and "disables metrics" in r.stderr
