"""The records a coordinator writes to `__consumer_offsets`, in Kafka's own key/value schema.

    offset commit  key v1: int16 1 | group str | topic str | partition i32
                   value v3: int16 3 | offset i64 | leader_epoch i32 | metadata str | commit_timestamp i64
    group metadata key v2: int16 2 | group str
                   value v3: int16 3 | protocol_type str | generation i32 | protocol str? | leader str? |
                             state_timestamp i64 | members [i32 n] of
                             (member_id str | instance_id str? | client_id str | client_host str |
                              rebalance_timeout i32 | session_timeout i32 | subscription bytes | assignment bytes)

Strings are int16-length-prefixed UTF-8 (-1: null), bytes int32-length-prefixed. A null value is a
tombstone: the offset (or the group) is gone. Replaying the partition in offset order, last record
winning, gives back the committed offsets and the last stored membership of every group.
Values of other versions written by Kafka (offset value v0-v4, group value v0-v4) are read as well.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Iterator

from netio.codec.records import decode_batches

OFFSET_KEY_VERSION = 1
GROUP_KEY_VERSION = 2

_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")
_I64 = struct.Struct(">q")


@dataclass
class OffsetValue:
    offset: int
    leader_epoch: int = -1
    metadata: str = ""
    commit_timestamp: int = -1


@dataclass
class StoredMember:
    member_id: str
    instance_id: str | None
    client_id: str
    client_host: str
    rebalance_timeout_ms: int
    session_timeout_ms: int
    subscription: bytes
    assignment: bytes


@dataclass
class GroupValue:
    protocol_type: str
    generation: int
    protocol: str | None
    leader: str | None
    state_timestamp: int = -1
    members: list[StoredMember] = field(default_factory=list)


# -- writing ----------------------------------------------------------------------------------------------

def _str(out: bytearray, s: str | None) -> None:
    if s is None:
        out += _I16.pack(-1)
    else:
        b = s.encode()
        out += _I16.pack(len(b))
        out += b


def _bytes(out: bytearray, b: bytes | None) -> None:
    if b is None:
        out += _I32.pack(-1)
    else:
        out += _I32.pack(len(b))
        out += b


def offset_key(group: str, topic: str, partition: int) -> bytes:
    out = bytearray(_I16.pack(OFFSET_KEY_VERSION))
    _str(out, group)
    _str(out, topic)
    out += _I32.pack(partition)
    return bytes(out)


def offset_value(v: OffsetValue) -> bytes:
    out = bytearray(_I16.pack(3))
    out += _I64.pack(v.offset)
    out += _I32.pack(v.leader_epoch)
    _str(out, v.metadata if v.metadata is not None else "")
    out += _I64.pack(v.commit_timestamp)
    return bytes(out)


def group_key(group: str) -> bytes:
    out = bytearray(_I16.pack(GROUP_KEY_VERSION))
    _str(out, group)
    return bytes(out)


def group_value(v: GroupValue) -> bytes:
    out = bytearray(_I16.pack(3))
    _str(out, v.protocol_type)
    out += _I32.pack(v.generation)
    _str(out, v.protocol)
    _str(out, v.leader)
    out += _I64.pack(v.state_timestamp)
    out += _I32.pack(len(v.members))
    for m in v.members:
        _str(out, m.member_id)
        _str(out, m.instance_id)
        _str(out, m.client_id)
        _str(out, m.client_host)
        out += _I32.pack(m.rebalance_timeout_ms)
        out += _I32.pack(m.session_timeout_ms)
        _bytes(out, m.subscription)
        _bytes(out, m.assignment)
    return bytes(out)


def build_batch(records: list[tuple[bytes, bytes | None]]) -> bytes:
    """One uncompressed RecordBatch holding the (key, value) records; value None is a tombstone."""
    from hotpath.builder import build_records_batch

    return build_records_batch(records)


# -- reading ----------------------------------------------------------------------------------------------

class _Reader:
    __slots__ = ("buf", "pos")

    def __init__(self, buf: bytes):
        self.buf = buf
        self.pos = 0

    def i16(self) -> int:
        v = _I16.unpack_from(self.buf, self.pos)[0]
        self.pos += 2
        return v

    def i32(self) -> int:
        v = _I32.unpack_from(self.buf, self.pos)[0]
        self.pos += 4
        return v

    def i64(self) -> int:
        v = _I64.unpack_from(self.buf, self.pos)[0]
        self.pos += 8
        return v

    def str(self) -> str | None:
        n = self.i16()
        if n < 0:
            return None
        s = bytes(self.buf[self.pos:self.pos + n]).decode()
        self.pos += n
        return s

    def bytes(self) -> bytes | None:
        n = self.i32()
        if n < 0:
            return None
        b = bytes(self.buf[self.pos:self.pos + n])
        self.pos += n
        return b


def parse_key(key: bytes) -> tuple:
    """("offset", group, topic, partition) or ("group", group); ("unknown",) for anything else."""
    r = _Reader(key)
    version = r.i16()
    if version in (0, 1):
        return "offset", r.str(), r.str(), r.i32()
    if version == 2:
        return "group", r.str()
    return ("unknown",)


def parse_offset_value(value: bytes) -> OffsetValue:
    r = _Reader(value)
    version = r.i16()
    offset = r.i64()
    epoch = r.i32() if version >= 3 else -1
    metadata = r.str() or ""
    ts = r.i64()
    return OffsetValue(offset, epoch, metadata, ts)


def parse_group_value(value: bytes) -> GroupValue:
    r = _Reader(value)
    version = r.i16()
    protocol_type = r.str() or ""
    generation = r.i32()
    protocol = r.str()
    leader = r.str()
    state_ts = r.i64() if version >= 2 else -1
    members = []
    for _ in range(r.i32()):
        member_id = r.str()
        instance_id = r.str() if version >= 3 else None
        client_id = r.str() or ""
        client_host = r.str() or ""
        rebalance = r.i32() if version >= 1 else -1
        session = r.i32()
        subscription = r.bytes() or b""
        assignment = r.bytes() or b""
        if rebalance < 0:
            rebalance = session
        members.append(StoredMember(member_id, instance_id, client_id, client_host, rebalance, session,
                                    subscription, assignment))
    return GroupValue(protocol_type, generation, protocol, leader, state_ts, members)


def iter_records(buf) -> Iterator[tuple[int, bytes | None, bytes | None]]:
    """(offset, key, value) of every record of the uncompressed, non-control batches laid end to end in
    `buf` (the coordinator only writes uncompressed batches); a trailing partial batch is ignored."""
    for r in decode_batches(buf):
        yield r.offset, r.key, r.value


_BATCH_HEAD = struct.Struct(">qiibIhiqqqhii")  # through recordsCount: 61 bytes


def next_offset_after(buf) -> int:
    """The offset after the last complete batch in `buf` (-1 if there is none): where to read on from."""
    mv = memoryview(buf)
    pos, nxt = 0, -1
    while pos + _BATCH_HEAD.size <= len(mv):
        base, length = struct.unpack_from(">qi", mv, pos)
        if pos + 12 + length > len(mv):
            break
        (delta,) = struct.unpack_from(">i", mv, pos + 23)
        nxt = base + delta + 1
        pos += 12 + length
    return nxt
