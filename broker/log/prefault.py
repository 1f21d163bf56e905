"""Background pre-faulting of the active segment's mapping, so appends never stall on page faults.

The first write to each 4 KiB page of a fresh shared file mapping costs a fault (~3 us per page on this machine
class, which caps a faulting writer well under 2 GB/s). One daemon thread per process asks the kernel to
populate the page tables ahead of each writer with ``madvise(MADV_POPULATE_WRITE)`` (Linux 5.14+). That call
maps pages writable without changing their contents, so it can race the writer safely, and it runs outside
the GIL (ctypes releases it). The segment file is fully allocated with ``posix_fallocate`` before it is mapped,
so neither the writer nor this thread can hit SIGBUS on a full disk. Where the kernel lacks the advice the
thread retires and appends fault pages themselves.
"""

from __future__ import annotations

import ctypes
import mmap
import os
import queue
import threading

MADV_POPULATE_WRITE = 23
CHUNK = 1 << 20  # work between checks of the target's liveness, bounds how long close() waits

_libc = ctypes.CDLL(None, use_errno=True)
_libc.madvise.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
_libc.madvise.restype = ctypes.c_int


def mapping_address(m: mmap.mmap) -> int:
    holder = ctypes.c_char.from_buffer(m)
    try:
        return ctypes.addressof(holder)
    finally:
        del holder  # drop the export so the mapping can be closed or resized later


class PrefaultTarget:
    """A mapping that may be pre-faulted; ``retire()`` waits for in-flight work and stops future work."""

    def __init__(self, m: mmap.mmap, length: int):
        self.lock = threading.Lock()
        self.address = mapping_address(m)
        self.length = length
        self.live = True
        self.requested = 0  # bytes from the start of the mapping already asked for

    def retire(self) -> None:
        with self.lock:
            self.live = False


class Prefaulter:
    """Per-process queue of populate requests served by one daemon thread (started on first use)."""

    def __init__(self):
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._pid = -1
        self.supported = True
        self.populated_bytes = 0

    def _ensure_thread(self) -> None:
        if self._pid != os.getpid():  # threads do not survive fork
            self._queue = queue.SimpleQueue()
            self._pid = os.getpid()
            threading.Thread(target=self._run, name="log-prefault", daemon=True).start()

    def request(self, target: PrefaultTarget, upto: int) -> None:
        """Populate ``target`` up to byte ``upto`` (beyond what was already requested)."""
        if not self.supported:
            return
        upto = min(upto, target.length)
        if upto <= target.requested:
            return
        start, target.requested = target.requested, upto
        self._ensure_thread()
        self._queue.put((target, start, upto))

    def populate_now(self, target: PrefaultTarget, start: int, end: int) -> bool:
        """Populate synchronously (used by benchmarks and for the first pages of a new segment)."""
        with target.lock:
            if not target.live:
                return False
            end = min(end, target.length)
            return self._advise(target, start, end)

    def _advise(self, target: PrefaultTarget, start: int, end: int) -> bool:
        if end <= start:
            return True
        rc = _libc.madvise(target.address + start, end - start, MADV_POPULATE_WRITE)
        if rc != 0:
            if ctypes.get_errno() == 22:  # EINVAL: kernel without MADV_POPULATE_WRITE
                self.supported = False
            return False
        self.populated_bytes += end - start
        return True

    def _run(self) -> None:
        while True:
            target, start, end = self._queue.get()
            pos = start
            while True:
                with target.lock:
                    if not target.live or pos >= end or not self._advise(target, pos, min(end, pos + CHUNK)):
                        break
                pos += CHUNK

    def drain(self, timeout: float = 10.0) -> None:
        """Wait until queued work is done (benchmarks and tests)."""
        done = threading.Event()
        dummy = _Done(done)
        if self._pid != os.getpid():
            return
        self._queue.put((dummy, 0, 0))
        done.wait(timeout)


class _Done:
    """Queue sentinel: setting ``live`` is how the worker signals it reached this point."""

    def __init__(self, event: threading.Event):
        self._event = event
        self.lock = threading.Lock()

    @property
    def live(self) -> bool:
        self._event.set()
        return False


PREFAULTER = Prefaulter()
