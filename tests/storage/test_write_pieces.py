"""Large appends reach the page cache in pieces that cover no aligned 64 KiB block (so the kernel builds
small folios), byte for byte as written; small appends stay one write."""

from __future__ import annotations

import os

import pytest

from broker.log import segment as segment_mod

from .storage_helpers import batch, read_all, small_config


def spy_writes(monkeypatch) -> list[tuple[int, int]]:
    """(file offset, length) of every pwritev from now on."""
    real = os.pwritev
    calls: list[tuple[int, int]] = []

    def spy(fd, buffers, offset):
        calls.append((offset, sum(len(memoryview(b).cast("B")) for b in buffers)))
        return real(fd, buffers, offset)

    monkeypatch.setattr(os, "pwritev", spy)
    return calls


def covers_aligned_block(offset: int, length: int) -> bool:
    block = segment_mod.SMALL_FOLIO_WRITE
    return -(-offset // block) * block + block <= offset + length


def sources_of(sizes: list[int]) -> list[bytes]:
    return [batch(max(1, s // 10_000), value_size=min(s, 10_000), tag=i) for i, s in enumerate(sizes)]


@pytest.mark.parametrize("sizes", [[300_000], [20_000] * 8, [70_000, 900, 130_000]])
def test_large_writes_reach_the_page_cache_in_pieces_that_cover_no_aligned_block(open_log, monkeypatch, sizes):
    log = open_log(small_config(segment_bytes=8 << 20, max_message_bytes=1 << 20))
    log.append(batch(1, value_size=100, tag=9))  # later writes start unaligned
    sources = sources_of(sizes)
    calls = spy_writes(monkeypatch)
    log.append(b"".join(sources))
    monkeypatch.undo()
    assert len(calls) > 1
    assert not [c for c in calls if covers_aligned_block(*c)], calls
    assert sum(n for _, n in calls) == sum(len(s) for s in sources)
    assert [b for _, b in read_all(log)][1:] == [s[16:] for s in sources]


def test_short_writes_inside_the_pieces_continue_where_they_stopped(open_log, monkeypatch):
    log = open_log(small_config(segment_bytes=8 << 20, max_message_bytes=1 << 20))
    log.append(batch(1, value_size=100))
    real = os.pwritev

    def short(fd, buffers, offset):  # the kernel takes at most 5000 bytes per call
        head = bytes(memoryview(buffers[0]).cast("B"))[:5000]
        return real(fd, [head], offset)

    monkeypatch.setattr(os, "pwritev", short)
    sources = sources_of([300_000, 45_000])
    log.append(b"".join(sources))
    monkeypatch.undo()
    assert [b for _, b in read_all(log)][1:] == [s[16:] for s in sources]


def test_a_small_append_is_one_write(open_log, monkeypatch):
    log = open_log(small_config(segment_bytes=8 << 20))
    log.append(batch(1, value_size=100))
    calls = spy_writes(monkeypatch)
    log.append(batch(20, value_size=1000))
    assert len(calls) == 1
