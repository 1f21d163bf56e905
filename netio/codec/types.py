"""Readers and writers for Kafka's primitive wire types.

Every reader has the shape `read(buf, pos) -> (value, new_pos)` over a memoryview whose length is the end
of the message; every writer has the shape `write(value, out: bytearray)`. Lengths and counts are checked
against the bytes that remain *before* anything is sliced or allocated, so a hostile length costs nothing.
Short reads of fixed-size values surface as `struct.error`/`IndexError`; the schema layer turns those
into `CodecError` once, at the top of a decode, instead of paying for a check per field.
"""

from __future__ import annotations

import struct
import uuid
from typing import Any, Callable

from netio.codec.errors import CodecError

Reader = Callable[[memoryview, int], tuple[Any, int]]
Writer = Callable[[Any, bytearray], None]

_INT8 = struct.Struct(">b")
_INT16 = struct.Struct(">h")
_INT32 = struct.Struct(">i")
_INT64 = struct.Struct(">q")
_UINT16 = struct.Struct(">H")
_UINT32 = struct.Struct(">I")
_FLOAT64 = struct.Struct(">d")

ZERO_UUID = uuid.UUID(int=0)
MAX_STRING = 0x7FFF
MAX_UVARINT = 0xFFFFFFFF

# Smallest encoding of one value of each primitive; array counts are checked against remaining // size.
MIN_SIZE = {
    "bool": 1, "int8": 1, "int16": 2, "int32": 4, "int64": 8, "uint16": 2, "uint32": 4, "float64": 8,
    "uuid": 16, "string": 2, "bytes": 4, "records": 4,
}
MIN_SIZE_COMPACT = {**MIN_SIZE, "string": 1, "bytes": 1, "records": 1}


# ---------------------------------------------------------------------------------------------------------
# varints


def read_uvarint(buf: memoryview, pos: int) -> tuple[int, int]:
    """Unsigned LEB128 varint of at most 5 bytes (a 32-bit value), as Kafka's readUnsignedVarint."""
    b = buf[pos]
    if b < 0x80:
        return b, pos + 1
    value = b & 0x7F
    shift = 7
    while True:
        pos += 1
        b = buf[pos]
        value |= (b & 0x7F) << shift
        if b < 0x80:
            if value > MAX_UVARINT:
                raise CodecError("unsigned varint exceeds 32 bits")
            return value, pos + 1
        shift += 7
        if shift > 28:
            raise CodecError("unsigned varint longer than 5 bytes")


def write_uvarint(value: int, out: bytearray) -> None:
    if value < 0x80:
        out.append(value)
        return
    if value > MAX_UVARINT:
        raise CodecError(f"unsigned varint {value} exceeds 32 bits")
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)


def uvarint_bytes(value: int) -> bytes:
    out = bytearray()
    write_uvarint(value, out)
    return bytes(out)


# ---------------------------------------------------------------------------------------------------------
# fixed-size values


def _fixed_reader(st: struct.Struct) -> Reader:
    unpack = st.unpack_from
    size = st.size

    def read(buf: memoryview, pos: int) -> tuple[Any, int]:
        return unpack(buf, pos)[0], pos + size

    return read


def _fixed_writer(st: struct.Struct) -> Writer:
    pack = st.pack

    def write(value: Any, out: bytearray) -> None:
        out += pack(value)

    return write


def read_bool(buf: memoryview, pos: int) -> tuple[bool, int]:
    return buf[pos] != 0, pos + 1


def write_bool(value: Any, out: bytearray) -> None:
    if not isinstance(value, (bool, int)):
        raise CodecError(f"bool expected, got {type(value).__name__}")
    out.append(1 if value else 0)


def read_uuid(buf: memoryview, pos: int) -> tuple[uuid.UUID, int]:
    end = pos + 16
    if end > len(buf):
        raise CodecError("uuid past the end of the message")
    return uuid.UUID(bytes=bytes(buf[pos:end])), end


def write_uuid(value: Any, out: bytearray) -> None:
    if isinstance(value, uuid.UUID):
        out += value.bytes
    elif isinstance(value, (bytes, bytearray)) and len(value) == 16:
        out += value
    else:
        raise CodecError(f"uuid expected, got {value!r}")


# ---------------------------------------------------------------------------------------------------------
# length-prefixed values: strings, bytes, records


def _take(buf: memoryview, pos: int, n: int) -> int:
    """End offset of an n-byte value at pos, refusing lengths past the end of the message."""
    end = pos + n
    if end > len(buf):
        raise CodecError(f"length {n} at offset {pos} runs past the end of the message ({len(buf)} bytes)")
    return end


def _read_len16(buf, pos):
    return _INT16.unpack_from(buf, pos)[0], pos + 2


def _read_len32(buf, pos):
    return _INT32.unpack_from(buf, pos)[0], pos + 4


def _read_len_compact(buf, pos):
    n, pos = read_uvarint(buf, pos)
    return n - 1, pos


def _write_len16(n, out):
    out += _INT16.pack(n)


def _write_len32(n, out):
    out += _INT32.pack(n)


def _write_len_compact(n, out):
    write_uvarint(n + 1, out)


def _length_codec(kind: str, compact: bool):
    if compact:
        return _read_len_compact, _write_len_compact
    return (_read_len16, _write_len16) if kind == "string" else (_read_len32, _write_len32)


def string_reader(compact: bool, nullable: bool) -> Reader:
    read_len, _ = _length_codec("string", compact)

    def read(buf: memoryview, pos: int) -> tuple[str | None, int]:
        n, pos = read_len(buf, pos)
        if n < 0:
            if n == -1 and nullable:
                return None, pos
            raise CodecError(f"invalid string length {n}")
        end = _take(buf, pos, n)
        try:
            return str(buf[pos:end], "utf-8"), end
        except UnicodeDecodeError as exc:
            raise CodecError(f"string is not UTF-8: {exc}") from None

    return read


def string_writer(compact: bool, nullable: bool) -> Writer:
    _, write_len = _length_codec("string", compact)

    def write(value: Any, out: bytearray) -> None:
        if value is None:
            if not nullable:
                raise CodecError("null given for a non-nullable string")
            write_len(-1, out)
            return
        data = value.encode("utf-8")
        if len(data) > MAX_STRING:
            raise CodecError(f"string of {len(data)} bytes exceeds {MAX_STRING}")
        write_len(len(data), out)
        out += data

    return write


def bytes_reader(compact: bool, nullable: bool, zero_copy: bool = False) -> Reader:
    """`bytes` fields decode to owned bytes; `records` (zero_copy) to a memoryview slice of the frame."""
    read_len, _ = _length_codec("bytes", compact)

    def read(buf: memoryview, pos: int) -> tuple[Any, int]:
        n, pos = read_len(buf, pos)
        if n < 0:
            if n == -1 and nullable:
                return None, pos
            raise CodecError(f"invalid bytes length {n}")
        end = _take(buf, pos, n)
        return (buf[pos:end] if zero_copy else bytes(buf[pos:end])), end

    return read


def bytes_writer(compact: bool, nullable: bool) -> Writer:
    """Accepts anything exposing the buffer protocol: bytes, bytearray, memoryview, numpy uint8 arrays."""
    _, write_len = _length_codec("bytes", compact)

    def write(value: Any, out: bytearray) -> None:
        if value is None:
            if not nullable:
                raise CodecError("null given for non-nullable bytes")
            write_len(-1, out)
            return
        try:
            view = memoryview(value)
        except TypeError:
            raise CodecError(f"bytes-like value expected, got {type(value).__name__}") from None
        write_len(view.nbytes, out)
        out += view

    return write


# ---------------------------------------------------------------------------------------------------------
# arrays


def array_count_reader(compact: bool) -> Reader:
    return _read_len_compact if compact else _read_len32


def array_count_writer(compact: bool) -> Writer:
    return _write_len_compact if compact else _write_len32


def array_reader(item: Reader, item_size: int, compact: bool, nullable: bool) -> Reader:
    """Array of `item`; the count must fit in the remaining bytes at `item_size` bytes per element."""
    read_count = array_count_reader(compact)
    item_size = max(item_size, 1)

    def read(buf: memoryview, pos: int) -> tuple[list | None, int]:
        n, pos = read_count(buf, pos)
        if n < 0:
            if n == -1 and nullable:
                return None, pos
            raise CodecError(f"invalid array length {n}")
        if n * item_size > len(buf) - pos:
            raise CodecError(f"array of {n} elements cannot fit in {len(buf) - pos} remaining bytes")
        out = []
        append = out.append
        for _ in range(n):
            value, pos = item(buf, pos)
            append(value)
        return out, pos

    return read


def array_writer(item: Writer, compact: bool, nullable: bool) -> Writer:
    write_count = array_count_writer(compact)

    def write(value: Any, out: bytearray) -> None:
        if value is None:
            if not nullable:
                raise CodecError("null given for a non-nullable array")
            write_count(-1, out)
            return
        write_count(len(value), out)
        for element in value:
            item(element, out)

    return write


def skip_tagged_fields(buf: memoryview, pos: int) -> int:
    """Skip a tagged-field section whose tags are all unknown to the reader (e.g. header v2's)."""
    count, pos = read_uvarint(buf, pos)
    for _ in range(count):
        _tag, pos = read_uvarint(buf, pos)
        size, pos = read_uvarint(buf, pos)
        pos = _take(buf, pos, size)
    return pos


# ---------------------------------------------------------------------------------------------------------
# lookup


_FIXED = {
    "int8": _INT8, "int16": _INT16, "int32": _INT32, "int64": _INT64,
    "uint16": _UINT16, "uint32": _UINT32, "float64": _FLOAT64,
}

PRIMITIVES = frozenset(("bool", "uuid", "string", "bytes", "records", *_FIXED))

# Integer bounds per type, for callers that need to validate or generate values.
INT_RANGES = {
    "int8": (-(1 << 7), (1 << 7) - 1), "int16": (-(1 << 15), (1 << 15) - 1),
    "int32": (-(1 << 31), (1 << 31) - 1), "int64": (-(1 << 63), (1 << 63) - 1),
    "uint16": (0, (1 << 16) - 1), "uint32": (0, (1 << 32) - 1),
}

_FIXED_READERS = {name: _fixed_reader(st) for name, st in _FIXED.items()}
_FIXED_WRITERS = {name: _fixed_writer(st) for name, st in _FIXED.items()}


def primitive_reader(type_: str, compact: bool, nullable: bool) -> Reader:
    if type_ in _FIXED_READERS:
        return _FIXED_READERS[type_]
    if type_ == "bool":
        return read_bool
    if type_ == "uuid":
        return read_uuid
    if type_ == "string":
        return string_reader(compact, nullable)
    if type_ == "bytes":
        return bytes_reader(compact, nullable)
    if type_ == "records":
        return bytes_reader(compact, nullable, zero_copy=True)
    raise ValueError(f"unknown primitive type {type_!r}")


def primitive_writer(type_: str, compact: bool, nullable: bool) -> Writer:
    if type_ in _FIXED_WRITERS:
        return _FIXED_WRITERS[type_]
    if type_ == "bool":
        return write_bool
    if type_ == "uuid":
        return write_uuid
    if type_ == "string":
        return string_writer(compact, nullable)
    if type_ in ("bytes", "records"):
        return bytes_writer(compact, nullable)
    raise ValueError(f"unknown primitive type {type_!r}")


def primitive_min_size(type_: str, compact: bool) -> int:
    return (MIN_SIZE_COMPACT if compact else MIN_SIZE)[type_]


def read_int16(buf: memoryview, pos: int) -> tuple[int, int]:
    return _INT16.unpack_from(buf, pos)[0], pos + 2


def read_int32(buf: memoryview, pos: int) -> tuple[int, int]:
    return _INT32.unpack_from(buf, pos)[0], pos + 4


def pack_int32(value: int) -> bytes:
    return _INT32.pack(value)
