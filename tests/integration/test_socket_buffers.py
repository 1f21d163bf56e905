"""`socket.receive.buffer.bytes`: by default the broker leaves SO_RCVBUF alone, so the kernel grows a busy
connection's receive buffer (autotuning); a positive value fixes it. Read off the broker's side of the
client's connections with `ss`, after a confluent-kafka producer has sent 1 MB batches through them."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
from confluent_kafka import Producer

from tests.integration.test_produce_fetch import _create
from tools.testing import BrokerProcess

pytestmark = pytest.mark.skipif(shutil.which("ss") is None, reason="needs ss (iproute2)")

_RB = re.compile(r"\brb(\d+)\b")


def broker_side_rcvbufs(port: int) -> list[int]:
    """The receive buffer limit (`rb`) of every established socket whose local port is the broker's."""
    out = subprocess.run(["ss", "-tmnH", "state", "established", f"( sport = :{port} )"],
                         capture_output=True, text=True, check=True).stdout
    return [int(m) for m in _RB.findall(out)]


def produce_and_measure(settings: dict, tmp_path) -> list[int]:
    with BrokerProcess(data_dir=str(tmp_path), network_threads=1, io_threads=1, settings=settings) as b:
        _create(b.bootstrap, "big", 1)
        p = Producer({"bootstrap.servers": b.bootstrap, "acks": 1, "batch.size": 1_000_000, "linger.ms": 20,
                      "compression.type": "none"})
        acked = []
        value = bytes(range(256)) * 4
        for i in range(24_000):  # ~24 MB
            p.produce("big", value, partition=0, on_delivery=lambda err, msg: acked.append(err))
            p.poll(0)
        assert p.flush(30) == 0
        assert len(acked) == 24_000 and not any(acked), "every record acknowledged without error"
        bufs = broker_side_rcvbufs(b.port)  # the producer is still connected
        del p
        return bufs


def test_by_default_the_kernel_tunes_the_receive_buffer(tmp_path):
    bufs = produce_and_measure({}, tmp_path)
    assert bufs, "no established connection seen on the broker's port"
    # A fixed SO_RCVBUF of Kafka's 102400 would read 204800 here (the kernel doubles it); autotuning grows
    # past that once 1 MB requests arrive.
    assert max(bufs) > 2 * 102400, bufs


def test_a_configured_receive_buffer_is_applied_to_client_sockets(tmp_path):
    bufs = produce_and_measure({"socket.receive.buffer.bytes": 65536}, tmp_path)
    assert bufs, "no established connection seen on the broker's port"
    assert set(bufs) == {2 * 65536}, bufs
