"""A workload's records per batch keep the encoded batch within its batch size, as Kafka's batch.size does."""

from __future__ import annotations

import pytest

from perf.loadgen import build
from perf.runner import Workload


@pytest.mark.parametrize("record_size,batch_size", [(100, 1_000_000), (1024, 65536), (1024, 1_000_000),
                                                    (10, 16384), (1, 1024)])
def test_an_encoded_batch_fits_its_batch_size(record_size, batch_size):
    w = Workload("127.0.0.1:9", "t", 1, record_size, batch_size=batch_size)
    n = w.batch_records
    assert len(build(record_size, n, seed=1)) <= batch_size
    if record_size >= 100:  # and the estimate is not wasteful: a tenth more records would not fit
        assert len(build(record_size, int(n * 1.1) + 1, seed=1)) > batch_size


def test_a_record_larger_than_the_batch_size_still_makes_a_batch_of_one():
    assert Workload("127.0.0.1:9", "t", 1, 1 << 20, batch_size=65536).batch_records == 1
