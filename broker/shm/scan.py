"""Numba kernel that walks a run of committed ring entries in one call.

``Ring.peek_batch`` uses it so a consumer pays one dispatch per batch instead of several
interpreter-level struct reads per message.  It applies exactly the rules of
:mod:`broker.shm.layout` (commit word read first, stop at the first entry whose commit word does
not match, skip PAD entries and the implicit 8-byte pad); the pure-Python ``Ring.peek`` is its
reference twin and the tests compare the two.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from broker.shm import layout

_HDR = layout.ENTRY_HEADER
_PAD = layout.KIND_PAD


@njit("UniTuple(i8, 2)(i8[::1], i8, i8, i8, i8, i8, i8[:, ::1])", cache=True, nogil=True)
def _scan(words, base, cap, tail, head, max_count, out):  # pragma: no cover - compiled
    n = 0
    while tail < head and n < max_count:
        off = tail % cap
        if cap - off < _HDR:
            tail += cap - off
            continue
        i = (base + off) >> 3
        commit = words[i]  # first read of the entry
        word = words[i + 1]
        length = word & 0xFFFFFFFF
        kind = (word >> 32) & 0xFFFFFFFF
        end = tail + ((_HDR + 7 + length) & ~7)
        if commit != end:
            break
        tail = end
        if kind != _PAD:
            out[0, n] = base + off + _HDR
            out[1, n] = length
            out[2, n] = kind
            n += 1
    return n, tail


def scan_entries(
    words: np.ndarray, base: int, cap: int, tail: int, head: int, max_count: int, out: np.ndarray
) -> tuple[int, int]:
    """Fill ``out[0:3, :n]`` with (payload offset, length, kind) of up to ``max_count``
    complete entries between ``tail`` and ``head``; returns ``(n, tail after them)``.

    ``words`` is an int64 view of the whole ring mapping; ``out`` is int64 with shape
    ``(3, >= max_count)``.
    """
    if out.shape[0] != 3 or out.shape[1] < max_count:
        raise ValueError("out must have shape (3, >= max_count)")
    return _scan(words, base, cap, tail, head, max_count, out)
