"""Rings between real processes: ordering, backpressure, wakeups, and producers killed by -9."""

from __future__ import annotations

import multiprocessing as mp
import os
import random
import signal
import struct
import time
import zlib

from broker.shm import ring as ring_module
from broker.shm.ring import Ring

FORK = mp.get_context("fork")
POOL = random.Random(1234).randbytes(1 << 16)
SEQ = struct.Struct("<II")  # epoch, seq


def message(epoch: int, seq: int, n: int) -> bytes:
    off = (seq * 7919) % (len(POOL) - n)
    body = SEQ.pack(epoch, seq) + POOL[off : off + n]
    return body + struct.pack("<I", zlib.crc32(body))


def check(data: bytes) -> tuple[int, int]:
    body, crc = data[:-4], struct.unpack("<I", data[-4:])[0]
    assert zlib.crc32(body) == crc, "torn or corrupt message"
    epoch, seq = SEQ.unpack_from(body)
    n = len(body) - SEQ.size
    assert data == message(epoch, seq, n)
    return epoch, seq


def _produce(ring: Ring, count: int, max_size: int) -> None:
    rng = random.Random(99)
    seq = 0
    while seq < count:
        how = rng.randrange(3)
        if how == 0:
            msg = message(0, seq, rng.randrange(max_size))
            while not ring.try_put(seq % 7, msg):
                ring.wait_space(len(msg), timeout=1)
            seq += 1
        elif how == 1:
            n = rng.randrange(1, 9)
            msgs = [message(0, seq + i, rng.randrange(max_size)) for i in range(n)]
            msgs = msgs[: count - seq]
            done = 0
            while done < len(msgs):
                done += ring.put_batch(seq % 7, msgs[done:])  # one kind per batch
                if done < len(msgs):
                    ring.wait_space(len(msgs[done]), timeout=1)
            seq += len(msgs)
        else:
            msg = message(0, seq, rng.randrange(max_size))
            while (view := ring.reserve(seq % 7, len(msg) + 100)) is None:
                ring.wait_space(len(msg) + 100, timeout=1)
            view[: len(msg)] = msg
            view.release()
            ring.commit(len(msg))
            seq += 1


def test_two_processes_random_sizes_in_order_with_backpressure(fork_child):
    count = 6000
    with Ring.create(16 * 1024) as ring:
        child = fork_child(_produce, ring, count, 3000)
        expected = 0
        rng = random.Random(5)
        deadline = time.monotonic() + 60
        while expected < count:
            assert time.monotonic() < deadline
            batch = ring.peek_batch(rng.randrange(1, 20)) if rng.random() < 0.5 else []
            if not batch and (m := ring.peek()) is not None:
                batch = [m]
            if not batch:
                ring.wait(timeout=1)
                continue
            for _kind, view in batch:
                assert check(bytes(view)) == (0, expected)
                expected += 1
            del view
            batch.clear()
            ring.advance()
        child.join(10)
        assert child.exitcode == 0
        assert ring.peek() is None
        assert ring.stats.full_events > 0  # the small ring really pushed back


def _produce_forever(ring: Ring, epoch: int, ready) -> None:
    rng = random.Random(epoch)
    seq = 0
    ready.set()
    while True:
        msg = message(epoch, seq, rng.randrange(30000))
        if ring.try_put(1, msg):
            seq += 1
        else:
            ring.wait_space(len(msg), timeout=0.5)


def test_producer_killed_mid_write_never_leaves_a_visible_torn_entry(fork_child):
    rng = random.Random(7)
    seen: dict[int, int] = {}
    with Ring.create(64 * 1024) as ring:

        def consume_for(seconds: float) -> None:
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                batch = ring.peek_batch(32)
                if not batch:
                    ring.wait(timeout=0.002)
                    continue
                for _kind, view in batch:
                    epoch, seq = check(bytes(view))
                    assert seq == seen.get(epoch, -1) + 1, "gap or duplicate"
                    assert epoch >= max(seen, default=0)
                    seen[epoch] = seq
                del view
                batch.clear()
                ring.advance()

        for epoch in range(1, 21):
            ready = FORK.Event()
            child = fork_child(_produce_forever, ring, epoch, ready)
            assert ready.wait(10)
            consume_for(rng.uniform(0.005, 0.06))
            os.kill(child.pid, signal.SIGKILL)
            child.join(10)
            assert child.exitcode == -signal.SIGKILL
        consume_for(0.05)  # whatever the last producer published completely
        assert ring.peek() is None
    assert len(seen) >= 15 and sum(seen.values()) > 100


def _put_later(ring: Ring, delay: float) -> None:
    time.sleep(delay)
    ring.try_put(1, b"wake up")


def test_sleeping_consumer_is_woken_across_processes_and_idles_without_cpu(fork_child):
    with Ring.create(4096) as ring:
        cpu0 = time.process_time()
        assert ring.wait(timeout=0.3) is False
        assert time.process_time() - cpu0 < 0.05  # slept in poll(), did not spin
        child = fork_child(_put_later, ring, 0.1)
        start = time.monotonic()
        assert ring.wait(timeout=10)
        assert time.monotonic() - start < 5
        assert bytes(ring.peek()[1]) == b"wake up"
        ring.advance()
        child.join(10)


def _consume_later(ring: Ring, delay: float) -> None:
    time.sleep(delay)
    assert ring.peek() is not None
    ring.advance()


def test_blocked_producer_is_woken_when_the_consumer_frees_space(fork_child):
    with Ring.create(1024) as ring:
        while ring.try_put(1, b"x" * 200):
            pass
        child = fork_child(_consume_later, ring, 0.1)
        start = time.monotonic()
        assert ring.wait_space(200, timeout=10)
        assert time.monotonic() - start < 5
        child.join(10)
        assert child.exitcode == 0
        assert ring.try_put(1, b"x" * 200)


def _echo(requests: Ring, replies: Ring, rounds: int) -> None:
    for _ in range(rounds):
        while (msg := requests.peek()) is None:
            requests.wait(timeout=3)
        data = bytes(msg[1])
        del msg
        requests.advance()
        while not replies.try_put(1, data):
            replies.wait_space(len(data), timeout=30)


def _consumer_asleep(ring: Ring, timeout: float) -> bool:
    """Whether the consumer announced it is going to sleep on `ring` within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not ring_module._unpack_u64(ring._mm, ring_module._OFF_CSLEEP)[0]:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.0005)
    return True


def test_ping_pong_wakes_both_sides_every_round(fork_child):
    # Every round both sides go to sleep and are woken by the other: a missed wakeup shows up
    # as a round taking the full 3 s timeout instead of microseconds. Every fifth round waits until
    # the child has announced its sleep, so the wakeup path runs however busy the machine is; the
    # others race it.
    rounds = 300
    with Ring.create(4096) as requests, Ring.create(4096) as replies:
        fork_child(_echo, requests, replies, rounds)
        worst = 0.0
        asleep = 0
        for i in range(rounds):
            if i % 5 == 0:
                asleep += _consumer_asleep(requests, 5.0)
            start = time.monotonic()
            assert requests.try_put(1, b"%d" % i)
            while (msg := replies.peek()) is None:
                replies.wait(timeout=3)
            assert bytes(msg[1]) == b"%d" % i
            del msg
            replies.advance()
            worst = max(worst, time.monotonic() - start)
        assert worst < 2.0
        assert asleep == rounds // 5
        assert requests.stats.wakeups_sent >= asleep  # each of those rounds woke the child
