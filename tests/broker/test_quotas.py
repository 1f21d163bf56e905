"""Client quotas: which entity's value applies, Kafka's rate and throttle arithmetic, and the shared table
the network workers count into (checked against a plain dictionary model)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.quotas import (CONSUMER_BYTE_RATE, DEFAULT, FETCH, PRODUCE, PRODUCER_BYTE_RATE, entity_key, entity_of,
                           max_fetch_bytes, principal_user, resolve, span_ms, throttle_ms)
from broker.shm import layout as L
from broker.shm.quota import QuotaTable, counter_key

U, C = "user", "client-id"

# Kafka's order, most specific first, with what each level counts together.
LEVELS = [
    ({U: "alice", C: "app"}, ("alice", "app")),
    ({U: "alice", C: DEFAULT}, ("alice", "app")),
    ({U: "alice"}, ("alice", "")),
    ({U: DEFAULT, C: "app"}, ("alice", "app")),
    ({U: DEFAULT, C: DEFAULT}, ("alice", "app")),
    ({U: DEFAULT}, ("alice", "")),
    ({C: "app"}, ("", "app")),
    ({C: DEFAULT}, ("", "app")),
]


def test_entity_key_round_trip_and_canonical():
    assert entity_key({C: "x", U: "y"}) == entity_key({U: "y", C: "x"})
    assert entity_of(entity_key({U: DEFAULT, C: "app"})) == {U: None, C: "app"}
    assert entity_key({U: "a"}) != entity_key({U: "a", C: DEFAULT})


@pytest.mark.parametrize("level", range(len(LEVELS)))
def test_most_specific_entity_wins(level):
    """With a value at `level` and every less specific level, `level` decides the limit and the tags."""
    quotas = {entity_key(e): {PRODUCER_BYTE_RATE: 1000.0 * (i + 1)} for i, (e, _) in enumerate(LEVELS) if i >= level}
    assert resolve(quotas, PRODUCER_BYTE_RATE, "alice", "app") == (1000.0 * (level + 1), LEVELS[level][1])


def test_quota_keys_resolve_independently():
    quotas = {entity_key({U: "alice"}): {CONSUMER_BYTE_RATE: 5.0},
              entity_key({C: "app"}): {PRODUCER_BYTE_RATE: 7.0}}
    assert resolve(quotas, PRODUCER_BYTE_RATE, "alice", "app") == (7.0, ("", "app"))
    assert resolve(quotas, CONSUMER_BYTE_RATE, "alice", "app") == (5.0, ("alice", ""))
    assert resolve(quotas, PRODUCER_BYTE_RATE, "bob", "other") is None


def test_request_percentage_resolves_like_the_byte_rates_and_counts_microseconds():
    from types import SimpleNamespace

    from broker.quotas import REQUEST, REQUEST_PERCENTAGE, QuotaMeter

    quotas = {entity_key({C: "chatty"}): {REQUEST_PERCENTAGE: 2.5}}
    assert resolve(quotas, REQUEST_PERCENTAGE, "ANONYMOUS", "chatty") == (2.5, ("", "chatty"))
    t = QuotaTable.create(tables=1, samples=2)
    try:
        meter = QuotaMeter(t, 0, 1000, 2)
        md = SimpleNamespace(version=1, quotas=quotas)
        assert meter.limits_requests(md)
        quota = meter.limit(md, REQUEST, "ANONYMOUS", "chatty")
        assert quota[0] == 25_000  # 2.5% of a core: 25 ms of broker time a second
        assert meter.record(quota, REQUEST, 20_000) == 0
        # far over: Kafka bounds a request-time throttle by one window
        assert meter.record(quota, REQUEST, 10_000_000) == 1000
        assert not meter.limits_requests(SimpleNamespace(version=2, quotas={}))
    finally:
        t.close()
        t.unlink()


def test_other_names_do_not_match():
    quotas = {entity_key({U: "alice", C: "app"}): {PRODUCER_BYTE_RATE: 1.0}}
    assert resolve(quotas, PRODUCER_BYTE_RATE, "alice", "other") is None
    assert resolve(quotas, PRODUCER_BYTE_RATE, "bob", "app") is None


def test_principal_user():
    assert principal_user("User:alice") == "alice"
    assert principal_user("User:ANONYMOUS") == "ANONYMOUS"
    assert principal_user("User:CN=a:b") == "CN=a:b"


def test_span_is_at_least_samples_minus_one_windows():
    # Kafka's Rate.windowSize: a client that started 2.5 windows ago is judged over 10 windows (11 samples),
    # one that started 10.5 windows ago over its whole 10.5.
    assert span_ms(now_ms=12_500, oldest_window=10, window_ms=1000, samples=11) == 10_500
    assert span_ms(now_ms=20_500, oldest_window=10, window_ms=1000, samples=11) == 10_500
    assert span_ms(now_ms=10_000, oldest_window=10, window_ms=1000, samples=11) == 10_000


def test_throttle_time_brings_the_rate_back_to_the_limit():
    # X = (O - T) / T * W: 20 KB over 10 s against 1 KB/s is 2 KB/s, twice the limit: wait another 10 s.
    assert throttle_ms(20_000, 10_000, 1000.0) == 10_000
    assert throttle_ms(10_000, 10_000, 1000.0) == 0
    assert throttle_ms(10_001, 10_000, 1000.0) == 1
    # After waiting X the same bytes over W + X are exactly at the limit.
    total, span, limit = 123_456, 10_000, 3_000.0
    x = throttle_ms(total, span, limit)
    assert total * 1000 / (span + x) == pytest.approx(limit, rel=1e-3)


def test_throttle_time_fits_its_int32_field():
    # 100 MB against 1 byte/s would be ~10^11 ms; the response field is an int32.
    assert throttle_ms(100_000_000, 10_000, 1.0) == 2**31 - 1


def test_max_fetch_bytes():
    assert max_fetch_bytes(1000.0, 1000, 11) == 10_000
    assert max_fetch_bytes(0.5, 1000, 2) == 1


# -- the shared table ------------------------------------------------------------------------------------

@pytest.fixture
def table():
    t = QuotaTable.create(tables=2, samples=4, slots=8)
    yield t
    t.close()
    t.unlink()


def test_counts_of_every_worker_are_summed(table):
    k = counter_key("alice", "app")
    assert table.add(0, k, PRODUCE, 100, 10)
    assert table.add(1, k, PRODUCE, 100, 5)
    assert table.add(1, k, PRODUCE, 101, 7)
    assert table.add(1, k, FETCH, 101, 1000)  # another kind: not in the produce total
    assert table.counted(k, PRODUCE, 101) == (22, 100)
    assert table.counted(k, FETCH, 101) == (1000, 101)
    assert table.counted(counter_key("bob", ""), PRODUCE, 101) == (0, 101)


def test_windows_out_of_range_do_not_count(table):
    k = counter_key("", "app")
    table.add(0, k, PRODUCE, 100, 10)
    table.add(0, k, PRODUCE, 103, 1)
    assert table.counted(k, PRODUCE, 103) == (11, 100)
    assert table.counted(k, PRODUCE, 104) == (1, 103)  # samples=4: windows 101..104 are in range
    table.add(0, k, PRODUCE, 104, 2)  # reuses window 100's place: its count is reset first
    assert table.counted(k, PRODUCE, 104) == (3, 103)


def test_take_back(table):
    k = counter_key("", "app")
    table.add(0, k, FETCH, 7, 500)
    table.add(0, k, FETCH, 7, -500)
    assert table.counted(k, FETCH, 7) == (0, 7)


def test_idle_slots_are_reused_and_a_full_probe_refuses(table):
    keys = [counter_key("", f"c{i}") for i in range(9)]
    for k in keys[:8]:
        assert table.add(0, k, PRODUCE, 50, 1)
    assert not table.add(0, keys[8], PRODUCE, 50, 1)  # eight slots, all active
    assert table.add(0, keys[8], PRODUCE, 54, 1)  # four windows later every other slot is idle
    assert table.counted(keys[8], PRODUCE, 54) == (1, 54)
    assert table.counted(keys[0], PRODUCE, 54) == (0, 54)


def test_attach_sees_the_same_counts(table):
    other = QuotaTable.attach(table.name)
    try:
        k = counter_key("u", "c")
        other.add(1, k, PRODUCE, 9, 42)
        assert table.counted(k, PRODUCE, 9) == (42, 9)
        assert (other.tables, other.slots, other.samples) == (2, 8, 4)
    finally:
        other.close()


def test_layout_size():
    assert L.quota_region_size(2, 8, 4) == L.QUOTA_START + 2 * 8 * (2 + 2 * 3 * 4) * 8


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 1), st.integers(0, 5), st.integers(0, 1), st.integers(0, 9),
                          st.integers(-50, 1000)), max_size=60))
def test_table_matches_a_dictionary(ops):
    """Random adds, in time order, against a model that keeps every (window, bytes) pair."""
    samples = 4
    t = QuotaTable.create(tables=2, samples=samples, slots=16)
    try:
        model: dict = {}
        now = 1000
        for worker, who, kind, step, value in ops:
            now += step // 3  # time only moves forward
            k = counter_key("", f"c{who}")
            assert t.add(worker, k, kind, now, value)
            model.setdefault((k, kind), []).append((now, value))
            for (mk, mkind), events in model.items():
                live = [(w, v) for w, v in events if now - samples < w <= now]
                want_total = sum(v for _, v in live)
                want_oldest = min((w for w, _ in live), default=now)
                assert t.counted(mk, mkind, now) == (want_total, want_oldest)
    finally:
        t.close()
        t.unlink()
