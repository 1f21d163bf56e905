"""Asymmetric memory barrier for the sleep/wake handshakes (Linux ``membarrier``).

A side about to sleep stores "I am sleeping" and then re-reads the other side's counter; the
other side stores its counter and then reads the flag.  x86 TSO may reorder each side's store
after its load, so both could miss each other (a lost wakeup).  The fix needs a full fence on
both sides, but the hot side is Python and cannot emit one.  ``membarrier(GLOBAL_EXPEDITED)``
issued by the sleeper makes every running registered process pass a full barrier, which is
equivalent to a fence on the hot side, paid only when somebody goes to sleep (~2 us).

Every process that imports this module registers itself (and again after ``fork``).  If the
syscall is unavailable (old kernel, seccomp), :data:`AVAILABLE` is False and sleepers cap their
waits at :data:`BACKSTOP_S` instead: a lost wakeup then costs at most that much latency.
"""

from __future__ import annotations

import ctypes
import os
import platform

_SYS_MEMBARRIER = {"x86_64": 324, "aarch64": 283}.get(platform.machine())
_CMD_QUERY = 0
_CMD_GLOBAL_EXPEDITED = 1 << 1
_CMD_REGISTER_GLOBAL_EXPEDITED = 1 << 2

try:
    _libc = ctypes.CDLL(None, use_errno=True)
    _syscall = _libc.syscall
except (OSError, AttributeError):  # pragma: no cover - non-glibc oddities
    _syscall = None


def _membarrier(cmd: int) -> int:
    if _syscall is None or _SYS_MEMBARRIER is None:
        return -1
    return _syscall(_SYS_MEMBARRIER, cmd, 0, 0)


def _register() -> bool:
    supported = _membarrier(_CMD_QUERY)
    if supported < 0 or not supported & _CMD_GLOBAL_EXPEDITED:
        return False
    return _membarrier(_CMD_REGISTER_GLOBAL_EXPEDITED) == 0


AVAILABLE = _register()
BACKSTOP_S = None if AVAILABLE else 0.02

if AVAILABLE:
    os.register_at_fork(after_in_child=_register)


def heavy_barrier() -> None:
    """Full barrier here and in every registered running process (no-op if unavailable)."""
    if AVAILABLE:
        _membarrier(_CMD_GLOBAL_EXPEDITED)


def cap_timeout(timeout: float | None) -> float | None:
    """Clamp a sleep to the backstop when the barrier is unavailable."""
    if BACKSTOP_S is None:
        return timeout
    return BACKSTOP_S if timeout is None else min(timeout, BACKSTOP_S)
