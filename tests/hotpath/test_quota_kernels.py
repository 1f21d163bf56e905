"""The quota table kernels against their plain-Python twins (tests/hotpath/naive.py): random sequences of
counts, over few slots so that keys collide, probes run out and idle slots are taken over."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import hotpath
from broker.shm import layout as L
from hotpath import quota as kernels
from tests.hotpath import naive


def test_constants_match_the_layout():
    assert kernels.PROBE == L.QUOTA_PROBE == naive.QUOTA_PROBE
    assert kernels.KINDS == L.QUOTA_KINDS == naive.QUOTA_KINDS


ops = st.lists(st.tuples(st.integers(0, 2),            # table
                         st.integers(1, 40),           # key (small: keys collide in few slots)
                         st.integers(0, 1),            # kind
                         st.integers(0, 4),            # how far time moves (windows)
                         st.integers(-100, 10_000)),   # value
               max_size=80)


@settings(max_examples=200, deadline=None)
@given(ops, st.sampled_from([1, 3, 8, 70]), st.integers(2, 5))
def test_kernels_match_the_twins(sequence, slots, samples):
    tables = 3
    n = tables * slots * L.quota_slot_words(samples)
    words = np.zeros(n, dtype=np.int64)
    twin = [0] * n
    window = 1000
    for table, key, kind, step, value in sequence:
        window += step
        got = hotpath.quota_add(words, slots, samples, table, key, kind, window, value)
        want = naive.quota_add(twin, slots, samples, table, key, kind, window, value)
        assert got == want
        assert words.tolist() == twin
        for probe_key in {key, key + 1, 41}:
            for probe_kind in (0, 1):
                assert hotpath.quota_counted(words, tables, slots, samples, probe_key, probe_kind, window) == \
                    naive.quota_counted(twin, tables, slots, samples, probe_key, probe_kind, window)


def test_a_full_probe_refuses_and_a_window_later_reuses():
    slots, samples = 70, 2  # more slots than the probe reaches
    words = np.zeros(slots * L.quota_slot_words(samples), dtype=np.int64)
    keys = [slots * i + 5 for i in range(1, L.QUOTA_PROBE + 2)]  # all start probing at slot 5
    for k in keys[:L.QUOTA_PROBE]:
        assert hotpath.quota_add(words, slots, samples, 0, k, 0, 10, 1) >= 0
    assert hotpath.quota_add(words, slots, samples, 0, keys[-1], 0, 10, 1) == -1
    assert hotpath.quota_add(words, slots, samples, 0, keys[-1], 0, 12, 7) == 5  # the first slot is idle now
    assert hotpath.quota_counted(words, 1, slots, samples, keys[-1], 0, 12) == (7, 12)
