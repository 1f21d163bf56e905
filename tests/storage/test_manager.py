import json
import os

import pytest

from broker.log import (InvalidConfig, InvalidPartitions, InvalidTopic, LogManager, StorageError, TopicAlreadyExists,
                        UnknownTopicOrPartition)
from .storage_helpers import batch, read_all


@pytest.fixture
def dirs(tmp_path):
    return [str(tmp_path / "d1"), str(tmp_path / "d2")]


def test_create_topic_places_partitions_and_persists(dirs):
    m = LogManager(dirs, {"log.segment.bytes": 1 << 20, "log.retention.hours": 1})
    info = m.create_topic("orders", 3, {"retention.ms": "5000"})
    assert info.dirs == (0, 1, 0) and len(info.topic_id) == 32
    for p in range(3):
        path = m.partition_dir("orders", p)
        assert os.path.basename(path) == f"orders-{p}" and os.path.isdir(path)
        assert open(os.path.join(path, "partition.metadata")).read().startswith("version: 0\ntopic_id: ")
    cfg = m.log_config("orders")
    assert cfg.retention_ms == 5000 and cfg.segment_bytes == 1 << 20
    m2 = LogManager(dirs, {})
    assert m2.topics() == m.topics()
    assert m2.topic_config("orders") == {"retention.ms": 5000}


def test_catalogue_survives_losing_one_directory(dirs):
    m = LogManager(dirs, {})
    m.create_topic("a", 1)
    m.create_topic("b", 2)
    os.unlink(os.path.join(dirs[1], "__topics.json"))
    with open(os.path.join(dirs[0], "__topics.json"), "r+") as f:
        assert json.load(f)["version"] == 2
    assert set(LogManager(dirs, {}).topics()) == {"a", "b"}


def test_topic_errors(dirs):
    m = LogManager(dirs, {})
    m.create_topic("t", 1)
    with pytest.raises(TopicAlreadyExists):
        m.create_topic("t", 1)
    with pytest.raises(InvalidTopic):
        m.create_topic("bad/name", 1)
    with pytest.raises(InvalidPartitions):
        m.create_topic("zero", 0)
    with pytest.raises(InvalidConfig):
        m.create_topic("c", 1, {"cleanup.policy": "compress"})
    assert m.create_topic("c", 1, {"cleanup.policy": "delete, compact"}).configs == {"cleanup.policy": "compact,delete"}
    assert m.log_config("c").compact and m.log_config("c").delete
    with pytest.raises(UnknownTopicOrPartition):
        m.partition_dir("t", 1)
    with pytest.raises(UnknownTopicOrPartition):
        m.topic_config("nope")
    assert set(m.topics()) == {"t", "c"}
    assert m.create_topic("v", 2, validate_only=True).partitions == 2 and "v" not in m.topics()


def test_add_partitions_and_alter_config(dirs):
    m = LogManager(dirs, {})
    m.create_topic("t", 2)
    with pytest.raises(InvalidPartitions):
        m.add_partitions("t", 2)
    info = m.add_partitions("t", 5)
    assert info.partitions == 5 and os.path.isdir(m.partition_dir("t", 4))
    m.alter_topic_config("t", {"retention.bytes": 100})
    assert LogManager(dirs, {}).log_config("t").retention_bytes == 100


def test_delete_topic_removes_data_and_checkpoint_entries(dirs):
    m = LogManager(dirs, {})
    m.create_topic("t", 2)
    log = m.open_partition("t", 0)
    log.append(batch(3))
    log.delete_records_before(2)
    m.close_all()
    path = m.partition_dir("t", 0)
    m.delete_topic("t")
    assert not os.path.exists(path) and "t" not in m.topics()
    assert not [n for n in os.listdir(dirs[0]) if n.startswith("t-")]
    m.create_topic("t", 1)
    fresh = m.open_partition("t", 0)
    assert fresh.log_start_offset == 0 and fresh.log_end_offset == 0  # nothing inherited


def test_a_deleted_topics_due_checkpoint_is_not_written_back(dirs):
    """A checkpoint left due to the manager, then the topic deleted: the entry the delete removed stays
    removed when the manager next writes what is due."""
    from broker.log import checkpoint
    from broker.log.log import BACKGROUND

    m = LogManager(dirs, {"log.segment.bytes": 1 << 20, "log.preallocate": False})
    m.create_topic("t", 1)
    m.create_topic("other", 1)
    for name in ("t", "other"):
        log = m.open_partition(name, 0)
        log.append(batch(3))
        log.roll()
    BACKGROUND.drain()
    for name in ("t", "other"):
        m.open_partition(name, 0).maybe_flush(10**13)  # a checkpoint due for each
    m.delete_topic("t")
    m.write_due_checkpoints()
    points = {}
    for d in dirs:
        points.update(checkpoint.read_offsets(os.path.join(d, checkpoint.RECOVERY_POINT_FILE)))
    assert points == {("other", 0): 3}
    m.close_all()


def test_clean_shutdown_marker(dirs):
    m = LogManager(dirs, {})
    assert not m.was_clean_shutdown()
    m.create_topic("t", 1)
    m.open_partition("t", 0).append(batch(2))
    m.mark_clean_shutdown()
    assert all(os.path.exists(os.path.join(d, ".kafka_cleanshutdown")) for d in dirs)
    m2 = LogManager(dirs, {})
    assert m2.was_clean_shutdown()
    assert not any(os.path.exists(os.path.join(d, ".kafka_cleanshutdown")) for d in dirs)  # consumed
    log = m2.open_partition("t", 0)
    assert log.load_report.recovered_segments == 0 and log.log_end_offset == 2
    m2.close_all(clean=False)  # crash
    m3 = LogManager(dirs, {})
    assert not m3.was_clean_shutdown()
    log = m3.open_partition("t", 0)
    assert log.load_report.recovered_segments == 1 and [b for b, _ in read_all(log)] == [0]
    m3.close_all()


def test_many_partitions_share_one_checkpoint_read_and_one_write_per_directory(dirs, monkeypatch):
    """Opening N partitions parses each directory's shared checkpoints once, not once per partition, and
    closing them rewrites the recovery-point checkpoint once per directory (both were N times, so a
    broker with thousands of partitions spent seconds at start and missed its stop deadline)."""
    from broker.log import checkpoint

    small = {"log.segment.bytes": 1 << 20, "log.preallocate": False}
    m = LogManager(dirs, small)
    m.create_topic("t", 40)
    for p in range(40):
        m.open_partition("t", p).append(batch(1 + p % 3))
    m.mark_clean_shutdown()  # the first checkpoints, written by the code under test
    parses, writes = [], []
    parse, write = checkpoint.parse_entries, checkpoint.write_atomic
    monkeypatch.setattr(checkpoint, "parse_entries", lambda text, width: parses.append(width) or parse(text, width))
    monkeypatch.setattr(checkpoint, "write_atomic", lambda path, data: writes.append(path) or write(path, data))
    m2 = LogManager(dirs, small)
    logs = [m2.open_partition("t", p) for p in range(40)]
    assert all(log.load_report.recovered_segments == 0 for log in logs)  # the recovery points were all there
    # width 3: the shared offset files (each directory's recovery points; no log starts were written), at
    # most once per directory (none here: this process wrote them last). Width 2: each partition's own
    # leader-epoch file.
    assert parses.count(3) <= len(dirs), parses
    for p, log in enumerate(logs):
        log.append(batch(2))
    m2.close_all()
    rewrites = [w for w in writes if str(w).endswith(checkpoint.RECOVERY_POINT_FILE)]
    assert sorted(map(os.path.dirname, map(str, rewrites))) == sorted(dirs)
    points = {}
    for d in dirs:
        points.update(checkpoint.read_offsets(os.path.join(d, checkpoint.RECOVERY_POINT_FILE)))
    assert points == {("t", p): 1 + p % 3 + 2 for p in range(40)}


def test_periodic_checkpoints_of_many_partitions_are_written_together(dirs, monkeypatch):
    """A partition's periodic checkpoint (after a roll's flush) is left to its manager, which writes those of
    all its partitions with one rewrite per directory, each at the partition's recovery point when written:
    a truncation in between lowers what is written."""
    from broker.log import checkpoint
    from broker.log.log import BACKGROUND

    small = {"log.segment.bytes": 1 << 20, "log.preallocate": False}
    m = LogManager(dirs, small)
    m.create_topic("t", 40)
    logs = [m.open_partition("t", p) for p in range(40)]
    writes = []
    write = checkpoint.write_atomic

    def counted(path, data):
        if str(path).endswith(checkpoint.RECOVERY_POINT_FILE):
            writes.append(str(path))
        write(path, data)

    monkeypatch.setattr(checkpoint, "write_atomic", counted)
    for log in logs:
        log.append(batch(3))
        log.roll()
        log.append(batch(2))
    BACKGROUND.drain()
    for log in logs:
        log.maybe_flush(10**13)  # publishes the roll's flush: recovery point 3, a checkpoint due
    assert [log.recovery_point for log in logs] == [3] * 40
    assert writes == []  # left to the manager
    logs[7].truncate_to(1)  # into the first batch: back to 0, written at once, lower than what fell due
    assert logs[7].recovery_point == 0 and len(writes) == 1
    m.write_due_checkpoints()
    assert sorted(map(os.path.dirname, writes[1:])) == sorted(dirs)
    points = {}
    for d in dirs:
        points.update(checkpoint.read_offsets(os.path.join(d, checkpoint.RECOVERY_POINT_FILE)))
    assert points == {("t", p): 0 if p == 7 else 3 for p in range(40)}
    m.write_due_checkpoints()  # nothing due: nothing written
    assert len(writes) == 1 + len(dirs)
    m.close_all()


def test_failed_log_takes_its_directory_offline_not_the_process(dirs):
    m = LogManager(dirs, {})
    m.create_topic("t", 2)  # t-0 in d1, t-1 in d2
    a, b = m.open_partition("t", 0), m.open_partition("t", 1)
    a.append(batch(1))
    b.append(batch(1))
    a.take_offline(StorageError("I/O error", 5, True))
    assert list(m.offline_dirs()) == [dirs[0]]
    with pytest.raises(StorageError):
        a.append(batch(1))
    assert b.append(batch(1)).base_offset == 1  # the other directory keeps working
    m.create_topic("u", 1)
    assert m.topic("u").dirs == (1,)  # new partitions avoid the offline directory
    m.close_all()


def test_manager_runs_retention_over_its_logs(dirs):
    m = LogManager(dirs, {"log.retention.ms": 1000, "log.segment.bytes": 1500,
                          "log.retention.check.interval.ms": 5000, "log.segment.delete.delay.ms": 0})
    assert m.retention_check_interval_ms == 5000
    m.create_topic("t", 2)
    m.create_topic("keep", 1, {"retention.ms": -1})
    logs = [m.open_partition("t", 0), m.open_partition("t", 1), m.open_partition("keep", 0)]
    for log in logs:
        for i in range(20):
            log.append(batch(2, value_size=100, ts=1000))
    assert m.enforce_retention(now_ms=10**9) > 0
    assert logs[0].log_start_offset > 0 and logs[1].log_start_offset > 0
    assert logs[2].log_start_offset == 0  # the topic override keeps everything
    m.close_all()


def test_real_disk_error_takes_the_directory_offline(dirs):
    """EFBIG from a file-size limit stands in for EIO: any error but a full disk takes the directory offline,
    the process keeps running and partitions in other directories keep accepting appends."""
    import resource
    import signal

    m = LogManager(dirs, {"log.segment.bytes": 64 << 10, "log.index.size.max.bytes": 4096})
    m.create_topic("t", 2)  # t-0 in d1, t-1 in d2
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # get EFBIG instead of being killed
            a, b = m.open_partition("t", 0), m.open_partition("t", 1)
            resource.setrlimit(resource.RLIMIT_FSIZE, (32 << 10, 32 << 10))  # below one segment
            errors = []
            for _ in range(100):
                try:
                    a.append(batch(10, value_size=500))
                except StorageError as e:
                    errors.append(e)
                    break
            e = errors[0]
            checks = [
                e.errno == 27 and e.offline and a.offline,  # EFBIG
                list(m.offline_dirs()) == [dirs[0]],
                b.append(batch(1)).base_offset == 0,  # d2's active segment is already allocated
            ]
            try:
                a.read(0, 100)
                checks.append(False)
            except StorageError:
                checks.append(True)
            code = 0 if all(checks) else 10 + checks.index(False)
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
