"""The follower's append of a leader's response: batches already held are skipped, a batch the log ends
inside is taken whole after cutting the log back to its start. And the high watermark checkpoint."""

from __future__ import annotations

import struct

import numpy as np

import hotpath
from broker.log import LogConfig, PartitionLog
from broker.replication.follower import append


def batch(base: int, n: int, tag: bytes = b"v") -> bytes:
    raw = bytearray(hotpath.build_records_batch([(None, tag + b"%d" % (base + i)) for i in range(n)],
                                                timestamps=np.full(n, 1_700_000_000_000 + base, np.int64)))
    struct.pack_into(">q", raw, 0, base)  # the base offset is outside the CRC
    return bytes(raw)


def open_log(tmp_path) -> PartitionLog:
    return PartitionLog.open(str(tmp_path / "t-0"), LogConfig(segment_bytes=1 << 20, preallocate=False))


def held(plog: PartitionLog) -> bytes:
    seg = plog.active_segment
    with open(seg.log_path, "rb") as f:
        return f.read(seg.size)


def test_batches_already_held_are_skipped(tmp_path):
    plog = open_log(tmp_path)
    try:
        append(plog, batch(0, 5) + batch(5, 5))
        assert plog.log_end_offset == 10
        append(plog, batch(0, 5) + batch(5, 5) + batch(10, 5))
        assert plog.log_end_offset == 15
        assert held(plog) == batch(0, 5) + batch(5, 5) + batch(10, 5)
        append(plog, batch(10, 5))  # nothing new: nothing appended
        assert plog.log_end_offset == 15
    finally:
        plog.close()


def test_a_batch_the_log_ends_inside_replaces_the_tail(tmp_path):
    plog = open_log(tmp_path)
    try:
        append(plog, batch(0, 5) + batch(5, 3, b"old"))  # this log's own cut of offsets 5..7
        assert plog.log_end_offset == 8
        append(plog, batch(5, 5) + batch(10, 2))
        assert plog.log_end_offset == 12
        assert held(plog) == batch(0, 5) + batch(5, 5) + batch(10, 2)
    finally:
        plog.close()


def test_high_watermark_checkpoint_survives_reopening(tmp_path):
    from broker.replication import restore_high_watermark, save_high_watermarks

    plog = open_log(tmp_path)
    append(plog, batch(0, 5) + batch(5, 5))
    plog.high_watermark = 5
    save_high_watermarks([plog])
    plog.close()
    plog = open_log(tmp_path)
    try:
        assert plog.high_watermark == 10  # a log alone knows no better than its end
        restore_high_watermark(plog)
        assert plog.high_watermark == 5
    finally:
        plog.close()
