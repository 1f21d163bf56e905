"""Producer checks for batches written together: each against the state the earlier ones leave, none
recorded before the write."""

import numpy as np
import pytest

import hotpath
from broker.producers.owner import GroupCheck, InvalidRecord
from broker.producers.state import OutOfOrderSequence, ProducerStates


def batch(pid: int, seq: int, n: int, epoch: int = 0) -> bytes:
    return bytes(hotpath.build_records_batch([(None, b"v%d" % i) for i in range(n)],
                                             timestamps=np.full(n, 1_700_000_000_000, np.int64),
                                             producer_id=pid, producer_epoch=epoch, base_sequence=seq))


def test_each_batch_is_checked_against_those_let_through_before_it():
    states = ProducerStates()
    states.record(7, 0, 0, 2, 100, 102, 0)  # in the log: sequences 0-2 at offsets 100-102
    group = GroupCheck(states)
    assert group.check(batch(7, 3, 2)) is None          # continues the log
    assert group.check(batch(7, 0, 3)) == 100           # a retry of a batch in the log
    assert group.check(batch(7, 3, 2)) == -1            # a retry of the first batch of this group
    with pytest.raises(OutOfOrderSequence):
        group.check(batch(7, 9, 1))                     # a gap after the group's batches
    assert group.check(batch(-1, -1, 2, epoch=-1)) is None  # no producer id: nothing to check
    assert group.check(batch(7, 5, 1)) is None          # continues the group's batch, not the log
    assert group.check(batch(7, 5, 1)) == -3            # ... and is a duplicate once let through
    assert group.check(batch(8, 4, 1)) is None          # an unknown producer may start anywhere
    with pytest.raises(OutOfOrderSequence):
        group.check(batch(7, 1, 1, epoch=1))            # a new epoch starts at 0
    assert group.kept == [(7, 0, 3, 4), None, (7, 0, 5, 5), (8, 0, 4, 4)]
    # Nothing recorded yet: the partition's state still ends at sequence 2.
    assert states.check(7, 0, 3, 4) is None
    with pytest.raises(OutOfOrderSequence):
        states.check(7, 0, 5, 5)
    assert states.check(8, 0, 4, 4) is None and 8 not in states.entries


def test_an_idempotent_record_set_of_two_batches_is_refused():
    with pytest.raises(InvalidRecord):
        GroupCheck(ProducerStates()).check(batch(7, 0, 1) + batch(7, 1, 1))
