"""Messages between network workers and I/O workers, as they sit in the shared-memory rings.

Requests go network -> I/O on one ring per (network worker, I/O worker) pair; completions come back on the
paired ring, so a completion needs no return address, only the token the network worker chose. Every
message is a fixed little-endian header followed by variable bytes; record batches are written once, into
the request ring or (for large frames) by the socket read into the receive arena, and appended from there.

Request kinds (network -> I/O):
  APPEND       token u64, slot i32, partition i32, acks i16, topic_len u16, timeout_ms u32 | topic | records
               (timeout_ms: the request's; an acks=all append waits for the ISR no longer)
  APPEND_REF   the APPEND header and topic | offset u64, length u64: the records lie in the sending network
               worker's receive arena (``broker/shm/arena.py``), unchanged until this message is consumed
  LIST_OFFSET  token u64, slot i32, partition i32, timestamp i64, topic_len u16, pad 6 | topic
  FORWARD      token u64, key i64 | a whole request frame, answered by an owner-side handler
  REPLICA_POS  slot i32, partition i32, replica_id i32, pad 4, fetch_offset i64, topic_len u16, pad 6 | topic
               (a follower's Fetch reached this offset; no completion: a dropped one is repeated by the
               follower's next Fetch)
Completion kinds (I/O -> network):
  APPEND_DONE       token u64, error i16, pad 2, owner_us u32 (the owner's time on this append, for request
                    quotas), base_offset i64, log_append_time i64, log_start i64
  LIST_OFFSET_DONE  token u64, error i16, pad 6, offset i64, timestamp i64, leader_epoch i32, pad 4
  FORWARD_DONE      token u64 | a complete response frame (size prefix included), or nothing (no response)
  APPEND_DEFERRED   token u64 (an acks=all append is in the log and waits for the ISR; its APPEND_DONE
                    follows, unless the I/O worker dies first: then the network worker answers it)
"""

from __future__ import annotations

import struct

APPEND = 1
LIST_OFFSET = 2
FORWARD = 3
REPLICA_POS = 4
APPEND_REF = 5
APPEND_DONE = 11
LIST_OFFSET_DONE = 12
FORWARD_DONE = 13
APPEND_DEFERRED = 14

_APPEND = struct.Struct("<QiihHI")
_LIST_OFFSET = struct.Struct("<QiiqH6x")
_REPLICA_POS = struct.Struct("<iii4xqH6x")
_ARENA_REF = struct.Struct("<QQ")
ARENA_REF_SIZE = _ARENA_REF.size
_APPEND_DONE = struct.Struct("<Qh2xIqqq")
_LIST_OFFSET_DONE = struct.Struct("<Qh6xqqi4x")

APPEND_HEADER_SIZE = _APPEND.size


def append_header(token: int, slot: int, partition: int, acks: int, topic: bytes, timeout_ms: int = 0) -> bytes:
    return _APPEND.pack(token, slot, partition, acks, len(topic), min(max(timeout_ms, 0), 0x7FFFFFFF)) + topic


def parse_append(buf: memoryview) -> tuple[int, int, int, int, int, str, memoryview]:
    """(token, slot, partition, acks, timeout_ms, topic, records)."""
    token, slot, partition, acks, tlen, timeout_ms = _APPEND.unpack_from(buf, 0)
    start = _APPEND.size
    topic = bytes(buf[start:start + tlen]).decode()
    return token, slot, partition, acks, timeout_ms, topic, buf[start + tlen:]


def arena_ref(offset: int, length: int) -> bytes:
    return _ARENA_REF.pack(offset, length)


def parse_arena_ref(tail: memoryview) -> tuple[int, int]:
    """(offset, length) from what `parse_append` returns as the records of an APPEND_REF."""
    return _ARENA_REF.unpack_from(tail, 0)


def list_offset_request(token: int, slot: int, partition: int, timestamp: int, topic: bytes) -> bytes:
    return _LIST_OFFSET.pack(token, slot, partition, timestamp, len(topic)) + topic


def parse_list_offset(buf: memoryview) -> tuple[int, int, int, int, str]:
    token, slot, partition, timestamp, tlen = _LIST_OFFSET.unpack_from(buf, 0)
    start = _LIST_OFFSET.size
    return token, slot, partition, timestamp, bytes(buf[start:start + tlen]).decode()


def replica_pos(slot: int, partition: int, replica_id: int, fetch_offset: int, topic: bytes) -> bytes:
    return _REPLICA_POS.pack(slot, partition, replica_id, fetch_offset, len(topic)) + topic


def parse_replica_pos(buf: memoryview) -> tuple[int, int, int, int, str]:
    slot, partition, replica_id, fetch_offset, tlen = _REPLICA_POS.unpack_from(buf, 0)
    start = _REPLICA_POS.size
    return slot, partition, replica_id, fetch_offset, bytes(buf[start:start + tlen]).decode()


def append_done(token: int, error: int, base_offset: int = -1, log_append_time: int = -1,
                log_start: int = -1, owner_us: int = 0) -> bytes:
    return _APPEND_DONE.pack(token, error, min(owner_us, 0xFFFFFFFF), base_offset, log_append_time, log_start)


def parse_append_done(buf: memoryview) -> tuple[int, int, int, int, int, int]:
    """(token, error, base_offset, log_append_time, log_start, owner_us)."""
    token, error, owner_us, base_offset, log_append_time, log_start = _APPEND_DONE.unpack_from(buf, 0)
    return token, error, base_offset, log_append_time, log_start, owner_us


def list_offset_done(token: int, error: int, offset: int = -1, timestamp: int = -1,
                     leader_epoch: int = -1) -> bytes:
    return _LIST_OFFSET_DONE.pack(token, error, offset, timestamp, leader_epoch)


def parse_list_offset_done(buf: memoryview) -> tuple[int, int, int, int, int]:
    return _LIST_OFFSET_DONE.unpack_from(buf, 0)


_FORWARD = struct.Struct("<Qq")
_TOKEN = struct.Struct("<Q")


def forward_header(token: int, key: int) -> bytes:
    return _FORWARD.pack(token, key)


def parse_forward(buf: memoryview) -> tuple[int, int, memoryview]:
    token, key = _FORWARD.unpack_from(buf, 0)
    return token, key, buf[_FORWARD.size:]


def forward_done_header(token: int) -> bytes:
    return _TOKEN.pack(token)


def parse_forward_done(buf: memoryview) -> tuple[int, bytes]:
    return _TOKEN.unpack_from(buf, 0)[0], bytes(buf[_TOKEN.size:])


def append_deferred(token: int) -> bytes:
    return _TOKEN.pack(token)


def parse_append_deferred(buf: memoryview) -> int:
    return _TOKEN.unpack_from(buf, 0)[0]
