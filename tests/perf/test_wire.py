"""The harness's response walkers against their oracles: the codec's generic decoder for Produce, the
whole-frame walker for the Fetch reader that leaves record bodies in the kernel."""

from __future__ import annotations

import socket
import struct
import threading

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from netio.codec import encode_response
from netio.codec.fetch import PartitionData, encode_fetch_response
from perf import fixedrate, wire
from perf.loadgen import build

_partition = st.fixed_dictionaries({
    "index": st.integers(0, 2**31 - 1), "error_code": st.sampled_from([0, 0, 0, 1, 2, 6, 10, 19]),
    "base_offset": st.integers(-1, 2**63 - 1), "log_append_time_ms": st.integers(-1, 2**40),
    "log_start_offset": st.integers(-1, 2**63 - 1)})
_topic = st.fixed_dictionaries({"name": st.text(min_size=0, max_size=20),
                                "partition_responses": st.lists(_partition, max_size=5)})


@given(topics=st.lists(_topic, max_size=4), throttle=st.integers(0, 1000))
@settings(max_examples=200, deadline=None)
def test_produce_errors_counts_what_the_generic_decoder_sees(topics, throttle):
    frame = encode_response(wire.PRODUCE, wire.PRODUCE_V, 7, {"responses": topics, "throttle_time_ms": throttle})
    _, body = wire.decode_response(wire.PRODUCE, wire.PRODUCE_V, memoryview(frame)[4:])
    expected = sum(1 for t in body["responses"] for p in t["partition_responses"] if p["error_code"])
    assert wire.produce_errors(memoryview(frame)[4:]) == expected


@given(topics=st.lists(_topic, max_size=4), throttle=st.integers(0, 1000), cut=st.integers(0, 40))
@settings(max_examples=200, deadline=None)
def test_the_compiled_loops_walker_counts_what_produce_errors_counts(topics, throttle, cut):
    """`fixedrate._produce_v7_errors` against `wire.produce_errors`; a frame cut short is refused (-1)
    unless only the trailing throttle time was cut."""
    frame = bytes(encode_response(wire.PRODUCE, wire.PRODUCE_V, 7, {"responses": topics,
                                                                     "throttle_time_ms": throttle}))[4:]
    expected = wire.produce_errors(memoryview(frame))
    buf = np.frombuffer(frame, np.uint8)
    assert fixedrate._produce_v7_errors(buf, 0, len(buf)) == expected
    kept = max(len(buf) - cut, 0)
    assert fixedrate._produce_v7_errors(buf[:kept], 0, kept) in ((-1, expected) if cut <= 4 else (-1,))


# ---- Fetch responses read with the record bodies left in the kernel ----

_BATCHES = {n: bytes(build(100, n, n)) for n in (1, 3, 17)}


def _records(batches: list[tuple[int, int]], cut: int) -> tuple[bytes, int, int]:
    """Batches of the given record counts at the given base offsets, the last cut short by `cut` bytes;
    with the whole batches' record count and next offset (-1 if none is whole)."""
    out, records, next_offset = bytearray(), 0, -1
    for i, (count, base) in enumerate(batches):
        batch = bytearray(_BATCHES[count])
        struct.pack_into(">q", batch, 0, base)
        if i == len(batches) - 1 and cut:
            batch = batch[:max(len(batch) - cut, 0)]
        else:
            records += count
            next_offset = base + count
        out += batch
    return bytes(out), records, next_offset


_fetch_partition = st.tuples(
    st.integers(0, 1000), st.sampled_from([0, 0, 0, 1, 6]),
    st.lists(st.tuples(st.sampled_from(sorted(_BATCHES)), st.integers(0, 2**40)), max_size=4),
    st.sampled_from([0, 0, 1, 60, 61, 500]),
    st.lists(st.tuples(st.integers(0, 2**40), st.integers(0, 2**40)), max_size=2) | st.none())
_fetch_topics = st.lists(st.tuples(st.text(max_size=12), st.lists(_fetch_partition, max_size=4)), max_size=3)


class _Peer:
    """A real loopback TCP connection (MSG_TRUNC is a TCP receive flag) whose far end sends given bytes."""

    def __init__(self):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.conn = wire.Connection("127.0.0.1", self.listener.getsockname()[1])
        self.far, _ = self.listener.accept()

    def send(self, data: bytes) -> threading.Thread:
        t = threading.Thread(target=self.far.sendall, args=(data,), daemon=True)
        t.start()
        return t

    def close(self) -> None:
        for s in (self.far, self.listener):
            s.close()
        self.conn.close()


@pytest.fixture(scope="module")
def peer():
    p = _Peer()
    yield p
    p.close()


@given(topics=_fetch_topics, corr=st.integers(1, 2**31 - 1), before=st.booleans())
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_discarding_reader_walks_a_fetch_response_as_walk_fetch_does(peer, topics, corr, before):
    expected, parts = [], []
    for name, partitions in topics:
        datas = []
        for index, error, batches, cut, aborted in partitions:
            records, count, next_offset = _records(batches, cut if batches else 0)
            datas.append(PartitionData(index, error, 10, 10, 0, aborted, -1, records))
            expected.append((index, error, count, next_offset))
        parts.append((name, datas))
    frame = b"".join(bytes(p) for p in encode_fetch_response(wire.FETCH_V, corr, 0, 0, 0, parts))
    oracle = wire.walk_fetch(memoryview(frame)[4:])
    data = frame
    if before:       # a response read whole first leaves part of this one in the connection's buffer
        first = b"".join(bytes(p) for p in encode_fetch_response(wire.FETCH_V, 1, 0, 0, 0, parts))
        data = first + frame
        peer.conn.pending.append((1, wire.FETCH, wire.FETCH_V, None))
    peer.conn.pending.append((corr, wire.FETCH, wire.FETCH_V, "tag"))
    sender = peer.send(data)
    if before:
        peer.conn.recv()
    entry, got = peer.conn.recv_fetch_discarding()
    sender.join(10)
    assert entry == (corr, wire.FETCH, wire.FETCH_V, "tag")
    assert got == oracle
    assert [(p, e, r, o) for p, e, r, _, o, _ in got] == expected
    assert not peer.conn.pending and not peer.conn.has_buffered_frame()


def test_discarding_reader_leaves_the_next_response_intact(peer):
    records, _, _ = _records([(17, 5), (3, 22)], 0)
    one = b"".join(bytes(p) for p in encode_fetch_response(
        wire.FETCH_V, 8, 0, 0, 0, [("t", [PartitionData(0, 0, 25, 25, 0, None, -1, records)])]))
    two = b"".join(bytes(p) for p in encode_fetch_response(
        wire.FETCH_V, 9, 0, 0, 0, [("t", [PartitionData(0, 0, 25, 25, 0, None, -1, b"")])]))
    peer.conn.pending.extend([(8, wire.FETCH, wire.FETCH_V, None), (9, wire.FETCH, wire.FETCH_V, None)])
    sender = peer.send(one + two)
    assert peer.conn.recv_fetch_discarding()[1] == [(0, 0, 20, len(records), 25, [])]
    _, frame = peer.conn.recv()
    sender.join(10)
    assert wire.walk_fetch(frame) == [(0, 0, 0, 0, -1, [])]


def test_a_response_shorter_than_its_records_field_is_an_error(peer):
    records, _, _ = _records([(3, 0)], 0)
    frame = bytearray(b"".join(bytes(p) for p in encode_fetch_response(
        wire.FETCH_V, 4, 0, 0, 0, [("t", [PartitionData(0, 0, 3, 3, 0, None, -1, records)])])))
    struct.pack_into(">i", frame, 0, len(frame) - 4 - len(records))     # size prefix ends before the records
    peer.conn.pending.append((4, wire.FETCH, wire.FETCH_V, None))
    peer.send(bytes(frame[:len(frame) - len(records)]))
    with pytest.raises(wire.KafkaError, match="overrun"):
        peer.conn.recv_fetch_discarding()


@pytest.mark.parametrize("length", [-12, 0, 48])
def test_a_batch_length_too_small_for_a_header_ends_the_partition_as_walk_fetch_does(peer, length):
    """A whole batch, then a header whose length field cannot hold a batch: counted up to it, the rest of
    the records field dropped, and the next response read intact."""
    records, _, _ = _records([(3, 40), (17, 43)], 0)
    bad = bytearray(records)
    struct.pack_into(">i", bad, len(_BATCHES[3]) + 8, length)
    one = b"".join(bytes(p) for p in encode_fetch_response(
        wire.FETCH_V, 6, 0, 0, 0, [("t", [PartitionData(0, 0, 60, 60, 0, None, -1, bytes(bad))])]))
    two = b"".join(bytes(p) for p in encode_fetch_response(
        wire.FETCH_V, 7, 0, 0, 0, [("t", [PartitionData(0, 0, 60, 60, 0, None, -1, b"")])]))
    oracle = wire.walk_fetch(memoryview(one)[4:])
    assert oracle == [(0, 0, 3, len(_BATCHES[3]), 43, [])]
    peer.conn.pending.extend([(6, wire.FETCH, wire.FETCH_V, None), (7, wire.FETCH, wire.FETCH_V, None)])
    sender = peer.send(one + two)
    assert peer.conn.recv_fetch_discarding()[1] == oracle
    _, frame = peer.conn.recv()
    sender.join(10)
    assert wire.walk_fetch(frame) == [(0, 0, 0, 0, -1, [])]
