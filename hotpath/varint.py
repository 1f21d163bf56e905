"""Kafka's variable-length integers.

* unsigned varint: 7 bits per byte, low group first, high bit = "more follows". Kafka uses it for
  32-bit quantities only (compact lengths, tag numbers), so at most 5 bytes.
* varint / varlong: the zigzag mapping (0, -1, 1, -2, ... -> 0, 1, 2, 3, ...) of a signed int32 / int64,
  then an unsigned varint of at most 5 / 10 bytes. Record fields use them (lengths, deltas).

The `read_*` / `write_*` helpers are the building blocks of the batch kernels; they work on int64
registers holding the 64 bits of the unsigned value, and report errors as negative positions
(TRUNCATED_VARINT, OVERLONG_VARINT) because kernels cannot raise. The public encode/decode functions
serve per-request Python code and raise ValueError.
"""

from __future__ import annotations

import numpy as np

from ._jit import U8, U8W, helper, kernel, nt

TRUNCATED_VARINT = -1
OVERLONG_VARINT = -2

_INT64_MIN = -(1 << 63)
_INT64_MAX = (1 << 63) - 1
_LOW63 = 0x7FFFFFFFFFFFFFFF
_LOW57 = 0x01FFFFFFFFFFFFFF


# ------------------------------------------------------------------------------- kernel helpers


@helper
def read_uvarint(buf, pos, end, max_bytes):
    """Unsigned varint at buf[pos:end] of at most `max_bytes` (5 or 10) bytes -> (value bits, new pos).

    With 5 bytes the value must fit 32 bits, with 10 it must fit 64 bits.
    """
    value = np.int64(0)
    shift = 0
    width = 64 if max_bytes == 10 else 32
    for n in range(max_bytes):
        if pos >= end:
            return np.int64(0), TRUNCATED_VARINT
        b = np.int64(buf[pos])
        pos += 1
        if n == max_bytes - 1 and (b >> (width - shift)) != 0:
            return np.int64(0), OVERLONG_VARINT
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, pos
        shift += 7
    return np.int64(0), OVERLONG_VARINT


@helper
def unzigzag(u):
    """Zigzag-decode the 64 bits in `u`."""
    return ((u >> 1) & _LOW63) ^ -(u & 1)


@helper
def read_varint(buf, pos, end):
    """Zigzag varint (int32, at most 5 bytes) -> (value, new pos)."""
    u, pos = read_uvarint(buf, pos, end, 5)
    return unzigzag(u), pos


@helper
def read_varlong(buf, pos, end):
    """Zigzag varlong (int64, at most 10 bytes) -> (value, new pos)."""
    u, pos = read_uvarint(buf, pos, end, 10)
    return unzigzag(u), pos


@helper
def zigzag(v):
    """Zigzag-encode int64 `v`; the result's 64 bits are the unsigned value."""
    v = np.int64(v)
    return (v << 1) ^ (v >> 63)


@helper
def uvarint_size(u):
    """Bytes needed for the unsigned value held in the 64 bits of `u`."""
    if u < 0:
        return 10
    n = 1
    while u >= 0x80:
        u >>= 7
        n += 1
    return n


@helper
def write_uvarint(out, pos, u):
    """Write the unsigned value held in the 64 bits of `u` at out[pos]; returns the new position."""
    u = np.int64(u)
    while True:
        low = u & 0x7F
        u = (u >> 7) & _LOW57
        if u == 0:
            out[pos] = low
            return pos + 1
        out[pos] = low | 0x80
        pos += 1


# ------------------------------------------------------------------ kernels exposing the helpers


@kernel(nt.UniTuple(nt.int64, 2)(U8, nt.int64, nt.int64, nt.int64), warm=False)
def _read_uvarint_kernel(buf, pos, end, max_bytes):
    return read_uvarint(buf, pos, end, max_bytes)


@kernel(nt.int64(U8W, nt.int64, nt.int64), warm=False)
def _write_zigzag_kernel(out, pos, v):
    return write_uvarint(out, pos, zigzag(v))


# --------------------------------------------------------------------------------- public API


def encode_uvarint(n: int) -> bytes:
    """Unsigned varint of 0 <= n < 2**32."""
    if not 0 <= n <= 0xFFFFFFFF:
        raise ValueError(f"unsigned varint out of range: {n}")
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def encode_varint(n: int) -> bytes:
    """Zigzag varint/varlong of a signed 64-bit value (an int32 encodes identically as varint)."""
    if not _INT64_MIN <= n <= _INT64_MAX:
        raise ValueError(f"varlong out of range: {n}")
    u = ((n << 1) ^ (n >> 63)) & 0xFFFFFFFFFFFFFFFF
    out = bytearray()
    while u >= 0x80:
        out.append((u & 0x7F) | 0x80)
        u >>= 7
    out.append(u)
    return bytes(out)


def _decode(buf, pos: int, max_bytes: int) -> tuple[int, int]:
    if pos < 0:
        raise ValueError(f"negative position {pos}")
    end = len(buf)
    value = 0
    for n in range(max_bytes):
        if pos >= end:
            raise ValueError("truncated varint")
        b = int(buf[pos])
        pos += 1
        value |= (b & 0x7F) << (7 * n)
        if b < 0x80:
            if value >> (32 if max_bytes == 5 else 64):
                raise ValueError("varint overflows its width")
            return value, pos
    raise ValueError(f"varint longer than {max_bytes} bytes")


def decode_uvarint(buf, pos: int = 0) -> tuple[int, int]:
    """Unsigned varint (<= 5 bytes, < 2**32) at buf[pos] -> (value, new_pos); ValueError if malformed."""
    return _decode(buf, pos, 5)


def decode_varint(buf, pos: int = 0) -> tuple[int, int]:
    """Zigzag varint/varlong (<= 10 bytes) at buf[pos] -> (value, new_pos); ValueError if malformed."""
    u, pos = _decode(buf, pos, 10)
    return (u >> 1) ^ -(u & 1), pos
