"""Partition log storage in Kafka's on-disk layout: segments, indexes, recovery, retention, checkpoints.

``PartitionLog`` is used by the one process that writes a partition, ``LogReader`` by processes that only
serve fetches, ``LogManager`` by the supervisor for the data directories and topic catalogue. The durability
contract (what survives kill -9 and what survives power loss) is documented in ``broker.log.log``.
"""

from .config import LogConfig, effective_log_config, validate_topic_configs, validate_topic_name
from .epochs import LeaderEpochCache
from .errors import (CorruptRecord, InvalidConfig, InvalidPartitions, InvalidRecord, InvalidTopic, LogError,
                     OffsetOutOfRange, RecordTooLarge, StorageError, TopicAlreadyExists, UnknownTopicOrPartition)
from .fileslice import FileSlice
from .log import AppendResult, PartitionLog
from .manager import LogManager, TopicInfo
from .reader import LogReader


def warmup() -> None:
    """Compile or load every storage kernel, so no request pays for compilation."""
    from . import walk
    walk.warmup()


__all__ = [
    "AppendResult", "CorruptRecord", "FileSlice", "InvalidConfig", "InvalidPartitions", "InvalidRecord",
    "InvalidTopic", "LeaderEpochCache", "LogConfig", "LogError", "LogManager", "LogReader", "OffsetOutOfRange",
    "PartitionLog", "RecordTooLarge", "StorageError", "TopicAlreadyExists", "TopicInfo",
    "UnknownTopicOrPartition", "effective_log_config", "validate_topic_configs", "validate_topic_name", "warmup",
]
