"""Single-producer/single-consumer ring of variable-length messages in shared memory.

Network workers hand requests to I/O workers through one ring per (network worker, I/O worker)
pair and get completions back through another.  The byte layout, the entry states and the
publish/consume order are documented in :mod:`broker.shm.layout`; in short, the producer writes
payload, then length/kind, then the entry's commit word, then the head counter, and the consumer
reads them in the opposite order, so an entry is never visible before it is complete and a
producer killed mid-write leaves nothing behind.

Both ends are the same class; a process only uses one side's methods.  The producer side is
``try_put``/``put_batch``/``reserve``+``commit``/``wait_space``; the consumer side is
``peek``/``peek_batch``/``advance``/``wait``.  ``try_put`` returns False when the ring is full —
the caller stops reading from that connection until ``wait_space`` (or its ``space_fileno()`` in a
selector) says there is room: backpressure, never a dropped or partial message.

Sleeping: a side that runs out of work stores a ticket in its ``*_sleep`` word, issues
:func:`barrier.fence` and re-checks the other counter before sleeping on a doorbell; the other
side publishes its counter, issues the same fence, then reads that word and rings the doorbell
once per ticket.  The two fences close the store->load reordering window, so no wakeup is lost
(see ``barrier.py``).
"""

from __future__ import annotations

import os
import time
import weakref
from typing import Iterable, NamedTuple

import numpy as np

from broker.shm import layout
from broker.shm.barrier import fence
from broker.shm.doorbell import Doorbell, open_bells
from broker.shm.region import SharedRegion, unique_name
from hotpath import scan_ring_entries

# An empty ring whose next entry would start this far into its area (and fits in front of it) pads the
# rest of the lap and starts at the front: a producer and a consumer that keep up then reuse the same few
# pages, warm in the caches and the TLB, instead of walking megabytes of area (`Ring._rewind`).
REWIND_AT = 256 << 10
_HDR = layout.ENTRY_HEADER
_BASE = layout.RING_HEADER_SIZE  # offset of the data area in the mapping
_PAD = layout.KIND_PAD
_OFF_HEAD = layout.RING_OFF_HEAD
_OFF_TAIL = layout.RING_OFF_TAIL
_OFF_PSLEEP = layout.RING_OFF_PRODUCER_SLEEP
_OFF_CSLEEP = layout.RING_OFF_CONSUMER_SLEEP
_OFF_FULL = layout.RING_OFF_FULL_EVENTS
# Hot paths pack straight into the mmap object (cheaper than into a memoryview of it).
_pack_u64 = layout.U64.pack_into
_unpack_u64 = layout.U64.unpack_from
_pack_pair = layout.U32_PAIR.pack_into
_unpack_pair = layout.U32_PAIR.unpack_from

_live_rings: weakref.WeakSet[Ring] = weakref.WeakSet()


class MessageTooLarge(ValueError):
    """A single message cannot fit in the ring even when it is empty."""

    error_code = 10  # MESSAGE_TOO_LARGE


class RingStats(NamedTuple):
    capacity: int
    waiting_bytes: int  # Ring.waiting_bytes()
    full_events: int  # producer found the ring full (shared, readable from any process)
    wakeups_sent: int  # doorbell rings issued by this process


class Ring:
    """One SPSC ring.  Pickles as its name; forked children keep using the inherited object."""

    __slots__ = (
        "name", "capacity", "_region", "_mm", "_view", "_data_bell", "_space_bell",
        "_wakeups_sent", "_ticket_base", "_ticket_seq", "_reservation",
        "_head", "_tail_seen", "_rung_consumer", "_deferred", "_wake_due",
        "_tail", "_head_seen", "_peek_end", "_rung_producer", "_words", "_scan_out",
        "__weakref__",
    )  # fmt: skip

    def __init__(self, region: SharedRegion, data_bell: Doorbell, space_bell: Doorbell):
        self._region = region
        self.name = region.name
        self._mm = region.mm
        self._view = region.buf
        cap = _unpack_u64(self._mm, layout.RING_OFF_CAPACITY)[0]
        if cap % layout.ALIGN or cap < layout.MIN_RING_CAPACITY or _BASE + cap != region.size:
            raise ValueError(f"ring {self.name!r}: corrupt capacity {cap}")
        self.capacity = cap
        self._data_bell = data_bell  # producer -> consumer: "data available"
        self._space_bell = space_bell  # consumer -> producer: "space available"
        self._wakeups_sent = 0
        self._deferred = False  # see defer_wakeups()
        self._ticket_seq = 0
        self._words: np.ndarray | None = None  # int64 view of the mapping for the scan kernel
        self._scan_out: np.ndarray | None = None
        self._resync()
        _live_rings.add(self)

    def _resync(self) -> None:
        """Load both sides' private cursors from the published counters (attach, after fork)."""
        head = _unpack_u64(self._mm, _OFF_HEAD)[0]
        tail = _unpack_u64(self._mm, _OFF_TAIL)[0]
        self._head = head  # producer: next byte to write (== published head between calls)
        self._tail_seen = tail  # producer: last tail read (lower bound of the real tail)
        self._rung_consumer = 0  # producer: consumer sleep ticket already rung
        self._wake_due = 0  # producer: ticket to ring at flush_wakeup() (deferred wakeups)
        self._tail = tail  # consumer: next byte to read (== published tail between calls)
        self._head_seen = head  # consumer: last head read
        self._peek_end = tail  # consumer: end of what peek/peek_batch handed out
        self._rung_producer = 0  # consumer: producer sleep ticket already rung
        self._ticket_base = (os.getpid() & 0xFFFFFFFF) << 32  # tickets differ across processes
        self._reservation = None

    # -- lifecycle ---------------------------------------------------------------------------
    @classmethod
    def create(cls, capacity_bytes: int, name: str | None = None) -> Ring:
        """Create a ring with ``capacity_bytes`` of entry space, plus its two doorbells."""
        if capacity_bytes < layout.MIN_RING_CAPACITY or capacity_bytes % layout.ALIGN:
            raise ValueError("ring capacity must be a multiple of 8 and at least 64 bytes")
        name = name or unique_name("ring")
        region = SharedRegion.create(
            name, layout.ring_region_size(capacity_bytes), layout.KIND_RING
        )
        _pack_u64(region.mm, layout.RING_OFF_CAPACITY, capacity_bytes)
        return cls(region, *open_bells(region, [f"{name}.data", f"{name}.space"], create=True))

    @classmethod
    def attach(cls, name: str) -> Ring:
        region = SharedRegion.attach(name, layout.KIND_RING)
        return cls(region, *open_bells(region, [f"{name}.data", f"{name}.space"], create=False))

    def close(self) -> None:
        """Release this process's mapping and descriptors (the segment stays for others)."""
        self._words = None  # the array exports the mapping; drop it before unmapping
        self._data_bell.close()
        self._space_bell.close()
        self._region.close()

    def unlink(self) -> bool:
        """Remove the segment and doorbell names; only the creating process does anything."""
        done = self._region.unlink()
        self._data_bell.unlink()
        self._space_bell.unlink()
        return done

    @property
    def closed(self) -> bool:
        return self._region.closed

    @property
    def is_creator(self) -> bool:
        return self._region.is_creator

    def __enter__(self) -> Ring:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
        self.unlink()

    def __reduce__(self):
        return (Ring.attach, (self.name,))

    def __repr__(self) -> str:
        return f"Ring({self.name!r}, capacity={self.capacity})"

    # -- shared views ------------------------------------------------------------------------
    def used_bytes(self) -> int:
        """Bytes published and not yet consumed (padding included)."""
        tail = _unpack_u64(self._mm, _OFF_TAIL)[0]
        return _unpack_u64(self._mm, _OFF_HEAD)[0] - tail

    def waiting_bytes(self) -> int:
        """``used_bytes`` less a pad the consumer will skip next (the rest of a lap left behind by a rewind
        or a wrap): what the consumer still has to read. The rings' gauge shows this, so that a ring whose
        consumer keeps up does not look nearly full right after a rewind."""
        mm = self._mm
        tail = _unpack_u64(mm, _OFF_TAIL)[0]
        head = _unpack_u64(mm, _OFF_HEAD)[0]
        if tail < head:
            off = tail % self.capacity
            room = self.capacity - off
            if room < _HDR or (_unpack_pair(mm, _BASE + off + 8)[1] == _PAD
                               and _unpack_u64(mm, _BASE + off)[0] == tail + room):
                tail = min(head, tail + room)
        return head - tail

    def free_bytes(self) -> int:
        return self.capacity - self.used_bytes()

    @property
    def stats(self) -> RingStats:
        return RingStats(
            self.capacity,
            self.waiting_bytes(),
            _unpack_u64(self._mm, _OFF_FULL)[0],
            self._wakeups_sent,
        )

    def fileno(self) -> int:
        """Consumer's selectable: readable when the producer rang the "data" doorbell."""
        return self._data_bell.fileno()

    def space_fileno(self) -> int:
        """Producer's selectable: readable when the consumer rang the "space" doorbell."""
        return self._space_bell.fileno()

    def _next_ticket(self) -> int:
        self._ticket_seq = (self._ticket_seq + 1) & 0xFFFFFFFF
        return self._ticket_base | self._ticket_seq or 1

    # -- producer ----------------------------------------------------------------------------
    def try_put(self, kind: int, *parts: bytes | bytearray | memoryview) -> bool:
        """Publish one message made of ``parts`` (copied in one after another); False (nothing written) if
        the ring is full."""
        n = 0
        for part in parts:
            n += len(part)
        if kind >= _PAD or kind < 0:
            raise ValueError(f"message kind {kind} out of range")
        if self._reservation is not None:
            raise RuntimeError("try_put() while a reservation is open")
        size = (_HDR + 7 + n) & ~7
        head = self._head
        off = head % self.capacity
        if off >= REWIND_AT:
            head = self._rewind(head, off, size)
            off = head % self.capacity
        if off + size > self.capacity or head + size - self._tail_seen > self.capacity:
            off = self._make_room(size)
            if off < 0:
                return False
            head = self._head
        mm = self._mm
        pos = _BASE + off
        at = pos + _HDR
        for part in parts:
            end = at + len(part)
            mm[at:end] = part
            at = end
        _pack_pair(mm, pos + 8, n, kind)
        head += size
        _pack_u64(mm, pos, head)  # commit word: the entry's last write
        self._publish_head(head)
        return True

    def put_batch(self, kind: int, payloads: Iterable[bytes | bytearray | memoryview]) -> int:
        """Publish payloads in order until one does not fit; returns how many were published.

        The head is published and the consumer checked once for the whole batch.
        """
        if kind >= _PAD or kind < 0:
            raise ValueError(f"message kind {kind} out of range")
        mm = self._mm
        cap = self.capacity
        head = self._head
        count = 0
        for payload in payloads:
            n = len(payload)
            size = (_HDR + 7 + n) & ~7
            off = head % cap
            if not count and off >= REWIND_AT:
                head = self._rewind(head, off, size)
                off = head % cap
            if off + size > cap or head + size - self._tail_seen > cap:
                self._publish_head(head)
                off = self._make_room(size)
                head = self._head  # _make_room may have published padding
                if off < 0:
                    break
            pos = _BASE + off
            mm[pos + _HDR : pos + _HDR + n] = payload
            _pack_pair(mm, pos + 8, n, kind)
            head += size
            _pack_u64(mm, pos, head)
            count += 1
        self._publish_head(head)
        return count

    def _rewind(self, head: int, off: int, size: int) -> int:
        """The head to write an entry of ``size`` bytes at: ``head`` itself, or, when the consumer has taken
        everything, the start of the next lap, behind a pad entry over the rest of this one. The pad is
        published with the entry that follows it (its commit word is written first, as for any entry).
        Only an entry of at most ``off`` bytes rewinds: a larger one would not fit beside the pad until the
        consumer had skipped it, and the consumer cannot see it before it is published."""
        if size > off:
            return head
        tail = _unpack_u64(self._mm, _OFF_TAIL)[0]
        if tail != head:
            return head
        self._tail_seen = tail
        self._head = head = self._pad_lap(head, off)
        return head

    def _pad_lap(self, head: int, off: int) -> int:
        """Write a pad entry over the rest of the lap from ``head`` (at ``off`` in the area; fewer than
        ENTRY_HEADER bytes left is an implicit pad, nothing written) and return the next lap's start. The
        caller publishes it."""
        room = self.capacity - off
        if room >= _HDR:
            _pack_pair(self._mm, _BASE + off + 8, room - _HDR, _PAD)
            _pack_u64(self._mm, _BASE + off, head + room)
        return head + room

    def _publish_head(self, head: int) -> None:
        self._head = head
        _pack_u64(self._mm, _OFF_HEAD, head)
        fence()  # the head before the consumer's sleep word (module doc)
        ticket = _unpack_u64(self._mm, _OFF_CSLEEP)[0]
        if ticket and ticket != self._rung_consumer:
            self._ring_consumer(ticket)

    def published_head(self) -> int:
        """Producer: the head published so far (the end of the last message put)."""
        return self._head

    def consumed_past(self, position: int) -> bool:
        """Producer: whether the consumer's tail has reached ``position`` (it is done with what lies before)."""
        return _unpack_u64(self._mm, _OFF_TAIL)[0] >= position

    def defer_wakeups(self) -> None:
        """From now on puts only note that the sleeping consumer needs a wakeup; `flush_wakeup()` rings
        once for everything put since (a producer that puts several messages per event-loop pass)."""
        self._deferred = True

    def flush_wakeup(self) -> None:
        ticket = self._wake_due
        if ticket:
            self._wake_due = 0
            if ticket != self._rung_consumer:
                self._rung_consumer = ticket
                self._wakeups_sent += 1
                self._data_bell.ring()

    def _ring_consumer(self, ticket: int) -> None:
        if self._deferred:
            self._wake_due = ticket
            return
        self._rung_consumer = ticket
        self._wakeups_sent += 1
        self._data_bell.ring()

    def _make_room(self, size: int) -> int:
        """Slow path of a put: re-read the tail, pad to the end of the area if the entry
        cannot go there; return the entry's data offset or -1 when the ring is full."""
        cap = self.capacity
        if size > cap:
            raise MessageTooLarge(
                f"message of {size - _HDR} bytes exceeds ring capacity {cap - _HDR}"
            )
        mm = self._mm
        self._tail_seen = tail = _unpack_u64(mm, _OFF_TAIL)[0]
        head = self._head
        off = head % cap
        room = cap - off
        if room < size:
            # The entry can only ever go at the start of the next lap: pad as soon as the rest
            # of this lap is free, so the consumer moves there.
            if head + room - tail > cap:
                return self._full()
            head = self._pad_lap(head, off)
            self._publish_head(head)
            off = 0
        if head + size - tail > cap:
            return self._full()
        return off

    def _full(self) -> int:
        _pack_u64(self._mm, _OFF_FULL, _unpack_u64(self._mm, _OFF_FULL)[0] + 1)
        return -1

    def reserve(self, kind: int, size: int) -> memoryview | None:
        """Zero-copy put: a writable view of ``size`` payload bytes, or None if full.

        Fill it (e.g. ``sock.recv_into``) and call :meth:`commit`; nothing is visible before.
        """
        if kind >= _PAD or kind < 0:
            raise ValueError(f"message kind {kind} out of range")
        if self._reservation is not None:
            raise RuntimeError("reserve() while a reservation is open")
        off = self._make_room((_HDR + 7 + size) & ~7)
        if off < 0:
            return None
        pos = _BASE + off
        self._reservation = (pos, kind, size)
        return self._view[pos + _HDR : pos + _HDR + size]

    def commit(self, length: int | None = None) -> None:
        """Publish the open reservation, optionally shortened to ``length`` bytes."""
        if self._reservation is None:
            raise RuntimeError("commit() without reserve()")
        pos, kind, size = self._reservation
        n = size if length is None else length
        if not 0 <= n <= size:
            raise ValueError(f"commit length {n} outside reservation of {size}")
        self._reservation = None
        _pack_pair(self._mm, pos + 8, n, kind)
        head = self._head + ((_HDR + 7 + n) & ~7)
        _pack_u64(self._mm, pos, head)
        self._publish_head(head)

    def cancel(self) -> None:
        """Drop the open reservation; nothing was published."""
        self._reservation = None

    def fits(self, nbytes: int) -> bool:
        """Whether a message of ``nbytes`` could be put now (re-reads the consumer's tail)."""
        size = (_HDR + 7 + nbytes) & ~7
        cap = self.capacity
        room = cap - self._head % cap
        need = size if room >= size else room + size
        self._tail_seen = tail = _unpack_u64(self._mm, _OFF_TAIL)[0]
        return self._head + need - tail <= cap

    def prepare_space_wait(self, nbytes: int) -> bool:
        """Announce that the producer will sleep on :meth:`space_fileno` until ``nbytes`` fit;
        False means it fits already: do not sleep.  Call :meth:`finish_space_wait` after."""
        _pack_u64(self._mm, _OFF_PSLEEP, self._next_ticket())
        fence()
        if self.fits(nbytes):
            _pack_u64(self._mm, _OFF_PSLEEP, 0)
            return False
        return True

    def finish_space_wait(self) -> None:
        _pack_u64(self._mm, _OFF_PSLEEP, 0)
        self._space_bell.drain()

    def wait_space(self, nbytes: int, timeout: float | None = None) -> bool:
        """Block until a message of ``nbytes`` fits (True) or ``timeout`` passes (False)."""
        if (_HDR + 7 + nbytes) & ~7 > self.capacity:
            raise MessageTooLarge(f"message of {nbytes} bytes exceeds ring capacity")
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.fits(nbytes):
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return False
            if self.prepare_space_wait(nbytes):
                try:
                    self._space_bell.wait(remaining)
                finally:
                    self.finish_space_wait()
        return True

    # -- consumer ----------------------------------------------------------------------------
    def peek(self) -> tuple[int, memoryview] | None:
        """The oldest unconsumed message as ``(kind, view)``, or None if none is complete.

        The view stays valid until :meth:`advance`; copy it to keep it longer.
        """
        tail = self._tail
        cap = self.capacity
        mm = self._mm
        while True:
            if tail >= self._head_seen:
                self._head_seen = _unpack_u64(mm, _OFF_HEAD)[0]
                if tail >= self._head_seen:
                    return None
            off = tail % cap
            if cap - off < _HDR:  # implicit pad: too little room left for a header
                tail = self._skip(tail + cap - off)
                continue
            pos = _BASE + off
            commit = _unpack_u64(mm, pos)[0]  # the entry's first read
            n, kind = _unpack_pair(mm, pos + 8)
            end = tail + ((_HDR + 7 + n) & ~7)
            if commit != end:
                return None  # not completely written: never applied
            if kind == _PAD:
                tail = self._skip(end)
                continue
            self._peek_end = end
            return kind, self._view[pos + _HDR : pos + _HDR + n]

    def peek_batch(self, max_count: int) -> list[tuple[int, memoryview]]:
        """Up to ``max_count`` consecutive messages; :meth:`advance` consumes all of them.

        The entries are walked by one compiled call (:func:`hotpath.scan_ring_entries`), so a batch costs
        about one view per message in the interpreter.
        """
        tail = self._tail
        self._head_seen = head = _unpack_u64(self._mm, _OFF_HEAD)[0]  # once per batch
        if tail >= head:
            return []
        out = self._scan_out
        if out is None or out.shape[1] < max_count:
            self._scan_out = out = np.empty((3, max(max_count, 64)), dtype=np.int64)
        if self._words is None:
            self._words = np.frombuffer(self._mm, dtype=np.int64)
        n, end = scan_ring_entries(self._words, _BASE, self.capacity, tail, head, max_count, out, _HDR, _PAD)
        if not n:
            if end != tail:
                self._skip(end)  # only padding was seen
            return []
        self._peek_end = end
        view = self._view
        offsets, lengths, kinds = out[:, :n].tolist()
        return [
            (kind, view[pos : pos + length])
            for pos, length, kind in zip(offsets, lengths, kinds)
        ]

    def _skip(self, tail: int) -> int:
        """Consume padding right away so a producer waiting for the next lap can proceed."""
        self._tail = tail
        self._peek_end = tail
        self._publish_tail(tail)
        return tail

    def advance(self) -> None:
        """Consume what the last peek()/peek_batch() returned, freeing its space."""
        end = self._peek_end
        if end <= self._tail:
            raise RuntimeError("advance() without a peeked message")
        self._tail = end
        self._publish_tail(end)

    def _publish_tail(self, tail: int) -> None:
        _pack_u64(self._mm, _OFF_TAIL, tail)
        fence()  # the tail before the producer's sleep word (module doc)
        ticket = _unpack_u64(self._mm, _OFF_PSLEEP)[0]
        if ticket and ticket != self._rung_producer:
            self._ring_producer(ticket)

    def _ring_producer(self, ticket: int) -> None:
        self._rung_producer = ticket
        self._wakeups_sent += 1
        self._space_bell.ring()

    def has_data(self) -> bool:
        """True when the producer published bytes past our tail (possibly only padding)."""
        self._head_seen = _unpack_u64(self._mm, _OFF_HEAD)[0]
        return self._tail < self._head_seen

    def prepare_wait(self) -> bool:
        """Announce that the consumer will sleep on :meth:`fileno`; False means data is already
        there: do not sleep.  Call :meth:`finish_wait` after waking."""
        self._announce_sleep()
        fence()
        if self.has_data():
            _pack_u64(self._mm, _OFF_CSLEEP, 0)
            return False
        return True

    def _announce_sleep(self) -> None:
        """The consumer's sleep word; it takes effect for the producer only after a fence (module doc)."""
        _pack_u64(self._mm, _OFF_CSLEEP, self._next_ticket())

    def finish_wait(self, drain: bool = True) -> None:
        """Announce the consumer is awake. ``drain=False`` leaves the doorbell to whoever saw it readable
        (:meth:`drain_wakeups`): a ring left in it only makes the next wait return at once, and reading a
        bell that was not rung is a failed syscall."""
        _pack_u64(self._mm, _OFF_CSLEEP, 0)
        if drain:
            self._data_bell.drain()

    def drain_wakeups(self) -> None:
        """Consume the doorbell's pending rings (after a selector reported it readable)."""
        self._data_bell.drain()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until data is published (True) or ``timeout`` seconds pass (False)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.has_data():
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return False
            if self.prepare_wait():
                try:
                    self._data_bell.wait(remaining)
                finally:
                    self.finish_wait()
        return True


def prepare_wait_all(rings: Iterable[Ring]) -> bool:
    """Announce sleep on several consumer rings with one fence; False if any has data
    (then none is left announced).  On True, sleep on their filenos and call finish_wait.

    For a caller whose selector watches the rings' filenos and drains each doorbell it reports
    (:meth:`Ring.drain_wakeups`): no doorbell is read here."""
    rings = list(rings)
    for ring in rings:
        ring._announce_sleep()
    fence()
    if any(ring.has_data() for ring in rings):
        for ring in rings:
            ring.finish_wait(drain=False)
        return False
    return True


def _resync_after_fork() -> None:
    for ring in list(_live_rings):
        if not ring.closed:
            ring._resync()


os.register_at_fork(after_in_child=_resync_after_fork)
