"""Checkpoint files in Kafka's text format, always replaced atomically.

Format (``OffsetCheckpointFile`` / ``LeaderEpochCheckpointFile``)::

    0            <- version
    2            <- number of entries
    <k1> <k2> ...
    ...

A checkpoint is written to ``<name>.tmp``, fsynced, renamed over the old file and the directory fsynced, so
after any crash the file holds either the old or the new content, never a mix. The per-log-dir files
(recovery point, log start offset) are shared by every I/O worker owning partitions in that directory;
``update_offsets`` does its read-modify-write under an exclusive ``flock`` so workers never lose each
other's entries.
"""

from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from pathlib import Path
from types import MappingProxyType
from typing import Iterable, Iterator, Mapping

from .durable import fsync_dir

VERSION = 0
RECOVERY_POINT_FILE = "recovery-point-offset-checkpoint"
LOG_START_FILE = "log-start-offset-checkpoint"
CLEANER_FILE = "cleaner-offset-checkpoint"  # per partition: where the last compaction pass ended
LEADER_EPOCH_FILE = "leader-epoch-checkpoint"


class CheckpointError(ValueError):
    """A checkpoint file does not parse; callers fall back to a safe default (e.g. full recovery)."""


def write_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Replace ``path`` with ``data`` so a crash leaves either the old or the new file."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    fsync_dir(path.parent)


def format_entries(rows: Iterable[tuple]) -> bytes:
    rows = list(rows)
    lines = [str(VERSION), str(len(rows))] + [" ".join(str(x) for x in row) for row in rows]
    return ("\n".join(lines) + "\n").encode()


def parse_entries(text: str, width: int) -> list[list[str]]:
    lines = text.splitlines()
    if len(lines) < 2 or lines[0].strip() != str(VERSION):
        raise CheckpointError("bad checkpoint header")
    try:
        count = int(lines[1])
    except ValueError:
        raise CheckpointError("bad checkpoint entry count") from None
    rows = [line.split() for line in lines[2:] if line.strip()]
    if len(rows) != count or any(len(r) != width for r in rows):
        raise CheckpointError(f"expected {count} entries of {width} fields")
    return rows


# path -> (text, offsets) of the last parse: every partition of a log dir reads the same shared file when it
# opens, and parsing it once per partition made opening N partitions cost N * N lines.
_parsed: dict[str, tuple[str, Mapping[tuple[str, int], int]]] = {}


def read_offsets(path: str | os.PathLike) -> Mapping[tuple[str, int], int]:
    """``{(topic, partition): offset}`` (read-only: shared by every reader of the same text); missing file ->
    empty; unparsable -> ``CheckpointError``."""
    key = os.fspath(path)
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        return {}
    last = _parsed.get(key)
    if last is not None and last[0] == text:
        return last[1]
    try:
        offsets = MappingProxyType({(t, int(p)): int(o) for t, p, o in parse_entries(text, 3)})
    except ValueError as e:
        raise CheckpointError(str(e)) from None
    _parsed[key] = (text, offsets)
    return offsets


def read_offset(path: str | os.PathLike, topic: str, partition: int, default):
    """One partition's offset, or ``default`` when the file lacks it or cannot be parsed (the caller then
    starts from a safe value: slower, never wrong)."""
    try:
        return read_offsets(path).get((topic, partition), default)
    except CheckpointError:
        return default


def write_offsets(path: str | os.PathLike, offsets: dict[tuple[str, int], int]) -> None:
    data = format_entries((t, p, o) for (t, p), o in sorted(offsets.items()))
    write_atomic(path, data)
    _parsed[os.fspath(path)] = (data.decode(), MappingProxyType(dict(offsets)))


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    fd = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def update_offsets(path: str | os.PathLike, updates: dict[tuple[str, int], int | None]) -> None:
    """Set (or, with ``None``, drop) entries of a shared checkpoint under an exclusive lock."""
    path = Path(path)
    with _locked(path):
        try:
            current = dict(read_offsets(path))
        except CheckpointError:
            current = {}  # an unreadable file only costs a longer recovery; rewrite it whole
        for key, value in updates.items():
            if value is None:
                current.pop(key, None)
            else:
                current[key] = value
        write_offsets(path, current)


def read_epochs(path: str | os.PathLike) -> list[tuple[int, int]]:
    """``[(epoch, start_offset), ...]`` from a ``leader-epoch-checkpoint``; missing file -> []."""
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        return []
    try:
        return [(int(e), int(o)) for e, o in parse_entries(text, 2)]
    except ValueError as e:
        raise CheckpointError(str(e)) from None


def write_epochs(path: str | os.PathLike, entries: Iterable[tuple[int, int]]) -> None:
    write_atomic(path, format_entries(entries))
