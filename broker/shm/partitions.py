"""Partition-state table: the LEO/HW/log-start/epoch of every partition, in shared memory.

Each slot is written by exactly one process, the I/O worker that owns the partition, and read
by every network worker, which serves Fetch straight from the segment files up to the published
high watermark.  Readers never lock: each slot carries a seqlock word that is odd while its owner
writes, so a reader retries until it sees the same even value before and after copying the
fields.  Because the word grows by 2 per publish it is also the slot's change counter: a network
worker parked on a long-poll fetch remembers it and compares.

Waking parked fetches: worker ``w`` sets byte ``[slot, w]`` of the watch matrix for each slot it
waits on, issues a fence (see ``barrier.py``) and re-checks the counters before sleeping on its
own doorbell; after each publish the owner reads the slot's row and rings the doorbells of the
workers whose byte is set (after a fence: see ``barrier.py``).  Only those workers wake, and only
for slots they care about.

Layout: see :mod:`broker.shm.layout` ("Partition-state table").
"""

from __future__ import annotations

import os
import time
from typing import Iterable, NamedTuple

from broker.shm import layout
from broker.shm.barrier import fence
from broker.shm.doorbell import Doorbell, open_bells
from broker.shm.region import SharedRegion, unique_name

_pack_u64 = layout.U64.pack_into
_unpack_u64 = layout.U64.unpack_from
_pack_fields = layout.SLOT_FIELDS.pack_into
_unpack_fields = layout.SLOT_FIELDS.unpack_from
_SLOTS = layout.PART_SLOTS_START
_SLOT = layout.PART_SLOT_SIZE
_FIELDS = layout.SLOT_OFF_FIELDS
_SPIN = 64  # retries before yielding the CPU to a (possibly preempted) writer
_BUSY_AFTER_S = 0.05  # odd for this long: the owner died mid-publish


class SlotBusy(Exception):
    """A slot stayed mid-update (its owner died while publishing); retriable for clients."""

    error_code = 5  # LEADER_NOT_AVAILABLE


NO_TAIL = (-1, 0, 0)  # the tail fields of a slot whose owner has not published one


class PartitionState(NamedTuple):
    log_end_offset: int
    high_watermark: int
    log_start_offset: int
    leader_epoch: int
    generation: int
    tail_base: int = -1  # the segment appended to: its base offset, bytes of batches, offset-index entries
    tail_bytes: int = 0
    tail_index: int = 0

    @property
    def tail(self) -> tuple[int, int, int] | None:
        """(base offset, bytes, index entries) of the segment the owner appends to, if published."""
        return None if self.tail_base < 0 else (self.tail_base, self.tail_bytes, self.tail_index)


class PartitionTable:
    """Fixed-size table; pickles as its name, forked children use the inherited object."""

    def __init__(self, region: SharedRegion, bells: list[Doorbell]):
        self._region = region
        self.name = region.name
        self._mm = region.mm
        self.slots = _unpack_u64(self._mm, layout.PART_OFF_SLOTS)[0]
        self.watchers = _unpack_u64(self._mm, layout.PART_OFF_WATCHERS)[0]
        if layout.partition_region_size(self.slots, self.watchers) != region.size:
            raise ValueError(f"partition table {self.name!r}: size does not match its header")
        self._bells = bells
        self._watch_base = layout.watch_offset(self.slots, self.watchers, 0)

    @classmethod
    def create(cls, slots: int, watchers: int = 8, name: str | None = None) -> PartitionTable:
        """A table of ``slots`` partitions and one doorbell per network worker (``watchers``)."""
        if slots < 1 or not 1 <= watchers <= 255:
            raise ValueError("need at least one slot and 1..255 watchers")
        name = name or unique_name("parts")
        size = layout.partition_region_size(slots, watchers)
        region = SharedRegion.create(name, size, layout.KIND_PARTITIONS)
        _pack_u64(region.mm, layout.PART_OFF_SLOTS, slots)
        _pack_u64(region.mm, layout.PART_OFF_WATCHERS, watchers)
        for slot in range(slots):  # an unclaimed slot reads as "no such partition yet"
            _pack_fields(region.mm, _SLOTS + slot * _SLOT + _FIELDS, 0, 0, 0, -1, 0, *NO_TAIL)
        return cls(region, open_bells(region, [f"{name}.w{w}" for w in range(watchers)], create=True))

    @classmethod
    def attach(cls, name: str) -> PartitionTable:
        region = SharedRegion.attach(name, layout.KIND_PARTITIONS)
        watchers = _unpack_u64(region.mm, layout.PART_OFF_WATCHERS)[0]
        return cls(region, open_bells(region, [f"{name}.w{w}" for w in range(watchers)], create=False))

    def close(self) -> None:
        for bell in self._bells:
            bell.close()
        self._region.close()

    def unlink(self) -> bool:
        """Remove the segment and doorbell names (creator only)."""
        done = self._region.unlink()
        for bell in self._bells:
            bell.unlink()
        return done

    def __enter__(self) -> PartitionTable:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
        self.unlink()

    def __reduce__(self):
        return (PartitionTable.attach, (self.name,))

    def _offset(self, slot: int) -> int:
        if not 0 <= slot < self.slots:
            raise IndexError(f"partition slot {slot} out of range 0..{self.slots - 1}")
        return _SLOTS + slot * _SLOT

    # -- owner (one I/O worker per slot) -----------------------------------------------------
    def _write(self, slot: int, off: int, fields: tuple) -> int:
        mm = self._mm
        seq = _unpack_u64(mm, off)[0]
        odd = (seq + 1) | 1  # also recovers a slot left odd by an owner that died mid-write
        _pack_u64(mm, off, odd)
        _pack_fields(mm, off + _FIELDS, *fields)
        _pack_u64(mm, off, odd + 1)
        fence()
        # Wake parked fetches: read the slot's watch row after the seq store (see module doc).
        row = self._watch_base + slot * self.watchers
        end = row + self.watchers
        hit = mm.find(b"\x01", row, end)
        while hit >= 0:
            self._bells[hit - row].ring()
            hit = mm.find(b"\x01", hit + 1, end)
        return odd + 1

    def publish(self, slot: int, leo: int, hw: int, log_start: int, epoch: int,
                tail: tuple[int, int, int] = NO_TAIL) -> int:
        """Publish new offsets for a slot this process owns, and ``tail``: (base offset, bytes of batches,
        offset-index entries) of the segment it appends to; returns the slot's new version."""
        off = self._offset(slot)
        generation = _unpack_u64(self._mm, off + layout.SLOT_OFF_GENERATION)[0]
        return self._write(slot, off, (leo, hw, log_start, epoch, generation, *tail))

    def claim(
        self, slot: int, leo: int = 0, hw: int = 0, log_start: int = 0, epoch: int = 0
    ) -> int:
        """Take a slot for a new topic incarnation: bump its generation so readers holding the
        old one notice the partition was deleted/recreated; returns the new generation."""
        off = self._offset(slot)
        generation = _unpack_u64(self._mm, off + layout.SLOT_OFF_GENERATION)[0] + 1
        self._write(slot, off, (leo, hw, log_start, epoch, generation, *NO_TAIL))
        return generation

    # -- readers (any process) ---------------------------------------------------------------
    def version(self, slot: int) -> int:
        """The slot's change counter (seqlock word); differs after every publish."""
        return _unpack_u64(self._mm, self._offset(slot))[0]

    def read_versioned(self, slot: int) -> tuple[int, PartitionState]:
        """A consistent snapshot and the version it belongs to."""
        off = self._offset(slot)
        mm = self._mm
        tries = 0
        deadline = 0.0
        while True:
            s1 = _unpack_u64(mm, off)[0]
            if not s1 & 1:
                fields = _unpack_fields(mm, off + _FIELDS)
                if _unpack_u64(mm, off)[0] == s1:
                    return s1, PartitionState._make(fields)
            tries += 1
            if tries > _SPIN:
                now = time.monotonic()
                if not deadline:
                    deadline = now + _BUSY_AFTER_S
                elif now > deadline:
                    raise SlotBusy(f"partition slot {slot} stuck mid-update")
                os.sched_yield()

    def read(self, slot: int) -> PartitionState:
        """``(log_end_offset, high_watermark, log_start_offset, leader_epoch, generation)``."""
        return self.read_versioned(slot)[1]

    # -- long-poll wakeups (network worker ``watcher``) --------------------------------------
    def fileno(self, watcher: int) -> int:
        """Selectable that becomes readable when a watched slot of ``watcher`` is published."""
        return self._bells[watcher].fileno()

    def watch(self, watcher: int, versions: dict[int, int]) -> bool:
        """Announce that ``watcher`` sleeps until one of ``versions`` (slot -> version seen)
        changes.  False means one already changed: nothing is left announced, do not sleep.
        After waking call :meth:`unwatch` with the same slots."""
        if not 0 <= watcher < self.watchers:
            raise IndexError(f"watcher {watcher} out of range")
        mm = self._mm
        base = self._watch_base + watcher
        for slot in versions:
            self._offset(slot)
            mm[base + slot * self.watchers] = 1
        fence()
        for slot, seen in versions.items():
            if self.version(slot) != seen:
                self.unwatch(watcher, versions)
                return False
        return True

    def unwatch(self, watcher: int, slots: Iterable[int]) -> None:
        mm = self._mm
        base = self._watch_base + watcher
        for slot in slots:
            mm[base + slot * self.watchers] = 0
        self.drain_bell(watcher)

    def drain_bell(self, watcher: int) -> None:
        """Empty ``watcher``'s bell: rings already seen, and any an owner sends late (it read a flag
        before ``unwatch`` cleared it), so a selector waiting on ``fileno`` does not stay readable."""
        self._bells[watcher].drain()

    def wait_change(
        self, watcher: int, versions: dict[int, int], timeout: float | None
    ) -> list[int]:
        """Block until a watched slot changes or ``timeout``; returns the changed slots."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            changed = [s for s, seen in versions.items() if self.version(s) != seen]
            if changed:
                return changed
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return []
            if self.watch(watcher, versions):
                try:
                    self._bells[watcher].wait(remaining)
                finally:
                    self.unwatch(watcher, versions)
