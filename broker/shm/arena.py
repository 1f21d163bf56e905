"""Receive arenas: a network worker receives large Produce frames into shared memory, and the partition
owner appends the records from there, so a batch is not copied into the request ring on its way.

One arena per network worker (layout in :mod:`broker.shm.layout`). The network worker is the only writer
and the only one that knows which ranges are in use (:class:`ArenaAllocator`); I/O workers only read the
ranges that APPEND_REF messages name. A range is reused only once the frame's handler is done and every
request ring that carried a reference into it has been consumed past that message.
"""

from __future__ import annotations

import bisect
import ctypes

from broker.shm import layout
from broker.shm.region import SharedRegion, unique_name

_DATA = layout.ARENA_DATA_START


def _start(block) -> int:
    return block.start


def _address(buf) -> int:
    """Address of a writable buffer's first byte (the ctypes view is dropped at once)."""
    return ctypes.addressof(ctypes.c_char.from_buffer(buf))


class ReceiveArena:
    """The shared region; ``view(offset, length)`` is the I/O worker's way in."""

    def __init__(self, region: SharedRegion):
        self._region = region
        self.name = region.name
        self.size = region.size  # offsets run from _DATA to size

    @classmethod
    def create(cls, capacity: int) -> ReceiveArena:
        region = SharedRegion.create(unique_name("arena"), _DATA + capacity, layout.KIND_ARENA, reserve=True)
        layout.U64.pack_into(region.mm, layout.ARENA_OFF_CAPACITY, capacity)
        return cls(region)

    @classmethod
    def attach(cls, name: str) -> ReceiveArena:
        return cls(SharedRegion.attach(name, layout.KIND_ARENA))

    @property
    def mm(self):
        return self._region.mm

    def view(self, offset: int, length: int) -> memoryview | None:
        """The bytes an APPEND_REF names, or None when the range is not inside the data area."""
        if offset < _DATA or length < 0 or offset + length > self.size:
            return None
        return self._region.buf[offset:offset + length]

    def close(self) -> None:
        self._region.close()

    def unlink(self) -> bool:
        return self._region.unlink()


class Block:
    """One frame's range. ``held`` while it is being received or handled; ``refs`` are the request rings
    (and their published heads) whose consumers must move past a reference before the range is reused."""

    __slots__ = ("start", "end", "view", "refs", "held")

    def __init__(self, start: int, end: int, view: memoryview | None, refs: list, held: bool):
        self.start = start
        self.end = end
        self.view = view
        self.refs = refs
        self.held = held

    def release(self) -> None:
        """The frame's receiver/handler is done with it (references sent to owners still hold it)."""
        self.held = False
        if self.view is not None:
            try:
                self.view.release()
            except BufferError:
                pass  # something still exports it; the range's reuse does not depend on the view
            self.view = None

    def reusable(self) -> bool:
        """Checked for every live block on each allocation, so a reference seen consumed is dropped and the
        newest is looked at first: while it is pending (the usual answer) one check decides."""
        if self.held:
            return False
        refs = self.refs
        while refs:
            ring, pos = refs[-1]
            if not ring.consumed_past(pos):
                return False
            refs.pop()
        return True


class ArenaAllocator:
    """The network worker's side: hands out ranges for large frames and knows when they are free.

    ``current`` is the block whose frame is being handled; a Produce handler asks ``offset_of`` whether
    its records lie in it and, after putting an APPEND_REF in a ring, calls ``referenced(ring)``."""

    def __init__(self, arena: ReceiveArena, rings: list):
        self.arena = arena
        self._mm = arena.mm
        self._base = _address(arena.mm)
        self._end = arena.size
        self._blocks: list[Block] = []  # live blocks in address order
        self.current: Block | None = None
        # A predecessor's references may still sit in the rings: reuse nothing until they are consumed.
        pending = [(r, r.published_head()) for r in rings if not r.consumed_past(r.published_head())]
        if pending:
            self._blocks.append(Block(_DATA, self._end, None, pending, False))

    def alloc(self, size: int) -> Block | None:
        """A range of ``size`` bytes for a frame being received, or None when the arena has no room.

        The lowest gap that fits: ranges given back are taken again first, so a steady stream of frames
        keeps landing in memory the CPU caches still hold, instead of walking the whole arena. A range still
        held (a slow client's half-received frame) blocks only itself, not the ranges after it."""
        blocks = self._blocks = [b for b in self._blocks if not b.reusable()]
        start = self._fit(size)
        if start is None:
            return None
        block = Block(start, start + size, memoryview(self._mm)[start:start + size], [], True)
        bisect.insort(blocks, block, key=_start)
        return block

    def _fit(self, size: int) -> int | None:
        """Start of the lowest gap with room for ``size`` bytes."""
        at = _DATA
        for b in self._blocks:
            if b.end <= at:
                continue
            if b.start - at >= size:
                return at
            at = max(at, b.end)
        return at if self._end - at >= size else None

    def offset_of(self, view) -> int | None:
        """Offset (from the region start) of ``view`` when it lies in the frame being handled."""
        block = self.current
        if block is None or not len(view) or view.readonly:
            return None
        offset = _address(view) - self._base
        if block.start <= offset and offset + len(view) <= block.end:
            return offset
        return None

    def referenced(self, ring) -> None:
        """The current frame is referenced by the message just published on ``ring``."""
        self.current.refs.append((ring, ring.published_head()))
