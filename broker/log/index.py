"""Sparse offset and time indexes of one segment, in Kafka's on-disk format (big-endian, mmap'd).

* ``OffsetIndex`` (``.index``): 8-byte entries ``int32 relativeOffset, int32 position``. An entry maps the last
  offset of a batch to that batch's start position, so the batch holding offset ``o`` starts at or after the
  position of the largest entry ``<= o``.
* ``TimeIndex`` (``.timeindex``): 12-byte entries ``int64 timestamp, int32 relativeOffset``, strictly increasing
  in timestamp: "up to this offset, the largest timestamp seen is this".

Indexes are hints, never checksummed: recovery rebuilds them from the log. While a segment is active its index
files are preallocated to ``segment.index.bytes`` (zero tail = free slots); when it closes they are trimmed to
their entries. Only the partition's writer process opens them writable.

An active index holds its mapping only (the file is opened for the rare step that allocates blocks), and a
closed segment's indexes hold no descriptor and no mapping until a lookup needs them (``_Index.rest``):
a partition keeps every segment of its retention open, and a broker with thousands of them would otherwise
run out of descriptors (each mapping holds a duplicate of its file's) before it runs out of anything else.
"""

from __future__ import annotations

import mmap
import os
import struct

import numpy as np

import hotpath

from .durable import fdatasync_path

_OFF = struct.Struct(">ii")
_TIME = struct.Struct(">qi")


ALLOCATION_STEP = 64 << 10  # index blocks are allocated this far ahead of the last entry


def no_readahead(m: mmap.mmap) -> None:
    """A fault in an index map reads ahead by the device's ``read_ahead_kb`` otherwise (8 MiB on some
    machines): the first touch of a fresh, mostly sparse 10 MiB index would zero-fill megabytes of
    page cache for a few entries, for every partition's active segment."""
    m.madvise(mmap.MADV_RANDOM)


class _Index:
    entry_size = 0

    def __init__(self, path: str, base_offset: int, max_bytes: int):
        self.path = path
        self.base_offset = base_offset
        self.max_entries = max(1, max_bytes // self.entry_size)
        self.entries = 0
        self._fd = -1
        self._map: mmap.mmap | None = None
        self._u8: np.ndarray | None = None
        self.writable = False
        self.size_ok = True  # the file held whole entries when opened
        self._allocated = 0  # bytes of the (sparse) file backed by allocated blocks

    # --- lifecycle ---------------------------------------------------------------------------------------
    @classmethod
    def open(cls, path: str, base_offset: int, max_bytes: int, writable: bool) -> "_Index":
        """Open (creating if needed) and count the valid entries; ``writable`` preallocates the full size."""
        idx = cls(path, base_offset, max_bytes)
        idx._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)  # only the writer process opens indexes
        try:
            st = os.fstat(idx._fd)
            size = st.st_size
            idx.size_ok = size % idx.entry_size == 0
            idx.entries = idx._count(size, sparse=st.st_blocks * 512 < size)
            if writable:
                idx._make_writable()
            else:
                idx.rest()
        except BaseException:
            idx.close()
            raise
        return idx

    def rest(self) -> None:
        """Read-only from now on: release the mapping and the descriptor. The first read of ``_map`` or
        ``_u8`` maps the entries again (`__getattr__`), holding one descriptor (the mapping's) from then on."""
        self._unmap()
        del self._map, self._u8
        self._close_fd()

    def __getattr__(self, name: str):
        if name not in ("_map", "_u8"):
            raise AttributeError(name)
        size = self.entries * self.entry_size
        if not size:
            self._map = self._u8 = None
            return None
        try:
            fd = os.open(self.path, os.O_RDONLY)
            try:
                self._map_size(size, writable=False, fd=fd)
            finally:
                os.close(fd)
        except BaseException:  # EMFILE, say: still resting, and the next read tries again
            self.__dict__.pop("_map", None)
            self.__dict__.pop("_u8", None)
            raise
        return self.__dict__[name]

    def _file(self) -> int:
        """The index's descriptor, opened again if it rests."""
        if self._fd < 0:
            self._fd = os.open(self.path, os.O_RDWR)
        return self._fd

    def _close_fd(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def _last(self, struct_: struct.Struct) -> tuple[int, int]:
        """The last entry (``entries`` > 0), read with one pread when the index rests: opening a segment
        needs nothing else from it."""
        at = (self.entries - 1) * self.entry_size
        m = self.__dict__.get("_map", False)
        if m is not False:
            return struct_.unpack_from(m, at)
        fd = os.open(self.path, os.O_RDONLY)
        try:
            return struct_.unpack(os.pread(fd, self.entry_size, at))
        finally:
            os.close(fd)

    def _count(self, size: int, sparse: bool) -> int:
        """A sparse file is an active index left at its preallocated size (a crash): its entries fill the
        first pages and the scan stops at the first empty one, so it faults page by page; a trimmed file
        is all entries, read with the file's readahead."""
        n = min(size // self.entry_size, self.max_entries)
        if n == 0:
            return 0
        self._map_size(n * self.entry_size, writable=False, lookups=sparse)
        valid = hotpath.index_valid_entries(self._u8, self.entry_size, n)
        if valid and not any(self._map[: self.entry_size]):
            valid = 0  # the writer never stores an all-zero first entry: this is an empty preallocated file
        self._unmap()
        return valid

    def _map_size(self, size: int, writable: bool, lookups: bool = True, fd: int | None = None) -> None:
        """``lookups``: the map serves binary searches and appends, so a fault brings in its page only
        (`no_readahead`)."""
        self._unmap()
        if size <= 0:
            return
        self._map = mmap.mmap(self._fd if fd is None else fd, size,
                              access=mmap.ACCESS_WRITE if writable else mmap.ACCESS_READ)
        if lookups:
            no_readahead(self._map)
        self._u8 = np.frombuffer(self._map, dtype=np.uint8)

    def _unmap(self) -> None:
        m = self.__dict__.get("_map")  # not `self._map`: a resting index would map itself to be unmapped
        self._u8 = None
        if m is not None:
            try:
                m.close()
            except BufferError:
                pass  # a lookup result still refers to it; it unmaps when released
        self._map = None

    def _make_writable(self) -> None:
        """Extend (sparse) to the maximum size and map it writable (segment becomes active).

        Blocks are allocated in ALLOCATION_STEP chunks just ahead of the entries (`_reserve`), so an idle
        partition's index costs a few KiB of disk rather than its maximum size, and a page is never
        written without a block behind it (a full disk cannot turn an index write into SIGBUS).
        """
        full = self.max_entries * self.entry_size
        if os.fstat(self._file()).st_size < full:
            os.ftruncate(self._fd, full)
        used = self.entries * self.entry_size
        self._allocated = 0
        self._reserve(used + self.entry_size)
        self._map_size(full, writable=True)
        if any(self._map[used: used + self.entry_size]):
            # Stale bytes past the valid entries would be read back: cut them off, extend sparse again.
            self._unmap()
            os.ftruncate(self._fd, used)
            os.ftruncate(self._fd, full)
            self._allocated = 0
            self._reserve(used + self.entry_size)
            self._map_size(full, writable=True)
        self.writable = True
        self._close_fd()  # entries go through the map, which holds a descriptor of its own

    def make_writable(self) -> None:
        self._make_writable()

    def _reserve(self, end: int) -> bool:
        """Make sure bytes [0, end) have disk blocks; False (the entry is skipped: indexes are sparse
        anyway) when the disk is full."""
        if end <= self._allocated:
            return True
        full = self.max_entries * self.entry_size
        upto = min(full, max(end, self._allocated + ALLOCATION_STEP))
        upto = min(full, (upto + ALLOCATION_STEP - 1) // ALLOCATION_STEP * ALLOCATION_STEP)
        opened = self._fd < 0  # an active index opens its file for this step only
        try:
            os.posix_fallocate(self._file(), 0, upto)
        except OSError:
            return False
        finally:
            if opened:
                self._close_fd()
        self._allocated = upto
        return True

    def trim(self) -> None:
        """Shrink the file to its entries (segment closes); the index stays readable."""
        size = self.entries * self.entry_size
        self._unmap()
        os.ftruncate(self._file(), size)
        self.writable = False
        self.rest()

    def flush(self) -> None:
        if self.writable:
            fdatasync_path(self.path)  # the index keeps no descriptor open between operations

    def close(self) -> None:
        self._unmap()
        self._close_fd()

    @property
    def is_full(self) -> bool:
        return self.entries >= self.max_entries

    def truncate_entries(self, n: int) -> None:
        """Keep the first ``n`` entries, zeroing the rest."""
        if n >= self.entries:
            return
        if self.writable:
            self._map[n * self.entry_size: self.entries * self.entry_size] = bytes((self.entries - n) * self.entry_size)
        self.entries = n
        if not self.writable:
            self._unmap()
            os.ftruncate(self._file(), n * self.entry_size)
            self.rest()

    def reset(self) -> None:
        self.truncate_entries(0)

    def _raw_entries(self, struct_) -> list[tuple[int, int]]:
        return [struct_.unpack_from(self._map, i * self.entry_size) for i in range(self.entries)]


class OffsetIndex(_Index):
    entry_size = 8

    def last_entry(self) -> tuple[int, int]:
        """(offset, position) of the last entry, or (base_offset, 0) when empty."""
        if self.entries == 0:
            return self.base_offset, 0
        rel, pos = self._last(_OFF)
        return self.base_offset + rel, pos

    def append(self, offset: int, position: int) -> bool:
        rel = offset - self.base_offset
        if self.is_full or not 0 <= rel <= 0x7FFFFFFF:
            return False
        if self.entries:
            last_rel, last_pos = _OFF.unpack_from(self._map, (self.entries - 1) * 8)
            if rel <= last_rel or position <= last_pos:
                return False
        elif rel == 0 and position == 0:
            return False  # an all-zero first entry would read back as an empty index
        if not self._reserve((self.entries + 1) * 8):
            return False
        _OFF.pack_into(self._map, self.entries * 8, rel, position)
        self.entries += 1
        return True

    def lookup(self, offset: int) -> tuple[int, int]:
        """(offset, position) of the largest entry with offset <= ``offset``; (base, 0) if none."""
        if self.entries == 0:
            return self.base_offset, 0
        slot = hotpath.offset_index_lookup(self._u8, self.entries, offset - self.base_offset)
        if slot < 0:
            return self.base_offset, 0
        rel, pos = _OFF.unpack_from(self._map, slot * 8)
        return self.base_offset + rel, pos

    def truncate_to_offset(self, offset: int) -> None:
        """Drop entries whose offset is >= ``offset``."""
        if self.entries == 0:
            return
        slot = hotpath.offset_index_lookup(self._u8, self.entries, offset - self.base_offset - 1)
        self.truncate_entries(slot + 1)

    def check(self, log_size: int) -> bool:
        """Kafka's sanity check, over every entry: offsets and positions increase and point inside the log."""
        if self.entries == 0:
            return True
        e = np.frombuffer(self._map, ">i4", self.entries * 2).reshape(-1, 2)
        rel, pos = e[:, 0], e[:, 1]
        return bool(rel[0] >= 0 and pos[0] >= 0 and pos[-1] < log_size
                    and (np.diff(rel) > 0).all() and (np.diff(pos) > 0).all())

    def all_entries(self) -> list[tuple[int, int]]:
        return [(self.base_offset + r, p) for r, p in self._raw_entries(_OFF)]


class TimeIndex(_Index):
    entry_size = 12

    def last_entry(self) -> tuple[int, int]:
        """(timestamp, offset) of the last entry, or (-1, base_offset) when empty."""
        if self.entries == 0:
            return -1, self.base_offset
        ts, rel = self._last(_TIME)
        return ts, self.base_offset + rel

    def maybe_append(self, timestamp: int, offset: int, skip_full_check: bool = False) -> bool:
        """Append when ``timestamp`` is larger than the last entry's (timestamps <= 0 are not indexed)."""
        rel = offset - self.base_offset
        if timestamp <= 0 or not 0 <= rel <= 0x7FFFFFFF:
            return False
        if self.entries >= self.max_entries or (self.entries >= self.max_entries - 1 and not skip_full_check):
            return False  # the last slot is kept for the closing entry
        if self.entries:
            last_ts, last_rel = _TIME.unpack_from(self._map, (self.entries - 1) * 12)
            if timestamp <= last_ts or rel < last_rel:
                return False
        if not self._reserve((self.entries + 1) * 12):
            return False
        _TIME.pack_into(self._map, self.entries * 12, timestamp, rel)
        self.entries += 1
        return True

    @property
    def is_full(self) -> bool:
        return self.entries >= self.max_entries - 1

    def offset_before(self, timestamp: int) -> int | None:
        """Offset of the last entry with timestamp < ``timestamp``: everything up to it is older than the target.

        ``None`` when no entry is older (search from the segment start).
        """
        if self.entries == 0:
            return None
        slot = hotpath.time_index_lookup(self._u8, self.entries, timestamp)
        if slot <= 0:
            return None
        _, rel = _TIME.unpack_from(self._map, (slot - 1) * 12)
        return self.base_offset + rel

    def truncate_to_offset(self, offset: int) -> None:
        n = self.entries
        while n and _TIME.unpack_from(self._map, (n - 1) * 12)[1] + self.base_offset >= offset:
            n -= 1
        self.truncate_entries(n)

    def check(self, next_offset: int) -> bool:
        if self.entries == 0:
            return True
        e = np.frombuffer(self._map, np.dtype([("ts", ">i8"), ("rel", ">i4")]), self.entries)
        ts, rel = e["ts"], e["rel"]
        return bool(ts[0] > 0 and rel[0] >= 0 and self.base_offset + int(rel[-1]) < next_offset
                    and (np.diff(ts) > 0).all() and (np.diff(rel) >= 0).all())

    def all_entries(self) -> list[tuple[int, int]]:
        return [(ts, self.base_offset + r) for ts, r in self._raw_entries(_TIME)]
