"""The records inside one batch, record by record: where each lies, its offset and timestamp deltas, whether
its key and value are null, and a 128-bit hash of its key.

Log compaction keeps the last record of every key. A partition holds millions of records, so deciding which
survive must not build a Python object per record: this scan fills numpy columns that the cleaner sorts and
compares as arrays. The two 64-bit hashes are independent (FNV-1a, and a multiply-xorshift seeded with the
key's length); two keys share a slot only when both collide. The scan checks each record's framing against
the batch's records section and reports the first malformed record instead of reading past it.
"""

from __future__ import annotations

import numpy as np

from . import _jit
from ._jit import U8, kernel, nt
from .crc import as_u8
from .varint import read_varint, read_varlong

KEY_NULL = 1
VALUE_NULL = 2
MIN_RECORD = 7  # length, attributes, timestamp delta, offset delta, key length, value length, header count

# columns of `scan_records`'s first result
START, END, OFFSET_DELTA, TIMESTAMP_DELTA, FLAGS = range(5)

_FNV_BASIS = 0xCBF29CE484222325
_FNV_PRIME = 0x100000001B3
_MIX = 0xFF51AFD7ED558CCD
_GOLDEN = 0x9E3779B97F4A7C15
_M64 = (1 << 64) - 1

_I64W2 = nt.Array(nt.int64, 2, "C")
_U64W2 = nt.Array(nt.uint64, 2, "C")


@kernel(nt.int64(U8, nt.int64, nt.int64, nt.int64, _I64W2, _U64W2))
def _scan_records(buf, start, end, count, cols, hashes):
    """Fill `cols` (start, end, offset delta, timestamp delta, flags) and `hashes` (two key hashes) for
    `count` records in buf[start:end]. Returns `count`, or -1 - i when record i is malformed, or -1 - count
    when bytes are left over after the last record."""
    p = start
    for i in range(count):
        rec = p
        length, p = read_varint(buf, p, end)
        if p < 0 or length < MIN_RECORD - 1 or length > end - p:
            return -1 - i
        rend = p + length
        p += 1  # attributes
        ts_delta, p = read_varlong(buf, p, rend)
        if p < 0:
            return -1 - i
        off_delta, p = read_varint(buf, p, rend)
        if p < 0 or off_delta < 0:
            return -1 - i
        flags = 0
        klen, p = read_varint(buf, p, rend)
        if p < 0 or klen < -1 or klen > rend - p:
            return -1 - i
        h1 = np.uint64(_FNV_BASIS)
        h2 = np.uint64(_GOLDEN) ^ np.uint64(klen + 1)
        if klen < 0:
            flags |= KEY_NULL
        else:
            for j in range(klen):
                b = np.uint64(buf[p + j])
                h1 = (h1 ^ b) * np.uint64(_FNV_PRIME)
                h2 = (h2 ^ b) * np.uint64(_MIX)
                h2 ^= h2 >> np.uint64(29)
            p += klen
        vlen, p = read_varint(buf, p, rend)
        if p < 0 or vlen < -1 or vlen > rend - p:
            return -1 - i
        if vlen < 0:
            flags |= VALUE_NULL
        else:
            p += vlen
        headers, p = read_varint(buf, p, rend)
        if p < 0 or headers < 0:
            return -1 - i
        for _ in range(headers):
            n, p = read_varint(buf, p, rend)
            if p < 0 or n < 0 or n > rend - p:
                return -1 - i
            p += n
            n, p = read_varint(buf, p, rend)
            if p < 0 or n < -1 or n > rend - p:
                return -1 - i
            if n > 0:
                p += n
        if p != rend:
            return -1 - i
        cols[START, i] = rec
        cols[END, i] = rend
        cols[OFFSET_DELTA, i] = off_delta
        cols[TIMESTAMP_DELTA, i] = ts_delta
        cols[FLAGS, i] = flags
        hashes[0, i] = h1
        hashes[1, i] = h2
    if p != end:
        return -1 - count
    return count


def scan_records(buf, start: int, end: int, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Columns (START, END, OFFSET_DELTA, TIMESTAMP_DELTA, FLAGS) x `count` (int64) and the two key hashes
    x `count` (uint64) of the `count` records exactly filling buf[start:end] (a batch's records section,
    decompressed). ValueError naming the record when they do not."""
    arr = as_u8(buf)
    if not 0 <= start <= end <= len(arr):
        raise ValueError(f"bad range [{start}, {end}) for a buffer of {len(arr)} bytes")
    if count < 0 or count > (end - start) // MIN_RECORD:
        raise ValueError(f"{count} records cannot fit in {end - start} bytes")
    cols = np.empty((5, count), np.int64)
    hashes = np.empty((2, count), np.uint64)
    if _jit.NO_JIT:
        with np.errstate(over="ignore"):
            got = _scan_records(arr, start, end, count, cols, hashes)
    else:
        got = _jit.call(_scan_records, arr, np.int64(start), np.int64(end), np.int64(count), cols, hashes)
    if got != count:
        i = -1 - int(got)
        raise ValueError(f"record {i} of {count} is malformed" if i < count else
                         f"bytes follow the last of {count} records")
    return cols, hashes


def key_hash(key: bytes | None) -> tuple[int, int]:
    """The two hashes `scan_records` gives a key (None: a null key), computed in Python."""
    h2 = _GOLDEN ^ ((len(key) + 1) if key is not None else 0)
    h1 = _FNV_BASIS
    for b in key or b"":
        h1 = ((h1 ^ b) * _FNV_PRIME) & _M64
        h2 = ((h2 ^ b) * _MIX) & _M64
        h2 ^= h2 >> 29
    return h1, h2
