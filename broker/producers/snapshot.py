"""Producer-state snapshots: `<offset>.snapshot` files in the partition directory.

A snapshot named for offset N holds the state of every batch below N, so loading it and replaying the log
from N rebuilds the state at the log end. Layout (big-endian):

    header  magic b"HPPS" | version u16 (=1) | crc u32 (CRC-32C of all bytes after it) | offset i64 | count u32
    entry   producer_id i64 | epoch i16 | last_ms i64 | n u8 | n x (first_seq i32 | last_seq i32 |
            base_offset i64 | last_offset i64)

Files are written to `<name>.tmp`, fsynced and renamed into place, so a reader sees a whole snapshot or
none; a snapshot whose CRC does not match is ignored (and removed) as if it did not exist.
"""

from __future__ import annotations

import os
import struct

from hotpath import crc32c

from .state import ProducerEntry, ProducerStates

SUFFIX = ".snapshot"
MAGIC = b"HPPS"
VERSION = 1
KEEP = 2  # newest snapshots kept; older ones are removed after each write

_HEAD = struct.Struct(">4sHI")
_BODY_HEAD = struct.Struct(">qI")
_ENTRY = struct.Struct(">qhqB")
_BATCH = struct.Struct(">iiqq")


class SnapshotError(Exception):
    pass


def snapshot_name(offset: int) -> str:
    return f"{offset:020d}{SUFFIX}"


def list_snapshots(directory: str) -> list[int]:
    """Offsets of the snapshots in `directory`, ascending."""
    out = []
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    for name in names:
        stem = name[: -len(SUFFIX)]
        if name.endswith(SUFFIX) and len(stem) == 20 and stem.isdigit():
            out.append(int(stem))
    return sorted(out)


def encode(offset: int, states: ProducerStates) -> bytes:
    parts = [_BODY_HEAD.pack(offset, len(states.entries))]
    for pid, e in states.entries.items():
        parts.append(_ENTRY.pack(pid, e.epoch, e.last_ms, len(e.batches)))
        parts.extend(_BATCH.pack(*b) for b in e.batches)
    body = b"".join(parts)
    return _HEAD.pack(MAGIC, VERSION, crc32c(body)) + body


def decode(data: bytes) -> tuple[int, ProducerStates]:
    if len(data) < _HEAD.size + _BODY_HEAD.size:
        raise SnapshotError("snapshot too short")
    magic, version, crc = _HEAD.unpack_from(data, 0)
    if magic != MAGIC or version != VERSION:
        raise SnapshotError(f"not a version {VERSION} producer snapshot")
    body = memoryview(data)[_HEAD.size:]
    if crc32c(body) != crc:
        raise SnapshotError("snapshot CRC mismatch")
    try:
        offset, count = _BODY_HEAD.unpack_from(body, 0)
        pos = _BODY_HEAD.size
        entries = {}
        for _ in range(count):
            pid, epoch, last_ms, n = _ENTRY.unpack_from(body, pos)
            pos += _ENTRY.size
            batches = [_BATCH.unpack_from(body, pos + i * _BATCH.size) for i in range(n)]
            pos += n * _BATCH.size
            entries[pid] = ProducerEntry(epoch, last_ms, batches)
    except struct.error as e:
        raise SnapshotError(f"snapshot truncated: {e}") from None
    if pos != len(body):
        raise SnapshotError("trailing bytes after the last entry")
    return offset, ProducerStates(entries)


def write(directory: str, offset: int, states: ProducerStates, fsync: bool = True) -> str:
    """Write the snapshot for `offset` atomically; keep the newest `KEEP` snapshots."""
    path = os.path.join(directory, snapshot_name(offset))
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(encode(offset, states))
        if fsync:
            f.flush()
            os.fsync(f.fileno())
    os.replace(tmp, path)
    if fsync:
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    for old in list_snapshots(directory)[:-KEEP]:
        _unlink(os.path.join(directory, snapshot_name(old)))
    states.changed = False
    return path


def load_latest(directory: str, max_offset: int) -> tuple[int, ProducerStates] | None:
    """The newest readable snapshot at or below `max_offset` (the log end). Snapshots past the log end
    (the log was truncated below them) and unreadable ones are removed."""
    for offset in reversed(list_snapshots(directory)):
        path = os.path.join(directory, snapshot_name(offset))
        if offset > max_offset:
            _unlink(path)
            continue
        try:
            with open(path, "rb") as f:
                found, states = decode(f.read())
            if found != offset:
                raise SnapshotError(f"file for offset {offset} holds offset {found}")
            return offset, states
        except (OSError, SnapshotError):
            _unlink(path)
    return None


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
