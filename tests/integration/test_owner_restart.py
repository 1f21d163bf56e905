"""A request parked in an I/O worker that dies is not left hanging: the client's connection is closed so
it reconnects and retries (Kafka clients do), instead of waiting for its own request timeout."""

import os
import signal
import socket
import time

import pytest

from broker.controller import owner_of
from broker.groups import partition_for
from netio.codec import encode_request
from tools.testing import BrokerProcess

JOIN_GROUP = 11


def test_parked_join_group_is_released_when_its_coordinator_dies(tmp_path):
    # An empty group waits group.initial.rebalance.delay.ms before completing its first rebalance, so
    # this JoinGroup stays parked in the coordinating I/O worker.
    b = BrokerProcess(data_dir=str(tmp_path), io_threads=2,
                      settings={"group.initial.rebalance.delay.ms": 60000})
    b.start()
    try:
        group = "parked"
        owner = owner_of("__consumer_offsets", partition_for(group, 50), 2)
        s = socket.create_connection(("127.0.0.1", b.port), timeout=30)
        body = {"group_id": group, "session_timeout_ms": 10000, "rebalance_timeout_ms": 60000,
                "member_id": "", "protocol_type": "consumer",
                "protocols": [{"name": "range", "metadata": b"\x00\x01"}]}
        s.sendall(encode_request(JOIN_GROUP, 3, 1, "t", body))  # v3: no MEMBER_ID_REQUIRED round trip
        time.sleep(1.0)
        # Still parked: no answer yet and the connection still open, so a non-blocking read has nothing.
        s.setblocking(False)
        with pytest.raises(BlockingIOError):
            s.recv(1)
        s.setblocking(True)
        victim = b.worker_pids("io")[owner]
        os.kill(victim, signal.SIGKILL)
        start = time.monotonic()
        s.settimeout(20)
        data = s.recv(4096)
        waited = time.monotonic() - start
        assert data == b"", f"expected the broker to close the connection, got {data[:20]!r}"
        assert waited < 15, f"connection closed only after {waited:.1f}s"
        deadline = time.monotonic() + 5
        while not any("partition owner restarted" in line for line in b.output):
            assert time.monotonic() < deadline, b.log_tail()
            time.sleep(0.05)
        s.close()
    finally:
        b.close()
