"""The group coordinator inside an I/O worker: serves the group APIs for the groups whose
`__consumer_offsets` partition this worker owns, and keeps that partition as their durable record.

Requests arrive whole (forwarded by a network worker) with `key` naming the partition-state slot of the
group's offsets partition and the client's address (`route_key`); `key` -1 (DescribeGroups, DeleteGroups,
ListGroups fanned out to every owner) means "answer for the groups coordinated here". Every commit and membership change is appended to the
offsets partition before it is answered, and `on_open` replays the partition to rebuild offsets and
groups, so a restart or a kill -9 loses nothing that was acknowledged. Members restored from the log get a
fresh session timeout: clients that kept running continue with their generation.

Committed offsets expire as Kafka's do (offsets.retention.minutes, KIP-211; see `Group.expired_offsets`),
checked every offsets.retention.check.interval.ms: their tombstones are appended, and a group left Empty
with no offsets is removed (its metadata tombstoned) and reads as Dead.

The partition is kept short the way compaction would: once enough superseded records pile up, the live
state (each group's last stored metadata and its offsets) is appended again and the log start moves to
where that copy begins, so replay at open reads about twice the live state at most.
"""

from __future__ import annotations

import time

from broker.groups import OFFSETS_TOPIC, parse_route_key, partition_for, storage
from broker.groups import responses as R
from broker.groups.group import DEAD, EMPTY, STABLE, Group, JoinRequest, Member
from broker.logfmt import Log
from netio.codec import ErrorCode as E

log = Log("hpbroker.groups")

TICK_S = 0.2
READ_CHUNK = 1 << 20
COMPACT_AFTER = 10000  # records appended since the last compaction, at least
COMPACT_BATCH = 500


class OffsetsPartition:
    """One `__consumer_offsets` partition owned here and the groups it holds."""

    def __init__(self, op):
        self.op = op
        self.groups: dict[str, Group] = {}
        self.stored: dict[str, bytes] = {}  # group -> its last group metadata value in the log
        self.appended = 0  # records appended since the partition was loaded or compacted


class GroupCoordinator:
    def __init__(self, worker):
        self.worker = worker
        cfg = worker.config
        self.initial_delay_ms = cfg["group.initial.rebalance.delay.ms"]
        self.min_session_ms = cfg["group.min.session.timeout.ms"]
        self.max_session_ms = cfg["group.max.session.timeout.ms"]
        self.metadata_max_bytes = 4096
        self.retention_ms = cfg["offsets.retention.minutes"] * 60000
        self.expiry_interval_s = cfg["offsets.retention.check.interval.ms"] / 1000.0
        self.next_expiry = time.monotonic() + self.expiry_interval_s
        self.parts: dict[int, OffsetsPartition] = {}  # partition number -> partition
        self._topic_ids: dict[str, bytes] | None = None  # the topics as the last metadata snapshot had them
        self.handlers = {
            R.JOIN_GROUP: self.join_group, R.SYNC_GROUP: self.sync_group, R.HEARTBEAT: self.heartbeat,
            R.LEAVE_GROUP: self.leave_group, R.OFFSET_COMMIT: self.offset_commit,
            R.OFFSET_FETCH: self.offset_fetch, R.OFFSET_DELETE: self.offset_delete,
            R.DESCRIBE_GROUPS: self.describe_groups, R.LIST_GROUPS: self.list_groups,
            R.DELETE_GROUPS: self.delete_groups,
        }
        worker.call_later(TICK_S, self._tick)

    # -- partitions ---------------------------------------------------------------------------------------

    def on_open(self, op) -> None:
        if op.topic != OFFSETS_TOPIC or not getattr(op, "is_leader", True):
            return  # a followed offsets partition: its groups are coordinated by its leader's broker
        part = OffsetsPartition(op)
        self.parts[op.partition] = part
        started = time.monotonic()
        records = self._replay(part)
        (log.info if records else log.debug)("offsets partition loaded", partition=op.partition,
                                             groups=len(part.groups), records=records,
                                             seconds=round(time.monotonic() - started, 3))

    def on_close(self, op) -> None:
        part = self.parts.get(op.partition)
        if op.topic != OFFSETS_TOPIC or part is None or part.op is not op:
            return
        del self.parts[op.partition]
        for g in part.groups.values():
            g.delete()

    def close(self) -> None:
        self.parts.clear()

    def on_metadata(self, md) -> None:
        """Drop the committed offsets of deleted topics, as Kafka does, so a topic re-created under the same
        name starts without them. Deleted: no longer in the metadata (commits to unknown topics are refused,
        so no live offsets are lost), or there under a new topic id since the last snapshot."""
        ids = {t.name: t.topic_id for t in md.topics.values()}
        before, self._topic_ids = self._topic_ids, ids

        def deleted(topic: str) -> bool:
            return topic not in ids or (before is not None and before.get(topic, ids[topic]) != ids[topic])

        for part in self.parts.values():
            for g in part.groups.values():
                doomed = [tp for tp in g.offsets if deleted(tp[0])]
                if not doomed:
                    continue
                try:
                    self._drop_offsets(part, g, doomed)
                except Exception as e:
                    log.error("offsets of deleted topics not removed", group=g.group_id, error=repr(e))
                    continue
                log.info("offsets of deleted topics removed", group=g.group_id, partitions=len(doomed),
                         topics=sorted({t for t, _ in doomed}))

    def _replay(self, part: OffsetsPartition) -> int:
        plog = part.op.log
        offset, end = plog.log_start_offset, plog.log_end_offset
        groups: dict[str, bytes | None] = {}
        offsets: dict[str, dict[tuple[str, int], storage.OffsetValue]] = {}
        n = 0
        while offset < end:
            view = plog.read(offset, READ_CHUNK, max_offset=end).view()
            nxt = storage.next_offset_after(view)
            if nxt <= offset:
                break
            for o, key, value in storage.iter_records(view):
                n += 1
                if key is None or o < plog.log_start_offset:
                    continue
                try:
                    k = storage.parse_key(key)
                    if k[0] == "offset":
                        per = offsets.setdefault(k[1], {})
                        if value is None:
                            per.pop((k[2], k[3]), None)
                        else:
                            per[(k[2], k[3])] = storage.parse_offset_value(value)
                    elif k[0] == "group":
                        groups[k[1]] = value
                        if value is None:
                            offsets.pop(k[1], None)
                except Exception as e:
                    log.warning("offsets record skipped", partition=part.op.partition, error=repr(e))
            offset = nxt
        now = time.monotonic()
        for gid in set(groups) | set(offsets):
            value = groups.get(gid)
            if value is None and not offsets.get(gid):
                continue
            g = self._new_group(part, gid)
            g.offsets = offsets.get(gid, {})
            if value is not None:
                try:
                    self._restore(g, storage.parse_group_value(value), now)
                    part.stored[gid] = value
                except Exception as e:  # offsets stay; the members simply join again
                    log.warning("group metadata not restored", group=gid, error=repr(e))
        part.appended = n
        return n

    def _restore(self, g: Group, v: storage.GroupValue, now: float) -> None:
        g.protocol_type = v.protocol_type
        g.generation = v.generation
        g.protocol = v.protocol
        g.leader = v.leader
        for sm in v.members:
            m = Member(sm.member_id, sm.instance_id, sm.client_id, sm.client_host, sm.session_timeout_ms,
                       sm.rebalance_timeout_ms, v.protocol_type, [(v.protocol or "", sm.subscription)])
            m.assignment = sm.assignment
            m.synced = True
            m.touch(now)
            g.members[m.member_id] = m
            if m.instance_id is not None:
                g.static[m.instance_id] = m.member_id
        g.state = STABLE if g.members else EMPTY
        if not g.members:  # empty since its metadata was last stored (members leaving store it)
            g.empty_since_ms = v.state_timestamp if v.state_timestamp >= 0 else int(time.time() * 1000)

    def _new_group(self, part: OffsetsPartition, group_id: str) -> Group:
        g = Group(group_id, lambda grp: self._store_group(part, grp), self.initial_delay_ms,
                  self.min_session_ms, self.max_session_ms)
        part.groups[group_id] = g
        return g

    # -- writing ------------------------------------------------------------------------------------------

    def _append(self, part: OffsetsPartition, records: list[tuple[bytes, bytes | None]]) -> int:
        """Append to the offsets partition; returns the batch's last offset."""
        op = part.op
        r = op.log.append(storage.build_batch(records), leader_epoch=op.leader_epoch)
        state = getattr(op, "leader_state", None)
        if state is not None:  # replicated: the high watermark follows the ISR
            self.worker.replication.appended(op, state)
        self.worker.publish(op)
        part.appended += len(records)
        return r.last_offset

    def _drop_offsets(self, part: OffsetsPartition, g: Group, tps: list[tuple[str, int]]) -> None:
        """Tombstone `tps` in the offsets partition, then forget them; raises (forgetting nothing) when the
        append fails."""
        self._append(part, [(storage.offset_key(g.group_id, t, p), None) for t, p in tps])
        for tp in tps:
            g.offsets.pop(tp, None)

    def _when_replicated(self, op, last_offset: int, then) -> None:
        """`then(error_code)` once every in-sync replica has the append (at once when unreplicated), as a
        commit must survive the loss of this broker."""
        state = getattr(op, "leader_state", None)
        if state is None:
            then(0)
            return
        code = self.worker.replication.wait_for_isr(op, state, last_offset, then)
        if code is not None:
            then(code)

    def _store_group(self, part: OffsetsPartition, g: Group) -> None:
        members = [storage.StoredMember(m.member_id, m.instance_id, m.client_id, m.client_host,
                                        m.rebalance_timeout_ms, m.session_timeout_ms,
                                        m.metadata(g.protocol), m.assignment)
                   for m in g.members.values()]
        value = storage.GroupValue(g.protocol_type, g.generation, g.protocol, g.leader,
                                   int(time.time() * 1000), members)
        data = storage.group_value(value)
        self._append(part, [(storage.group_key(g.group_id), data)])
        part.stored[g.group_id] = data

    def compact(self, part: OffsetsPartition) -> None:
        """Append the live state again, then drop everything before it."""
        records = []
        for gid, g in part.groups.items():
            if g.state == DEAD:
                continue
            if gid in part.stored:
                records.append((storage.group_key(gid), part.stored[gid]))
            records.extend((storage.offset_key(gid, t, p), storage.offset_value(v))
                           for (t, p), v in g.offsets.items())
        plog = part.op.log
        start = plog.log_end_offset
        try:
            for i in range(0, len(records), COMPACT_BATCH):
                self._append(part, records[i:i + COMPACT_BATCH])
            plog.delete_records_before(start)
        except Exception as e:
            log.error("offsets partition compaction failed", partition=part.op.partition, error=repr(e))
            return
        self.worker.publish(part.op)
        part.appended = len(records)
        log.info("offsets partition compacted", partition=part.op.partition, live=len(records), log_start=start)

    def _maybe_compact(self, part: OffsetsPartition) -> None:
        if part.appended < COMPACT_AFTER:
            return
        live = sum(len(g.offsets) + 1 for g in part.groups.values())
        if part.appended >= 2 * live:
            self.compact(part)

    # -- routing ------------------------------------------------------------------------------------------

    def _partition_count(self) -> int:
        t = self.worker.metadata.current().topic(OFFSETS_TOPIC)
        return len(t.partitions) if t is not None else 0

    def _coordinated(self, group_id: str) -> OffsetsPartition | None:
        n = self._partition_count()
        return self.parts.get(partition_for(group_id, n)) if n else None

    def _locate(self, group_id: str, key: int, create: bool) -> tuple[int, Group | None, OffsetsPartition | None]:
        """(error, group, partition) for a request routed to the partition at slot `key`."""
        part = self._coordinated(group_id)
        slot = parse_route_key(key)[0]
        if part is None or (slot >= 0 and part.op.slot != slot):
            return int(E.NOT_COORDINATOR), None, None
        g = part.groups.get(group_id)
        if g is None and create:
            g = self._new_group(part, group_id)
        return 0, g, part

    def _tick(self) -> None:
        self.worker.call_later(TICK_S, self._tick)
        now = time.monotonic()
        now_ms = int(time.time() * 1000)
        expire = now >= self.next_expiry
        if expire:
            self.next_expiry = now + self.expiry_interval_s
        for part in list(self.parts.values()):
            for g in list(part.groups.values()):
                try:
                    g.tick(now)
                except Exception as e:
                    log.error("group timer failed", exc_info=True, group=g.group_id, error=repr(e))
                if g.state != EMPTY:
                    g.empty_since_ms = None
                elif g.empty_since_ms is None:
                    g.empty_since_ms = now_ms
            if expire:
                self._expire_offsets(part, now_ms)
            self._maybe_compact(part)

    def _expire_offsets(self, part: OffsetsPartition, now_ms: int) -> None:
        """Tombstone expired offsets; a group then Empty with none left goes too, as Kafka removes it."""
        for gid, g in list(part.groups.items()):
            if g.state == DEAD:
                continue
            gone = g.expired_offsets(now_ms, self.retention_ms)
            dead = g.state == EMPTY and len(gone) == len(g.offsets) and not g.pending  # none joining
            if not gone and not dead:
                continue
            records = [(storage.offset_key(gid, t, p), None) for t, p in gone]
            if dead:
                records.append((storage.group_key(gid), None))
            try:
                self._append(part, records)
            except Exception as e:
                log.error("expired offsets not removed", group=gid, error=repr(e))
                continue
            for tp in gone:
                g.offsets.pop(tp, None)
            if dead:
                g.delete()
                del part.groups[gid]
                part.stored.pop(gid, None)
            log.info("offsets expired", partition=part.op.partition, group=gid, offsets=len(gone),
                     group_removed=dead)

    # -- membership ---------------------------------------------------------------------------------------

    def join_group(self, h, body: dict, reply, key: int) -> None:
        err, g, _ = self._locate(body["group_id"], key, create=True)
        if err:
            return reply(R.error_body(R.JOIN_GROUP, body, err))
        protocols = [(p["name"], bytes(p["metadata"])) for p in body["protocols"]]
        req = JoinRequest(body["member_id"], body.get("group_instance_id"), h.client_id or "",
                          body["session_timeout_ms"], body.get("rebalance_timeout_ms", -1),
                          body["protocol_type"], protocols, h.api_version, parse_route_key(key)[1])
        g.join(req, reply, time.monotonic())

    def sync_group(self, h, body: dict, reply, key: int) -> None:
        err, g, _ = self._locate(body["group_id"], key, create=False)
        if err or g is None:
            return reply(R.error_body(R.SYNC_GROUP, body, err or int(E.UNKNOWN_MEMBER_ID)))
        assignments = {a["member_id"]: bytes(a["assignment"]) for a in body["assignments"]}
        g.sync(body["member_id"], body.get("group_instance_id"), body["generation_id"], assignments, reply,
               time.monotonic())

    def heartbeat(self, h, body: dict, reply, key: int) -> None:
        err, g, _ = self._locate(body["group_id"], key, create=False)
        if not err:
            err = int(E.UNKNOWN_MEMBER_ID) if g is None else g.heartbeat(
                body["member_id"], body.get("group_instance_id"), body["generation_id"], time.monotonic())
        reply({"throttle_time_ms": 0, "error_code": err})

    def leave_group(self, h, body: dict, reply, key: int) -> None:
        err, g, _ = self._locate(body["group_id"], key, create=False)
        if err:
            return reply(R.error_body(R.LEAVE_GROUP, body, err))
        now = time.monotonic()
        if h.api_version < 3:
            code = int(E.UNKNOWN_MEMBER_ID) if g is None else g.leave(body["member_id"], None, now)
            return reply({"throttle_time_ms": 0, "error_code": code, "members": []})
        out = []
        for m in body["members"]:
            code = int(E.UNKNOWN_MEMBER_ID) if g is None else g.leave(m["member_id"], m.get("group_instance_id"), now)
            out.append({"member_id": m["member_id"], "group_instance_id": m.get("group_instance_id"),
                        "error_code": code})
        reply({"throttle_time_ms": 0, "error_code": 0, "members": out})

    # -- offsets ------------------------------------------------------------------------------------------

    def offset_commit(self, h, body: dict, reply, key: int) -> None:
        group_id = body["group_id"]
        err, g, part = self._locate(group_id, key, create=True)
        if not err:
            err = g.validate_commit(body.get("member_id", ""), body.get("group_instance_id"),
                                    body.get("generation_id_or_member_epoch", -1), time.monotonic())
        if err:
            return reply(R.error_body(R.OFFSET_COMMIT, body, err))
        md = self.worker.metadata.current()
        now_ms = int(time.time() * 1000)
        records, accepted, out = [], [], []
        for t in body["topics"]:
            info = md.topic(t["name"])
            parts = []
            for p in t["partitions"]:
                index = p["partition_index"]
                meta = p.get("committed_metadata")
                code = 0
                if info is None or not 0 <= index < len(info.partitions):
                    code = int(E.UNKNOWN_TOPIC_OR_PARTITION)
                elif meta is not None and len(meta.encode()) > self.metadata_max_bytes:
                    code = int(E.OFFSET_METADATA_TOO_LARGE)
                else:
                    v = storage.OffsetValue(p["committed_offset"], p.get("committed_leader_epoch", -1),
                                            meta or "", now_ms)
                    records.append((storage.offset_key(group_id, t["name"], index), storage.offset_value(v)))
                    accepted.append(((t["name"], index), v))
                parts.append({"partition_index": index, "error_code": code})
            out.append({"name": t["name"], "partitions": parts})
        if not records:
            return reply({"throttle_time_ms": 0, "topics": out})
        try:
            last = self._append(part, records)
        except Exception as e:
            log.error("offset commit not stored", group=group_id, error=repr(e))
            return reply(R.error_body(R.OFFSET_COMMIT, body, int(E.COORDINATOR_NOT_AVAILABLE)))

        def replicated(code: int) -> None:
            if code:  # Kafka's mapping of a failed offsets append
                log.warning("offset commit not replicated", group=group_id, code=code)
                lost = code in (E.NOT_LEADER_OR_FOLLOWER, E.KAFKA_STORAGE_ERROR)
                return reply(R.error_body(R.OFFSET_COMMIT, body, int(
                    E.NOT_COORDINATOR if lost else E.COORDINATOR_NOT_AVAILABLE)))
            for tp, v in accepted:
                g.offsets[tp] = v
            reply({"throttle_time_ms": 0, "topics": out})

        self._when_replicated(part.op, last, replicated)

    def offset_fetch(self, h, body: dict, reply, key: int) -> None:
        err, g, _ = self._locate(body["group_id"], key, create=False)
        if err:
            return reply(R.error_body(R.OFFSET_FETCH, body, err))
        offsets = g.offsets if g is not None else {}
        requested = body.get("topics")
        if requested is None:
            by_topic: dict[str, list[int]] = {}
            for topic, index in offsets:
                by_topic.setdefault(topic, []).append(index)
            wanted = [(t, sorted(ps)) for t, ps in by_topic.items()]
        else:
            wanted = [(t["name"], list(t["partition_indexes"])) for t in requested]
        topics = []
        for name, indexes in wanted:
            parts = []
            for index in indexes:
                v = offsets.get((name, index))
                parts.append({"partition_index": index, "committed_offset": -1 if v is None else v.offset,
                              "committed_leader_epoch": -1 if v is None else v.leader_epoch,
                              "metadata": "" if v is None else v.metadata, "error_code": 0})
            topics.append({"name": name, "partitions": parts})
        reply({"throttle_time_ms": 0, "topics": topics, "error_code": 0})

    def offset_delete(self, h, body: dict, reply, key: int) -> None:
        group_id = body["group_id"]
        err, g, part = self._locate(group_id, key, create=False)
        if not err and (g is None or g.state == DEAD):
            err = int(E.GROUP_ID_NOT_FOUND)
        if err:
            return reply(R.error_body(R.OFFSET_DELETE, body, err))
        subscribed: set[str] = set()
        if g.state != EMPTY:
            topics = g.subscribed_topics()
            if topics is None:
                return reply(R.error_body(R.OFFSET_DELETE, body, int(E.NON_EMPTY_GROUP)))
            subscribed = topics
        gone, out = [], []
        for t in body["topics"]:
            parts = []
            for p in t["partitions"]:
                index = p["partition_index"]
                code = 0
                if t["name"] in subscribed:
                    code = int(E.GROUP_SUBSCRIBED_TO_TOPIC)
                elif (t["name"], index) in g.offsets:
                    gone.append((t["name"], index))
                parts.append({"partition_index": index, "error_code": code})
            out.append({"name": t["name"], "partitions": parts})
        if gone:
            try:
                self._drop_offsets(part, g, gone)
            except Exception as e:
                log.error("offset delete not stored", group=group_id, error=repr(e))
                return reply(R.error_body(R.OFFSET_DELETE, body, int(E.COORDINATOR_NOT_AVAILABLE)))
        reply({"error_code": 0, "throttle_time_ms": 0, "topics": out})

    # -- admin (fanned out: each owner answers for its own groups) ----------------------------------------

    def describe_groups(self, h, body: dict, reply, key: int) -> None:
        out = []
        for gid in body["groups"]:
            part = self._coordinated(gid)
            if part is None:
                continue
            out.append(describe(gid, part.groups.get(gid)))
        reply({"throttle_time_ms": 0, "groups": out})

    def list_groups(self, h, body: dict, reply, key: int) -> None:
        wanted = {s.lower() for s in body.get("states_filter") or ()}  # empty: every state (KIP-518)
        groups = [{"group_id": g.group_id, "protocol_type": g.protocol_type, "group_state": g.state}
                  for part in self.parts.values() for g in part.groups.values()
                  if g.state != DEAD and (g.members or g.offsets or g.generation)
                  and (not wanted or g.state.lower() in wanted)]
        reply({"throttle_time_ms": 0, "error_code": 0, "groups": groups})

    def delete_groups(self, h, body: dict, reply, key: int) -> None:
        results = []
        for gid in body["groups_names"]:
            part = self._coordinated(gid)
            if part is None:
                continue
            g = part.groups.get(gid)
            if g is None or g.state == DEAD:
                code = int(E.GROUP_ID_NOT_FOUND)
            elif g.state != EMPTY:
                code = int(E.NON_EMPTY_GROUP)
            else:
                records = [(storage.offset_key(gid, t, p), None) for t, p in g.offsets]
                records.append((storage.group_key(gid), None))
                try:
                    self._append(part, records)
                    code = 0
                    g.delete()
                    del part.groups[gid]
                    part.stored.pop(gid, None)
                except Exception as e:
                    log.error("group delete not stored", group=gid, error=repr(e))
                    code = int(E.COORDINATOR_NOT_AVAILABLE)
            results.append({"group_id": gid, "error_code": code})
        reply({"throttle_time_ms": 0, "results": results})


def describe(group_id: str, g: Group | None) -> dict:
    if g is None or g.state == DEAD:
        return {"error_code": 0, "group_id": group_id, "group_state": DEAD, "protocol_type": "",
                "protocol_data": "", "members": []}
    stable = g.state == STABLE
    members = [{"member_id": m.member_id, "group_instance_id": m.instance_id, "client_id": m.client_id,
                "client_host": m.client_host,
                "member_metadata": m.metadata(g.protocol) if stable else b"",
                "member_assignment": m.assignment if stable else b""}
               for m in g.members.values()]
    return {"error_code": 0, "group_id": group_id, "group_state": g.state, "protocol_type": g.protocol_type,
            "protocol_data": (g.protocol or "") if stable else "", "members": members}


def attach(worker) -> GroupCoordinator:
    return GroupCoordinator(worker)
