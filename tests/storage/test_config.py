import pytest

from broker.log import InvalidConfig, InvalidTopic, LogConfig, effective_log_config, validate_topic_name
from broker.log.config import validate_topic_configs


def test_defaults_are_kafkas():
    c = effective_log_config({}, {})
    assert c == LogConfig()
    assert c.segment_bytes == 1 << 30 and c.retention_ms == 7 * 24 * 3600 * 1000 and c.retention_bytes == -1
    assert c.index_interval_bytes == 4096 and c.message_timestamp_type == "CreateTime"


def test_topic_override_beats_broker_value():
    broker = {"log.segment.bytes": 5000, "log.retention.bytes": 10, "message.max.bytes": 700}
    c = effective_log_config({"segment.bytes": "6000"}, broker)
    assert c.segment_bytes == 6000  # topic wins, parsed from its string form
    assert c.retention_bytes == 10 and c.max_message_bytes == 700  # broker values fill the rest


def test_broker_time_keys_resolve_like_kafka():
    assert effective_log_config({}, {"log.retention.hours": 2}).retention_ms == 2 * 3600_000
    assert effective_log_config({}, {"log.retention.minutes": 3, "log.retention.hours": 2}).retention_ms == 180_000
    assert effective_log_config({}, {"log.retention.ms": 5, "log.retention.minutes": 3}).retention_ms == 5
    assert effective_log_config({}, {"log.retention.ms": -1}).retention_ms == -1
    assert effective_log_config({}, {"log.roll.hours": 1}).segment_ms == 3600_000
    assert effective_log_config({}, {"log.roll.ms": 10, "log.roll.hours": 1}).segment_ms == 10
    assert effective_log_config({"segment.ms": 7}, {"log.roll.ms": 10}).segment_ms == 7


def test_flush_and_timestamp_type_overrides():
    c = effective_log_config({"flush.messages": 1, "message.timestamp.type": "LogAppendTime"},
                             {"log.flush.interval.ms": 100})
    assert c.flush_interval_messages == 1 and c.flush_interval_ms == 100 and c.log_append_time


@pytest.mark.parametrize("configs, fragment", [
    ({"cleanup.policy": ""}, "expected delete, compact or both"),
    ({"cleanup.policy": "compress"}, "got 'compress'"),
    ({"cleanup.policy": "compact,retain"}, "got 'retain'"),
    ({"cleanup.policy": "delete,delete"}, "named twice"),
    ({"cleanup.policy": "[compact,delete]"}, "got '\\[compact'"),
    ({"min.cleanable.dirty.ratio": "1.5"}, "outside"),
    ({"min.cleanable.dirty.ratio": "-0.1"}, "outside"),
    ({"min.cleanable.dirty.ratio": "half"}, "not a number"),
    ({"min.cleanable.dirty.ratio": "nan"}, "outside"),
    ({"delete.retention.ms": -1}, "outside"),
    ({"min.compaction.lag.ms": -1}, "outside"),
    ({"max.compaction.lag.ms": 0}, "outside"),
    ({"retention.ms": "soon"}, "not an integer"),
    ({"segment.bytes": 3}, "outside"),
    ({"message.timestamp.type": "Now"}, "must be one of"),
    ({"no.such.key": 1}, "unknown topic config"),
    ({"compression.type": "lz4"}, "only compression.type=producer"),
    ({"preallocate": "maybe"}, "must be true or false"),
    ({"segment.index.bytes": 4}, "outside"),
])
def test_bad_topic_configs_are_invalid_config(configs, fragment):
    with pytest.raises(InvalidConfig, match=fragment) as e:
        validate_topic_configs(configs)
    assert e.value.error_code == 40


@pytest.mark.parametrize("value, normalized", [
    ("delete", "delete"), ("compact", "compact"), ("compact,delete", "compact,delete"),
    ("delete,compact", "compact,delete"), (" delete , compact ", "compact,delete"),
    (["delete", "compact"], "compact,delete"),
])
def test_cleanup_policy_delete_compact_or_both_is_accepted(value, normalized):
    """One spelling per policy, so an override always compares and shows the same."""
    assert validate_topic_configs({"cleanup.policy": value}) == {"cleanup.policy": normalized}
    c = effective_log_config({"cleanup.policy": value}, {})
    assert (c.compact, c.delete) == ("compact" in normalized, "delete" in normalized)


def test_compaction_keys_default_to_kafkas():
    c = effective_log_config({}, {})
    assert (c.cleanup_policy, c.delete, c.compact) == ("delete", True, False)
    assert c.min_cleanable_dirty_ratio == 0.5 and c.delete_retention_ms == 86_400_000
    assert c.min_compaction_lag_ms == 0 and c.max_compaction_lag_ms == 2**63 - 1


def test_compaction_keys_resolve_topic_then_broker_then_default():
    broker = {"log.cleanup.policy": ("delete", "compact"), "log.cleaner.min.cleanable.ratio": 0.25,
              "log.cleaner.delete.retention.ms": 1000, "log.cleaner.min.compaction.lag.ms": 5,
              "log.cleaner.max.compaction.lag.ms": 60000}
    c = effective_log_config({}, broker)
    assert (c.cleanup_policy, c.min_cleanable_dirty_ratio, c.delete_retention_ms, c.min_compaction_lag_ms,
            c.max_compaction_lag_ms) == ("compact,delete", 0.25, 1000, 5, 60000)
    topic = {"cleanup.policy": "compact", "min.cleanable.dirty.ratio": "0.9", "delete.retention.ms": "0",
             "min.compaction.lag.ms": "10", "max.compaction.lag.ms": "1"}
    c = effective_log_config(topic, broker)
    assert (c.cleanup_policy, c.min_cleanable_dirty_ratio, c.delete_retention_ms, c.min_compaction_lag_ms,
            c.max_compaction_lag_ms) == ("compact", 0.9, 0, 10, 1)
    assert (c.compact, c.delete) == (True, False)
    assert effective_log_config({"min.cleanable.dirty.ratio": 1}, {}).min_cleanable_dirty_ratio == 1.0
    assert effective_log_config({}, {"log.cleanup.policy": ["compact"]}).cleanup_policy == "compact"  # from JSON


def test_a_bad_broker_cleanup_policy_is_invalid_config():
    with pytest.raises(InvalidConfig, match="log.cleanup.policy='compact,compact'"):
        effective_log_config({}, {"log.cleanup.policy": ("compact", "compact")})


def test_log_config_normalizes_and_bounds_the_compaction_fields():
    assert LogConfig(cleanup_policy="delete,compact").cleanup_policy == "compact,delete"
    with pytest.raises(InvalidConfig):
        LogConfig(cleanup_policy="none")
    with pytest.raises(InvalidConfig):
        LogConfig(min_cleanable_dirty_ratio=2.0)
    with pytest.raises(InvalidConfig):
        LogConfig(max_compaction_lag_ms=0)


def test_compression_type_producer_and_the_index_and_file_overrides():
    """compression.type=producer is what the broker does (batches stay as produced); the index and
    preallocation keys override their broker values per topic, as in Kafka."""
    assert validate_topic_configs({"compression.type": "Producer"}) == {"compression.type": "producer"}
    broker = {"log.index.interval.bytes": 100, "log.index.size.max.bytes": 4096, "log.preallocate": True}
    c = effective_log_config({}, broker)
    assert (c.index_interval_bytes, c.segment_index_bytes, c.preallocate) == (100, 4096, True)
    c = effective_log_config({"index.interval.bytes": "200", "segment.index.bytes": "1200",
                              "preallocate": "false", "compression.type": "producer"}, broker)
    assert (c.index_interval_bytes, c.segment_index_bytes, c.preallocate) == (200, 1200, False)


@pytest.mark.parametrize("name", ["", ".", "..", "a" * 250, "bad name", "bad/name", "ünïcode", "a:b"])
def test_illegal_topic_names(name):
    with pytest.raises(InvalidTopic) as e:
        validate_topic_name(name)
    assert e.value.error_code == 17


@pytest.mark.parametrize("name", ["a", "orders.v1", "__consumer_offsets", "A-b_c.9", "x" * 249])
def test_legal_topic_names(name):
    assert validate_topic_name(name) == name
