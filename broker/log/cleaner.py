"""Log compaction (cleanup.policy=compact): keep the last record of every key in a partition's closed
segments, at the offsets they were written at.

A pass has three steps, split by where they may run:

* ``plan`` (the partition's writer, between requests): which closed segments to clean; reads nothing.
* ``clean`` (any thread): reads those segments through its own descriptors with ``pread`` (never a mapping,
  so a concurrent truncation cannot fault it), finds each key's last offset, and writes the surviving
  batches of each group of segments to ``<partition>/.cleaning/<base>.log`` with its indexes, fsynced. The
  live files are never touched.
* ``PartitionLog.apply_cleaning`` (the writer again): checks the log still has those segments and swaps the
  new files in (see there for the order that keeps readers and a crash safe).

What survives, as in Kafka's cleaner: a record is dropped when a later record in the cleaned range has the
same key; a tombstone (null value) stays until its segment is older than delete.retention.ms; a record
without a key stays. A batch that loses records keeps its base offset and last offset delta, so no offset
moves and a producer's last sequence stays readable; a batch whose records all go is dropped, unless it
is an active producer's last batch: that one stays whole, superseded records included, where Kafka keeps
an empty batch header (not every client skips those). Compressed batches are decompressed to be read and
compressed again with their codec when they lose records. Consecutive segments are merged while the
original sizes fit one segment, so compaction also keeps the number of files down; a merged group whose
records all go is deleted, except the log's first segment, which stays (empty) to hold the log start.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
from dataclasses import dataclass, field

import crc32c
import numpy as np

import hotpath
from hotpath.records import END, FLAGS, KEY_NULL, OFFSET_DELTA, START, TIMESTAMP_DELTA, VALUE_NULL
from netio.codec.records import compress, decompress

from .config import LogConfig
from .durable import fsync_dir
from .segment import INDEX_SUFFIX, LOG_SUFFIX, TIMEINDEX_SUFFIX, LogSegment, segment_name

CLEANING_DIR = ".cleaning"
SWAP_MARKER = "cleaner.swap"
READ_CHUNK = 8 << 20
HEADER = 61
BYTES_PER_KEY = 24  # what Kafka's dedupe buffer counts per key (a 16-byte hash and an offset)
INT32_MAX = 2**31 - 1
_CONTROL = 0x20
_LOG_APPEND_TIME = 0x08
_I32 = struct.Struct(">i")
_I64 = struct.Struct(">q")


class SegmentChanged(Exception):
    """A segment being cleaned changed under the cleaner (truncated or deleted): the pass is dropped."""


@dataclass(frozen=True)
class SegmentRef:
    base: int
    end: int  # the next segment's base offset
    path: str
    size: int
    largest_time: int  # largest record timestamp (or the file's mtime), ms
    index_entries: int


@dataclass
class Plan:
    directory: str
    config: LogConfig
    segments: list[SegmentRef]
    first_of_log: bool  # segments[0] is the log's first segment
    truncations: int
    now_ms: int
    protected: frozenset  # last offsets of batches a producer's state refers to
    max_keys: int

    @property
    def upto(self) -> int:
        return self.segments[-1].end


@dataclass
class Action:
    members: list[int]  # base offsets of the segments replaced
    path: str | None  # the cleaned segment's .log in the cleaning directory; None: the members just go


@dataclass
class Outcome:
    plan: Plan
    actions: list[Action] = field(default_factory=list)
    upto: int = 0  # the end of what was cleaned (below it, no key appears twice)
    records_read: int = 0
    records_removed: int = 0
    bytes_before: int = 0
    bytes_after: int = 0


def dirty_ratio(segments: list[SegmentRef], cleaned_to: int) -> tuple[int, float]:
    """(dirty bytes, their share of all bytes): bytes of segments ending above the previous pass's end."""
    dirty = sum(s.size for s in segments if s.end > cleaned_to)
    total = sum(s.size for s in segments)
    return dirty, (dirty / total if total else 0.0)


def plan(plog, now_ms: int, protected=frozenset(), max_keys: int = 1 << 22, force: bool = False) -> Plan | None:
    """What a pass over `plog` would clean now, or None when it does not need one: the closed segments below
    the high watermark and older than min.compaction.lag.ms, when the dirty share of their bytes reaches
    min.cleanable.dirty.ratio or the oldest dirty segment is older than max.compaction.lag.ms (`force`: in
    any case, as long as there are such segments)."""
    from .log import largest_time

    cfg = plog.config
    segs = plog.segments
    hw = plog.high_watermark
    refs: list[SegmentRef] = []
    for i, seg in enumerate(segs[:-1]):
        end = segs[i + 1].base_offset
        if end > hw:
            break
        largest = largest_time(seg) if seg.size else 0
        if cfg.min_compaction_lag_ms > 0 and now_ms - largest < cfg.min_compaction_lag_ms:
            break
        refs.append(SegmentRef(seg.base_offset, end, seg.log_path, seg.size, largest,
                               seg.offset_index.entries if seg.offset_index is not None else 0))
    if not refs:
        return None
    dirty, ratio = dirty_ratio(refs, plog.cleaned_to)
    if not force:
        if dirty == 0:
            return None
        oldest_dirty = min(s.largest_time for s in refs if s.end > plog.cleaned_to)
        if ratio < cfg.min_cleanable_dirty_ratio and now_ms - oldest_dirty < cfg.max_compaction_lag_ms:
            return None
    return Plan(plog.directory, cfg, refs, refs[0].base == segs[0].base_offset, plog.truncations, now_ms,
                frozenset(protected), max_keys)


def groups(segments: list[SegmentRef], config: LogConfig) -> list[list[SegmentRef]]:
    """Consecutive segments merged while their original sizes fit segment.bytes, their offsets fit one
    segment's relative offsets and their index entries one index."""
    out: list[list[SegmentRef]] = []
    size = entries = 0
    for seg in segments:
        g = out[-1] if out else None
        if (g is not None and size + seg.size <= config.segment_bytes and seg.end - 1 - g[0].base <= INT32_MAX
                and entries + seg.index_entries + 1 < config.max_index_entries):
            g.append(seg)
            size += seg.size
            entries += seg.index_entries + 1
        else:
            out.append([seg])
            size, entries = seg.size, seg.index_entries + 1
    return out


# --- reading -----------------------------------------------------------------------------------------------

def _batches(path: str, size: int, cancelled=None):
    """(chunk, scan result, i) of every batch of a segment file of `size` bytes, read in chunks."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        raise SegmentChanged(f"{path} was deleted") from None
    try:
        if os.fstat(fd).st_size != size:
            raise SegmentChanged(f"{path} is no longer {size} bytes")
        pos = 0
        want = READ_CHUNK
        while pos < size:
            if cancelled is not None and cancelled():
                raise SegmentChanged("the pass was cancelled")
            n = min(want, size - pos)
            chunk = os.pread(fd, n, pos)
            if len(chunk) != n:
                raise SegmentChanged(f"{path} shrank while it was cleaned")
            res = hotpath.scan_batches(chunk)
            if res.count == 0:
                if res.error == hotpath.ScanError.TRUNCATED and n >= 12 and n < size - pos:
                    want = max(want, _I32.unpack_from(chunk, 8)[0] + 12)  # one batch larger than a chunk
                    continue
                raise ValueError(f"{path}: {hotpath.ScanError(res.error).name.lower()} batch at byte {pos}")
            for i in range(res.count):
                yield chunk, res, i
            pos += int(res.pos[res.count - 1] + res.size[res.count - 1])
            want = READ_CHUNK
    finally:
        os.close(fd)


def records_section(chunk, res, i: int):
    """(buffer, start, end) of batch i of a scan of `chunk`: its records section, decompressed when the
    producer compressed it (ValueError when it does not decompress)."""
    p, size = int(res.pos[i]), int(res.size[i])
    codec = int(res.attributes[i]) & 7
    if codec == 0:
        return chunk, p + HEADER, p + size
    section = decompress(codec, memoryview(chunk)[p + HEADER:p + size])
    return section, 0, len(section)


# --- the pass ----------------------------------------------------------------------------------------------

def clean(p: Plan, cancelled=None) -> Outcome:
    """Run the pass `p` (any thread): write the cleaned segments, return what `apply_cleaning` swaps in.
    Raises SegmentChanged when the log moved under it (or `cancelled()` became true: the worker is
    stopping) and ValueError for a segment that cannot be read."""
    out = Outcome(p)
    offsets, h1s, h2s, no_key, drop_tombstone = [], [], [], [], []
    horizon = p.now_ms - p.config.delete_retention_ms
    segments: list[SegmentRef] = []
    records_in: dict[int, int] = {}  # segment base -> its records (control batches aside)
    keys = 0
    for seg in p.segments:
        if segments and keys >= p.max_keys:
            break  # the rest waits for the next pass; what is cleaned now is still deduplicated within itself
        segments.append(seg)
        keys_before = keys
        expired = seg.largest_time < horizon
        for chunk, res, i in _batches(seg.path, seg.size, cancelled):
            if int(res.attributes[i]) & _CONTROL:
                continue
            buf, start, end = records_section(chunk, res, i)
            cols, hashes = hotpath.scan_records(buf, start, end, int(res.record_count[i]))
            offsets.append(cols[OFFSET_DELTA] + int(res.base_offset[i]))
            h1s.append(hashes[0])
            h2s.append(hashes[1])
            no_key.append((cols[FLAGS] & KEY_NULL) != 0)
            drop_tombstone.append(((cols[FLAGS] & VALUE_NULL) != 0) & expired)
            keys += len(cols[FLAGS])
            out.bytes_before += int(res.size[i])
        records_in[seg.base] = keys - keys_before
    keep = _survivors(offsets, h1s, h2s, no_key, drop_tombstone)
    out.records_read = len(keep)
    out.upto = segments[-1].end

    work = os.path.join(p.directory, CLEANING_DIR)
    shutil.rmtree(work, ignore_errors=True)
    try:
        os.mkdir(work)  # not makedirs: a partition directory deleted meanwhile must not come back
    except FileNotFoundError:
        raise SegmentChanged(f"{p.directory} was deleted") from None
    k = 0
    first = True
    for group in groups(segments, p.config):
        base = group[0].base
        n = records_in[base]
        if len(group) == 1 and keep[k:k + n].all():  # a segment that keeps every record is not read again
            k += n
            out.bytes_after += group[0].size
            first = False
            continue
        path = os.path.join(work, segment_name(base) + LOG_SUFFIX)
        written = removed_here = 0
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            for seg in group:
                for chunk, res, i in _batches(seg.path, seg.size, cancelled):
                    p0, size = int(res.pos[i]), int(res.size[i])
                    if int(res.attributes[i]) & _CONTROL:
                        written += _write(fd, memoryview(chunk)[p0:p0 + size])
                        continue
                    n = int(res.record_count[i])
                    mask = keep[k:k + n]
                    k += n
                    kept = int(mask.sum())
                    last = int(res.base_offset[i]) + int(res.last_offset_delta[i])
                    if kept == n or (kept == 0 and last in p.protected):
                        written += _write(fd, memoryview(chunk)[p0:p0 + size])
                        continue
                    removed_here += n - kept
                    if kept:
                        written += _write(fd, _rebuild(chunk, res, i, mask))
            os.fsync(fd)
        finally:
            os.close(fd)
        keep_empty = first and p.first_of_log
        first = False
        out.records_removed += removed_here
        if removed_here == 0 and len(group) == 1:
            os.unlink(path)  # nothing to gain from rewriting it
            out.bytes_after += written
            continue
        out.bytes_after += written
        if written == 0 and not keep_empty:
            os.unlink(path)
            out.actions.append(Action([s.base for s in group], None))
            continue
        _build_indexes(work, base, p.config)
        out.actions.append(Action([s.base for s in group], path))
    fsync_dir(work)
    return out


def _survivors(offsets, h1s, h2s, no_key, drop_tombstone) -> np.ndarray:
    """Per record, in log order: does it survive? The last record of each key does (a record without a key
    always does), unless it is a tombstone past delete.retention.ms. Empties the lists it is given."""
    if not offsets:
        return np.zeros(0, bool)
    columns = []
    for parts in (offsets, h1s, h2s, no_key, drop_tombstone):
        columns.append(np.concatenate(parts))
        parts.clear()  # the per-batch pieces go as soon as their column exists: the pass's peak is the columns
    off, h1, h2, no_key, drop = columns
    order = np.lexsort((off, h2, h1))
    del off
    s1 = h1[order]
    del h1
    s2 = h2[order]
    del h2
    last = np.ones(len(order), bool)
    last[:-1] = (s1[1:] != s1[:-1]) | (s2[1:] != s2[:-1])
    del s1, s2
    keep = np.empty(len(order), bool)
    keep[order] = last
    return (keep | no_key) & ~(drop & ~no_key)


def _write(fd: int, data) -> int:
    view = memoryview(data)
    total = len(view)
    while view:
        view = view[os.write(fd, view):]
    return total


def _rebuild(chunk: bytes, res, i: int, mask: np.ndarray) -> bytes:
    """Batch i with only the records `mask` keeps: same base offset, last offset delta, producer fields and
    codec; record count, maxTimestamp (CreateTime), length and CRC recomputed."""
    p = int(res.pos[i])
    attrs = int(res.attributes[i])
    buf, start, end = records_section(chunk, res, i)
    cols, _ = hotpath.scan_records(buf, start, end, int(res.record_count[i]))
    view = memoryview(buf)
    body = b"".join(view[int(s):int(e)] for s, e in zip(cols[START][mask], cols[END][mask]))
    codec = attrs & 7
    if codec:
        body = compress(codec, body, like=memoryview(chunk)[p + HEADER:p + int(res.size[i])])
    header = bytearray(chunk[p:p + HEADER])
    _I32.pack_into(header, 8, HEADER - 12 + len(body))
    if not attrs & _LOG_APPEND_TIME:
        _I64.pack_into(header, 35, int(res.base_timestamp[i]) + int(cols[TIMESTAMP_DELTA][mask].max()))
    _I32.pack_into(header, 57, int(mask.sum()))
    struct.pack_into(">I", header, 17, crc32c.crc32c(bytes(header[21:]) + body))
    return bytes(header) + body


def _build_indexes(work: str, base: int, config: LogConfig) -> None:
    """The offset and time index of the cleaned segment at `base`, built by the recovery walk and fsynced."""
    seg = LogSegment.open(work, base, config)
    try:
        seg.recover()
        seg.flush(indexes=True)
        seg.rest()
    finally:
        seg.close()


# --- crash recovery ----------------------------------------------------------------------------------------

def finish_interrupted_swap(directory: str) -> list[str]:
    """At load: a swap the marker says was committed is completed (the cleaned log replaces its first member,
    whose indexes are then rebuilt, and the other members go); without a marker, a pass's leftovers are
    removed. Returns the names of the files it removed or replaced."""
    done: list[str] = []
    marker = os.path.join(directory, SWAP_MARKER)
    work = os.path.join(directory, CLEANING_DIR)
    if os.path.exists(marker):
        with open(marker) as f:
            info = json.load(f)
        members = [int(b) for b in info["members"]]
        stem = os.path.join(directory, segment_name(members[0]))
        cleaned = os.path.join(work, segment_name(members[0]) + LOG_SUFFIX)
        if os.path.exists(cleaned):
            for suffix in (INDEX_SUFFIX, TIMEINDEX_SUFFIX):
                if os.path.exists(stem + suffix):
                    os.unlink(stem + suffix)  # rebuilt from the cleaned log
            os.replace(cleaned, stem + LOG_SUFFIX)
            done.append(segment_name(members[0]) + LOG_SUFFIX)
        for base in members[1:]:
            for suffix in (LOG_SUFFIX, INDEX_SUFFIX, TIMEINDEX_SUFFIX):
                path = os.path.join(directory, segment_name(base) + suffix)
                if os.path.exists(path):
                    os.unlink(path)
                    done.append(os.path.basename(path))
        fsync_dir(directory)
        os.unlink(marker)
    if os.path.isdir(work):
        shutil.rmtree(work, ignore_errors=True)
        done.append(CLEANING_DIR)
    if done:
        fsync_dir(directory)
    return done
