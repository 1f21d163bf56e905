from __future__ import annotations

import os
import pickle
import selectors
import threading
import time

import pytest

from broker.shm import layout
from broker.shm.ring import MessageTooLarge, Ring, prepare_wait_all


@pytest.fixture
def ring():
    with Ring.create(1024) as r:
        yield r


def drain(r: Ring) -> list[tuple[int, bytes]]:
    out = []
    while (m := r.peek()) is not None:
        out.append((m[0], bytes(m[1])))
        r.advance()
    return out


def test_put_peek_advance_roundtrip(ring):
    assert ring.peek() is None
    assert ring.try_put(7, b"hello")
    assert ring.try_put(8, b"multi", bytearray(b"-part"), memoryview(b"-msg"))
    assert ring.try_put(9, b"")
    kind, view = ring.peek()
    assert (kind, bytes(view)) == (7, b"hello")
    assert bytes(ring.peek()[1]) == b"hello"  # peek is idempotent until advance
    ring.advance()
    assert drain(ring) == [(8, b"multi-part-msg"), (9, b"")]
    assert ring.used_bytes() == 0 and ring.free_bytes() == 1024
    with pytest.raises(RuntimeError):
        ring.advance()


def test_kind_range_and_too_large(ring):
    with pytest.raises(ValueError):
        ring.try_put(layout.KIND_PAD, b"x")
    with pytest.raises(ValueError):
        ring.try_put(-1, b"x")
    with pytest.raises(MessageTooLarge) as exc:
        ring.try_put(1, b"x" * (1024 - layout.ENTRY_HEADER + 1))
    assert exc.value.error_code == 10
    assert ring.try_put(1, b"x" * (1024 - layout.ENTRY_HEADER))  # exactly the capacity
    assert drain(ring) == [(1, b"x" * 1008)]


def test_full_ring_refuses_whole_message_and_counts_it(ring):
    payload = b"a" * 240  # 256-byte entries: exactly 4 fit in 1024
    assert [ring.try_put(1, payload) for _ in range(5)] == [True] * 4 + [False]
    assert ring.stats.full_events == 1
    assert ring.used_bytes() == 1024
    assert drain(ring) == [(1, payload)] * 4  # nothing partial was left behind
    assert ring.try_put(1, payload)


def test_entries_never_wrap_mid_message(ring):
    # Leave 1024 - 3*216 = 376 bytes at the end, then put a 400-byte entry: it must be preceded
    # by a pad entry and start at offset 0 of the data area.
    for _ in range(3):
        ring.try_put(1, b"a" * 200)
    drain(ring)
    assert ring.try_put(2, b"b" * 384)
    assert ring.used_bytes() == 376 + 400
    pad_at = layout.RING_HEADER_SIZE + 3 * 216
    assert layout.U32_PAIR.unpack_from(ring._mm, pad_at + 8) == (376 - 16, layout.KIND_PAD)
    start = layout.RING_HEADER_SIZE + layout.ENTRY_HEADER  # offset 0 of the data area
    assert bytes(ring._view[start : start + 384]) == b"b" * 384
    assert drain(ring) == [(2, b"b" * 384)]


def test_implicit_pad_when_only_eight_bytes_remain():
    with Ring.create(64) as r:
        assert r.try_put(1, b"x" * 24)  # 40 bytes
        assert r.try_put(2, b"")  # 16 bytes -> 56 used, 8 left at the end
        assert drain(r) == [(1, b"x" * 24), (2, b"")]
        assert r.try_put(3, b"y" * 8)  # 24 bytes: goes to offset 0 after an implicit pad
        assert r.used_bytes() == 8 + 24
        assert drain(r) == [(3, b"y" * 8)]
        assert r.used_bytes() == 0


def test_reserve_commit_zero_copy_and_shortened(ring):
    buf = ring.reserve(5, 100)
    buf[:3] = b"abc"
    assert ring.peek() is None  # nothing visible before commit
    with pytest.raises(RuntimeError):
        ring.reserve(5, 10)
    ring.commit(3)
    assert ring.used_bytes() == layout.entry_size(3)
    assert drain(ring) == [(5, b"abc")]
    view = ring.reserve(6, 10)
    ring.cancel()
    assert view is not None and ring.peek() is None
    with pytest.raises(RuntimeError):
        ring.commit()


def test_reserve_returns_none_when_full(ring):
    assert ring.reserve(1, 1000) is not None
    ring.commit()
    assert ring.reserve(1, 100) is None


def test_peek_batch_matches_python_peek_across_wraps():
    with Ring.create(512) as r:
        seen_batch, seen_single = [], []
        sizes = [0, 1, 7, 8, 9, 100, 200, 33, 250, 5, 64, 120, 3]
        for rnd in range(12):
            for i, n in enumerate(sizes[rnd % 4 :]):
                if not r.try_put(i, bytes([rnd]) * n):
                    break
            snapshot = r._tail
            batch = [(k, bytes(v)) for k, v in r.peek_batch(100)]
            r._tail = r._peek_end = snapshot  # re-read the same entries with the twin
            single = []
            while (m := r.peek()) is not None:
                single.append((m[0], bytes(m[1])))
                r._tail = r._peek_end  # step without publishing, like peek_batch
            assert batch == single and batch
            r._tail = snapshot
            r.peek_batch(100)
            r.advance()
            seen_batch += batch
        assert r.used_bytes() == 0 and len(seen_batch) > 30


def test_a_ring_kept_empty_reuses_the_front_of_its_area():
    """A consumer that keeps up: entries never start past REWIND_AT, the pads in between are skipped, and
    every payload comes back in order. One that lags: the producer keeps going round the whole area."""
    from broker.shm.ring import REWIND_AT

    cap = 4 * REWIND_AT
    with Ring.create(cap) as r:
        got, starts = [], []
        for i in range(300):
            payload = bytes([i % 251]) * (1000 + i * 7919 % 30000)
            if i % 2:
                assert r.put_batch(2, [payload]) == 1
            else:
                assert r.try_put(1, payload)
            starts.append((r.published_head() - layout.entry_size(len(payload))) % cap)
            msgs = r.peek_batch(10)
            got += [bytes(v) for _, v in msgs]
            r.advance()
        assert got == [bytes([i % 251]) * (1000 + i * 7919 % 30000) for i in range(300)]
        assert max(starts) < REWIND_AT + 31000 and starts.count(0) > 10
        while r.published_head() % cap < REWIND_AT:  # run up to a rewind again
            assert r.try_put(1, b"y" * 30000)
            r.peek_batch(10)
            r.advance()
        assert r.try_put(1, b"z" * 100) and r.published_head() % cap == layout.entry_size(100)
        assert r.waiting_bytes() == r.stats.waiting_bytes == layout.entry_size(100)  # not the pad before it
        assert r.used_bytes() > cap // 2  # the pad still takes room until the consumer skips it
        assert [bytes(v) for _, v in r.peek_batch(10)] == [b"z" * 100]
        r.advance()
        assert r.used_bytes() == r.waiting_bytes() == 0
        lagging = []
        for i in range(80):
            assert r.try_put(1, b"x" * 20000)
            lagging.append((r.published_head() - layout.entry_size(20000)) % cap)
            if len(lagging) % 8 == 0:
                assert len(r.peek_batch(7)) == 7  # one stays: the ring is never empty at a put
                r.advance()
        assert max(lagging) > 3 * REWIND_AT  # no rewind: the producer went on round the area


def test_an_entry_larger_than_the_front_a_rewind_would_free_goes_on_where_it_is():
    """An empty ring past REWIND_AT rewinds only for an entry that fits in front of where it stands: a larger
    one (up to the ring's capacity) is put in place at once, never refused behind a pad nobody can see."""
    from broker.shm.ring import REWIND_AT

    cap = 4 * REWIND_AT
    with Ring.create(cap) as r:
        while r.published_head() % cap < REWIND_AT + 1000:
            assert r.try_put(1, b"y" * 1000)
            r.peek_batch(10)
            r.advance()
        off = r.published_head() % cap
        big = b"z" * (off + 5000)
        assert r.try_put(2, big), "an empty ring refused an entry it has room for"
        assert [(k, bytes(v)) for k, v in r.peek_batch(10)] == [(2, big)]
        r.advance()
    with Ring.create(cap) as r:
        while r.published_head() % cap < REWIND_AT + 1000:
            assert r.put_batch(1, [b"y" * 1000]) == 1
            r.peek_batch(10)
            r.advance()
        off = r.published_head() % cap
        assert r.put_batch(2, [b"w" * (off + 5000), b"v" * 10]) == 2
        assert [bytes(v)[:1] for _, v in r.peek_batch(10)] == [b"w", b"v"]
        r.advance()
        assert r.used_bytes() == 0


def test_peek_batch_limits_count_and_advance_consumes_all(ring):
    assert ring.put_batch(3, [b"%d" % i for i in range(10)]) == 10
    first = ring.peek_batch(4)
    assert [bytes(v) for _, v in first] == [b"0", b"1", b"2", b"3"]
    ring.advance()
    rest = ring.peek_batch(100)
    assert [bytes(v) for _, v in rest] == [b"%d" % i for i in range(4, 10)]
    ring.advance()
    assert ring.peek_batch(10) == [] and ring.used_bytes() == 0


def test_put_batch_stops_at_first_that_does_not_fit(ring):
    assert ring.put_batch(1, [b"z" * 300] * 5) == 3
    assert ring.stats.full_events == 1
    assert len(ring.peek_batch(10)) == 3


def _write_torn_entry(r: Ring, payload: bytes, *, publish_head: bool) -> None:
    """Raw writes following layout: payload and length/kind but no commit word."""
    head = layout.U64.unpack_from(r._mm, layout.RING_OFF_HEAD)[0]
    pos = layout.RING_HEADER_SIZE + head % r.capacity
    r._mm[pos + 16 : pos + 16 + len(payload)] = payload
    layout.U32_PAIR.pack_into(r._mm, pos + 8, len(payload), 4)
    if publish_head:
        layout.U64.pack_into(r._mm, layout.RING_OFF_HEAD, head + layout.entry_size(len(payload)))


@pytest.mark.parametrize("publish_head", [False, True])
def test_entry_without_commit_word_is_never_visible(ring, publish_head):
    assert ring.try_put(1, b"complete")
    _write_torn_entry(ring, b"torn!" * 10, publish_head=publish_head)
    assert ring.peek_batch(10)[0][1].tobytes() == b"complete"
    assert [bytes(v) for _, v in ring.peek_batch(10)] == [b"complete"]
    kind, view = ring.peek()
    assert bytes(view) == b"complete"
    ring.advance()
    assert ring.peek() is None
    assert ring.peek_batch(10) == []
    # once the commit word lands (the producer's last write) the entry appears
    head = layout.U64.unpack_from(ring._mm, layout.RING_OFF_TAIL)[0]
    pos = layout.RING_HEADER_SIZE + head % ring.capacity
    layout.U64.pack_into(ring._mm, pos, head + layout.entry_size(50))
    layout.U64.pack_into(ring._mm, layout.RING_OFF_HEAD, head + layout.entry_size(50))
    assert bytes(ring.peek()[1]) == b"torn!" * 10
    ring.advance()


def test_stale_header_from_previous_lap_is_not_a_commit():
    with Ring.create(128) as r:
        for _ in range(3):  # fill and drain so old headers remain in memory
            assert r.try_put(1, b"q" * 48)
            assert drain(r) == [(1, b"q" * 48)]
        # rewind the published head over the last lap: the old header's commit cannot match
        tail = r._tail
        layout.U64.pack_into(r._mm, layout.RING_OFF_HEAD, tail + 64)
        assert r.peek() is None and r.peek_batch(4) == []
        layout.U64.pack_into(r._mm, layout.RING_OFF_HEAD, tail)


def test_pickle_attaches_by_name(ring):
    ring.try_put(4, b"via name")
    other = pickle.loads(pickle.dumps(ring))
    try:
        assert not other.is_creator and other.unlink() is False
        assert bytes(other.peek()[1]) == b"via name"
        other.advance()
        assert ring.used_bytes() == 0
    finally:
        other.close()


def test_prepare_wait_refuses_to_sleep_when_data_is_there(ring):
    ring.try_put(1, b"x")
    assert ring.prepare_wait() is False
    drain(ring)
    assert ring.prepare_wait() is True
    ring.finish_wait()
    assert ring.wait(timeout=0.01) is False


def test_producer_rings_doorbell_only_when_consumer_sleeps(ring):
    sel = selectors.DefaultSelector()
    sel.register(ring.fileno(), selectors.EVENT_READ)
    ring.try_put(1, b"awake")  # consumer not sleeping: no doorbell
    assert sel.select(0) == [] and ring.stats.wakeups_sent == 0
    drain(ring)
    assert ring.prepare_wait()
    ring.try_put(1, b"a")
    ring.try_put(1, b"b")  # one ring per sleep, not per message
    assert len(sel.select(0)) == 1 and ring.stats.wakeups_sent == 1
    ring.finish_wait()
    assert sel.select(0) == []
    sel.close()
    assert drain(ring) == [(1, b"a"), (1, b"b")]


def test_wait_is_woken_by_a_put_from_another_thread(ring):
    t = threading.Timer(0.05, ring.try_put, args=(1, b"late"))
    t.start()
    start = time.monotonic()
    assert ring.wait(timeout=5)
    assert time.monotonic() - start < 2
    t.join()
    assert drain(ring) == [(1, b"late")]


def test_wait_space_is_woken_by_advance(ring):
    while ring.try_put(1, b"f" * 100):
        pass
    assert ring.wait_space(100, timeout=0.01) is False
    t = threading.Timer(0.05, lambda: (ring.peek(), ring.advance()))
    t.start()
    assert ring.wait_space(100, timeout=5)
    t.join()
    assert ring.try_put(1, b"f" * 100)
    with pytest.raises(MessageTooLarge):
        ring.wait_space(5000)


def test_prepare_wait_all_announces_on_every_ring():
    with Ring.create(256) as a, Ring.create(256) as b:
        assert prepare_wait_all([a, b])
        b.try_put(1, b"x")
        assert b.stats.wakeups_sent == 1
        a.finish_wait()
        b.finish_wait()
        assert prepare_wait_all([a, b]) is False  # b has data: nobody sleeps


def test_capacity_validation():
    with pytest.raises(ValueError):
        Ring.create(100)  # not a multiple of 8
    with pytest.raises(ValueError):
        Ring.create(32)


def test_close_with_a_live_view_still_releases_the_name():
    r = Ring.create(256)
    r.try_put(1, b"held")
    held = r.peek()[1]
    r.close()
    r.unlink()
    assert bytes(held) == b"held"  # the mapping lives as long as the view
    del held
    assert not os.path.exists(f"/dev/shm/{r.name}")


@pytest.mark.parametrize("rings", [1, 3, 4096, 5000])
def test_doorbell_drain_counts_every_ring_and_leaves_it_quiet(rings):
    from broker.shm.doorbell import Doorbell
    from broker.shm.region import unique_name

    bell = Doorbell.create(unique_name("bell"))
    try:
        for _ in range(rings):
            bell.ring()
        assert bell.wait(0)
        assert bell.drain() == rings
        assert not bell.wait(0)  # nothing left to wake a sleeper for
        assert bell.drain() == 0
    finally:
        bell.close()
        bell.unlink()


def test_finish_wait_without_drain_leaves_the_bell_to_the_selector():
    import select

    with Ring.create(256) as r:
        assert r.prepare_wait()
        assert r.try_put(1, b"x")  # the consumer announced sleep: its doorbell rings
        r.finish_wait(drain=False)
        assert select.select([r.fileno()], [], [], 0)[0]  # still readable: the next wait returns at once
        r.drain_wakeups()
        assert not select.select([r.fileno()], [], [], 0)[0]


def test_an_owners_completions_go_out_in_order_when_they_overflow_the_ring(ring):
    """The owner publishes a pass's completions a run of one kind at a time; what does not fit waits for
    room while the network worker drains, and nothing is reordered or lost."""
    import types

    from broker.ioworker import IOWorker

    owner = types.SimpleNamespace()
    owner.post = lambda out, kind, reply: IOWorker.post(owner, out, kind, reply)
    replies = [(1 + (i // 7) % 3, b"%03d" % i * 20) for i in range(60)]  # 60 B each, runs of 7 of one kind
    got: list = []

    def consume():
        deadline = time.monotonic() + 10
        while len(got) < len(replies) and time.monotonic() < deadline:
            msgs = ring.peek_batch(4)
            if msgs:
                got.extend((k, bytes(v)) for k, v in msgs)
                ring.advance()
            time.sleep(0.002)

    t = threading.Thread(target=consume, daemon=True)
    t.start()
    IOWorker._post_all(owner, ring, replies)
    t.join(10)
    assert got == replies
    assert ring.stats.full_events > 0  # it did overflow: 60 x 80 B through a 1 KiB ring
