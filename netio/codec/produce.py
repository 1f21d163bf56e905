"""Produce (api 0) fast path: request decode and response encode for the served versions v3-v8.

Produce carries every byte a producer sends, so its request is parsed by straight-line `struct` code instead
of the generic plan interpreter, and the records stay zero-copy slices of the frame. The generic codec
(`netio.codec.frame`) remains the definition: for every frame the fast path returns what `decode_request`
returns (flattened) or raises the same exception class, which `tests/codec/test_fastpath.py` checks on
generated, mutated and real-client frames. Versions outside v3-v8 go through the generic path unchanged, so
refused v0-v2 requests still raise `UnsupportedVersion` carrying their body.

Request v3-v8 (one layout):  header v1 | transactional_id: nullable string | acks: int16 | timeout_ms: int32 |
[topic: string | [partition: int32 | records: nullable int32-length bytes]]
Response v3-v8:              [topic | [partition | error_code | base_offset | log_append_time_ms |
log_start_offset (v5+) | record_errors: [] (v8) | error_message (v8)]] | throttle_time_ms
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from netio.codec.apis.core import PRODUCE
from netio.codec import fastpath
from netio.codec.errors import CodecError
from netio.codec.fastpath import MAX_STRING, read_string
from netio.codec.frame import Request, RequestHeader, encode_response

FAST_VERSIONS = (3, 8)

_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")
_ACKS_TIMEOUT_COUNT = struct.Struct(">hii")
_PARTITION_HEAD = struct.Struct(">ii")
_RESPONSE_PARTITION = {
    3: struct.Struct(">ihqq"), 4: struct.Struct(">ihqq"),
    5: struct.Struct(">ihqqq"), 6: struct.Struct(">ihqqq"), 7: struct.Struct(">ihqqq"),
    8: struct.Struct(">ihqqqi"),  # ... record_errors count, always 0
}
_NULL_STRING = _I16.pack(-1)

# Smallest encodings of one array element, so a hostile count is refused before any work.
_TOPIC_MIN = 2 + 4
_PARTITION_MIN = 4 + 4
_ENCODE_FAULTS = (struct.error, TypeError, AttributeError, ValueError, OverflowError)


class ProduceRequest(NamedTuple):
    """A decoded Produce request; `partitions` is flat `(topic, partition, records)` in request order.

    `records` is a memoryview slice of the frame (or None for a null record set): it stays valid as long as
    the frame's buffer does, and costs no copy until it is written to a segment. A named tuple rather than a
    frozen dataclass: it is built once per request on the hot path and costs a third as much.
    """

    header: RequestHeader
    transactional_id: str | None
    acks: int
    timeout_ms: int
    partitions: list[tuple[str, int, memoryview | None]]

    @property
    def version(self) -> int:
        return self.header.api_version


# ---------------------------------------------------------------------------------------------------------
# request


def decode_produce_request(frame) -> ProduceRequest:
    """Decode a Produce request frame body (size prefix stripped) without copying its records.

    Raises CodecError (with `.header` once the header is known) on malformed input; versions other than
    v3-v8 and frames of other APIs are handed to `decode_request`, so they raise what it raises.
    """
    return fastpath.decode(frame, PRODUCE, FAST_VERSIONS, _decode_body, from_generic)


def _decode_body(buf: memoryview, pos: int, header: RequestHeader) -> ProduceRequest:
    end = len(buf)
    (length,) = _I16.unpack_from(buf, pos)
    pos += 2
    if length >= 0:
        stop = pos + length
        if stop > end:
            raise CodecError(f"transactional_id of {length} bytes runs past the end of the request")
        transactional_id = str(buf[pos:stop], "utf-8")
        pos = stop
    elif length == -1:
        transactional_id = None
    else:
        raise CodecError(f"invalid transactional_id length {length}")
    acks, timeout_ms, topics = _ACKS_TIMEOUT_COUNT.unpack_from(buf, pos)
    pos += 10
    if topics < 0 or topics * _TOPIC_MIN > end - pos:
        raise CodecError(f"topic count {topics} cannot fit in {end - pos} remaining bytes")
    partitions: list[tuple[str, int, memoryview | None]] = []
    append = partitions.append
    unpack_head = _PARTITION_HEAD.unpack_from
    unpack_i32 = _I32.unpack_from
    for _ in range(topics):
        topic, pos = read_string(buf, pos, end)
        (count,) = unpack_i32(buf, pos)
        pos += 4
        if count < 0 or count * _PARTITION_MIN > end - pos:
            raise CodecError(f"partition count {count} cannot fit in {end - pos} remaining bytes")
        for _ in range(count):
            index, size = unpack_head(buf, pos)
            pos += 8
            if size >= 0:
                stop = pos + size
                if stop > end:
                    raise CodecError(f"records of {size} bytes for {topic}-{index} run past the end of the request")
                append((topic, index, buf[pos:stop]))
                pos = stop
            elif size == -1:
                append((topic, index, None))
            else:
                raise CodecError(f"invalid records length {size} for {topic}-{index}")
    if pos != end:
        raise CodecError(f"{end - pos} unexpected bytes after Produce v{header.api_version} request")
    return ProduceRequest(header, transactional_id, acks, timeout_ms, partitions)


def from_generic(request: Request) -> ProduceRequest:
    """Flatten a generically decoded Produce request into the fast path's shape."""
    body = request.body
    partitions = [(topic["name"], part["index"], part["records"])
                  for topic in body["topic_data"] for part in topic["partition_data"]]
    return ProduceRequest(request.header, body["transactional_id"], body["acks"], body["timeout_ms"], partitions)


# ---------------------------------------------------------------------------------------------------------
# response

PartitionResult = tuple[int, int, int, int, int, "str | None"]


def encode_produce_response(version: int, correlation_id: int,
                            results: list[tuple[str, list[PartitionResult]]], throttle_time_ms: int = 0) -> bytes:
    """A complete Produce response frame (size prefix, header v0, body).

    `results` is `[(topic, [(partition, error_code, base_offset, log_append_time_ms, log_start_offset,
    error_message)])]`; fields a version lacks are dropped. Other advertised versions (a refused v0-v2
    request answered per partition) are encoded by the generic codec.
    """
    if not FAST_VERSIONS[0] <= version <= FAST_VERSIONS[1]:
        return encode_response(PRODUCE.key, version, correlation_id, _generic_body(results, throttle_time_ms))
    try:
        return _encode(version, correlation_id, results, throttle_time_ms)
    except CodecError:
        raise
    except _ENCODE_FAULTS as exc:
        raise CodecError(f"cannot encode Produce v{version} response: {type(exc).__name__}: {exc}") from None


def _encode(version: int, correlation_id: int, results, throttle_time_ms: int) -> bytes:
    out = bytearray(4)
    out += _I32.pack(correlation_id)
    out += _I32.pack(len(results))
    pack = _RESPONSE_PARTITION[version].pack
    pack_i32 = _I32.pack
    short = version < 5
    with_message = version >= 8
    for topic, partitions in results:
        _write_string(topic, out)
        out += pack_i32(len(partitions))
        for partition, error_code, base_offset, log_append_time_ms, log_start_offset, message in partitions:
            if short:
                out += pack(partition, error_code, base_offset, log_append_time_ms)
            elif with_message:
                out += pack(partition, error_code, base_offset, log_append_time_ms, log_start_offset, 0)
                if message is None:
                    out += _NULL_STRING
                else:
                    _write_string(message, out)
            else:
                out += pack(partition, error_code, base_offset, log_append_time_ms, log_start_offset)
    out += pack_i32(throttle_time_ms)
    _I32.pack_into(out, 0, len(out) - 4)
    return bytes(out)


def _write_string(value: str, out: bytearray) -> None:
    data = value.encode("utf-8")
    if len(data) > MAX_STRING:
        raise CodecError(f"string of {len(data)} bytes exceeds {MAX_STRING}")
    out += _I16.pack(len(data))
    out += data


def _generic_body(results, throttle_time_ms: int) -> dict:
    return {
        "responses": [
            {"name": topic, "partition_responses": [
                {"index": p, "error_code": e, "base_offset": b, "log_append_time_ms": t, "log_start_offset": s,
                 "error_message": m}
                for p, e, b, t, s, m in partitions]}
            for topic, partitions in results],
        "throttle_time_ms": throttle_time_ms,
    }
