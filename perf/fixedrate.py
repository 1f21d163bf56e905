"""The fixed-rate producer's loop, compiled: what a load generator spends per request is taken from the
broker it measures, on the cores they share.

At W4's rate the interpreted loop (`loadgen._scheduled`) used ~50 µs of CPU per request; compiled, the loop's
own work is a few hundred instructions and what is left is its send, poll and receive system calls. The
schedule, the batching rule and the latency (from each record's due time, start + i / rate) are those of the
interpreted loop, which stays as its oracle in the tests.

Requests are the interpreted loop's templates (the project's codec and the hotpath batch builder), one per
partition and record count, laid end to end in one array; only the correlation id is patched before a send,
and for end-to-end runs each record's key (its due time) and the batch CRC over it.
Responses are Produce v7, walked as `wire.produce_errors` walks them. The system calls go straight to libc
(`ExternalFunction`, so the compiled loop caches); `ppoll` waits to the nanosecond, where `select` rounds to
the microsecond and `epoll` to the millisecond.
"""

from __future__ import annotations

import time

import numpy as np
from numba import njit, types

from hotpath import _jit
from hotpath.crc import CRC_TABLES, crc_range
from perf import wire
from perf.counters import BYTES, ERRORS, LAST, RECORDS, REQUESTS, STARTED
from perf.histogram import Histogram
from perf.loadgen import RECORD_FRAMING, batch_of

_send = types.ExternalFunction("send", types.intp(types.int32, types.intp, types.intp, types.int32))
_recv = types.ExternalFunction("recv", types.intp(types.int32, types.intp, types.intp, types.int32))
_ppoll = types.ExternalFunction("ppoll", types.int32(types.intp, types.intp, types.intp, types.intp))
_clock_gettime = types.ExternalFunction("clock_gettime", types.int32(types.int32, types.intp))

CLOCK_MONOTONIC = 1  # time.monotonic_ns's clock
MSG_DONTWAIT, MSG_NOSIGNAL = 0x40, 0x4000
POLLIN, POLLERR, POLLHUP, POLLNVAL = 0x1, 0x8, 0x10, 0x20
RECV_BYTES = 1 << 20  # per connection; a Produce v7 response for one partition is ~60 bytes

# What the loop returns as its first value.
DONE, CLOSED, WRONG_CORRELATION, SEND_FAILED, OVERSIZED = range(5)
# scratch: [0:2] the clock's timespec, [2:4] ppoll's timeout, [4:] one struct pollfd per connection.
_TS, _TIMEOUT, _POLLFDS = 0, 2, 4


@njit(cache=True)
def _now(scratch):
    _clock_gettime(CLOCK_MONOTONIC, scratch.ctypes.data + 8 * _TS)
    return scratch[_TS] * 1_000_000_000 + scratch[_TS + 1]


@njit(cache=True)
def _u32(buf, at):
    return (np.int64(buf[at]) << 24) | (np.int64(buf[at + 1]) << 16) | (np.int64(buf[at + 2]) << 8) | buf[at + 3]


@njit(cache=True)
def _produce_v7_errors(buf, pos, end):
    """Partitions answered with a non-zero error code (`wire.produce_errors`); -1 if the walk leaves the frame."""
    if pos + 8 > end:
        return -1
    ntopics = _u32(buf, pos + 4)
    pos += 8
    errors = 0
    for _ in range(ntopics):
        if pos + 2 > end:
            return -1
        pos += 2 + ((np.int64(buf[pos]) << 8) | buf[pos + 1])
        if pos + 4 > end:
            return -1
        nparts = _u32(buf, pos)
        pos += 4
        for _ in range(nparts):
            if pos + 30 > end:
                return -1
            if buf[pos + 4] != 0 or buf[pos + 5] != 0:
                errors += 1
            pos += 30
    return errors


@njit(cache=True)
def _answered(counters, lat, first, n, errors, now, start, interval, record_size):
    """`loadgen._count_scheduled`: records first..first+n-1 acknowledged now, unless the response had errors."""
    if errors:
        n = 0
    if n:
        for i in range(first, first + n):
            lat[i] = now - start - np.int64(i * interval)
        counters[LAST] = now
        counters[BYTES] += n * record_size
    counters[RECORDS] += n
    counters[ERRORS] += errors
    counters[REQUESTS] += 1


@njit(cache=True)
def _stamp_keys(frames, at, batch_at, keys_at, first, n, start, interval, crc_tables):
    """Records first..first+n-1 of the request at `at` keyed by their due times (big-endian ns), and the
    batch's CRC, which covers them, computed again."""
    for j in range(n):
        due = start + np.int64((first + j) * interval)
        pos = at + keys_at[j]
        for b in range(8):
            frames[pos + b] = (due >> (56 - 8 * b)) & 0xFF
    batch = at + batch_at
    crc = crc_range(frames, batch + 21, batch + 12 + _u32(frames, batch + 8), 0, crc_tables)
    for b in range(4):
        frames[batch + 17 + b] = (crc >> (24 - 8 * b)) & 0xFF


@njit(cache=True, nogil=True)  # an in-process caller's other threads keep running
def run_loop(fds, conn_of, frames, fstart, flen, num_records, interval, start, deadline, inflight,
             batch_records, linger, acks0, record_size, lat, queue, corr, rbuf, rpos, scratch, counters,
             keyed, batch_at, keys_at, crc_tables):
    """Send records 0..num_records-1 on schedule and take their acknowledgements; (status, connection).

    `queue[c]` holds connection c's requests in flight as (first record, records, correlation id), a ring
    indexed by the running counts in `rpos[c, 2]` (sent) and `rpos[c, 3]` (answered); `rpos[c, 0:2]` is the
    unread part of `rbuf[c]`. `keyed`: each record's key is its due time (`keys_at[p, n]`: where the
    keys of partition p's n-record request lie in it; `batch_at[p]`: where its batch starts)."""
    nconn = fds.shape[0]
    nparts = conn_of.shape[0]
    qcap = queue.shape[1]
    sent = 0
    outstanding = 0
    rotate = 0
    while sent < num_records or outstanding:
        now = _now(scratch)
        if now > deadline:
            return DONE, -1
        due = min(num_records, np.int64((now - start) / interval) + 1) if now >= start else 0
        pending = due - sent
        oldest = start + np.int64(sent * interval)
        blocked = False
        if pending > 0 and (pending >= batch_records or now - oldest >= linger or due == num_records):
            p = rotate % nparts
            c = conn_of[p]
            if rpos[c, 2] - rpos[c, 3] < inflight:
                n = min(pending, batch_records)
                at = fstart[p, n]
                size = flen[p, n]
                k = corr[c]
                corr[c] = (k + 1) & 0x7FFFFFFF
                if corr[c] == 0:
                    corr[c] = 1
                frames[at + 8] = (k >> 24) & 0xFF
                frames[at + 9] = (k >> 16) & 0xFF
                frames[at + 10] = (k >> 8) & 0xFF
                frames[at + 11] = k & 0xFF
                if keyed:
                    _stamp_keys(frames, at, batch_at[p], keys_at[p, n], sent, n, start, interval, crc_tables)
                done = 0
                while done < size:
                    got = _send(fds[c], frames.ctypes.data + at + done, size - done, MSG_NOSIGNAL)
                    if got <= 0:
                        return SEND_FAILED, c
                    done += got
                if acks0:
                    _answered(counters, lat, sent, n, 0, _now(scratch), start, interval, record_size)
                else:
                    slot = rpos[c, 2] % qcap
                    queue[c, slot, 0] = sent
                    queue[c, slot, 1] = n
                    queue[c, slot, 2] = k
                    rpos[c, 2] += 1
                    outstanding += 1
                sent += n
                rotate += 1
                continue
            blocked = True
        # wait for a response, or for the next record's due time / linger expiry
        if sent < num_records and not blocked:
            next_due = start + np.int64((sent + max(pending, 0)) * interval)
            wake = min(next_due, oldest + linger) if pending > 0 else next_due
            timeout = max(wake - _now(scratch), 0)
        else:
            timeout = 1_000_000_000
        scratch[_TIMEOUT] = timeout // 1_000_000_000
        scratch[_TIMEOUT + 1] = timeout % 1_000_000_000
        for c in range(nconn):
            scratch[_POLLFDS + c] = fds[c] | (POLLIN << 32)  # struct pollfd: int fd, short events, revents
        if _ppoll(scratch.ctypes.data + 8 * _POLLFDS, nconn, scratch.ctypes.data + 8 * _TIMEOUT, 0) <= 0:
            continue  # timed out (or a signal)
        for c in range(nconn):
            revents = (scratch[_POLLFDS + c] >> 48) & 0xFFFF
            if revents == 0:
                continue
            begin, end = rpos[c, 0], rpos[c, 1]
            if end == rbuf.shape[1]:  # full: move the unread part to the front
                rbuf[c, :end - begin] = rbuf[c, begin:end]
                begin, end = 0, end - begin
            got = _recv(fds[c], rbuf[c].ctypes.data + end, rbuf.shape[1] - end, MSG_DONTWAIT)
            if got == 0 or (got < 0 and revents & (POLLERR | POLLHUP | POLLNVAL)):
                return CLOSED, c
            if got > 0:
                end += got
            while end - begin >= 4:
                size = _u32(rbuf[c], begin)
                if size < 8 or size > rbuf.shape[1] - 4:
                    return OVERSIZED, c
                if end - begin < 4 + size:
                    if begin + 4 + size > rbuf.shape[1]:  # the rest would not fit behind it
                        rbuf[c, :end - begin] = rbuf[c, begin:end]
                        begin, end = 0, end - begin
                    break
                frame = begin + 4
                if rpos[c, 2] == rpos[c, 3]:
                    return WRONG_CORRELATION, c
                slot = rpos[c, 3] % qcap
                if _u32(rbuf[c], frame) != queue[c, slot, 2]:
                    return WRONG_CORRELATION, c
                errors = _produce_v7_errors(rbuf[c], frame, frame + size)
                if errors < 0:
                    return OVERSIZED, c
                rpos[c, 3] += 1
                outstanding -= 1
                _answered(counters, lat, queue[c, slot, 0], queue[c, slot, 1], errors, _now(scratch), start,
                          interval, record_size)
                begin += 4 + size
            if begin == end:
                begin = end = 0
            rpos[c, 0], rpos[c, 1] = begin, end
    return DONE, -1


AVAILABLE = not _jit.NO_JIT  # it calls the hotpath CRC kernel, which HPBROKER_NO_JIT leaves uncompiled
TEMPLATE_BYTES = 64 << 20  # at most this much of templates; a spec that needs more runs interpreted


def template_bytes(spec) -> int:
    """About what `templates` builds for `spec`: a request for every partition and every record count up to
    a full batch, so it grows as the square of the records per batch (1 MB batches of 1 KiB records: GBs)."""
    n = spec.batch_records
    per_record = spec.record_size + RECORD_FRAMING + (8 if spec.key_times else 0)
    return len(spec.leaders) * (n * (128 + len(spec.topic.encode())) + n * (n + 1) // 2 * per_record)


def templates(spec, parts: list[int], data: np.ndarray):
    """Every request the loop can send, end to end: (frames, start, length), indexed [partition, records];
    with `spec.key_times` also where each batch starts in its request ([partition]) and where each record's
    key lies ([partition, records, record]), for `_stamp_keys`."""
    n_max = spec.batch_records
    framers = [wire.SinglePartitionFrames(spec.topic, p, spec.acks) for p in parts]
    shape = (len(parts), n_max + 1)
    chunks, fstart, flen = [], np.zeros(shape, np.int64), np.zeros(shape, np.int64)
    batch_at = np.array([len(framer.head) + 4 for framer in framers], np.int64)
    keys_at = np.zeros(shape + (n_max if spec.key_times else 1,), np.int64)
    pos = 0
    for i, framer in enumerate(framers):
        for n in range(1, n_max + 1):
            # placeholder keys, told apart from each other and from the random values
            marks = [_KEY_MARK + (i << 32) + (n << 16) + j for j in range(n)] if spec.key_times else None
            frame = framer.frame(batch_of(data, spec.record_size, n, marks))
            if marks:
                for j, mark in enumerate(marks):
                    keys_at[i, n, j] = frame.find(mark.to_bytes(8, "big"))
            fstart[i, n], flen[i, n] = pos, len(frame)
            chunks.append(frame)
            pos += len(frame)
    return np.frombuffer(b"".join(chunks), np.uint8).copy(), fstart, flen, batch_at, keys_at


_KEY_MARK = 0x5A17 << 48


_FAILURES = {CLOSED: "connection closed by the broker", WRONG_CORRELATION: "a response out of order",
             SEND_FAILED: "send failed", OVERSIZED: "a malformed or oversized response"}


def scheduled(spec, counters, conns: list, conn_of: list[int], data: np.ndarray) -> Histogram:
    """Run the loop over `conns` (blocking `wire.Connection`s; partition i of the spec's sorted partitions
    goes over `conns[conn_of[i]]`) and return the latency histogram; counters as the interpreted loop keeps
    them. Raises `wire.KafkaError` when a connection fails."""
    parts = sorted(spec.leaders)
    frames, fstart, flen, batch_at, keys_at = templates(spec, parts, data)
    for conn in conns:
        conn.sock.settimeout(None)  # blocking sends; receives say MSG_DONTWAIT after ppoll
    fds = np.array([conn.sock.fileno() for conn in conns], np.int64)
    peers = [conn.sock.getpeername() for conn in conns]  # for the message: a reset socket has none
    owner = np.array(conn_of, np.int64)
    lat = np.full(spec.num_records, -1, np.int64)
    queue = np.zeros((len(conns), spec.inflight + 1, 3), np.int64)
    corr = np.array([conn.next_corr() for conn in conns], np.int64)
    rbuf = np.zeros((len(conns), RECV_BYTES), np.uint8)
    rpos = np.zeros((len(conns), 4), np.int64)
    scratch = np.zeros(_POLLFDS + len(conns), np.int64)
    try:  # the load process's shared counters (a ctypes array), counted into in place
        shared = np.ctypeslib.as_array(counters)
    except TypeError:  # a plain list (in-process callers): counted into a copy, written back at the end
        shared = np.array(counters, np.int64)
    interval = 1e9 / spec.rate
    linger = int(spec.linger_ms * 1e6)

    def loop(n: int, start: int, deadline: int):
        return run_loop(fds, owner, frames, fstart, flen, n, interval, start, deadline, spec.inflight,
                        spec.batch_records, linger, spec.acks == 0, spec.record_size, lat, queue, corr, rbuf,
                        rpos, scratch, shared, spec.key_times, batch_at, keys_at, CRC_TABLES)

    loop(0, 0, 0)  # compiled (or loaded from the cache) before the schedule starts
    start = time.monotonic_ns() + 20_000_000
    counters[STARTED] = start
    status, c = loop(spec.num_records, start, time.monotonic_ns() + int(spec.time_limit * 1e9))
    if isinstance(counters, list):
        for i in (RECORDS, BYTES, ERRORS, REQUESTS, LAST):
            counters[i] = int(shared[i])
    if status != DONE:
        raise wire.KafkaError(f"{_FAILURES[status]} ({peers[c][0]}:{peers[c][1]})")
    hist = Histogram()
    hist.record_many(lat[lat >= 0])
    return hist
