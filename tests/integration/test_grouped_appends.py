"""Produce requests that reach a partition's owner together are written together, and each is still
answered on its own: offsets in the order sent, a corrupt batch among them refused alone, every record
read back where its answer said."""

from __future__ import annotations

import urllib.request

import hotpath
from perf import wire
from tests.integration.test_produce_fetch import consume_confluent
from tools.testing import BrokerProcess
from tools.top.promtext import parse, total

REQUESTS = 60
PARTITIONS = 2


def grouped_appends(broker: BrokerProcess) -> float:
    with urllib.request.urlopen(broker.metrics_url, timeout=10) as r:
        return total(parse(r.read().decode()), "hpbroker_grouped_appends_total")


def test_a_burst_of_requests_is_appended_per_partition_in_order(tmp_path):
    with BrokerProcess(data_dir=str(tmp_path), network_threads=1, io_threads=1,
                       settings={"metrics.listener": "127.0.0.1:0"}) as b:
        conn = wire.Connection(*wire.parse_bootstrap(b.bootstrap))
        wire.ensure_topic(conn, "burst", PARTITIONS)
        bad = {17, 42}
        frames, sent = [], []
        for i in range(REQUESTS):
            p = i % PARTITIONS
            values = [b"%03d-%d" % (i, k) * (1 + i % 7) for k in range(1 + i % 4)]
            records = bytearray(hotpath.build_records_batch([(None, v) for v in values]))
            if i in bad:
                records[-1] ^= 0xFF  # under the CRC
            frame = wire.produce_frame("burst", {p: bytes(records)}, acks=1)
            corr = conn.next_corr()
            wire._CORR.pack_into(frame, 8, corr)
            conn.pending.append((corr, wire.PRODUCE, wire.PRODUCE_V, None))
            frames.append(frame)
            sent.append((p, values))
        conn.sock.sendall(b"".join(frames))  # one burst: the owner finds many appends queued per partition

        next_offset = {p: 0 for p in range(PARTITIONS)}
        expected = {p: [] for p in range(PARTITIONS)}
        for i, (p, values) in enumerate(sent):
            _, frame = conn.recv()
            _, body = wire.decode_response(wire.PRODUCE, wire.PRODUCE_V, bytes(frame))
            part = body["responses"][0]["partition_responses"][0]
            if i in bad:
                assert part["error_code"] == 2, part  # CORRUPT_MESSAGE, for this request alone
                continue
            assert part["error_code"] == 0, (i, part)
            assert part["base_offset"] == next_offset[p], (i, part, next_offset)
            next_offset[p] += len(values)
            expected[p] += [(next_offset[p] - len(values) + k, v) for k, v in enumerate(values)]
        conn.close()

        assert grouped_appends(b) > 0, "no appends were written together"
        got = consume_confluent(b.bootstrap, "burst", sum(map(len, expected.values())), partitions=PARTITIONS)
        assert got == expected


def test_idempotent_batches_in_a_burst_are_checked_in_order_and_written_together(tmp_path):
    """Batches with a producer id that reach the owner together are written together too, and answered
    exactly as one by one: a retry gets its original offset, a corrupt batch is refused alone and the next
    sequence after it is out of order until the refused one is sent again."""
    import numpy as np

    def records(pid, seq, values, corrupt=False):
        b = bytearray(hotpath.build_records_batch(
            [(None, v) for v in values], timestamps=np.full(len(values), 1_700_000_000_000, np.int64),
            producer_id=pid, producer_epoch=0 if pid >= 0 else -1, base_sequence=seq))
        if corrupt:
            b[-1] ^= 0xFF
        return bytes(b)

    with BrokerProcess(data_dir=str(tmp_path), network_threads=1, io_threads=1,
                       settings={"metrics.listener": "127.0.0.1:0"}) as b:
        conn = wire.Connection(*wire.parse_bootstrap(b.bootstrap))
        wire.ensure_topic(conn, "idem", 1)
        pid, _ = wire.init_producer_id(conn)
        before = grouped_appends(b)
        v = [[b"r%d-%d" % (i, k) for k in range(n)] for i, n in enumerate([2, 3, 2, 1, 1, 1, 2, 2, 1])]
        burst = [  # (records, expected error code, expected base offset)
            (records(pid, 0, v[0]), 0, 0),
            (records(pid, 2, v[1]), 0, 2),
            (records(pid, 0, v[2]), 0, 0),            # sequences 0-1 again: a retry of the first
            (records(pid, 5, v[3], corrupt=True), 2, -1),  # CORRUPT_MESSAGE
            (records(pid, 6, v[4]), 45, -1),          # OUT_OF_ORDER_SEQUENCE_NUMBER: 5 is not in the log
            (records(pid, 5, v[5]), 0, 5),
            (records(-1, -1, v[6]), 0, 6),            # no producer id
            (records(pid, 6, v[7]), 0, 8),
            (records(pid, 20, v[8]), 45, -1),
        ]
        frames = []
        for recs, _, _ in burst:
            frame = wire.produce_frame("idem", {0: recs}, acks=-1)
            corr = conn.next_corr()
            wire._CORR.pack_into(frame, 8, corr)
            conn.pending.append((corr, wire.PRODUCE, wire.PRODUCE_V, None))
            frames.append(frame)
        conn.sock.sendall(b"".join(frames))  # one burst: the owner finds them queued together
        for i, (_, code, base) in enumerate(burst):
            _, frame = conn.recv()
            _, body = wire.decode_response(wire.PRODUCE, wire.PRODUCE_V, bytes(frame))
            part = body["responses"][0]["partition_responses"][0]
            assert part["error_code"] == code, (i, part)
            if code == 0:
                assert part["base_offset"] == base, (i, part)
        conn.close()
        assert grouped_appends(b) > before, "the burst was not written together"
        got = consume_confluent(b.bootstrap, "idem", 10, partitions=1)
    written = v[0] + v[1] + v[5] + v[6] + v[7]
    assert got == {0: list(enumerate(written))}
