import pytest

from tools.etcd import EtcdServer, etcd_available


@pytest.fixture
def etcd_server(tmp_path):
    """A real single-member etcd on ephemeral loopback ports, one per test (it starts in ~0.1 s)."""
    if not etcd_available():
        pytest.skip("etcd is not installed (apt-get install etcd-server): cluster tests need a real etcd")
    server = EtcdServer(str(tmp_path / "etcd")).start()
    yield server
    server.stop()
