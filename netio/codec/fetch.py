"""Fetch (api 1) fast path: request decode and a scatter-gather response encoder for v4-v11.

A Fetch response is mostly record bytes that already sit in segment files. The encoder therefore writes
only the framing around them and returns a list of parts: `bytes` it wrote, and each partition's records
untouched, either in memory (bytes/memoryview) or as a `FilePart` file range the network worker hands to
`os.sendfile`. The size prefix is computed from the parts' lengths, so no record byte passes through Python.

The generic codec is the definition: decoded requests equal `decode_request`'s, and a response whose parts
are concatenated (file ranges read back) is byte-identical to `encode_response`'s for the same body. One rule
is Kafka's rather than the schema's: a partition without records is sent as an empty record set (length 0),
never as null, which some clients cannot parse.

Request v4-v11:  replica_id | max_wait_ms | min_bytes | max_bytes | isolation_level: int8 |
session_id, session_epoch (v7+) | [topic | [partition | current_leader_epoch (v9+) | fetch_offset: int64 |
log_start_offset: int64 (v5+) | partition_max_bytes]] | forgotten: [topic | [int32]] (v7+) | rack_id (v11+)
Response v4-v11: throttle_time_ms | error_code, session_id (v7+) | [topic | [partition | error_code |
high_watermark | last_stable_offset | log_start_offset (v5+) | aborted: nullable [producer_id | first_offset] |
preferred_read_replica (v11+) | records: int32-length bytes]]
"""

from __future__ import annotations

import struct
from typing import NamedTuple, Union

from netio.codec.apis.core import FETCH
from netio.codec.errors import CodecError
from netio.codec.frame import Request, RequestHeader
from netio.codec import fastpath
from netio.codec.fastpath import MAX_STRING, read_string
from netio.connection import FilePart, Part

FAST_VERSIONS = (4, 11)
MAX_RECORDS = 0x7FFFFFFF

_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")
_HEAD_V4 = struct.Struct(">iiiib")      # replica_id, max_wait_ms, min_bytes, max_bytes, isolation_level
_HEAD_V7 = struct.Struct(">iiiibii")    # ... session_id, session_epoch
_PART_V4 = struct.Struct(">iqi")        # partition, fetch_offset, partition_max_bytes
_PART_V5 = struct.Struct(">iqqi")       # partition, fetch_offset, log_start_offset, partition_max_bytes
_PART_V9 = struct.Struct(">iiqqi")      # partition, current_leader_epoch, fetch_offset, log_start_offset, ...
_ABORTED = struct.Struct(">qq")
_RESP_HEAD_V4 = struct.Struct(">iii")     # correlation_id, throttle_time_ms, topic count
_RESP_HEAD_V7 = struct.Struct(">iihii")   # correlation_id, throttle_time_ms, error_code, session_id, count
# A partition without aborted transactions, up to its records length, in one pack per layout (v4, v5-10, v11):
# partition, error_code, high_watermark, last_stable_offset, [log_start_offset], aborted count (-1 null or 0),
# [preferred_read_replica], records length.
_RESP_PART_PLAIN = {4: struct.Struct(">ihqqii"), 5: struct.Struct(">ihqqqii"), 11: struct.Struct(">ihqqqiii")}
# ...and with aborted transactions: the fields up to the aborted count.
_RESP_PART_HEAD = {4: struct.Struct(">ihqqi"), 5: struct.Struct(">ihqqqi"), 11: struct.Struct(">ihqqqi")}

# Smallest encodings of one array element, so a hostile count is refused before any work.
_TOPIC_MIN = 2 + 4
_ENCODE_FAULTS = (struct.error, TypeError, AttributeError, ValueError, OverflowError)


class FetchPartition(NamedTuple):
    partition: int
    current_leader_epoch: int
    fetch_offset: int
    log_start_offset: int
    partition_max_bytes: int


class FetchRequest(NamedTuple):
    """A decoded Fetch request; fields a version lacks hold Kafka's defaults (epochs -1, session 0)."""

    header: RequestHeader
    replica_id: int
    max_wait_ms: int
    min_bytes: int
    max_bytes: int
    isolation_level: int
    session_id: int
    session_epoch: int
    topics: list[tuple[str, list[FetchPartition]]]
    forgotten_topics: list[tuple[str, list[int]]]
    rack_id: str

    @property
    def version(self) -> int:
        return self.header.api_version


Records = Union[bytes, bytearray, memoryview, FilePart, None]


class PartitionData(NamedTuple):
    """One partition of a Fetch response; `records` is in-memory bytes or a `FilePart` range of a segment."""

    partition: int
    error_code: int
    high_watermark: int
    last_stable_offset: int = -1
    log_start_offset: int = -1
    aborted_transactions: list[tuple[int, int]] | None = None
    preferred_read_replica: int = -1
    records: Records = b""



# ---------------------------------------------------------------------------------------------------------
# request


def decode_fetch_request(frame) -> FetchRequest:
    """Decode a Fetch request frame body (size prefix stripped).

    Raises CodecError (with `.header` once the header is known) on malformed input; versions other than
    v4-v11 and frames of other APIs are handed to `decode_request`, so they raise what it raises.
    """
    return fastpath.decode(frame, FETCH, FAST_VERSIONS, _decode_body, from_generic)


def _decode_body(buf: memoryview, pos: int, header: RequestHeader) -> FetchRequest:
    version = header.api_version
    end = len(buf)
    if version >= 7:
        replica_id, max_wait_ms, min_bytes, max_bytes, isolation, session_id, session_epoch = \
            _HEAD_V7.unpack_from(buf, pos)
        pos += _HEAD_V7.size
    else:
        replica_id, max_wait_ms, min_bytes, max_bytes, isolation = _HEAD_V4.unpack_from(buf, pos)
        session_id, session_epoch = 0, -1
        pos += _HEAD_V4.size
    part = _PART_V9 if version >= 9 else _PART_V5 if version >= 5 else _PART_V4
    unpack_part = part.unpack_from
    part_size = part.size
    unpack_i32 = _I32.unpack_from
    make = FetchPartition._make

    (count,) = unpack_i32(buf, pos)
    pos += 4
    _check_count(count, _TOPIC_MIN, end - pos, "topic")
    topics: list[tuple[str, list[FetchPartition]]] = []
    for _ in range(count):
        topic, pos = read_string(buf, pos, end)
        (n,) = unpack_i32(buf, pos)
        pos += 4
        _check_count(n, part_size, end - pos, "partition")
        partitions: list[FetchPartition] = []
        append = partitions.append
        for _ in range(n):
            if version >= 9:
                append(make(unpack_part(buf, pos)))
            elif version >= 5:
                p, offset, log_start, max_part = unpack_part(buf, pos)
                append(FetchPartition(p, -1, offset, log_start, max_part))
            else:
                p, offset, max_part = unpack_part(buf, pos)
                append(FetchPartition(p, -1, offset, -1, max_part))
            pos += part_size
        topics.append((topic, partitions))

    forgotten: list[tuple[str, list[int]]] = []
    if version >= 7:
        (count,) = unpack_i32(buf, pos)
        pos += 4
        _check_count(count, _TOPIC_MIN, end - pos, "forgotten topic")
        for _ in range(count):
            topic, pos = read_string(buf, pos, end)
            (n,) = unpack_i32(buf, pos)
            pos += 4
            _check_count(n, 4, end - pos, "forgotten partition")
            forgotten.append((topic, list(struct.unpack_from(f">{n}i", buf, pos))))
            pos += 4 * n
    rack_id = ""
    if version >= 11:
        rack_id, pos = read_string(buf, pos, end)
    if pos != end:
        raise CodecError(f"{end - pos} unexpected bytes after Fetch v{version} request")
    return FetchRequest(header, replica_id, max_wait_ms, min_bytes, max_bytes, isolation, session_id,
                        session_epoch, topics, forgotten, rack_id)


def _check_count(count: int, item_size: int, remaining: int, what: str) -> None:
    if count < 0 or count * item_size > remaining:
        raise CodecError(f"{what} count {count} cannot fit in {remaining} remaining bytes")


def from_generic(request: Request) -> FetchRequest:
    """Reshape a generically decoded Fetch request into the fast path's form."""
    body = request.body
    topics = [(t["topic"], [FetchPartition(p["partition"], p["current_leader_epoch"], p["fetch_offset"],
                                           p["log_start_offset"], p["partition_max_bytes"])
                            for p in t["partitions"]])
              for t in body["topics"]]
    forgotten = [(t["topic"], list(t["partitions"])) for t in body["forgotten_topics_data"]]
    return FetchRequest(request.header, body["replica_id"], body["max_wait_ms"], body["min_bytes"],
                        body["max_bytes"], body["isolation_level"], body["session_id"], body["session_epoch"],
                        topics, forgotten, body["rack_id"])


# ---------------------------------------------------------------------------------------------------------
# response


def encode_fetch_response(version: int, correlation_id: int, throttle_time_ms: int, error_code: int,
                          session_id: int, topics: list[tuple[str, list[PartitionData]]]) -> list[Part]:
    """A complete Fetch response as parts: the first starts with the size prefix and header v0.

    Every part the encoder writes is `bytes`; in-memory records and `FilePart`s are passed through as their
    own parts (empty ones are dropped). `error_code` and `session_id` exist from v7 and are ignored before.
    """
    if not FAST_VERSIONS[0] <= version <= FAST_VERSIONS[1]:
        raise CodecError(f"Fetch v{version} is not supported")
    try:
        return _encode(version, correlation_id, throttle_time_ms, error_code, session_id, topics)
    except CodecError:
        raise
    except _ENCODE_FAULTS as exc:
        raise CodecError(f"cannot encode Fetch v{version} response: {type(exc).__name__}: {exc}") from None


def _encode(version: int, correlation_id: int, throttle_time_ms: int, error_code: int, session_id: int,
            topics) -> list[Part]:
    if version >= 7:
        head = _RESP_HEAD_V7.pack(correlation_id, throttle_time_ms, error_code, session_id, len(topics))
    else:
        head = _RESP_HEAD_V4.pack(correlation_id, throttle_time_ms, len(topics))
    layout = 11 if version >= 11 else 5 if version >= 5 else 4
    pack_plain = _RESP_PART_PLAIN[layout].pack
    pack_head = _RESP_PART_HEAD[layout].pack
    pack_i32 = _I32.pack
    parts: list[Part] = []
    pending: list[bytes] = [head]  # encoder bytes since the last record set, joined into one part
    total = 0
    for topic, partitions in topics:
        data = topic.encode("utf-8")
        if len(data) > MAX_STRING:
            raise CodecError(f"topic name of {len(data)} bytes exceeds {MAX_STRING}")
        pending.append(_I16.pack(len(data)) + data + pack_i32(len(partitions)))
        for partition, error, high_watermark, last_stable, log_start, aborted, replica, records in partitions:
            if records is None:
                size = 0
            elif isinstance(records, FilePart):
                size = records.length
            elif isinstance(records, bytes):
                size = len(records)
            else:
                records = _byte_view(records)
                size = records.nbytes
            if size < 0 or size > MAX_RECORDS:
                raise CodecError(f"records of {size} bytes for {topic}-{partition} cannot be framed")
            if not aborted:
                count = -1 if aborted is None else 0
                if layout == 11:
                    pending.append(pack_plain(partition, error, high_watermark, last_stable, log_start, count,
                                              replica, size))
                elif layout == 5:
                    pending.append(pack_plain(partition, error, high_watermark, last_stable, log_start, count, size))
                else:
                    pending.append(pack_plain(partition, error, high_watermark, last_stable, count, size))
            else:
                if layout == 4:
                    pending.append(pack_head(partition, error, high_watermark, last_stable, len(aborted)))
                else:
                    pending.append(pack_head(partition, error, high_watermark, last_stable, log_start, len(aborted)))
                pending.extend([_ABORTED.pack(producer_id, first_offset) for producer_id, first_offset in aborted])
                pending.append(pack_i32(replica) + pack_i32(size) if layout == 11 else pack_i32(size))
            if size:
                chunk = b"".join(pending)
                total += len(chunk) + size
                parts.append(chunk)
                parts.append(records)
                pending = []
    if pending or not parts:
        chunk = b"".join(pending)
        total += len(chunk)
        parts.append(chunk)
    parts[0] = pack_i32(total) + parts[0]
    return parts


def _byte_view(records) -> memoryview:
    try:
        view = memoryview(records)
    except TypeError:
        raise CodecError(f"records must be bytes-like or a FilePart, not {type(records).__name__}") from None
    if view.ndim != 1 or view.itemsize != 1 or not view.contiguous:
        view = view.cast("B") if view.contiguous else memoryview(view.tobytes())
    return view
