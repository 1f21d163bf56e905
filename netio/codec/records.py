"""Records inside RecordBatch v2, built and read in plain Python: for the CLI, the group coordinator's
replay of `__consumer_offsets`, ListOffsets by timestamp and the load harness's latency keys, where a few
records per call do not justify compiling kernels (the broker's data path never looks inside records).
Batches compressed by clients are read with every codec Kafka defines (gzip, snappy, lz4 and zstd, from
`cramjam`). CRC-32C comes from the `crc32c` package so a command-line tool starts without a JIT warmup."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

import cramjam
import crc32c

_HEADER = struct.Struct(">qiibIhiqqqhii")  # base offset .. record count: 61 bytes
_CRC_START = 21  # the CRC covers everything from the attributes on
CODECS = {0: "none", 1: "gzip", 2: "snappy", 3: "lz4", 4: "zstd"}
_XERIAL = b"\x82SNAPPY\x00"  # snappy-java's stream header: the Java producer frames its snappy blocks
_XERIAL_BLOCK = struct.Struct(">i")
_STREAM_CODECS = {1: cramjam.gzip, 3: cramjam.lz4, 4: cramjam.zstd}
DECOMPRESSED_LIMIT = 64 << 20  # what one batch's records may decompress to here (a bomb stops at this)


def decompress(codec: int, data, limit: int = DECOMPRESSED_LIMIT) -> bytes:
    """The records section of a batch compressed with `codec` (the attributes' low 3 bits), as Kafka's
    clients write it: gzip, snappy as raw blocks (librdkafka) or in snappy-java's framing (the Java
    producer), LZ4 frames, zstd frames. ValueError for an unknown codec, damaged data, or more than
    `limit` bytes of output: the output buffer is bounded before anything is decompressed into it."""
    data = bytes(data)
    if codec not in (1, 2, 3, 4):
        raise ValueError(f"unknown compression codec {codec}")
    try:
        if codec == 2:
            return _snappy(data, limit)
        return _bounded(_STREAM_CODECS[codec].decompress_into, data, limit)
    except cramjam.DecompressionError as e:
        raise ValueError(f"{CODECS[codec]} data does not decompress within {limit} bytes: {e}") from None


def _bounded(into, data: bytes, limit: int) -> bytes:
    """Decompress into a buffer that grows 8-fold per try up to `limit` (the codecs' streaming APIs
    cannot stop at a size; writing into a buffer that is too small fails instead of growing it)."""
    size = min(limit, max(64 << 10, 8 * len(data)))
    while True:
        out = bytearray(size)
        try:
            return bytes(memoryview(out)[:into(data, out)])
        except cramjam.DecompressionError:
            if size >= limit:
                raise
            size = min(limit, size * 8)


def _snappy(data: bytes, limit: int) -> bytes:
    if not data.startswith(_XERIAL):
        return _snappy_block(data, limit)
    out = bytearray()
    pos = len(_XERIAL) + 8  # header, then the stream's version and compatible version (int32 each)
    while pos < len(data):
        if pos + 4 > len(data):
            raise cramjam.DecompressionError("truncated snappy-java block length")
        (n,) = _XERIAL_BLOCK.unpack_from(data, pos)
        pos += 4
        if n < 0 or pos + n > len(data):
            raise cramjam.DecompressionError("snappy-java block runs past the data")
        out += _snappy_block(data[pos:pos + n], limit - len(out))
        pos += n
    return bytes(out)


def _snappy_block(block: bytes, limit: int) -> bytes:
    n = cramjam.snappy.decompress_raw_len(block)  # a raw block states its length first
    if n > limit:
        raise cramjam.DecompressionError(f"a snappy block of {n} bytes")
    out = bytearray(n)
    cramjam.snappy.decompress_raw_into(block, out)
    return bytes(out)


def compress(codec: int, data, like=None) -> bytes:
    """`data` (a records section) compressed with `codec` as Kafka's clients write it. Snappy gets
    snappy-java's framing when `like` (the section it replaces) had it, else a raw block as librdkafka writes."""
    data = bytes(data)
    if codec == 2:
        block = bytes(cramjam.snappy.compress_raw(data))
        if like is not None and bytes(like[:len(_XERIAL)]) == _XERIAL:
            return _XERIAL + struct.pack(">ii", 1, 1) + _XERIAL_BLOCK.pack(len(block)) + block
        return block
    if codec not in _STREAM_CODECS:
        raise ValueError(f"unknown compression codec {codec}")
    return bytes(_STREAM_CODECS[codec].compress(data))


@dataclass(frozen=True)
class Record:
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes | None]] = field(default_factory=list)
    timestamp_type: str = "CreateTime"


def _varint(n: int, out: bytearray) -> None:
    z = (n << 1) ^ (n >> 63)
    while z & ~0x7F:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)


def _read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    shift = z = 0
    while True:
        b = buf[pos]
        pos += 1
        z |= (b & 0x7F) << shift
        if not b & 0x80:
            break
        shift += 7
    return (z >> 1) ^ -(z & 1), pos


def _bytes(value: bytes | None, out: bytearray) -> None:
    if value is None:
        _varint(-1, out)
    else:
        _varint(len(value), out)
        out += value


def encode_batch(records: list[tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]], timestamp_ms: int) -> bytes:
    """One uncompressed batch of (key, value, headers) records, all stamped `timestamp_ms`."""
    body = bytearray()
    for delta, (key, value, headers) in enumerate(records):
        rec = bytearray(b"\x00")  # attributes
        _varint(0, rec)  # timestamp delta
        _varint(delta, rec)
        _bytes(key, rec)
        _bytes(value, rec)
        _varint(len(headers), rec)
        for hk, hv in headers:
            _bytes(hk.encode(), rec)
            _bytes(hv, rec)
        _varint(len(rec), body)
        body += rec
    n = len(records)
    head = bytearray(_HEADER.pack(0, 0, -1, 2, 0, 0, n - 1, timestamp_ms, timestamp_ms, -1, -1, -1, n))
    struct.pack_into(">i", head, 8, len(head) + len(body) - 12)
    crc = crc32c.crc32c(bytes(head[_CRC_START:]) + bytes(body))
    struct.pack_into(">I", head, 17, crc)
    return bytes(head + body)


def decode_batches(data: bytes) -> list[Record]:
    """Every complete record in a Fetch `records` blob; a partial trailing batch is ignored."""
    data = bytes(data)
    out: list[Record] = []
    pos = 0
    while pos + _HEADER.size <= len(data):
        base, length, _epoch, magic, _crc, attrs = _HEADER.unpack_from(data, pos)[:6]
        end = pos + 12 + length
        if end > len(data):
            break
        if magic != 2:
            raise ValueError(f"record batch magic {magic} at offset {base} is not supported")
        if not attrs & 0x20:  # a control batch (transaction markers) holds no application data
            out.extend(_batch_records(data[pos:end]))
        pos = end
    return out


def record_times(batch) -> list[tuple[int, int]]:
    """(offset, timestamp) of every record of one whole batch, in order. A LogAppendTime batch gives each
    record the batch's maxTimestamp, as Kafka does."""
    return [(r.offset, r.timestamp) for r in _batch_records(bytes(batch))]


def _batch_records(batch: bytes) -> list[Record]:
    """The records of one whole batch, decompressed when the producer compressed them; ValueError naming
    the batch when they cannot be read."""
    (base, _length, _epoch, _magic, _crc, attrs, _last_delta, base_ts, max_ts, _pid, _pepoch, _seq,
     count) = _HEADER.unpack_from(batch, 0)
    records = batch[_HEADER.size:]
    log_append_time = bool(attrs & 0x08)
    try:
        if attrs & 0x07:
            records = decompress(attrs & 0x07, records)
        return list(_records(records, count, base, base_ts, max_ts if log_append_time else None,
                             "LogAppendTime" if log_append_time else "CreateTime"))
    except ValueError as e:
        raise ValueError(f"batch at offset {base}: {e}") from None


def _records(buf: bytes, count: int, base: int, base_ts: int, fixed_ts: int | None, ts_type: str):
    """`count` and every record's length come from the producer: each record must fit in what is there."""
    pos = done = 0
    try:
        for _ in range(count):
            length, pos = _read_varint(buf, pos)
            end = pos + length
            if length < 3 or end > len(buf):
                raise ValueError(f"a record of {length} bytes at byte {pos} of {len(buf)}")
            pos += 1  # attributes
            ts_delta, pos = _read_varint(buf, pos)
            off_delta, pos = _read_varint(buf, pos)
            key, pos = _read_bytes(buf, pos)
            value, pos = _read_bytes(buf, pos)
            nh, pos = _read_varint(buf, pos)
            headers = []
            for _ in range(nh):
                hk, pos = _read_bytes(buf, pos)
                hv, pos = _read_bytes(buf, pos)
                headers.append(((hk or b"").decode("utf-8", "replace"), hv))
            yield Record(base + off_delta, fixed_ts if fixed_ts is not None else base_ts + ts_delta, key, value,
                         headers, ts_type)
            done += 1
            pos = end
    except IndexError:
        raise ValueError(f"the batch claims {count} records, {done} are there") from None


def _read_bytes(buf: bytes, pos: int) -> tuple[bytes | None, int]:
    n, pos = _read_varint(buf, pos)
    if n < 0:
        return None, pos
    return buf[pos:pos + n], pos + n
