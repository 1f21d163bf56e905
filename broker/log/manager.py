"""``LogManager``: the data directories — topic catalogue, partition placement, clean-shutdown marker,
offline directories.

Per log directory (``log.dirs``)::

    <dir>/__topics.json                      topic catalogue (same content in every online dir, versioned)
    <dir>/.kafka_cleanshutdown               present only between a clean shutdown and the next start
    <dir>/recovery-point-offset-checkpoint   flushed offset per partition (written by each partition's writer)
    <dir>/log-start-offset-checkpoint        log start per partition when above its first segment
    <dir>/cleaner-offset-checkpoint          where each compacted partition's last cleaning pass ended
    <dir>/<topic>-<partition>/               segments, leader-epoch-checkpoint, partition.metadata

The catalogue is replaced atomically (write, fsync, rename, fsync dir) in every online directory with an
increasing version, and the highest readable version wins at load, so losing a directory loses no topic.

Processes: construct the manager once in the supervisor *before* forking workers. Construction consumes the
clean-shutdown markers (a crash from then on must be detected at the next start); forked I/O workers inherit
``was_clean_shutdown()`` and call ``open_partition`` for the partitions they own. Catalogue changes made by
one process are picked up by others with ``reload()``.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import uuid
from dataclasses import dataclass, field
from typing import Any, Mapping

from . import checkpoint, durable
from .config import LogConfig, effective_log_config, validate_topic_configs, validate_topic_name
from .errors import (InvalidPartitions, StorageError, TopicAlreadyExists, UnknownTopicOrPartition)
from .log import PartitionLog

TOPICS_FILE = "__topics.json"
CLEAN_SHUTDOWN_FILE = ".kafka_cleanshutdown"
PARTITION_METADATA_FILE = "partition.metadata"
MAX_PARTITIONS = 100_000


@dataclass(frozen=True)
class TopicInfo:
    name: str
    topic_id: str  # 32 hex digits (Kafka's Uuid)
    partitions: int
    configs: dict[str, Any] = field(default_factory=dict)  # per-topic overrides only
    dirs: tuple[int, ...] = ()  # log dir index of each partition

    def to_json(self) -> dict:
        return {"topic_id": self.topic_id, "partitions": self.partitions, "configs": self.configs,
                "dirs": list(self.dirs)}

    @classmethod
    def from_json(cls, name: str, d: dict) -> "TopicInfo":
        return cls(name, d["topic_id"], int(d["partitions"]), dict(d.get("configs", {})),
                   tuple(int(x) for x in d["dirs"]))


class LogManager:
    def __init__(self, log_dirs: list[str] | str, broker_config: Mapping[str, Any] | None = None):
        if isinstance(log_dirs, str):
            log_dirs = [d for d in log_dirs.split(",") if d]
        self.log_dirs = [os.path.abspath(d) for d in log_dirs]
        self.broker_config = dict(broker_config or {})
        self._offline: dict[str, StorageError] = {}
        self._open: dict[tuple[str, int], PartitionLog] = {}
        self._checkpoint_due: dict[tuple[str, int], PartitionLog] = {}  # periodic checkpoints not yet written
        self._clean: dict[str, bool] = {}
        for d in self.log_dirs:
            try:
                os.makedirs(d, exist_ok=True)
                marker = os.path.join(d, CLEAN_SHUTDOWN_FILE)
                self._clean[d] = os.path.exists(marker)
                if self._clean[d]:
                    os.unlink(marker)
                    durable.fsync_dir(d)
            except OSError as e:
                self._clean[d] = False
                self._offline[d] = StorageError.from_os_error(f"log dir {d}", e)
        if len(self._offline) == len(self.log_dirs):
            raise StorageError("no usable log directory: " + "; ".join(map(str, self._offline.values())))
        self._version = 0
        self._topics: dict[str, TopicInfo] = {}
        self.reload()

    # --- shutdown marker ---------------------------------------------------------------------------------
    def was_clean_shutdown(self) -> bool:
        """True only if every directory had the marker (else partitions are recovered at open)."""
        return all(self._clean.values())

    def mark_clean_shutdown(self) -> None:
        """Close this manager's open logs cleanly, then write the marker in every online directory."""
        self.close_all(clean=True)
        for d in self.online_dirs():
            try:
                checkpoint.write_atomic(os.path.join(d, CLEAN_SHUTDOWN_FILE), b"")
            except OSError as e:
                self._mark_offline(d, StorageError.from_os_error(f"log dir {d}", e))

    # --- directories -------------------------------------------------------------------------------------
    def online_dirs(self) -> list[str]:
        return [d for d in self.log_dirs if d not in self._offline]

    def offline_dirs(self) -> dict[str, StorageError]:
        return dict(self._offline)

    def _mark_offline(self, d: str, err: StorageError) -> None:
        if d in self._offline:
            return
        self._offline[d] = err
        for log in list(self._open.values()):
            if log.log_dir == d:
                log.take_offline(err)

    def _on_log_offline(self, log: PartitionLog, err: StorageError) -> None:
        self._mark_offline(log.log_dir, err)

    # --- catalogue ---------------------------------------------------------------------------------------
    def reload(self) -> None:
        """Read the newest catalogue version found in any online directory."""
        best_version, best = -1, {}
        for d in self.online_dirs():
            try:
                with open(os.path.join(d, TOPICS_FILE)) as f:
                    doc = json.load(f)
                if int(doc["version"]) > best_version:
                    best_version, best = int(doc["version"]), doc["topics"]
            except FileNotFoundError:
                continue
            except (OSError, ValueError, KeyError, TypeError):
                continue  # an unreadable copy; another directory's copy or a later write replaces it
        self._version = max(best_version, 0)
        self._topics = {name: TopicInfo.from_json(name, d) for name, d in best.items()}

    def _save(self) -> None:
        self._version += 1
        doc = {"version": self._version, "topics": {n: t.to_json() for n, t in sorted(self._topics.items())}}
        data = json.dumps(doc, indent=1, sort_keys=True).encode()
        written = 0
        for d in self.online_dirs():
            try:
                checkpoint.write_atomic(os.path.join(d, TOPICS_FILE), data)
                written += 1
            except OSError as e:
                self._mark_offline(d, StorageError.from_os_error(f"writing {TOPICS_FILE} in {d}", e))
        if not written:
            raise StorageError("topic catalogue could not be written to any log directory")

    def topics(self) -> dict[str, TopicInfo]:
        return dict(self._topics)

    def topic(self, name: str) -> TopicInfo:
        try:
            return self._topics[name]
        except KeyError:
            raise UnknownTopicOrPartition(f"unknown topic {name!r}") from None

    def topic_config(self, name: str) -> dict[str, Any]:
        """Per-topic overrides (what DescribeConfigs reports as TOPIC_CONFIG)."""
        return dict(self.topic(name).configs)

    def log_config(self, name: str) -> LogConfig:
        return effective_log_config(self.topic(name).configs, self.broker_config)

    def create_topic(self, name: str, partitions: int, configs: Mapping[str, Any] | None = None,
                     validate_only: bool = False, topic_id: str | None = None) -> TopicInfo:
        """`topic_id` (32 hex digits) keeps a cluster's id for the topic on every broker; default: a new one."""
        validate_topic_name(name)
        if name in self._topics:
            raise TopicAlreadyExists(f"topic {name!r} already exists")
        if not 1 <= partitions <= MAX_PARTITIONS:
            raise InvalidPartitions(f"partitions must be in [1, {MAX_PARTITIONS}], got {partitions}")
        parsed = validate_topic_configs(configs)
        effective_log_config(parsed, self.broker_config)  # rejects combinations LogConfig refuses
        info = TopicInfo(name, topic_id or uuid.uuid4().hex, partitions, parsed, tuple(self._place(partitions)))
        if validate_only:
            return info
        self._topics[name] = info
        try:
            for p in range(partitions):
                self._make_partition_dir(info, p)
            self._save()
        except OSError as e:
            self._topics.pop(name, None)
            raise StorageError.from_os_error(f"creating topic {name}", e) from e
        return info

    def alter_topic_config(self, name: str, configs: Mapping[str, Any]) -> TopicInfo:
        """Replace the topic's overrides (AlterConfigs); open logs keep their config until reopened."""
        info = self.topic(name)
        parsed = validate_topic_configs(configs)
        effective_log_config(parsed, self.broker_config)
        self._topics[name] = TopicInfo(name, info.topic_id, info.partitions, parsed, info.dirs)
        self._save()
        return self._topics[name]

    def add_partitions(self, name: str, total: int) -> TopicInfo:
        info = self.topic(name)
        if total <= info.partitions:
            raise InvalidPartitions(f"topic {name!r} has {info.partitions} partitions; {total} is not more")
        if total > MAX_PARTITIONS:
            raise InvalidPartitions(f"at most {MAX_PARTITIONS} partitions")
        new = TopicInfo(name, info.topic_id, total, info.configs,
                        info.dirs + tuple(self._place(total - info.partitions)))
        self._topics[name] = new
        try:
            for p in range(info.partitions, total):
                self._make_partition_dir(new, p)
            self._save()
        except OSError as e:
            self._topics[name] = info
            raise StorageError.from_os_error(f"adding partitions to {name}", e) from e
        return new

    def delete_topic(self, name: str) -> None:
        """Remove the topic and its data; this manager's open logs of it are closed first."""
        info = self.topic(name)
        for p in range(info.partitions):
            self._checkpoint_due.pop((name, p), None)  # its entries are dropped below, not written again
            log = self._open.pop((name, p), None)
            if log is not None:
                log.close(clean=False)
        del self._topics[name]
        self._save()
        for p in range(info.partitions):
            self._remove_data(info, p)

    def has_partition_dir(self, name: str, partition: int) -> bool:
        return os.path.isdir(self.partition_dir(name, partition))

    def ensure_partition_dir(self, name: str, partition: int) -> None:
        """A partition directory removed earlier (its replica moved away) made again for a replica moving back."""
        info = self.topic(name)
        if not os.path.isdir(self.partition_dir(name, partition, info)):
            self._make_partition_dir(info, partition)

    def delete_partition(self, name: str, partition: int) -> bool:
        """Remove one partition's data, the topic and its other partitions untouched: this broker no longer
        keeps a replica of it (a reassignment moved it). The owners must have closed it. True when a
        directory was removed."""
        info = self.topic(name)
        self._checkpoint_due.pop((name, partition), None)
        log = self._open.pop((name, partition), None)
        if log is not None:
            log.close(clean=False)
        existed = os.path.isdir(self.partition_dir(name, partition, info))
        self._remove_data(info, partition)
        return existed

    def _remove_data(self, info: TopicInfo, p: int) -> None:
        d = self.log_dirs[info.dirs[p]]
        if d in self._offline:
            return
        name = info.name
        path = self.partition_dir(name, p, info)
        doomed = f"{path}.{info.topic_id}-delete"  # Kafka's name for a directory being deleted
        try:
            if os.path.exists(path):
                os.replace(path, doomed)
            shutil.rmtree(doomed, ignore_errors=True)
            for f in (checkpoint.RECOVERY_POINT_FILE, checkpoint.LOG_START_FILE, checkpoint.CLEANER_FILE):
                if os.path.exists(os.path.join(d, f)):
                    checkpoint.update_offsets(os.path.join(d, f), {(name, p): None})
        except OSError as e:
            self._mark_offline(d, StorageError.from_os_error(f"deleting {path}", e))

    def _place(self, count: int) -> list[int]:
        """Each new partition goes to the online directory holding the fewest partitions (as Kafka)."""
        load = {i: 0 for i, d in enumerate(self.log_dirs) if d not in self._offline}
        if not load:
            raise StorageError("all log directories are offline")
        for t in self._topics.values():
            for i in t.dirs:
                if i in load:
                    load[i] += 1
        out = []
        for _ in range(count):
            i = min(load, key=lambda k: (load[k], k))
            load[i] += 1
            out.append(i)
        return out

    def _make_partition_dir(self, info: TopicInfo, p: int) -> None:
        path = self.partition_dir(info.name, p, info)
        os.makedirs(path, exist_ok=True)
        topic_id = base64.urlsafe_b64encode(bytes.fromhex(info.topic_id)).rstrip(b"=").decode()
        checkpoint.write_atomic(os.path.join(path, PARTITION_METADATA_FILE),
                                f"version: 0\ntopic_id: {topic_id}\n".encode())

    # --- partitions --------------------------------------------------------------------------------------
    def partition_dir(self, topic: str, partition: int, info: TopicInfo | None = None) -> str:
        info = info or self.topic(topic)
        if not 0 <= partition < info.partitions:
            raise UnknownTopicOrPartition(f"{topic}-{partition} does not exist")
        return os.path.join(self.log_dirs[info.dirs[partition]], f"{topic}-{partition}")

    def open_partition(self, topic: str, partition: int, recover: bool | None = None) -> PartitionLog:
        """Open (once per process) the log this process will write; ``recover`` defaults to "the last
        shutdown was not clean"."""
        key = (topic, partition)
        if key in self._open:
            return self._open[key]
        path = self.partition_dir(topic, partition)
        d = os.path.dirname(path)
        if d in self._offline:
            raise StorageError(f"log dir {d} is offline", None, True)
        if recover is None:
            recover = not self._clean.get(d, False)
        try:
            log = PartitionLog.open(path, self.log_config(topic), recover=recover)
        except StorageError as e:
            if e.offline:
                self._mark_offline(d, e)
            raise
        log.on_offline = self._on_log_offline
        log.defer_checkpoint = self._defer_checkpoint
        self._open[key] = log
        return log

    def _defer_checkpoint(self, log: PartitionLog) -> None:
        self._checkpoint_due[(log.topic, log.partition)] = log

    def write_due_checkpoints(self) -> None:
        """Write the checkpoints partitions left due since the last call (the owner calls it after each pass
        over its partitions); raises the first failure."""
        failed = self._write_due()
        if failed:
            raise failed[0][1]

    def _write_due(self) -> list[tuple[tuple, Exception]]:
        """One update of each directory's recovery-point checkpoint for every partition left due, open or
        closed since. Each recovery point is read now: a truncation since it fell due may have lowered it.
        Returns the partitions whose points were not written, with the error: their next unclean open
        recovers more than it had to, nothing is lost. A directory that failed other than by being full goes
        offline."""
        due, self._checkpoint_due = self._checkpoint_due, {}
        points: dict[str, dict[tuple[str, int], int]] = {}
        for key, log in due.items():
            if not log.offline:
                points.setdefault(log.log_dir, {})[key] = log.recovery_point
        failed: list[tuple[tuple, Exception]] = []
        for d, updates in points.items():
            try:
                checkpoint.update_offsets(os.path.join(d, checkpoint.RECOVERY_POINT_FILE), updates)
            except OSError as e:
                err = StorageError.from_os_error(f"checkpointing log dir {d}", e)
                if err.offline:
                    self._mark_offline(d, err)
                failed.extend((key, err) for key in updates)
        return failed

    @property
    def retention_check_interval_ms(self) -> int:
        return int(self.broker_config.get("log.retention.check.interval.ms") or 300_000)

    def enforce_retention(self, now_ms: int | None = None) -> int:
        """Run retention on every log this process opened (call every ``retention_check_interval_ms``);
        returns the number of segments deleted. A failing log goes offline, the others carry on."""
        deleted = 0
        for log in list(self._open.values()):
            if log.offline:
                continue
            try:
                deleted += log.enforce_retention(now_ms)
            except StorageError:
                pass  # already reported through on_offline when it took the directory offline
        return deleted

    def opened(self) -> dict[tuple[str, int], PartitionLog]:
        return dict(self._open)

    def close_partition(self, topic: str, partition: int, clean: bool = True) -> None:
        for _, e in self.close_partitions([(topic, partition)], clean=clean):
            raise e

    def close_partitions(self, keys: list[tuple[str, int]], clean: bool = True) -> list[tuple[tuple, Exception]]:
        """Close these logs; a clean close writes their recovery points with one rewrite of each log dir's
        checkpoint (a broker stopping with thousands of partitions rewrote that file once per partition).
        Returns the logs whose close failed, with the error; the others are closed either way."""
        failed: list[tuple[tuple, Exception]] = []
        for key in keys:
            log = self._open.pop(key, None)
            if log is None:
                continue
            try:
                log.close(clean=clean)  # a clean close leaves its checkpoint due (`_defer_checkpoint`)
            except Exception as e:
                failed.append((key, e))
        return failed + self._write_due()

    def close_all(self, clean: bool = True) -> None:
        for key, e in self.close_partitions(list(self._open), clean=clean):
            if isinstance(e, StorageError):
                self._mark_offline(os.path.dirname(self.partition_dir(*key)), e)
            else:
                raise e
