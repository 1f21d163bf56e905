"""Binary search over Kafka's segment index files, read in place from their mmap'd bytes.

* offset index (`.index`): 8-byte entries, int32 BE relative offset, int32 BE file position;
  relative offsets strictly increase.
* time index (`.timeindex`): 12-byte entries, int64 BE timestamp, int32 BE relative offset;
  timestamps never decrease.

Files are preallocated and zero-filled, so the number of live entries is where the zero tail begins.
Entry 0 always counts: (0, 0) is a real entry (relative offset 0 at position 0) and is also the answer
a lookup falls back to, so an empty preallocated index reading as one zero entry is harmless.
"""

from __future__ import annotations

from . import _jit
from .batch import _as_buffer, _check_i64, be32s, be64s
from ._jit import U8, kernel, nt

OFFSET_ENTRY = 8
TIME_ENTRY = 12


@kernel(nt.int64(U8, nt.int64, nt.int64))
def _offset_lookup(buf, n, target):
    """Slot of the largest entry with relative offset <= target, -1 if none."""
    lo = 0
    hi = n - 1
    found = -1
    while lo <= hi:
        mid = (lo + hi) >> 1
        if be32s(buf, mid * OFFSET_ENTRY) <= target:
            found = mid
            lo = mid + 1
        else:
            hi = mid - 1
    return found


@kernel(nt.int64(U8, nt.int64, nt.int64))
def _time_lookup(buf, n, target):
    """Slot of the first entry with timestamp >= target, n if none."""
    lo = 0
    hi = n
    while lo < hi:
        mid = (lo + hi) >> 1
        if be64s(buf, mid * TIME_ENTRY) >= target:
            hi = mid
        else:
            lo = mid + 1
    return lo


@kernel(nt.int64(U8, nt.int64, nt.int64))
def _valid_entries(buf, entry_size, n):
    """Index of the first all-zero entry after entry 0 (n if none)."""
    if n == 0:
        return 0
    lo = 1
    hi = n
    while lo < hi:
        mid = (lo + hi) >> 1
        zero = True
        base = mid * entry_size
        for k in range(entry_size):
            if buf[base + k] != 0:
                zero = False
                break
        if zero:
            hi = mid
        else:
            lo = mid + 1
    return lo


def _entries(buf, entry_size: int, n_entries: int):
    arr = _as_buffer(buf)
    if not 0 <= n_entries <= len(arr) // entry_size:
        raise ValueError(f"{n_entries} entries of {entry_size} bytes do not fit in {len(arr)} bytes")
    return arr


def offset_index_lookup(index_buf_u8, n_entries: int, target_relative_offset: int) -> int:
    """Slot of the largest offset-index entry with relative offset <= target, -1 if none."""
    arr = _entries(index_buf_u8, OFFSET_ENTRY, n_entries)
    _check_i64("target_relative_offset", target_relative_offset)
    return int(_jit.call(_offset_lookup, arr, n_entries, target_relative_offset))


def time_index_lookup(index_buf_u8, n_entries: int, target_timestamp: int) -> int:
    """Slot of the first time-index entry with timestamp >= target, n_entries if none."""
    arr = _entries(index_buf_u8, TIME_ENTRY, n_entries)
    _check_i64("target_timestamp", target_timestamp)
    return int(_jit.call(_time_lookup, arr, n_entries, target_timestamp))


def index_valid_entries(index_buf_u8, entry_size: int, max_entries: int) -> int:
    """Live entries of a zero-padded index: those before the first all-zero entry after entry 0."""
    if entry_size <= 0:
        raise ValueError("entry_size must be positive")
    arr = _as_buffer(index_buf_u8)
    n = min(max_entries, len(arr) // entry_size)
    if n < 0:
        raise ValueError("max_entries must be >= 0")
    return int(_jit.call(_valid_entries, arr, entry_size, n))
