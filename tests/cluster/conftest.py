import time

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


def wait_for(check, timeout: float, what: str):
    """`check()`'s first truthy answer within `timeout` (errors count as "not yet": the cluster is moving)."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = check()
            if last:
                return last
        except Exception as e:
            last = e
        time.sleep(0.2)
    raise AssertionError(f"{what}: not within {timeout}s (last: {last!r})")


class Cluster:
    """etcd plus `n` real brokers (ids 1..n) on loopback, each with its own data directory."""

    def __init__(self, etcd, base_dir, n: int = 3, settings: dict | None = None):
        from tools.testing import BrokerProcess

        self.etcd = etcd
        common = {"etcd.connect": etcd.endpoint, "broker.session.timeout.ms": 3000,
                  "broker.heartbeat.interval.ms": 500, "replica.lag.time.max.ms": 3000,
                  "offsets.topic.num.partitions": 4, "replica.fetch.wait.max.ms": 200}
        common.update(settings or {})
        self.brokers = {i: BrokerProcess(data_dir=str(base_dir / f"b{i}"), settings={**common, "broker.id": i})
                        for i in range(1, n + 1)}

    def start(self) -> "Cluster":
        import concurrent.futures

        with concurrent.futures.ThreadPoolExecutor(len(self.brokers)) as ex:
            list(ex.map(lambda b: b.start(), self.brokers.values()))
        self.wait_until_all_see_each_other()
        return self

    def wait_until_all_see_each_other(self, timeout: float = 20.0) -> None:
        """Each broker learns of the others through etcd's watch, a moment after they registered."""
        from tools.client import Client

        def sees_all(b) -> bool:
            with Client(b.bootstrap) as c:
                return sorted(x["node_id"] for x in c.metadata()["brokers"]) == sorted(self.brokers)

        for b in self.brokers.values():
            wait_for(lambda: sees_all(b), timeout, f"broker {b.bootstrap} sees all {len(self.brokers)} brokers")

    @property
    def bootstrap(self) -> str:
        return ",".join(b.bootstrap for b in self.brokers.values() if b.proc and b.proc.poll() is None)

    def close(self) -> None:
        for b in self.brokers.values():
            try:
                b.close()
            except Exception:
                b.kill()


@pytest.fixture
def cluster3(etcd_server, tmp_path):
    c = Cluster(etcd_server, tmp_path, 3)
    try:
        c.start()
        yield c
    finally:
        c.close()
