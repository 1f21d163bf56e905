"""Plain-Python twins of the hotpath kernels: slow, obvious, written from the format description.

Each test compares a kernel with its twin here; nothing in this file imports hotpath.
"""

from __future__ import annotations

import struct

POLY = 0x82F63B78
HEADER = struct.Struct(">qiibIhiqqqhii")  # the 61-byte RecordBatch v2 header
FIELDS = (
    "base_offset", "batch_length", "leader_epoch", "magic", "crc", "attributes", "last_offset_delta",
    "base_timestamp", "max_timestamp", "producer_id", "producer_epoch", "base_sequence", "record_count",
)

OK, TRUNCATED, BAD_MAGIC, BAD_LENGTH, TOO_LARGE, COUNT_MISMATCH, CRC_MISMATCH, BAD_RECORD = range(8)


# ----------------------------------------------------------------------------------------- crc


def crc32c(data: bytes, crc: int = 0) -> int:
    crc ^= 0xFFFFFFFF
    for byte in bytes(data):
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ POLY if crc & 1 else crc >> 1
    return crc ^ 0xFFFFFFFF


# -------------------------------------------------------------------------------------- varint


def encode_uvarint(n: int) -> bytes:
    out = bytearray()
    while True:
        if n < 0x80:
            out.append(n)
            return bytes(out)
        out.append(0x80 | (n & 0x7F))
        n >>= 7


def zigzag(n: int) -> int:
    return 2 * n if n >= 0 else -2 * n - 1


def unzigzag(u: int) -> int:
    return u // 2 if u % 2 == 0 else -(u + 1) // 2


def encode_varint(n: int) -> bytes:
    return encode_uvarint(zigzag(n))


def decode_uvarint(buf: bytes, pos: int, max_bytes: int) -> tuple[int, int]:
    """-> (value, new pos); raises ValueError if truncated, too long or wider than the type."""
    value = 0
    for n in range(max_bytes):
        if pos >= len(buf):
            raise ValueError("truncated")
        b = buf[pos]
        pos += 1
        value += (b % 128) * 128**n
        if b < 128:
            if value >= 2 ** (32 if max_bytes == 5 else 64):
                raise ValueError("too wide")
            return value, pos
    raise ValueError("too long")


def decode_varint(buf: bytes, pos: int, max_bytes: int = 10) -> tuple[int, int]:
    u, pos = decode_uvarint(buf, pos, max_bytes)
    return unzigzag(u), pos


# ------------------------------------------------------------------------------------- batches


def records_ok(body: bytes, count: int) -> bool:
    """Every record of an uncompressed batch is well framed, with offset deltas 0..count-1."""
    p = 0
    try:
        for i in range(count):
            length, p = decode_varint(body, p, 5)
            if length < 6 or p + length > len(body):
                return False
            rec, p = body[p : p + length], p + length
            q = 1
            _, q = decode_varint(rec, q, 10)
            delta, q = decode_varint(rec, q, 5)
            if delta != i:
                return False
            for _ in range(2):
                n, q = decode_varint(rec, q, 5)
                if n < -1 or q + max(n, 0) > len(rec):
                    return False
                q += max(n, 0)
            headers, q = decode_varint(rec, q, 5)
            if headers < 0:
                return False
            for _ in range(headers):
                n, q = decode_varint(rec, q, 5)
                if n < 0 or q + n > len(rec):
                    return False
                q += n
                n, q = decode_varint(rec, q, 5)
                if n < -1 or q + max(n, 0) > len(rec):
                    return False
                q += max(n, 0)
            if q != len(rec):
                return False
    except ValueError:
        return False
    return p == len(body)


def scan(buf: bytes, max_batch_bytes: int = 2**31 - 1, deep: bool = False, max_batches=None,
         start: int = 0, end=None):
    """-> (list of header dicts with pos/size, error, error_pos)."""
    buf = bytes(buf)
    end = len(buf) if end is None else end
    pos = start
    batches = []
    while pos < end and (max_batches is None or len(batches) < max_batches):
        rem = end - pos
        if rem < 17:
            return batches, TRUNCATED, pos
        if buf[pos + 16] != 2:
            return batches, BAD_MAGIC, pos
        size = struct.unpack_from(">i", buf, pos + 8)[0] + 12
        if size < 61:
            return batches, BAD_LENGTH, pos
        if size > max_batch_bytes:
            return batches, TOO_LARGE, pos
        if rem < size:
            return batches, TRUNCATED, pos
        h = dict(zip(FIELDS, HEADER.unpack_from(buf, pos)))
        n, last = h["record_count"], h["last_offset_delta"]
        if n < 0 or n > last + 1 or (deep and n != last + 1):
            return batches, COUNT_MISMATCH, pos
        if crc32c(buf[pos + 21 : pos + size]) != h["crc"]:
            return batches, CRC_MISMATCH, pos
        if deep and h["attributes"] & 7 == 0 and not records_ok(buf[pos + 61 : pos + size], h["record_count"]):
            return batches, BAD_RECORD, pos
        h["pos"], h["size"] = pos, size
        batches.append(h)
        pos += size
    return batches, OK, pos


def build(records, timestamps, base_offset=0, producer_id=-1, producer_epoch=-1, base_sequence=-1,
          attributes=0, leader_epoch=-1) -> bytes:
    """records: list of (key|None, value|None, [(header_key bytes, header_value|None), ...])."""
    base_ts = timestamps[0]
    body = bytearray()
    for i, (key, value, headers) in enumerate(records):
        rec = bytearray(b"\x00")
        rec += encode_varint(timestamps[i] - base_ts) + encode_varint(i)
        for field in (key, value):
            rec += encode_varint(-1) if field is None else encode_varint(len(field)) + field
        rec += encode_varint(len(headers))
        for hk, hv in headers:
            rec += encode_varint(len(hk)) + hk
            rec += encode_varint(-1) if hv is None else encode_varint(len(hv)) + hv
        body += encode_varint(len(rec)) + rec
    n = len(records)
    tail = struct.pack(">hiqqqhii", attributes, n - 1, base_ts, max(timestamps), producer_id, producer_epoch,
                       base_sequence, n) + bytes(body)
    head = struct.pack(">qiib", base_offset, 61 - 12 + len(body), leader_epoch, 2)
    return head + struct.pack(">I", crc32c(tail)) + tail


def patch(buf: bytes, pos: int, base_offset: int, leader_epoch: int) -> bytes:
    out = bytearray(buf)
    struct.pack_into(">q", out, pos, base_offset)
    struct.pack_into(">i", out, pos + 12, leader_epoch)
    return bytes(out)


def set_log_append_time(buf: bytes, pos: int, size: int, ts: int) -> bytes:
    out = bytearray(buf)
    attrs = struct.unpack_from(">h", out, pos + 21)[0] | 0x08
    struct.pack_into(">h", out, pos + 21, attrs)
    struct.pack_into(">q", out, pos + 35, ts)
    struct.pack_into(">I", out, pos + 17, crc32c(out[pos + 21 : pos + size]))
    return bytes(out)


# ------------------------------------------------------------------------------------- records

KEY_NULL, VALUE_NULL = 1, 2
M64 = 2**64


def fnv1a64(data: bytes) -> int:
    h = 0xCBF29CE484222325
    for b in data:
        h = ((h ^ b) * 0x100000001B3) % M64
    return h


def mix64(key: bytes | None) -> int:
    """Seeded with the key's length (0 for a null key) so that a null key and an empty one differ."""
    h = 0x9E3779B97F4A7C15 ^ (0 if key is None else len(key) + 1)
    for b in key or b"":
        h = ((h ^ b) * 0xFF51AFD7ED558CCD) % M64
        h ^= h >> 29
    return h


def record_key_hashes(key: bytes | None) -> tuple[int, int]:
    return fnv1a64(key or b""), mix64(key)


def _sized(rec: bytes, q: int) -> tuple[bytes | None, int]:
    """A length-prefixed field (-1: null) that must lie inside the record."""
    n, q = decode_varint(rec, q, 5)
    if n < -1 or q + max(n, 0) > len(rec):
        raise ValueError("field past the record's end")
    return (None if n == -1 else rec[q : q + n]), q + max(n, 0)


def _record(body: bytes, p: int):
    """-> (record end, offset delta, timestamp delta, key, value is null); ValueError if malformed."""
    length, p = decode_varint(body, p, 5)
    if length < 6 or p + length > len(body):
        raise ValueError("bad record length")
    rec = body[p : p + length]
    q = 1  # attributes
    ts_delta, q = decode_varint(rec, q, 10)
    off_delta, q = decode_varint(rec, q, 5)
    if off_delta < 0:
        raise ValueError("negative offset delta")
    key, q = _sized(rec, q)
    value, q = _sized(rec, q)
    headers, q = decode_varint(rec, q, 5)
    if headers < 0:
        raise ValueError("negative header count")
    for _ in range(headers):
        name, q = _sized(rec, q)
        if name is None:
            raise ValueError("null header key")
        _, q = _sized(rec, q)
    if q != len(rec):
        raise ValueError("bytes left inside the record")
    return p + length, off_delta, ts_delta, key, value is None


def scan_records(buf, start: int, end: int, count: int):
    """-> ([starts, ends, offset deltas, timestamp deltas, flags], [fnv1a64 of keys, mix64 of keys]) for the
    `count` records exactly filling buf[start:end]; ValueError with hotpath.scan_records's messages."""
    buf = bytes(buf)
    if not 0 <= start <= end <= len(buf):
        raise ValueError(f"bad range [{start}, {end}) for a buffer of {len(buf)} bytes")
    if count < 0 or count > (end - start) // 7:  # 7: the smallest record
        raise ValueError(f"{count} records cannot fit in {end - start} bytes")
    body = buf[start:end]
    cols = [[], [], [], [], []]
    hashes = [[], []]
    p = 0
    for i in range(count):
        try:
            rend, off_delta, ts_delta, key, value_null = _record(body, p)
        except ValueError:
            raise ValueError(f"record {i} of {count} is malformed") from None
        flags = (KEY_NULL if key is None else 0) | (VALUE_NULL if value_null else 0)
        for col, v in zip(cols, (start + p, start + rend, off_delta, ts_delta, flags)):
            col.append(v)
        for col, v in zip(hashes, record_key_hashes(key)):
            col.append(v)
        p = rend
    if p != len(body):
        raise ValueError(f"bytes follow the last of {count} records")
    return cols, hashes


# --------------------------------------------------------------------------------------- index


def offset_index_lookup(entries: list[tuple[int, int]], target: int) -> int:
    found = -1
    for i, (rel, _pos) in enumerate(entries):
        if rel <= target:
            found = i
    return found


def time_index_lookup(entries: list[tuple[int, int]], target: int) -> int:
    for i, (ts, _rel) in enumerate(entries):
        if ts >= target:
            return i
    return len(entries)


def index_valid_entries(raw: bytes, entry_size: int, max_entries: int) -> int:
    n = min(max_entries, len(raw) // entry_size)
    for i in range(1, n):
        if not any(raw[i * entry_size : (i + 1) * entry_size]):
            return i
    return n


# -- quota table (hotpath/quota.py) ---------------------------------------------------------------------

QUOTA_PROBE = 64
QUOTA_KINDS = 3


def _quota_rows(words: list, slots: int, samples: int, table: int):
    width = 2 + 2 * QUOTA_KINDS * samples
    return width, table * slots * width


def quota_add(words: list, slots: int, samples: int, table: int, key: int, kind: int, window: int,
              value: int) -> int:
    """`words` is a plain list standing for the int64 table region; returns the slot used, or -1."""
    width, base = _quota_rows(words, slots, samples, table)
    probe = [(key % slots + j) % slots for j in range(min(QUOTA_PROBE, slots))]
    chain = []  # the probed slots in use, up to the first never-used one
    for s in probe:
        if words[base + s * width] == 0:
            break
        chain.append(s)

    def idle(s: int) -> bool:
        row = base + s * width
        return all(words[row + 2 + c * 2 * samples + i] <= window - samples
                   for c in range(QUOTA_KINDS) for i in range(samples))

    own = [s for s in chain if words[base + s * width] == key]
    if own:
        found = own[0]
    else:
        spare = [s for s in chain if idle(s)] + probe[len(chain):len(chain) + 1]
        if not spare:
            return -1
        found = spare[0]
        row = base + found * width
        words[row + 1:row + width] = [0] * (width - 1)
        words[row] = key
    row = base + found * width
    ids = row + 2 + kind * 2 * samples
    i = window % samples
    if words[ids + i] != window:
        words[ids + samples + i] = 0
        words[ids + i] = window
    words[ids + samples + i] += value
    return found


def quota_counted(words: list, tables: int, slots: int, samples: int, key: int, kind: int,
                  window: int) -> tuple[int, int]:
    total, oldest = 0, window
    for t in range(tables):
        width, base = _quota_rows(words, slots, samples, t)
        for j in range(min(QUOTA_PROBE, slots)):
            row = base + ((key % slots + j) % slots) * width
            if words[row] == 0:
                break
            if words[row] != key:
                continue
            ids = row + 2 + kind * 2 * samples
            for i in range(samples):
                w = words[ids + i]
                if window - samples < w <= window:
                    total += words[ids + samples + i]
                    oldest = min(oldest, w)
            break
    return total, oldest
