"""Record scan: columns and key hashes against the twin on well-formed records sections (compacted offset
deltas, null keys, values and header values, extreme timestamp deltas, non-minimal varints), and on damaged
sections, where kernel and twin must reject the same record."""

from itertools import accumulate
from typing import NamedTuple

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import hotpath
from hotpath import records
from hotpath.records import END, FLAGS, KEY_NULL, OFFSET_DELTA, START, TIMESTAMP_DELTA, VALUE_NULL
from tests.hotpath import naive

INT64 = st.integers(-(2**63), 2**63 - 1)
FIELD = st.none() | st.binary(max_size=24)
HEADERS = st.lists(st.tuples(st.binary(max_size=6), st.none() | st.binary(max_size=6)), max_size=3)
MINIMAL = b"\x0c\x00\x00\x00\x01\x01\x00"  # length 6, attributes, deltas 0, null key and value, no headers

# Varints the scan must refuse wherever they appear: longer than the type allows, or wider than its bits.
OVERLONG_INT = [b"\x80" * 5 + b"\x00", b"\xff\xff\xff\xff\x10", b"\xff" * 5 + b"\x01"]
OVERLONG_LONG = [b"\x80" * 10 + b"\x00", b"\xff" * 9 + b"\x02", b"\xff" * 11]
# Well-formed varints whose value no record can have in that field.
OUT_OF_RANGE = {
    "length": [-1, 0, 5, 2**31 - 1],
    "offset": [-1, -(2**31)],
    "key": [-2, -(2**31), 2**31 - 1],
    "value": [-2, 2**31 - 1],
    "headers": [-1, 2**31 - 1],
    "header_key": [-1, -2, 2**31 - 1],
    "header_value": [-2, 2**31 - 1],
}


class Rec(NamedTuple):
    attributes: int
    timestamp_delta: int
    offset_delta: int
    key: bytes | None
    value: bytes | None
    headers: list
    pad: int  # extra continuation bytes in each varint, where the type's width allows


def varint(n: int, width: int = 5, pad: int = 0) -> bytes:
    """Zigzag varint, `pad` bytes longer than needed when it still fits `width`: non-minimal, still valid."""
    enc = bytearray(naive.encode_varint(n))
    pad = min(pad, width - len(enc))
    if pad > 0:
        enc[-1] |= 0x80
        enc += b"\x80" * (pad - 1) + b"\x00"
    return bytes(enc)


def encode_record(r: Rec, bad: tuple[str, bytes] | None = None) -> bytes:
    """One record; `bad` = (field, raw bytes) replaces that field's varint (a header's: the first header's)."""

    def v(field, n, width=5):
        return bad[1] if bad is not None and field == bad[0] else varint(n, width, r.pad)

    def sized(field, data):
        return v(field, -1 if data is None else len(data)) + (data or b"")

    body = bytes([r.attributes]) + v("timestamp", r.timestamp_delta, 10) + v("offset", r.offset_delta)
    body += sized("key", r.key) + sized("value", r.value) + v("headers", len(r.headers))
    for j, (hk, hv) in enumerate(r.headers):
        body += sized("header_key" if j == 0 else None, hk) + sized("header_value" if j == 0 else None, hv)
    return v("length", len(body)) + body


@st.composite
def offset_deltas(draw, n):
    """Increasing with gaps, as compaction leaves them, or in any order: the scan only requires >= 0."""
    if draw(st.booleans()):
        gaps = draw(st.lists(st.integers(1, 2**27), min_size=n, max_size=n))
        return list(accumulate(gaps, initial=draw(st.integers(0, 3))))[:n]
    return draw(st.lists(st.integers(0, 2**31 - 1), min_size=n, max_size=n))


@st.composite
def record_lists(draw, min_records=0, max_records=8):
    n = draw(st.integers(min_records, max_records))
    offsets = draw(offset_deltas(n))
    pad = st.sampled_from([0, 0, 0, 1, 4, 9])
    ts = st.one_of(INT64, st.integers(-1000, 1000), st.sampled_from([-(2**63), 2**63 - 1]))
    return [Rec(draw(st.integers(0, 255)), draw(ts), off, draw(FIELD), draw(FIELD), draw(HEADERS), draw(pad))
            for off in offsets]


class Placed(NamedTuple):
    buf: object
    start: int
    end: int


@st.composite
def placed(draw, section: bytes) -> Placed:
    """The section between unrelated bytes, in any buffer type the scan accepts."""
    prefix, suffix = draw(st.binary(max_size=6)), draw(st.binary(max_size=6))
    raw = prefix + section + suffix
    kind = draw(st.sampled_from([bytes, bytearray, memoryview, np.ndarray]))
    buf = np.frombuffer(raw, np.uint8).copy() if kind is np.ndarray else kind(raw)
    return Placed(buf, len(prefix), len(prefix) + len(section))


def outcome(buf, start, end, count):
    """The kernel's (cols, hashes) as lists, or its error message; the twin must give exactly the same."""
    try:
        cols, hashes = hotpath.scan_records(buf, start, end, count)
        assert cols.dtype == np.int64 and cols.shape == (5, count)
        assert hashes.dtype == np.uint64 and hashes.shape == (2, count)
        got = (cols.tolist(), hashes.tolist())
    except ValueError as e:
        got = str(e)
    try:
        want = naive.scan_records(buf, start, end, count)
    except ValueError as e:
        want = str(e)
    assert got == want
    return got


def rejected(section_len: int, count: int, record: int) -> str:
    if count > section_len // 7:
        return f"{count} records cannot fit in {section_len} bytes"
    if record == count:
        return f"bytes follow the last of {count} records"
    return f"record {record} of {count} is malformed"


# ------------------------------------------------------------------------------------ well formed


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_well_formed_sections_match_twin(data):
    recs = data.draw(record_lists())
    encoded = [encode_record(r) for r in recs]
    where = data.draw(placed(b"".join(encoded)))
    got = outcome(where.buf, where.start, where.end, len(recs))
    assert not isinstance(got, str), got
    cols, hashes = got
    ends = list(accumulate((len(e) for e in encoded), initial=where.start))
    assert cols[START] == ends[:-1] and cols[END] == ends[1:]
    assert cols[OFFSET_DELTA] == [r.offset_delta for r in recs]
    assert cols[TIMESTAMP_DELTA] == [r.timestamp_delta for r in recs]
    assert cols[FLAGS] == [(KEY_NULL if r.key is None else 0) | (VALUE_NULL if r.value is None else 0)
                           for r in recs]
    assert list(zip(*hashes)) == [hotpath.key_hash(r.key) for r in recs]


@settings(max_examples=200, deadline=None)
@given(st.none() | st.binary(max_size=64))
def test_key_hash_matches_twin(key):
    assert hotpath.key_hash(key) == naive.record_key_hashes(key)


def test_distinct_keys_get_distinct_hash_pairs():
    """Compaction keeps one record per hash pair, so distinct keys sharing a pair would lose data."""
    rng = np.random.default_rng(7)
    keys = [None, b""] + [b"\x00" * n for n in range(1, 65)] + [b"\xff" * n for n in range(1, 65)]
    keys += [b"user-%d" % i for i in range(2000)] + [i.to_bytes(4, "little") for i in range(1000)]
    keys += [rng.bytes(int(rng.integers(1, 40))) for _ in range(1000)]
    keys = list(dict.fromkeys(keys))
    section = b"".join(encode_record(Rec(0, 0, i, k, b"v", [], 0)) for i, k in enumerate(keys))
    _, hashes = hotpath.scan_records(section, 0, len(section), len(keys))
    pairs = list(zip(*hashes.tolist()))
    assert len(set(pairs)) == len(keys)
    assert pairs[:2] == [hotpath.key_hash(None), hotpath.key_hash(b"")]
    # FNV-1a alone cannot tell a null key from an empty one; the length seed of the second hash does.
    assert pairs[0][0] == pairs[1][0] and pairs[0][1] != pairs[1][1]


# ---------------------------------------------------------------------------------------- damaged


@st.composite
def damaged(draw):
    """-> (section bytes, count, the record both must reject: `count` for bytes left over)."""
    recs = draw(record_lists(min_records=1))
    encoded = [encode_record(r) for r in recs]
    n = len(recs)
    ends = list(accumulate(len(e) for e in encoded))
    section = b"".join(encoded)
    kind = draw(st.sampled_from(["truncated", "wrong_length", "trailing", "count_high", "count_low",
                                 "bad_varint"]))
    if kind == "truncated":
        cut = draw(st.integers(0, len(section) - 1))
        return section[:cut], n, sum(e <= cut for e in ends)
    if kind == "trailing":
        return section + draw(st.binary(min_size=1, max_size=10)), n, n
    if kind == "count_high":
        return section, n + draw(st.integers(1, 3)), n
    if kind == "count_low":
        low = draw(st.integers(0, n - 1))
        return section, low, low
    i = draw(st.integers(0, n - 1))
    if kind == "wrong_length":
        body = len(encode_record(recs[i], ("length", b"")))
        length = body + draw(st.integers(-body, 2**20).filter(bool))
        bad = ("length", naive.encode_varint(length))
    else:
        fields = ["length", "timestamp", "offset", "key", "value", "headers"]
        fields += ["header_key", "header_value"] if recs[i].headers else []
        field = draw(st.sampled_from(fields))
        raws = OVERLONG_LONG if field == "timestamp" else OVERLONG_INT + [
            naive.encode_varint(x) for x in OUT_OF_RANGE[field]]
        bad = (field, draw(st.sampled_from(raws)))
    encoded[i] = encode_record(recs[i], bad)
    return b"".join(encoded), n, i


@settings(max_examples=250, deadline=None)
@given(st.data())
def test_damaged_sections_rejected_at_the_same_record(data):
    section, count, record = data.draw(damaged())
    where = data.draw(placed(section))
    got = outcome(where.buf, where.start, where.end, count)
    assert got == rejected(len(section), count, record)


BAD_FIELDS = [("timestamp", raw) for raw in OVERLONG_LONG] + [
    (field, raw) for field, values in OUT_OF_RANGE.items()
    for raw in OVERLONG_INT + [naive.encode_varint(x) for x in values]]


@pytest.mark.parametrize("field,raw", BAD_FIELDS)
def test_each_bad_field_rejected(field, raw):
    """Every field's refusals, in the middle record of three, with the twin naming the same record."""
    good = Rec(0, -5, 3, b"k", b"v", [(b"h", None), (b"i", b"x")], 0)
    bad = encode_record(good._replace(offset_delta=9), (field, raw))
    section = encode_record(good) + bad + encode_record(good)
    assert outcome(section, 0, len(section), 3) == rejected(len(section), 3, 1)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_mutated_sections_match_twin(data):
    """Flip, set, cut or insert bytes anywhere in the section: the same columns or the same error."""
    recs = data.draw(record_lists(max_records=5))
    section = bytearray(b"".join(encode_record(r) for r in recs))
    for _ in range(data.draw(st.integers(1, 3))):
        kind = data.draw(st.sampled_from(["flip", "set", "cut", "insert"]))
        at = data.draw(st.integers(0, len(section)))
        if kind == "flip" and at < len(section):
            section[at] ^= 1 << data.draw(st.integers(0, 7))
        elif kind == "set" and at < len(section):
            section[at] = data.draw(st.integers(0, 255))
        elif kind == "cut":
            del section[at : at + data.draw(st.integers(1, 8))]
        else:
            section[at:at] = data.draw(st.binary(min_size=1, max_size=4))
    where = data.draw(placed(bytes(section)))
    outcome(where.buf, where.start, where.end, max(0, len(recs) + data.draw(st.integers(-1, 1))))


class _NoAlloc:
    """Stands in for numpy in hotpath.records: allocating columns fails the test."""

    def __getattr__(self, name):
        return getattr(np, name)

    def empty(self, *args, **kwargs):
        raise AssertionError("columns allocated for a count that cannot fit")


def test_count_beyond_the_smallest_records_raises_before_allocating(monkeypatch):
    section = MINIMAL * 5
    assert outcome(section, 0, 35, 5)[0][START] == [0, 7, 14, 21, 28]
    assert outcome(section + b"\x00" * 6, 0, 41, 5) == "bytes follow the last of 5 records"
    assert outcome(section, 0, 34, 5) == "5 records cannot fit in 34 bytes"
    monkeypatch.setattr(records, "np", _NoAlloc())
    for count, end in [(6, 35), (6, 41), (1, 6), (10**15, 35), (2**62, 35), (-1, 35)]:
        with pytest.raises(ValueError, match="cannot fit"):
            hotpath.scan_records(section + b"\x00" * 6, 0, end, count)
        with pytest.raises(ValueError, match="cannot fit"):
            naive.scan_records(section + b"\x00" * 6, 0, end, count)


@pytest.mark.parametrize("start,end", [(-1, 7), (8, 7), (0, 43), (43, 43)])
def test_bad_range(start, end):
    assert outcome(MINIMAL * 6, start, end, 0).startswith("bad range")


def test_empty_section():
    assert outcome(b"xyz", 1, 1, 0) == ([[]] * 5, [[]] * 2)
    assert outcome(b"xyz", 1, 3, 0) == "bytes follow the last of 0 records"
