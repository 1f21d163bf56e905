"""The latency histogram against a plain-Python nearest-rank percentile oracle."""

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from perf.histogram import BUCKETS, RELATIVE_ERROR, Histogram, bucket_high, bucket_of

values_st = st.lists(st.integers(min_value=0, max_value=(1 << 44)), min_size=1, max_size=300)
quantiles = (50, 90, 99, 99.9, 100)


def oracle(values: list[int], q: float) -> int:
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered) - 1e-9))
    return ordered[rank - 1]


def assert_close(reported: int, exact: int) -> None:
    assert exact <= reported <= exact + exact * RELATIVE_ERROR, (reported, exact)


@settings(max_examples=200, deadline=None)
@given(values_st)
def test_percentiles_match_the_oracle_within_the_bucket_width(values):
    h = Histogram()
    h.record_many(values)
    for q in quantiles:
        assert_close(h.percentile(q), oracle(values, q))
    assert (h.count, h.min, h.max, h.total) == (len(values), min(values), max(values), sum(values))


@settings(max_examples=200, deadline=None)
@given(values_st)
def test_few_and_many_values_fill_the_buckets_bucket_of_names(values):
    h = Histogram()
    h.record_many(values)
    assert np.array_equal(h.counts, np.bincount(bucket_of(np.array(values, np.int64)), minlength=BUCKETS))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 1 << 40), st.integers(1, 50)), min_size=1, max_size=50))
def test_weighted_records_equal_repeated_values(pairs):
    weighted, plain = Histogram(), Histogram()
    for value, times in pairs:
        weighted.record(value, times)
    plain.record_many([v for v, t in pairs for _ in range(t)])
    assert np.array_equal(weighted.counts, plain.counts)
    for q in quantiles:
        assert weighted.percentile(q) == plain.percentile(q)


@settings(max_examples=100, deadline=None)
@given(values_st, values_st)
def test_merge_and_state_round_trip_equal_one_histogram(a, b):
    left, right, whole = Histogram(), Histogram(), Histogram()
    left.record_many(a)
    right.record_many(b)
    whole.record_many(a + b)
    merged = Histogram.from_state(left.to_state())
    merged.merge(Histogram.from_state(right.to_state()))
    assert np.array_equal(merged.counts, whole.counts)
    assert (merged.count, merged.min, merged.max, merged.total) == (whole.count, whole.min, whole.max, whole.total)
    for q in quantiles:
        assert_close(merged.percentile(q), oracle(a + b, q))


@given(st.integers(0, (1 << 53) - 1))
def test_every_value_lies_in_its_bucket(v):
    index = int(bucket_of(np.array([v]))[0])
    assert v <= bucket_high(index)
    assert index == 0 or bucket_high(index - 1) < v


def test_empty_histogram_reports_zeros():
    h = Histogram()
    assert h.percentile(99) == 0
    assert h.summary_ms() == {"p50": 0.0, "p90": 0.0, "p99": 0.0, "p999": 0.0, "max": 0.0, "mean": 0.0}


def test_summary_is_in_milliseconds():
    h = Histogram()
    h.record_many([1_000_000] * 99 + [250_000_000])
    s = h.summary_ms()
    assert 1.0 <= s["p50"] <= 1.0 * (1 + RELATIVE_ERROR)
    assert s["max"] == 250.0


@given(st.integers(0, (1 << 53) - 1))
def test_scalar_and_vector_bucket_index_agree(v):
    from perf.histogram import bucket_index

    assert bucket_index(v) == int(bucket_of(np.array([v]))[0])
