"""Build complete uncompressed RecordBatch v2 from columnar record data.

Keys, values and headers arrive the way a benchmark or an internal topic holds them: one data array
plus an offsets array per column (item i is data[offsets[i]:offsets[i+1]]), so a whole batch is built
in one kernel call: a sizing pass that also validates every offset, then a writing pass, then the CRC.

Null keys/values use optional boolean masks (`key_nulls`, `value_nulls`); `keys_data=None` makes every
key null. Headers are a `Headers` tuple: per-record header counts plus key and value columns over all
headers in record order.
"""

from __future__ import annotations

import time
from typing import NamedTuple

import numpy as np

from .batch import (
    ATTRIBUTES,
    BASE_OFFSET,
    BASE_SEQUENCE,
    BASE_TIMESTAMP,
    BATCH_LENGTH,
    COMPRESSION_MASK,
    CRC,
    HEADER_SIZE,
    INT32_MAX,
    LAST_OFFSET_DELTA,
    LEADER_EPOCH,
    LOG_OVERHEAD,
    MAGIC,
    MAX_TIMESTAMP,
    PRODUCER_EPOCH,
    PRODUCER_ID,
    RECORDS_COUNT,
    _check_i32,
    _check_i64,
    put_be16,
    put_be32,
    put_be64,
)
from .crc import CRC_TABLES, crc_range
from .varint import uvarint_size, write_uvarint, zigzag
from . import _jit
from ._jit import I64, U8, U8W, U32T, helper, kernel, nt

# Kernel error codes.
BUILD_OK = 0
BAD_VALUE_OFFSETS = 1
BAD_KEY_OFFSETS = 2
BAD_HEADERS = 3
BATCH_TOO_LARGE = 4

_ERRORS = {
    BAD_VALUE_OFFSETS: "values_offsets must be non-decreasing and inside values_data",
    BAD_KEY_OFFSETS: "keys_offsets must be non-decreasing and inside keys_data",
    BAD_HEADERS: "header columns are inconsistent with the header counts",
    BATCH_TOO_LARGE: "batch would exceed 2**31-1 bytes",
}


class Headers(NamedTuple):
    """Record headers in columnar form; header j of the whole batch belongs to the record whose
    cumulative `counts` cover j. `value_nulls` (bool per header) marks null header values."""

    counts: np.ndarray
    keys_data: np.ndarray
    keys_offsets: np.ndarray
    values_data: np.ndarray
    values_offsets: np.ndarray
    value_nulls: np.ndarray | None = None


@helper
def _span_ok(offsets, i, data_len):
    return 0 <= offsets[i] <= offsets[i + 1] <= data_len


@helper
def _field_size(n):
    """Bytes of a length-prefixed field of n bytes (n == -1: null)."""
    if n < 0:
        return 1
    return uvarint_size(zigzag(n)) + n


@helper
def _write_field(out, p, data, lo, hi, null):
    if null:
        out[p] = 1  # zigzag(-1)
        return p + 1
    n = hi - lo
    p = write_uvarint(out, p, zigzag(n))
    out[p : p + n] = data[lo:hi]
    return p + n


_EMPTY_U8 = np.zeros(0, np.uint8)
_EMPTY_I64 = np.zeros(0, np.int64)

_BUILD_SIG = nt.Tuple((U8W, nt.int64))(
    U8, I64, U8,  # values data, offsets, nulls
    U8, I64, U8,  # keys data, offsets, nulls
    I64,  # timestamps
    I64, U8, I64, U8, I64, U8,  # header counts, key data/offsets, value data/offsets/nulls
    nt.int64, nt.int64, nt.int64, nt.int64, nt.int64, nt.int64,  # header fields
    U32T,
)


@kernel(_BUILD_SIG)
def _build(vdata, voff, vnull, kdata, koff, knull, ts, hcount, hkdata, hkoff, hvdata, hvoff, hvnull,
           base_offset, leader_epoch, producer_id, producer_epoch, base_sequence, attributes, tables):
    n = len(voff) - 1
    has_keys = len(koff) > 0
    has_headers = len(hcount) > 0
    n_headers = len(hkoff) - 1 if has_headers else 0
    base_ts = ts[0]
    max_ts = ts[0]
    sizes = np.empty(n, np.int64)
    total = 0
    h = 0
    for i in range(n):
        if not _span_ok(voff, i, len(vdata)):
            return np.empty(0, np.uint8), BAD_VALUE_OFFSETS
        vlen = -1 if len(vnull) > 0 and vnull[i] != 0 else voff[i + 1] - voff[i]
        klen = -1
        if has_keys:
            if not _span_ok(koff, i, len(kdata)):
                return np.empty(0, np.uint8), BAD_KEY_OFFSETS
            if not (len(knull) > 0 and knull[i] != 0):
                klen = koff[i + 1] - koff[i]
        if ts[i] > max_ts:
            max_ts = ts[i]
        body = 1 + uvarint_size(zigzag(ts[i] - base_ts)) + uvarint_size(zigzag(i))
        body += _field_size(klen) + _field_size(vlen)
        count = hcount[i] if has_headers else 0
        if count < 0 or count > n_headers - h:
            return np.empty(0, np.uint8), BAD_HEADERS
        body += uvarint_size(zigzag(count))
        for j in range(h, h + count):
            if not _span_ok(hkoff, j, len(hkdata)) or not _span_ok(hvoff, j, len(hvdata)):
                return np.empty(0, np.uint8), BAD_HEADERS
            hv = -1 if len(hvnull) > 0 and hvnull[j] != 0 else hvoff[j + 1] - hvoff[j]
            body += _field_size(hkoff[j + 1] - hkoff[j]) + _field_size(hv)
        h += count
        sizes[i] = body
        total += uvarint_size(zigzag(body)) + body
        if total > INT32_MAX - HEADER_SIZE:
            return np.empty(0, np.uint8), BATCH_TOO_LARGE
    if has_headers and (h != n_headers or len(hvoff) != len(hkoff)
                        or (len(hvnull) > 0 and len(hvnull) != n_headers)):
        return np.empty(0, np.uint8), BAD_HEADERS

    out = np.empty(HEADER_SIZE + total, np.uint8)
    put_be64(out, BASE_OFFSET, base_offset)
    put_be32(out, BATCH_LENGTH, HEADER_SIZE + total - LOG_OVERHEAD)
    put_be32(out, LEADER_EPOCH, leader_epoch)
    out[MAGIC] = 2
    put_be16(out, ATTRIBUTES, attributes)
    put_be32(out, LAST_OFFSET_DELTA, n - 1)
    put_be64(out, BASE_TIMESTAMP, base_ts)
    put_be64(out, MAX_TIMESTAMP, max_ts)
    put_be64(out, PRODUCER_ID, producer_id)
    put_be16(out, PRODUCER_EPOCH, producer_epoch)
    put_be32(out, BASE_SEQUENCE, base_sequence)
    put_be32(out, RECORDS_COUNT, n)
    p = HEADER_SIZE
    h = 0
    for i in range(n):
        p = write_uvarint(out, p, zigzag(sizes[i]))
        out[p] = 0  # record attributes
        p = write_uvarint(out, p + 1, zigzag(ts[i] - base_ts))
        p = write_uvarint(out, p, zigzag(i))
        if has_keys:
            p = _write_field(out, p, kdata, koff[i], koff[i + 1], len(knull) > 0 and knull[i] != 0)
        else:
            out[p] = 1
            p += 1
        p = _write_field(out, p, vdata, voff[i], voff[i + 1], len(vnull) > 0 and vnull[i] != 0)
        count = hcount[i] if has_headers else 0
        p = write_uvarint(out, p, zigzag(count))
        for j in range(h, h + count):
            p = _write_field(out, p, hkdata, hkoff[j], hkoff[j + 1], False)
            p = _write_field(out, p, hvdata, hvoff[j], hvoff[j + 1], len(hvnull) > 0 and hvnull[j] != 0)
        h += count
    put_be32(out, CRC, crc_range(out, ATTRIBUTES, len(out), 0, tables))
    return out, BUILD_OK


# --------------------------------------------------------------------------------- public API


def _u8(a, name: str) -> np.ndarray:
    if isinstance(a, (bytes, bytearray, memoryview)):
        return np.frombuffer(a, np.uint8)
    arr = np.ascontiguousarray(a)
    if arr.ndim != 1 or (arr.dtype != np.uint8 and arr.size):
        raise TypeError(f"{name} must be a 1-D uint8 array")
    return arr.astype(np.uint8, copy=False)


def _i64(a, name: str) -> np.ndarray:
    arr = np.ascontiguousarray(a)
    if arr.ndim != 1 or (arr.size and arr.dtype.kind not in "iu"):
        raise TypeError(f"{name} must be a 1-D integer array")
    return arr.astype(np.int64, copy=False)


def _mask(a, n: int, name: str) -> np.ndarray:
    if a is None:
        return _EMPTY_U8
    arr = np.ascontiguousarray(a)
    if arr.shape != (n,):
        raise ValueError(f"{name} must have one entry per item ({n})")
    return arr.astype(bool, copy=False).view(np.uint8)


def build_batch(
    values_data,
    values_offsets,
    keys_data=None,
    keys_offsets=None,
    timestamps=None,
    base_offset: int = 0,
    producer_id: int = -1,
    producer_epoch: int = -1,
    base_sequence: int = -1,
    attributes: int = 0,
    headers: Headers | None = None,
    key_nulls=None,
    value_nulls=None,
    leader_epoch: int = -1,
) -> np.ndarray:
    """One uncompressed RecordBatch v2 (uint8 array, valid CRC) holding len(values_offsets)-1 records.

    Offset deltas are 0..n-1; baseTimestamp is the first record's timestamp and maxTimestamp the
    largest; `timestamps` is an int64 array, a scalar, or None for the current time.
    """
    voff = _i64(values_offsets, "values_offsets")
    n = len(voff) - 1
    if n < 1:
        raise ValueError("a batch needs at least one record")
    vdata = _u8(values_data, "values_data")
    if keys_data is None:
        if keys_offsets is not None or key_nulls is not None:
            raise ValueError("keys_offsets/key_nulls given without keys_data")
        kdata, koff = _EMPTY_U8, _EMPTY_I64
    else:
        kdata, koff = _u8(keys_data, "keys_data"), _i64(keys_offsets, "keys_offsets")
        if len(koff) != n + 1:
            raise ValueError("keys_offsets must have one more entry than there are records")
    if timestamps is None:
        timestamps = int(time.time() * 1000)
    if np.ndim(timestamps) == 0:
        _check_i64("timestamp", int(timestamps))
        ts = np.full(n, int(timestamps), np.int64)
    else:
        ts = _i64(timestamps, "timestamps")
        if len(ts) != n:
            raise ValueError("timestamps must have one entry per record")
        first = int(ts[0])
        if int(ts.min()) - first < -(1 << 63) or int(ts.max()) - first >= (1 << 63):
            raise ValueError("timestamp deltas overflow int64")
    for name, v in (("base_offset", base_offset), ("producer_id", producer_id)):
        _check_i64(name, v)
    _check_i32("base_sequence", base_sequence)
    _check_i32("leader_epoch", leader_epoch)
    if not -(1 << 15) <= producer_epoch < (1 << 15):
        raise ValueError(f"producer_epoch must fit in int16, got {producer_epoch}")
    if not 0 <= attributes < (1 << 15) or attributes & COMPRESSION_MASK:
        raise ValueError("attributes must be a non-negative int16 without compression bits")
    if headers is None:
        hc, hkd, hko, hvd, hvo, hvn = _EMPTY_I64, _EMPTY_U8, _EMPTY_I64, _EMPTY_U8, _EMPTY_I64, _EMPTY_U8
    else:
        hc = _i64(headers.counts, "headers.counts")
        if len(hc) != n:
            raise ValueError("headers.counts must have one entry per record")
        hko = _i64(headers.keys_offsets, "headers.keys_offsets")
        hkd, hvd = _u8(headers.keys_data, "headers.keys_data"), _u8(headers.values_data, "headers.values_data")
        hvo = _i64(headers.values_offsets, "headers.values_offsets")
        hvn = _mask(headers.value_nulls, max(len(hko) - 1, 0), "headers.value_nulls")
    out, err = _jit.call(
        _build,
        vdata, voff, _mask(value_nulls, n, "value_nulls"),
        kdata, koff, _mask(key_nulls, n, "key_nulls") if keys_data is not None else _EMPTY_U8,
        ts, hc, hkd, hko, hvd, hvo, hvn,
        base_offset, leader_epoch, producer_id, producer_epoch, base_sequence, attributes, CRC_TABLES,
    )
    if err:
        raise ValueError(_ERRORS[int(err)])
    return out


def _column(items: list) -> tuple[np.ndarray, np.ndarray]:
    lengths = np.fromiter((len(x) for x in items), np.int64, len(items))
    offsets = np.zeros(len(items) + 1, np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return np.frombuffer(b"".join(items), np.uint8), offsets


def _as_bytes(x) -> bytes:
    return x.encode() if isinstance(x, str) else bytes(x)


def build_records_batch(records: list, **kwargs) -> bytes:
    """`build_batch` for a list of (key, value) or (key, value, [(header_key, header_value), ...]).

    Keys and values are bytes-like or None; header keys may be str.
    """
    if not records:
        raise ValueError("a batch needs at least one record")
    keys = [r[0] for r in records]
    values = [r[1] for r in records]
    vdata, voff = _column([b"" if v is None else _as_bytes(v) for v in values])
    value_nulls = np.fromiter((v is None for v in values), bool, len(values))
    if all(k is None for k in keys):
        kdata = koff = key_nulls = None
    else:
        kdata, koff = _column([b"" if k is None else _as_bytes(k) for k in keys])
        key_nulls = np.fromiter((k is None for k in keys), bool, len(keys))
    headers = None
    if any(len(r) > 2 and r[2] for r in records):
        per_record = [list(r[2]) if len(r) > 2 and r[2] else [] for r in records]
        flat = [h for hs in per_record for h in hs]
        hkd, hko = _column([_as_bytes(k) for k, _ in flat])
        hvd, hvo = _column([b"" if v is None else _as_bytes(v) for _, v in flat])
        headers = Headers(
            np.array([len(hs) for hs in per_record], np.int64), hkd, hko, hvd, hvo,
            np.fromiter((v is None for _, v in flat), bool, len(flat)),
        )
    out = build_batch(
        vdata, voff, kdata, koff, headers=headers, key_nulls=key_nulls,
        value_nulls=value_nulls if value_nulls.any() else None, **kwargs,
    )
    return out.tobytes()
