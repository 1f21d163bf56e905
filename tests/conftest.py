import os
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


@pytest.fixture
def shared_dir() -> Path:
    if not (SHARED / "kafka-protocol").is_dir():
        pytest.skip("../shared/kafka-protocol is not present")
    return SHARED


@pytest.fixture
def broker(tmp_path):
    """A real broker (supervisor + workers) on an ephemeral loopback port with a temp data dir."""
    from tools.testing import BrokerProcess

    b = BrokerProcess(data_dir=str(tmp_path / "data"))
    b.start()
    yield b
    b.close()


def pytest_configure(config):
    """Compile the numba kernels once, before xdist workers start brokers: they then load the cache
    instead of each compiling for ~15 s on a fresh machine."""
    if not hasattr(config, "workerinput"):
        import hotpath

        hotpath.warmup()
