"""What the hand-tuned Produce and Fetch decoders share: the request header v1 read straight from the frame,
int16 strings, and the wrapper that falls back to the generic codec and turns any slip into CodecError.

The generic codec stays the definition: a frame the fast path does not take (another version, another API)
goes to `decode_request` unchanged, and a malformed one fails with the same exception class.
"""

from __future__ import annotations

import struct
from typing import Callable, TypeVar

from netio.codec.errors import CodecError
from netio.codec.frame import Request, RequestHeader, decode_request

MAX_STRING = 0x7FFF
_I16 = struct.Struct(">h")
_PREFIX = struct.Struct(">hhi")
_FAULTS = (struct.error, IndexError, ValueError)

T = TypeVar("T")


def decode(frame, api, versions: tuple[int, int], decode_body: Callable[[memoryview, int, RequestHeader], T],
           from_generic: Callable[[Request], T]) -> T:
    """Decode `frame` for `api` with `decode_body` when its version is in `versions`, else generically."""
    buf = frame if isinstance(frame, memoryview) else memoryview(frame)
    parsed = read_header(buf, api.key, *versions)
    if parsed is None:
        request = decode_request(buf)
        if request.header.api_key != api.key:
            raise CodecError(f"api key {request.header.api_key} is not {api.name}", header=request.header)
        return from_generic(request)
    header, pos = parsed
    try:
        return decode_body(buf, pos, header)
    except CodecError as exc:
        exc.header = header
        raise
    except _FAULTS as exc:
        raise CodecError(f"malformed {api.name} v{header.api_version} request: {type(exc).__name__}: {exc}",
                         header=header) from None


def read_header(buf: memoryview, api_key: int, lo: int, hi: int) -> tuple[RequestHeader, int] | None:
    """Header v1 of a request for `api_key` at a version in [lo, hi], or None if the frame is anything else.

    Malformed input raises CodecError exactly where `decode_request` would: a frame shorter than 8 bytes
    without a header, a bad client id with the 8-byte prefix as header. [lo, hi] must be advertised versions.
    """
    n = len(buf)
    if n < 8:
        raise CodecError(f"request of {n} bytes is shorter than a header")
    key, version, correlation_id = _PREFIX.unpack_from(buf, 0)
    if key != api_key or not lo <= version <= hi:
        return None
    if n >= 10:
        (length,) = _I16.unpack_from(buf, 8)
        if length == -1:
            return RequestHeader(key, version, correlation_id, None), 10
        end = 10 + length
        if length >= 0 and end <= n:
            try:
                return RequestHeader(key, version, correlation_id, str(buf[10:end], "utf-8")), end
            except UnicodeDecodeError:
                pass
    raise CodecError("malformed request header client id", header=RequestHeader(key, version, correlation_id))


def read_string(buf: memoryview, pos: int, end: int) -> tuple[str, int]:
    """A non-nullable int16-length UTF-8 string at pos."""
    (length,) = _I16.unpack_from(buf, pos)
    pos += 2
    stop = pos + length
    if length < 0 or stop > end:
        raise CodecError(f"invalid string length {length} at offset {pos - 2}")
    return str(buf[pos:stop], "utf-8"), stop
