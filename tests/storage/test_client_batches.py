"""Batches built by a real client library (kafka-python), with and without compression, go through the log
unchanged except for baseOffset and partitionLeaderEpoch, and the client decodes what a fetch returns."""

import pytest

from broker.log import LogReader

records_mod = pytest.importorskip("kafka.record.default_records")


def client_batch(codec: int, n: int, start: int) -> bytes:
    b = records_mod.DefaultRecordBatchBuilder(magic=2, compression_type=codec, is_transactional=False,
                                              producer_id=-1, producer_epoch=-1, base_sequence=-1,
                                              batch_size=1 << 20)
    for i in range(n):
        b.append(i, timestamp=1000 + start + i, key=b"k%d" % (start + i), value=b"v" * (start + i), headers=[])
    return bytes(b.build())


@pytest.mark.parametrize("codec", [0, 1])  # none, gzip
def test_kafka_python_batches_round_trip(open_log, part_dir, codec):
    log = open_log()
    sent = 0
    for n in (1, 5, 3):
        r = log.append(client_batch(codec, n, sent), leader_epoch=3)
        assert (r.base_offset, r.last_offset) == (sent, sent + n - 1)
        sent += n
    data = bytes(log.read(0, 1 << 20).view())
    reader_data = bytes(LogReader(part_dir).read(0, 1 << 20, log.log_end_offset, 0).view())
    assert reader_data == data
    got = []
    pos = 0
    while pos < len(data):
        size = int.from_bytes(data[pos + 8: pos + 12], "big") + 12
        batch = records_mod.DefaultRecordBatch(data[pos: pos + size])
        assert batch.validate_crc() and batch.leader_epoch == 3
        got += [(rec.offset, rec.key, rec.timestamp) for rec in batch]
        pos += size
    assert got == [(i, b"k%d" % i, 1000 + i) for i in range(sent)]
