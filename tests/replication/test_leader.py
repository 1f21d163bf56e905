"""LeaderState: high watermark, ISR shrink/expand and acks=all completion, on a fake clock."""

from broker.replication.leader import (NOT_ENOUGH_REPLICAS_AFTER_APPEND, NOT_LEADER_OR_FOLLOWER, REQUEST_TIMED_OUT,
                                       LeaderState)

LAG = 10.0


def leader(isr=(1, 2, 3), hw=0, leo=0, now=0.0, min_isr=2) -> LeaderState:
    return LeaderState(1, (1, 2, 3), isr, hw, leo, now, LAG, min_isr)


def test_high_watermark_is_the_smallest_isr_log_end_and_never_moves_back():
    s = leader()
    assert not s.follower_fetch(2, 10, 10, 1.0)  # broker 3 not heard from yet: no move
    assert s.hw == 0
    assert s.follower_fetch(3, 4, 10, 1.0)
    assert s.hw == 4
    assert s.follower_fetch(3, 10, 12, 2.0)
    assert s.hw == 10  # broker 2 is at 10
    assert not s.follower_fetch(3, 5, 12, 3.0)  # a follower that truncated does not pull the HW back
    assert s.hw == 10


def test_follower_fetch_offset_is_capped_at_the_leader_log_end():
    s = leader(isr=(1, 2))
    s.follower_fetch(2, 50, 20, 1.0)
    assert s.followers[2].leo == 20
    assert s.hw == 20


def test_isr_of_leader_alone_follows_its_log_end():
    s = leader(isr=(1,), min_isr=1)
    assert s.advance(7)
    assert s.hw == 7


def test_lagging_follower_leaves_the_isr_and_a_caught_up_one_joins():
    s = leader(now=0.0)
    s.follower_fetch(2, 0, 0, 1.0)
    s.follower_fetch(3, 0, 0, 1.0)
    assert s.isr_change(0, 5.0) is None
    # Broker 2 keeps fetching at the end, broker 3 stays behind from offset 0 while the leader moves on.
    s.follower_fetch(2, 100, 100, 9.0)
    s.follower_fetch(3, 0, 100, 9.0)
    assert s.isr_change(100, 10.5) is None  # 3 caught up at 1.0: 9.5 s ago
    assert s.isr_change(100, 11.5) == (1, 2)
    assert s.isr_change(100, 11.6) is None  # asked already, not answered yet
    s.update_assignment((1, 2, 3), (1, 2), 2, 12.0)
    assert s.isr_request is None
    assert s.hw == 0
    assert s.advance(100) and s.hw == 100  # without 3 the HW follows broker 2
    # 3 catches up: fetching at the leader's end offset rejoins it.
    s.follower_fetch(3, 100, 100, 13.0)
    assert s.isr_change(100, 13.0) == (1, 2, 3)
    assert s.isr_request == (1, 2, 3)
    s.update_assignment((1, 2, 3), (1, 2, 3), 2, 13.1)
    assert s.isr_request is None  # the metadata shows the change asked for: nothing pending any more
    # 3 counts for the HW again: broker 2 reaching the new end does not move it past 3.
    assert not s.follower_fetch(2, 120, 120, 13.2)
    assert s.hw == 100
    assert s.follower_fetch(3, 120, 120, 13.3) and s.hw == 120


def test_caught_up_as_of_the_previous_fetch():
    s = leader(isr=(1, 2), now=0.0)
    s.follower_fetch(2, 0, 50, 1.0)  # behind: leader at 50
    s.follower_fetch(2, 50, 80, 8.0)  # reached what the leader had at the previous fetch
    assert s.followers[2].caught_up == 1.0
    s.follower_fetch(2, 80, 90, 20.0)
    assert s.followers[2].caught_up == 8.0
    assert s.isr_change(90, 20.0) == (1,)  # 12 s since caught up


def test_refused_isr_change_is_decided_again():
    s = leader(isr=(1, 2))
    s.follower_fetch(2, 0, 10, 0.0)
    assert s.isr_change(10, 11.0) == (1,)
    s.isr_answered(0, 11.1)
    assert s.isr_change(10, 11.5) is None  # accepted, waiting for the metadata to show it
    assert s.isr_change(10, 16.5) == (1,)  # neither seen nor refused for 5 s: asked again
    s.isr_answered(107, 16.6)  # INELIGIBLE_REPLICA
    assert s.isr_change(10, 17.0) is None  # not again at once
    assert s.isr_change(10, 17.7) == (1,)


def test_joining_needs_the_epoch_start():
    """A follower below the offset this epoch began at may not join, even when the HW is lower still."""
    # Broker 3 is in the ISR but never fetches, so the HW stays at 0, below the epoch start of 30.
    s = LeaderState(1, (1, 2, 3), (1, 3), 0, 30, 0.0, LAG, 1)
    s.follower_fetch(2, 20, 40, 1.0)
    assert s.hw == 0
    assert s.isr_change(40, 1.0) is None  # past the HW, short of the epoch start
    s.follower_fetch(2, 29, 40, 2.0)
    assert s.isr_change(40, 2.0) is None
    s.follower_fetch(2, 30, 40, 3.0)
    assert s.hw == 0
    assert s.isr_change(40, 3.0) == (1, 3, 2)


def test_joining_needs_the_high_watermark():
    """Past the epoch start is not enough when the HW is further on."""
    s = LeaderState(1, (1, 2), (1,), 0, 30, 0.0, LAG, 1)
    s.advance(40)
    assert s.hw == 40
    s.follower_fetch(2, 35, 40, 1.0)
    assert s.isr_change(40, 1.0) is None  # past the epoch start, short of the HW
    s.follower_fetch(2, 39, 40, 2.0)
    assert s.isr_change(40, 2.0) is None
    s.follower_fetch(2, 40, 40, 3.0)
    assert s.isr_change(40, 3.0) == (1, 2)


def test_acks_complete_when_the_high_watermark_covers_them():
    s = leader(isr=(1, 2), min_isr=2)
    done = []
    assert s.wait_for(4, 0.0, 5.0, lambda c: done.append((5, c))) is None
    assert s.wait_for(9, 0.0, 5.0, lambda c: done.append((10, c))) is None
    s.follower_fetch(2, 5, 10, 1.0)
    assert s.complete(1.0) == 1
    assert done == [(5, 0)]
    s.follower_fetch(2, 10, 10, 1.5)
    s.complete(1.5)
    assert done == [(5, 0), (10, 0)]
    assert s.wait_for(9, 2.0, 5.0, lambda c: done.append(c)) == 0  # already covered: answered at once


def test_acks_time_out_in_order():
    s = leader(isr=(1, 2))
    done = []
    s.wait_for(0, 0.0, 5.0, lambda c: done.append(("a", c)))
    s.wait_for(1, 1.0, 5.0, lambda c: done.append(("b", c)))
    assert s.next_ack_deadline() == 5.0
    assert s.complete(4.9) == 0
    assert s.complete(5.0) == 1
    assert done == [("a", REQUEST_TIMED_OUT)]
    assert s.complete(6.0) == 1
    assert done[-1] == ("b", REQUEST_TIMED_OUT)
    assert s.next_ack_deadline() is None


def test_each_ack_has_its_own_timeout():
    """Deadlines come from each request's timeout, so a later append may be due first."""
    s = leader(isr=(1, 2))
    done = []
    s.wait_for(0, 0.0, 30.0, lambda c: done.append(("long", c)))
    s.wait_for(1, 1.0, 2.0, lambda c: done.append(("short", c)))
    assert s.next_ack_deadline() == 3.0
    assert s.complete(3.0) == 1
    assert done == [("short", REQUEST_TIMED_OUT)]
    assert s.next_ack_deadline() == 30.0
    s.follower_fetch(2, 1, 1, 4.0)  # the follower now has offset 0: the long one is covered
    s.complete(4.0)
    assert done[-1] == ("long", 0)
    assert s.next_ack_deadline() is None


def test_isr_below_min_insync_answers_not_enough_replicas_after_append():
    s = leader(isr=(1, 2), min_isr=2)
    done = []
    s.wait_for(0, 0.0, 5.0, done.append)
    s.update_assignment((1, 2, 3), (1,), 2, 1.0)  # 2 left the ISR meanwhile
    s.advance(1)
    s.complete(1.0)
    assert done == [NOT_ENOUGH_REPLICAS_AFTER_APPEND]


def test_abandon_answers_every_waiting_append():
    s = leader()
    done = []
    s.wait_for(0, 0.0, 5.0, done.append)
    s.wait_for(1, 0.0, 5.0, done.append)
    s.abandon()
    assert done == [NOT_LEADER_OR_FOLLOWER, NOT_LEADER_OR_FOLLOWER]
    assert not s.acks


def test_replicas_removed_are_forgotten():
    s = leader()
    s.update_assignment((1, 2), (1, 2), 1, 0.0)
    assert set(s.followers) == {2}
    assert s.follower_fetch(3, 10, 10, 0.0) is False
