"""Named shared-memory regions: files in /dev/shm mapped with ``mmap``.

Plain files are used instead of ``multiprocessing.shared_memory`` because its resource tracker
unlinks segments when *any* process that attached exits and warns about "leaked" ones; here the
rule is simpler: only the creating process unlinks, and a supervisor restarted after ``kill -9``
removes what dead owners left behind with :func:`cleanup_stale`.

Names are ``hpb-<owner pid>-<purpose>`` so the owner of every segment is visible in its name.  A
region pickles as its name (the receiver attaches); after ``fork`` children simply keep using the
inherited mapping.
"""

from __future__ import annotations

import itertools
import mmap
import os
import re
from pathlib import Path

import psutil

from broker.shm import layout

SHM_DIR = Path("/dev/shm")
PREFIX = "hpb-"
_PURPOSE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_OWNER_RE = re.compile(r"^[A-Za-z0-9_.]+-(\d+)-")
_counter = itertools.count()


def segment_name(purpose: str, pid: int | None = None) -> str:
    """``hpb-<pid>-<purpose>``; ``pid`` defaults to the calling process (the owner)."""
    if not _PURPOSE_RE.match(purpose):
        raise ValueError(f"bad shared-memory purpose {purpose!r}")
    return f"{PREFIX}{os.getpid() if pid is None else pid}-{purpose}"


def unique_name(purpose: str) -> str:
    """A name no other region of this process uses: ``hpb-<pid>-<purpose><n>``."""
    return segment_name(f"{purpose}{next(_counter)}")


def owner_pid(name: str) -> int | None:
    """The pid encoded in a segment name, or None when the name does not follow the rule."""
    m = _OWNER_RE.match(name)
    return int(m.group(1)) if m else None


def segment_path(name: str) -> Path:
    if "/" in name or not name:
        raise ValueError(f"bad shared-memory name {name!r}")
    return SHM_DIR / name


def unlink_segment(name: str) -> bool:
    """Remove ``name`` from /dev/shm; False if it was already gone."""
    try:
        segment_path(name).unlink()
    except FileNotFoundError:
        return False
    return True


def list_segments(prefix: str = PREFIX, pid: int | None = None) -> list[str]:
    """Names in /dev/shm with ``prefix`` (and, if given, owned by ``pid``)."""
    try:
        names = os.listdir(SHM_DIR)
    except FileNotFoundError:
        return []
    out = [n for n in names if n.startswith(prefix)]
    if pid is not None:
        out = [n for n in out if owner_pid(n) == pid]
    return sorted(out)


def _owner_alive(pid: int, changed_at: float) -> bool:
    """True while ``pid`` is the process that made the file (a recycled pid started later)."""
    try:
        started = psutil.Process(pid).create_time()
    except psutil.NoSuchProcess:
        return False
    except psutil.Error:  # exists but not inspectable: assume it is the owner
        return True
    return started <= changed_at + 1.0  # create_time has clock-tick granularity


def cleanup_stale(prefix: str = PREFIX) -> list[str]:
    """Unlink segments whose owner pid is dead; returns the removed names.

    Called by the supervisor at start: a supervisor killed with SIGKILL never ran its unlinks.
    Segments of live owners (another broker, a parallel test) are left alone.
    """
    removed = []
    for name in list_segments(prefix):
        pid = owner_pid(name)
        if pid is None:
            continue
        path = SHM_DIR / name
        try:
            changed_at = path.lstat().st_ctime
        except FileNotFoundError:
            continue
        if _owner_alive(pid, changed_at):
            continue
        try:
            path.unlink()
        except (FileNotFoundError, PermissionError):
            continue
        removed.append(name)
    return removed


class SharedRegion:
    """One mapped region.  Any process may read/write it; only the creator may unlink it."""

    __slots__ = ("name", "size", "kind", "buf", "mm", "_creator_pid", "__weakref__")

    def __init__(self, name: str, mm: mmap.mmap, kind: int, creator_pid: int | None):
        self.name = name
        self.size = len(mm)
        self.kind = kind
        self.mm = mm  # struct.pack_into on the mmap itself is cheaper than on a memoryview
        self.buf = memoryview(mm)
        self._creator_pid = creator_pid  # None when attached

    @classmethod
    def create(cls, name: str, size: int, kind: int, reserve: bool = False) -> SharedRegion:
        """Create, size and map a new region; fails if the name already exists. ``reserve`` allocates its
        pages now, so a full /dev/shm fails here and not as SIGBUS on a later store."""
        layout.check_platform()
        if size < layout.PREAMBLE_SIZE:
            raise ValueError("region smaller than its preamble")
        path = segment_path(name)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            os.ftruncate(fd, size)
            if reserve:
                os.posix_fallocate(fd, 0, size)
            mm = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        except BaseException:
            os.close(fd)
            path.unlink(missing_ok=True)
            raise
        os.close(fd)
        pid = os.getpid()
        # Magic goes last so an attacher racing the creator sees "not initialized", not garbage.
        layout.PREAMBLE.pack_into(mm, 0, 0, layout.LAYOUT_VERSION, kind, pid, size)
        layout.U32.pack_into(mm, layout.OFF_MAGIC, layout.MAGIC)
        return cls(name, mm, kind, pid)

    @classmethod
    def attach(cls, name: str, kind: int | None = None) -> SharedRegion:
        """Map an existing region by name, checking magic, layout version and kind."""
        layout.check_platform()
        fd = os.open(segment_path(name), os.O_RDWR | os.O_CLOEXEC)
        try:
            size = os.fstat(fd).st_size
            if size < layout.PREAMBLE_SIZE:
                raise ValueError(f"shared memory {name!r} is not initialized")
            mm = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        finally:
            os.close(fd)
        magic, version, got_kind, _pid, recorded = layout.PREAMBLE.unpack_from(mm, 0)
        problem = None
        if magic != layout.MAGIC:
            problem = "bad magic (not initialized or not an hpbroker region)"
        elif version != layout.LAYOUT_VERSION:
            problem = f"layout version {version}, expected {layout.LAYOUT_VERSION}"
        elif kind is not None and got_kind != kind:
            problem = f"region kind {got_kind}, expected {kind}"
        elif recorded != size:
            problem = f"recorded size {recorded} != file size {size}"
        if problem:
            mm.close()
            raise ValueError(f"shared memory {name!r}: {problem}")
        return cls(name, mm, got_kind, None)

    @property
    def creator_pid(self) -> int:
        return layout.U64.unpack_from(self.mm, layout.OFF_CREATOR)[0]

    @property
    def is_creator(self) -> bool:
        """True only in the process that created the region (not in its forked children)."""
        return self._creator_pid == os.getpid()

    @property
    def closed(self) -> bool:
        return self.mm.closed

    def close(self) -> None:
        """Unmap.  Views still held elsewhere keep the mapping alive until they are dropped."""
        if self.mm.closed:
            return
        self.buf.release()
        try:
            self.mm.close()
        except BufferError:
            pass  # an exported view (e.g. a peeked message) is alive; the GC unmaps later

    def unlink(self) -> bool:
        """Remove the name (creator only; a no-op returning False elsewhere)."""
        return self.is_creator and unlink_segment(self.name)

    def __reduce__(self):
        return (SharedRegion.attach, (self.name, self.kind))

    def __enter__(self) -> SharedRegion:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
        self.unlink()

    def __repr__(self) -> str:
        return f"SharedRegion({self.name!r}, size={self.size}, creator={self.is_creator})"

