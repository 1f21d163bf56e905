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
