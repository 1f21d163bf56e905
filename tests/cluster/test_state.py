"""The controller's pure decisions over the cluster state: preferred and unclean leader elections."""

from broker.cluster.state import PartState, elect_unclean, prefer


def test_preferred_election_needs_the_first_replica_live_and_in_sync():
    replicas = (1, 2, 3)
    led_by_2 = PartState(2, 5, (1, 2, 3), mod_revision=9)
    assert prefer(replicas, led_by_2, {1, 2, 3}) == PartState(1, 6, (1, 2, 3), 9)  # a new epoch, same ISR
    assert prefer(replicas, PartState(2, 5, (2, 3)), {1, 2, 3}) is None  # 1 is not in sync yet
    assert prefer(replicas, led_by_2, {2, 3}) is None  # 1 is not live, or restarted unseen
    assert prefer(replicas, PartState(1, 5, (1, 2, 3)), {1, 2, 3}) is None  # it leads already
    assert prefer(replicas, PartState(-1, 5, (1,)), {1, 2, 3}) == PartState(1, 6, (1,))  # offline, 1 kept
    assert prefer((), led_by_2, {1, 2, 3}) is None


def test_unclean_election_prefers_an_isr_member_then_any_live_replica():
    replicas = (1, 2, 3)
    assert elect_unclean(replicas, PartState(2, 5, (2,)), {1, 2, 3}) is None  # it has a leader
    assert elect_unclean(replicas, PartState(-1, 5, (3,)), {2, 3}) == PartState(3, 6, (3,))  # the ISR's last
    # The ISR's last member is gone for good: the first live replica leads, alone in the ISR.
    assert elect_unclean(replicas, PartState(-1, 5, (1,)), {2, 3}) == PartState(2, 6, (2,))
    assert elect_unclean(replicas, PartState(-1, 5, (1,)), set()) is None


def test_a_reassignment_runs_through_target_plus_removing_and_completes_once_the_target_is_in_sync():
    from broker.cluster.state import complete_reassignment, elect, reassign

    # {1,2} -> {2,3}: Kafka's order, target then the removed ones; adding and removing kept sorted.
    replicas, st = reassign((1, 2), PartState(1, 4, (1, 2), 7), (2, 3))
    assert replicas == (2, 3, 1) and (st.adding, st.removing) == ((3,), (1,)) and (st.leader, st.isr) == (1, (1, 2))
    assert complete_reassignment(replicas, st) is None  # 3 is still catching up
    done_replicas, done = complete_reassignment(replicas, PartState(1, 4, (1, 2, 3), 8, (3,), (1,)))
    # The leader is not in the target: the first target replica in sync leads under a new epoch.
    assert done_replicas == (2, 3) and done == PartState(2, 5, (2, 3), 8)
    # A broker leaving mid-move keeps the move recorded.
    left = elect(replicas, PartState(1, 4, (1, 2), 8, (3,), (1,)), {2, 3}, set(), False)
    assert (left.leader, left.leader_epoch, left.isr, left.adding, left.removing) == (2, 5, (2,), (3,), (1,))


def test_reassignments_that_need_no_catching_up_complete_at_once_and_cancels_go_back():
    from broker.cluster.state import reassign, revert_reassignment

    assert reassign((1, 2, 3), PartState(1, 0, (1, 2, 3)), (3, 2, 1)) == ((3, 2, 1), PartState(1, 0, (1, 2, 3)))
    assert reassign((1, 2, 3), PartState(1, 0, (1, 2, 3)), (2,)) == ((2,), PartState(2, 1, (2,)))
    assert reassign((1,), PartState(1, 0, (3,)), (2,)) is None  # nothing in sync would remain
    moving = reassign((1,), PartState(1, 0, (1,)), (1, 2, 3))
    assert moving == ((1, 2, 3), PartState(1, 0, (1,), 0, (2, 3), ()))
    # Replaced: measured from the original replicas, so 3 is simply dropped.
    assert reassign(*moving, (1, 2)) == ((1, 2), PartState(1, 0, (1,), 0, (2,), ()))
    assert revert_reassignment(*moving) == ((1,), PartState(1, 0, (1,)))
    # An adding replica that came to lead hands back to an original one.
    assert revert_reassignment((2, 1), PartState(2, 3, (1, 2), 0, (2,), ())) == ((1,), PartState(1, 4, (1,)))
    assert revert_reassignment((2, 1), PartState(2, 3, (2,), 0, (2,), ())) is None
