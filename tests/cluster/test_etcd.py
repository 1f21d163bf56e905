"""The etcd client against a real etcd: key-value, transactions, leases, election and prefix watches."""

import threading
import time

import pytest

from broker.cluster.etcd import KV, Compare, EtcdClient, EtcdError, Event, Lease, Op, campaign
from tools.etcd import _free_port


def wait_for(predicate, timeout=10.0, what="condition"):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


@pytest.fixture
def client(etcd_server):
    c = EtcdClient(etcd_server.endpoint, timeout=2.0)
    yield c
    c.close()


class Recorder:
    """Collects watch callbacks from the watch thread."""

    def __init__(self):
        self.calls: list[tuple[list[Event], int]] = []
        self.lock = threading.Lock()

    def __call__(self, events, revision):
        with self.lock:
            self.calls.append((events, revision))

    def events(self) -> list[tuple[str, str, bytes]]:
        with self.lock:
            return [(e.type, e.kv.key, e.kv.value) for events, _ in self.calls for e in events]


def test_put_get_prefix_and_delete(client):
    rev = client.put("/t/a", b"1")
    client.put("/t/c", b"3")
    client.put("/t/b", b"\x00\xff binary")
    client.put("/u", b"outside")
    kv = client.get("/t/a")
    assert kv == KV("/t/a", b"1", rev, rev, 1, 0)
    assert client.get("/t/missing") is None

    kvs, revision = client.get_prefix("/t/")
    assert [(k.key, k.value) for k in kvs] == [("/t/a", b"1"), ("/t/b", b"\x00\xff binary"), ("/t/c", b"3")]
    assert revision == rev + 3

    assert client.put("/t/a", b"2") == rev + 4
    assert (client.get("/t/a").version, client.get("/t/a").create_revision) == (2, rev)
    assert client.delete("/t/a") == 1
    assert client.delete("/t/a") == 0
    assert client.delete("/t/", prefix=True) == 2
    assert client.get_prefix("/t/")[0] == []
    assert client.get("/u").value == b"outside"


def test_txn_compare_and_swap_on_mod_revision(client):
    client.put("/state/p0", b'{"leader": 1}')
    seen = client.get("/state/p0")

    won = client.txn([Compare.mod_revision("/state/p0", "=", seen.mod_revision)],
                     [Op.put("/state/p0", b'{"leader": 2}')], [Op.get("/state/p0")])
    assert won.succeeded and won.responses == [None]
    assert client.get("/state/p0").mod_revision == won.revision

    # A second writer still holding the old revision loses and reads what is there now.
    lost = client.txn([Compare.mod_revision("/state/p0", "=", seen.mod_revision)],
                      [Op.put("/state/p0", b'{"leader": 3}')], [Op.get("/state/p0")])
    assert not lost.succeeded
    assert [kv.value for kv in lost.responses[0]] == [b'{"leader": 2}']
    assert client.get("/state/p0").value == b'{"leader": 2}'


def test_txn_value_and_create_revision_compares_and_multi_op_branches(client):
    client.put("/k/x", b"v1")
    res = client.txn([Compare.value("/k/x", "=", b"v1"), Compare.create_revision("/k/y", "=", 0)],
                     [Op.put("/k/y", b"new"), Op.delete("/k/x"), Op.get("/k/", prefix=True)])
    assert res.succeeded
    assert res.responses[:2] == [None, None]
    assert [(kv.key, kv.value) for kv in res.responses[2]] == [("/k/y", b"new")]

    res = client.txn([Compare.value("/k/y", "!=", b"new")], [Op.delete("/k/", prefix=True)])
    assert not res.succeeded and res.responses == []
    assert client.get("/k/y").value == b"new"
    with pytest.raises(ValueError):
        client.txn([Compare.mod_revision("/k/y", "<=", 1)], [])


def test_lease_revoke_removes_attached_keys(client):
    lease = client.lease_grant(30)
    client.put("/brokers/1", b"b1", lease=lease)
    assert client.get("/brokers/1").lease == lease
    assert client.lease_keepalive(lease) > 0
    client.lease_revoke(lease)
    assert client.get("/brokers/1") is None
    assert client.lease_keepalive(lease) == 0
    with pytest.raises(EtcdError) as e:
        client.put("/brokers/1", b"b1", lease=lease)
    assert "lease not found" in str(e.value)


def test_lease_expiry_removes_attached_keys(client):
    lease = client.lease_grant(1)
    client.put("/brokers/2", b"b2", lease=lease)
    wait_for(lambda: client.get("/brokers/2") is None, what="the key of an expired lease to vanish")
    assert client.lease_keepalive(lease) == 0


def test_lease_thread_keeps_the_lease_alive_then_revokes(client):
    lost = []
    lease = Lease(client, ttl_s=1, interval_s=0.2, on_lost=lambda: lost.append(True))
    client.put("/brokers/3", b"b3", lease=lease.id)
    time.sleep(2.0)  # twice the TTL: only the renewals keep the key
    assert client.get("/brokers/3") is not None
    lease.revoke()
    assert client.get("/brokers/3") is None
    assert lost == [] and not lease.lost


def test_lease_on_lost_when_revoked_elsewhere(client):
    lost = threading.Event()
    lease = Lease(client, ttl_s=5, interval_s=0.1, on_lost=lost.set)
    client.lease_revoke(lease.id)
    assert lost.wait(5), "on_lost not called after the lease was revoked"
    assert lease.lost
    lease.revoke()  # best effort: the lease is already gone


def test_lease_on_lost_once_when_etcd_is_stopped(etcd_server, client):
    calls = []
    lease = Lease(client, ttl_s=1, interval_s=0.1, on_lost=lambda: calls.append(time.monotonic()))
    etcd_server.kill()
    wait_for(lambda: calls, what="on_lost after etcd stopped")
    time.sleep(0.3)
    assert len(calls) == 1 and lease.lost
    lease.revoke()


def test_campaign_second_loses_until_first_lease_revoked(client):
    first, second = client.lease_grant(30), client.lease_grant(30)
    assert campaign(client, "/controller", b'{"id": 1}', first)
    assert not campaign(client, "/controller", b'{"id": 2}', second)
    assert campaign(client, "/controller", b'{"id": 1}', first)  # already ours
    assert client.get("/controller").value == b'{"id": 1}'

    client.lease_revoke(first)
    assert campaign(client, "/controller", b'{"id": 2}', second)
    holder = client.get("/controller")
    assert (holder.value, holder.lease) == (b'{"id": 2}', second)


def test_watch_prefix_delivers_puts_and_deletes_in_order(client):
    client.put("/w/before", b"0")
    _, revision = client.get_prefix("/w/")
    rec = Recorder()
    watch = client.watch_prefix("/w/", revision + 1, rec)
    try:
        client.put("/w/a", b"1")
        client.put("/other", b"ignored")
        client.put("/w/a", b"2")
        client.put("/w/b", b"3")
        client.delete("/w/a")
        last = client.delete("/w/", prefix=True)
        assert last == 2
        want = [("PUT", "/w/a", b"1"), ("PUT", "/w/a", b"2"), ("PUT", "/w/b", b"3"), ("DELETE", "/w/a", b""),
                ("DELETE", "/w/b", b""), ("DELETE", "/w/before", b"")]
        wait_for(lambda: len(rec.events()) >= len(want), what="watch events")
        assert rec.events() == want
        revs = [r for _, r in rec.calls]
        assert revs == sorted(revs) and revs[-1] == client.get_prefix("/w/")[1]
        assert [e.kv.mod_revision for events, r in rec.calls for e in events if e.type == "DELETE"][-1] == revs[-1]
    finally:
        watch.cancel()
    client.put("/w/after", b"x")
    time.sleep(0.2)
    assert ("PUT", "/w/after", b"x") not in rec.events()


def test_watch_replays_history_from_a_past_revision(client):
    first = client.put("/h/a", b"1")
    client.put("/h/a", b"2")
    rec = Recorder()
    watch = client.watch_prefix("/h/", first, rec)
    try:
        wait_for(lambda: len(rec.events()) >= 2, what="replayed events")
        assert rec.events() == [("PUT", "/h/a", b"1"), ("PUT", "/h/a", b"2")]
    finally:
        watch.cancel()


def test_watch_resumes_after_etcd_restart(etcd_server, client):
    rec = Recorder()
    # From a known revision, not "from now": the first put may land before the stream is open.
    watch = client.watch_prefix("/r/", client.put("/r-start", b"") + 1, rec)
    try:
        client.put("/r/a", b"1")
        wait_for(lambda: len(rec.events()) == 1, what="the first event")
        etcd_server.kill()
        etcd_server.start()
        # Written before the watch has reconnected: resuming from the last seen revision still delivers them.
        client.put("/r/b", b"2")
        client.delete("/r/a")
        wait_for(lambda: len(rec.events()) >= 3, what="events after the restart")
        assert rec.events() == [("PUT", "/r/a", b"1"), ("PUT", "/r/b", b"2"), ("DELETE", "/r/a", b"")]
    finally:
        watch.cancel()


def test_watch_from_a_compacted_revision_asks_for_a_reload(client):
    first = client.put("/c/a", b"1")
    rev = client.put("/c/a", b"2")
    client.call("/v3/kv/compaction", {"revision": str(rev), "physical": True})
    rec = Recorder()
    watch = client.watch_prefix("/c/", first, rec)
    try:
        wait_for(lambda: rec.calls, what="the compaction callback")
        assert rec.calls[0] == ([], -1)
        client.put("/c/a", b"3")
        wait_for(lambda: len(rec.events()) >= 2, what="events after the reload")
        # The watch goes on from the oldest revision kept: the compaction point is delivered again.
        assert rec.events() == [("PUT", "/c/a", b"2"), ("PUT", "/c/a", b"3")]
        assert rec.calls[-1][1] == rev + 1
    finally:
        watch.cancel()


def test_endpoints_are_tried_in_turn(etcd_server):
    dead = f"127.0.0.1:{_free_port()}"
    c = EtcdClient(f"{dead},{etcd_server.endpoint}", timeout=2.0)
    try:
        c.put("/e", b"1")
        assert c.get("/e").value == b"1"
    finally:
        c.close()
    c = EtcdClient([dead], timeout=2.0)
    with pytest.raises(EtcdError) as e:
        c.get("/e")
    assert e.value.code == -1 and "unreachable" in str(e.value)
