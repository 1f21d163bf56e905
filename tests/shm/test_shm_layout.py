from __future__ import annotations

import struct

import pytest

from broker.shm import layout


def _spans(fields):
    return sorted((off, off + size, name) for name, off, size in fields)


def _assert_disjoint(fields, limit):
    prev_end, prev = 0, None
    for start, end, name in _spans(fields):
        assert start >= prev_end, f"{name} overlaps {prev}"
        assert end <= limit
        prev_end, prev = end, name


def test_ring_header_fields_are_aligned_and_disjoint():
    fields = [
        ("magic/version/kind", 0, 8),
        ("creator", layout.OFF_CREATOR, 8),
        ("size", layout.OFF_SIZE, 8),
        ("capacity", layout.RING_OFF_CAPACITY, 8),
        ("head", layout.RING_OFF_HEAD, 8),
        ("producer_sleep", layout.RING_OFF_PRODUCER_SLEEP, 8),
        ("full_events", layout.RING_OFF_FULL_EVENTS, 8),
        ("tail", layout.RING_OFF_TAIL, 8),
        ("consumer_sleep", layout.RING_OFF_CONSUMER_SLEEP, 8),
    ]
    _assert_disjoint(fields, layout.RING_HEADER_SIZE)
    for _name, off, _size in fields:
        assert off % 8 == 0
    # producer-written and consumer-written words live on different cache lines
    line = layout.CACHE_LINE
    producer = {layout.RING_OFF_HEAD // line, layout.RING_OFF_PRODUCER_SLEEP // line}
    consumer = {layout.RING_OFF_TAIL // line, layout.RING_OFF_CONSUMER_SLEEP // line}
    assert len(producer) == 1 and len(consumer) == 1 and not producer & consumer
    assert layout.RING_HEADER_SIZE % line == 0


def test_partition_slot_fields_fill_one_cache_line():
    assert layout.PART_SLOT_SIZE == layout.CACHE_LINE
    assert layout.SLOT_OFF_FIELDS + layout.SLOT_FIELDS.size <= layout.PART_SLOT_SIZE
    assert layout.SLOT_OFF_GENERATION == layout.SLOT_OFF_FIELDS + 4 * 8
    assert layout.PART_SLOTS_START == layout.PREAMBLE_SIZE
    assert layout.partition_region_size(3, 5) == 64 + 3 * 64 + 16
    assert layout.watch_offset(3, 5, 2) == 64 + 3 * 64 + 10


def test_shared_formats_are_native_single_words():
    # "<Q" would be packed byte by byte; native formats are one aligned 8-byte store
    for st in (layout.U64, layout.I64, layout.U32_PAIR, layout.SLOT_FIELDS, layout.PREAMBLE):
        assert st.format[0] not in "<>!=", st.format
    assert layout.U64.size == 8 and layout.U32_PAIR.size == 8
    assert layout.PREAMBLE.size <= layout.PREAMBLE_SIZE
    assert struct.pack("I", layout.MAGIC) == b"HPB1"


@pytest.mark.parametrize("n,size", [(0, 16), (1, 24), (8, 24), (9, 32), (65536, 65552)])
def test_entry_size_is_header_plus_payload_rounded_to_8(n, size):
    assert layout.entry_size(n) == size
    assert layout.align8(n) % 8 == 0


def test_docstring_draws_every_offset():
    doc = layout.__doc__
    for off in (
        layout.RING_OFF_CAPACITY,
        layout.RING_OFF_HEAD,
        layout.RING_OFF_PRODUCER_SLEEP,
        layout.RING_OFF_FULL_EVENTS,
        layout.RING_OFF_TAIL,
        layout.RING_OFF_CONSUMER_SLEEP,
        layout.PART_OFF_SLOTS,
        layout.PART_OFF_WATCHERS,
        layout.SLOT_OFF_GENERATION,
    ):
        assert f"+{off} " in doc, off
    for word in ("commit", "KIND_PAD", "seq", "watch matrix", "Metrics region"):
        assert word in doc
