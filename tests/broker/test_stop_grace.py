"""How long the supervisor lets a worker take to stop before killing it."""

from broker.metadata import ClusterMetadata, PartitionInfo, TopicInfo
from broker.supervisor import STOP_GRACE_PER_PARTITION_S, STOP_GRACE_S, stop_grace


def metadata(owners: list[int], slots: bool = True) -> ClusterMetadata:
    parts = tuple(PartitionInfo(i, 0, (0,), (0,), owner=o, slot=i if slots else -1) for i, o in enumerate(owners))
    return ClusterMetadata(1, "c", 0, (), {"t": TopicInfo("t", bytes(16), parts)})


def test_an_io_worker_gets_more_time_for_every_partition_it_must_close():
    md = metadata([0] * 3000 + [1] * 1000)
    assert stop_grace("io", md) == STOP_GRACE_S + 3000 * STOP_GRACE_PER_PARTITION_S  # the busiest worker's
    assert stop_grace("io", md) > 2 * STOP_GRACE_S  # 3,000 partitions: 25 s, not 10
    assert stop_grace("network", md) == STOP_GRACE_S  # a network worker closes no log
    assert stop_grace("io", metadata([0] * 3000, slots=False)) == STOP_GRACE_S  # logs not hosted here
    assert stop_grace("io", None) == STOP_GRACE_S
