"""Batch scan: every field and every error against the twin, on built, mutated and random buffers."""

import struct

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import hotpath
from tests.hotpath import naive
from tests.hotpath.batch_strategies import batch_kwargs, records_and_timestamps
from hotpath import ScanError

FIELDS = ["pos", "size", "base_offset", "last_offset_delta", "record_count", "attributes", "base_timestamp",
          "max_timestamp", "producer_id", "producer_epoch", "base_sequence", "leader_epoch"]


def assert_same_as_twin(buf, **kwargs):
    res = hotpath.scan_batches(buf, **kwargs)
    batches, error, error_pos = naive.scan(buf, **kwargs)
    assert (res.count, int(res.error), res.error_pos) == (len(batches), error, error_pos)
    assert res.valid_bytes == error_pos - kwargs.get("start", 0)
    for name in FIELDS:
        assert getattr(res, name).tolist() == [b[name] for b in batches], name
    return res


def batch(n=3, value=b"value", **kwargs):
    return hotpath.build_records_batch([(b"key%d" % i, value, [("h", b"v")]) for i in range(n)],
                                       timestamps=1000, **kwargs)


def with_fixed_crc(raw: bytes) -> bytes:
    out = bytearray(raw)
    struct.pack_into(">I", out, 17, naive.crc32c(out[21:]))
    return bytes(out)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(records_and_timestamps(max_records=5), batch_kwargs()), min_size=1, max_size=4),
       st.booleans())
def test_concatenated_batches_match_twin(parts, deep):
    buf = b"".join(naive.build(records, ts, **kw) for (records, ts), kw in parts)
    res = assert_same_as_twin(buf, deep=deep)
    assert res.error == ScanError.OK and res.count == len(parts) and res.error_pos == len(buf)


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_mutated_buffers_match_twin(data):
    """Flip, cut or insert bytes anywhere: same verdict as the twin, never a crash."""
    parts = [batch(data.draw(st.integers(1, 4), label="n")) for _ in range(data.draw(st.integers(1, 3)))]
    buf = bytearray(b"".join(parts))
    for _ in range(data.draw(st.integers(1, 3), label="mutations")):
        kind = data.draw(st.sampled_from(["flip", "cut", "insert", "set"]))
        at = data.draw(st.integers(0, len(buf)))
        if kind == "flip" and at < len(buf):
            buf[at] ^= 1 << data.draw(st.integers(0, 7))
        elif kind == "set" and at < len(buf):
            buf[at] = data.draw(st.integers(0, 255))
        elif kind == "cut":
            del buf[at:]
        else:
            buf[at:at] = data.draw(st.binary(min_size=1, max_size=4))
    assert_same_as_twin(bytes(buf), deep=data.draw(st.booleans()),
                        max_batch_bytes=data.draw(st.sampled_from([2**31 - 1, 200, 61])))


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=300), st.booleans())
def test_random_bytes_match_twin(buf, deep):
    assert_same_as_twin(buf, deep=deep)


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_corrupt_records_with_valid_crc_match_twin(data):
    """Damage inside the records with the CRC fixed up: only the deep check can notice."""
    raw = bytearray(batch(data.draw(st.integers(1, 4))))
    at = data.draw(st.integers(61, len(raw) - 1))
    raw[at] = data.draw(st.integers(0, 255))
    buf = with_fixed_crc(bytes(raw))
    assert hotpath.scan_batches(buf).error == ScanError.OK
    assert_same_as_twin(buf, deep=True)


def test_each_error_code():
    good = batch()
    size = len(good)
    cases = {
        ScanError.TRUNCATED: [good[:16], good[:60], good[:-1]],
        ScanError.BAD_MAGIC: [good[:16] + b"\x01" + good[17:]],
        ScanError.BAD_LENGTH: [good[:8] + struct.pack(">i", 48) + good[12:],
                               good[:8] + struct.pack(">i", -12) + good[12:]],
        ScanError.COUNT_MISMATCH: [with_fixed_crc(good[:57] + struct.pack(">i", 4) + good[61:]),
                                   with_fixed_crc(good[:23] + struct.pack(">i", -2) + good[27:57]
                                                  + struct.pack(">i", -1) + good[61:])],
        ScanError.CRC_MISMATCH: [good[:-1] + bytes([good[-1] ^ 0x80]), good[:17] + b"\0\0\0\0" + good[21:]],
        ScanError.BAD_RECORD: [with_fixed_crc(good[:61] + b"\x7f" + good[62:])],
    }
    for error, bufs in cases.items():
        for buf in bufs:
            res = hotpath.scan_batches(good + buf, deep=True)
            assert (res.count, res.error, res.error_pos) == (1, error, size), error
            assert not res.ok
    res = hotpath.scan_batches(good, max_batch_bytes=size - 1)
    assert (res.count, res.error) == (0, ScanError.TOO_LARGE)
    assert hotpath.scan_batches(good, max_batch_bytes=size).ok


def test_kafka_error_codes():
    assert ScanError.CRC_MISMATCH.kafka_error == 2  # CORRUPT_MESSAGE
    assert ScanError.TOO_LARGE.kafka_error == 10  # MESSAGE_TOO_LARGE
    assert ScanError.COUNT_MISMATCH.kafka_error == 87  # INVALID_RECORD
    assert ScanError.OK.kafka_error == 0
    assert all(isinstance(e.kafka_error, int) for e in ScanError)


def test_deep_check_skips_compressed_batches():
    good = batch(attributes=0)
    # Mark as gzip: the records are then an opaque blob the scan must not parse.
    gz = with_fixed_crc(good[:21] + struct.pack(">h", 1) + good[23:61] + b"\xff" * (len(good) - 61))
    assert hotpath.scan_batches(gz, deep=True).ok
    assert hotpath.scan_batches(with_fixed_crc(good[:61] + b"\xff" * (len(good) - 61)), deep=True).error \
        == ScanError.BAD_RECORD


def test_range_and_limits():
    a, b, c = batch(1), batch(2), batch(3)
    buf = np.frombuffer(b"xx" + a + b + c + b"yy", np.uint8)
    res = assert_same_as_twin(buf, start=2, end=len(buf) - 2)
    assert res.count == 3 and res.pos.tolist() == [2, 2 + len(a), 2 + len(a) + len(b)]
    res = assert_same_as_twin(buf, start=2, max_batches=2)
    assert res.ok and res.count == 2 and res.error_pos == 2 + len(a) + len(b)
    assert hotpath.scan_batches(buf, start=2, max_batches=0).count == 0
    res = hotpath.scan_batches(buf, start=2)
    assert (res.count, res.error, res.error_pos) == (3, ScanError.TRUNCATED, len(buf) - 2)
    assert res.records == 6
    empty = hotpath.scan_batches(b"")
    assert (empty.count, empty.error, empty.error_pos, empty.pos.tolist()) == (0, ScanError.OK, 0, [])


@pytest.mark.parametrize("start,end", [(-1, None), (5, 4), (0, 10**6)])
def test_bad_range_raises(start, end):
    with pytest.raises(ValueError):
        hotpath.scan_batches(batch(), start=start, end=end)


def test_field_dtypes():
    res = hotpath.scan_batches(batch() + batch())
    dtypes = {name: getattr(res, name).dtype for name in FIELDS}
    assert dtypes["pos"] == np.int64 and dtypes["base_offset"] == np.int64
    assert dtypes["last_offset_delta"] == np.int32 and dtypes["record_count"] == np.int32
    assert dtypes["attributes"] == np.int16 and dtypes["producer_epoch"] == np.int16
    assert dtypes["base_sequence"] == np.int32 and dtypes["leader_epoch"] == np.int32
    assert all(len(getattr(res, name)) == 2 for name in FIELDS)


@settings(max_examples=60, deadline=None)
@given(records_and_timestamps(max_records=6), batch_kwargs(), st.data())
def test_compacted_batch_holds_fewer_records_than_its_offset_range(records_ts, kwargs, data):
    """Compaction drops records but keeps a batch's last offset, so a log's batch may hold fewer records than
    lastOffsetDelta + 1; only a producer's batch (deep) must hold exactly that many. More is never valid."""
    records, timestamps = records_ts
    records, timestamps = records + records[:1], timestamps + timestamps[:1]  # at least one to drop
    n = len(records)
    full = naive.build(records, timestamps, **kwargs)
    (starts, ends, *_), _ = naive.scan_records(full, 61, len(full), n)
    keep = sorted(data.draw(st.sets(st.integers(0, n - 2), max_size=n - 2), label="kept")) + [n - 1]
    head = bytearray(full[:61])
    body = b"".join(full[starts[i] : ends[i]] for i in keep)
    struct.pack_into(">i", head, 8, 61 - 12 + len(body))
    struct.pack_into(">i", head, 57, len(keep))
    compacted = with_fixed_crc(bytes(head) + body)
    cols, _ = hotpath.scan_records(compacted, 61, len(compacted), len(keep))
    assert cols[hotpath.records.OFFSET_DELTA].tolist() == keep

    buf = compacted + batch(2)
    res = assert_same_as_twin(buf)
    assert res.ok and res.count == 2 and res.error_pos == len(buf)
    assert (res.record_count[0], res.last_offset_delta[0]) == (len(keep), n - 1)
    res = assert_same_as_twin(buf, deep=True)
    assert (res.count, res.error, res.error_pos) == (0, ScanError.COUNT_MISMATCH, 0)
    assert assert_same_as_twin(full, deep=True).ok

    over = bytearray(full)
    struct.pack_into(">i", over, 23, n - 1 - data.draw(st.integers(1, n), label="missing"))
    buf = batch(1) + with_fixed_crc(bytes(over))
    for deep in (False, True):
        res = assert_same_as_twin(buf, deep=deep)
        assert (res.count, res.error, res.error_pos) == (1, ScanError.COUNT_MISMATCH, len(batch(1)))
