"""Topic administration and the local metadata snapshot: the one place that changes what workers see.

It runs in the supervisor. On a single node topic records persist through the LogManager (topic store in
the data directory). In a cluster (`etcd.connect`) etcd holds topics, replica assignments, leaders and
ISRs (`broker.cluster`); this controller turns that state into the local snapshot and keeps the local
logs of the partitions hosted here in step with it. Either way everything else in the snapshot (which I/O
worker owns a partition, its slot in the shared partition-state table) is derived, so it can never
disagree with the disk.

Owner assignment is stable for a given `num.io.threads`: partition p of topic t goes to I/O worker
(crc32(t) + p) mod n, which spreads a topic's partitions over all workers.
"""

from __future__ import annotations

import json
import os
import uuid
import zlib
from typing import Callable

from broker.config import BrokerConfig, dynamic_log_defaults
from broker.logfmt import Log
from broker.metadata import BrokerInfo, ClusterMetadata, PartitionInfo, TopicInfo
from broker.security.acl import AclBinding, AclFilter, binding_problem, filter_problem, matches
from broker.security.sasl import (MAX_SCRAM_ITERATIONS, SCRAM_HASHES, SCRAM_ITERATIONS, SCRAM_MECHANISM_CODES,
                                  ScramCredential)
from netio.codec import ErrorCode

log = Log("hpbroker.controller")

INTERNAL_TOPICS = frozenset({"__consumer_offsets"})
META_FILE = "meta.properties"
ACL_FILE = "acls.json"  # a single node's access control lists (a cluster keeps them in etcd)
SCRAM_FILE = "scram.json"  # a single node's SCRAM credentials (likewise)
BROKER_CONFIG_FILE = "broker_configs.json"  # a single node's dynamic broker defaults (likewise)
QUOTA_FILE = "quotas.json"  # a single node's client quotas (likewise)


def owner_of(topic: str, partition: int, n_io: int) -> int:
    return (zlib.crc32(topic.encode()) + partition) % n_io


class Controller:
    def __init__(self, config: BrokerConfig, log_manager, n_io: int, slots: int,
                 broker: BrokerInfo, directory: str, node=None):
        self.config = config
        self.node = node  # broker.cluster.node.ClusterNode in a cluster, else None
        self.mgr = log_manager
        self.n_io = n_io
        self.max_slots = slots
        self.broker = broker
        self.directory = directory
        self.cluster_id = self._cluster_id()
        if node is not None and node.state.cluster_id:
            self.cluster_id = node.state.cluster_id
        self.version = 0
        self.acls: tuple[AclBinding, ...] = self._load_acls() if node is None else ()
        self.scram: dict = self._load_json(SCRAM_FILE, {}) if node is None else {}
        self.broker_configs: dict = self._load_json(BROKER_CONFIG_FILE, {}) if node is None else {}
        self.quotas: dict = self._load_json(QUOTA_FILE, {}) if node is None else {}
        if not all(isinstance(v, dict) for v in self.broker_configs.values()):  # one flat scope: the default
            self.broker_configs = {"": self.broker_configs}
        log_manager.broker_config = config.log_defaults(dynamic_log_defaults(self.broker_configs, broker.node_id))
        self.slots: dict[tuple[str, int], int] = {}
        self._dirs_seen: dict[str, tuple] = {}  # topic -> (id, etcd mod_revision, partitions) whose dirs are in step
        self.free_slots: list[int] = []
        self.next_slot = 0
        self.metadata = self._build()
        self.on_change: Callable[[ClusterMetadata], None] | None = None

    # -- identity -----------------------------------------------------------------------------------------

    def _cluster_id(self) -> str:
        """cluster.id lives in meta.properties as in Kafka, so it survives restarts."""
        path = os.path.join(self.directory, META_FILE)
        try:
            with open(path, encoding="utf-8") as f:
                for line in f:
                    k, _, v = line.strip().partition("=")
                    if k == "cluster.id" and v:
                        return v
        except FileNotFoundError:
            pass
        cid = uuid.uuid4().hex[:22]
        tmp = path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(f"version=1\ncluster.id={cid}\nnode.id={self.config['broker.id']}\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        return cid

    # -- snapshot -----------------------------------------------------------------------------------------

    def _slot_for(self, topic: str, partition: int) -> int:
        key = (topic, partition)
        slot = self.slots.get(key)
        if slot is None:
            if self.free_slots:
                slot = self.free_slots.pop()
            else:
                if self.next_slot >= self.max_slots:
                    raise OverflowError("partition-state table is full")
                slot = self.next_slot
                self.next_slot += 1
            self.slots[key] = slot
        return slot

    def _build(self) -> ClusterMetadata:
        self.version += 1
        if self.node is not None:
            return self._build_cluster()
        bid = self.broker.node_id
        topics = {}
        for name, info in sorted(self.mgr.topics().items()):
            parts = tuple(
                PartitionInfo(p, bid, (bid,), (bid,), 0, owner_of(name, p, self.n_io), self._slot_for(name, p))
                for p in range(info.partitions))
            topics[name] = TopicInfo(name, bytes.fromhex(info.topic_id), parts, dict(info.configs),
                                     name in INTERNAL_TOPICS)
        live = {(t, p.partition) for t, ti in topics.items() for p in ti.partitions}
        for key in [k for k in self.slots if k not in live]:
            self.free_slots.append(self.slots.pop(key))
        return ClusterMetadata(self.version, self.cluster_id, bid, (self.broker,), topics, self.acls, self.scram,
                               self.broker_configs, self.quotas)

    def _build_cluster(self) -> ClusterMetadata:
        st = self.node.state
        me = self.broker.node_id
        topics = {}
        for name, rec in sorted(st.topics.items()):
            parts = []
            for p, replicas in enumerate(rec.replicas):
                ps = st.states.get((name, p))
                leader, epoch, isr = (ps.leader, ps.leader_epoch, ps.isr) if ps else (-1, 0, ())
                hosted = me in replicas and name in self.mgr.topics()
                parts.append(PartitionInfo(p, leader, tuple(replicas), tuple(isr), epoch,
                                           owner_of(name, p, self.n_io) if hosted else -1,
                                           self._slot_for(name, p) if hosted else -1,
                                           ps.adding if ps else (), ps.removing if ps else ()))
            topics[name] = TopicInfo(name, bytes.fromhex(rec.id), tuple(parts), dict(rec.configs),
                                     name in INTERNAL_TOPICS)
        live = {(t, p.partition) for t, ti in topics.items() for p in ti.partitions if p.slot >= 0}
        for key in [k for k in self.slots if k not in live]:
            self.free_slots.append(self.slots.pop(key))
        brokers = tuple(BrokerInfo(b.id, b.host, b.port, b.rack, b.endpoints)
                        for _, b in sorted(st.brokers.items()))
        self.mgr.broker_config = self.config.log_defaults(dynamic_log_defaults(st.broker_configs, me))
        return ClusterMetadata(self.version, st.cluster_id or self.cluster_id, st.controller_id, brokers, topics,
                               tuple(sorted(st.acls)), st.scram, st.broker_configs, st.quotas)

    def refresh(self, before_delete: Callable[[ClusterMetadata], None]) -> bool:
        """Cluster mode: read etcd, do this node's duties, bring local logs and the snapshot in step.
        Returns True when a new snapshot was published."""
        node = self.node
        node.reload()
        if node.maintain():
            node.reload()
        self._sync_local(before_delete)
        candidate = self._build()
        old = self.metadata.to_json()
        new = candidate.to_json()
        old.pop("version")
        new.pop("version")
        if old == new:
            self.version -= 1
            return False
        self.metadata = candidate
        self.metadata.save(self.directory)
        if self.on_change is not None:
            self.on_change(self.metadata)
        return True

    def _sync_local(self, before_delete: Callable[[ClusterMetadata], None]) -> None:
        """Local topic records and partition directories for every topic with a replica here; local
        topics that etcd no longer has (or has recreated under a new id) are removed, after the owners
        closed their logs."""
        st = self.node.state
        me = self.broker.node_id
        local = self.mgr.topics()
        doomed = [n for n, info in local.items()
                  if n not in st.topics or st.topics[n].id != info.topic_id
                  or me not in {b for r in st.topics[n].replicas for b in r}]
        if doomed:
            self.metadata = self._without(doomed)
            before_delete(self.metadata)
            for name in doomed:
                try:
                    self.mgr.delete_topic(name)
                    log.info("local replica of topic removed", topic=name)
                except Exception as e:
                    log.error("local topic removal failed", topic=name, error=repr(e))
        local = self.mgr.topics()
        for name, rec in st.topics.items():
            if me not in {b for r in rec.replicas for b in r}:
                continue
            try:
                info = local.get(name)
                if info is None:
                    self.mgr.create_topic(name, len(rec.replicas), rec.configs, topic_id=rec.id)
                else:
                    if info.partitions < len(rec.replicas):
                        self.mgr.add_partitions(name, len(rec.replicas))
                    if dict(info.configs) != _parsed(rec.configs):
                        self.mgr.alter_topic_config(name, rec.configs)
            except Exception as e:
                log.error("local replica of topic not created", topic=name, error=repr(e))
        self._sync_partition_dirs(before_delete)

    def _sync_partition_dirs(self, before_delete: Callable[[ClusterMetadata], None]) -> None:
        """A partition's directory exists here only while this broker is one of its replicas: one a
        reassignment moved away is deleted (after its owner closed the log; the topic's other partitions
        stay), one moved here (or back) is made. Each topic is looked at again only when its etcd record
        changed."""
        st = self.node.state
        me = self.broker.node_id
        local = self.mgr.topics()
        doomed: list[tuple[str, int]] = []
        looked = {}
        for name, rec in st.topics.items():
            info = local.get(name)
            stamp = (rec.id, rec.mod_revision, info.partitions if info is not None else 0)
            if info is None or info.topic_id != rec.id or self._dirs_seen.get(name) == stamp:
                continue
            try:
                for p, replicas in enumerate(rec.replicas[:info.partitions]):
                    if me in replicas:
                        self.mgr.ensure_partition_dir(name, p)
                    elif self.mgr.has_partition_dir(name, p):
                        doomed.append((name, p))
                looked[name] = stamp
            except Exception as e:
                log.error("partition directories not checked", topic=name, error=repr(e))
        if doomed:
            hosted = {(t, p.partition) for t, ti in self.metadata.topics.items() for p in ti.partitions
                      if p.slot >= 0}
            if hosted.intersection(doomed):
                self.metadata = self._unhosted(doomed)
                before_delete(self.metadata)
            for name, p in doomed:
                try:
                    self.mgr.delete_partition(name, p)
                    log.info("local replica of partition removed", topic=name, partition=p)
                except Exception as e:
                    log.error("local partition removal failed", topic=name, partition=p, error=repr(e))
                    looked.pop(name, None)
        self._dirs_seen.update(looked)

    def _unhosted(self, doomed: list[tuple[str, int]]) -> ClusterMetadata:
        """The current snapshot with the partitions about to be deleted here no longer hosted: published first,
        so their owners close the logs (and stop fetching) before the files go."""
        import dataclasses

        self.version += 1
        md = self.metadata
        topics = dict(md.topics)
        for name in {t for t, _p in doomed if t in topics}:
            ti = topics[name]
            parts = tuple(dataclasses.replace(p, owner=-1, slot=-1) if (name, p.partition) in doomed else p
                          for p in ti.partitions)
            topics[name] = dataclasses.replace(ti, partitions=parts)
        return dataclasses.replace(md, version=self.version, topics=topics)

    def _without(self, doomed: list[str]) -> ClusterMetadata:
        """The current snapshot minus topics about to be deleted: published first, so owners close their
        logs before the files go."""
        self.version += 1
        md = self.metadata
        return ClusterMetadata(self.version, md.cluster_id, md.controller_id, md.brokers,
                               {k: v for k, v in md.topics.items() if k not in doomed}, md.acls, md.scram,
                               md.broker_configs, md.quotas)

    def ensure_internal_topics(self) -> None:
        """__consumer_offsets exists from the first start on, so every group has a coordinator partition.
        Its records must outlive time retention (committed offsets are rewritten only when they move).
        In a cluster the controller creates it in etcd once enough brokers are up."""
        if self.node is None and "__consumer_offsets" not in self.mgr.topics():
            self.mgr.create_topic("__consumer_offsets", self.config["offsets.topic.num.partitions"],
                                  {"retention.ms": -1, "segment.bytes": 104857600})
            self.metadata = self._build()

    def _publish(self) -> None:
        self.metadata = self._build()
        self.metadata.save(self.directory)
        if self.on_change is not None:
            self.on_change(self.metadata)

    # -- operations ---------------------------------------------------------------------------------------

    def create_topics(self, topics: list[dict], validate_only: bool = False) -> list[dict]:
        """Each item: name, num_partitions (-1: broker default), replication_factor (-1: default),
        assignments, configs ({name: value}). Returns [{name, error_code, error_message}]."""
        if self.node is not None:  # etcd keeps configs typed, as the local topic store does
            return self.node.create_topics([{**t, "configs": _parsed(t.get("configs") or {})} for t in topics],
                                           validate_only, self._check_local)
        results = []
        changed = False
        for t in topics:
            name = t["name"]
            err, msg = self._check_create(t)
            if err == ErrorCode.NONE and not validate_only:
                n = t.get("num_partitions", -1)
                n = self.config["num.partitions"] if n in (-1, None) else n
                if t.get("assignments"):
                    n = len(t["assignments"])
                try:
                    self.mgr.create_topic(name, n, t.get("configs") or {})
                    changed = True
                    log.info("topic created", topic=name, partitions=n)
                except Exception as e:  # storage refused: report it on this topic only
                    err, msg = _error_for(e)
            results.append({"name": name, "error_code": int(err), "error_message": msg})
        if changed:
            self._publish()
        return results

    def _check_local(self, t: dict, partitions: int) -> tuple[ErrorCode, str | None]:
        """Name and configs, as this broker's storage would take them (cluster mode)."""
        from broker.log import InvalidTopic
        from broker.log.config import validate_topic_name

        try:
            validate_topic_name(t["name"])
            self.mgr.create_topic(t["name"], max(1, partitions), t.get("configs") or {}, validate_only=True)
        except InvalidTopic as e:
            return ErrorCode.INVALID_TOPIC_EXCEPTION, str(e)
        except Exception as e:
            if t["name"] in self.mgr.topics():  # a stale local copy; etcd said the name is free
                return ErrorCode.NONE, None
            return _error_for(e)
        return ErrorCode.NONE, None

    def _check_create(self, t: dict) -> tuple[ErrorCode, str | None]:
        from broker.log import InvalidTopic
        from broker.log.config import validate_topic_name

        name = t["name"]
        try:
            validate_topic_name(name)
        except InvalidTopic as e:
            return ErrorCode.INVALID_TOPIC_EXCEPTION, str(e)
        if name in self.mgr.topics():
            return ErrorCode.TOPIC_ALREADY_EXISTS, f"Topic '{name}' already exists."
        n = t.get("num_partitions", -1)
        rf = t.get("replication_factor", -1)
        assignments = t.get("assignments") or []
        if assignments and (n not in (-1, None) or rf not in (-1, None)):
            return ErrorCode.INVALID_REQUEST, "Both replication_factor and assignments were given."
        if not assignments and n not in (-1, None) and n < 1:
            return ErrorCode.INVALID_PARTITIONS, "Number of partitions must be larger than 0."
        if assignments:
            for a in assignments:
                if list(a.get("broker_ids", [])) != [self.broker.node_id]:
                    return ErrorCode.INVALID_REPLICA_ASSIGNMENT, "Replicas must be this single broker."
        elif rf not in (-1, None) and rf != 1:
            if rf < 1:
                return ErrorCode.INVALID_REPLICATION_FACTOR, "Replication factor must be larger than 0."
            return (ErrorCode.INVALID_REPLICATION_FACTOR,
                    f"Replication factor: {rf} larger than available brokers: 1.")
        try:
            self.mgr.create_topic(name, max(1, n if n not in (-1, None) else self.config["num.partitions"]),
                                  t.get("configs") or {}, validate_only=True)
        except Exception as e:
            return _error_for(e)
        return ErrorCode.NONE, None

    def delete_topics(self, names: list[str], before_delete: Callable[[ClusterMetadata], None]) -> list[dict]:
        """Removes the topics from the snapshot first (workers close their logs), then their files."""
        if self.node is not None:
            results = []
            for name in names:
                if name in INTERNAL_TOPICS:
                    results.append({"name": name, "error_code": int(ErrorCode.INVALID_TOPIC_EXCEPTION)})
                else:
                    results.append({"name": name, "error_code": int(self.node.delete_topic(name))})
            return results
        results = []
        doomed = []
        for name in names:
            if name not in self.mgr.topics():
                results.append({"name": name, "error_code": int(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)})
            elif name in INTERNAL_TOPICS:
                results.append({"name": name, "error_code": int(ErrorCode.INVALID_TOPIC_EXCEPTION)})
            else:
                doomed.append(name)
                results.append({"name": name, "error_code": int(ErrorCode.NONE)})
        if doomed:
            before_delete(self._without(doomed))
            for name in doomed:
                self.mgr.delete_topic(name)
                log.info("topic deleted", topic=name)
            self._publish()
        return results

    def create_partitions(self, topics: list[dict], validate_only: bool = False) -> list[dict]:
        if self.node is not None:
            results = []
            for t in topics:
                if validate_only:
                    rec = self.node.state.topics.get(t["name"])
                    err, msg = (ErrorCode.NONE, None) if rec and t["count"] > len(rec.replicas) else \
                        (ErrorCode.INVALID_PARTITIONS if rec else ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, None)
                else:
                    err, msg = self.node.add_partitions(t["name"], t["count"], t.get("assignments"))
                results.append({"name": t["name"], "error_code": int(err), "error_message": msg})
            return results
        results = []
        changed = False
        for t in topics:
            name, count = t["name"], t["count"]
            if name not in self.mgr.topics():
                err, msg = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, f"Topic '{name}' does not exist."
            elif count <= self.mgr.topic(name).partitions:
                err, msg = (ErrorCode.INVALID_PARTITIONS,
                            f"Topic currently has {self.mgr.topic(name).partitions} partitions, "
                            f"which is higher than or equal to the requested {count}.")
            elif t.get("assignments") and any(list(a.get("broker_ids", [])) != [self.broker.node_id]
                                              for a in t["assignments"]):
                err, msg = ErrorCode.INVALID_REPLICA_ASSIGNMENT, "Replicas must be this single broker."
            else:
                err, msg = ErrorCode.NONE, None
                if not validate_only:
                    self.mgr.add_partitions(name, count)
                    changed = True
            results.append({"name": name, "error_code": int(err), "error_message": msg})
        if changed:
            self._publish()
        return results

    def alter_topic_configs(self, name: str, configs: dict, incremental_ops: list | None = None) -> tuple:
        """Replace (AlterConfigs) or edit (incremental) a topic's overrides; returns (error, message)."""
        if self.node is not None:
            rec = self.node.state.topics.get(name)
            if rec is None:
                return ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, f"Topic '{name}' does not exist."
            current = dict(rec.configs)
        elif name not in self.mgr.topics():
            return ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, f"Topic '{name}' does not exist."
        else:
            current = dict(self.mgr.topic_config(name))
        if incremental_ops is None:
            new = dict(configs)
        else:
            new = current
            for key, op, value in incremental_ops:
                if op == 0:  # SET
                    new[key] = value
                elif op == 1:  # DELETE
                    new.pop(key, None)
                else:
                    return ErrorCode.INVALID_CONFIG, f"operation {op} is not supported for {key}"
        if self.node is not None:
            from broker.log.config import effective_log_config, validate_topic_configs

            try:
                new = validate_topic_configs(new)
                effective_log_config(new, self.mgr.broker_config)
            except Exception as e:
                return _error_for(e)
            return self.node.set_topic_configs(name, new), None
        try:
            self.mgr.alter_topic_config(name, new)
        except Exception as e:
            return _error_for(e)
        self._publish()
        return ErrorCode.NONE, None

    # -- access control lists -----------------------------------------------------------------------------

    def _load_json(self, name: str, empty):
        """A store this controller wrote (atomically); one that does not parse is refused with its path."""
        path = os.path.join(self.directory, name)
        try:
            with open(path, encoding="utf-8") as f:
                return json.load(f)
        except FileNotFoundError:
            return empty
        except ValueError as e:
            raise StoreUnreadable(f"{path} is not readable JSON ({e}); restore it from a backup or remove it") \
                from None

    def _save_json(self, name: str, doc) -> None:
        """Atomically replaced and fsynced; owner-only, since SCRAM credentials are kept this way too."""
        path = os.path.join(self.directory, name)
        tmp = path + ".tmp"
        with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w", encoding="utf-8") as f:
            json.dump(doc, f, separators=(",", ":"))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)

    def _store_changes(self, changed: dict, attr: str, file: str, put) -> None:
        """Per-key changes to a keyed store (SCRAM users, quota entities; an empty value removes the key):
        to etcd through `put`, or into `file` replaced atomically and published by a single node."""
        if self.node is not None:
            put(changed)
            return
        merged = {k: v for k, v in {**getattr(self, attr), **changed}.items() if v}
        self._save_json(file, merged)
        setattr(self, attr, merged)
        self._publish()

    def _load_acls(self) -> tuple[AclBinding, ...]:
        return tuple(sorted(AclBinding(*b) for b in self._load_json(ACL_FILE, [])))

    def _save_acls(self, acls: tuple[AclBinding, ...]) -> None:
        self._save_json(ACL_FILE, [list(b) for b in acls])

    def _change_acls(self, added=(), removed=()) -> None:
        """Stored first (etcd, or acls.json replaced atomically); a single node then publishes the snapshot,
        a cluster's next refresh does."""
        if self.node is not None:
            if added:
                self.node.put_acls(added)
            if removed:
                self.node.delete_acls(removed)
            return
        acls = tuple(sorted(set(self.acls).union(added).difference(removed)))
        self._save_acls(acls)
        self.acls = acls
        self._publish()

    def create_acls(self, bindings: list[AclBinding]) -> list[tuple[int, str | None]]:
        """CreateAcls: each binding is checked on its own; the valid ones are stored together (a binding
        that exists already is not an error). Returns (error code, message) per binding."""
        results: list[tuple[int, str | None]] = []
        new = []
        for b in bindings:
            problem = binding_problem(b)
            results.append((int(ErrorCode.INVALID_REQUEST), problem) if problem else (0, None))
            if problem is None:
                new.append(b)
        if not new:
            return results
        try:
            self._change_acls(added=new)
        except Exception as e:
            log.error("acls not stored", error=repr(e))
            code, text = _error_for(e)
            return [(int(code), text) if r[0] == 0 else r for r in results]
        for b in new:
            log.info("acl created", resource_type=b.resource_type, resource=b.resource_name,
                     pattern=b.pattern_type, principal=b.principal, host=b.host, operation=b.operation,
                     permission=b.permission)
        return results

    def delete_acls(self, filters: list[AclFilter]) -> list[tuple[int, str | None, list[AclBinding]]]:
        """DeleteAcls: every binding a filter matches goes; each filter is answered with what it matched."""
        current = self.node.state.acls if self.node is not None else self.acls
        results: list[tuple[int, str | None, list[AclBinding]]] = []
        doomed: set[AclBinding] = set()
        for f in filters:
            problem = filter_problem(f)
            if problem:
                results.append((int(ErrorCode.INVALID_REQUEST), problem, []))
                continue
            found = sorted(b for b in current if matches(f, b))
            doomed.update(found)
            results.append((0, None, found))
        if not doomed:
            return results
        try:
            self._change_acls(removed=sorted(doomed))
        except Exception as e:
            log.error("acls not deleted", error=repr(e))
            code, text = _error_for(e)
            return [(int(code), text, []) if r[0] == 0 else r for r in results]
        log.info("acls deleted", count=len(doomed))
        return results

    # -- dynamic broker defaults ---------------------------------------------------------------------------

    def alter_broker_defaults(self, scope: str, configs: dict | None, ops: list | None) -> tuple[ErrorCode, str | None]:
        """Dynamic broker configs of `scope` ("": the cluster-wide default, else a broker id): replaced by
        `configs` (AlterConfigs) or edited by `ops` ([key, 0 SET / 1 DELETE, value], IncrementalAlterConfigs).
        Only DYNAMIC_LOG_KEYS may be set."""
        from broker.config import BY_NAME, DYNAMIC_LOG_KEYS, ConfigError, parse_value
        from broker.log.config import effective_log_config

        scopes = dict(self.node.state.broker_configs if self.node is not None else self.broker_configs)
        brokers = {b.node_id for b in self.metadata.brokers}
        if scope and (not scope.isdigit() or int(scope) not in brokers):
            return ErrorCode.INVALID_REQUEST, f"Unexpected broker id {scope!r}"
        new = {} if configs is not None else dict(scopes.get(scope, {}))
        edits = [(k, 0, v) for k, v in configs.items()] if configs is not None else ops
        fixed = sorted({k for k, _op, _v in edits if k not in DYNAMIC_LOG_KEYS})
        if fixed:
            return ErrorCode.INVALID_REQUEST, (f"Cannot update these configs dynamically: {', '.join(fixed)} (the "
                                               f"ones that can: {', '.join(DYNAMIC_LOG_KEYS)})")
        for key, op, value in edits:
            if op == 1 or value is None:
                new.pop(key, None)
            elif op == 0:
                try:
                    new[key] = parse_value(BY_NAME[key], str(value))
                except ConfigError as e:
                    return ErrorCode.INVALID_CONFIG, str(e)
            else:
                return ErrorCode.INVALID_CONFIG, f"operation {op} is not supported for {key}"
        scopes[scope] = new
        try:
            for b in brokers:  # every broker's layered result must hold
                effective_log_config({}, self.config.log_defaults(dynamic_log_defaults(scopes, b)))
        except Exception as e:
            return _error_for(e)
        scopes = {k: v for k, v in scopes.items() if v}
        try:
            if self.node is not None:
                self.node.put_broker_configs(scope, new)
            else:
                self._save_json(BROKER_CONFIG_FILE, scopes)
                self.broker_configs = scopes
                self.mgr.broker_config = self.config.log_defaults(dynamic_log_defaults(scopes, self.broker.node_id))
                self._publish()
        except Exception as e:
            log.error("dynamic broker configs not stored", scope=scope or "default", error=repr(e))
            return _error_for(e)
        log.info("dynamic broker configs changed", scope=scope or "default",
                 configs=",".join(f"{k}={v}" for k, v in sorted(new.items())))
        return ErrorCode.NONE, None

    # -- SCRAM credentials ------------------------------------------------------------------------------

    def alter_scram(self, deletions: list, upsertions: list) -> list[tuple[str, int, str | None]]:
        """AlterUserScramCredentials, as Kafka checks it: (user, error, message) per user named, in order.
        A user's changes apply together or not at all. `deletions`: [user, mechanism code]; `upsertions`:
        [user, mechanism code, iterations, salt, salted password] (bytes)."""
        current = self.node.state.scram if self.node is not None else self.scram
        users: list[str] = []
        errors: dict[str, tuple[ErrorCode, str]] = {}
        seen: set[tuple[str, int]] = set()
        for user, mech, *rest in [*deletions, *upsertions]:
            if user not in users:
                users.append(user)
            if (user, mech) in seen:
                errors.setdefault(user, (ErrorCode.DUPLICATE_RESOURCE,
                                         "A user credential cannot be altered twice in the same request"))
            seen.add((user, mech))
            if not user:
                errors.setdefault(user, (ErrorCode.UNACCEPTABLE_CREDENTIAL, "Username must not be empty"))
            elif mech not in SCRAM_MECHANISM_CODES:
                errors.setdefault(user, (ErrorCode.UNSUPPORTED_SASL_MECHANISM, "Unknown SCRAM mechanism"))
            elif not rest and SCRAM_MECHANISM_CODES[mech] not in current.get(user, {}):
                errors.setdefault(user, (ErrorCode.RESOURCE_NOT_FOUND,
                                         "Attempt to delete a user credential that does not exist"))
            elif rest and rest[0] < SCRAM_ITERATIONS:
                errors.setdefault(user, (ErrorCode.UNACCEPTABLE_CREDENTIAL, "Too few iterations"))
            elif rest and rest[0] > MAX_SCRAM_ITERATIONS:
                errors.setdefault(user, (ErrorCode.UNACCEPTABLE_CREDENTIAL, "Too many iterations"))
        changed: dict[str, dict] = {}
        for user, mech, *rest in [*deletions, *upsertions]:
            if user in errors:
                continue
            creds = changed.setdefault(user, dict(current.get(user, {})))
            name = SCRAM_MECHANISM_CODES[mech]
            if rest:
                iterations, salt, salted = rest
                creds[name] = ScramCredential.from_salted(SCRAM_HASHES[name], salted, salt, iterations).to_json()
            else:
                creds.pop(name, None)
        if changed:
            try:
                self._store_changes(changed, "scram", SCRAM_FILE, self.node and self.node.put_scram)
                for user, creds in changed.items():
                    log.info("scram credentials changed", user=user, mechanisms=",".join(sorted(creds)) or "none")
            except Exception as e:
                log.error("scram credentials not stored", error=repr(e))
                code, text = _error_for(e)
                errors.update((u, (code, text)) for u in changed)
        return [(u, int(errors[u][0]), errors[u][1]) if u in errors else (u, 0, None) for u in users]


    # -- client quotas ---------------------------------------------------------------------------------------

    def alter_quotas(self, entries: list, validate_only: bool = False) -> list[tuple[int, str | None]]:
        """AlterClientQuotas, checked as Kafka's controller checks it (broker.quota_admin.alter): (error code,
        message) per entry. `entries`: [[[entity type, name], ...], [[key, value, remove], ...]]. The entities
        that change are stored together (etcd, or quotas.json replaced atomically) and published."""
        from broker.quota_admin import alter, key_text

        current = self.node.state.quotas if self.node is not None else self.quotas
        results, changed = alter(current, entries)
        if validate_only or not changed:
            return results
        try:
            self._store_changes(changed, "quotas", QUOTA_FILE, self.node and self.node.put_quotas)
        except Exception as e:
            log.error("client quotas not stored", error=repr(e))
            code, text = _error_for(e)
            return [(int(code), text) if r[0] == 0 else r for r in results]
        for key, values in changed.items():
            log.info("client quota changed", entity=key_text(key),
                     quotas=",".join(f"{k}={int(v) if v.is_integer() else v}" for k, v in sorted(values.items()))
                     or "none")
        return results


class StoreUnreadable(ValueError):
    """A controller store in the data directory (ACLs, SCRAM credentials, dynamic defaults, client quotas) is
    damaged."""


def _parsed(configs: dict) -> dict:
    from broker.log.config import validate_topic_configs

    try:
        return dict(validate_topic_configs(configs))
    except Exception:
        return dict(configs)


def _error_for(e: Exception) -> tuple[ErrorCode, str]:
    code = getattr(e, "error_code", None)
    if code is not None:
        return ErrorCode(int(code)), str(e)
    return ErrorCode.UNKNOWN_SERVER_ERROR, str(e)
