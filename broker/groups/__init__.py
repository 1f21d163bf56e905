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


_SLOT_BITS = 24
_HAS_HOST = 1 << 56


def route_key(slot: int, peer: str) -> int:
    """The key a group request is forwarded with: the coordinator partition's state slot in the low 24
    bits and, for an IPv4 client, its address above them (members show it as their client host)."""
    import ipaddress

    try:
        ip = int(ipaddress.IPv4Address(peer.rpartition(":")[0]))
    except ValueError:
        return slot
    return _HAS_HOST | (ip << _SLOT_BITS) | slot


def parse_route_key(key: int) -> tuple[int, str]:
    """(slot, client host as Kafka prints it, "/a.b.c.d", or "") from `route_key`; -1 stays -1."""
    import ipaddress

    if key < 0 or not key & _HAS_HOST:
        return key, ""
    ip = (key & (_HAS_HOST - 1)) >> _SLOT_BITS
    return key & ((1 << _SLOT_BITS) - 1), "/" + str(ipaddress.IPv4Address(ip))
