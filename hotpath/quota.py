"""Windowed byte counts of client quotas, in the shared quota table (layout: broker/shm/layout.py).

A quota is judged on every Produce and Fetch of a client that has one: count the request's bytes into this
worker's table, then sum the client's windows over every worker's table. With numpy slices that is ~9 µs a
request, a tenth of a 64 KiB Produce's broker time; here it is a loop over a few dozen words.

`words` is the whole table region as one int64 array: tables x slots x slot_words, slot_words =
2 + 2 * kinds * samples (key, reserved, then per kind `samples` window numbers and `samples` counts).
"""

from __future__ import annotations

import numpy as np

from . import _jit
from ._jit import I64, I64W, kernel, nt

PROBE = 64  # slots a key is looked for in, from key % slots (layout.QUOTA_PROBE)
KINDS = 3


@kernel(nt.int64(I64W, nt.int64, nt.int64, nt.int64, nt.int64, nt.int64, nt.int64, nt.int64))
def _add(words, slots, samples, table, key, kind, window, value):
    """Count `value` for `key` in `window` in table `table`; returns the slot, or -1 when the probe found
    neither the key, a never-used slot nor one whose windows are all out of range."""
    width = 2 + 2 * KINDS * samples
    base = table * slots * width
    start = key % slots
    spare = -1
    for j in range(min(PROBE, slots)):
        s = (start + j) % slots
        row = base + s * width
        k = words[row]
        if k == key:
            spare = s
            break
        if k == 0:
            if spare < 0:
                spare = s
            break
        if spare < 0:
            idle = True
            for c in range(KINDS):
                ids = row + 2 + c * 2 * samples
                for i in range(samples):
                    if words[ids + i] > window - samples:
                        idle = False
            if idle:
                spare = s
    if spare < 0:
        return -1
    row = base + spare * width
    if words[row] != key:
        for i in range(1, width):
            words[row + i] = 0
        words[row] = key
    ids = row + 2 + kind * 2 * samples
    i = window % samples
    if words[ids + i] != window:
        words[ids + samples + i] = 0
        words[ids + i] = window
    words[ids + samples + i] += value
    return spare


@kernel(nt.UniTuple(nt.int64, 2)(I64, nt.int64, nt.int64, nt.int64, nt.int64, nt.int64, nt.int64))
def _counted(words, tables, slots, samples, key, kind, window):
    """(bytes counted for `key` in the windows in range, the oldest such window) over every table."""
    width = 2 + 2 * KINDS * samples
    total = 0
    oldest = window
    start = key % slots
    for t in range(tables):
        base = t * slots * width
        for j in range(min(PROBE, slots)):
            row = base + ((start + j) % slots) * width
            k = words[row]
            if k == 0:
                break
            if k != key:
                continue
            ids = row + 2 + kind * 2 * samples
            for i in range(samples):
                w = words[ids + i]
                if window - samples < w <= window:
                    total += words[ids + samples + i]
                    if w < oldest:
                        oldest = w
            break
    return total, oldest


def quota_add(words: np.ndarray, slots: int, samples: int, table: int, key: int, kind: int, window: int,
              value: int) -> int:
    return int(_jit.call(_add, words, slots, samples, table, key, kind, window, value))


def quota_counted(words: np.ndarray, tables: int, slots: int, samples: int, key: int, kind: int,
                  window: int) -> tuple[int, int]:
    total, oldest = _jit.call(_counted, words, tables, slots, samples, key, kind, window)
    return int(total), int(oldest)
