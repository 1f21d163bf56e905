import pytest

import hotpath


@pytest.fixture(scope="session", autouse=True)
def _warm_kernels():
    """Compile every kernel once per test process, as a worker does at start."""
    hotpath.warmup()
