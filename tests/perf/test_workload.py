"""A workload's records per batch keep the encoded batch within its batch size, as Kafka's batch.size does."""

from __future__ import annotations

import time

import pytest

from perf import runner
from perf.counters import CPU_NS
from perf.histogram import Histogram
from perf.loadgen import build
from perf.nullsink import NullSinkProcesses
from perf.runner import Workload
from tests.perf import COMPILED


@pytest.mark.parametrize("record_size,batch_size", [(100, 1_000_000), (1024, 65536), (1024, 1_000_000),
                                                    (10, 16384), (1, 1024)])
def test_an_encoded_batch_fits_its_batch_size(record_size, batch_size):
    w = Workload("127.0.0.1:9", "t", 1, record_size, batch_size=batch_size)
    n = w.batch_records
    assert len(build(record_size, n, seed=1)) <= batch_size
    if record_size >= 100:  # and the estimate is not wasteful: a tenth more records would not fit
        assert len(build(record_size, int(n * 1.1) + 1, seed=1)) > batch_size


def test_a_record_larger_than_the_batch_size_still_makes_a_batch_of_one():
    assert Workload("127.0.0.1:9", "t", 1, 1 << 20, batch_size=65536).batch_records == 1


def _spin(spec, counters, results) -> None:
    end = time.process_time() + spec
    while time.process_time() < end:
        pass
    results.put(("ok", Histogram().to_state()))


def _nap(spec, counters, results) -> None:
    time.sleep(spec)
    results.put(("ok", Histogram().to_state()))


def test_load_processes_report_the_cpu_time_they_used_not_the_time_they_took():
    group = runner._Group()
    group.start(_spin, 0.3, group.counter(), group.results)
    group.start(_nap, 0.3, group.counter(), group.results)
    hist, failures = Histogram(), []
    group.collect(hist, failures)
    assert failures == []
    spun, napped = (c[CPU_NS] / 1e9 for c in group.counters)
    assert 0.3 <= spun < 0.6 and napped < 0.1
    assert group.cpu_seconds() == pytest.approx(spun + napped)


def test_a_run_reports_its_load_processes_cpu_time():
    with NullSinkProcesses(processes=1) as sink:
        r = runner.run_produce(Workload(sink.bootstrap, "cpu", 20_000, record_size=512, partitions=2, producers=2,
                                        time_limit=60))
    assert r["records"] == 20_000 and r["errors"] == 0
    assert 0 < r["client_cpu_s"] < 60


def test_the_compiled_loop_takes_a_fixed_rate_unless_its_templates_would_not_fit():
    """The compiled fixed-rate loop holds a request for every partition and record count up to a full
    batch: 1 MB batches of 1 KiB records would need GBs of them, so those runs take the interpreted loop."""
    from dataclasses import replace

    from perf import fixedrate
    from perf.loadgen import ProduceSpec, fixed_rate_loop, payload_pool

    leaders = {p: ("127.0.0.1", 9) for p in range(8)}
    w4 = ProduceSpec("t", leaders, 1024, 100, batch_bytes=16384, rate=1000)
    compiled = "compiled" if fixedrate.AVAILABLE else "interpreted"  # HPBROKER_NO_JIT: always interpreted
    assert fixed_rate_loop(w4) == compiled
    assert fixed_rate_loop(replace(w4, batch_bytes=1_000_000)) == "interpreted"
    assert fixedrate.template_bytes(replace(w4, batch_bytes=1_000_000)) > fixedrate.TEMPLATE_BYTES
    assert fixed_rate_loop(replace(w4, key_times=True)) == compiled
    assert fixed_rate_loop(replace(w4, interpreted=True)) == "interpreted"
    assert fixed_rate_loop(replace(w4, rate=0)) is None
    small = ProduceSpec("topic", {p: ("127.0.0.1", 9) for p in range(3)}, 100, 10, batch_bytes=3000, rate=10)
    frames, start, length, _, _ = fixedrate.templates(small, [0, 1, 2],
                                                      payload_pool(100, small.batch_records, 0)[0])
    assert len(frames) == length.sum() <= fixedrate.template_bytes(small)
    assert (start[:, 1:] + length[:, 1:] <= len(frames)).all() and length[:, 1:].min() > 0


@COMPILED
def test_a_keyed_request_carries_each_records_due_time_under_a_valid_crc():
    """End-to-end runs key every record with its due time: the compiled loop writes the keys into its
    template and computes the batch CRC again, and the batch then decodes to those keys."""
    import struct

    import hotpath
    from hotpath.crc import CRC_TABLES
    from netio.codec.records import decode_batches
    from perf import fixedrate
    from perf.loadgen import ProduceSpec, payload_pool

    spec = ProduceSpec("topic", {p: ("127.0.0.1", 9) for p in range(2)}, 100, 10, batch_bytes=2000, rate=3000.0,
                       key_times=True)
    frames, start, length, batch_at, keys_at = fixedrate.templates(
        spec, [0, 1], payload_pool(100, spec.batch_records, 0)[0])
    begin, interval = 123_456_789_000, 1e9 / spec.rate
    for p in (0, 1):
        for n in (1, spec.batch_records):
            at = start[p, n]
            fixedrate._stamp_keys(frames, at, batch_at[p], keys_at[p, n], 40, n, begin, interval, CRC_TABLES)
            batch = bytes(frames[at + batch_at[p]:at + length[p, n]])
            assert struct.unpack_from(">I", batch, 17)[0] == hotpath.crc32c(batch[21:])
            keys = [int.from_bytes(r.key, "big") for r in decode_batches(batch)]
            assert keys == [begin + int((40 + j) * interval) for j in range(n)]
