"""``PartitionLog.append_many`` against its oracle, one ``append`` per source."""

from __future__ import annotations

import errno
import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import hotpath
from broker.log import PartitionLog, StorageError

from .storage_helpers import batch, read_all, small_config
from .test_write_pieces import covers_aligned_block, sources_of, spy_writes

NOW = 1_700_000_000_000


def _source(kind: str, i: int, n: int, size: int) -> bytes:
    if kind == "ok":
        return batch(n, value_size=size, tag=i)
    if kind == "corrupt":  # a flipped byte under the CRC
        b = bytearray(batch(n, value_size=size, tag=i))
        b[-1] ^= 0xFF
        return bytes(b)
    if kind == "multi":  # Produce before v3: several batches in one record set
        return batch(n, value_size=size, tag=i) + batch(1, value_size=size, tag=i + 1)
    return batch(3, value_size=1500, tag=i)  # "big": over max.message.bytes


def _outcome(r):
    return type(r).__name__ if isinstance(r, Exception) else tuple(r)


def _segments_within(log: PartitionLog, segment_bytes: int, outcomes: list) -> None:
    """Only one source's batches may pass segment.bytes, alone in their segment (as with one append each)."""
    alone = {(r[0], r[1] + 1) for r in outcomes if isinstance(r, tuple)}
    for seg in log.segments:
        if seg.size > segment_bytes:
            assert (seg.base_offset, seg.next_offset) in alone, (seg.base_offset, seg.size, segment_bytes)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kinds=st.lists(st.tuples(st.sampled_from(["ok"] * 6 + ["corrupt", "multi", "big"]),
                                st.integers(1, 5), st.sampled_from([10, 200, 900])), min_size=1, max_size=14),
       cuts=st.lists(st.integers(0, 14), max_size=3),
       segment_bytes=st.sampled_from([1500, 4000, 64 << 10]),
       append_time=st.booleans())
def test_append_many_matches_one_append_per_source(tmp_path_factory, kinds, cuts, segment_bytes, append_time):
    sources = [_source(kind, i, n, size) for i, (kind, n, size) in enumerate(kinds)]
    cfg = small_config(segment_bytes=segment_bytes, max_message_bytes=3000,
                       message_timestamp_type="LogAppendTime" if append_time else "CreateTime")
    root = tmp_path_factory.mktemp("many")
    grouped = PartitionLog.open(str(root / "grouped-0"), cfg)
    single = PartitionLog.open(str(root / "single-0"), cfg)
    try:
        expected = []
        for src in sources:
            try:
                expected.append(_outcome(single.append(src, leader_epoch=2, now_ms=NOW)))
            except Exception as e:  # the error append raises is what append_many must return
                expected.append(_outcome(e))
        got = []
        bounds = sorted({0, len(sources), *[c for c in cuts if c <= len(sources)]})
        for a, b in zip(bounds, bounds[1:]):
            got += [_outcome(r) for r in grouped.append_many(sources[a:b], leader_epoch=2, now_ms=NOW)]
        assert got == expected
        assert grouped.log_end_offset == single.log_end_offset
        stored = read_all(grouped)
        assert stored == read_all(single)
        for offset, body in stored:  # the index leads every read to the batch holding the offset
            res = hotpath.scan_batches(grouped.read(offset, 1).view())
            assert int(res.base_offset[0]) == offset
        _segments_within(grouped, segment_bytes, got)
        grouped.close(clean=False)
        reopened = PartitionLog.open(str(root / "grouped-0"), cfg, recover=True)
        assert read_all(reopened) == stored  # every grouped write passes recovery's CRC walk
        reopened.close()
    finally:
        for log in (grouped, single):
            try:
                log.close(clean=False)
            except Exception:
                pass


def test_a_failed_group_write_fails_every_source_and_shows_none(open_log, monkeypatch):
    log = open_log(small_config(segment_bytes=1 << 20))
    log.append(batch(2, tag=1))

    def eio(fd, buffers, offset):
        raise OSError(errno.EIO, "I/O error")

    monkeypatch.setattr(os, "pwritev", eio)
    out = log.append_many([batch(1, tag=2), batch(3, tag=3), batch(2, tag=4)])
    assert [type(r) for r in out] == [StorageError] * 3
    assert all(r.error_code == 56 for r in out)
    assert log.log_end_offset == 2
    monkeypatch.undo()
    assert log.offline  # an I/O error takes the log offline, as for one append
    assert [type(r) for r in log.append_many([batch(1), batch(1)])] == [StorageError] * 2


def test_a_group_write_also_reaches_the_page_cache_in_pieces(open_log, monkeypatch):
    log = open_log(small_config(segment_bytes=8 << 20, max_message_bytes=1 << 20))
    log.append(batch(1, value_size=100, tag=9))
    sources = sources_of([20_000] * 8 + [130_000])
    calls = spy_writes(monkeypatch)
    assert all(not isinstance(r, Exception) for r in log.append_many(sources))
    monkeypatch.undo()
    assert len(calls) > 1 and not [c for c in calls if covers_aligned_block(*c)], calls
    assert [b for _, b in read_all(log)][1:] == [s[16:] for s in sources]


def test_after_a_failed_write_no_later_source_is_written(open_log, monkeypatch):
    """A full disk fails a write without taking the log offline. The sources after it in the same call fail
    too, though a later write might succeed: an idempotent producer's next batch must not land before the
    retry of the one refused."""
    log = open_log(small_config(segment_bytes=1500))
    sources = [batch(1, value_size=900, tag=i) for i in range(3)]  # too big to share a write under 1500
    real = os.pwritev
    calls = []

    def full_once(fd, buffers, offset):
        calls.append(offset)
        if len(calls) == 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd, buffers, offset)

    monkeypatch.setattr(os, "pwritev", full_once)
    out = log.append_many(sources)
    assert [type(r) for r in out] == [StorageError] * 3 and len(calls) == 1
    assert not log.offline and log.log_end_offset == 0
    assert [tuple(r)[:2] for r in log.append_many(sources)] == [(0, 0), (1, 1), (2, 2)]  # the retry, in order
