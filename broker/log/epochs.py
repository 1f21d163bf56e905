"""Leader-epoch cache: which leader epoch started at which offset (KIP-101/279).

Followers use it to find where their log diverges from the leader's (OffsetForLeaderEpoch, Fetch's
divergingEpoch). It is persisted to ``leader-epoch-checkpoint`` on every change and truncated together with
the log, so after any truncation or restart it never names an offset the log does not hold. Owned by the
partition's writer process.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from .checkpoint import CheckpointError, LEADER_EPOCH_FILE, read_epochs, write_epochs

UNDEFINED_EPOCH = -1
UNDEFINED_OFFSET = -1


class LeaderEpochCache:
    def __init__(self, partition_dir: str | os.PathLike, entries: list[tuple[int, int]] | None = None,
                 log_end: Callable[[], int] | None = None):
        self.path = Path(partition_dir) / LEADER_EPOCH_FILE
        self._entries: list[tuple[int, int]] = list(entries or [])
        self.log_end = log_end  # where the latest epoch ends; set by the owning log

    @classmethod
    def load(cls, partition_dir: str | os.PathLike) -> "LeaderEpochCache":
        """Read the checkpoint; an unreadable one is dropped (it is rebuilt as new epochs are assigned)."""
        cache = cls(partition_dir)
        try:
            entries = read_epochs(cache.path)
        except CheckpointError:
            entries = []
        # keep only a strictly increasing prefix in both epoch and offset
        for epoch, offset in entries:
            if cache._entries and (epoch <= cache._entries[-1][0] or offset < cache._entries[-1][1]):
                break
            cache._entries.append((epoch, offset))
        return cache

    @property
    def entries(self) -> list[tuple[int, int]]:
        return list(self._entries)

    @property
    def latest_epoch(self) -> int:
        return self._entries[-1][0] if self._entries else UNDEFINED_EPOCH

    def assign(self, epoch: int, start_offset: int) -> bool:
        """Record that ``epoch`` starts at ``start_offset``; returns True when the cache changed.

        As in Kafka, a new entry removes every entry it conflicts with (same or larger epoch, or an equal or
        larger start offset), so the cache stays strictly increasing in both columns.
        """
        if epoch < 0:
            return False
        if self._entries and self._entries[-1][0] == epoch and self._entries[-1][1] <= start_offset:
            return False
        if self._entries and epoch < self._entries[-1][0] and start_offset >= self._entries[-1][1]:
            return False  # a stale epoch arriving after a newer one; ignore it
        self._entries = [(e, o) for e, o in self._entries if e < epoch and o < start_offset]
        self._entries.append((epoch, start_offset))
        self._flush()
        return True

    def end_offset_for(self, epoch: int, log_end_offset: int | None = None) -> tuple[int, int]:
        """OffsetForLeaderEpoch: (largest known epoch <= ``epoch``, the offset where it ended); the latest
        epoch ends at the log end (``log_end_offset``, default: the owning log's)."""
        if log_end_offset is None:
            log_end_offset = self.log_end() if self.log_end is not None else UNDEFINED_OFFSET
        if not self._entries or epoch < self._entries[0][0]:
            return UNDEFINED_EPOCH, UNDEFINED_OFFSET
        if epoch >= self._entries[-1][0]:
            return self._entries[-1][0], log_end_offset
        for i in range(len(self._entries) - 1, -1, -1):
            e, _ = self._entries[i]
            if e <= epoch:
                return e, self._entries[i + 1][1]
        return UNDEFINED_EPOCH, UNDEFINED_OFFSET

    def epoch_for_offset(self, offset: int) -> int:
        """Epoch of the leader that wrote ``offset`` (UNDEFINED_EPOCH if unknown)."""
        found = UNDEFINED_EPOCH
        for e, o in self._entries:
            if o > offset:
                break
            found = e
        return found

    def truncate_from(self, offset: int) -> None:
        """Drop entries starting at or after ``offset`` (the log was truncated to ``offset``)."""
        kept = [(e, o) for e, o in self._entries if o < offset]
        if kept != self._entries:
            self._entries = kept
            self._flush()

    def truncate_before(self, offset: int) -> None:
        """Log start moved to ``offset``: drop older entries, keeping the epoch in force at ``offset``."""
        if not self._entries or self._entries[0][1] >= offset:
            return
        older = [(e, o) for e, o in self._entries if o <= offset]
        newer = [(e, o) for e, o in self._entries if o > offset]
        self._entries = [(older[-1][0], offset)] + newer
        self._flush()

    def clear(self) -> None:
        self._entries = []
        self._flush()

    def _flush(self) -> None:
        write_epochs(self.path, self._entries)
