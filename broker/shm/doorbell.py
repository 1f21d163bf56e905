"""Doorbells: named pipes (FIFOs) in /dev/shm that wake a process sleeping in a selector.

A FIFO rather than an eventfd because it has a name: a process that attaches to a ring by name
(not only a forked child that inherited descriptors) can open it, and :func:`region.cleanup_stale`
sweeps it with the segments since it follows the same ``hpb-<pid>-...`` rule.  Both ends open it
read-write and non-blocking, so opening never blocks and ringing a full pipe is a no-op (the
sleeper is woken anyway).  Senders ring only when the sleeper announced it is sleeping, so a busy
pipeline makes no syscalls here.
"""

from __future__ import annotations

import os
import select

from broker.shm.region import segment_path, unlink_segment

_FLAGS = os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC
_DRAIN_CHUNK = 4096


class Doorbell:
    """One wakeup channel; ``fileno()`` goes into the sleeper's selector."""

    __slots__ = ("name", "_fd", "_poll", "_creator_pid")

    def __init__(self, name: str, fd: int, creator_pid: int | None):
        self.name = name
        self._fd = fd
        self._creator_pid = creator_pid
        self._poll = select.poll()
        self._poll.register(fd, select.POLLIN)

    @classmethod
    def create(cls, name: str) -> Doorbell:
        path = segment_path(name)
        os.mkfifo(path, 0o600)
        try:
            fd = os.open(path, _FLAGS)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return cls(name, fd, os.getpid())

    @classmethod
    def attach(cls, name: str) -> Doorbell:
        return cls(name, os.open(segment_path(name), _FLAGS), None)

    def fileno(self) -> int:
        return self._fd

    def ring(self) -> None:
        try:
            os.write(self._fd, b"\x01")
        except BlockingIOError:
            pass  # pipe full: the sleeper has plenty of wakeups queued already

    def drain(self) -> int:
        """Consume pending rings; returns how many there were.

        A short read means the pipe is empty, so the usual case is one read, not a second one that fails
        with EAGAIN (a ring that lands right after it leaves the pipe readable: the next wait wakes at once)."""
        n = 0
        while True:
            try:
                got = os.read(self._fd, _DRAIN_CHUNK)
            except BlockingIOError:
                return n
            n += len(got)
            if len(got) < _DRAIN_CHUNK:
                return n

    def wait(self, timeout: float | None) -> bool:
        """Sleep until rung or ``timeout`` seconds (None = forever); True if rung."""
        ms = -1 if timeout is None else max(0, int(timeout * 1000 + 0.999))
        return bool(self._poll.poll(ms))

    @property
    def closed(self) -> bool:
        return self._fd < 0

    def close(self) -> None:
        if self._fd >= 0:
            self._poll.unregister(self._fd)
            os.close(self._fd)
            self._fd = -1

    def unlink(self) -> bool:
        """Remove the name (creator only)."""
        return self._creator_pid == os.getpid() and unlink_segment(self.name)

    def __reduce__(self):
        return (Doorbell.attach, (self.name,))


def open_bells(region, names: list[str], create: bool) -> list[Doorbell]:
    """The doorbells that belong to `region`, created (by the region's creator) or attached. If any
    fails, those already opened and the region itself are released (and unlinked when creating)."""
    bells: list[Doorbell] = []
    try:
        for name in names:
            bells.append(Doorbell.create(name) if create else Doorbell.attach(name))
        return bells
    except BaseException:
        for bell in bells:
            bell.close()
            if create:
                bell.unlink()
        region.close()
        if create:
            region.unlink()
        raise
