"""This broker as a member of an etcd-coordinated cluster: registration, controller duties, topic changes.

It runs in the supervisor, whose loop calls it; etcd does the consensus. Every change is a
compare-and-swap transaction on the key's mod_revision, so a stale controller or a fenced leader loses
the race instead of overwriting newer state. The node never trusts its cached view for a write: it reads
the prefix (one range request), decides (`broker.cluster.state`), and writes with the revisions it read.
The watch only says "something moved"; the supervisor then reloads (also after every change made here).
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
import zlib

from broker.cluster.etcd import Compare, EtcdClient, EtcdError, Lease, Op, campaign
from broker.cluster.state import (ClusterState, PartState, TopicRecord, acl_entry, assign_replicas,
                                  complete_reassignment, elect, elect_unclean, original_replicas, prefer,
                                  reassign, revert_reassignment, revive, topic_value)
from broker.logfmt import Log
from broker.metadata import BrokerInfo
from netio.codec import ErrorCode

log = Log("hpbroker.cluster")

MAX_TXN_OPS = 100  # etcd refuses more than 128 operations in one transaction by default


class ClusterNode:
    def __init__(self, config, broker: BrokerInfo):
        self.config = config
        self.broker = broker
        self.prefix = config["etcd.prefix"].rstrip("/")
        self.client = EtcdClient(config["etcd.connect"], timeout=5.0)
        self.ttl_s = max(2, round(config["broker.session.timeout.ms"] / 1000))
        self.interval_s = config["broker.heartbeat.interval.ms"] / 1000
        self.incarnation = uuid.uuid4().hex
        self.lease: Lease | None = None
        self.lease_lost = threading.Event()
        self.watch = None
        self.state = ClusterState()
        self.known: dict[int, str] = {}  # broker id -> incarnation, as the controller last saw them
        self.next_balance = 0.0  # monotonic time of the next preferred-leader pass (controller)
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)

    # -- keys -----------------------------------------------------------------------------------------------

    def key(self, *parts) -> str:
        return "/".join((self.prefix, *map(str, parts)))

    @property
    def node_id(self) -> int:
        return self.broker.node_id

    @property
    def is_controller(self) -> bool:
        return self.state.controller_id == self.node_id

    # -- lifecycle ------------------------------------------------------------------------------------------

    def start(self) -> ClusterState:
        self.client.txn([Compare.create_revision(self.key("cluster_id"), "=", 0)],
                        [Op.put(self.key("cluster_id"), json.dumps(uuid.uuid4().hex[:22]).encode())])
        self._register()
        state = self.reload()
        self.watch = self.client.watch_prefix(self.prefix + "/", state.revision + 1, self._on_events)
        return state

    def _register(self) -> None:
        if self.lease is not None:
            self.lease.revoke()
        self.lease_lost.clear()
        self.lease = Lease(self.client, self.ttl_s, self.interval_s, on_lost=self._on_lease_lost)
        b = self.broker
        self.client.put(self.key("brokers", b.node_id), json.dumps(
            {"id": b.node_id, "host": b.host, "port": b.port, "rack": b.rack,
             "incarnation": self.incarnation, "endpoints": [list(e) for e in b.endpoints]}).encode(),
            lease=self.lease.id)
        log.info("registered in etcd", broker=b.node_id, lease=self.lease.id, ttl_s=self.ttl_s)

    def _on_lease_lost(self) -> None:
        log.warning("etcd lease lost", broker=self.node_id)
        self.lease_lost.set()
        self._wake()

    def _on_events(self, events, revision) -> None:
        self._wake()

    def _wake(self) -> None:
        try:
            os.write(self._wake_w, b"w")
        except BlockingIOError:
            pass

    def fileno(self) -> int:
        return self._wake_r

    def drain(self) -> None:
        try:
            while os.read(self._wake_r, 4096):
                pass
        except BlockingIOError:
            pass

    def stop(self) -> None:
        """Leave at once (the lease and with it our registration and any controllership go now, so the
        cluster moves leadership without waiting for the session timeout)."""
        if self.watch is not None:
            self.watch.cancel()
        if self.lease is not None:
            try:
                self.lease.revoke()
            except Exception as e:
                log.warning("lease revoke failed", error=repr(e))
        self.client.close()
        for fd in (self._wake_r, self._wake_w):
            try:
                os.close(fd)
            except OSError:
                pass

    # -- reading --------------------------------------------------------------------------------------------

    def reload(self) -> ClusterState:
        kvs, revision = self.client.get_prefix(self.prefix + "/")
        self.state = ClusterState.from_kvs(self.prefix, kvs, revision)
        return self.state

    # -- duties (called by the supervisor after each reload and once a second) -------------------------------

    def maintain(self) -> bool:
        """Keep registered, hold or contend for the controller, and as controller repair leadership.
        Returns True when it wrote something (the caller reloads)."""
        wrote = False
        if self.lease_lost.is_set() or self.node_id not in self.state.brokers or \
                self.state.brokers[self.node_id].incarnation != self.incarnation:
            self.incarnation = uuid.uuid4().hex  # a new incarnation: the controller must not trust old leadership
            self._register()
            wrote = True
        if self.state.controller_id < 0 and self.lease is not None:
            if campaign(self.client, self.key("controller"), json.dumps({"id": self.node_id}).encode(),
                        self.lease.id):
                log.info("elected controller", broker=self.node_id)
                self.known = {}
                self.next_balance = time.monotonic() + self._balance_interval()
                wrote = True
        if self.is_controller and not wrote:
            wrote = self._reconcile()
        return wrote

    def _gone(self) -> set[int]:
        """Brokers that left or restarted since the controller last looked: not trusted to lead or to be in
        sync until a pass of `_reconcile` has taken them out of the ISRs."""
        st = self.state
        gone = {b for b, inc in self.known.items() if b in st.brokers and st.brokers[b].incarnation != inc}
        return gone | {b for b in self.known if b not in st.brokers}

    def _settled(self) -> set[int]:
        """Live brokers in the incarnation the controller last saw: ones a pass of `_reconcile` has already
        dealt with, so their ISR memberships are current. Only these may take leadership by election."""
        return {b for b, r in self.state.brokers.items() if self.known.get(b) == r.incarnation}

    def _reconcile(self) -> bool:
        st = self.state
        live = set(st.brokers)
        gone = self._gone()
        ops = []
        unclean = self.config["unclean.leader.election.enable"]
        for name, rec in st.topics.items():
            for p, replicas in enumerate(rec.replicas):
                cur = st.states.get((name, p))
                if cur is None:
                    continue
                new = elect(replicas, cur, live, gone, unclean) if (
                    cur.leader >= 0 and (cur.leader not in live or cur.leader in gone
                                         or any(b not in live or b in gone for b in cur.isr))) else None
                if new is None:
                    new = revive(replicas, cur, live - gone)
                if new is not None:
                    ops.append((name, p, cur, new))
        wrote = False
        for name, p, cur, new in ops:
            if self._swap_state(name, p, cur, new):
                wrote = True
        self.known = {b: r.incarnation for b, r in st.brokers.items()}
        if not wrote and not gone:
            wrote = self._complete_reassignments()
        wrote |= self._ensure_offsets_topic()
        if not wrote and not gone and self.config["auto.leader.rebalance.enable"] \
                and time.monotonic() >= self.next_balance:
            self.next_balance = time.monotonic() + self._balance_interval()
            wrote = self._balance_leaders()
        return wrote

    def _balance_interval(self) -> float:
        return float(self.config["leader.imbalance.check.interval.seconds"])

    def _balance_leaders(self) -> bool:
        """Every partition led by another than its preferred replica, whose preferred replica is live and in
        sync, goes back to it (what Kafka's controller does every leader.imbalance.check.interval.seconds)."""
        st = self.state
        eligible = self._settled()
        wrote = False
        for name, rec in st.topics.items():
            for p, replicas in enumerate(rec.replicas):
                cur = st.states.get((name, p))
                new = prefer(replicas, cur, eligible) if cur is not None and cur.leader >= 0 else None
                if new is not None and self._swap_state(name, p, cur, new):
                    wrote = True
        return wrote

    def _swap_state(self, topic: str, partition: int, cur: PartState, new: PartState) -> bool:
        """Write one partition's new leadership if nobody changed it since `cur` was read."""
        key = self.key("state", topic, partition)
        res = self.client.txn([Compare.mod_revision(key, "=", cur.mod_revision)], [Op.put(key, new.to_json())])
        if res.succeeded:
            log.info("partition leadership changed", topic=topic, partition=partition, leader=new.leader,
                     leader_epoch=new.leader_epoch, isr=list(new.isr))
        return res.succeeded

    # -- reassignment (KIP-455) ------------------------------------------------------------------------------

    def _complete_reassignments(self) -> bool:
        """Finish every reassignment whose target replicas are all in sync (the controller, each pass). A new
        leader must be settled (not restarted since the last look), as for any election."""
        st = self.state
        eligible = self._settled()
        wrote = False
        for name, rec in st.topics.items():
            for p, replicas in enumerate(rec.replicas):
                cur = st.states.get((name, p))
                done = complete_reassignment(replicas, cur) if cur is not None and cur.reassigning else None
                if done is None or (done[1].leader != cur.leader and done[1].leader not in eligible):
                    continue
                if self._swap_assignment(rec, p, cur, *done):
                    log.info("partition reassignment completed", topic=name, partition=p, replicas=list(done[0]),
                             leader=done[1].leader, leader_epoch=done[1].leader_epoch, isr=list(done[1].isr))
                    wrote = True
                    rec = self.state.topics[name]
        return wrote

    def _swap_assignment(self, rec: TopicRecord, p: int, cur: PartState, replicas: tuple[int, ...],
                         new: PartState) -> bool:
        """One partition's replica list (in the topic's key) and state together, if neither changed since read."""
        tkey, skey = self.key("topics", rec.name), self.key("state", rec.name, p)
        changed = TopicRecord(rec.name, rec.id, rec.configs,
                              rec.replicas[:p] + (tuple(replicas),) + rec.replicas[p + 1:])
        res = self.client.txn([Compare.mod_revision(tkey, "=", rec.mod_revision),
                               Compare.mod_revision(skey, "=", cur.mod_revision)],
                              [Op.put(tkey, topic_value(changed)), Op.put(skey, new.to_json())])
        if res.succeeded:  # later changes in this pass compare against what was just written
            self.state.topics[rec.name] = TopicRecord(rec.name, rec.id, rec.configs, changed.replicas, res.revision)
            self.state.states[(rec.name, p)] = PartState(new.leader, new.leader_epoch, new.isr, res.revision,
                                                         new.adding, new.removing)
        return res.succeeded

    def alter_reassignment(self, name: str, p: int, target: list[int] | None) -> tuple[ErrorCode, str | None]:
        """AlterPartitionReassignments for one partition, checked as Kafka's controller does: start (or replace)
        a move to `target`, or cancel the running one (`target` None). Compare-and-swap, retried on a race."""
        for _ in range(5):
            st = self.reload()
            rec = st.topics.get(name)
            cur = st.states.get((name, p)) if rec is not None and 0 <= p < len(rec.replicas) else None
            if cur is None:
                return ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, f"Unable to find partition {name}:{p}."
            replicas = rec.replicas[p]
            if target is None:
                if not cur.reassigning:
                    return ErrorCode.NO_REASSIGNMENT_IN_PROGRESS, "No partition reassignment is in progress."
                change = revert_reassignment(replicas, cur)
                if change is None:
                    return ErrorCode.INVALID_REPLICA_ASSIGNMENT, (f"Unable to revert partition assignment for "
                                                                  f"{name}:{p} because it would require an "
                                                                  f"unclean leader election.")
            else:
                problem = assignment_problem(target, st.brokers)
                if problem:
                    return ErrorCode.INVALID_REPLICA_ASSIGNMENT, problem
                change = reassign(replicas, cur, tuple(target))
                if change is None:
                    return ErrorCode.INVALID_REPLICA_ASSIGNMENT, (f"Reassigning {name}:{p} to {target} leaves no "
                                                                  f"in-sync replica.")
            if change == (replicas, cur):
                return ErrorCode.NONE, None
            if self._swap_assignment(rec, p, cur, *change):
                new_replicas, new = change
                log.info("partition reassignment " + ("cancelled" if target is None else
                                                      "started" if new.reassigning else "completed"),
                         topic=name, partition=p, replicas=list(new_replicas), adding=list(new.adding),
                         removing=list(new.removing), leader=new.leader, leader_epoch=new.leader_epoch)
                return ErrorCode.NONE, None
        return ErrorCode.UNKNOWN_SERVER_ERROR, "The partition kept changing; retry."

    # -- ElectLeaders (the controller only: it knows which brokers restarted) ------------------------------

    def elect_leaders(self, unclean: bool, partitions: list[tuple[str, int]] | None) -> list[tuple[str, int, int]]:
        """(topic, partition, error code) per partition, as Kafka's controller answers ElectLeaders: a preferred
        election moves leadership to the first replica when it is live and in sync, an unclean one gives an
        offline partition any live replica. With `partitions` None every partition is tried and those that
        needed no election are left out. Changes are compare-and-swaps; one that loses a race is retried."""
        results = []
        st = self.reload()
        wanted = partitions if partitions is not None else \
            [(name, p) for name, rec in st.topics.items() for p in range(len(rec.replicas))]
        for name, p in wanted:
            code = ErrorCode.UNKNOWN_SERVER_ERROR
            for _ in range(3):
                code, done = self._elect_one(self.state, name, p, unclean)
                if done:
                    break
                self.reload()
            if partitions is None and code == ErrorCode.ELECTION_NOT_NEEDED:
                continue
            results.append((name, p, int(code)))
        return results

    def _elect_one(self, st: ClusterState, name: str, p: int, unclean: bool) -> tuple[ErrorCode, bool]:
        """(error code, final): not final when the compare-and-swap lost to another change."""
        rec = st.topics.get(name)
        cur = st.states.get((name, p)) if rec is not None and 0 <= p < len(rec.replicas) else None
        if cur is None:
            return ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, True
        replicas = rec.replicas[p]
        if (not unclean and cur.leader == replicas[0]) or (unclean and cur.leader >= 0):
            return ErrorCode.ELECTION_NOT_NEEDED, True
        eligible = self._settled()
        new = elect_unclean(replicas, cur, eligible) if unclean else prefer(replicas, cur, eligible)
        if new is None:
            return (ErrorCode.ELIGIBLE_LEADERS_NOT_AVAILABLE if unclean
                    else ErrorCode.PREFERRED_LEADER_NOT_AVAILABLE), True
        if self._swap_state(name, p, cur, new):
            return ErrorCode.NONE, True
        return ErrorCode.UNKNOWN_SERVER_ERROR, False

    def _ensure_offsets_topic(self) -> bool:
        from broker.groups import OFFSETS_TOPIC

        if OFFSETS_TOPIC in self.state.topics:
            return False
        rf = self.config["offsets.topic.replication.factor"]
        if len(self.state.brokers) < rf:
            return False
        results = self.create_topics([{"name": OFFSETS_TOPIC, "num_partitions":
                                       self.config["offsets.topic.num.partitions"], "replication_factor": rf,
                                       "configs": {"retention.ms": -1, "segment.bytes": 104857600}}])
        return results[0]["error_code"] == 0

    # -- topic changes (any broker; atomic per topic) -------------------------------------------------------

    def check_create(self, t: dict) -> tuple[ErrorCode, str | None, list[tuple[int, ...]]]:
        """Validate one CreateTopics item against the live brokers; returns its replica assignment."""
        name = t["name"]
        if name in self.state.topics:
            return ErrorCode.TOPIC_ALREADY_EXISTS, f"Topic '{name}' already exists.", []
        n = t.get("num_partitions", -1)
        rf = t.get("replication_factor", -1)
        assignments = t.get("assignments") or []
        if assignments:
            if n not in (-1, None) or rf not in (-1, None):
                return ErrorCode.INVALID_REQUEST, "Both replication_factor and assignments were given.", []
            replicas = [tuple(a.get("broker_ids", [])) for a in sorted(assignments,
                                                                       key=lambda a: a.get("partition_index", 0))]
            for r in replicas:
                if not r or len(set(r)) != len(r) or any(b not in self.state.brokers for b in r):
                    return ErrorCode.INVALID_REPLICA_ASSIGNMENT, f"Invalid replica assignment {list(r)}.", []
            return ErrorCode.NONE, None, replicas
        n = self.config["num.partitions"] if n in (-1, None) else n
        rf = self.config["default.replication.factor"] if rf in (-1, None) else rf
        if n < 1:
            return ErrorCode.INVALID_PARTITIONS, "Number of partitions must be larger than 0.", []
        if rf < 1:
            return ErrorCode.INVALID_REPLICATION_FACTOR, "Replication factor must be larger than 0.", []
        try:
            return ErrorCode.NONE, None, assign_replicas(n, rf, list(self.state.brokers),
                                                         start=zlib.crc32(name.encode()))
        except ValueError as e:
            return ErrorCode.INVALID_REPLICATION_FACTOR, str(e), []

    def create_topics(self, topics: list[dict], validate_only: bool = False,
                      validate_local=None) -> list[dict]:
        results = []
        for t in topics:
            name = t["name"]
            err, msg, replicas = self.check_create(t)
            if err == ErrorCode.NONE and validate_local is not None:
                err, msg = validate_local(t, len(replicas))
            if err == ErrorCode.NONE and not validate_only:
                err, msg = self._create(name, replicas, t.get("configs") or {})
            results.append({"name": name, "error_code": int(err), "error_message": msg})
        return results

    def _create(self, name: str, replicas: list[tuple[int, ...]], configs: dict) -> tuple[ErrorCode, str | None]:
        rec = TopicRecord(name, uuid.uuid4().hex, dict(configs), tuple(replicas))
        key = self.key("topics", name)
        states = [Op.put(self.key("state", name, p), PartState(r[0], 0, tuple(r)).to_json())
                  for p, r in enumerate(replicas)]
        first, rest = states[:MAX_TXN_OPS - 1], states[MAX_TXN_OPS - 1:]
        # States first (in the same transaction as the topic when they fit): a topic is never seen without them.
        res = self.client.txn([Compare.create_revision(key, "=", 0)], [*first, Op.put(key, topic_value(rec))]) \
            if not rest else None
        if rest:
            for i in range(0, len(states), MAX_TXN_OPS):
                self.client.txn([Compare.create_revision(key, "=", 0)], states[i:i + MAX_TXN_OPS])
            res = self.client.txn([Compare.create_revision(key, "=", 0)], [Op.put(key, topic_value(rec))])
        if not res.succeeded:
            return ErrorCode.TOPIC_ALREADY_EXISTS, f"Topic '{name}' already exists."
        log.info("topic created", topic=name, partitions=len(replicas), replication_factor=len(replicas[0]))
        return ErrorCode.NONE, None

    def delete_topic(self, name: str) -> ErrorCode:
        rec = self.state.topics.get(name)
        if rec is None:
            return ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
        key = self.key("topics", name)
        res = self.client.txn([Compare.mod_revision(key, "=", rec.mod_revision)],
                              [Op.delete(key), Op.delete(self.key("state", name) + "/", prefix=True)])
        if not res.succeeded:
            return ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
        log.info("topic deleted", topic=name)
        return ErrorCode.NONE

    def add_partitions(self, name: str, total: int, assignments=None) -> tuple[ErrorCode, str | None]:
        rec = self.state.topics.get(name)
        if rec is None:
            return ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, f"Topic '{name}' does not exist."
        have = len(rec.replicas)
        if total <= have:
            return (ErrorCode.INVALID_PARTITIONS, f"Topic currently has {have} partitions, which is higher than "
                                                  f"or equal to the requested {total}.")
        if assignments:
            extra = [tuple(a.get("broker_ids", [])) for a in assignments]
            if len(extra) != total - have or any(not r or any(b not in self.state.brokers for b in r)
                                                 for r in extra):
                return ErrorCode.INVALID_REPLICA_ASSIGNMENT, "Invalid replica assignment."
        else:
            try:
                first = self.state.states.get((name, 0))  # its replication factor, a running move's excluded
                rf = len(original_replicas(rec.replicas[0], first)) if first is not None else len(rec.replicas[0])
                extra = assign_replicas(total - have, rf, list(self.state.brokers),
                                        start=zlib.crc32(name.encode()), first_partition=have)
            except ValueError as e:
                return ErrorCode.INVALID_REPLICATION_FACTOR, str(e)
        new = TopicRecord(name, rec.id, rec.configs, rec.replicas + tuple(extra))
        key = self.key("topics", name)
        ops = [Op.put(self.key("state", name, have + i), PartState(r[0], 0, tuple(r)).to_json())
               for i, r in enumerate(extra)]
        res = self.client.txn([Compare.mod_revision(key, "=", rec.mod_revision)],
                              [*ops[:MAX_TXN_OPS - 1], Op.put(key, topic_value(new))])
        if not res.succeeded:
            return ErrorCode.INVALID_PARTITIONS, "The topic changed meanwhile; retry."
        for i in range(MAX_TXN_OPS - 1, len(ops), MAX_TXN_OPS):
            self.client.txn([], ops[i:i + MAX_TXN_OPS])
        return ErrorCode.NONE, None

    def set_topic_configs(self, name: str, configs: dict) -> ErrorCode:
        rec = self.state.topics.get(name)
        if rec is None:
            return ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
        new = TopicRecord(name, rec.id, dict(configs), rec.replicas)
        key = self.key("topics", name)
        res = self.client.txn([Compare.mod_revision(key, "=", rec.mod_revision)], [Op.put(key, topic_value(new))])
        if not res.succeeded:
            return ErrorCode.INVALID_CONFIG
        return ErrorCode.NONE

    def put_acls(self, bindings) -> None:
        ops = [Op.put(self.key("acls", digest), value) for digest, value in map(acl_entry, bindings)]
        for i in range(0, len(ops), MAX_TXN_OPS):
            self.client.txn([], ops[i:i + MAX_TXN_OPS])

    def delete_acls(self, bindings) -> None:
        ops = [Op.delete(self.key("acls", acl_entry(b)[0])) for b in bindings]
        for i in range(0, len(ops), MAX_TXN_OPS):
            self.client.txn([], ops[i:i + MAX_TXN_OPS])

    def put_broker_configs(self, scope: str, configs: dict) -> None:
        """Dynamic broker configs of `scope` ("": the cluster-wide default, else a broker id)."""
        key = self.key("configs", f"broker-{scope or 'default'}")
        if configs:
            self.client.put(key, json.dumps(configs).encode())
        else:
            self.client.delete(key)

    def put_scram(self, changed: dict[str, dict]) -> None:
        """Each user's whole set of SCRAM credentials, in one key (none left: the key goes)."""
        ops = [Op.put(self.key("scram", user), json.dumps(creds).encode()) if creds
               else Op.delete(self.key("scram", user)) for user, creds in changed.items()]
        for i in range(0, len(ops), MAX_TXN_OPS):
            self.client.txn([], ops[i:i + MAX_TXN_OPS])

    def put_quotas(self, changed: dict[str, dict]) -> None:
        """Each changed client quota entity's whole set of values, in one key (none left: the key goes)."""
        ops = [Op.put(self.key("quotas", entity), json.dumps(values).encode()) if values
               else Op.delete(self.key("quotas", entity)) for entity, values in changed.items()]
        for i in range(0, len(ops), MAX_TXN_OPS):
            self.client.txn([], ops[i:i + MAX_TXN_OPS])

    def _broker_keys(self) -> list[str]:
        kvs, _ = self.client.get_prefix(self.key("brokers") + "/")
        return [kv.key for kv in kvs]

    # -- producer ids ----------------------------------------------------------------------------------------

    def producer_id_block(self, size: int) -> dict:
        """The next `size` producer ids, unique across the cluster (a CAS-incremented counter in etcd)."""
        key = self.key("producer_id_block")
        for _ in range(20):
            kv = self.client.get(key)
            start = json.loads(kv.value)["next"] if kv is not None else 0
            cmp = Compare.mod_revision(key, "=", kv.mod_revision) if kv is not None else \
                Compare.create_revision(key, "=", 0)
            if self.client.txn([cmp], [Op.put(key, json.dumps({"next": start + size}).encode())]).succeeded:
                return {"start": start, "count": size}
        raise EtcdError("producer id block: too much contention")

    # -- ISR changes (the partition's leader asks) ---------------------------------------------------------

    def update_isr(self, topic: str, partition: int, leader_epoch: int, isr: list[int]) -> ErrorCode:
        key = self.key("state", topic, partition)
        for _ in range(3):
            kv = self.client.get(key)
            if kv is None:
                return ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
            doc = json.loads(kv.value)
            if doc["leader"] != self.node_id or doc["leader_epoch"] != leader_epoch:
                return ErrorCode.FENCED_LEADER_EPOCH
            if self.node_id not in isr:
                return ErrorCode.INVALID_REQUEST
            live = {int(k.rsplit("/", 1)[1]) for k in self._broker_keys()}
            if any(b not in doc["isr"] and b not in live for b in isr):
                return ErrorCode.INELIGIBLE_REPLICA  # a broker that left may not rejoin before it is back
            topic_kv = self.client.get(self.key("topics", topic))
            replicas = json.loads(topic_kv.value)["replicas"] if topic_kv is not None else []
            if partition >= len(replicas) or any(b not in replicas[partition] for b in isr):
                return ErrorCode.INELIGIBLE_REPLICA  # no longer a replica (a reassignment removed it)
            new = PartState(self.node_id, leader_epoch, tuple(isr), 0, tuple(doc.get("adding") or ()),
                            tuple(doc.get("removing") or ()))
            res = self.client.txn([Compare.mod_revision(key, "=", kv.mod_revision)], [Op.put(key, new.to_json())])
            if res.succeeded:
                log.info("isr changed", topic=topic, partition=partition, leader_epoch=leader_epoch, isr=isr)
                return ErrorCode.NONE
        return ErrorCode.UNKNOWN_SERVER_ERROR


def assignment_problem(target: list[int], brokers) -> str | None:
    """Why a manual replica list is refused (Kafka's validateManualPartitionAssignment), or None."""
    if not target:
        return "The manual partition assignment includes an empty replica list."
    if len(set(target)) != len(target):
        return f"The manual partition assignment includes a broker more than once: {list(target)}."
    for b in target:
        if b not in brokers:
            return f"The manual partition assignment includes broker {b}, but no such broker is registered."
    return None


__all__ = ["ClusterNode", "EtcdError"]
