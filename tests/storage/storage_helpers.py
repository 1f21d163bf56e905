"""Helpers for storage tests: real batches from the hotpath builder, small-segment configs, full reads."""

from __future__ import annotations

import contextlib
import ctypes
import mmap
import os
import threading

import numpy as np
import hotpath
from broker.log import LogConfig, PartitionLog
from broker.log.log import BACKGROUND


def batch(n: int = 3, value_size: int = 50, ts: int = 1_000, key: bytes | None = b"k", tag: int = 0) -> bytes:
    """A valid RecordBatch v2 of ``n`` records; ``tag`` makes the payload distinguishable."""
    value = bytes([tag % 251]) * value_size
    return hotpath.build_records_batch([(key, value)] * n, timestamps=np.full(n, ts, np.int64))


def small_config(**kw) -> LogConfig:
    base = dict(segment_bytes=64 << 10, index_interval_bytes=256, segment_index_bytes=4096,
                retention_ms=-1, file_delete_delay_ms=0)
    base.update(kw)
    return LogConfig(**base)


def read_all(log: PartitionLog, start: int | None = None) -> list[tuple[int, bytes]]:
    """(base offset, batch bytes from magic on) of every batch readable below the high watermark."""
    out = []
    offset = log.log_start_offset if start is None else start
    while offset < log.high_watermark:
        sl = log.read(offset, 1 << 20)
        if sl.length == 0:
            break
        res = hotpath.scan_batches(sl.view())
        assert res.error == hotpath.ScanError.OK
        view = sl.view()
        for pos, size, base, delta in zip(res.pos, res.size, res.base_offset, res.last_offset_delta):
            out.append((int(base), bytes(view[pos + 16: pos + size])))
        offset = int(res.base_offset[-1] + res.last_offset_delta[-1] + 1)
    return out


def segment_files(part_dir: str, suffix: str = ".log") -> list[str]:
    return sorted(n for n in os.listdir(part_dir) if n.endswith(suffix))


def descriptors_under(directory: str, pid: int | str = "self") -> list[str]:
    """A process's open descriptors on files in `directory` (a mapping holds one of its own)."""
    out = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith(directory + os.sep):
            out.append(target)
    return out


@contextlib.contextmanager
def flusher_held():
    """The process's background flusher busy with something slow (another partition's large roll) until
    the block ends: rolls made meanwhile wait in its queue."""
    release = threading.Event()
    BACKGROUND.submit(lambda: release.wait(30))
    try:
        yield
    finally:
        release.set()
        BACKGROUND.drain()


def evict(path: str) -> None:
    """Drop a file's pages from the page cache, so the next read of each one goes to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)  # dirty pages are not dropped
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def resident_pages(path: str) -> int:
    """How many of a file's pages are in the page cache (mincore(2) over a map that touches none)."""
    size = os.path.getsize(path)
    if size == 0:
        return 0
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mincore.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p)
    pages = -(-size // mmap.PAGESIZE)
    vec = ctypes.create_string_buffer(pages)
    with open(path, "rb") as f:
        m = mmap.mmap(f.fileno(), size, access=mmap.ACCESS_READ)
        try:
            view = np.frombuffer(m, np.uint8)
            if libc.mincore(view.ctypes.data, size, vec) != 0:
                raise OSError(ctypes.get_errno(), "mincore failed")
            del view
        finally:
            m.close()
    return sum(b & 1 for b in vec.raw)
