"""Batch-header walks over segment bytes: find the batch holding an offset or a timestamp, and how many
whole batches fit a byte budget.

A fetch lands at an index position at most ``log.index.interval.bytes`` before its batch, but a fetch of
``max_bytes`` may then span thousands of small batches, so the walk is compiled rather than a Python loop.
It reads only the 61-byte headers, never records or CRCs.

The walk trusts nothing it reads: a batch counts only if its base offset is above the previous batch's last
offset and below ``visible_end``, its magic is 2 and it lies inside ``limit``. That is what lets a network worker
walk the active segment while its writer appends: bytes the writer has not yet published either still hold
zeros, or carry a base offset at or above the published end (a torn 8-byte base offset read mid-copy is a
bitwise subset of the final value, so it is never between the previous last offset and the final value).
"""

from __future__ import annotations

import numpy as np
from numba import njit

HEADER = 61
NOT_FOUND = -1


@njit(cache=True, nogil=True, inline="always")
def _i64(b, p):
    v = np.int64(0)
    for i in range(8):
        v = (v << np.int64(8)) | np.int64(b[p + i])
    return v  # wraps like Java's long for the top bit


@njit(cache=True, nogil=True, inline="always")
def _i32(b, p):
    v = (np.int64(b[p]) << 24) | (np.int64(b[p + 1]) << 16) | (np.int64(b[p + 2]) << 8) | np.int64(b[p + 3])
    if v >= 0x80000000:
        v -= 0x100000000
    return v


@njit(cache=True, nogil=True)
def _header_ok(b, pos, limit, prev_last, visible_end):
    """Size of the trustworthy batch at ``pos`` (0 if not trustworthy), and its last offset."""
    if pos < 0 or pos + HEADER > limit:
        return np.int64(0), np.int64(0)
    base = _i64(b, pos)
    size = _i32(b, pos + 8) + 12
    delta = _i32(b, pos + 23)
    if b[pos + 16] != 2 or size < HEADER or pos + size > limit or delta < 0:
        return np.int64(0), np.int64(0)
    if base <= prev_last or base >= visible_end:
        return np.int64(0), np.int64(0)
    return size, base + delta


@njit(cache=True, nogil=True)
def _locate(b, pos, limit, prev_last, visible_end, target, max_offset, max_bytes):
    # phase 1: the batch whose last offset >= target
    while True:
        size, last = _header_ok(b, pos, limit, prev_last, visible_end)
        if size == 0:
            return np.int64(NOT_FOUND), np.int64(0), np.int64(0)
        if last >= target:
            break
        prev_last = last
        pos += size
    start = pos
    first = _i64(b, pos)  # base offset of the first batch returned
    # phase 2: whole batches up to max_bytes (always the first) strictly below max_offset
    total = np.int64(0)
    while True:
        size, last = _header_ok(b, pos, limit, prev_last, visible_end)
        if size == 0 or last >= max_offset:
            break
        if total > 0 and total + size > max_bytes:
            break
        total += size
        prev_last = last
        pos += size
    return start, total, first


@njit(cache=True, nogil=True)
def _by_timestamp(b, pos, limit, prev_last, visible_end, timestamp):
    while True:
        size, last = _header_ok(b, pos, limit, prev_last, visible_end)
        if size == 0:
            return np.int64(NOT_FOUND), np.int64(0), np.int64(0)
        max_ts = _i64(b, pos + 35)
        if max_ts >= timestamp:
            return pos, _i64(b, pos), max_ts
        prev_last = last
        pos += size


@njit(cache=True, nogil=True)
def _tail(b, pos, limit, prev_last, out):
    """End of the chain of well-formed headers from ``pos``: (end position, last offset, max timestamp, its offset)."""
    max_ts = np.int64(-1)
    max_ts_off = prev_last
    while True:
        size, last = _header_ok(b, pos, limit, prev_last, 0x7FFFFFFFFFFFFFFF)
        if size == 0:
            break
        ts = _i64(b, pos + 35)
        if ts > max_ts:
            max_ts = ts
            max_ts_off = last
        prev_last = last
        pos += size
    out[0] = pos
    out[1] = prev_last
    out[2] = max_ts
    out[3] = max_ts_off


def locate(buf: np.ndarray, pos: int, limit: int, prev_last: int, visible_end: int, target: int,
           max_offset: int, max_bytes: int) -> tuple[int, int, int] | None:
    """(position, length, first base offset) of whole batches from the one holding ``target``.

    ``None`` when the chain from ``pos`` ends before ``target`` (offset in a later segment, or not yet
    visible). ``length`` is 0 when the holding batch itself reaches ``max_offset``.
    """
    start, length, first = _locate(buf, pos, limit, prev_last, visible_end, target, max_offset, max_bytes)
    return None if start == NOT_FOUND else (start, length, first)


def find_timestamp(buf: np.ndarray, pos: int, limit: int, prev_last: int, visible_end: int,
                   timestamp: int) -> tuple[int, int, int] | None:
    """(position, base offset, max timestamp) of the first batch from ``pos`` with maxTimestamp >= ``timestamp``."""
    found = _by_timestamp(buf, pos, limit, prev_last, visible_end, timestamp)
    return None if found[0] == NOT_FOUND else found


def tail(buf: np.ndarray, pos: int, limit: int, prev_last: int) -> tuple[int, int, int, int]:
    """Follow well-formed headers (no CRC) from a trusted position to the end of the chain."""
    out = np.empty(4, np.int64)
    _tail(buf, np.int64(pos), np.int64(limit), np.int64(prev_last), out)
    return int(out[0]), int(out[1]), int(out[2]), int(out[3])


def warmup() -> None:
    """Compile (or load from cache) every walk for writable and read-only buffers."""
    for buf in (np.zeros(HEADER, np.uint8), np.frombuffer(bytes(HEADER), np.uint8)):
        locate(buf, 0, HEADER, -1, 1, 0, 1, 1)
        find_timestamp(buf, 0, HEADER, -1, 1, 0)
        tail(buf, 0, HEADER, -1)
