"""RecordBatch v2: scan and validate a buffer of concatenated batches, patch headers in place.

Header layout (61 bytes, big-endian):

    0 baseOffset i64 | 8 batchLength i32 | 12 partitionLeaderEpoch i32 | 16 magic i8 (=2)
    17 crc u32 (CRC-32C of bytes 21..end) | 21 attributes i16 | 23 lastOffsetDelta i32
    27 baseTimestamp i64 | 35 maxTimestamp i64 | 43 producerId i64 | 51 producerEpoch i16
    53 baseSequence i32 | 57 recordsCount i32 | 61 records...

baseOffset and partitionLeaderEpoch lie before the CRC's coverage, so the broker assigns them in place
without touching the CRC; maxTimestamp and attributes are covered, so LogAppendTime needs a recompute.

The scan is one kernel call per buffer: it stops at the first invalid batch and reports why, which is
what both Produce validation (reject) and log recovery (truncate at the first invalid byte) need.
"""

from __future__ import annotations

from enum import IntEnum
from functools import cached_property

import numpy as np

from . import _jit
from .crc import CRC_TABLES, as_u8, crc_range
from .varint import read_varint, read_varlong
from ._jit import I64, I64W2, U8, U8W, U32T, helper, kernel, nt

# Header field offsets.
BASE_OFFSET = 0
BATCH_LENGTH = 8
LEADER_EPOCH = 12
MAGIC = 16
CRC = 17
ATTRIBUTES = 21
LAST_OFFSET_DELTA = 23
BASE_TIMESTAMP = 27
MAX_TIMESTAMP = 35
PRODUCER_ID = 43
PRODUCER_EPOCH = 51
BASE_SEQUENCE = 53
RECORDS_COUNT = 57
HEADER_SIZE = 61
LOG_OVERHEAD = 12  # baseOffset + batchLength: the part of a batch not counted in batchLength

# Attribute bits.
COMPRESSION_MASK = 0x07
TIMESTAMP_TYPE_BIT = 0x08
TRANSACTIONAL_BIT = 0x10
CONTROL_BIT = 0x20

INT32_MAX = (1 << 31) - 1


class ScanError(IntEnum):
    """Why a scan stopped; `kafka_error` is the error code a Produce response carries for it."""

    OK = 0
    TRUNCATED = 1  # fewer bytes remain than the header or batchLength + 12 need (a torn tail)
    BAD_MAGIC = 2  # magic byte is not 2
    BAD_LENGTH = 3  # batchLength + 12 < 61
    TOO_LARGE = 4  # batchLength + 12 > max_batch_bytes
    COUNT_MISMATCH = 5  # recordsCount != lastOffsetDelta + 1 (deep), or outside [0, lastOffsetDelta + 1]
    CRC_MISMATCH = 6
    BAD_RECORD = 7  # deep check: a record's framing is inconsistent

    @property
    def kafka_error(self) -> int:
        return _KAFKA_ERROR[self]


_KAFKA_ERROR = {
    ScanError.OK: 0,  # NONE
    ScanError.TRUNCATED: 2,  # CORRUPT_MESSAGE
    ScanError.BAD_MAGIC: 87,  # INVALID_RECORD
    ScanError.BAD_LENGTH: 2,  # CORRUPT_MESSAGE
    ScanError.TOO_LARGE: 10,  # MESSAGE_TOO_LARGE
    ScanError.COUNT_MISMATCH: 87,  # INVALID_RECORD
    ScanError.CRC_MISMATCH: 2,  # CORRUPT_MESSAGE
    ScanError.BAD_RECORD: 87,  # INVALID_RECORD
}

# Rows of the per-batch table the scan kernel fills (one column per batch).
_FIELDS = (
    ("pos", np.int64),
    ("size", np.int64),
    ("base_offset", np.int64),
    ("last_offset_delta", np.int32),
    ("record_count", np.int32),
    ("attributes", np.int16),
    ("base_timestamp", np.int64),
    ("max_timestamp", np.int64),
    ("producer_id", np.int64),
    ("producer_epoch", np.int16),
    ("base_sequence", np.int32),
    ("leader_epoch", np.int32),
)
_ROW = {name: i for i, (name, _) in enumerate(_FIELDS)}
_SCAN_ERRORS = tuple(ScanError)  # indexed by the kernel's error value (an enum call costs more)
assert all(e == i for i, e in enumerate(_SCAN_ERRORS))


# ------------------------------------------------------------------------- big-endian helpers


@helper
def be16s(buf, p):
    v = (np.int64(buf[p]) << 8) | np.int64(buf[p + 1])
    return v - 0x10000 if v >= 0x8000 else v


@helper
def be32u(buf, p):
    return (
        (np.int64(buf[p]) << 24)
        | (np.int64(buf[p + 1]) << 16)
        | (np.int64(buf[p + 2]) << 8)
        | np.int64(buf[p + 3])
    )


@helper
def be32s(buf, p):
    v = be32u(buf, p)
    return v - 0x100000000 if v >= 0x80000000 else v


@helper
def be64s(buf, p):
    return be32s(buf, p) * 4294967296 + be32u(buf, p + 4)


@helper
def put_be16(buf, p, v):
    buf[p] = (v >> 8) & 0xFF
    buf[p + 1] = v & 0xFF


@helper
def put_be32(buf, p, v):
    buf[p] = (v >> 24) & 0xFF
    buf[p + 1] = (v >> 16) & 0xFF
    buf[p + 2] = (v >> 8) & 0xFF
    buf[p + 3] = v & 0xFF


@helper
def put_be64(buf, p, v):
    put_be32(buf, p, (v >> 32) & 0xFFFFFFFF)
    put_be32(buf, p + 4, v & 0xFFFFFFFF)


# ------------------------------------------------------------------------------------ kernels


@helper
def records_framing_ok(buf, p, end, count):
    """Every record of an uncompressed batch is well framed and they exactly fill buf[p:end]."""
    for i in range(count):
        length, p = read_varint(buf, p, end)
        if p < 0 or length < 6 or length > end - p:
            return False
        rend = p + length
        p += 1  # attributes
        _, p = read_varlong(buf, p, rend)
        if p < 0:
            return False
        delta, p = read_varint(buf, p, rend)
        if p < 0 or delta != i:
            return False
        for _ in range(2):  # key, value: -1 is null
            n, p = read_varint(buf, p, rend)
            if p < 0 or n < -1 or n > rend - p:
                return False
            if n > 0:
                p += n
        headers, p = read_varint(buf, p, rend)
        if p < 0 or headers < 0:
            return False
        for _ in range(headers):
            n, p = read_varint(buf, p, rend)  # header key: never null
            if p < 0 or n < 0 or n > rend - p:
                return False
            p += n
            n, p = read_varint(buf, p, rend)
            if p < 0 or n < -1 or n > rend - p:
                return False
            if n > 0:
                p += n
        if p != rend:
            return False
    return p == end


@kernel(nt.UniTuple(nt.int64, 3)(U8, nt.int64, nt.int64, nt.int64, nt.boolean, nt.int64, U32T, I64W2))
def _scan(buf, start, end, max_bytes, deep, max_batches, tables, meta):
    """Validate batches in buf[start:end] into meta's columns -> (count, ScanError, stop position)."""
    pos = start
    count = 0
    while pos < end and count < max_batches:
        rem = end - pos
        if rem < MAGIC + 1:
            return count, 1, pos
        if buf[pos + MAGIC] != 2:
            return count, 2, pos
        size = be32s(buf, pos + BATCH_LENGTH) + LOG_OVERHEAD
        if size < HEADER_SIZE:
            return count, 3, pos
        if size > max_bytes:
            return count, 4, pos
        if rem < size:
            return count, 1, pos
        last_delta = be32s(buf, pos + LAST_OFFSET_DELTA)
        records = be32s(buf, pos + RECORDS_COUNT)
        if records < 0 or records > last_delta + 1 or (deep and records != last_delta + 1):
            return count, 5, pos
        if crc_range(buf, pos + ATTRIBUTES, pos + size, 0, tables) != be32u(buf, pos + CRC):
            return count, 6, pos
        attributes = be16s(buf, pos + ATTRIBUTES)
        if deep and (attributes & COMPRESSION_MASK) == 0:
            if not records_framing_ok(buf, pos + HEADER_SIZE, pos + size, records):
                return count, 7, pos
        meta[0, count] = pos
        meta[1, count] = size
        meta[2, count] = be64s(buf, pos + BASE_OFFSET)
        meta[3, count] = last_delta
        meta[4, count] = records
        meta[5, count] = attributes
        meta[6, count] = be64s(buf, pos + BASE_TIMESTAMP)
        meta[7, count] = be64s(buf, pos + MAX_TIMESTAMP)
        meta[8, count] = be64s(buf, pos + PRODUCER_ID)
        meta[9, count] = be16s(buf, pos + PRODUCER_EPOCH)
        meta[10, count] = be32s(buf, pos + BASE_SEQUENCE)
        meta[11, count] = be32s(buf, pos + LEADER_EPOCH)
        count += 1
        pos += size
    return count, 0, pos


@helper
def header_in_bounds(buf, pos):
    return pos >= 0 and pos <= len(buf) - HEADER_SIZE and buf[pos + MAGIC] == 2


@kernel(nt.int64(U8W, I64, I64, nt.int64, nt.int64))
def _assign_offsets(buf, positions, last_deltas, first_offset, leader_epoch):
    """Stamp consecutive base offsets and the leader epoch -> next offset, or -1 for a bad position."""
    for i in range(len(positions)):
        if not header_in_bounds(buf, positions[i]):
            return -1
    offset = first_offset
    for i in range(len(positions)):
        put_be64(buf, positions[i] + BASE_OFFSET, offset)
        put_be32(buf, positions[i] + LEADER_EPOCH, leader_epoch)
        offset += last_deltas[i] + 1
    return offset


@kernel(nt.int64(U8W, nt.int64, nt.int64, nt.int64))
def _patch_batch(buf, pos, base_offset, leader_epoch):
    if not header_in_bounds(buf, pos):
        return -1
    put_be64(buf, pos + BASE_OFFSET, base_offset)
    put_be32(buf, pos + LEADER_EPOCH, leader_epoch)
    return 0


@kernel(nt.int64(U8W, nt.int64, nt.int64, nt.int64, U32T))
def _set_log_append_time(buf, pos, size, timestamp, tables):
    if size < HEADER_SIZE or not header_in_bounds(buf, pos) or size > len(buf) - pos:
        return -1
    attributes = be16s(buf, pos + ATTRIBUTES) | TIMESTAMP_TYPE_BIT
    put_be16(buf, pos + ATTRIBUTES, attributes)
    put_be64(buf, pos + MAX_TIMESTAMP, timestamp)
    put_be32(buf, pos + CRC, crc_range(buf, pos + ATTRIBUTES, pos + size, 0, tables))
    return 0


# --------------------------------------------------------------------------------- public API


class ScanResult:
    """What `scan_batches` found: the valid prefix, per-batch header fields, the first error.

    Per-batch fields are numpy arrays of length `count`, built on first access.
    """

    def __init__(self, meta: np.ndarray, count: int, error: int, error_pos: int, start: int):
        self._meta = meta
        self.count = count
        self.error = _SCAN_ERRORS[error]
        self.error_pos = error_pos
        self.valid_bytes = error_pos - start

    def _field(self, name: str) -> np.ndarray:
        row = self._meta[_ROW[name], : self.count]
        dtype = _FIELDS[_ROW[name]][1]
        return row if dtype is np.int64 else row.astype(dtype)

    pos = cached_property(lambda self: self._field("pos"))
    size = cached_property(lambda self: self._field("size"))
    base_offset = cached_property(lambda self: self._field("base_offset"))
    last_offset_delta = cached_property(lambda self: self._field("last_offset_delta"))
    record_count = cached_property(lambda self: self._field("record_count"))
    attributes = cached_property(lambda self: self._field("attributes"))
    base_timestamp = cached_property(lambda self: self._field("base_timestamp"))
    max_timestamp = cached_property(lambda self: self._field("max_timestamp"))
    producer_id = cached_property(lambda self: self._field("producer_id"))
    producer_epoch = cached_property(lambda self: self._field("producer_epoch"))
    base_sequence = cached_property(lambda self: self._field("base_sequence"))
    leader_epoch = cached_property(lambda self: self._field("leader_epoch"))

    @property
    def ok(self) -> bool:
        return self.error == ScanError.OK

    @property
    def records(self) -> int:
        """Total records in the valid batches."""
        return int(self._meta[4, : self.count].sum())

    def __repr__(self) -> str:
        return (
            f"ScanResult(count={self.count}, error={self.error.name}, "
            f"error_pos={self.error_pos}, valid_bytes={self.valid_bytes})"
        )


def first_batch_size(buf) -> int:
    """Where the batch at the start of ``buf`` (at least LOG_OVERHEAD bytes) ends, as its batchLength says:
    one header field read in plain Python, for the checks that a request's records hold exactly one batch."""
    return LOG_OVERHEAD + int.from_bytes(buf[BATCH_LENGTH:BATCH_LENGTH + 4], "big", signed=True)


def _as_buffer(buf, writable: bool = False) -> np.ndarray:
    arr = as_u8(buf)
    if writable and not arr.flags.writeable:
        raise TypeError("buffer is read-only")
    return arr


def scan_batches(
    buf,
    max_batch_bytes: int = INT32_MAX,
    deep: bool = False,
    max_batches: int | None = None,
    start: int = 0,
    end: int | None = None,
) -> ScanResult:
    """Validate the RecordBatch v2 batches laid end to end in buf[start:end].

    Stops at the first invalid batch (or after `max_batches`). `deep` checks a producer's batch: its
    record count is lastOffsetDelta + 1 and every record of an uncompressed batch is framed with offset
    deltas 0, 1, 2, ... Without it a batch may hold fewer records than its offset range (compaction removed
    some, keeping the batch's first and last offsets), as a log or a replica's fetch may.
    """
    arr = _as_buffer(buf)
    n = len(arr)
    end = n if end is None else end
    if not 0 <= start <= end <= n:
        raise ValueError(f"bad range [{start}, {end}) for a buffer of {n} bytes")
    if max_batches is None:
        max_batches = n
    elif max_batches < 0:
        raise ValueError("max_batches must be >= 0")
    capacity = min((end - start) // HEADER_SIZE, max_batches)
    meta = np.empty((len(_FIELDS), capacity), np.int64)
    scan = _FAST_SCAN[0]
    if scan is None:  # before warmup, or the interpreted twin (whose results may be numpy integers)
        count, error, stop = _jit.call(_scan, arr, start, end, max_batch_bytes, bool(deep), max_batches,
                                       CRC_TABLES, meta)
        return ScanResult(meta, int(count), int(error), int(stop), start)
    # `arr` passed as_u8's dtype/shape checks and the rest are ours: exactly the declared types
    count, error, stop = scan(arr, start, end, max_batch_bytes, bool(deep), max_batches, CRC_TABLES, meta)
    return ScanResult(meta, count, error, stop, start)


# The scan kernel's compiled entry point, which skips the dispatcher's argument typing (about a third
# of a small batch's validation); bound by `bind_fast_paths()` at warmup.
_FAST_SCAN: list = [None]


def bind_fast_paths() -> None:
    if not _jit.NO_JIT:
        _FAST_SCAN[0] = _jit.entry_points(_scan)[0]


def _check_i32(name: str, v: int) -> None:
    if not -(1 << 31) <= v <= INT32_MAX:
        raise ValueError(f"{name} must fit in int32, got {v}")


def _check_i64(name: str, v: int) -> None:
    if not -(1 << 63) <= v < (1 << 63):
        raise ValueError(f"{name} must fit in int64, got {v}")


def assign_offsets(buf, res: ScanResult, first_offset: int, leader_epoch: int) -> int:
    """Give the scanned batches consecutive offsets from `first_offset`; returns the next offset."""
    arr = _as_buffer(buf, writable=True)
    if not 0 <= first_offset < (1 << 63):
        raise ValueError(f"first_offset must be a non-negative int64, got {first_offset}")
    _check_i32("leader_epoch", leader_epoch)
    positions = res._meta[0, : res.count]
    deltas = res._meta[3, : res.count]
    nxt = _jit.call(_assign_offsets, arr, positions, deltas, first_offset, leader_epoch)
    if nxt < 0 and res.count:
        raise ValueError("scan result does not describe this buffer")
    return int(nxt)


def patch_batch(buf, pos: int, base_offset: int, leader_epoch: int) -> None:
    """Set one batch's baseOffset and partitionLeaderEpoch (outside the CRC)."""
    arr = _as_buffer(buf, writable=True)
    _check_i64("base_offset", base_offset)
    _check_i32("leader_epoch", leader_epoch)
    _check_i64("pos", pos)
    if _jit.call(_patch_batch, arr, pos, base_offset, leader_epoch) < 0:
        raise ValueError(f"no batch header at position {pos}")


def set_log_append_time(buf, pos: int, size: int, timestamp_ms: int) -> None:
    """Mark a batch LogAppendTime with maxTimestamp = timestamp_ms and recompute its CRC."""
    arr = _as_buffer(buf, writable=True)
    _check_i64("timestamp_ms", timestamp_ms)
    _check_i64("pos", pos)
    _check_i64("size", size)
    if _jit.call(_set_log_append_time, arr, pos, size, timestamp_ms, CRC_TABLES) < 0:
        raise ValueError(f"no batch of {size} bytes at position {pos}")
