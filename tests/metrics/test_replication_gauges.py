"""The replication gauges a broker exposes for the partitions it hosts, over a snapshot with a running
reassignment: what each broker counts (a partition once in the cluster: by its leader)."""

from __future__ import annotations

from broker.metadata import ClusterMetadata, PartitionInfo, TopicInfo
from broker.metrics.exposition import Text, _replication
from tools.top.promtext import parse, total


def snapshot() -> ClusterMetadata:
    parts = (
        # moving from {1, 2} to {2, 3}: 3 is catching up, 1 goes once it has
        PartitionInfo(0, 1, (2, 3, 1), (1, 2), 4, 0, 0, adding=(3,), removing=(1,)),
        # settled, but 3 fell out of the ISR
        PartitionInfo(1, 1, (1, 3), (1,), 2, 0, 1),
        # led elsewhere, moving too
        PartitionInfo(2, 2, (2, 1), (2, 1), 1, 0, 2, adding=(), removing=(2,)),
        # not hosted here
        PartitionInfo(3, 3, (3,), (3,), 1, -1, -1),
    )
    return ClusterMetadata(7, "c", 1, (), {"t": TopicInfo("t", b"\0" * 16, parts)})


def test_reassigning_and_under_replicated_partitions_are_counted_by_their_leader():
    t = Text()
    _replication(t, snapshot(), broker_id=1)
    s = parse(t.text())
    assert total(s, "hpbroker_reassigning_partitions") == 1  # partition 0; partition 2 is broker 2's to count
    # partition 0's ISR {1, 2} covers its replicas without the adding one; partition 1 lacks broker 3
    assert total(s, "hpbroker_under_replicated_partitions") == 1
    assert total(s, "hpbroker_partition_replicas", topic="t", partition=0) == 3
    assert "3" not in {lab["partition"] for lab, _ in s["hpbroker_partition_isr_size"]}
