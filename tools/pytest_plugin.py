"""pytest plugin (entry point `pytest11`): a `kafka_broker` fixture that runs a real hpbroker.

The broker starts once per test session, only when a test asks for the fixture, on an ephemeral
loopback port with a temporary data directory, and the fixture yields its bootstrap address
("127.0.0.1:PORT") for any Kafka client. Kernels are loaded (or compiled once into numba's on-disk
cache) before the broker starts, so its workers start warm.
"""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def kafka_broker_process():
    """The running `tools.testing.BrokerProcess` behind `kafka_broker` (logs, data directory, restarts)."""
    import hotpath
    from tools.testing import BrokerProcess

    hotpath.warmup()
    broker = BrokerProcess()
    broker.start()
    try:
        yield broker
    finally:
        broker.close()


@pytest.fixture(scope="session")
def kafka_broker(kafka_broker_process) -> str:
    """Bootstrap address of a real hpbroker shared by the whole session, e.g. "127.0.0.1:40123"."""
    return kafka_broker_process.bootstrap
