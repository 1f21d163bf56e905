"""Per-byte work of the broker, compiled with numba so Python only does per-request work.

No I/O here: every function takes buffers (bytes-likes or uint8 numpy views of receive buffers,
shared-memory rings and mmap'd segments) and either reads them or patches them in place.

Workers call `warmup()` at start so no request pays for compilation; with a warm on-disk cache it
only loads machine code. `HPBROKER_NO_JIT=1` runs the same kernels as plain Python.
"""

from __future__ import annotations

from . import _jit
from . import batch as _batch
from .batch import (
    COMPRESSION_MASK,
    CONTROL_BIT,
    HEADER_SIZE,
    LOG_OVERHEAD,
    TIMESTAMP_TYPE_BIT,
    TRANSACTIONAL_BIT,
    ScanError,
    ScanResult,
    assign_offsets,
    first_batch_size,
    patch_batch,
    scan_batches,
    set_log_append_time,
)
from .builder import Headers, build_batch, build_records_batch
from .crc import HAS_SSE42, as_u8, bind_fast_paths, crc32c
from .index import index_valid_entries, offset_index_lookup, time_index_lookup
from .quota import quota_add, quota_counted
from .records import key_hash, scan_records
from .ringscan import scan_ring_entries
from .varint import decode_uvarint, decode_varint, encode_uvarint, encode_varint

NO_JIT = _jit.NO_JIT


def warmup() -> None:
    """Compile, or load from the on-disk cache, every kernel's declared signatures."""
    _jit.warmup_all()
    bind_fast_paths()
    _batch.bind_fast_paths()


__all__ = [
    "COMPRESSION_MASK",
    "CONTROL_BIT",
    "HAS_SSE42",
    "HEADER_SIZE",
    "LOG_OVERHEAD",
    "Headers",
    "NO_JIT",
    "ScanError",
    "ScanResult",
    "TIMESTAMP_TYPE_BIT",
    "TRANSACTIONAL_BIT",
    "as_u8",
    "assign_offsets",
    "build_batch",
    "build_records_batch",
    "crc32c",
    "decode_uvarint",
    "decode_varint",
    "first_batch_size",
    "encode_uvarint",
    "encode_varint",
    "index_valid_entries",
    "key_hash",
    "quota_add",
    "quota_counted",
    "offset_index_lookup",
    "patch_batch",
    "scan_batches",
    "scan_records",
    "scan_ring_entries",
    "set_log_append_time",
    "time_index_lookup",
    "warmup",
]
