"""What one dashboard frame shows: frozen values, computed by the collector, read by the renderers."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Header:
    url: str
    version: str = "?"
    uptime_s: float = 0.0
    listeners: str = ""
    network_threads: str = "?"
    io_threads: str = "?"
    error: str | None = None  # the endpoint could not be read
    throttled_per_s: float = 0.0  # requests a client quota throttled (byte rates and request time)


@dataclass(frozen=True)
class Throughput:
    bytes_in_per_s: float = 0.0
    bytes_out_per_s: float = 0.0
    records_in_per_s: float = 0.0
    history_in: tuple[float, ...] = ()  # bytes in per second, oldest first, at most one minute
    history_out: tuple[float, ...] = ()


@dataclass(frozen=True)
class WorkerRow:
    role: str
    index: int
    pid: int
    cpu_pct: float
    rss_bytes: int
    requests_per_s: float
    ring_fill: float  # 0..1, fullest request ring the worker writes (network) or reads (io)
    restarts: int = 0


@dataclass(frozen=True)
class PartitionRow:
    topic: str
    partition: int
    records_per_s: float
    log_end_offset: int
    high_watermark: int
    size_bytes: int


@dataclass(frozen=True)
class GroupRow:
    group: str
    partitions: int
    lag: int


@dataclass(frozen=True)
class LatencyRow:
    api: str
    requests_per_s: float
    p50_ms: float | None
    p99_ms: float | None


@dataclass(frozen=True)
class Snapshot:
    header: Header
    throughput: Throughput = field(default_factory=Throughput)
    workers: tuple[WorkerRow, ...] = ()
    partitions: tuple[PartitionRow, ...] = ()  # busiest first
    groups: tuple[GroupRow, ...] | None = None  # None: the broker exposes no group metrics
    latency: tuple[LatencyRow, ...] = ()
