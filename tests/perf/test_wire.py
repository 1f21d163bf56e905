"""The harness's Produce response walker against the codec's generic decoder (its oracle)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from netio.codec import encode_response
from perf import wire

_partition = st.fixed_dictionaries({
    "index": st.integers(0, 2**31 - 1), "error_code": st.sampled_from([0, 0, 0, 1, 2, 6, 10, 19]),
    "base_offset": st.integers(-1, 2**63 - 1), "log_append_time_ms": st.integers(-1, 2**40),
    "log_start_offset": st.integers(-1, 2**63 - 1)})
_topic = st.fixed_dictionaries({"name": st.text(min_size=0, max_size=20),
                                "partition_responses": st.lists(_partition, max_size=5)})


@given(topics=st.lists(_topic, max_size=4), throttle=st.integers(0, 1000))
@settings(max_examples=200, deadline=None)
def test_produce_errors_counts_what_the_generic_decoder_sees(topics, throttle):
    frame = encode_response(wire.PRODUCE, wire.PRODUCE_V, 7, {"responses": topics, "throttle_time_ms": throttle})
    _, body = wire.decode_response(wire.PRODUCE, wire.PRODUCE_V, memoryview(frame)[4:])
    expected = sum(1 for t in body["responses"] for p in t["partition_responses"] if p["error_code"])
    assert wire.produce_errors(memoryview(frame)[4:]) == expected
