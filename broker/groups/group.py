"""One classic consumer group: membership, generations, assignments and committed offsets.

States: Empty -> PreparingRebalance -> CompletingRebalance -> Stable (and Dead once deleted). Joins are
parked until every known member has rejoined (or the rebalance timeout removes the ones that did not);
completing the join bumps the generation, picks the protocol every member supports with the most
first-preference votes and hands the leader all members' metadata. SyncGroup parks followers until the
leader's assignments arrive. Time is passed in (`now`, monotonic seconds) and `tick(now)` enforces
session timeouts, rebalance timeouts and the initial rebalance delay, so the machine has no I/O of its own:
`store(group)` persists membership (raising on failure) and replies are callables taking a body dict.
"""

from __future__ import annotations

import struct
import uuid
from typing import Callable

from netio.codec import ErrorCode as E

EMPTY = "Empty"
PREPARING = "PreparingRebalance"
COMPLETING = "CompletingRebalance"
STABLE = "Stable"
DEAD = "Dead"

Reply = Callable[[dict], None]


class Member:
    __slots__ = ("member_id", "instance_id", "client_id", "client_host", "session_timeout_ms",
                 "rebalance_timeout_ms", "protocol_type", "protocols", "assignment", "join_reply",
                 "sync_reply", "deadline", "synced")

    def __init__(self, member_id: str, instance_id: str | None, client_id: str, client_host: str,
                 session_timeout_ms: int, rebalance_timeout_ms: int, protocol_type: str,
                 protocols: list[tuple[str, bytes]]):
        self.member_id = member_id
        self.instance_id = instance_id
        self.client_id = client_id
        self.client_host = client_host
        self.session_timeout_ms = session_timeout_ms
        self.rebalance_timeout_ms = rebalance_timeout_ms
        self.protocol_type = protocol_type
        self.protocols = protocols
        self.assignment = b""
        self.join_reply: Reply | None = None
        self.sync_reply: Reply | None = None
        self.deadline = 0.0
        self.synced = False

    def metadata(self, protocol: str | None) -> bytes:
        for name, meta in self.protocols:
            if name == protocol:
                return meta
        return b""

    def touch(self, now: float) -> None:
        self.deadline = now + self.session_timeout_ms / 1000.0


class JoinRequest:
    """A JoinGroup as the group needs it (copied out of the request, which dies with its ring entry)."""

    __slots__ = ("member_id", "instance_id", "client_id", "client_host", "session_timeout_ms",
                 "rebalance_timeout_ms", "protocol_type", "protocols", "version")

    def __init__(self, member_id: str, instance_id: str | None, client_id: str, session_timeout_ms: int,
                 rebalance_timeout_ms: int, protocol_type: str, protocols: list[tuple[str, bytes]],
                 version: int, client_host: str = ""):
        self.member_id = member_id
        self.instance_id = instance_id
        self.client_id = client_id
        self.client_host = client_host
        self.session_timeout_ms = session_timeout_ms
        self.rebalance_timeout_ms = session_timeout_ms if rebalance_timeout_ms < 0 else rebalance_timeout_ms
        self.protocol_type = protocol_type
        self.protocols = protocols
        self.version = version


class Group:
    def __init__(self, group_id: str, store: Callable[["Group"], None], initial_delay_ms: int = 0,
                 min_session_ms: int = 6000, max_session_ms: int = 1800000):
        self.group_id = group_id
        self.store = store
        self.initial_delay_ms = initial_delay_ms
        self.min_session_ms = min_session_ms
        self.max_session_ms = max_session_ms
        self.state = EMPTY
        self.generation = 0
        self.protocol_type = ""
        self.protocol: str | None = None
        self.leader: str | None = None
        self.members: dict[str, Member] = {}
        self.static: dict[str, str] = {}  # group.instance.id -> member id
        self.pending: dict[str, float] = {}  # ids handed out with MEMBER_ID_REQUIRED -> expiry
        self.offsets: dict[tuple[str, int], object] = {}  # (topic, partition) -> storage.OffsetValue
        self.rebalance_deadline = 0.0
        self.initial_until = 0.0  # initial rebalance delay: joins wait at least until then
        self.initial_limit = 0.0
        self.empty_since_ms: int | None = None  # wall clock: when it was last seen turning Empty

    # -- queries ------------------------------------------------------------------------------------------

    def expired_offsets(self, now_ms: int, retention_ms: int) -> list[tuple[str, int]]:
        """Offsets past offsets.retention.minutes, as Kafka's GroupMetadata.removeExpiredOffsets finds them:
        a group using group management expires all its offsets once it has been Empty that long, and while
        it has consumers, the offsets of topics none of them subscribes to, each that long after its commit;
        a group never managed (standalone consumers committing) expires each offset that long after its
        commit. Other states keep everything."""
        def by_commit(tps) -> list[tuple[str, int]]:
            return [tp for tp in tps if 0 <= self.offsets[tp].commit_timestamp <= now_ms - retention_ms]

        if not self.protocol_type:
            return by_commit(list(self.offsets)) if self.state == EMPTY else []
        if self.state == EMPTY:
            since = self.empty_since_ms
            return list(self.offsets) if since is not None and since <= now_ms - retention_ms else []
        if self.state == STABLE and self.protocol_type == "consumer":
            topics = self.subscribed_topics()
            if topics is not None:
                return by_commit([tp for tp in self.offsets if tp[0] not in topics])
        return []

    def subscribed_topics(self) -> set[str] | None:
        """Topics the members subscribe to (consumer protocol), None when it cannot be told."""
        if self.protocol_type != "consumer" or self.protocol is None:
            return None
        topics: set[str] = set()
        for m in self.members.values():
            parsed = parse_subscription(m.metadata(self.protocol))
            if parsed is None:
                return None
            topics.update(parsed)
        return topics

    def _member_error(self, member_id: str, instance_id: str | None) -> int:
        """UNKNOWN_MEMBER_ID / FENCED_INSTANCE_ID for a member that is not (or no longer) this id; 0 if ok."""
        if instance_id is not None and instance_id in self.static and self.static[instance_id] != member_id:
            return int(E.FENCED_INSTANCE_ID)
        if member_id not in self.members:
            return int(E.UNKNOWN_MEMBER_ID)
        return 0

    # -- JoinGroup ----------------------------------------------------------------------------------------

    def join(self, req: JoinRequest, reply: Reply, now: float) -> None:
        def fail(code: int, member_id: str = "") -> None:
            reply(join_body(code, member_id=member_id))

        if self.state == DEAD:
            return fail(int(E.COORDINATOR_NOT_AVAILABLE), req.member_id)
        if not self.min_session_ms <= req.session_timeout_ms <= self.max_session_ms:
            return fail(int(E.INVALID_SESSION_TIMEOUT), req.member_id)
        if not req.protocol_type or not req.protocols or not self._protocols_fit(req):
            return fail(int(E.INCONSISTENT_GROUP_PROTOCOL), req.member_id)
        if req.member_id == "":
            new_id = f"{req.client_id or 'member'}-{uuid.uuid4()}"
            if req.instance_id is not None:
                old = self.static.get(req.instance_id)
                if old is not None and old in self.members:
                    return self._static_rejoin(old, new_id, req, reply, now)
                return self._add_and_join(new_id, req, reply, now)
            if req.version >= 4:
                self.pending[new_id] = now + req.session_timeout_ms / 1000.0
                return fail(int(E.MEMBER_ID_REQUIRED), new_id)
            return self._add_and_join(new_id, req, reply, now)
        if req.member_id in self.pending and req.member_id not in self.members:
            del self.pending[req.member_id]
            return self._add_and_join(req.member_id, req, reply, now)
        code = self._member_error(req.member_id, req.instance_id)
        if code:
            return fail(code, req.member_id)
        m = self.members[req.member_id]
        changed = m.protocols != req.protocols
        self._update(m, req)
        m.touch(now)
        if self.state == PREPARING:
            self._park_join(m, reply)
            self.maybe_complete_join(now)
        elif self.state == COMPLETING:
            if changed:
                self._park_join(m, reply)
                self.prepare_rebalance(now)
            else:
                reply(self._join_result(m))
        elif self.state == STABLE:
            if changed or m.member_id == self.leader:
                self._park_join(m, reply)
                self.prepare_rebalance(now)
            else:
                reply(self._join_result(m))
        else:  # Empty with a known member cannot happen; treat as a new join
            self._park_join(m, reply)
            self.prepare_rebalance(now)

    def _protocols_fit(self, req: JoinRequest) -> bool:
        if not any(mid != req.member_id for mid in self.members):
            return True
        if req.protocol_type != self.protocol_type:
            return False
        names = {n for n, _ in req.protocols}
        return bool(names & self._candidates(exclude=req.member_id))

    def _candidates(self, exclude: str | None = None) -> set[str]:
        sets = [{n for n, _ in m.protocols} for mid, m in self.members.items() if mid != exclude]
        if not sets:
            return set()
        out = sets[0]
        for s in sets[1:]:
            out = out & s
        return out

    def _update(self, m: Member, req: JoinRequest) -> None:
        m.protocols = req.protocols
        m.session_timeout_ms = req.session_timeout_ms
        m.rebalance_timeout_ms = req.rebalance_timeout_ms
        m.client_id = req.client_id
        m.client_host = req.client_host or m.client_host

    def _park_join(self, m: Member, reply: Reply) -> None:
        if m.join_reply is not None:  # a retried join replaces the earlier one, which the member forgot
            m.join_reply(join_body(int(E.REBALANCE_IN_PROGRESS), member_id=m.member_id))
        m.join_reply = reply

    def _add_and_join(self, member_id: str, req: JoinRequest, reply: Reply, now: float) -> None:
        m = Member(member_id, req.instance_id, req.client_id, req.client_host, req.session_timeout_ms,
                   req.rebalance_timeout_ms, req.protocol_type, req.protocols)
        if not self.members:
            self.protocol_type = req.protocol_type
        self.pending.pop(member_id, None)
        self.members[member_id] = m
        if req.instance_id is not None:
            self.static[req.instance_id] = member_id
        m.touch(now)
        m.join_reply = reply
        if self.state == PREPARING and self.initial_until:
            # Initial delay: every new member pushes the first rebalance out, up to the rebalance timeout.
            self.initial_until = min(self.initial_limit, now + self.initial_delay_ms / 1000.0)
        self.prepare_rebalance(now)
        self.maybe_complete_join(now)

    def _static_rejoin(self, old_id: str, new_id: str, req: JoinRequest, reply: Reply, now: float) -> None:
        """A known group.instance.id with an empty member id: it takes over its old membership under a new
        id (the old id is fenced from now on); a Stable group keeps its assignment, no rebalance."""
        m = self.members.pop(old_id)
        changed = m.protocols != req.protocols
        m.member_id = new_id
        self.members[new_id] = m
        self.static[req.instance_id] = new_id
        if self.leader == old_id:
            self.leader = new_id
        self._update(m, req)
        m.touch(now)
        if m.join_reply is not None:
            m.join_reply(join_body(int(E.FENCED_INSTANCE_ID), member_id=old_id))
            m.join_reply = None
        if m.sync_reply is not None:
            m.sync_reply(sync_body(int(E.FENCED_INSTANCE_ID)))
            m.sync_reply = None
        if self.state == STABLE and not changed:
            try:
                self.store(self)
            except Exception:
                reply(join_body(int(E.UNKNOWN_SERVER_ERROR), member_id=new_id))
                return
            reply(self._join_result(m))
            return
        m.join_reply = reply
        if self.state == PREPARING:
            self.maybe_complete_join(now)
        else:
            self.prepare_rebalance(now)

    def _join_result(self, m: Member) -> dict:
        members = []
        if m.member_id == self.leader:
            members = [{"member_id": x.member_id, "group_instance_id": x.instance_id,
                        "metadata": x.metadata(self.protocol)} for x in self.members.values()]
        return join_body(0, self.generation, self.protocol or "", self.leader or "", m.member_id, members)

    # -- rebalancing --------------------------------------------------------------------------------------

    def prepare_rebalance(self, now: float) -> None:
        if self.state == PREPARING:
            return
        if self.state == COMPLETING:
            for m in self.members.values():
                m.assignment = b""
                if m.sync_reply is not None:
                    m.sync_reply(sync_body(int(E.REBALANCE_IN_PROGRESS)))
                    m.sync_reply = None
        timeout = max((m.rebalance_timeout_ms for m in self.members.values()), default=0) / 1000.0
        if self.state == EMPTY and self.initial_delay_ms > 0:
            self.initial_until = now + self.initial_delay_ms / 1000.0
            self.initial_limit = now + max(timeout, self.initial_delay_ms / 1000.0)
            self.rebalance_deadline = self.initial_limit
        else:
            self.initial_until = 0.0
            self.rebalance_deadline = now + timeout
        self.state = PREPARING

    def maybe_complete_join(self, now: float) -> None:
        if self.state != PREPARING or (self.initial_until and now < self.initial_until):
            return
        if all(m.join_reply is not None for m in self.members.values()) and not self.pending:
            self.complete_join(now)

    def complete_join(self, now: float) -> None:
        for m in [m for m in self.members.values() if m.join_reply is None]:
            self._remove(m)
        self.initial_until = 0.0
        if not self.members:
            self.generation += 1
            self.protocol = None
            self.leader = None
            self.state = EMPTY
            self._store_quietly()
            return
        self.generation += 1
        self.protocol = self.select_protocol()
        if self.leader not in self.members:
            self.leader = next(iter(self.members))
        self.state = COMPLETING
        self.rebalance_deadline = now + max(m.rebalance_timeout_ms for m in self.members.values()) / 1000.0
        for m in self.members.values():
            m.synced = False
            m.touch(now)
            reply, m.join_reply = m.join_reply, None
            reply(self._join_result(m))

    def select_protocol(self) -> str:
        candidates = self._candidates()
        votes: dict[str, int] = {}
        for m in self.members.values():
            for name, _ in m.protocols:
                if name in candidates:
                    votes[name] = votes.get(name, 0) + 1
                    break
        first = next(iter(self.members.values()))
        order = [n for n, _ in first.protocols]
        return max(votes, key=lambda n: (votes[n], -order.index(n) if n in order else -len(order)))

    def _remove(self, m: Member) -> None:
        self.members.pop(m.member_id, None)
        if m.instance_id is not None and self.static.get(m.instance_id) == m.member_id:
            del self.static[m.instance_id]
        if m.join_reply is not None:
            m.join_reply(join_body(int(E.UNKNOWN_MEMBER_ID), member_id=m.member_id))
            m.join_reply = None
        if m.sync_reply is not None:
            m.sync_reply(sync_body(int(E.UNKNOWN_MEMBER_ID)))
            m.sync_reply = None
        if self.leader == m.member_id:
            self.leader = next(iter(self.members), None)

    def remove_member(self, m: Member, now: float) -> None:
        """A member left or timed out: the others rebalance without it."""
        self._remove(m)
        if self.state in (STABLE, COMPLETING):
            self.prepare_rebalance(now)
        self.maybe_complete_join(now)

    def _store_quietly(self) -> None:
        try:
            self.store(self)
        except Exception:
            pass  # membership is rebuilt by the members rejoining; offsets are what must not be lost

    # -- SyncGroup ----------------------------------------------------------------------------------------

    def sync(self, member_id: str, instance_id: str | None, generation: int,
             assignments: dict[str, bytes], reply: Reply, now: float) -> None:
        code = self._member_error(member_id, instance_id)
        if code:
            return reply(sync_body(code))
        if generation != self.generation:
            return reply(sync_body(int(E.ILLEGAL_GENERATION)))
        m = self.members[member_id]
        m.touch(now)
        if self.state == PREPARING:
            return reply(sync_body(int(E.REBALANCE_IN_PROGRESS)))
        if self.state == STABLE:
            return reply(sync_body(0, m.assignment))
        if self.state != COMPLETING:
            return reply(sync_body(int(E.UNKNOWN_MEMBER_ID)))
        m.synced = True
        if m.sync_reply is not None:
            m.sync_reply(sync_body(int(E.REBALANCE_IN_PROGRESS)))
        m.sync_reply = reply
        if member_id != self.leader:
            return
        for x in self.members.values():
            x.assignment = bytes(assignments.get(x.member_id, b""))
        try:
            self.store(self)
        except Exception:
            for x in self.members.values():
                x.assignment = b""
                if x.sync_reply is not None:
                    x.sync_reply(sync_body(int(E.COORDINATOR_NOT_AVAILABLE)))
                    x.sync_reply = None
            self.prepare_rebalance(now)
            return
        self.state = STABLE
        for x in self.members.values():
            if x.sync_reply is not None:
                r, x.sync_reply = x.sync_reply, None
                r(sync_body(0, x.assignment))

    # -- Heartbeat / LeaveGroup ---------------------------------------------------------------------------

    def heartbeat(self, member_id: str, instance_id: str | None, generation: int, now: float) -> int:
        code = self._member_error(member_id, instance_id)
        if code:
            return code
        if self.state == EMPTY:
            return int(E.UNKNOWN_MEMBER_ID)
        m = self.members[member_id]
        if generation != self.generation:
            return int(E.ILLEGAL_GENERATION)
        m.touch(now)
        if self.state == PREPARING:
            return int(E.REBALANCE_IN_PROGRESS)
        return 0

    def leave(self, member_id: str, instance_id: str | None, now: float) -> int:
        if instance_id is not None:
            known = self.static.get(instance_id)
            if known is None:
                return int(E.UNKNOWN_MEMBER_ID)
            if member_id and member_id != known:
                return int(E.FENCED_INSTANCE_ID)
            member_id = known
        if member_id in self.pending:
            del self.pending[member_id]
            self.maybe_complete_join(now)
            return 0
        m = self.members.get(member_id)
        if m is None:
            return int(E.UNKNOWN_MEMBER_ID)
        self.remove_member(m, now)
        return 0

    # -- offsets ------------------------------------------------------------------------------------------

    def validate_commit(self, member_id: str, instance_id: str | None, generation: int, now: float) -> int:
        if self.state == DEAD:
            return int(E.COORDINATOR_NOT_AVAILABLE)
        if generation < 0 and self.state == EMPTY:
            return 0  # standalone commit: a consumer that assigns partitions itself
        code = self._member_error(member_id, instance_id)
        if code:
            return code
        if generation != self.generation:
            return int(E.ILLEGAL_GENERATION)
        if self.state == COMPLETING:
            return int(E.REBALANCE_IN_PROGRESS)
        self.members[member_id].touch(now)
        return 0

    # -- time ---------------------------------------------------------------------------------------------

    def tick(self, now: float) -> None:
        for pid in [p for p, t in self.pending.items() if t <= now]:
            del self.pending[pid]
        for m in list(self.members.values()):
            if m.deadline <= now and m.join_reply is None and m.sync_reply is None \
                    and m.member_id in self.members:
                self.remove_member(m, now)
        if self.state == PREPARING:
            if now >= self.rebalance_deadline:
                self.complete_join(now)
            else:
                self.maybe_complete_join(now)
        elif self.state == COMPLETING and now >= self.rebalance_deadline:
            late = [m for m in self.members.values() if not m.synced]
            for m in late:
                self._remove(m)
            if late:
                self.prepare_rebalance(now)
                self.maybe_complete_join(now)

    def delete(self) -> None:
        for m in list(self.members.values()):
            self._remove(m)
        self.state = DEAD


def join_body(error: int, generation: int = -1, protocol: str = "", leader: str = "", member_id: str = "",
              members: list | None = None) -> dict:
    return {"throttle_time_ms": 0, "error_code": error, "generation_id": generation, "protocol_name": protocol,
            "leader": leader, "member_id": member_id, "members": members or []}


def sync_body(error: int, assignment: bytes = b"") -> dict:
    return {"throttle_time_ms": 0, "error_code": error, "assignment": assignment}


def parse_subscription(data: bytes) -> list[str] | None:
    """Topics of a ConsumerProtocolSubscription (version i16, topics [str], ...); None if it does not parse."""
    try:
        pos = 2
        (n,) = struct.unpack_from(">i", data, pos)
        pos += 4
        topics = []
        for _ in range(n):
            (ln,) = struct.unpack_from(">h", data, pos)
            pos += 2
            topics.append(bytes(data[pos:pos + ln]).decode())
            pos += ln
        return topics
    except (struct.error, UnicodeDecodeError):
        return None
