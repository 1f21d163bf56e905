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
    ({"cleanup.policy": "compact"}, "compaction is not supported"),
    ({"cleanup.policy": "compact,delete"}, "compaction is not supported"),
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


def test_cleanup_policy_delete_is_accepted():
    assert validate_topic_configs({"cleanup.policy": "delete"}) == {"cleanup.policy": "delete"}


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
