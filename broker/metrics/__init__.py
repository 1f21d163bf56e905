"""Broker metrics: per-process counter blocks in shared memory, read and exposed by the supervisor.

`block` holds the layout-backed writer every worker updates (no syscall, no lock per update);
`exposition` turns the blocks, the partition-state table, ring headers, consumer-group offsets (`groups`)
and process stats into Prometheus text; `server` serves it over HTTP from a thread of the supervisor.
"""

from broker.metrics.block import PROC, MetricsRegion, now_us

__all__ = ["PROC", "MetricsRegion", "now_us"]
