"""The cluster metadata every process reads: brokers, topics, partitions and who owns each partition.

One process (the controller: the supervisor on a single node) changes metadata; it writes an immutable
snapshot with a bumped version and atomic replace. Workers reload a snapshot only when its version moved,
so a Metadata request costs a dictionary lookup, not a disk read.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field

SNAPSHOT_FILE = "__cluster_metadata.json"


@dataclass(frozen=True)
class BrokerInfo:
    node_id: int
    host: str
    port: int
    rack: str | None = None
    endpoints: tuple[tuple[str, str, int], ...] = ()  # (listener, host, port); host/port is the first

    def address(self, listener: str | None) -> tuple[str, int] | None:
        """Where a client that came in through `listener` reaches this broker: the same listener's
        advertised address, as Kafka answers, or None when the broker has no such listener."""
        if listener is None or not self.endpoints:
            return self.host, self.port
        for name, host, port in self.endpoints:
            if name == listener:
                return host, port
        return None

    def to_json(self) -> list:
        return [self.node_id, self.host, self.port, self.rack, [list(e) for e in self.endpoints]]

    @classmethod
    def from_json(cls, b: list) -> "BrokerInfo":
        return cls(b[0], b[1], b[2], b[3], tuple((e[0], e[1], e[2]) for e in (b[4] if len(b) > 4 else ())))


@dataclass(frozen=True)
class PartitionInfo:
    partition: int
    leader: int
    replicas: tuple[int, ...]
    isr: tuple[int, ...]
    leader_epoch: int = 0
    owner: int = 0  # index of the I/O worker that owns (writes) this partition
    slot: int = -1  # slot in the shared partition-state table
    adding: tuple[int, ...] = ()  # a running reassignment's new replicas (KIP-455), still catching up
    removing: tuple[int, ...] = ()  # ... and the replicas it drops once they have


@dataclass(frozen=True)
class TopicInfo:
    name: str
    topic_id: bytes  # 16 bytes
    partitions: tuple[PartitionInfo, ...]
    configs: dict = field(default_factory=dict)
    internal: bool = False


@dataclass(frozen=True)
class ClusterMetadata:
    version: int
    cluster_id: str
    controller_id: int
    brokers: tuple[BrokerInfo, ...]
    topics: dict[str, TopicInfo]
    acls: tuple = ()  # broker.security.acl.AclBinding, sorted: the access control lists in force
    # SCRAM credentials made with AlterUserScramCredentials: {user: {mechanism: [salt, iterations, stored key,
    # server key]}} (base64), never passwords
    scram: dict = field(default_factory=dict)
    # Dynamic broker configs (broker.config.DYNAMIC_LOG_KEYS), typed, by scope: "" the cluster-wide default,
    # str(broker id) that broker's own: {scope: {key: value}}
    broker_configs: dict = field(default_factory=dict)
    # Client quotas made with AlterClientQuotas: {broker.quotas.entity_key(entity): {quota key: value}}
    quotas: dict = field(default_factory=dict)

    def topic(self, name: str) -> TopicInfo | None:
        return self.topics.get(name)

    def brokers_on(self, listener: str | None) -> list[tuple[BrokerInfo, str, int]]:
        """(broker, host, port) of every broker a client that came in through `listener` can reach there:
        Kafka answers each listener's clients with that listener's addresses, leaving out brokers without it."""
        out = []
        for b in self.brokers:
            address = b.address(listener)
            if address is not None:
                out.append((b, *address))
        return out

    # -- persistence ------------------------------------------------------------------------------------

    def to_json(self) -> dict:
        return {
            "version": self.version,
            "cluster_id": self.cluster_id,
            "controller_id": self.controller_id,
            "brokers": [b.to_json() for b in self.brokers],
            "topics": {
                t.name: {
                    "id": t.topic_id.hex(),
                    "internal": t.internal,
                    "configs": t.configs,
                    "partitions": [[p.partition, p.leader, list(p.replicas), list(p.isr), p.leader_epoch,
                                    p.owner, p.slot, *([list(p.adding), list(p.removing)]
                                                       if p.adding or p.removing else [])]
                                   for p in t.partitions],
                }
                for t in self.topics.values()
            },
            "acls": [list(b) for b in self.acls],
            "scram": self.scram,
            "broker_configs": self.broker_configs,
            "quotas": self.quotas,
        }

    @classmethod
    def from_json(cls, obj: dict) -> "ClusterMetadata":
        topics = {}
        for name, t in obj["topics"].items():
            parts = tuple(PartitionInfo(p[0], p[1], tuple(p[2]), tuple(p[3]), p[4], p[5], p[6],
                                        *((tuple(p[7]), tuple(p[8])) if len(p) > 8 else ()))
                          for p in t["partitions"])
            topics[name] = TopicInfo(name, bytes.fromhex(t["id"]), parts, dict(t["configs"]), t["internal"])
        from broker.security.acl import AclBinding

        return cls(obj["version"], obj["cluster_id"], obj["controller_id"],
                   tuple(BrokerInfo.from_json(b) for b in obj["brokers"]), topics,
                   tuple(AclBinding(*b) for b in obj.get("acls", ())), dict(obj.get("scram", {})),
                   dict(obj.get("broker_configs", {})), dict(obj.get("quotas", {})))

    def save(self, directory: str) -> None:
        path = os.path.join(directory, SNAPSHOT_FILE)
        tmp = path + ".tmp"
        # owner-only: it carries SCRAM credentials (salted keys an attacker could guess passwords against)
        with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w", encoding="utf-8") as f:
            json.dump(self.to_json(), f, separators=(",", ":"))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)


def load_snapshot(directory: str) -> ClusterMetadata | None:
    try:
        with open(os.path.join(directory, SNAPSHOT_FILE), encoding="utf-8") as f:
            return ClusterMetadata.from_json(json.load(f))
    except FileNotFoundError:
        return None


class MetadataView:
    """A worker's cached view of the snapshot.

    `current()` trusts its copy for `max_age` seconds before looking at the file again (a stat per Produce
    request is measurable); callers that must see a change they just caused, or that missed a topic, ask
    with `max_age=0`.
    """

    def __init__(self, directory: str, initial: ClusterMetadata | None = None):
        self.directory = directory
        self._path = os.path.join(directory, SNAPSHOT_FILE)
        self._stamp: tuple[int, int] | None = None
        self._md = initial
        self._checked = 0.0

    def peek(self) -> ClusterMetadata | None:
        """The snapshot last read, without looking at the file: for checks made on every request, which must
        cost no I/O (a worker out of descriptors still answers ApiVersions). Handlers that need metadata call
        `current`, and that keeps this copy fresh."""
        return self._md

    def current(self, max_age: float = 0.05) -> ClusterMetadata:
        now = time.monotonic()
        if self._md is not None and now - self._checked < max_age:
            return self._md
        self._checked = now
        try:
            st = os.stat(self._path)
            stamp = (st.st_mtime_ns, st.st_ino)
        except FileNotFoundError:
            stamp = None
        if stamp != self._stamp or self._md is None:
            md = load_snapshot(self.directory)
            if md is not None:
                self._md = md
            self._stamp = stamp
        assert self._md is not None, "metadata snapshot missing"
        return self._md
