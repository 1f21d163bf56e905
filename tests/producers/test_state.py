"""Producer state rules: duplicates, sequence gaps, epochs, wrap-around, expiry."""

import pytest

from broker.producers.state import (INT32_MAX, MAX_BATCHES, InvalidProducerEpoch, OutOfOrderSequence,
                                    ProducerStates, last_sequence, next_sequence)
from netio.codec import ErrorCode


def appended(states, pid, epoch, first, n, base, now=0):
    last = last_sequence(first, n - 1)
    assert states.check(pid, epoch, first, last) is None
    states.record(pid, epoch, first, last, base, base + n - 1, now)


def test_unknown_producer_may_start_anywhere():
    s = ProducerStates()
    assert s.check(7, 0, 42, 44) is None


def test_retried_batch_is_a_duplicate_with_its_original_offset():
    s = ProducerStates()
    appended(s, 7, 0, 0, 3, 100)
    appended(s, 7, 0, 3, 2, 103)
    assert s.check(7, 0, 0, 2) == 100
    assert s.check(7, 0, 3, 4) == 103


def test_only_the_last_five_batches_are_remembered():
    s = ProducerStates()
    for i in range(MAX_BATCHES + 1):
        appended(s, 1, 0, i, 1, 10 + i)
    assert len(s.entries[1].batches) == MAX_BATCHES
    assert s.check(1, 0, MAX_BATCHES, MAX_BATCHES) == 10 + MAX_BATCHES
    with pytest.raises(OutOfOrderSequence):
        s.check(1, 0, 0, 0)  # fell out of the window: neither a known duplicate nor the next sequence


def test_gap_is_out_of_order():
    s = ProducerStates()
    appended(s, 7, 0, 0, 3, 0)
    with pytest.raises(OutOfOrderSequence) as e:
        s.check(7, 0, 4, 4)
    assert e.value.error_code == ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER
    with pytest.raises(OutOfOrderSequence):
        s.check(7, 0, 0, 1)  # overlaps a known batch without matching it


def test_older_epoch_is_fenced_newer_epoch_restarts_at_zero():
    s = ProducerStates()
    appended(s, 7, 3, 0, 2, 0)
    with pytest.raises(InvalidProducerEpoch) as e:
        s.check(7, 2, 2, 2)
    assert e.value.error_code == ErrorCode.INVALID_PRODUCER_EPOCH
    with pytest.raises(OutOfOrderSequence):
        s.check(7, 4, 5, 5)
    appended(s, 7, 4, 0, 1, 2)
    assert s.entries[7].epoch == 4 and s.entries[7].batches == [(0, 0, 2, 2)]


def test_sequences_wrap_at_int32_max():
    assert last_sequence(INT32_MAX - 1, 3) == 1
    assert next_sequence(INT32_MAX) == 0
    s = ProducerStates()
    appended(s, 9, 0, INT32_MAX - 2, 3, 0)  # ends exactly at INT32_MAX
    appended(s, 9, 0, 0, 2, 3)
    appended(s, 9, 0, 2, 5, 5)
    s2 = ProducerStates()
    appended(s2, 9, 0, INT32_MAX - 1, 4, 0)  # crosses the wrap inside one batch: last sequence 1
    assert s2.check(9, 0, INT32_MAX - 1, 1) == 0
    assert s2.check(9, 0, 2, 2) is None


def test_idle_producers_expire():
    s = ProducerStates()
    appended(s, 1, 0, 0, 1, 0, now=1_000)
    appended(s, 2, 0, 0, 1, 1, now=5_000)
    s.changed = False
    assert s.expire(now_ms=6_000, expiration_ms=3_000) == 1
    assert list(s.entries) == [2] and s.changed
    assert s.check(1, 0, 17, 17) is None  # forgotten: accepted as a new producer
