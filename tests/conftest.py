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
    """Load (or, on a fresh machine, compile once, ~15 s) every numba kernel before tests run: kernels only
    run their declared signatures after warmup, as in the broker's workers. The controller runs first, so
    xdist workers and the brokers tests start find a warm on-disk cache."""
    import hotpath

    hotpath.warmup()
