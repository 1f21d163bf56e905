"""CRC-32C (Castagnoli), the checksum of RecordBatch v2, of producer snapshots and of our own files.

Two kernels, one chosen at import:

* hardware (x86 with SSE4.2): the `crc32` instruction reached through LLVM's
  `llvm.x86.sse42.crc32.64.64` intrinsic. One stream is latency-bound (3 cycles per 8 bytes), so the
  buffer is cut into three equal blocks whose CRCs run interleaved and are then joined with
  "shift by N zero bytes" tables, the scheme of Mark Adler's crc32c.c. Block sizes halve from 8 KiB
  down to 64 bytes so mid-sized buffers stay on three streams too.
* portable: slicing-by-8 tables, eight bytes per step, no special instruction.

`crc_range(buf, lo, hi, crc, tables)` is the building block other kernels (batch scan, builder) call;
`CRC_TABLES` is the table set it expects. The value is the usual finalised CRC, chainable:
crc(a + b) == crc(b, crc(a)).
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba.core import cgutils
from numba.extending import intrinsic

from . import _jit
from ._jit import BYTEARRAY, BYTES, MEMVIEW, MEMVIEW_W, U8, helper, kernel, nt

POLY = 0x82F63B78  # reflected Castagnoli polynomial
_MASK32 = 0xFFFFFFFF
# Interleaved block sizes of the hardware kernel: 8 KiB, 4 KiB, ... 64 bytes.
_BLOCK_SHIFTS = (13, 12, 11, 10, 9, 8, 7, 6)


def _host_has_sse42() -> bool:
    try:
        import llvmlite.binding as llvm

        return bool(llvm.get_host_cpu_features().get("sse4.2", False))
    except Exception:  # a host LLVM that cannot report features gets the portable kernel
        return False


HAS_SSE42 = _host_has_sse42() and not _jit.NO_JIT


# ----------------------------------------------------------------------------------------- tables


def _byte_table() -> list[int]:
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ POLY if c & 1 else c >> 1
        table.append(c)
    return table


def slicing_tables() -> np.ndarray:
    """Tables for slicing-by-8: row k advances a byte that is followed by k more bytes."""
    t = np.zeros((8, 256), np.uint32)
    t[0] = _byte_table()
    for k in range(1, 8):
        prev = t[k - 1].astype(np.int64)
        t[k] = (prev >> 8) ^ t[0][prev & 0xFF].astype(np.int64)
    return t


def _gf2_times(mat: list[int], vec: int) -> int:
    out = 0
    i = 0
    while vec:
        if vec & 1:
            out ^= mat[i]
        vec >>= 1
        i += 1
    return out


def _zeros_operator(nbytes: int) -> list[int]:
    """The 32x32 GF(2) matrix that advances a raw CRC register over `nbytes` zero bytes."""
    op = [POLY] + [1 << (n - 1) for n in range(1, 32)]  # one zero bit
    for _ in range(3):  # 1 -> 2 -> 4 -> 8 bits
        op = [_gf2_times(op, op[n]) for n in range(32)]
    result = None
    while nbytes:
        if nbytes & 1:
            result = op if result is None else [_gf2_times(op, result[n]) for n in range(32)]
        nbytes >>= 1
        if nbytes:
            op = [_gf2_times(op, op[n]) for n in range(32)]
    return result


def shift_tables() -> np.ndarray:
    """Rows 4k..4k+3: byte-wise lookup of the zeros operator for block size 1 << _BLOCK_SHIFTS[k]."""
    t = np.zeros((4 * len(_BLOCK_SHIFTS), 256), np.uint32)
    for k, shift in enumerate(_BLOCK_SHIFTS):
        op = _zeros_operator(1 << shift)
        for byte in range(4):
            t[4 * k + byte] = [_gf2_times(op, n << (8 * byte)) for n in range(256)]
    return t


# ------------------------------------------------------------------------------------- intrinsics


@intrinsic
def _crc32_u64(typingctx, crc, data):
    """One `crc32 r64, r/m64` instruction (raw register in, raw register out)."""
    sig = nt.uint64(nt.uint64, nt.uint64)

    def codegen(context, builder, signature, args):
        i64 = ir.IntType(64)
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(i64, [i64, i64]), "llvm.x86.sse42.crc32.64.64"
        )
        return builder.call(fn, args)

    return sig, codegen


@intrinsic
def _crc32_u8(typingctx, crc, data):
    sig = nt.uint32(nt.uint32, nt.uint8)

    def codegen(context, builder, signature, args):
        i32, i8 = ir.IntType(32), ir.IntType(8)
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(i32, [i32, i8]), "llvm.x86.sse42.crc32.32.8"
        )
        return builder.call(fn, args)

    return sig, codegen


@intrinsic
def _load_u64le(typingctx, buf, idx):
    """Unaligned little-endian 8-byte load from a byte buffer; the caller guarantees idx + 8 <= len."""
    sig = nt.uint64(buf, nt.intp)

    def codegen(context, builder, signature, args):
        arr = context.make_array(signature.args[0])(context, builder, args[0])
        ptr = builder.gep(arr.data, [args[1]])
        return builder.load(builder.bitcast(ptr, ir.IntType(64).as_pointer()), align=1)

    return sig, codegen


# ---------------------------------------------------------------------------------------- kernels


@helper
def _shift(tables, row, c):
    return (
        np.uint64(tables[row, c & 0xFF])
        ^ np.uint64(tables[row + 1, (c >> 8) & 0xFF])
        ^ np.uint64(tables[row + 2, (c >> 16) & 0xFF])
        ^ np.uint64(tables[row + 3, (c >> 24) & 0xFF])
    )


@helper
def crc_range_hw(buf, lo, hi, crc, tables):
    """CRC-32C of buf[lo:hi] continuing from `crc`, with the crc32 instruction (see module doc)."""
    c0 = np.uint64(crc ^ 0xFFFFFFFF)
    i = lo
    nblocks = tables.shape[0] // 4
    for k in range(nblocks):
        block = 8192 >> k
        while hi - i >= 3 * block:
            c1 = np.uint64(0)
            c2 = np.uint64(0)
            stop = i + block
            while i < stop:
                c0 = _crc32_u64(c0, _load_u64le(buf, i))
                c1 = _crc32_u64(c1, _load_u64le(buf, i + block))
                c2 = _crc32_u64(c2, _load_u64le(buf, i + 2 * block))
                i += 8
            i += 2 * block
            c0 = _shift(tables, 4 * k, c0) ^ c1
            c0 = _shift(tables, 4 * k, c0) ^ c2
    while hi - i >= 8:
        c0 = _crc32_u64(c0, _load_u64le(buf, i))
        i += 8
    c32 = np.uint32(c0)
    while i < hi:
        c32 = _crc32_u8(c32, buf[i])
        i += 1
    return np.int64(c32 ^ np.uint32(0xFFFFFFFF))


@helper
def crc_range_sw(buf, lo, hi, crc, tables):
    """CRC-32C of buf[lo:hi] continuing from `crc`, slicing-by-8 (tables from `slicing_tables`)."""
    c = np.int64(crc) ^ 0xFFFFFFFF
    i = lo
    while hi - i >= 8:
        one = c ^ (
            np.int64(buf[i])
            | (np.int64(buf[i + 1]) << 8)
            | (np.int64(buf[i + 2]) << 16)
            | (np.int64(buf[i + 3]) << 24)
        )
        c = (
            np.int64(tables[7, one & 0xFF])
            ^ np.int64(tables[6, (one >> 8) & 0xFF])
            ^ np.int64(tables[5, (one >> 16) & 0xFF])
            ^ np.int64(tables[4, (one >> 24) & 0xFF])
            ^ np.int64(tables[3, buf[i + 4]])
            ^ np.int64(tables[2, buf[i + 5]])
            ^ np.int64(tables[1, buf[i + 6]])
            ^ np.int64(tables[0, buf[i + 7]])
        )
        i += 8
    while i < hi:
        c = np.int64(tables[0, (c ^ np.int64(buf[i])) & 0xFF]) ^ (c >> 8)
        i += 1
    return c ^ 0xFFFFFFFF


SLICING_TABLES = slicing_tables()
SHIFT_TABLES = shift_tables()
if HAS_SSE42:
    crc_range, CRC_TABLES = crc_range_hw, SHIFT_TABLES
else:
    crc_range, CRC_TABLES = crc_range_sw, SLICING_TABLES

# The whole-buffer kernels read their tables as frozen globals instead of arguments: the tables are
# constants of the polynomial, and one array argument less saves ~30 ns of unboxing per call, which
# is most of the gap to the C package at 16 KiB.
_BUFFER_SIGS = tuple(nt.int64(t, nt.int64) for t in (U8, BYTES, BYTEARRAY, MEMVIEW, MEMVIEW_W))


@kernel(*_BUFFER_SIGS, warm=HAS_SSE42)
def _crc_hw(buf, crc):
    if crc < 0 or crc > 0xFFFFFFFF:
        return -1
    return crc_range_hw(buf, 0, len(buf), crc, SHIFT_TABLES)


@kernel(*_BUFFER_SIGS, warm=not HAS_SSE42)
def _crc_sw(buf, crc):
    if crc < 0 or crc > 0xFFFFFFFF:
        return -1
    return crc_range_sw(buf, 0, len(buf), crc, SLICING_TABLES)


_crc_kernel = _crc_hw if HAS_SSE42 else _crc_sw


def as_u8(buf) -> np.ndarray:
    """A 1-D contiguous uint8 view of a bytes-like object or array, without copying."""
    if isinstance(buf, np.ndarray):
        if buf.dtype != np.uint8 or buf.ndim != 1:
            raise TypeError(f"expected a 1-D uint8 array, got {buf.dtype} with {buf.ndim} dimensions")
        if not buf.flags.c_contiguous:
            raise ValueError("array must be contiguous")
        return buf
    try:
        view = memoryview(buf)
    except TypeError:
        raise TypeError(f"expected a bytes-like object or uint8 array, got {type(buf).__name__}") from None
    if not view.c_contiguous:
        raise ValueError("buffer must be contiguous")
    return np.frombuffer(view.cast("B") if view.format != "B" or view.ndim != 1 else view, np.uint8)


# Exact buffer type -> compiled entry point; filled by `bind_fast_paths()` (warmup or first call).
_FAST: dict = {}


def bind_fast_paths() -> None:
    if _jit.NO_JIT:
        return
    eps = _jit.entry_points(_crc_kernel)
    _FAST.update({bytes: eps[1], bytearray: eps[2]})


def _checked(result: int, crc) -> int:
    """Turn the kernels' -1 (crc outside 0..2**32-1) into ValueError."""
    if result < 0:
        raise ValueError(f"crc must be an unsigned 32-bit value, got {crc}")
    return int(result)


def _make_crc32c():
    fast_get = _FAST.get

    def crc32c(buf, crc: int = 0) -> int:
        """CRC-32C of `buf` (bytes, bytearray, memoryview or 1-D uint8 array), continuing from `crc`."""
        fast = fast_get(type(buf))
        if fast is not None:
            try:
                result = fast(buf, crc)
            except OverflowError:
                result = -1
            if result >= 0:
                return result
            return _checked(result, crc)
        if _jit.NO_JIT:
            return _checked(_crc_kernel(as_u8(buf), crc), crc)
        if not 0 <= crc <= _MASK32:
            raise ValueError(f"crc must be an unsigned 32-bit value, got {crc}")
        try:
            return _checked(_crc_kernel(buf, crc), crc)
        except TypeError:
            pass
        bind_fast_paths()
        return _checked(_crc_kernel(as_u8(buf), crc), crc)

    return crc32c


crc32c = _make_crc32c()
