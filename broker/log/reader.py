"""``LogReader``: read-only view of a partition's segment files for processes that never write (network
workers serving Fetch).

The writer publishes log end / high watermark / log start through shared memory; the caller passes them in
and the reader trusts nothing else. It maps each ``.log`` and ``.index`` read-only, finds the valid prefix of
the index with ``hotpath.index_valid_entries``, checks that the chosen entry really points at the batch
ending at that entry's offset, then walks batch headers to the batch holding the fetch offset (see
``walk``). It re-lists the directory only when it must: the offset lies beyond its known segments or a
segment file vanished.

A partition may keep hundreds of closed segments, and a consumer reading its history would leave each one
open (four descriptors) in every network worker it went through. A reader reports the closed segments it
opens (``on_open_closed``); its owner calls ``close_idle`` between requests, which keeps the most recently
read few and closes the rest (they open again when read; their sizes are remembered).

Concurrency with the writer: appends only add bytes after the published end, and the header walk rejects
any batch at or beyond ``visible_end_offset``. Compaction renames a cleaned file over a closed segment's and deletes the segments merged into it; a reader
still holding the old file reads its (valid, older) batches, notices the swap when a read finds nothing there
(``stale``, also checked once a second while it reads a closed segment), and a read that finds nothing in a current closed segment goes on to the next one, since
compaction leaves gaps in offsets. A segment is trimmed before the next one is created, so once
the reader sees a later segment, ``fstat`` gives the earlier one's final size; for the last known segment
the size is re-read (``fstat``) on every call, after the caller read ``visible_end_offset``. For the segment
being appended to that size is its sparse full size, which the roll cuts back to its batches, possibly
between that ``fstat`` and the walk; so the caller also passes the tail the owner published with
``visible_end_offset`` (that segment's bytes of batches and index entries), and the reader touches no more
of it than that. A trim never cuts below what was published, so it cannot raise SIGBUS here. Truncation (a follower
diverging from its leader) zeroes the removed batches of the active segment in place instead of shrinking
the file, and retention renames and unlinks files, which leaves existing mappings valid.
"""

from __future__ import annotations

import bisect
import mmap
import os
import struct
import time

import numpy as np

import hotpath

from . import walk
from .errors import OffsetOutOfRange
from .fileslice import FileSlice
from .index import no_readahead
from .segment import INDEX_SUFFIX, LOG_SUFFIX, parse_segment_name, segment_name

STALE_CHECK_S = 1.0  # how long a reader may go on serving a closed segment compaction has replaced
_clock = time.monotonic
_ENTRY_CHECK = struct.Struct(">qiibihi")  # baseOffset, batchLength, epoch, magic, crc, attributes, lastOffsetDelta


class _ReadSegment:
    """One segment as mapped by a reader; ``final`` once a later segment is known to exist."""

    def __init__(self, directory: str, base: int):
        self.base = base
        stem = os.path.join(directory, segment_name(base))
        self.log_path = stem + LOG_SUFFIX
        self.index_path = stem + INDEX_SUFFIX
        self.fd = self.index_fd = -1
        self.map = self.index_map = None
        self.u8 = self.index_u8 = None
        self.final = False
        self.final_size = -1
        self.final_index_entries = -1
        self.used = 0  # the reader's read count when this segment was last read
        self.checked = 0.0  # monotonic time of the last `stale` check while open

    def open(self) -> None:
        if self.fd < 0:
            self.fd = os.open(self.log_path, os.O_RDONLY)
            try:
                self.index_fd = os.open(self.index_path, os.O_RDONLY)
            except FileNotFoundError:
                self.index_fd = -1  # rebuilt by the writer; walk from the segment start meanwhile

    def sizes(self) -> tuple[int, int]:
        """(log bytes, index entries) safe to touch now."""
        if self.final and self.final_size >= 0:
            return self.final_size, self.final_index_entries
        size = os.fstat(self.fd).st_size
        entries = os.fstat(self.index_fd).st_size // 8 if self.index_fd >= 0 else 0
        if self.final:
            self.final_size, self.final_index_entries = size, entries
        return size, entries

    def ensure_mapped(self, size: int, entries: int) -> None:
        if size > 0 and (self.map is None or len(self.map) < size):
            self.map = mmap.mmap(self.fd, size, access=mmap.ACCESS_READ)
            self.u8 = np.frombuffer(self.map, np.uint8)
        if entries > 0 and (self.index_map is None or len(self.index_map) < entries * 8):
            self.index_map = mmap.mmap(self.index_fd, entries * 8, access=mmap.ACCESS_READ)
            no_readahead(self.index_map)
            self.index_u8 = np.frombuffer(self.index_map, np.uint8)

    def stale(self) -> bool:
        """The open ``.log`` is no longer the file at its path: compaction renamed a cleaned one over it, or
        it was deleted."""
        try:
            return os.stat(self.log_path).st_ino != os.fstat(self.fd).st_ino
        except FileNotFoundError:
            return True

    def close(self) -> None:
        self.final_size = self.final_index_entries = -1  # the file opened next time may be a cleaned one
        self.u8 = self.index_u8 = None
        for m in (self.map, self.index_map):
            if m is not None:
                try:
                    m.close()
                except BufferError:
                    pass  # a FileSlice view is still alive; unmapped when it goes
        self.map = self.index_map = None
        for fd in (self.fd, self.index_fd):
            if fd >= 0:
                os.close(fd)
        self.fd = self.index_fd = -1


class LogReader:
    """Serves fetches of one partition from its segment files; never writes, never takes locks."""

    def __init__(self, dir_path: str | os.PathLike, on_open_closed=None):
        """``on_open_closed(reader)``: called when a read opens a closed segment (see ``close_idle``)."""
        self.directory = os.fspath(dir_path)
        self._segments: list[_ReadSegment] = []
        self._bases: list[int] = []
        self._retired: list[_ReadSegment] = []
        self.relists = 0
        self._reads = 0
        self._on_open_closed = on_open_closed
        self._relist()

    def _relist(self) -> None:
        self.relists += 1
        try:
            names = os.listdir(self.directory)
        except FileNotFoundError:
            names = []
        bases = sorted(b for b in (parse_segment_name(n) for n in names) if b is not None)
        for seg in self._retired:  # slices from before the previous re-listing are no longer in use
            seg.close()
        listed = set(bases)
        self._retired = [s for s in self._segments if s.base not in listed or (s.fd >= 0 and s.stale())]
        retired = set(map(id, self._retired))
        known = {s.base: s for s in self._segments if id(s) not in retired}
        self._segments = [known.get(b) or _ReadSegment(self.directory, b) for b in bases]
        self._bases = bases
        for seg in self._segments[:-1]:
            seg.final = True

    def read(self, offset: int, max_bytes: int, visible_end_offset: int, log_start_offset: int,
             max_offset: int | None = None, tail: tuple[int, int, int] | None = None) -> FileSlice:
        """Whole batches from the one holding ``offset`` (at least one, then up to ``max_bytes``), all below
        ``visible_end_offset`` (and ``max_offset``). Empty at the visible end; OffsetOutOfRange outside
        ``[log_start_offset, visible_end_offset]``. ``tail``: (base offset, bytes, index entries) of the
        segment being appended to, published with ``visible_end_offset``; that segment is read no further."""
        if offset < log_start_offset or offset > visible_end_offset:
            raise OffsetOutOfRange(offset, log_start_offset, visible_end_offset)
        limit = visible_end_offset if max_offset is None else min(max_offset, visible_end_offset)
        if offset >= limit:
            return FileSlice.empty(offset)
        for attempt in range(4):  # a writer rolling segments as fast as we list them may need a few looks
            found, need_relist = self._try_read(offset, max_bytes, visible_end_offset, limit, tail)
            if found is not None:
                return found
            if not need_relist:
                break
            self._relist()
        return FileSlice.empty(offset)

    def _try_read(self, offset: int, max_bytes: int, visible_end: int, limit: int, tail=None):
        """(slice or None, whether re-listing may help). Only the segment with the largest base <= ``offset``
        can hold it: offsets are contiguous and a later segment starts above ``offset``."""
        i = bisect.bisect_right(self._bases, offset) - 1
        if i < 0:
            return None, True
        while True:
            seg = self._segments[i]
            self._reads += 1
            seg.used = self._reads
            if seg.fd < 0 and seg.final and self._on_open_closed is not None:
                self._on_open_closed(self)
            try:
                seg.open()
                size, entries = _bounded(seg.sizes(), seg.base, tail)
                seg.ensure_mapped(size, entries)
            except FileNotFoundError:
                return None, True  # deleted (retention, truncation, compaction): re-list
            except ValueError:
                return None, True  # trimmed between fstat and mmap: the segment just closed
            if seg.final and _clock() - seg.checked > STALE_CHECK_S:
                seg.checked = _clock()
                if seg.stale():
                    return None, True  # compacted since it was opened: re-list, read the cleaned file
            if size > 0:
                pos = self._index_position(seg, offset, entries, visible_end)
                found = walk.locate(seg.u8, pos, size, seg.base - 1, visible_end, offset, limit, max_bytes)
                if found is not None:  # its first batch may start past ``offset``: compaction removed those
                    p, length, first = found
                    return FileSlice(seg.log_path, seg.fd, p, length, first, seg.map), False
            # nothing at or after ``offset`` here: a later segment we have not seen holds it, or compaction
            # removed the rest of this one and the next segment starts what follows
            if not seg.final or i + 1 >= len(self._segments) or seg.stale():
                return None, True
            i += 1

    @staticmethod
    def _index_position(seg: _ReadSegment, offset: int, entries: int, visible_end: int) -> int:
        if entries == 0 or seg.index_u8 is None:
            return 0
        n = hotpath.index_valid_entries(seg.index_u8, 8, entries)
        if n == 0:
            return 0
        slot = hotpath.offset_index_lookup(seg.index_u8, n, offset - seg.base)
        while slot >= 0:
            rel, pos = struct.unpack_from(">ii", seg.index_map, slot * 8)
            if _entry_points_at_batch(seg, pos, seg.base + rel, visible_end):
                return pos
            slot -= 1  # an entry being written concurrently, or garbage: use the one before
        return 0

    def data_bytes(self, tail: tuple[int, int, int] | None = None) -> int:
        """Bytes of record batches in the partition's segments. A segment is trimmed to its batches when the
        next one is created, but the active one is extended ahead of its writer (sparse, zeros): its share
        is ``tail``'s bytes when the owner published them, else where the chain of batch headers from its
        last index entry ends."""
        total = 0
        last = len(self._segments) - 1
        for i, seg in enumerate(self._segments):
            if tail is not None and seg.base == tail[0]:
                total += tail[1]
                continue
            try:
                if i < last:  # sealed: its file holds exactly its batches
                    total += os.stat(seg.log_path).st_size
                    continue
                seg.open()
                size, entries = seg.sizes()
                if size == 0:
                    continue
                seg.ensure_mapped(size, entries)
            except (FileNotFoundError, ValueError):
                continue  # deleted or trimmed while looked at: retention or a roll, a moment's difference
            pos = self._index_position(seg, seg.base + 0x7FFFFFFF, entries, 1 << 62)
            base = int.from_bytes(seg.map[pos:pos + 8], "big", signed=True) if pos else seg.base
            total += walk.tail(seg.u8, pos, size, base - 1)[0]
        return total

    def close_idle(self, keep: int) -> int:
        """Close every open closed segment but the ``keep`` most recently read; returns how many closed.
        Only between requests: a slice returned by ``read`` uses its segment's descriptor and map."""
        open_closed = [seg for seg in self._segments if seg.final and seg.fd >= 0]
        if len(open_closed) <= keep:
            return 0
        open_closed.sort(key=lambda seg: seg.used)
        for seg in open_closed[:len(open_closed) - keep]:
            seg.close()
        return len(open_closed) - keep

    def close(self) -> None:
        for seg in self._segments + self._retired:
            seg.close()
        self._segments, self._retired, self._bases = [], [], []


def partition_data_bytes(dir_path: str | os.PathLike, tail: tuple[int, int, int] | None = None) -> int:
    """``LogReader.data_bytes`` of a partition directory, read once."""
    reader = LogReader(dir_path)
    try:
        return reader.data_bytes(tail)
    finally:
        reader.close()


def _bounded(sizes: tuple[int, int], base: int, tail) -> tuple[int, int]:
    """A segment's (bytes, index entries) safe to touch: its files' sizes, and for the segment being appended
    to no more than the owner published. Its files are sized ahead of the writer and cut back to its batches
    when it is rolled, so sizes taken from them a moment before a roll could reach past their new ends."""
    if tail is None or base != tail[0]:
        return sizes
    return min(sizes[0], tail[1]), min(sizes[1], tail[2])


def _entry_points_at_batch(seg: _ReadSegment, pos: int, key: int, visible_end: int) -> bool:
    """An index entry maps a batch's last offset to its start: check the header there says exactly that."""
    if seg.u8 is None or pos < 0 or pos + walk.HEADER > len(seg.u8) or key >= visible_end:
        return False
    base, length, _, magic, _, _, delta = _ENTRY_CHECK.unpack_from(seg.map, pos)
    return magic == 2 and length >= walk.HEADER - 12 and base >= seg.base and base + delta == key
