"""Receive arena: a range is never handed out again while its frame is being handled or a reference to it
still waits in a request ring, and every range comes back once both are over."""

from __future__ import annotations

import random
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.shm import layout
from broker.shm.arena import ArenaAllocator, ReceiveArena
from broker.shm.ring import Ring
from netio.codec.frame import DIRECT_MIN, FrameReader

DATA = layout.ARENA_DATA_START


@pytest.fixture
def arena():
    a = ReceiveArena.create(4096)
    yield a
    a.close()
    a.unlink()


def consume_one(ring: Ring) -> None:
    assert ring.peek() is not None
    ring.advance()


def test_view_is_bounded_to_the_data_area(arena):
    assert len(arena.view(DATA, 4096)) == 4096
    assert arena.view(0, 8) is None  # the preamble
    assert arena.view(DATA + 4090, 7) is None
    assert arena.view(DATA, -1) is None


def test_an_attached_arena_sees_the_received_bytes(arena):
    with Ring.create(1024) as ring:
        alloc = ArenaAllocator(arena, [ring])
        block = alloc.alloc(100)
        block.view[:] = bytes(range(100))
        other = ReceiveArena.attach(arena.name)
        try:
            assert bytes(other.view(block.start, 100)) == bytes(range(100))
        finally:
            other.close()
        block.release()


def test_a_reference_holds_its_range_until_the_owner_consumed_it(arena):
    with Ring.create(1024) as ring:
        alloc = ArenaAllocator(arena, [ring])
        block = alloc.alloc(4096)
        assert alloc.alloc(1) is None  # the whole arena is one frame
        alloc.current = block
        assert alloc.offset_of(block.view[100:200]) == block.start + 100
        assert ring.try_put(ring_kind := 5, b"ref")
        alloc.referenced(ring)
        alloc.current = None
        block.release()
        assert alloc.alloc(1) is None  # handler done, but the owner has not read the records yet
        assert ring.peek()[0] == ring_kind
        ring.advance()
        assert alloc.alloc(4096) is not None


def test_a_held_range_does_not_hold_back_the_ones_after_it(arena):
    with Ring.create(1024) as ring:
        alloc = ArenaAllocator(arena, [ring])
        slow = alloc.alloc(1000)  # a frame a slow client is still sending
        done = alloc.alloc(3000)
        assert alloc.alloc(1000) is None
        done.release()
        again = alloc.alloc(3000)
        assert again is not None and again.start >= slow.end
        slow.release()


def test_a_range_given_back_is_taken_again_first(arena):
    """Frames one after another reuse the same (cache-warm) range rather than walking the arena."""
    with Ring.create(1024) as ring:
        alloc = ArenaAllocator(arena, [ring])
        starts = []
        for _ in range(5):
            block = alloc.alloc(1000)
            starts.append(block.start)
            alloc.current = block
            assert ring.try_put(5, b"ref")
            alloc.referenced(ring)
            alloc.current = None
            block.release()
            consume_one(ring)
        assert starts == [DATA] * 5
        held = alloc.alloc(1000)  # still being received
        assert alloc.alloc(500).start == held.end


def test_offset_of_answers_only_for_the_frame_being_handled(arena):
    with Ring.create(1024) as ring:
        alloc = ArenaAllocator(arena, [ring])
        a, b = alloc.alloc(1000), alloc.alloc(1000)
        assert alloc.offset_of(a.view[:10]) is None  # no frame is being handled
        alloc.current = a
        assert alloc.offset_of(a.view[:10]) == a.start
        assert alloc.offset_of(b.view[:10]) is None
        assert alloc.offset_of(memoryview(bytearray(10))) is None
        assert alloc.offset_of(memoryview(b"read-only")) is None
        assert alloc.offset_of(a.view[:0]) is None


def test_a_restarted_worker_reuses_nothing_its_predecessor_still_has_queued(arena):
    with Ring.create(1024) as r1, Ring.create(1024) as r2:
        assert r1.try_put(5, b"a reference sent before the restart")
        alloc = ArenaAllocator(arena, [r1, r2])
        assert alloc.alloc(16) is None
        consume_one(r1)
        assert alloc.alloc(4096) is not None
        assert ArenaAllocator(arena, [r1, r2]).alloc(4096) is not None  # nothing queued: usable at once


def test_frames_are_received_into_blocks_and_closing_gives_them_back():
    big = ReceiveArena.create(4 * DIRECT_MIN)
    try:
        with Ring.create(1024) as ring:
            alloc = ArenaAllocator(big, [ring])
            reader = FrameReader(arena=alloc)
            payload = bytes(random.Random(1).randbytes(DIRECT_MIN + 5))
            reader.feed(struct.pack(">i", len(payload)) + payload[:3])
            assert reader.next_frame() is None  # the size is read; the body is still to come
            view = reader.direct_buffer()
            view[:] = payload[3:]
            reader.direct_filled(len(view))
            view.release()
            frame = reader.next_frame()
            block = reader.take_block()
            assert bytes(frame) == payload
            assert bytes(big.view(block.start, len(payload))) == payload  # what an owner reads in place
            assert reader.take_block() is None
            block.release()
            # A frame half received when the connection goes: its range is given back.
            reader.feed(struct.pack(">i", 3 * DIRECT_MIN))
            assert reader.next_frame() is None
            half = reader.direct_buffer()
            half.release()
            assert alloc.alloc(2 * DIRECT_MIN) is None
            reader.close()
            assert alloc.alloc(4 * DIRECT_MIN) is not None
    finally:
        big.close()
        big.unlink()


ops = st.lists(st.tuples(st.sampled_from(["alloc", "alloc", "release", "ref", "consume"]),
                         st.sampled_from([0, 1, 2, 3]), st.sampled_from([1, 100, 700, 1000, 1500, 2900])),
               max_size=80)


@settings(max_examples=300, deadline=None)
@given(ops=ops)
def test_ranges_in_use_never_overlap_a_new_block(ops):
    """A model independent of ring counters: a block is needed while held or while a message that
    references it has not been consumed; no new block may overlap a needed one."""
    arena = ReceiveArena.create(4096)
    rings = [Ring.create(1024), Ring.create(1024)]
    try:
        alloc = ArenaAllocator(arena, rings)
        blocks = []  # [block, start, end, held, [(ring index, message number)]]
        sent = [0, 0]
        consumed = [0, 0]

        def needed(entry) -> bool:
            return entry[3] or any(n >= consumed[r] for r, n in entry[4])

        for op, arg, size in ops:
            if op == "alloc":
                b = alloc.alloc(size)
                if b is None:
                    continue
                assert DATA <= b.start < b.end <= arena.size and b.end - b.start == size
                for e in blocks:
                    if needed(e):
                        assert b.end <= e[1] or b.start >= e[2], "a range in use was handed out again"
                blocks.append([b, b.start, b.end, True, []])
            elif op == "release":
                held = [e for e in blocks if e[3]]
                if held:
                    e = held[arg % len(held)]
                    e[0].release()
                    e[3] = False
            elif op == "ref":
                held = [e for e in blocks if e[3]]
                r = arg % 2
                if held and rings[r].try_put(5, b"ref"):
                    e = held[arg % len(held)]
                    alloc.current = e[0]
                    alloc.referenced(rings[r])
                    alloc.current = None
                    e[4].append((r, sent[r]))
                    sent[r] += 1
            else:
                r = arg % 2
                if consumed[r] < sent[r]:
                    consume_one(rings[r])
                    consumed[r] += 1
        for e in blocks:
            e[0].release()
        for r in (0, 1):
            while consumed[r] < sent[r]:
                consume_one(rings[r])
                consumed[r] += 1
        assert alloc.alloc(4096) is not None, "a range never came back"
    finally:
        for ring in rings:
            ring.close()
            ring.unlink()
        arena.close()
        arena.unlink()
