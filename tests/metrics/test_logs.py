"""Structured logs: with --log-format json every line is one JSON object, and a worker's lines name the
worker (role, index) and what they concern (here a connection) as fields."""

from __future__ import annotations

import json
import socket
import struct
import time

from tools.testing import BrokerProcess


class JsonLogBroker(BrokerProcess):
    def command(self) -> list[str]:
        cmd = super().command()
        return cmd[:cmd.index("start") + 1] + ["--log-format", "json"] + cmd[cmd.index("start") + 1:]


def test_json_lines_name_worker_and_connection(tmp_path):
    from confluent_kafka import Producer

    with JsonLogBroker(data_dir=str(tmp_path / "data")) as b:
        with socket.create_connection(("127.0.0.1", b.port), timeout=5) as s:
            s.sendall(struct.pack(">i", 2**31 - 1))  # a size prefix over socket.request.max.bytes
            assert s.recv(10) == b""  # the broker closes this connection
        p = Producer({"bootstrap.servers": b.bootstrap})
        p.produce("logged", b"x")
        assert p.flush(20) == 0
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not any('"connection closed"' in line for line in b.output):
            time.sleep(0.1)
        records = [json.loads(line) for line in list(b.output) if line.startswith("{")]
    for r in records:
        assert {"ts", "level", "logger", "pid", "msg"} <= set(r)
    closed = [r for r in records if r["msg"] == "connection closed"]
    assert closed and closed[0]["level"] == "WARNING"
    assert closed[0]["role"] == "network" and closed[0]["worker"] == 0
    assert "conn" in closed[0] and "bad frame" in closed[0]["reason"]
    io_lines = [r for r in records if r.get("role") == "io"]
    assert io_lines and all(r["worker"] == 0 for r in io_lines)
    assert any(r["msg"] == "ready" for r in records)  # the supervisor's lines are JSON too
