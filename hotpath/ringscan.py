"""Walk a run of committed shared-memory ring entries in one call.

`broker.shm.ring.Ring.peek_batch` uses it so a consumer pays one dispatch per batch instead of several
interpreter-level struct reads per message. It applies exactly the entry rules documented in
`broker.shm.layout` (commit word read first, stop at the first entry whose commit word does not match,
skip PAD entries and a lap end too short for a header); the pure-Python `Ring.peek` is its twin and the
ring tests compare the two. Layout constants are arguments, so this package stays independent of the
broker's modules.
"""

from __future__ import annotations

import numpy as np
from numba import types as nt

from . import _jit
from ._jit import I64W2, kernel

I64W = nt.Array(nt.int64, 1, "C")


@kernel(nt.UniTuple(nt.int64, 2)(I64W, nt.int64, nt.int64, nt.int64, nt.int64, nt.int64, I64W2, nt.int64,
                                 nt.int64))
def _scan(words, base, cap, tail, head, max_count, out, hdr, pad_kind):  # pragma: no cover - compiled
    n = 0
    while tail < head and n < max_count:
        off = tail % cap
        if cap - off < hdr:
            tail += cap - off
            continue
        i = (base + off) >> 3
        if i + 1 >= words.shape[0]:
            break
        commit = words[i]  # first read of the entry
        word = words[i + 1]
        length = word & 0xFFFFFFFF
        kind = (word >> 32) & 0xFFFFFFFF
        end = tail + ((hdr + 7 + length) & ~7)
        if commit != end:
            break
        tail = end
        if kind != pad_kind:
            out[0, n] = base + off + hdr
            out[1, n] = length
            out[2, n] = kind
            n += 1
    return n, tail


def scan_ring_entries(words: np.ndarray, base: int, cap: int, tail: int, head: int, max_count: int,
                      out: np.ndarray, header_size: int, pad_kind: int) -> tuple[int, int]:
    """Fill `out[0:3, :n]` with (payload offset, length, kind) of up to `max_count` complete entries
    between `tail` and `head`; returns `(n, tail after them)`.

    `words` is an int64 view of the whole ring mapping; `out` is int64 with shape `(3, >= max_count)`.
    """
    if out.shape[0] != 3 or out.shape[1] < max_count:
        raise ValueError("out must have shape (3, >= max_count)")
    return _jit.call(_scan, words, base, cap, tail, head, max_count, out, header_size, pad_kind)
