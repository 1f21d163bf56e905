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
