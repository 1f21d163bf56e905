"""Records inside RecordBatch v2, built and read in plain Python: for the CLI, the group coordinator's
replay of `__consumer_offsets` and the load harness's latency keys, where a few records per call do not
justify compiling kernels (the broker's data path never looks inside records). Compressed batches from
other producers are read when they use gzip; other codecs are reported, not guessed. CRC-32C comes from
the `crc32c` package so a command-line tool starts without a JIT warmup."""

from __future__ import annotations

import gzip
import struct
from dataclasses import dataclass, field

import crc32c

_HEADER = struct.Struct(">qiibIhiqqqhii")  # base offset .. record count: 61 bytes
_CRC_START = 21  # the CRC covers everything from the attributes on
CODECS = {0: "none", 1: "gzip", 2: "snappy", 3: "lz4", 4: "zstd"}


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
        (base, length, _epoch, magic, _crc, attrs, _last_delta, base_ts, max_ts, _pid, _pepoch, _seq,
         count) = _HEADER.unpack_from(data, pos)
        end = pos + 12 + length
        if end > len(data):
            break
        if magic != 2:
            raise ValueError(f"record batch magic {magic} at offset {base} is not supported")
        if attrs & 0x20:  # control batch (transaction markers): not application data
            pos = end
            continue
        records = data[pos + _HEADER.size:end]
        codec = attrs & 0x07
        if codec == 1:
            records = gzip.decompress(records)
        elif codec:
            raise ValueError(f"batch at offset {base} is compressed with {CODECS.get(codec, codec)}, "
                             "which this tool does not read")
        ts_type = "LogAppendTime" if attrs & 0x08 else "CreateTime"
        out.extend(_records(records, count, base, base_ts, max_ts if ts_type == "LogAppendTime" else None, ts_type))
        pos = end
    return out


def _records(buf: bytes, count: int, base: int, base_ts: int, fixed_ts: int | None, ts_type: str):
    pos = 0
    for _ in range(count):
        length, pos = _read_varint(buf, pos)
        end = pos + length
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
        pos = end


def _read_bytes(buf: bytes, pos: int) -> tuple[bytes | None, int]:
    n, pos = _read_varint(buf, pos)
    if n < 0:
        return None, pos
    return buf[pos:pos + n], pos + n
