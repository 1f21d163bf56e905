"""Per-partition log settings: topic override first, then the broker value, then Kafka's default.

``effective_log_config`` is the only place that resolution happens, so the log, retention and the admin APIs
(DescribeConfigs) can never disagree about which value applies. Topic names and per-topic config values are
validated here too, with the rules and error codes Kafka uses.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Mapping

from .errors import InvalidConfig, InvalidTopic

INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1
MAX_TOPIC_NAME = 249
_LEGAL_TOPIC = re.compile(r"[a-zA-Z0-9._-]+")
TIMESTAMP_TYPES = ("CreateTime", "LogAppendTime")
CLEANUP_POLICIES = ("compact", "delete")


@dataclass(frozen=True)
class LogConfig:
    """Effective settings of one partition log (Kafka's defaults)."""

    segment_bytes: int = 1 << 30
    segment_ms: int = 7 * 24 * 3600 * 1000
    index_interval_bytes: int = 4096
    segment_index_bytes: int = 10 << 20
    retention_ms: int = 7 * 24 * 3600 * 1000  # -1: keep forever
    retention_bytes: int = -1  # -1: unlimited
    flush_interval_messages: int = INT64_MAX  # fsync after this many unflushed messages
    flush_interval_ms: int = INT64_MAX  # fsync data older than this
    max_message_bytes: int = 1048588
    message_timestamp_type: str = "CreateTime"
    file_delete_delay_ms: int = 60000
    preallocate: bool = False  # reserve the whole segment at creation (else in growth steps); Kafka's default
    cleanup_policy: str = "delete"  # "delete", "compact" or "compact,delete"
    min_cleanable_dirty_ratio: float = 0.5
    delete_retention_ms: int = 86_400_000  # how long a compacted log keeps tombstones
    min_compaction_lag_ms: int = 0
    max_compaction_lag_ms: int = INT64_MAX

    def __post_init__(self):
        # Normalized here too, so code that builds a LogConfig directly can use either order.
        object.__setattr__(self, "cleanup_policy", _cleanup_policy("cleanup.policy", self.cleanup_policy))
        # The active segment is never compacted, so a compacted log also rolls by max.compaction.lag.ms
        # (Kafka's rule: the time-based roll comes at the smaller of the two).
        object.__setattr__(self, "roll_ms", min(self.segment_ms, self.max_compaction_lag_ms)
                           if self.cleanup_policy != "delete" else self.segment_ms)
        if not 0 <= self.min_cleanable_dirty_ratio <= 1:
            raise InvalidConfig(f"min.cleanable.dirty.ratio {self.min_cleanable_dirty_ratio} outside [0, 1]")
        if self.delete_retention_ms < 0 or self.min_compaction_lag_ms < 0 or self.max_compaction_lag_ms < 1:
            raise InvalidConfig("delete.retention.ms and min.compaction.lag.ms must be >= 0, "
                                "max.compaction.lag.ms >= 1")
        if self.segment_bytes < 14:
            raise InvalidConfig(f"segment.bytes {self.segment_bytes} < 14")
        if self.segment_index_bytes < 12:
            raise InvalidConfig(f"segment.index.bytes {self.segment_index_bytes} < 12")
        if self.message_timestamp_type not in TIMESTAMP_TYPES:
            raise InvalidConfig(f"message.timestamp.type {self.message_timestamp_type!r} not in {TIMESTAMP_TYPES}")

    @property
    def log_append_time(self) -> bool:
        return self.message_timestamp_type == "LogAppendTime"

    @property
    def compact(self) -> bool:
        return self.cleanup_policy != "delete"  # normalized: "delete", "compact" or "compact,delete"; per append

    @property
    def delete(self) -> bool:
        return self.cleanup_policy != "compact"

    @property
    def max_index_entries(self) -> int:
        return self.segment_index_bytes // 12  # both indexes hold the same number of entries, as in Kafka


def validate_topic_name(name: str) -> str:
    """Kafka's ``Topic.validate``: raise ``InvalidTopic`` for an illegal name, else return it."""
    if not isinstance(name, str) or not name:
        raise InvalidTopic("topic name is empty")
    if name in (".", ".."):
        raise InvalidTopic(f"topic name cannot be {name!r}")
    if len(name) > MAX_TOPIC_NAME:
        raise InvalidTopic(f"topic name is longer than {MAX_TOPIC_NAME} characters")
    if not _LEGAL_TOPIC.fullmatch(name):
        raise InvalidTopic(f"topic name {name!r} has characters outside [a-zA-Z0-9._-]")
    return name


def _long(lo: int, hi: int = INT64_MAX):
    def parse(key: str, value: Any) -> int:
        try:
            n = int(str(value).strip())
        except ValueError:
            raise InvalidConfig(f"{key}={value!r} is not an integer") from None
        if not lo <= n <= hi:
            raise InvalidConfig(f"{key}={n} outside [{lo}, {hi}]")
        return n
    return parse


def _double(lo: float, hi: float):
    def parse(key: str, value: Any) -> float:
        try:
            x = float(str(value).strip())
        except ValueError:
            raise InvalidConfig(f"{key}={value!r} is not a number") from None
        if not (math.isfinite(x) and lo <= x <= hi):
            raise InvalidConfig(f"{key}={x} outside [{lo}, {hi}]")
        return x
    return parse


def _timestamp_type(key: str, value: Any) -> str:
    if value not in TIMESTAMP_TYPES:
        raise InvalidConfig(f"{key}={value!r} must be one of {', '.join(TIMESTAMP_TYPES)}")
    return value


def _cleanup_policy(key: str, value: Any) -> str:
    """Kafka's list forms ("compact,delete", a broker key's parsed tuple) as one normalized string: "delete",
    "compact" or "compact,delete", so the same policy always compares and shows the same."""
    text = ",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)
    policies = [p.strip() for p in text.split(",") if p.strip()]  # blank items dropped, as broker list keys do
    bad = [p for p in policies if p not in CLEANUP_POLICIES]
    if bad or not policies:
        raise InvalidConfig(f"{key}={text!r}: expected delete, compact or both (comma-separated), "
                            f"got {', '.join(repr(p) for p in bad) or 'nothing'}")
    if len(set(policies)) != len(policies):
        raise InvalidConfig(f"{key}={text!r}: a policy is named twice")
    return ",".join(p for p in CLEANUP_POLICIES if p in policies)


def _compression_type(key: str, value: Any) -> str:
    if str(value).strip().lower() != "producer":
        raise InvalidConfig(f"{key}={value!r}: batches are stored as the producer compressed them; "
                            "only compression.type=producer is supported")
    return "producer"


def _boolean(key: str, value: Any) -> bool:
    text = str(value).strip().lower()
    if text not in ("true", "false"):
        raise InvalidConfig(f"{key}={value!r} must be true or false")
    return text == "true"


# Per-topic key -> (parser, broker key it overrides). Values are kept as parsed, so DescribeConfigs can show them.
TOPIC_CONFIGS = {
    "retention.ms": (_long(-1), "log.retention.ms"),
    "retention.bytes": (_long(-1), "log.retention.bytes"),
    "segment.bytes": (_long(14, INT32_MAX), "log.segment.bytes"),
    "segment.ms": (_long(1), "log.roll.ms"),
    "max.message.bytes": (_long(0, INT32_MAX), "message.max.bytes"),
    "message.timestamp.type": (_timestamp_type, "log.message.timestamp.type"),
    "min.insync.replicas": (_long(1, INT32_MAX), "min.insync.replicas"),
    "cleanup.policy": (_cleanup_policy, "log.cleanup.policy"),
    "min.cleanable.dirty.ratio": (_double(0, 1), "log.cleaner.min.cleanable.ratio"),
    "delete.retention.ms": (_long(0), "log.cleaner.delete.retention.ms"),
    "min.compaction.lag.ms": (_long(0), "log.cleaner.min.compaction.lag.ms"),
    "max.compaction.lag.ms": (_long(1), "log.cleaner.max.compaction.lag.ms"),
    "flush.messages": (_long(1), "log.flush.interval.messages"),
    "flush.ms": (_long(0), "log.flush.interval.ms"),
    "compression.type": (_compression_type, None),
    "index.interval.bytes": (_long(0, INT32_MAX), "log.index.interval.bytes"),
    "segment.index.bytes": (_long(12, INT32_MAX), "log.index.size.max.bytes"),
    "preallocate": (_boolean, "log.preallocate"),
}


def validate_topic_configs(configs: Mapping[str, Any] | None) -> dict[str, Any]:
    """Parse per-topic overrides; unknown keys and bad values raise ``InvalidConfig``."""
    out: dict[str, Any] = {}
    for key, value in (configs or {}).items():
        if key not in TOPIC_CONFIGS:
            raise InvalidConfig(f"unknown topic config {key!r}; known: {', '.join(sorted(TOPIC_CONFIGS))}")
        if value is None:
            continue
        out[key] = TOPIC_CONFIGS[key][0](key, value)
    return out


def _first(values: Mapping[str, Any], *keys_and_scales: tuple[str, int]) -> int | None:
    for key, scale in keys_and_scales:
        v = values.get(key)
        if v is not None:
            v = int(v)
            return v if v < 0 else v * scale
    return None


def effective_log_config(topic_configs: Mapping[str, Any] | None, broker_values: Mapping[str, Any] | None) -> LogConfig:
    """Resolve topic override -> broker value (Kafka key names) -> default into one ``LogConfig``."""
    t = validate_topic_configs(topic_configs)
    b = broker_values or {}
    d = LogConfig()
    hour = 3600 * 1000

    def pick(topic_key: str, broker: int | str | None, default):
        if topic_key in t:
            return t[topic_key]
        return default if broker is None else broker

    segment_ms = _first(b, ("log.roll.ms", 1), ("log.roll.hours", hour))
    retention_ms = _first(b, ("log.retention.ms", 1), ("log.retention.minutes", 60000), ("log.retention.hours", hour))
    flush_ms = b.get("log.flush.interval.ms")
    flush_msgs = b.get("log.flush.interval.messages")
    policy = b.get("log.cleanup.policy")
    return LogConfig(
        segment_bytes=int(pick("segment.bytes", b.get("log.segment.bytes"), d.segment_bytes)),
        segment_ms=int(pick("segment.ms", segment_ms, d.segment_ms)),
        index_interval_bytes=int(pick("index.interval.bytes", b.get("log.index.interval.bytes"),
                                      d.index_interval_bytes)),
        segment_index_bytes=int(pick("segment.index.bytes", b.get("log.index.size.max.bytes"),
                                     d.segment_index_bytes)),
        retention_ms=int(pick("retention.ms", retention_ms, d.retention_ms)),
        retention_bytes=int(pick("retention.bytes", b.get("log.retention.bytes"), d.retention_bytes)),
        flush_interval_messages=int(pick("flush.messages", flush_msgs, d.flush_interval_messages)),
        flush_interval_ms=int(pick("flush.ms", flush_ms, d.flush_interval_ms)),
        max_message_bytes=int(pick("max.message.bytes", b.get("message.max.bytes"), d.max_message_bytes)),
        message_timestamp_type=pick("message.timestamp.type", b.get("log.message.timestamp.type"),
                                    d.message_timestamp_type),
        file_delete_delay_ms=int(b.get("log.segment.delete.delay.ms", d.file_delete_delay_ms)),
        preallocate=bool(pick("preallocate", b.get("log.preallocate"), d.preallocate)),  # parsed on both sides
        cleanup_policy=pick("cleanup.policy", None if policy is None else _cleanup_policy("log.cleanup.policy", policy),
                            d.cleanup_policy),
        min_cleanable_dirty_ratio=float(pick("min.cleanable.dirty.ratio", b.get("log.cleaner.min.cleanable.ratio"),
                                             d.min_cleanable_dirty_ratio)),
        delete_retention_ms=int(pick("delete.retention.ms", b.get("log.cleaner.delete.retention.ms"),
                                     d.delete_retention_ms)),
        min_compaction_lag_ms=int(pick("min.compaction.lag.ms", b.get("log.cleaner.min.compaction.lag.ms"),
                                       d.min_compaction_lag_ms)),
        max_compaction_lag_ms=int(pick("max.compaction.lag.ms", b.get("log.cleaner.max.compaction.lag.ms"),
                                       d.max_compaction_lag_ms)),
    )

