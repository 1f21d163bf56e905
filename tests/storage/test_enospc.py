"""A full disk: the append fails with KAFKA_STORAGE_ERROR, nothing is visible, reads keep working, and the
log accepts appends again once space returns. Needs a small tmpfs (root); skipped where mounting is not allowed."""

import errno
import subprocess

import pytest

from broker.log import PartitionLog, StorageError
from .storage_helpers import batch, flusher_held, read_all, small_config


@pytest.fixture
def small_fs(tmp_path):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mnt)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.decode().strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


@pytest.mark.parametrize("preallocate", [True, False])
def test_enospc_is_a_storage_error_and_reads_continue(small_fs, preallocate):
    cfg = small_config(segment_bytes=512 << 10, segment_index_bytes=4096, max_message_bytes=1 << 20,
                       preallocate=preallocate)
    log = PartitionLog.open(str(small_fs / "t-0"), cfg)
    payload = batch(20, value_size=1000)
    acked = 0
    error = None
    for _ in range(400):  # 4 MiB of tmpfs holds fewer than 8 segments of 512 KiB
        try:
            acked = log.append(payload).last_offset + 1
        except StorageError as e:
            error = e
            break
    assert error is not None and error.errno == errno.ENOSPC and error.error_code == 56
    assert not error.offline and not log.offline
    assert log.log_end_offset == acked  # nothing of the failed append is visible
    got = read_all(log)
    assert len(got) == acked // 20 and got[-1][0] == acked - 20
    with pytest.raises(StorageError):
        log.append(payload)  # still full
    assert read_all(log) == got
    # free space: drop the oldest segments, then appending works again
    first = log.segments[0]
    log.delete_records_before(log.segments[2].base_offset)
    log.enforce_retention(now_ms=0)
    assert first not in log.segments
    r = log.append(payload)
    assert r.base_offset == acked
    log.close()
    again = PartitionLog.open(str(small_fs / "t-0"), cfg)
    assert again.log_end_offset == acked + 20
    again.close()


def test_deleting_segments_gives_space_back_while_rolls_wait_to_be_flushed(small_fs):
    """The rolls' flushes wait behind a slow one (another partition's): the deleted segments' space must
    still come back at once, or a full disk stays full after the operator frees it."""
    with flusher_held():
        test_enospc_is_a_storage_error_and_reads_continue(small_fs, True)


def test_a_full_disk_fails_a_checkpoint_without_taking_the_directory_offline(small_fs):
    """The periodic checkpoints a manager writes together meet a full disk: the write fails with the storage
    error for a full disk, the directory and its logs stay online, and once space returns the close writes
    every recovery point."""
    from broker.log import LogManager, checkpoint
    from broker.log.log import BACKGROUND

    d = str(small_fs / "data")
    m = LogManager([d], {"log.segment.bytes": 64 << 10, "log.preallocate": False,
                         "log.index.size.max.bytes": 4096})
    m.create_topic("t", 2)
    logs = [m.open_partition("t", p) for p in range(2)]
    for log in logs:
        log.append(batch(3))
        log.roll()
    BACKGROUND.drain()
    for log in logs:
        log.maybe_flush(10**13)  # the roll's flush published: a checkpoint due
    filler = small_fs / "filler"
    with open(filler, "wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError as e:
            assert e.errno == errno.ENOSPC
    with pytest.raises(StorageError) as info:
        m.write_due_checkpoints()
    assert info.value.errno == errno.ENOSPC and not info.value.offline
    assert m.online_dirs() == [d] and not any(log.offline for log in logs)
    filler.unlink()
    m.close_all()
    assert dict(checkpoint.read_offsets(f"{d}/{checkpoint.RECOVERY_POINT_FILE}")) == {("t", 0): 3, ("t", 1): 3}
