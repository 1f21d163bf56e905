"""The kafkajs (Node.js) scripts in tests/integration/js: whether they can run here, and running one."""

from __future__ import annotations

import os
import shutil
import subprocess

JS_DIR = os.path.join(os.path.dirname(__file__), "js")


def missing() -> str | None:
    """Why kafkajs tests cannot run here (for a skip reason), or None."""
    if shutil.which("node") is None:
        return "node is not installed"
    if not os.path.isdir(os.path.join(JS_DIR, "node_modules", "kafkajs")):
        return f"kafkajs is not installed (npm ci in {JS_DIR})"
    return None


def run(script: str, *args: str, timeout: float = 120, **env: str) -> subprocess.CompletedProcess:
    """`node js/<script> args...`, its output captured; `env` adds to the environment."""
    return subprocess.run(["node", os.path.join(JS_DIR, script), *args], capture_output=True, text=True,
                          timeout=timeout, env=dict(os.environ, KAFKAJS_NO_PARTITIONER_WARNING="1", **env))
