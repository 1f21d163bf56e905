"""The null sink speaks enough Kafka for the harness and for a real client, and counts what it is sent."""

import os
import signal
import struct
import threading
import time
from dataclasses import replace

import pytest

from confluent_kafka import Producer

from netio.codec import decode_response
from perf import loadgen, wire
from perf.counters import BYTES, COUNTERS, ERRORS, RECORDS, REQUESTS, STARTED
from perf.loadgen import ProduceSpec, build
from perf.nullsink import NullSinkProcesses
from perf.runner import Workload, run_consume, run_produce
from tests.perf import COMPILED


def test_produce_offsets_advance_per_partition_and_fetch_starts_at_the_requested_offset():
    with NullSinkProcesses(processes=1, partitions=3, record_size=100) as sink:
        conn = wire.Connection("127.0.0.1", sink.port)
        try:
            assert sorted(wire.ensure_topic(conn, "t", 3)) == [0, 1, 2]
            bases = []
            for _ in range(3):
                conn.send(wire.produce_frame("t", {0: build(100, 5, 1), 2: build(100, 7, 2)}, acks=1),
                          wire.PRODUCE, wire.PRODUCE_V)
                _, frame = conn.recv()
                body = decode_response(wire.PRODUCE, wire.PRODUCE_V, bytes(frame))[1]
                parts = body["responses"][0]["partition_responses"]
                assert [p["error_code"] for p in parts] == [0, 0]
                bases.append([p["base_offset"] for p in parts])
            assert bases == [[0, 0], [5, 7], [10, 14]]

            conn.send(wire.fetch_frame("t", {1: 1000}, 0, 1 << 20), wire.FETCH, wire.FETCH_V)
            _, frame = conn.recv()
            [(partition, error, records, nbytes, next_offset, _)] = wire.walk_fetch(frame)
            assert (partition, error) == (1, 0)
            assert records > 0 and nbytes > 0
            assert next_offset == 1000 + records
        finally:
            conn.close()


def test_each_partition_of_a_fetch_is_numbered_from_its_own_offset():
    with NullSinkProcesses(processes=1, partitions=3, record_size=100) as sink:
        conn = wire.Connection("127.0.0.1", sink.port)
        try:
            wire.ensure_topic(conn, "t", 3)
            for offsets in ({0: 5, 1: 700, 2: 0}, {0: 9000, 2: 40}, {0: 300, 1: 300}, {1: 12}):
                conn.send(wire.fetch_frame("t", offsets, 0, 1 << 20), wire.FETCH, wire.FETCH_V)
                _, frame = conn.recv()
                parts = wire.walk_fetch(frame, want_batches=True)
                assert sorted(p[0] for p in parts) == sorted(offsets)
                for partition, error, records, _, next_offset, spans in parts:
                    assert error == 0 and records > 0
                    first = struct.unpack_from(">q", frame, spans[0][0])[0]
                    assert (first, next_offset) == (offsets[partition], offsets[partition] + records)
        finally:
            conn.close()


def test_harness_runs_against_the_sink():
    with NullSinkProcesses(processes=1) as sink:
        w = Workload(sink.bootstrap, "sink", 20_000, record_size=512, partitions=4, producers=2, consumers=2,
                     time_limit=60)
        produced = run_produce(w)
        consumed = run_consume(w)
    for r in (produced, consumed):
        assert r["records"] == 20_000 and r["errors"] == 0 and r["complete"], r
    assert produced["mb_per_sec"] > 0 and produced["latency_ms"]["max"] >= produced["latency_ms"]["p50"] > 0


def test_a_real_client_produces_to_the_sink():
    delivered = []
    with NullSinkProcesses(processes=1, partitions=2) as sink:
        p = Producer({"bootstrap.servers": sink.bootstrap, "linger.ms": 1})
        for i in range(100):
            p.produce("real", b"v%d" % i, partition=i % 2, on_delivery=lambda err, msg: delivered.append(err))
        assert p.flush(30) == 0
    assert len(delivered) == 100 and all(err is None for err in delivered)


def test_an_idempotent_client_produces_to_the_sink():
    """librdkafka asks for a producer id before its first idempotent batch: the sink must answer it."""
    delivered = []
    with NullSinkProcesses(processes=1, partitions=2) as sink:
        p = Producer({"bootstrap.servers": sink.bootstrap, "linger.ms": 1, "enable.idempotence": True})
        for i in range(100):
            p.produce("real", b"v%d" % i, partition=i % 2, on_delivery=lambda err, msg: delivered.append(err))
        assert p.flush(20) == 0
    assert len(delivered) == 100 and all(err is None for err in delivered)


def test_each_sink_process_is_a_broker_leading_every_nth_partition():
    with NullSinkProcesses(processes=2, partitions=5) as sink:
        conn = wire.Connection("127.0.0.1", sink.port)
        try:
            leaders = wire.leaders(conn, "spread")
        finally:
            conn.close()
        ports = sorted({port for _, port in leaders.values()})
        assert len(ports) == 2 and sink.port in ports
        assert [leaders[p][1] == leaders[0][1] for p in range(5)] == [True, False, True, False, True]
        for port in ports:                    # each answers on its own port, as a broker of its own
            conn = wire.Connection("127.0.0.1", port)
            try:
                assert wire.leaders(conn, "spread") == leaders
            finally:
                conn.close()
        w = Workload(sink.bootstrap, "spread", 20_000, record_size=512, partitions=5, producers=2, consumers=2,
                     time_limit=60)
        produced = run_produce(w)
        consumed = run_consume(replace(w, discard_records=True))
    for r in (produced, consumed):
        assert r["records"] == 20_000 and r["errors"] == 0 and r["complete"], r


FIXED_RATE_LOOPS = [pytest.param(loadgen._scheduled_compiled, id="compiled", marks=COMPILED),
                    pytest.param(loadgen._scheduled, id="interpreted")]


def _topic(sink, name: str, partitions: int) -> dict:
    conn = wire.Connection("127.0.0.1", sink.port)
    try:
        return wire.ensure_topic(conn, name, partitions)
    finally:
        conn.close()


def _sleep_into_schedule(counters, seconds: float) -> None:
    """Until `seconds` after a fixed-rate loop's schedule started (the compiled loop is loaded before it)."""
    while not counters[STARTED]:
        time.sleep(0.01)
    time.sleep(max(counters[STARTED] / 1e9 + seconds - time.monotonic(), 0))


@pytest.mark.parametrize("loop", FIXED_RATE_LOOPS)
def test_a_fixed_rate_counts_a_stall_in_every_record_due_during_it(loop):
    """At a fixed rate each record's latency runs from its due time, not from when it could be sent, so a
    server that stops answering shows up in every record that fell due meanwhile (no coordinated omission).
    Here the sink is stopped for 300 ms of a 2,000 records/s run: the ~400 records due in its first 200 ms
    each wait at least 100 ms, over 10% of the 3,000. Counted from their send, only the few requests in
    flight when it stopped would."""
    with NullSinkProcesses(processes=1, partitions=2) as sink:
        leaders = _topic(sink, "stall", 2)
        spec = ProduceSpec(topic="stall", leaders=leaders, record_size=100, num_records=3000, rate=2000,
                           batch_bytes=1000, inflight=5, time_limit=60)
        pid = sink.procs[0].pid

        def stall():
            _sleep_into_schedule(counters, 0.5)
            os.kill(pid, signal.SIGSTOP)
            time.sleep(0.3)
            os.kill(pid, signal.SIGCONT)

        staller = threading.Thread(target=stall)
        counters = [0] * COUNTERS
        staller.start()
        try:
            hist = loop(spec, counters)
        finally:
            staller.join()
    assert counters[RECORDS] == hist.count == 3000
    assert counters[ERRORS] == 0 and 3000 / 5 <= counters[REQUESTS] <= 3000  # up to 5 records a batch
    assert hist.percentile(100) >= 280e6  # ns: the first record due after the stop waited all of it
    assert hist.percentile(90) >= 100e6
    assert hist.percentile(50) < 100e6  # and the records before and after it did not


@pytest.mark.parametrize("loop", FIXED_RATE_LOOPS)
def test_a_fixed_rate_run_whose_server_goes_away_fails_with_a_message(loop):
    """A server killed mid-run ends a fixed-rate loop with an error (the run reports it), not a hang until
    the time limit or a count of records nobody acknowledged."""
    with NullSinkProcesses(processes=1, partitions=2) as sink:
        leaders = _topic(sink, "gone", 2)
        spec = ProduceSpec(topic="gone", leaders=leaders, record_size=100, num_records=20_000, rate=2000,
                           batch_bytes=1000, inflight=5, time_limit=60)
        pid = sink.procs[0].pid
        counters = [0] * COUNTERS

        def kill():
            _sleep_into_schedule(counters, 0.3)
            os.kill(pid, signal.SIGKILL)

        killer = threading.Thread(target=kill)
        killer.start()
        try:
            with pytest.raises((wire.KafkaError, ConnectionError)):
                loop(spec, counters)
        finally:
            killer.join()
        assert time.monotonic() - counters[STARTED] / 1e9 < 5
    assert 0 < counters[RECORDS] < 20_000


@COMPILED
@pytest.mark.parametrize("acks", [0, 1])
def test_the_compiled_loop_counts_what_the_interpreted_loop_counts(acks):
    """The same fixed-rate spec through both loops against the sink: every record counted once, with its
    bytes, no errors, and each record's latency taken (acks=0: at its send, as the interpreted loop does)."""
    with NullSinkProcesses(processes=2, partitions=4) as sink:
        leaders = _topic(sink, "same", 4)
        spec = ProduceSpec(topic="same", leaders=leaders, record_size=200, num_records=4000, rate=8000, acks=acks,
                           batch_bytes=2000, inflight=3, linger_ms=1.0, time_limit=60)
        seen = []
        for loop in (loadgen._scheduled_compiled, loadgen._scheduled):
            counters = [0] * COUNTERS
            hist = loop(spec, counters)
            seen.append((counters[RECORDS], counters[BYTES], counters[ERRORS], hist.count))
            assert 4000 / spec.batch_records <= counters[REQUESTS] <= 4000
            assert 0 <= hist.percentile(50) <= hist.percentile(100) < 5e9
    assert seen[0] == seen[1] == (4000, 4000 * 200, 0, 4000)
