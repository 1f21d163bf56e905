"""The ready line reaches stdout in one write, so a worker's log line can never land inside it."""

import json
import os
import select
import subprocess
import sys
import time

CHILD = r"""
import json, sys
from tools.cli import main

class Recorded:
    # stdout, recording each write the supervisor makes (the workers log to stderr)
    def __init__(self, inner, path):
        self.inner, self.log = inner, open(path, "a")
    def write(self, s):
        self.log.write(json.dumps(s) + "\n"); self.log.flush()
        return self.inner.write(s)
    def flush(self):
        self.inner.flush()
    def __getattr__(self, name):
        return getattr(self.inner, name)

sys.stdout = Recorded(sys.stdout, sys.argv[1])
main(["start"] + sys.argv[2:], standalone_mode=True)
"""


def test_the_ready_line_is_one_write_ending_in_its_newline(tmp_path):
    """When the broker's output is captured (the pytest fixture, `perf compare`), the supervisor and every
    worker write to one pipe. print() wrote the newline separately, and a worker's log line written between
    the two joined the ready line (`metrics=http://127.0.0.1:37081/metrics2026-11-27T21:36:56.185Z INFO
    ...`), which the fixture then took for the metrics address."""
    writes = tmp_path / "writes"
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(writes), "--set", "listeners=PLAINTEXT://127.0.0.1:0",
         "--set", f"log.dirs={tmp_path / 'data'}", "--set", "metrics.listener=127.0.0.1:0",
         "--set", "num.network.threads=1", "--set", "num.io.threads=1"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        seen = ""
        while "hpbroker ready" not in seen and time.monotonic() < deadline and proc.poll() is None:
            if select.select([proc.stdout], [], [], 0.5)[0]:
                seen += os.read(proc.stdout.fileno(), 65536).decode(errors="replace")
    finally:
        proc.terminate()
        proc.communicate(timeout=60)
    assert "hpbroker ready" in seen, seen[-2000:]
    recorded = [json.loads(x) for x in writes.read_text().splitlines()]
    ready = [w for w in recorded if "hpbroker ready" in w]
    assert len(ready) == 1, recorded
    assert ready[0].startswith("hpbroker ready") and ready[0].endswith("/metrics\n"), ready
