"""Consumer groups (classic protocol) and committed offsets.

A group's coordinator is the I/O worker that owns its `__consumer_offsets` partition
(`partition_for(group, partitions)`, Kafka's own choice), so each group has exactly one coordinating
process. That worker keeps the group state machines (`group`) in memory, writes every commit and every
group change to the partition (`storage`), and rebuilds both from the partition when it opens it
(`coordinator`).
"""

from __future__ import annotations

OFFSETS_TOPIC = "__consumer_offsets"


def java_string_hashcode(s: str) -> int:
    """String.hashCode() of the JVM (UTF-16 code units, 32-bit wrap), as Kafka places groups with it."""
    h = 0
    data = s.encode("utf-16-be")
    for i in range(0, len(data), 2):
        h = (31 * h + ((data[i] << 8) | data[i + 1])) & 0xFFFFFFFF
    return h - (1 << 32) if h >= 1 << 31 else h


def partition_for(group_id: str, partitions: int) -> int:
    """Kafka's `Utils.abs(groupId.hashCode) % partitions` (Utils.abs maps MIN_VALUE to 0)."""
    h = java_string_hashcode(group_id)
    return (0 if h == -(1 << 31) else abs(h)) % partitions
