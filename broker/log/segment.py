"""One log segment: ``<base>.log`` plus its ``.index`` and ``.timeindex``, named by the 20-digit base offset.

While active, the ``.log`` file spans the whole segment and is mapped shared and writable once; its disk
blocks are allocated with ``posix_fallocate`` before any byte is written to them (all at creation with
``preallocate``, else in doubling steps ahead of the writer, smaller on tmpfs where a step is zeroed at
once), so a full disk fails as an ``OSError`` there, never as SIGBUS on a store. Appends ``pwritev`` the
batches into the page cache with their offsets and leader epoch already stamped (a stamped copy of each
61-byte header, the rest straight from the source).
Not a memcpy into the mapping: the first store to each page of a file mapping faults, and the fault reads
ahead by zero-filling whole (large) folios, which cost ~2 CPU-seconds per GB here against ~0.3 for
``pwrite``. Stamping through the mapping after the write cost two faults (a read, then a write-protect
fault) for every page holding a batch header. A write that would cover an aligned 64 KiB block goes in
pieces that cover none, so the page cache builds folios of 32 KiB or less: on this VM class new larger
folios cost about three times the kernel time per byte. When the segment closes
(roll, clean shutdown) the allocated tail is trimmed so the file holds exactly its batches, as Kafka's tools
expect, and the mapping becomes read-only.

Only the partition's writer process creates ``LogSegment`` objects; other processes use ``LogReader``.
All methods raise ``OSError`` as is; ``PartitionLog`` turns it into ``StorageError``.
"""

from __future__ import annotations

import itertools
import mmap
import os
import struct

import numpy as np

import hotpath
from hotpath.batch import BASE_OFFSET, LAST_OFFSET_DELTA, LEADER_EPOCH

from netio.codec.records import record_times

from . import walk
from .config import LogConfig
from .durable import fdatasync_path
from .errors import CorruptRecord
from .fileslice import FileSlice
from .index import OffsetIndex, TimeIndex

LOG_SUFFIX = ".log"
INDEX_SUFFIX = ".index"
TIMEINDEX_SUFFIX = ".timeindex"
DELETED_SUFFIX = ".deleted"
SWAP_SUFFIX = ".swap"
CLEANED_SUFFIX = ".cleaned"
SEGMENT_SUFFIXES = (LOG_SUFFIX, INDEX_SUFFIX, TIMEINDEX_SUFFIX)
GROWTH_STEP = 16 << 20  # largest allocation step when preallocate is off
MEMORY_GROWTH_STEP = 1 << 20  # the largest on tmpfs/ramfs, where fallocate zeroes the step's pages in the owner
FIRST_ALLOCATION = 64 << 10  # an idle partition's log costs this much disk; steps double up to GROWTH_STEP
_MEMORY_FS = (0x01021994, 0x858458F6)  # statfs f_type of tmpfs and ramfs
MAX_SCAN = 2**31 - 1
RECOVERY_CHUNK_BATCHES = 1 << 16  # bounds the scan's per-batch arrays
INT64_MAX = 2**63 - 1


def segment_name(base_offset: int) -> str:
    return f"{base_offset:020d}"


def parse_segment_name(filename: str, suffix: str = LOG_SUFFIX) -> int | None:
    stem = filename[: -len(suffix)] if filename.endswith(suffix) else None
    if stem is None or len(stem) != 20 or not stem.isdigit():
        return None
    return int(stem)


_I64 = struct.Struct(">q")
_I32 = struct.Struct(">i")
_IOV_BATCHES = 256                      # batches per pwritev (two buffers each, under IOV_MAX)
# A write covering an aligned block of this size gets page-cache folios of this size or larger; such writes
# are cut into pieces covering none (see perf/RESULTS.md, "Page-cache folio size" for what larger folios cost).
SMALL_FOLIO_WRITE = 64 << 10


def _pwrite_stamped(fd: int, batches: list, position: int) -> None:
    """Write ``batches`` -- (buffer, start, size, last offset, leader epoch) each -- one after another from
    ``position``, each with its baseOffset and partitionLeaderEpoch stamped on the way: a copy of its
    (validated) header with the two fields packed in, then its remaining bytes straight from its buffer.
    Neither the buffers nor the file mapping are touched."""
    iov: list = []
    total = 0
    for view, p, size, last, epoch in batches:
        iov.append(_stamped_header(view, p, last, epoch))
        iov.append(view[p + hotpath.HEADER_SIZE: p + size])
        total += size
        if len(iov) == 2 * _IOV_BATCHES:
            pwritev_all(fd, iov, position, total)
            position += total
            iov, total = [], 0
    if iov:
        pwritev_all(fd, iov, position, total)


def _stamped_header(view: memoryview, p: int, last: int, epoch: int) -> bytearray:
    """A copy of the header at ``p`` with the baseOffset that makes its last offset ``last``, and ``epoch``."""
    head = bytearray(view[p: p + hotpath.HEADER_SIZE])
    _I64.pack_into(head, BASE_OFFSET, last - _I32.unpack_from(head, LAST_OFFSET_DELTA)[0])
    _I32.pack_into(head, LEADER_EPOCH, epoch)
    return head


def pwritev_all(fd: int, iov: list, position: int, total: int) -> None:
    """pwritev ``total`` bytes of ``iov`` at ``position``; a short write (rare) continues where it stopped.
    How every log write reaches the page cache (the perf suite's page-cache probe writes with it too)."""
    if total >= SMALL_FOLIO_WRITE and -(-position // SMALL_FOLIO_WRITE) * SMALL_FOLIO_WRITE + SMALL_FOLIO_WRITE \
            <= position + total:
        _pwritev_small_folios(fd, iov, position, total)
        return
    n = os.pwritev(fd, iov, position)
    while n < total:
        total -= n
        position += n
        while n >= len(iov[0]):
            n -= len(iov[0])
            iov.pop(0)
        if n:
            iov[0] = memoryview(iov[0])[n:]
        n = os.pwritev(fd, iov, position)


def _pwritev_small_folios(fd: int, iov: list, position: int, total: int) -> None:
    """A write that would cover an aligned SMALL_FOLIO_WRITE block, in pieces that cover none.

    The page cache sizes a new folio by the write that creates it, up to the largest aligned block the
    write covers. Pieces cut at half-block offsets (each at most a block long, straddling one boundary)
    keep every folio at half a block or less."""
    half = SMALL_FOLIO_WRITE // 2
    end = position + total
    i, skip = 0, 0  # the next byte to write is iov[i][skip]
    while position < end:
        stop = min(end, (position - half) // SMALL_FOLIO_WRITE * SMALL_FOLIO_WRITE + SMALL_FOLIO_WRITE + half)
        want = stop - position
        part = []
        while want:
            buf = iov[i]
            avail = len(buf) - skip
            if avail <= want:
                part.append(memoryview(buf)[skip:] if skip else buf)
                want -= avail
                i, skip = i + 1, 0
            else:
                part.append(memoryview(buf)[skip:skip + want])
                skip += want
                want = 0
        pwritev_all(fd, part, position, stop - position)
        position = stop


_memory_backed: dict[int, bool] = {}  # st_dev -> its filesystem keeps files in memory


def in_memory_fs(directory: str) -> bool:
    """Whether `directory` is on tmpfs or ramfs. There `posix_fallocate` allocates and zeroes every page at
    once (a 16 MiB step took 4-11 ms here, against 0.01-0.5 ms on ext4), so the owner, and every partition
    it writes, stalls for it: steps stay small (``MEMORY_GROWTH_STEP``). Asked once per device."""
    try:
        dev = os.stat(directory).st_dev
    except OSError:
        return False
    known = _memory_backed.get(dev)
    if known is None:
        known = _memory_backed[dev] = _statfs_type(directory) in _MEMORY_FS
    return known


def _statfs_type(directory: str) -> int | None:
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        buf = ctypes.create_string_buffer(512)  # struct statfs is 120 bytes on x86-64 Linux
        if libc.statfs(os.fsencode(directory), buf) != 0:
            return None
    except (OSError, AttributeError):  # no statfs here
        return None
    return ctypes.c_long.from_buffer(buf).value  # f_type, the first field (__fsword_t, a long)


def _page_round(n: int) -> int:
    return (n + mmap.PAGESIZE - 1) // mmap.PAGESIZE * mmap.PAGESIZE


class LogSegment:
    def __init__(self, directory: str, base_offset: int, config: LogConfig):
        self.directory = directory
        self.base_offset = base_offset
        self.config = config
        stem = os.path.join(directory, segment_name(base_offset))
        self.log_path = stem + LOG_SUFFIX
        self.index_path = stem + INDEX_SUFFIX
        self.timeindex_path = stem + TIMEINDEX_SUFFIX
        self.fd = -1
        self._map: mmap.mmap | None = None
        self._u8 = np.zeros(0, np.uint8)
        self.capacity = 0  # bytes mapped (allocated when active)
        self.size = 0  # bytes of valid batches
        self.next_offset = base_offset  # one past the last offset held
        self.max_timestamp = -1
        self.offset_of_max_timestamp = base_offset
        self.created_ms = -1  # for segment.ms: clock at the first append; after a restart the first batch's timestamp
        self.active = False
        self.offset_index: OffsetIndex | None = None
        self.time_index: TimeIndex | None = None
        self._bytes_since_index = 0
        self._allocated = 0  # bytes of the file backed by disk blocks (the rest of an active file is a hole)
        self._step_cap = GROWTH_STEP  # the largest allocation step, smaller on tmpfs/ramfs (set when activated)
        self.index_missing = False

    # --- lifecycle ---------------------------------------------------------------------------------------
    @classmethod
    def create(cls, directory: str, base_offset: int, config: LogConfig, now_ms: int,
               min_bytes: int = 0) -> "LogSegment":
        """New empty active segment; on any failure no file of it remains."""
        seg = cls(directory, base_offset, config)
        try:
            seg.fd = os.open(seg.log_path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
            seg.offset_index = OffsetIndex.open(seg.index_path, base_offset, config.segment_index_bytes, True)
            seg.time_index = TimeIndex.open(seg.timeindex_path, base_offset, config.segment_index_bytes, True)
            seg._activate(min_bytes)
        except BaseException:
            seg.close()
            for p in (seg.log_path, seg.index_path, seg.timeindex_path):
                try:
                    os.unlink(p)
                except FileNotFoundError:
                    pass
            raise
        seg.created_ms = now_ms
        return seg

    @classmethod
    def open(cls, directory: str, base_offset: int, config: LogConfig) -> "LogSegment":
        """Map an existing segment read-only at its file size; recovery decides how much of it is valid."""
        seg = cls(directory, base_offset, config)
        try:
            seg.fd = os.open(seg.log_path, os.O_RDWR)
            seg.size = os.fstat(seg.fd).st_size
            seg._map_readonly(seg.size)
            for p in (seg.index_path, seg.timeindex_path):
                if not os.path.exists(p):
                    seg.index_missing = True
                    os.close(os.open(p, os.O_WRONLY | os.O_CREAT, 0o644))
            seg.offset_index = OffsetIndex.open(seg.index_path, base_offset, config.segment_index_bytes, False)
            seg.time_index = TimeIndex.open(seg.timeindex_path, base_offset, config.segment_index_bytes, False)
        except BaseException:
            seg.close()
            raise
        return seg

    def _map_readonly(self, size: int) -> None:
        self._unmap()
        if size > 0:
            self._map = mmap.mmap(self.fd, size, access=mmap.ACCESS_READ)
            self._u8 = np.frombuffer(self._map, np.uint8)
        self.capacity = size

    def _unmap(self) -> None:
        self._u8 = np.zeros(0, np.uint8)
        if self._map is not None:
            try:
                self._map.close()
            except BufferError:
                pass  # a FileSlice view still uses it; unmapped when released
            self._map = None

    def _activate(self, min_bytes: int = 0) -> None:
        """Map writable (the whole segment, once) and allocate; indexes become writable too.

        With ``preallocate`` the whole segment is allocated now. Otherwise the file is extended sparse to the
        segment size and disk blocks are allocated in doubling steps just ahead of the writer
        (``ensure_room``), so an idle partition costs one first step of disk (64 KiB) while the mapping never
        has to be re-created as the segment fills."""
        self._step_cap = MEMORY_GROWTH_STEP if in_memory_fs(self.directory) else GROWTH_STEP
        self._grow(_page_round(max(self.size + min_bytes, self.config.segment_bytes)))
        self._allocate(self.capacity if self.config.preallocate else self.size + max(min_bytes, self._growth_step()))
        self.offset_index.make_writable()
        self.time_index.make_writable()
        self.active = True

    def _growth_step(self) -> int:
        return min(self._step_cap, max(FIRST_ALLOCATION, self.size))

    def _grow(self, capacity: int) -> None:
        """Extend the file (sparse) to ``capacity`` and map all of it writable."""
        self._unmap()
        if any(os.pread(self.fd, walk.HEADER, self.size)):
            self._zero_from(self.size)  # stale bytes after the valid end must never parse as batches
        if os.fstat(self.fd).st_size < capacity:
            os.ftruncate(self.fd, capacity)
        self._allocated = min(self._allocated, self.size)
        self._map = mmap.mmap(self.fd, capacity, access=mmap.ACCESS_WRITE)
        self._u8 = np.frombuffer(self._map, np.uint8)
        self.capacity = capacity

    def _allocate(self, upto: int) -> None:
        """Give bytes [0, upto) disk blocks (raises OSError, e.g. ENOSPC, before anything is written there);
        only allocated pages are ever written, so a full disk never becomes SIGBUS."""
        upto = min(_page_round(upto), self.capacity)
        if upto <= self._allocated:
            return
        os.posix_fallocate(self.fd, 0, upto)
        self._allocated = upto

    def make_active(self) -> None:
        if not self.active:
            self._activate()

    def close_active(self) -> None:
        """The segment stops taking appends: final time-index entry, trim files, map read-only."""
        if not self.active:
            return
        if self.max_timestamp > 0:
            self.time_index.maybe_append(self.max_timestamp, self.offset_of_max_timestamp, skip_full_check=True)
        self._unmap()
        os.ftruncate(self.fd, self.size)
        self.offset_index.trim()
        self.time_index.trim()
        self._map_readonly(self.size)
        self.active = False

    def rest(self) -> None:
        """A closed segment keeps only its read-only map (which holds a descriptor of its own): its file
        descriptor is opened again by what needs one (`__getattr__`), its indexes are mapped again by the
        lookups that need them (those recovery rebuilt are trimmed to their entries first, as a roll trims
        them)."""
        if self.active:
            return
        for idx in (self.offset_index, self.time_index):
            if idx is None:
                continue
            if idx.writable:
                idx.trim()
            else:
                idx.rest()
        fd = self.__dict__.pop("fd", -1)
        if fd >= 0:
            os.close(fd)

    @property
    def _held_fd(self) -> int:
        """The file's descriptor when the segment holds one, -1 while it rests; not `self.fd`, which opens
        the file of a resting segment."""
        return self.__dict__.get("fd", -1)

    def __getattr__(self, name: str):
        if name != "fd":
            raise AttributeError(name)
        self.fd = os.open(self.log_path, os.O_RDWR)  # a resting segment cut back or made active again
        return self.fd

    def close(self) -> None:
        self._unmap()
        for idx in (self.offset_index, self.time_index):
            if idx is not None:
                idx.close()
        fd = self._held_fd
        if fd >= 0:
            os.close(fd)
        self.fd = -1

    def flush(self, indexes: bool = True) -> None:
        """Make everything written so far durable (power loss); the mapping is file-backed, so fdatasync suffices.

        The active segment's indexes may be skipped: after an unclean shutdown the segment holding the recovery
        point is always re-validated and its indexes rebuilt."""
        fd = self._held_fd
        if fd >= 0:
            os.fdatasync(fd)
        else:  # resting: a descriptor for this sync only
            fdatasync_path(self.log_path)
        if indexes:
            self.offset_index.flush()
            self.time_index.flush()

    def rename_deleted(self) -> list[str]:
        """Close and rename the files to ``*.deleted``; returns the new paths (removed later)."""
        self.close()
        out = []
        for p in (self.log_path, self.index_path, self.timeindex_path):
            try:
                os.replace(p, p + DELETED_SUFFIX)
                out.append(p + DELETED_SUFFIX)
            except FileNotFoundError:
                pass
        return out

    # --- append ------------------------------------------------------------------------------------------
    def fits(self, nbytes: int) -> bool:
        return self.size + nbytes <= self.config.segment_bytes or self.size == 0

    def ensure_room(self, nbytes: int) -> None:
        """Allocate (before writing) so the bytes can never fault on a full disk."""
        end = self.size + nbytes
        if end > self.capacity:  # one batch larger than the segment size
            self._grow(_page_round(end))
        if self.config.preallocate:
            self._allocate(self.capacity)
            return
        step = self._growth_step()
        if end + step // 2 > self._allocated:  # next step early: a failure here is not yet this append's
            try:
                self._allocate(max(end, self._allocated + step))
            except OSError:
                if end > self._allocated:
                    raise  # this append needs the space; without it nothing is written

    def append(self, src: np.ndarray, start: int, nbytes: int, positions, sizes, lasts, max_ts,
               leader_epoch, append_time: int, now_ms: int) -> int:
        """Copy ``src[start:start+nbytes]`` (validated batches) to the end and stamp offsets/epoch (and
        LogAppendTime); per-batch ``positions`` (in ``src``), ``sizes``, ``lasts`` (last offsets to assign),
        ``max_ts``; ``leader_epoch`` is one epoch for all or a per-batch sequence. Returns the next offset.

        The caller checked room with ``ensure_room``. The batches are written already stamped
        (`_pwrite_stamped`); a concurrent reader's header walk rejects them until the caller publishes the
        new end offset (their base offsets are at or past it). Only LogAppendTime touches the file mapping:
        maxTimestamp is under the CRC, so each written batch is re-stamped there, before publication too.
        ``src`` is never modified.
        """
        at = self.size
        shift = at - start
        view = memoryview(src).cast("B")
        one = isinstance(leader_epoch, int)
        _pwrite_stamped(self.fd, [(view, int(positions[i]), int(sizes[i]), int(lasts[i]),
                                   leader_epoch if one else int(leader_epoch[i])) for i in range(len(positions))], at)
        return self._recorded(positions, shift, sizes, lasts, max_ts, append_time, at + nbytes, now_ms)

    def append_sources(self, srcs: list, sizes: list, lasts: list, max_ts: list, leader_epoch: int,
                       append_time: int, now_ms: int) -> int:
        """``append`` for one-batch sources that lie in separate buffers (several requests' batches for this
        partition): written together, each stamped on the way, in the order given."""
        at = self.size
        _pwrite_stamped(self.fd, [(memoryview(src), 0, size, last, leader_epoch)
                                  for src, size, last in zip(srcs, sizes, lasts)], at)
        positions = list(itertools.accumulate(sizes[:-1], initial=at))
        return self._recorded(positions, 0, sizes, lasts, max_ts, append_time, at + sum(sizes), now_ms)

    def _recorded(self, positions, shift: int, sizes, lasts, max_ts, append_time: int, end: int,
                  now_ms: int) -> int:
        """After a write that ends at ``end``: LogAppendTime stamped, the indexes, the new size and next
        offset (returned). Batch ``i`` starts at file position ``positions[i] + shift``."""
        if append_time >= 0:
            for i in range(len(positions)):
                hotpath.set_log_append_time(self._u8, int(positions[i]) + shift, int(sizes[i]), append_time)
            max_ts = [append_time] * len(positions)
        self._index_batches(positions, shift, sizes, lasts, max_ts)
        self.size = end
        nxt = int(lasts[-1]) + 1
        self.next_offset = nxt
        if self.created_ms < 0:
            self.created_ms = now_ms
        return nxt

    def _index_batches(self, positions, shift, sizes, lasts, max_ts) -> None:
        interval = self.config.index_interval_bytes
        for i in range(len(positions)):
            ts = int(max_ts[i])
            if ts > self.max_timestamp:
                self.max_timestamp, self.offset_of_max_timestamp = ts, int(lasts[i])
            if self._bytes_since_index > interval:
                if self.offset_index.append(int(lasts[i]), int(positions[i]) + shift):
                    self.time_index.maybe_append(self.max_timestamp, self.offset_of_max_timestamp)
                self._bytes_since_index = 0
            self._bytes_since_index += int(sizes[i])

    @property
    def index_full(self) -> bool:
        return self.offset_index.is_full or self.time_index.is_full

    # --- read --------------------------------------------------------------------------------------------
    def locate(self, offset: int, max_bytes: int, max_offset: int) -> tuple[int, int, int] | None:
        """(position, length, first offset) of whole batches from the one holding ``offset``."""
        _, pos = self.offset_index.lookup(offset)
        return walk.locate(self._u8, pos, self.size, self.base_offset - 1, self.next_offset, offset,
                           max_offset, max_bytes)

    def slice(self, offset: int, max_bytes: int, max_offset: int) -> FileSlice | None:
        found = self.locate(offset, max_bytes, max_offset)
        if found is None:
            return None
        pos, length, first = found
        # a resting segment's slice carries no descriptor (the owner reads slices through the map)
        return FileSlice(self.log_path, self._held_fd, pos, length, first, self._map)

    def find_timestamp(self, timestamp: int, min_offset: int = 0) -> tuple[int, int, int] | None:
        """(offset, timestamp, leader epoch of its batch) of the first record at or after ``min_offset``
        whose timestamp is >= ``timestamp``, as Kafka's ListOffsets answers. Batches whose maxTimestamp is
        older are passed over by their headers; the records of one that may hold the answer are read
        (decompressed when the producer compressed them), and when none of them qualifies the search goes
        on after it. CorruptRecord when such a batch's records cannot be read."""
        if self.max_timestamp < timestamp:
            return None
        before = self.time_index.offset_before(timestamp)
        start = max(0 if before is None else before + 1, min_offset)
        pos = self.offset_index.lookup(start)[1] if start > self.base_offset else 0
        while True:
            found = walk.find_timestamp(self._u8, pos, self.size, self.base_offset - 1, self.next_offset, timestamp)
            if found is None:
                return None
            pos = found[0]
            end = pos + 12 + _I32.unpack_from(self._map, pos + 8)[0]
            try:
                records = record_times(self._map[pos:end])
            except (ValueError, struct.error) as e:
                raise CorruptRecord(f"the records of the batch at offset {found[1]} of {self.log_path} "
                                    f"cannot be read: {e}") from None
            for offset, ts in records:
                if ts >= timestamp and offset >= min_offset:
                    return offset, ts, _I32.unpack_from(self._map, pos + 12)[0]
            pos = end

    # --- recovery and truncation -------------------------------------------------------------------------
    def load_tail(self) -> None:
        """Trusted segment (clean shutdown or below the recovery point): find its end from the last index entry
        without CRC checks, and its largest timestamp from the time index.

        It reads a few pages (the first batch's header, the batches after the last index entry), and reads
        them alone: a fault in a map reads ahead by the device's ``read_ahead_kb`` otherwise (8 MiB on some
        machines), and a start-up would read megabytes of every closed segment to learn a few bytes of each."""
        if self._map is None:
            self._load_tail()
            return
        self._map.madvise(mmap.MADV_RANDOM)
        try:
            self._load_tail()
        finally:
            self._map.madvise(mmap.MADV_NORMAL)  # later reads of the segment (a replica's fetch) go in order

    def _load_tail(self) -> None:
        _, indexed = self.offset_index.last_entry()  # read once: a resting index reads it from its file
        limit = self.capacity
        pos = indexed if indexed < limit else 0
        end, last, ts, ts_off = walk.tail(self._u8, pos, limit, self.base_offset - 1)
        if pos and end == pos:  # the index pointed at something that is not a batch: do not trust it
            end, last, ts, ts_off = walk.tail(self._u8, 0, limit, self.base_offset - 1)
        self.size = end
        self.next_offset = last + 1 if end else self.base_offset
        t_ts, t_off = self.time_index.last_entry()
        self.max_timestamp, self.offset_of_max_timestamp = (ts, ts_off) if ts > t_ts else (t_ts, t_off)
        self._bytes_since_index = self.size - indexed
        if self.size > 0 and self.created_ms < 0:
            self.created_ms = self._first_batch_timestamp()

    def _first_batch_timestamp(self) -> int:
        return int.from_bytes(self._u8[35:43].tobytes(), "big", signed=True) if self.size >= walk.HEADER else -1

    def indexes_sane(self) -> bool:
        return (self.offset_index.size_ok and self.time_index.size_ok
                and self.offset_index.check(max(self.size, 1)) and self.time_index.check(self.next_offset))

    def recover(self) -> bool:
        """Re-validate every batch (framing + CRC via hotpath), cut at the first invalid byte and rebuild both
        indexes; returns True when something other than the zero tail followed the valid batches."""
        self.offset_index.reset()
        self.time_index.reset()
        self.max_timestamp, self.offset_of_max_timestamp = -1, self.base_offset
        self._bytes_since_index = 0
        self.next_offset = self.base_offset
        self.created_ms = -1
        if self.capacity:
            self.offset_index.make_writable()
            self.time_index.make_writable()
        pos, prev_last = 0, self.base_offset - 1
        while pos < self.capacity:
            res = hotpath.scan_batches(self._u8, max_batch_bytes=MAX_SCAN, max_batches=RECOVERY_CHUNK_BATCHES,
                                       start=pos, end=self.capacity)
            count = int(res.count)
            if count == 0:
                break
            bases = res.base_offset
            lasts = (bases + res.last_offset_delta).astype(np.int64)
            ok = (bases > np.concatenate(([prev_last], lasts[:-1]))) & (lasts - self.base_offset <= 0x7FFFFFFF)
            bad = np.flatnonzero(~ok)
            n = int(bad[0]) if len(bad) else count
            if n:
                self._index_batches(res.pos[:n], 0, res.size[:n], lasts[:n], res.max_timestamp[:n])
                pos = int(res.pos[n - 1] + res.size[n - 1])
                prev_last = int(lasts[n - 1])
            if n < count or res.error != 0:
                break
        self.size = pos
        if pos:
            self.next_offset = prev_last + 1
            self.created_ms = self._first_batch_timestamp()
        torn = bool(pos < self.capacity and self._u8[pos: pos + walk.HEADER].any())
        if torn or (not self.active and pos < os.fstat(self.fd).st_size):
            self._cut(pos)
        return torn

    def _zero_from(self, position: int) -> None:
        """Make every byte from ``position`` read as zero without writing the (possibly huge) tail: zero the rest
        of its page and give the later blocks back to the filesystem (callers allocate again while active).
        The page holding ``position`` stays in the file, so a reader peeking at the header there cannot fault."""
        file_size = os.fstat(self.fd).st_size
        page_end = min(_page_round(position), file_size)
        if page_end > position:
            os.pwrite(self.fd, bytes(page_end - position), position)
        os.ftruncate(self.fd, max(page_end, position))

    def _cut(self, position: int) -> None:
        """Drop bytes from ``position``: while active the allocation stays (zeroed), else the file shrinks."""
        if self.active:
            self._zero_from(position)
            os.ftruncate(self.fd, self.capacity)  # the dropped range comes back as a hole
            self._allocated = min(self._allocated, position)
            self._allocate(position + self._growth_step())
        else:
            self._unmap()
            os.ftruncate(self.fd, position)
            self._map_readonly(position)

    def truncate_to(self, offset: int) -> int:
        """Remove every batch holding an offset >= ``offset`` (whole batches); returns bytes removed."""
        found = self.locate(offset, 0, INT64_MAX) if offset < self.next_offset else None
        if found is None:
            return 0
        cut = found[0]
        removed = self.size - cut
        if self.active:
            # zeroed in place, the file keeps its size: a reader still walking the removed batches (it read
            # the end offset before this truncation) meets zeros, never a page beyond the end of the file
            self._u8[cut: self.size] = 0
        else:
            self._cut(cut)
        self.size = cut
        end, last, ts, ts_off = walk.tail(self._u8, 0, cut, self.base_offset - 1)
        self.next_offset = last + 1 if cut else self.base_offset
        self.offset_index.truncate_to_offset(self.next_offset)
        self.time_index.truncate_to_offset(self.next_offset)
        self.max_timestamp, self.offset_of_max_timestamp = (ts, ts_off) if cut else (-1, self.base_offset)
        self._bytes_since_index = self.size - self.offset_index.last_entry()[1]
        if cut == 0:
            self.created_ms = -1
        return removed
