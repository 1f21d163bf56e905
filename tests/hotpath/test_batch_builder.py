"""The batch builder: byte-for-byte equal to the twin, readable by kafka-python, input validation."""

import numpy as np
import pytest
from hypothesis import given, settings

import hotpath
from tests.hotpath import naive
from tests.hotpath.batch_strategies import batch_kwargs, records_and_timestamps


def _columns(items):
    data = b"".join(items)
    offsets = np.zeros(len(items) + 1, np.int64)
    np.cumsum([len(x) for x in items], out=offsets[1:])
    return np.frombuffer(data, np.uint8), offsets


@settings(max_examples=80, deadline=None)
@given(records_and_timestamps(), batch_kwargs())
def test_records_batch_matches_twin(rt, kwargs):
    records, timestamps = rt
    built = hotpath.build_records_batch(records, timestamps=np.array(timestamps), **kwargs)
    assert built == naive.build(records, timestamps, **kwargs)
    batches, error, _ = naive.scan(built, deep=True)
    assert error == naive.OK and len(batches) == 1


@settings(max_examples=40, deadline=None)
@given(records_and_timestamps(max_records=30))
def test_columnar_batch_matches_twin(rt):
    records, timestamps = rt
    values = [b"" if v is None else v for _, v, _ in records]
    keys = [b"" if k is None else k for k, _, _ in records]
    vdata, voff = _columns(values)
    kdata, koff = _columns(keys)
    flat = [h for _, _, hs in records for h in hs]
    hkd, hko = _columns([k for k, _ in flat])
    hvd, hvo = _columns([b"" if v is None else v for _, v in flat])
    headers = hotpath.Headers(np.array([len(hs) for *_, hs in records]), hkd, hko, hvd, hvo,
                              np.array([v is None for _, v in flat], bool))
    out = hotpath.build_batch(
        vdata, voff, kdata, koff, timestamps=np.array(timestamps, np.int64), headers=headers,
        key_nulls=np.array([k is None for k, _, _ in records]),
        value_nulls=np.array([v is None for _, v, _ in records]),
    )
    assert out.dtype == np.uint8
    assert out.tobytes() == naive.build(records, timestamps)


def test_kafka_python_reads_what_we_build():
    from kafka.record.default_records import DefaultRecordBatch

    records = [(b"k0", b"v0", []), (None, b"v1", [("h", b"x"), ("n", None)]), (b"k2", None, [])]
    built = hotpath.build_records_batch(records, timestamps=np.array([1000, 999, 1005]), producer_id=5,
                                        producer_epoch=1, base_sequence=10)
    batch = DefaultRecordBatch(built)
    assert batch.validate_crc()
    assert (batch.producer_id, batch.producer_epoch, batch.base_sequence) == (5, 1, 10)
    got = [(r.offset, r.timestamp, r.key, r.value, r.headers) for r in batch]
    assert got == [(0, 1000, b"k0", b"v0", []), (1, 999, None, b"v1", [("h", b"x"), ("n", None)]),
                   (2, 1005, b"k2", None, [])]
    assert batch.max_timestamp == 1005


def test_null_keys_scalar_timestamp_and_large_batch():
    n = 20_000
    values = np.random.default_rng(0).integers(0, 256, n * 100, dtype=np.uint8)
    offsets = np.arange(0, n * 100 + 1, 100, dtype=np.int64)
    out = hotpath.build_batch(values, offsets, timestamps=1_700_000_000_000)
    res = hotpath.scan_batches(out, deep=True)
    assert res.error == hotpath.ScanError.OK and res.count == 1
    assert res.record_count[0] == n and res.last_offset_delta[0] == n - 1
    assert res.base_timestamp[0] == res.max_timestamp[0] == 1_700_000_000_000
    assert out.tobytes()[-101:-1] == values[-100:].tobytes()  # last value, then headerCount 0


def test_default_timestamp_is_now():
    import time

    before = int(time.time() * 1000)
    out = hotpath.build_batch(np.zeros(3, np.uint8), np.array([0, 1, 3]))
    res = hotpath.scan_batches(out)
    assert before <= res.base_timestamp[0] <= int(time.time() * 1000)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(values_offsets=[0, 5, 3]), "values_offsets"),
        (dict(values_offsets=[0, 11]), "values_offsets"),
        (dict(values_offsets=[-1, 2]), "values_offsets"),
        (dict(keys_data=b"ab", keys_offsets=[0, 3]), "keys_offsets"),
        (dict(keys_data=b"ab", keys_offsets=[0, 1, 2]), "keys_offsets"),
        (dict(values_offsets=[0]), "at least one record"),
        (dict(attributes=1), "compression"),
        (dict(producer_epoch=2**15), "producer_epoch"),
        (dict(base_sequence=2**31), "base_sequence"),
        (dict(timestamps=[0, 0]), "timestamps"),
        (dict(values_offsets=[0, 5, 10], timestamps=[2**62, -(2**62) - 10]), "overflow"),
        (dict(headers=hotpath.Headers([2], b"ab", [0, 1], b"", [0, 0])), "header"),
        (dict(headers=hotpath.Headers([1], b"ab", [0, 3], b"", [0, 0])), "header"),
        (dict(headers=hotpath.Headers([-1], b"", [0], b"", [0])), "header"),
    ],
)
def test_invalid_inputs_raise(kwargs, message):
    args = dict(values_data=np.frombuffer(b"0123456789", np.uint8), values_offsets=[0, 10])
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        hotpath.build_batch(**args)
