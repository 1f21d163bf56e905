"""Hypothesis strategies for records and batches shared by the batch tests."""

from hypothesis import strategies as st

SMALL = st.binary(max_size=40)
HEADER = st.tuples(st.binary(max_size=8), st.none() | st.binary(max_size=8))
RECORD = st.tuples(st.none() | SMALL, st.none() | SMALL, st.lists(HEADER, max_size=3))


@st.composite
def records_and_timestamps(draw, max_records=12):
    records = draw(st.lists(RECORD, min_size=1, max_size=max_records))
    base = draw(st.integers(-(2**40), 2**45))
    timestamps = [base + draw(st.integers(-(2**20), 2**20)) for _ in records]
    return records, timestamps


@st.composite
def batch_kwargs(draw):
    return dict(
        base_offset=draw(st.integers(0, 2**62)),
        producer_id=draw(st.sampled_from([-1, 0, 7, 2**62])),
        producer_epoch=draw(st.integers(-1, 2**15 - 1)),
        base_sequence=draw(st.integers(-1, 2**31 - 1)),
        attributes=draw(st.sampled_from([0, 0x10, 0x20, 0x30])),
        leader_epoch=draw(st.integers(-1, 2**31 - 1)),
    )
