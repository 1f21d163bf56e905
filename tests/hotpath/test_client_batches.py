"""Batches written by real clients: kafka-python's RecordBatch builder (every codec it can use here)
and the Produce requests librdkafka (confluent-kafka) and kafka-python sent to the codec's recording
broker (tests/codec/golden). They must scan and validate, any damage must be rejected, and the records
of a compressed one must read back as they were written."""

from pathlib import Path

import numpy as np
import pytest

import hotpath
from hotpath import ScanError
from netio.codec.records import decode_batches, record_times
from tests.hotpath import naive

GOLDEN = Path(__file__).resolve().parents[1] / "codec" / "golden"
CODECS = {"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}


def kafka_python_batch(codec: int, n: int = 20, transactional=False, producer=(-1, -1, -1)) -> bytes:
    from kafka.record.default_records import DefaultRecordBatchBuilder

    builder = DefaultRecordBatchBuilder(magic=2, compression_type=codec, is_transactional=transactional,
                                        producer_id=producer[0], producer_epoch=producer[1],
                                        base_sequence=producer[2], batch_size=1 << 20)
    for i in range(n):
        key = None if i % 3 == 0 else b"key-%d" % i
        headers = [("trace", b"%d" % i)] if i % 2 else []
        builder.append(i, timestamp=1_700_000_000_000 + i, key=key, value=b"x" * (i * 7), headers=headers)
    return bytes(builder.build())


def _codec_available(codec: int) -> bool:
    from kafka import codec as kc

    return {0: True, 1: kc.has_gzip(), 2: kc.has_snappy(), 3: kc.has_lz4(), 4: kc.has_zstd()}[codec]


@pytest.mark.parametrize("name", list(CODECS))
def test_kafka_python_batches_scan(name):
    codec = CODECS[name]
    if not _codec_available(codec):
        pytest.skip(f"kafka-python has no {name} support installed")
    raw = kafka_python_batch(codec, producer=(42, 3, 100))
    res = hotpath.scan_batches(raw + raw, deep=True)
    assert res.error == ScanError.OK and res.count == 2
    assert res.record_count.tolist() == [20, 20] and res.last_offset_delta.tolist() == [19, 19]
    assert (res.attributes & hotpath.COMPRESSION_MASK).tolist() == [codec, codec]
    assert res.producer_id[0] == 42 and res.producer_epoch[0] == 3 and res.base_sequence[0] == 100
    assert res.base_timestamp[0] == 1_700_000_000_000 and res.max_timestamp[0] == 1_700_000_000_019
    assert naive.scan(raw + raw, deep=True)[1] == naive.OK
    # What kafka-python compressed (snappy in the Java producer's snappy-java framing) reads back whole.
    out = decode_batches(raw)
    assert [(r.offset, r.timestamp, r.key, r.value, r.headers) for r in out] == [
        (i, 1_700_000_000_000 + i, None if i % 3 == 0 else b"key-%d" % i, b"x" * (i * 7),
         [("trace", b"%d" % i)] if i % 2 else []) for i in range(20)]
    assert record_times(raw) == [(i, 1_700_000_000_000 + i) for i in range(20)]


def test_kafka_python_transactional_attribute():
    res = hotpath.scan_batches(kafka_python_batch(0, transactional=True, producer=(1, 0, 0)))
    assert res.ok and res.attributes[0] & hotpath.TRANSACTIONAL_BIT


def test_uncompressed_kafka_python_batch_equals_ours():
    from kafka.record.default_records import DefaultRecordBatchBuilder

    builder = DefaultRecordBatchBuilder(2, 0, False, -1, -1, -1, 1 << 20)
    records = [(b"k", b"v", [("h", b"1")]), (None, b"", []), (b"kk", None, [])]
    for i, (k, v, h) in enumerate(records):
        builder.append(i, timestamp=500 + i, key=k, value=v, headers=h)
    theirs = bytes(builder.build())
    # kafka-python writes partitionLeaderEpoch 0 where the Java client writes -1 (our default).
    ours = hotpath.build_records_batch(records, timestamps=np.array([500, 501, 502]), leader_epoch=0)
    assert ours == theirs


@pytest.mark.parametrize("codec", [0, 1])
def test_every_single_byte_corruption_is_rejected(codec):
    if not _codec_available(codec):
        pytest.skip("codec unavailable")
    raw = kafka_python_batch(codec, n=4)
    for at in range(len(raw)):
        if at < 8 or 12 <= at < 16:  # baseOffset, partitionLeaderEpoch: outside the CRC by design
            continue
        bad = bytearray(raw)
        bad[at] ^= 0x40
        res = hotpath.scan_batches(bytes(bad), deep=True)
        assert res.error != ScanError.OK and res.count == 0, at


def _golden_batches(name: str) -> list[bytes]:
    path = GOLDEN / f"{name}.hex"
    if not path.is_file():
        pytest.skip(f"{path} not present")
    frame = bytes.fromhex(path.read_text().strip())
    found = []
    pos = 0
    while pos < len(frame) - 61:
        res = hotpath.scan_batches(frame, start=pos, max_batches=1)
        if res.count == 1:
            found.append(frame[pos : pos + int(res.size[0])])
            pos += int(res.size[0])
        else:
            pos += 1
    return found


@pytest.mark.parametrize("name", ["rdkafka-producer-Produce-v8", "kafkapython-producer-Produce-v8",
                                  "kafkapython011-Produce-v3"])
def test_captured_produce_requests(name):
    batches = _golden_batches(name)
    assert batches, "no RecordBatch with a valid CRC in the captured Produce request"
    for raw in batches:
        res = hotpath.scan_batches(raw, deep=True)
        assert res.ok and res.count == 1 and res.record_count[0] >= 1
        assert res.base_offset[0] == 0  # clients send 0; the broker assigns
        assert naive.scan(raw, deep=True)[1] == naive.OK
        for at in range(21, len(raw)):
            bad = bytearray(raw)
            bad[at] ^= 0x01
            error = hotpath.scan_batches(bytes(bad)).error
            assert error == ScanError.CRC_MISMATCH if at >= 61 else error != ScanError.OK, at
