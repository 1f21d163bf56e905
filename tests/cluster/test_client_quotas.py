"""Client quotas in a cluster: etcd holds them (one key per entity under quotas/), so a quota altered through
one broker is described by, and in the snapshot of, every other broker, and so is its removal."""

from __future__ import annotations

import json

from broker.cluster.etcd import EtcdClient
from broker.cluster.state import ClusterState
from broker.metadata import load_snapshot
from broker.quotas import entity_key
from tools.client import Client

from .conftest import Cluster, wait_for

DESCRIBE, ALTER = 48, 49
RATE = "producer_byte_rate"


def _alter(bootstrap: str, entity: list[dict], remove: bool = False) -> list[int]:
    with Client(bootstrap) as c:
        reply = c.any.request(ALTER, {"entries": [{"entity": entity, "ops": [
            {"key": RATE, "value": 1048576.0, "remove": remove}]}], "validate_only": False})
    return [e["error_code"] for e in reply["entries"]]


def _described(bootstrap: str) -> list:
    with Client(bootstrap) as c:
        reply = c.any.request(DESCRIBE, {"components": [], "strict": False})
    assert reply["error_code"] == 0
    return [([(e["entity_type"], e["entity_name"]) for e in entry["entity"]],
             [(v["key"], v["value"]) for v in entry["values"]]) for entry in reply["entries"]]


def _etcd_value(server, key: str) -> bytes | None:
    client = EtcdClient(server.endpoint)
    try:
        kv = client.get(key)
        return None if kv is None else kv.value
    finally:
        client.close()


def test_a_quota_altered_through_one_broker_is_described_by_the_other(etcd_server, tmp_path):
    c = Cluster(etcd_server, tmp_path, 2).start()
    try:
        b1, b2 = c.brokers[1], c.brokers[2]
        entity = [{"entity_type": "user", "entity_name": "alice"}, {"entity_type": "client-id", "entity_name": None}]
        assert _alter(b1.bootstrap, entity) == [0]
        expected = [([("user", "alice"), ("client-id", None)], [(RATE, 1048576.0)])]
        wait_for(lambda: _described(b2.bootstrap) == expected, 15, "broker 2 describes the quota made at broker 1")
        key = entity_key({"user": "alice", "client-id": None})
        assert load_snapshot(b2.data_dir).quotas == {key: {RATE: 1048576.0}}  # where enforcement looks
        assert json.loads(_etcd_value(etcd_server, f"/hpbroker/quotas/{key}")) == {RATE: 1048576.0}
        assert _alter(b2.bootstrap, entity, remove=True) == [0]
        wait_for(lambda: _described(b1.bootstrap) == [], 15, "broker 1 sees the removal made at broker 2")
        assert load_snapshot(b1.data_dir).quotas == {}
        assert _etcd_value(etcd_server, f"/hpbroker/quotas/{key}") is None  # no values left: no key
    finally:
        c.close()


def test_etcd_quota_keys_become_the_cluster_states_quotas():
    class KV:
        def __init__(self, key: str, value: bytes):
            self.key, self.value, self.mod_revision = key, value, 1

    key = entity_key({"client-id": "app"})
    st = ClusterState.from_kvs("/hp", [KV(f"/hp/quotas/{key}", b'{"producer_byte_rate": 4096}'),
                                       KV("/hp/quotas/" + entity_key({"user": None}), b"{}")], 1)
    assert st.quotas == {key: {"producer_byte_rate": 4096.0}}
