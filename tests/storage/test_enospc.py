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
