"""``PartitionLog``: one partition's segments, offsets, retention and flushing, owned by ONE writer process.

Appends are validated by ``hotpath.scan_batches`` (framing, record count, CRC-32C, max.message.bytes), copied
into the active segment's mapping and stamped with offsets and the leader epoch. A segment rolls at
``segment.bytes``, ``segment.ms``, a full index, or when relative offsets would overflow int32.

Durability contract
-------------------
* **Process crash (kill -9, OOM kill, segfault): everything acknowledged survives.** An append returns only
  after its bytes are in the shared file mapping, i.e. in the kernel page cache, which outlives the process.
  A crash mid-append can leave a partial batch after the last acknowledged one; startup recovery (no
  ``.kafka_cleanshutdown`` marker) re-validates every batch after the recovery point and cuts the log at the
  first invalid byte, so such a batch was never acknowledged and is dropped.
* **Power loss or kernel crash: only what was flushed survives.** By default (``flush.messages`` /
  ``flush.ms`` unset, as in Kafka) data is written back by the kernel on its own schedule (typically within
  30 s), plus every segment is fdatasync'ed in the background as soon as it rolls; the active segment's
  unflushed tail may be lost, and recovery truncates to the last valid batch that reached the disk. With
  ``flush.messages=1`` every append is fdatasync'ed before it is acknowledged (see ``perf/RESULTS.md`` for
  the cost), so acknowledged data survives power loss too. Recovery also rebuilds indexes, which are
  never trusted after an unclean shutdown. Replication, not fsync, is Kafka's answer to power loss.
* **Disk errors** never produce an acknowledgement: any ``OSError`` becomes ``StorageError``
  (KAFKA_STORAGE_ERROR) with nothing of the failed append visible. A full disk (ENOSPC/EDQUOT) leaves the
  log online and readable: segments are allocated before they are written, so the failure surfaces when a
  segment is created or grown, never as SIGBUS on a mapped store. Any other error takes the log offline.

What other processes see: the writer publishes log end / high watermark / log start through shared memory
(not here); ``LogReader`` serves fetches from the segment files using those values.
"""

from __future__ import annotations

import bisect
import json
import os
import shutil
import struct
import threading
import time
from contextlib import contextmanager
from typing import Callable, Iterator, NamedTuple

import numpy as np

import hotpath
from hotpath.records import FLAGS, KEY_NULL

from . import checkpoint
from . import cleaner as _cleaner
from .config import LogConfig
from .durable import fdatasync_path, fsync_dir
from .epochs import LeaderEpochCache
from .errors import CorruptRecord, InvalidRecord, OffsetOutOfRange, RecordTooLarge, StorageError
from .fileslice import FileSlice
from .recovery import LoadReport, load_segments
from .segment import INDEX_SUFFIX, LOG_SUFFIX, TIMEINDEX_SUFFIX, LogSegment

INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1
CHECKPOINT_INTERVAL_MS = 60_000  # how often flushes rewrite the shared recovery-point checkpoint


def now_ms() -> int:
    return time.time_ns() // 1_000_000


_now_ms = now_ms  # methods take a ``now_ms`` argument that shadows the function
# baseOffset, batchLength, partitionLeaderEpoch, magic, crc, attributes, lastOffsetDelta, baseTimestamp,
# maxTimestamp, producerId, producerEpoch, baseSequence, recordsCount
_HEADER = struct.Struct(">qiibIhiqqqhii")


class AppendResult(NamedTuple):  # a tuple: built on every append, in a third of a frozen dataclass's time
    base_offset: int
    last_offset: int
    log_append_time: int  # -1 for CreateTime topics
    record_count: int
    batch_count: int
    size: int


def parse_partition_dir(path: str) -> tuple[str, int]:
    """``/data/orders-3`` -> ("orders", 3)."""
    name = os.path.basename(os.path.normpath(path))
    topic, _, partition = name.rpartition("-")
    if not topic or not partition.isdigit():
        raise ValueError(f"{path!r} is not a <topic>-<partition> directory")
    return topic, int(partition)


def as_u8(buf) -> np.ndarray:
    if isinstance(buf, np.ndarray):
        return buf.reshape(-1).view(np.uint8)
    return np.frombuffer(buf, np.uint8)


class _Background:
    """One thread per process for segment fdatasyncs after a roll (each job opens its files when it runs)."""

    def __init__(self):
        self._pid = -1
        self._jobs: list = []
        self._cond = threading.Condition()

    def submit(self, job: Callable[[], None]) -> None:
        with self._cond:
            if self._pid != os.getpid():
                self._pid = os.getpid()
                self._jobs = []
                threading.Thread(target=self._run, name="log-flush", daemon=True).start()
            self._jobs.append(job)
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._jobs:
                    self._cond.wait()
                job = self._jobs[0]
            try:
                job()
            finally:
                with self._cond:
                    self._jobs.pop(0)
                    self._cond.notify_all()

    def drain(self) -> None:
        with self._cond:
            while self._jobs and self._pid == os.getpid():
                self._cond.wait(1.0)


BACKGROUND = _Background()


class PartitionLog:
    """Segments of one partition. Single writer: not safe to share between threads without a lock."""

    def __init__(self, directory: str, config: LogConfig, segments: list[LogSegment], log_start: int,
                 recovery_point: int, report: LoadReport):
        self.directory = directory
        self.config = config
        self.topic, self.partition = parse_partition_dir(directory)
        self.log_dir = os.path.dirname(os.path.normpath(directory))
        self._segments = segments
        self._bases = [s.base_offset for s in segments]
        self._log_start = log_start
        self._hw: int | None = None
        self._recovery_point = min(recovery_point, self.log_end_offset)
        self._flushed_by_roll = self._recovery_point
        self._lock = threading.Lock()  # guards _flushed_by_roll (set by the background flusher)
        self._unflushed_messages = 0
        self._last_flush_ms = now_ms()
        self._last_checkpoint_ms = 0
        self._pending_deletes: list[tuple[int, list[str]]] = []
        self.load_report = report
        self.offline = False
        self.truncations = 0  # grows with every truncation: state derived from the log must be rebuilt
        self.on_offline: Callable[["PartitionLog", StorageError], None] | None = None
        # Set by a LogManager: a periodic or closing checkpoint is left to it, which writes those of all its
        # partitions together (`write_due_checkpoints`) instead of one rewrite of the shared file per partition.
        self.defer_checkpoint: Callable[["PartitionLog"], None] | None = None
        self.leader_epoch_cache = LeaderEpochCache.load(directory)
        self.leader_epoch_cache.log_end = lambda: self.log_end_offset
        self.leader_epoch_cache.truncate_from(self.log_end_offset)
        self.leader_epoch_cache.truncate_before(self._log_start)
        # compaction: below this offset the previous pass left no key twice (Kafka's cleaner checkpoint)
        self.cleaned_to = checkpoint.read_offset(os.path.join(self.log_dir, checkpoint.CLEANER_FILE),
                                                 self.topic, self.partition, 0)

    # --- opening -----------------------------------------------------------------------------------------
    @classmethod
    def open(cls, dir_path: str | os.PathLike, config: LogConfig, recover: bool = False,
             now: int | None = None) -> "PartitionLog":
        """Load (``recover=True`` after an unclean shutdown: re-validate past the recovery point)."""
        directory = os.fspath(dir_path)
        topic, partition = parse_partition_dir(directory)
        log_dir = os.path.dirname(os.path.normpath(directory))
        try:
            os.makedirs(directory, exist_ok=True)
            recovery_point = checkpoint.read_offset(os.path.join(log_dir, checkpoint.RECOVERY_POINT_FILE), topic,
                                                    partition, 0)  # 0: recovery starts at the beginning
            start = checkpoint.read_offset(os.path.join(log_dir, checkpoint.LOG_START_FILE), topic, partition, 0)
            segments, report = load_segments(directory, config, recover, recovery_point, start,
                                             now_ms() if now is None else now)
        except OSError as e:
            raise StorageError.from_os_error(f"opening {directory}", e) from e
        leo = segments[-1].next_offset
        log_start = min(max(segments[0].base_offset, start), leo)
        return cls(directory, config, segments, log_start, recovery_point if not recover else
                   min(recovery_point, leo), report)

    # --- offsets -----------------------------------------------------------------------------------------
    @property
    def active_segment(self) -> LogSegment:
        return self._segments[-1]

    @property
    def segments(self) -> list[LogSegment]:
        return list(self._segments)

    @property
    def tail(self) -> tuple[int, int, int]:
        """(base offset, bytes of batches, offset-index entries) of the segment appends go to: what a reader
        may touch of it, since its files run on past these and are cut back to them when it is rolled."""
        seg = self._segments[-1]
        return seg.base_offset, seg.size, seg.offset_index.entries

    @property
    def log_end_offset(self) -> int:
        return self._segments[-1].next_offset

    @property
    def log_start_offset(self) -> int:
        return self._log_start

    @property
    def high_watermark(self) -> int:
        return self.log_end_offset if self._hw is None else self._hw

    @high_watermark.setter
    def high_watermark(self, offset: int | None) -> None:
        """Replication moves it; ``None`` makes it follow the log end again (single node)."""
        self._hw = None if offset is None else max(self._log_start, min(offset, self.log_end_offset))

    @property
    def recovery_point(self) -> int:
        return self._recovery_point

    @property
    def size_bytes(self) -> int:
        return sum(s.size for s in self._segments)

    def earliest(self) -> int:
        return self._log_start

    def latest(self, isolation_high_watermark: bool = True) -> int:
        return self.high_watermark if isolation_high_watermark else self.log_end_offset

    # --- errors ------------------------------------------------------------------------------------------
    @contextmanager
    def _disk(self, what: str) -> Iterator[None]:
        if self.offline:
            raise StorageError(f"log {self.directory} is offline", None, True)
        try:
            yield
        except OSError as e:
            raise self._disk_failed(what, e) from e

    def _disk_failed(self, what: str, e: OSError) -> StorageError:
        """The StorageError for a failed file operation; a directory-level failure takes the log offline."""
        err = StorageError.from_os_error(f"{what} {self.directory}", e)
        if err.offline:
            self.take_offline(err)
        return err

    def take_offline(self, err: StorageError | None = None) -> None:
        """Stop serving this log (its directory failed); the process keeps running."""
        if self.offline:
            return
        self.offline = True
        if self.on_offline is not None:
            self.on_offline(self, err or StorageError("log directory offline", None, True))

    # --- append ------------------------------------------------------------------------------------------
    def append(self, batches, leader_epoch: int = 0, now_ms: int | None = None) -> AppendResult:
        """Validate, assign offsets, write. Raises CorruptRecord / InvalidRecord / RecordTooLarge for a bad
        request and StorageError for the disk; in every error case nothing is visible."""
        if self.offline:  # before validating: a request to an offline log is answered with the storage error
            raise StorageError(f"log {self.directory} is offline", None, True)
        src = as_u8(batches)
        return self._append_valid(src, _validate(src, self.config.max_message_bytes, keys=self.config.compact),
                                  leader_epoch,
                                  _now_ms() if now_ms is None else now_ms)

    def _append_valid(self, src: np.ndarray, res, leader_epoch: int, now: int) -> AppendResult:
        first = self.log_end_offset
        nbytes = int(res.valid_bytes)
        if res.count == 1:  # the common case (Produce v3+ sends one batch per partition): no per-batch arrays
            _, _, _, _, _, _, delta, _, max_ts, _, _, _, count = _HEADER.unpack_from(src, 0)
            positions, sizes, lasts, max_tss = (0,), (nbytes,), (first + delta,), (max_ts,)
            records = count
        else:
            deltas = res.last_offset_delta.astype(np.int64)
            positions, sizes, max_tss = res.pos, res.size, res.max_timestamp
            lasts = first + np.cumsum(deltas + 1) - 1
            records = int(res.record_count.sum())
        last = int(lasts[-1])
        append_time = now if self.config.log_append_time else -1
        try:  # what `_disk` does, inline: this runs for every batch
            seg = self._room_for(nbytes, first, last, leader_epoch, now)
            seg.append(src, int(positions[0]), nbytes, positions, sizes, lasts, max_tss, leader_epoch,
                       append_time, now)
            self._written(seg, first, last, now)
        except OSError as e:
            raise self._disk_failed("appending to", e) from e
        return AppendResult(first, last, append_time, records, res.count, nbytes)

    def _room_for(self, nbytes: int, first: int, last: int, leader_epoch: int, now: int) -> LogSegment:
        """The segment that offsets ``first``..``last`` (``nbytes``) go to, rolled to and allocated."""
        self._maybe_roll(nbytes, last, now)
        seg = self._segments[-1]
        if not seg.active:
            seg.make_active()
        seg.ensure_room(nbytes)
        if leader_epoch > self.leader_epoch_cache.latest_epoch:
            self.leader_epoch_cache.assign(leader_epoch, first)
        return seg

    def _written(self, seg: LogSegment, first: int, last: int, now: int) -> None:
        """Offsets ``first``..``last`` are in ``seg``: the flush policy, and a failed flush takes them back."""
        self._unflushed_messages += last - first + 1
        if self._unflushed_messages >= self.config.flush_interval_messages or \
                now - self._last_flush_ms >= self.config.flush_interval_ms:
            try:
                self._flush_by_policy(now)
            except OSError:
                seg.truncate_to(first)  # not acknowledged, so not visible either
                raise

    def append_many(self, sources: list, leader_epoch: int = 0, now_ms: int | None = None) -> list:
        """``append`` for each of ``sources`` in order, as one write: each result is the AppendResult or the
        exception ``append`` would have raised for that source alone (a bad request fails alone; a disk
        error fails every source the write held, with none of them visible, and every source after them).

        The owner calls this with the appends one pass found queued for a partition, so the roll check,
        the write and the flush decision are made once for all of them. A group never holds more than
        ``segment.bytes`` (a source that would take it past starts the next one), and a source of several
        batches (Produce before v3) is written on its own, in its place."""
        if self.offline:
            return [StorageError(f"log {self.directory} is offline", None, True)] * len(sources)
        checked: list = []
        for batches in sources:
            try:
                checked.append(self.validate(batches))
            except (CorruptRecord, InvalidRecord, RecordTooLarge) as e:
                checked.append(e)
        return self.append_checked(checked, leader_epoch, now_ms)

    def validate(self, batches) -> tuple:
        """What ``append`` checks before writing: (the batches as uint8, their scan) for ``append_checked``,
        or CorruptRecord / InvalidRecord / RecordTooLarge."""
        src = as_u8(batches)
        return src, _validate(src, self.config.max_message_bytes, keys=self.config.compact)

    def append_checked(self, checked: list, leader_epoch: int = 0, now_ms: int | None = None) -> list:
        """``append_many`` for sources ``validate`` passed: each item is its (src, scan) pair, or an exception
        that is returned as that item's result. The owner validates first when its producer checks must
        see which batches will be written."""
        if self.offline:
            return [StorageError(f"log {self.directory} is offline", None, True)] * len(checked)
        now = _now_ms() if now_ms is None else now_ms
        out: list = [None] * len(checked)
        group: list = []  # (index, src, res) of one-batch sources written together
        room = self.config.segment_bytes
        failed = None  # once a write failed, nothing after it is written: no later batch lands before a retry
        for i, item in enumerate(checked):
            if isinstance(item, Exception) or failed is not None:
                out[i] = item if isinstance(item, Exception) else failed
                continue
            src, res = item
            nbytes = int(res.valid_bytes)
            if res.count != 1 or nbytes > room:  # it cannot join the group: the group goes first
                failed = self._append_group(group, leader_epoch, now, out)
                group, room = [], self.config.segment_bytes
                if failed is not None:
                    out[i] = failed
                    continue
            group.append((i, src, res))
            room -= nbytes
            if res.count != 1:  # several batches: written on their own
                failed = self._append_group(group, leader_epoch, now, out)
                group, room = [], self.config.segment_bytes
        if failed is None:
            self._append_group(group, leader_epoch, now, out)
        return out

    def _append_group(self, group: list, leader_epoch: int, now: int, out: list) -> StorageError | None:
        """Write `group` (one write for several); the StorageError that failed it, if one did."""
        if self.offline:  # an earlier write of the same call took the log offline
            err = StorageError(f"log {self.directory} is offline", None, True)
            for i, _, _ in group:
                out[i] = err
            return err if group else None
        if len(group) < 2:
            for i, src, res in group:
                try:
                    out[i] = self._append_valid(src, res, leader_epoch, now)
                except StorageError as e:
                    out[i] = e
                    return e
            return None
        first = nxt = self.log_end_offset
        srcs, sizes, lasts, max_tss, counts = [], [], [], [], []
        for _, src, res in group:
            _, _, _, _, _, _, delta, _, max_ts, _, _, _, count = _HEADER.unpack_from(src, 0)
            srcs.append(src)
            sizes.append(int(res.valid_bytes))
            lasts.append(nxt + delta)
            max_tss.append(max_ts)
            counts.append(count)
            nxt += delta + 1
        nbytes = sum(sizes)
        last = lasts[-1]
        append_time = now if self.config.log_append_time else -1
        try:
            seg = self._room_for(nbytes, first, last, leader_epoch, now)
            seg.append_sources(srcs, sizes, lasts, max_tss, leader_epoch, append_time, now)
            self._written(seg, first, last, now)
        except OSError as e:
            err = self._disk_failed("appending to", e)
            for i, _, _ in group:
                out[i] = err
            return err
        base = first
        for (i, _, _), size, last_i, count in zip(group, sizes, lasts, counts):
            out[i] = AppendResult(base, last_i, append_time, count, 1, size)
            base = last_i + 1
        return None

    def append_as_follower(self, batches, now_ms: int | None = None) -> AppendResult:
        """Replication: append the leader's batches as they are, offsets and leader epochs kept.

        Batches must start at or after the log end and increase; the leader-epoch cache learns each new epoch.
        Same validation (without max.message.bytes, which the leader applied) and error rules as ``append``."""
        if self.offline:
            raise StorageError(f"log {self.directory} is offline", None, True)
        now = _now_ms() if now_ms is None else now_ms
        src = as_u8(batches)
        res = _validate(src, INT32_MAX, deep=False)  # a compacted leader's batches hold fewer records than offsets
        bases = res.base_offset
        lasts = bases + res.last_offset_delta.astype(np.int64)
        first = int(bases[0])
        if first < self.log_end_offset or (len(bases) > 1 and not (bases[1:] > lasts[:-1]).all()):
            raise InvalidRecord(f"follower batches must start at or after {self.log_end_offset} and increase")
        epochs = res.leader_epoch
        nbytes = int(res.valid_bytes)
        last = int(lasts[-1])
        with self._disk("appending to"):
            self._maybe_roll(nbytes, last, now)
            seg = self._segments[-1]
            if not seg.active:
                seg.make_active()
            seg.ensure_room(nbytes)
            for i in range(res.count):
                if int(epochs[i]) > self.leader_epoch_cache.latest_epoch:
                    self.leader_epoch_cache.assign(int(epochs[i]), int(bases[i]))
            seg.append(src, int(res.pos[0]), nbytes, res.pos, res.size, lasts, res.max_timestamp, epochs, -1, now)
            self._unflushed_messages += int(res.record_count.sum())
            self._flush_by_policy(now)
        return AppendResult(first, last, -1, int(res.record_count.sum()), int(res.count), nbytes)

    def _maybe_roll(self, nbytes: int, last_offset: int, now: int) -> None:
        seg = self._segments[-1]
        if seg.size == 0:
            return
        if (not seg.fits(nbytes) or seg.index_full or now - seg.created_ms > self.config.roll_ms
                or last_offset - seg.base_offset > INT32_MAX):
            self.roll(now)

    def roll(self, now: int | None = None) -> LogSegment:
        """Start a new segment at the log end; the old one is trimmed and flushed in the background."""
        now = now_ms() if now is None else now
        old = self._segments[-1]
        if old.size == 0:
            return old
        old.close_active()  # trimmed before the new file exists: a reader seeing both sees the final size
        try:
            new = LogSegment.create(self.directory, old.next_offset, self.config, now)
        except OSError:
            try:
                old.make_active()  # keep appending here once space returns
            except OSError:
                pass  # the next append retries the roll
            raise
        self._segments.append(new)
        self._bases.append(new.base_offset)
        self._flush_in_background(old)
        old.rest()
        return new

    def _flush_in_background(self, seg: LogSegment) -> None:
        """The job opens the rolled segment's files when it runs: rolls waiting behind a slow flush hold no
        descriptors, and a segment deleted meanwhile (retention, DeleteRecords, truncation) gives its disk
        space back at once instead of when the queue reaches it. Such a segment is not flushed, and the
        recovery point does not move for it; nor for any segment rolled before a truncation, whose offsets
        may have been written again since."""
        upto, truncations = seg.next_offset, self.truncations
        log_path, indexes = seg.log_path, (seg.index_path, seg.timeindex_path)

        def job() -> None:
            if not _sync_path(log_path):
                return  # deleted since the roll, or the sync failed: the next foreground flush reports that
            for path in indexes:
                _sync_path(path)  # indexes are hints: recovery rebuilds one that did not reach the disk
            with self._lock:
                if self.truncations == truncations:
                    self._flushed_by_roll = max(self._flushed_by_roll, upto)

        BACKGROUND.submit(job)

    # --- flushing ----------------------------------------------------------------------------------------
    def _flush_due(self, now: int) -> bool:
        return self._unflushed_messages >= self.config.flush_interval_messages or bool(
            self._unflushed_messages and now - self._last_flush_ms >= self.config.flush_interval_ms)

    def _flush_by_policy(self, now: int) -> None:
        if self._flush_due(now):
            self._flush(now)

    def maybe_flush(self, now: int | None = None) -> None:
        """Periodic hook for the owning worker: applies flush.ms and publishes roll flushes. The owner calls
        it for every partition every 10 ms, so nothing due returns at once (`_flushed_by_roll` is read
        without the lock: a value the flusher is about to raise is seen on the next call)."""
        now = now_ms() if now is None else now
        if self._flushed_by_roll <= self._recovery_point and not self._flush_due(now):
            return
        with self._disk("flushing"):
            self._flush_by_policy(now)
            with self._lock:
                rolled = self._flushed_by_roll
            if rolled > self._recovery_point:
                self._recovery_point = rolled
                self._maybe_checkpoint(now, force=False)

    def flush(self) -> None:
        """fdatasync everything appended so far and advance the recovery point."""
        with self._disk("flushing"):
            self._flush(now_ms())

    def _flush(self, now: int, indexes: bool = False) -> None:
        BACKGROUND.drain()  # rolled segments are flushed by the background job; wait for it
        active = self._segments[-1]
        for seg in self._segments:
            if seg is active or seg.next_offset > max(self._recovery_point, self._flushed_by_roll):
                seg.flush(indexes=indexes or seg is not active)
        self._unflushed_messages = 0
        self._last_flush_ms = now
        self._recovery_point = self.log_end_offset
        self._maybe_checkpoint(now, force=False)

    def _maybe_checkpoint(self, now: int, force: bool) -> None:
        """``force``: a truncation lowered the recovery point, so it is written now, whoever opened the log."""
        if force or now - self._last_checkpoint_ms >= CHECKPOINT_INTERVAL_MS:
            self._checkpoint(now, deferrable=not force)

    def _checkpoint(self, now: int, deferrable: bool) -> None:
        """Write the recovery point to the log dir's shared checkpoint, or, when ``deferrable`` and a manager
        opened the log, leave it to the manager (`defer_checkpoint`)."""
        self._last_checkpoint_ms = now
        if deferrable and self.defer_checkpoint is not None:
            self.defer_checkpoint(self)
        else:
            checkpoint.update_offsets(os.path.join(self.log_dir, checkpoint.RECOVERY_POINT_FILE),
                                      {(self.topic, self.partition): self._recovery_point})

    # --- reading -----------------------------------------------------------------------------------------
    def _check_range(self, offset: int) -> None:
        if offset < self._log_start or offset > self.log_end_offset:
            raise OffsetOutOfRange(offset, self._log_start, self.log_end_offset)

    def read(self, offset: int, max_bytes: int, max_offset: int | None = None) -> FileSlice:
        """Whole batches from the one holding ``offset``: at least one, then up to ``max_bytes``, never a batch
        reaching ``max_offset`` (default: the high watermark). Empty at the end."""
        if self.offline:
            raise StorageError(f"log {self.directory} is offline", None, True)
        self._check_range(offset)
        limit = self.high_watermark if max_offset is None else min(max_offset, self.log_end_offset)
        if offset >= limit:
            return FileSlice.empty(offset)
        i = max(0, bisect.bisect_right(self._bases, offset) - 1)
        while True:
            found = self._segments[i].slice(offset, max_bytes, limit)
            if found is not None:
                return found
            if i + 1 >= len(self._segments):
                return FileSlice.empty(offset)
            i += 1  # compaction removed the rest of that segment: what follows `offset` starts the next one

    def offset_for_timestamp(self, timestamp: int) -> tuple[int, int, int] | None:
        """ListOffsets by time: (offset, timestamp, leader epoch of its batch) of the first record from the
        log start whose timestamp is >= ``timestamp``, when it lies below the high watermark; ``None``
        otherwise."""
        hw = self.high_watermark
        for seg in self._segments:
            if seg.max_timestamp < timestamp or seg.next_offset <= self._log_start:
                continue
            found = seg.find_timestamp(timestamp, self._log_start)
            if found is not None:
                return None if found[0] >= hw else found
        return None

    def offset_for_max_timestamp(self) -> tuple[int, int, int] | None:
        """ListOffsets -3 (KIP-734): ``offset_for_timestamp`` of the largest timestamp held, so the first
        record holding it; ``None`` when the log holds no record."""
        timestamp = self.max_timestamp()[0]
        return None if timestamp < 0 else self.offset_for_timestamp(timestamp)

    def max_timestamp(self) -> tuple[int, int]:
        """(timestamp, last offset of its batch) of the largest timestamp held; (-1, -1) when empty."""
        best = (-1, -1)
        for seg in self._segments:
            if seg.max_timestamp > best[0] and seg.next_offset > self._log_start:
                best = (seg.max_timestamp, seg.offset_of_max_timestamp)
        return best

    # --- truncation, deletion, retention -----------------------------------------------------------------
    def truncate_to(self, offset: int) -> None:
        """Remove every batch holding an offset >= ``offset`` (a follower diverged from its leader)."""
        if offset >= self.log_end_offset:
            return
        with self._disk("truncating"):
            if offset <= self._segments[0].base_offset or offset < self._log_start:
                self._truncate_fully(offset)
                return
            while len(self._segments) > 1 and self._segments[-1].base_offset > offset:
                self._delete_now(self._segments.pop())
                self._bases.pop()
            seg = self._segments[-1]
            seg.make_active()
            seg.truncate_to(offset)
            self._after_truncation()

    def restart_at(self, offset: int) -> None:
        """Drop every segment and continue empty at ``offset`` (a follower whose whole log lies before its
        leader's log start)."""
        with self._disk("restarting"):
            self._truncate_fully(offset)

    def _truncate_fully(self, offset: int) -> None:
        for seg in self._segments:
            self._delete_now(seg)
        self._segments = [LogSegment.create(self.directory, offset, self.config, now_ms())]
        self._bases = [offset]
        self._log_start = offset
        self._write_log_start()
        self.leader_epoch_cache.clear()
        self._after_truncation()

    def _after_truncation(self) -> None:
        self.truncations += 1
        leo = self.log_end_offset
        self.leader_epoch_cache.truncate_from(leo)
        if self._hw is not None:
            self._hw = min(self._hw, leo)
        self._recovery_point = min(self._recovery_point, leo)
        self.cleaned_to = min(self.cleaned_to, leo)
        with self._lock:
            self._flushed_by_roll = min(self._flushed_by_roll, leo)
        self._maybe_checkpoint(now_ms(), force=True)

    def delete_records_before(self, offset: int) -> int:
        """DeleteRecords: move the log start offset to ``offset`` (-1 = high watermark); returns the new start."""
        hw = self.high_watermark
        if offset == -1:
            offset = hw
        if offset < 0 or offset > hw:
            raise OffsetOutOfRange(offset, self._log_start, hw)
        with self._disk("deleting records of"):
            if offset > self._log_start:
                self._log_start = offset
                self._write_log_start()
                self.leader_epoch_cache.truncate_before(offset)
                self._delete_segments(lambda seg, nxt: nxt <= self._log_start, now_ms())
        return self._log_start

    def _write_log_start(self) -> None:
        checkpoint.update_offsets(os.path.join(self.log_dir, checkpoint.LOG_START_FILE),
                                  {(self.topic, self.partition): self._log_start})

    def enforce_retention(self, now_ms: int | None = None) -> int:
        """Delete whole segments below the high watermark that retention.ms / retention.bytes / the log start
        offset no longer need; returns how many were deleted."""
        now = _now_ms() if now_ms is None else now_ms
        with self._disk("enforcing retention on"):
            deleted = self._delete_segments(lambda seg, nxt: nxt <= self._log_start, now)
            if not self.config.delete:
                self._remove_due_files(now)
                return deleted  # cleanup.policy=compact alone: only the cleaner removes records
            if self.config.retention_ms >= 0:
                deleted += self._delete_segments(
                    lambda seg, nxt: now - largest_time(seg) > self.config.retention_ms, now)
            if self.config.retention_bytes >= 0:
                excess = [self.size_bytes - self.config.retention_bytes]

                def too_big(seg: LogSegment, nxt: int) -> bool:
                    if excess[0] - seg.size < 0:
                        return False
                    excess[0] -= seg.size
                    return True

                deleted += self._delete_segments(too_big, now)
            self._remove_due_files(now)
        return deleted

    def _delete_segments(self, predicate: Callable[[LogSegment, int], bool], now: int) -> int:
        """Delete the oldest segments while ``predicate(segment, next_offset)`` holds and they lie below the
        high watermark; the active segment is rolled first when it is itself deletable."""
        deleted = 0
        hw = self.high_watermark
        while self._segments:
            seg = self._segments[0]
            is_active = len(self._segments) == 1
            nxt = seg.next_offset if is_active else self._segments[1].base_offset
            if seg.size == 0 or nxt > hw or not predicate(seg, nxt):
                break
            if is_active:
                self.roll(now)
            self._segments.pop(0)
            self._bases.pop(0)
            self._log_start = max(self._log_start, self._segments[0].base_offset)
            self._schedule_delete(seg, now)
            deleted += 1
        if deleted:
            self._write_log_start()
            self.leader_epoch_cache.truncate_before(self._log_start)
        return deleted

    def _schedule_delete(self, seg: LogSegment, now: int) -> None:
        paths = seg.rename_deleted()
        if self.config.file_delete_delay_ms <= 0:
            _unlink_all(paths)
        else:
            self._pending_deletes.append((now + self.config.file_delete_delay_ms, paths))

    def _delete_now(self, seg: LogSegment) -> None:
        _unlink_all(seg.rename_deleted())

    def _remove_due_files(self, now: int) -> None:
        due = [p for t, p in self._pending_deletes if t <= now]
        self._pending_deletes = [(t, p) for t, p in self._pending_deletes if t > now]
        for paths in due:
            _unlink_all(paths)

    # --- compaction --------------------------------------------------------------------------------------
    def apply_cleaning(self, outcome: "_cleaner.Outcome") -> bool:
        """Swap in what a cleaner pass wrote (see ``cleaner``); False, with nothing changed, when the log moved
        meanwhile (truncated, its segments deleted or rolled away) and the pass no longer applies.

        Each cleaned segment replaces its group of segments so that a reader always finds the offsets it asks
        for: the new indexes, then the new ``.log``, are renamed over the first member's files (a reader
        holding the old files keeps reading them; one that pairs an old log with a new index finds the index
        entries wrong and walks from the segment start); only then do the other members go. A crash between
        those renames is finished at load from the marker written before them (``finish_interrupted_swap``)."""
        plan = outcome.plan
        if self.offline or plan.truncations != self.truncations:
            return False
        for action in outcome.actions:
            if not self._members_present(action.members):
                return False
        with self._disk("compacting"):
            for action in outcome.actions:
                self._swap_cleaned(action)
            shutil.rmtree(os.path.join(self.directory, _cleaner.CLEANING_DIR), ignore_errors=True)
            self.cleaned_to = max(self.cleaned_to, outcome.upto)
            checkpoint.update_offsets(os.path.join(self.log_dir, checkpoint.CLEANER_FILE),
                                      {(self.topic, self.partition): self.cleaned_to})
        return True

    def _members_present(self, members: list[int]) -> bool:
        if members[0] not in self._bases:
            return False
        i = self._bases.index(members[0])
        return self._bases[i:i + len(members)] == members and i + len(members) < len(self._bases)

    def _swap_cleaned(self, action: "_cleaner.Action") -> None:
        i = self._bases.index(action.members[0])
        old = self._segments[i:i + len(action.members)]
        if action.path is None:
            for seg in old:
                self._delete_now(seg)
            del self._segments[i:i + len(old)], self._bases[i:i + len(old)]
            fsync_dir(self.directory)
            return
        marker = os.path.join(self.directory, _cleaner.SWAP_MARKER)
        checkpoint.write_atomic(marker, json.dumps({"members": action.members}).encode())
        fsync_dir(self.directory)
        work, name = os.path.split(action.path)
        stem = name[:-len(LOG_SUFFIX)]
        for suffix in (INDEX_SUFFIX, TIMEINDEX_SUFFIX):
            os.replace(os.path.join(work, stem + suffix), os.path.join(self.directory, stem + suffix))
        os.replace(action.path, os.path.join(self.directory, stem + LOG_SUFFIX))
        old[0].close()  # its paths now name the new files, which stay
        for seg in old[1:]:
            self._delete_now(seg)
        fsync_dir(self.directory)
        os.unlink(marker)
        new = LogSegment.open(self.directory, action.members[0], self.config)
        new.load_tail()
        new.rest()
        self._segments[i:i + len(old)] = [new]
        self._bases[i:i + len(old)] = [new.base_offset]

    # --- shutdown ----------------------------------------------------------------------------------------
    def close(self, clean: bool = True) -> None:
        """``clean``: flush, trim the active segment and checkpoint, so the next open needs no recovery (a
        manager that opened the log writes that checkpoint: `LogManager.close_partitions`).
        ``clean=False`` only releases files (what a crash leaves behind, for tests)."""
        try:
            if clean and not self.offline:
                with self._disk("closing"):
                    self.active_segment.close_active()
                    self._flush(now_ms(), indexes=True)
                    self._checkpoint(now_ms(), deferrable=True)
                    _unlink_all([p for _, p in self._pending_deletes for p in p])
                    self._pending_deletes = []
        finally:
            for seg in self._segments:
                seg.close()


def _validate(src: np.ndarray, max_message_bytes: int, deep: bool = True, keys: bool = False):
    """``keys``: the topic is compacted, where every record needs a key (Kafka refuses the batch otherwise)."""
    res = hotpath.scan_batches(src, max_batch_bytes=max_message_bytes, deep=deep)
    if res.error != hotpath.ScanError.OK:
        err = hotpath.ScanError(res.error)
        at = f"batch at byte {res.error_pos}"
        if err == hotpath.ScanError.CRC_MISMATCH:
            raise CorruptRecord(f"CRC-32C mismatch in {at}")
        if err == hotpath.ScanError.TOO_LARGE:
            raise RecordTooLarge(f"{at} exceeds max.message.bytes={max_message_bytes}")
        raise InvalidRecord(f"{err.name.lower()} {at}")
    if res.count == 0:
        raise InvalidRecord("no record batch in the request")
    if keys:
        _require_keys(src, res)
    return res


def _require_keys(src: np.ndarray, res) -> None:
    for i in range(res.count):
        try:
            cols, _ = hotpath.scan_records(*_cleaner.records_section(src, res, i), int(res.record_count[i]))
        except ValueError as e:
            raise InvalidRecord(f"the records of the batch at byte {int(res.pos[i])} cannot be read: {e}") from None
        if (cols[FLAGS] & KEY_NULL).any():
            raise InvalidRecord("a compacted topic cannot accept a record without a key")


def largest_time(seg: LogSegment) -> int:
    """Kafka's rule: the largest record timestamp, or the file's mtime when batches carry none."""
    if seg.max_timestamp > 0:
        return seg.max_timestamp
    return int(os.stat(seg.log_path).st_mtime * 1000)


def _sync_path(path: str) -> bool:
    """``fdatasync_path``, False when the file cannot be opened (gone) or synced."""
    try:
        fdatasync_path(path)
    except OSError:
        return False
    return True


def _unlink_all(paths: list[str]) -> None:
    for p in paths:
        try:
            os.unlink(p)
        except FileNotFoundError:
            pass
