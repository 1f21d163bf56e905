"""The classic group state machine, driven with explicit time (no broker): joins, syncs, heartbeats,
timeouts, static membership and commit validation."""

import pytest

from broker.groups.group import COMPLETING, EMPTY, PREPARING, STABLE, Group, JoinRequest
from netio.codec import ErrorCode as E

SESSION = 6000
REBALANCE = 10000


class Box:
    """Collects the (possibly later) reply to one request."""

    def __init__(self):
        self.bodies = []

    def __call__(self, body):
        self.bodies.append(body)

    @property
    def body(self):
        assert len(self.bodies) == 1, self.bodies
        return self.bodies[0]


def new_group(delay_ms=0, fail_store=False):
    stored = []

    def store(g):
        if fail_store:
            raise OSError("disk full")
        stored.append((g.generation, g.state, {m: x.assignment for m, x in g.members.items()}))

    g = Group("g", store, initial_delay_ms=delay_ms)
    g.stored = stored
    return g


def req(member_id="", protocols=(("range", b"r"),), instance=None, version=5, session=SESSION,
        rebalance=REBALANCE):
    return JoinRequest(member_id, instance, "client", session, rebalance, "consumer", list(protocols), version)


def join(g, now, **kw):
    box = Box()
    g.join(req(**kw), box, now)
    return box


def join_new(g, now, **kw):
    """v4+ join: MEMBER_ID_REQUIRED first, then the real join with the handed-out id."""
    first = join(g, now, **kw)
    assert first.body["error_code"] == E.MEMBER_ID_REQUIRED
    member_id = first.body["member_id"]
    assert member_id.startswith("client-")
    return member_id, join(g, now, member_id=member_id, **kw)


def sync(g, member_id, generation, now, assignments=None, instance=None):
    box = Box()
    g.sync(member_id, instance, generation, assignments or {}, box, now)
    return box


def stable_group(n, now=0.0):
    g = new_group()
    ids, boxes = [], []
    for _ in range(n):
        mid, box = join_new(g, now)
        ids.append(mid)
        boxes.append(box)
        if len(ids) > 1:  # everyone already in must rejoin for the new member to get in
            for i, other in enumerate(ids[:-1]):
                boxes[i] = join(g, now, member_id=other)
    assert all(b.body["error_code"] == 0 for b in boxes)
    leader = boxes[0].body["leader"]
    gen = g.generation
    syncs = {m: sync(g, m, gen, now, {x: x.encode() for x in ids} if m == leader else None) for m in ids}
    assert g.state == STABLE
    assert all(syncs[m].body["assignment"] == m.encode() for m in ids)
    return g, ids, leader


def test_first_member_leads_and_gets_its_assignment():
    g = new_group()
    mid, box = join_new(g, 0.0)
    body = box.body
    assert body["error_code"] == 0 and body["generation_id"] == 1 and body["leader"] == mid
    assert body["protocol_name"] == "range"
    assert body["members"] == [{"member_id": mid, "group_instance_id": None, "metadata": b"r"}]
    assert g.state == COMPLETING
    s = sync(g, mid, 1, 0.1, {mid: b"A"})
    assert s.body == {"throttle_time_ms": 0, "error_code": 0, "assignment": b"A"}
    assert g.state == STABLE
    assert g.stored[-1] == (1, COMPLETING, {mid: b"A"})  # stored before the members were answered


def test_join_v3_gets_an_id_without_member_id_required():
    g = new_group()
    box = join(g, 0.0, version=3)
    assert box.body["error_code"] == 0 and box.body["member_id"]


def test_second_member_triggers_rebalance_and_only_leader_sees_members():
    g, (a,), _ = stable_group(1)
    b, box_b = join_new(g, 1.0)
    assert box_b.bodies == [] and g.state == PREPARING  # parked until a rejoins
    assert g.heartbeat(a, None, 1, 1.1) == E.REBALANCE_IN_PROGRESS
    box_a = join(g, 1.2, member_id=a)
    ja, jb = box_a.body, box_b.body
    assert ja["generation_id"] == jb["generation_id"] == 2
    assert ja["leader"] == a and len(ja["members"]) == 2 and jb["members"] == []
    follower = sync(g, b, 2, 1.3)
    assert follower.bodies == []  # parked until the leader's assignments arrive
    sync(g, a, 2, 1.4, {a: b"1", b: b"2"})
    assert follower.body["assignment"] == b"2"
    assert g.heartbeat(b, None, 2, 1.5) == 0


def test_protocol_with_most_first_choices_that_all_support():
    g = new_group()
    rr, rng, coop = ("roundrobin", b"x"), ("range", b"y"), ("cooperative-sticky", b"z")
    a, _ = join_new(g, 0.0, protocols=[rng, rr])
    g.prepare_rebalance(0.0)
    g.state = PREPARING
    b_box = join(g, 0.0, protocols=[rr, rng], version=3)
    c_box = join(g, 0.0, protocols=[coop, rr], version=3)
    assert c_box.bodies == [] and b_box.bodies == []
    join(g, 0.0, member_id=a, protocols=[rng, rr])
    assert g.protocol == "roundrobin"  # range is not supported by c
    bad = join(g, 0.1, protocols=[("sticky", b"")], version=3)
    assert bad.body["error_code"] == E.INCONSISTENT_GROUP_PROTOCOL


def test_session_timeout_removes_a_silent_member():
    g, (a, b), leader = stable_group(2)
    for t in (2.0, 4.0, 5.9):
        assert g.heartbeat(a, None, g.generation, t) == 0
    g.tick(6.5)  # b last heard from at 0.0 with a 6 s session
    assert b not in g.members and g.state == PREPARING
    box = join(g, 6.6, member_id=a)
    assert box.body["generation_id"] == 3 and box.body["leader"] == a


def test_rebalance_timeout_drops_members_that_do_not_rejoin():
    g, (a, b), _ = stable_group(2)
    g.heartbeat(b, None, g.generation, 5.0)
    _, box_c = join_new(g, 5.0)
    box_a = join(g, 5.1, member_id=a)
    assert box_a.bodies == []
    for t in (8.0, 11.0, 14.0):  # b stays alive but never rejoins
        assert g.heartbeat(b, None, 2, t) == E.REBALANCE_IN_PROGRESS
        g.tick(t)
    assert box_a.bodies == []
    g.tick(5.0 + REBALANCE / 1000 + 0.1)
    assert box_a.body["error_code"] == 0 and box_c.body["error_code"] == 0
    assert b not in g.members and len(g.members) == 2


def test_initial_rebalance_delay_collects_members():
    g = new_group(delay_ms=3000)
    a, box_a = join_new(g, 0.0)
    b, box_b = join_new(g, 1.0)
    g.tick(2.0)
    assert box_a.bodies == [] and box_b.bodies == []
    g.tick(4.1)  # three seconds after the last new member
    assert box_a.body["generation_id"] == box_b.body["generation_id"] == 1
    assert len(g.members) == 2


def test_error_codes():
    g, (a,), _ = stable_group(1)
    assert join(g, 0.0, session=1000).body["error_code"] == E.INVALID_SESSION_TIMEOUT
    assert join(g, 0.0, member_id="nobody").body["error_code"] == E.UNKNOWN_MEMBER_ID
    assert g.heartbeat("nobody", None, 1, 0.0) == E.UNKNOWN_MEMBER_ID
    assert g.heartbeat(a, None, 7, 0.0) == E.ILLEGAL_GENERATION
    assert sync(g, a, 7, 0.0).body["error_code"] == E.ILLEGAL_GENERATION
    assert g.validate_commit(a, None, 7, 0.0) == E.ILLEGAL_GENERATION
    assert g.validate_commit("nobody", None, 1, 0.0) == E.UNKNOWN_MEMBER_ID
    assert g.validate_commit(a, None, 1, 0.0) == 0


def test_standalone_commits_only_while_empty():
    g = new_group()
    assert g.validate_commit("", None, -1, 0.0) == 0
    g, _, _ = stable_group(1)
    assert g.validate_commit("", None, -1, 0.0) == E.UNKNOWN_MEMBER_ID


def test_leave_rebalances_the_rest_and_last_leave_empties():
    g, (a, b), _ = stable_group(2)
    assert g.leave(b, None, 1.0) == 0
    assert g.state == PREPARING
    assert join(g, 1.1, member_id=a).body["generation_id"] == 3
    assert g.leave("nobody", None, 1.2) == E.UNKNOWN_MEMBER_ID
    assert g.leave(a, None, 1.3) == 0
    g.tick(1.4)
    assert g.state == EMPTY and not g.members
    assert g.stored[-1][1] == EMPTY


def test_static_member_rejoins_without_rebalance_and_old_id_is_fenced():
    g = new_group()
    box = join(g, 0.0, instance="i-1")  # a static member needs no MEMBER_ID_REQUIRED round
    old = box.body["member_id"]
    sync(g, old, 1, 0.0, {old: b"P"})
    assert g.state == STABLE
    again = join(g, 1.0, instance="i-1")
    new = again.body["member_id"]
    assert new != old and again.body["generation_id"] == 1 and g.state == STABLE
    assert sync(g, new, 1, 1.0, instance="i-1").body["assignment"] == b"P"
    assert g.heartbeat(old, "i-1", 1, 1.1) == E.FENCED_INSTANCE_ID
    assert g.validate_commit(old, "i-1", 1, 1.1) == E.FENCED_INSTANCE_ID
    assert g.leave(old, "i-1", 1.2) == E.FENCED_INSTANCE_ID
    assert g.leave("", "i-1", 1.3) == 0 and not g.members


def test_sync_that_cannot_be_stored_is_refused():
    g = new_group(fail_store=True)
    mid, box = join_new(g, 0.0)
    s = sync(g, mid, 1, 0.0, {mid: b"A"})
    assert s.body["error_code"] == E.COORDINATOR_NOT_AVAILABLE
    assert g.state != STABLE


@pytest.mark.parametrize("n", [3, 5])
def test_every_member_answered_once_per_rebalance(n):
    """Members arrive one at a time; each arrival is a rebalance that every member already in rejoins.
    Every join of every generation gets exactly one reply, for that generation, and keeps only that one."""
    g = new_group()
    ids, rounds = [], []  # rounds[k]: member id -> the box of its join in generation k + 1
    for gen in range(1, n + 1):
        mid, box = join_new(g, 0.0)
        boxes = {mid: box}
        for other in ids:
            boxes[other] = join(g, 0.0, member_id=other)
        ids.append(mid)
        rounds.append(boxes)
        assert g.generation == gen and set(g.members) == set(ids)
        for earlier_gen, earlier in enumerate(rounds, 1):
            for m, b in earlier.items():
                assert len(b.bodies) == 1, (gen, earlier_gen, m, b.bodies)
                assert b.body["error_code"] == 0 and b.body["member_id"] == m
                assert b.body["generation_id"] == earlier_gen
        leader = boxes[ids[0]].body["leader"]
        assert all(b.body["leader"] == leader for b in boxes.values())
        assert {x["member_id"] for x in boxes[leader].body["members"]} == set(ids)
    syncs = {m: sync(g, m, n, 0.0, {x: x.encode() for x in ids} if m == leader else None) for m in ids}
    assert g.state == STABLE
    assert all(syncs[m].body["assignment"] == m.encode() for m in ids)
    for gen, boxes in enumerate(rounds, 1):
        assert set(boxes) == set(ids[:gen])
        for m, b in boxes.items():
            assert len(b.bodies) == 1, (gen, m, b.bodies)
            assert b.body["generation_id"] == gen


def test_retried_join_replaces_the_parked_one():
    g, (a, b), _ = stable_group(2)
    join_new(g, 1.0)
    first = join(g, 1.1, member_id=a)
    second = join(g, 1.2, member_id=a)
    assert first.body["error_code"] == E.REBALANCE_IN_PROGRESS and second.bodies == []
    join(g, 1.3, member_id=b)
    assert second.body["error_code"] == 0 and second.body["generation_id"] == 3


def test_leader_that_never_syncs_is_dropped_after_the_rebalance_timeout():
    g = new_group(delay_ms=500)
    a, box_a = join_new(g, 0.0)
    b, box_b = join_new(g, 0.0)
    g.tick(0.6)
    assert box_a.body["leader"] == a and g.state == COMPLETING
    follower = sync(g, b, 1, 0.5)
    for t in (3.0, 6.0, 9.0):
        assert g.heartbeat(a, None, 1, t) == 0  # alive, but its SyncGroup never comes
        g.tick(t)
    assert follower.bodies == []
    g.tick(0.6 + REBALANCE / 1000 + 0.1)
    assert a not in g.members and follower.body["error_code"] == E.REBALANCE_IN_PROGRESS
    rejoin = join(g, 10.8, member_id=b)
    assert rejoin.body["leader"] == b and rejoin.body["generation_id"] == 2


def test_member_id_handed_out_but_never_used_expires():
    g, (a,), _ = stable_group(1)
    first = join(g, 1.0)
    assert first.body["error_code"] == E.MEMBER_ID_REQUIRED and g.pending
    g.heartbeat(a, None, 1, 5.0)
    g.tick(7.5)  # the id's session timeout passed without a join
    assert not g.pending and g.state == STABLE


# -- offsets.retention.minutes (KIP-211) ----------------------------------------------------------------------

def _subscription(*topics: str) -> bytes:
    import struct

    out = struct.pack(">hi", 0, len(topics))
    for t in topics:
        out += struct.pack(">h", len(t)) + t.encode()
    return out + struct.pack(">i", -1)


def test_expired_offsets_follow_kafkas_rules():
    from broker.groups.storage import OffsetValue

    day = 86_400_000
    now = 100 * day
    # A standalone consumer (no group management): each offset a retention after its commit.
    g = new_group()
    g.offsets = {("a", 0): OffsetValue(5, commit_timestamp=now - 8 * day),
                 ("a", 1): OffsetValue(6, commit_timestamp=now - 6 * day),
                 ("b", 0): OffsetValue(7, commit_timestamp=-1)}  # no timestamp: kept
    assert g.expired_offsets(now, 7 * day) == [("a", 0)]

    # A consumer group with members: only topics none of them subscribes to, by commit time.
    g = new_group()
    m, _ = join_new(g, 0.0, protocols=(("range", _subscription("a")),))
    sync(g, m, g.generation, 0.0)
    assert g.state == STABLE
    g.offsets = {("a", 0): OffsetValue(1, commit_timestamp=now - 30 * day),
                 ("old", 0): OffsetValue(2, commit_timestamp=now - 30 * day),
                 ("old", 1): OffsetValue(3, commit_timestamp=now - day)}
    assert g.expired_offsets(now, 7 * day) == [("old", 0)]

    # The same group once Empty: everything, a retention after it emptied, whatever the commit times.
    g.state, g.members = EMPTY, {}
    g.empty_since_ms = now - 6 * day
    assert g.expired_offsets(now, 7 * day) == []
    g.empty_since_ms = now - 7 * day
    assert sorted(g.expired_offsets(now, 7 * day)) == [("a", 0), ("old", 0), ("old", 1)]

    # Rebalancing: nothing.
    g.state = PREPARING
    assert g.expired_offsets(now, 7 * day) == []
