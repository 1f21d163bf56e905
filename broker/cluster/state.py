"""The cluster's state as etcd holds it, and the controller's decisions over it.

Everything here is pure: `ClusterState.from_kvs` reads one consistent range of the prefix, and the
functions below say what should change (replica placement, leader elections after a broker left or to
bring leadership back to the preferred replica). The
node (`broker.cluster.node`) applies those changes with compare-and-swap transactions, so two controllers
acting on stale views can never both win.

Keys under the prefix (values are JSON):
  cluster_id                 the cluster's id, created once
  brokers/<id>               {"id", "host", "port", "rack", "incarnation", "endpoints"}  attached to the
                             broker's lease; host and port: its first listener
  controller                 {"id"}                                         attached to the controller's lease
  topics/<name>              {"id": hex, "configs": {}, "replicas": [[broker ids] per partition]}
  state/<name>/<partition>   {"leader": id | -1, "leader_epoch": n, "isr": [ids]}, plus "adding" and
                             "removing" [ids] while the partition is reassigned (KIP-455; the topic's
                             replica list then holds target + removing, and both keys change together)
  acls/<digest>              [resource_type, resource_name, pattern_type, principal, host, operation,
                             permission]; the key is a digest of the value, so a binding is stored once
  scram/<user>               {mechanism: [salt, iterations, stored key, server key]} (base64)
  configs/broker-default     {key: value}: the cluster-wide dynamic broker defaults
  configs/broker-<id>        {key: value}: one broker's own dynamic configs, over the defaults
  quotas/<entity>            {quota key: value}: one client quota entity's values; <entity> is
                             broker.quotas.entity_key, e.g. {"client-id":null,"user":"alice"}
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace

from broker.security.acl import AclBinding


@dataclass(frozen=True)
class BrokerRecord:
    id: int
    host: str
    port: int
    rack: str | None
    incarnation: str
    endpoints: tuple[tuple[str, str, int], ...] = ()  # (listener, host, port) of every listener


@dataclass(frozen=True)
class TopicRecord:
    name: str
    id: str  # 32 hex digits
    configs: dict
    replicas: tuple[tuple[int, ...], ...]
    mod_revision: int = 0


@dataclass(frozen=True)
class PartState:
    leader: int
    leader_epoch: int
    isr: tuple[int, ...]
    mod_revision: int = 0
    adding: tuple[int, ...] = ()  # a reassignment's replicas not yet in the original list
    removing: tuple[int, ...] = ()  # ... and the original ones the target drops

    @property
    def reassigning(self) -> bool:
        return bool(self.adding or self.removing)

    def to_json(self) -> bytes:
        doc = {"leader": self.leader, "leader_epoch": self.leader_epoch, "isr": list(self.isr)}
        if self.reassigning:
            doc["adding"], doc["removing"] = list(self.adding), list(self.removing)
        return json.dumps(doc).encode()


@dataclass
class ClusterState:
    revision: int = 0
    cluster_id: str | None = None
    controller_id: int = -1
    brokers: dict[int, BrokerRecord] = field(default_factory=dict)
    topics: dict[str, TopicRecord] = field(default_factory=dict)
    states: dict[tuple[str, int], PartState] = field(default_factory=dict)
    acls: set[AclBinding] = field(default_factory=set)
    scram: dict[str, dict] = field(default_factory=dict)
    broker_configs: dict = field(default_factory=dict)
    quotas: dict[str, dict] = field(default_factory=dict)

    @classmethod
    def from_kvs(cls, prefix: str, kvs, revision: int) -> "ClusterState":
        st = cls(revision=revision)
        base = prefix.rstrip("/") + "/"
        for kv in kvs:
            if not kv.key.startswith(base):
                continue
            rel = kv.key[len(base):]
            try:
                doc = json.loads(kv.value) if kv.value else None
            except ValueError:
                continue
            if rel == "cluster_id":
                st.cluster_id = doc if isinstance(doc, str) else str(doc)
            elif rel == "controller":
                st.controller_id = int(doc["id"])
            elif rel.startswith("brokers/"):
                st.brokers[int(doc["id"])] = BrokerRecord(
                    int(doc["id"]), doc["host"], int(doc["port"]), doc.get("rack"), str(doc.get("incarnation", "")),
                    tuple((str(n), str(h), int(p)) for n, h, p in doc.get("endpoints") or ()))
            elif rel.startswith("topics/"):
                name = rel[len("topics/"):]
                st.topics[name] = TopicRecord(name, doc["id"], dict(doc.get("configs") or {}),
                                              tuple(tuple(r) for r in doc["replicas"]), kv.mod_revision)
            elif rel.startswith("state/"):
                name, _, part = rel[len("state/"):].rpartition("/")
                st.states[(name, int(part))] = PartState(int(doc["leader"]), int(doc["leader_epoch"]),
                                                         tuple(doc["isr"]), kv.mod_revision,
                                                         tuple(doc.get("adding") or ()),
                                                         tuple(doc.get("removing") or ()))
            elif rel.startswith("acls/"):
                st.acls.add(AclBinding(*doc))
            elif rel.startswith("configs/broker-") and isinstance(doc, dict):
                scope = rel[len("configs/broker-"):]
                st.broker_configs["" if scope == "default" else scope] = doc
            elif rel.startswith("scram/") and doc:
                st.scram[rel[len("scram/"):]] = dict(doc)
            elif rel.startswith("quotas/") and isinstance(doc, dict) and doc:
                st.quotas[rel[len("quotas/"):]] = {k: float(v) for k, v in doc.items()}
        return st

    def partition_state(self, topic: str, partition: int) -> PartState | None:
        return self.states.get((topic, partition))


def acl_entry(binding: AclBinding) -> tuple[str, bytes]:
    """(key under acls/, value) of a binding."""
    value = json.dumps(list(binding), separators=(",", ":")).encode()
    return hashlib.sha256(value).hexdigest()[:32], value


def topic_value(record: TopicRecord) -> bytes:
    return json.dumps({"id": record.id, "configs": record.configs,
                       "replicas": [list(r) for r in record.replicas]}).encode()


def assign_replicas(partitions: int, replication_factor: int, brokers: list[int], start: int = 0,
                    first_partition: int = 0) -> list[tuple[int, ...]]:
    """Kafka's rack-unaware placement: leaders round-robin over the brokers, followers shifted after them,
    so leadership and replicas spread evenly. Raises ValueError when there are fewer brokers than replicas."""
    ids = sorted(brokers)
    n = len(ids)
    if replication_factor > n:
        raise ValueError(f"Replication factor: {replication_factor} larger than available brokers: {n}.")
    out = []
    for p in range(first_partition, first_partition + partitions):
        first = (start + p) % n
        shift = 1 + (start + p) // n % max(1, n - 1) if n > 1 else 0
        replicas = [ids[first]]
        for j in range(replication_factor - 1):
            replicas.append(ids[(first + shift + j) % n] if n > 1 else ids[first])
        seen: list[int] = []
        for r in replicas:  # a shift that wraps onto the leader takes the next free broker instead
            while r in seen:
                r = ids[(ids.index(r) + 1) % n]
            seen.append(r)
        out.append(tuple(seen))
    return out


def elect(replicas: tuple[int, ...], current: PartState, live: set[int], gone: set[int],
          unclean: bool) -> PartState | None:
    """The new state of one partition after brokers left (`gone`: left or restarted, so not trusted to still
    lead), or None when nothing changes.

    ISR members that are not live leave the ISR, except that the last member stays (Kafka keeps it so that,
    with unclean election off, the partition waits for it rather than lose acknowledged records). The new
    leader is the first replica (in assignment order) that is in the ISR and live; none -> leader -1
    (offline). With unclean election on, any live replica may lead an offline partition.
    """
    isr = tuple(b for b in current.isr if b in live and b not in gone)
    if current.leader in isr:
        leader = current.leader
    else:
        candidates = [r for r in replicas if r in isr]
        alive = [r for r in replicas if r in live and r not in gone]
        leader = candidates[0] if candidates else alive[0] if unclean and alive else -1
        if leader >= 0 and leader not in isr:
            isr = (leader,)  # unclean: the new leader's log is the truth now
    if leader < 0:  # offline: remember the last member so that it, and only it, may lead again
        last = current.leader if current.leader in current.isr else (current.isr[-1] if current.isr else -1)
        isr = (last,) if last >= 0 else ()
    if leader == current.leader and isr == current.isr:
        return None
    epoch = current.leader_epoch + 1 if leader != current.leader else current.leader_epoch
    return replace(current, leader=leader, leader_epoch=epoch, isr=isr)


def revive(replicas: tuple[int, ...], current: PartState, live: set[int]) -> PartState | None:
    """An offline partition (leader -1) whose remaining ISR member is back gets it as leader."""
    if current.leader >= 0:
        return None
    for r in replicas:
        if r in current.isr and r in live:
            return replace(current, leader=r, leader_epoch=current.leader_epoch + 1)
    return None


def prefer(replicas: tuple[int, ...], current: PartState, eligible: set[int]) -> PartState | None:
    """Leadership back to the preferred replica (the first assigned) when another leads, or none does, and
    it is in the ISR and `eligible` (live, and not restarted since the controller last looked): Kafka's
    preferred leader election, run on request (ElectLeaders) and every leader.imbalance.check.interval.seconds
    (auto.leader.rebalance.enable). None when it does not apply."""
    if not replicas:
        return None
    first = replicas[0]
    if current.leader == first or first not in current.isr or first not in eligible:
        return None
    return replace(current, leader=first, leader_epoch=current.leader_epoch + 1)


def elect_unclean(replicas: tuple[int, ...], current: PartState, eligible: set[int]) -> PartState | None:
    """A leader for an offline partition, asked for by an unclean ElectLeaders: an ISR member if one is
    back, else the first eligible replica, whose log becomes the truth (acknowledged records may be lost).
    None when it leads already or no replica is eligible."""
    if current.leader >= 0:
        return None
    back = revive(replicas, current, eligible)
    if back is not None:
        return back
    for r in replicas:
        if r in eligible:
            return replace(current, leader=r, leader_epoch=current.leader_epoch + 1, isr=(r,))
    return None


# -- reassignment (KIP-455), as Kafka's controller does it (PartitionReassignmentReplicas, ...Revert) ---------

def original_replicas(replicas: tuple[int, ...], current: PartState) -> tuple[int, ...]:
    """The replica list before the running reassignment (the list itself when none runs)."""
    return tuple(r for r in replicas if r not in current.adding)


def _lead_within(replicas: tuple[int, ...], current: PartState, isr: tuple[int, ...]) -> tuple[int, int] | None:
    """(leader, epoch) once the replica list shrinks to `replicas`: the leader stays if it is still a replica,
    else the first replica in `isr` takes over under a new epoch; None when none is in sync."""
    if current.leader < 0 or current.leader in replicas:
        return current.leader, current.leader_epoch
    for r in replicas:
        if r in isr:
            return r, current.leader_epoch + 1
    return None


def reassign(replicas: tuple[int, ...], current: PartState,
             target: tuple[int, ...]) -> tuple[tuple[int, ...], PartState] | None:
    """The partition's (replicas, state) once a reassignment to `target` starts; a running one is replaced
    (measured from the original replicas). Replicas are target + removing, adding = target - original,
    removing = original - target (both sorted, as Kafka keeps them). Completes at once when the ISR already
    holds the whole target (a reorder, or a lower replication factor). None when no in-sync replica would
    remain (only an unclean election could lead it)."""
    original = original_replicas(replicas, current)
    removing = tuple(sorted(set(original) - set(target)))
    adding = tuple(sorted(set(target) - set(original)))
    merged = tuple(target) + removing
    isr = tuple(b for b in current.isr if b in merged)
    lead = _lead_within(merged, current, isr)
    if lead is None or (current.leader >= 0 and not isr):
        return None
    new = replace(current, leader=lead[0], leader_epoch=lead[1], isr=isr, adding=adding, removing=removing)
    return complete_reassignment(merged, new) or (merged, new)


def complete_reassignment(replicas: tuple[int, ...],
                          current: PartState) -> tuple[tuple[int, ...], PartState] | None:
    """Once every target replica is in the ISR: replicas = target, ISR = ISR minus the removed ones, and a
    leader that is not in the target hands over to the first target replica (in target order) under a new
    epoch. None while the adding replicas catch up (or the partition is offline)."""
    if not current.reassigning or current.leader < 0:
        return None
    target = tuple(r for r in replicas if r not in current.removing)
    isr = tuple(b for b in current.isr if b not in current.removing)
    if not target or not isr or not set(target) <= set(isr):
        return None
    leader, epoch = _lead_within(target, current, isr)
    return target, replace(current, leader=leader, leader_epoch=epoch, isr=isr, adding=(), removing=())


def revert_reassignment(replicas: tuple[int, ...],
                        current: PartState) -> tuple[tuple[int, ...], PartState] | None:
    """A cancelled reassignment: back to the original replicas, the adding ones out of the ISR (and out of
    the lead, under a new epoch). None when no original replica is in sync (Kafka then needs an unclean
    election and refuses)."""
    original = original_replicas(replicas, current)
    isr = tuple(b for b in current.isr if b not in current.adding)
    lead = _lead_within(original, current, isr)
    if not isr or lead is None:
        return None
    return original, replace(current, leader=lead[0], leader_epoch=lead[1], isr=isr, adding=(), removing=())
