"""How hotpath kernels are compiled.

Every kernel declares its signatures up front; nothing compiles at import, `warmup()` compiles (or loads
from the on-disk cache) every declared signature, and a kernel never specialises itself for a type it
did not declare: a call with any other type raises TypeError, which the public wrappers turn into
input validation. Under HPBROKER_NO_JIT=1 the kernels stay plain Python functions, so the same code
runs in the interpreter (coverage, debugging, machines without a working LLVM).

The on-disk cache is skipped when NUMBA_BOUNDSCHECK is set: numba's cache key does not include the
bounds-check flag, and a checked run must not load unchecked machine code.
"""

from __future__ import annotations

import os

NO_JIT = os.environ.get("HPBROKER_NO_JIT", "") not in ("", "0")

_KERNELS: list = []

import numba
from numba import types as nt
from numba.core import config as _numba_config

_CACHE = not _numba_config.BOUNDSCHECK

# Argument types. A read-only declaration also accepts writable arrays.
U8 = nt.Array(nt.uint8, 1, "C", readonly=True)
U8W = nt.Array(nt.uint8, 1, "C")
I64 = nt.Array(nt.int64, 1, "C", readonly=True)
I64W = nt.Array(nt.int64, 1, "C")
I64W2 = nt.Array(nt.int64, 2, "C")
U32T = nt.Array(nt.uint32, 2, "C", readonly=True)
BYTES = nt.Bytes(nt.uint8, 1, "C", readonly=True)
BYTEARRAY = nt.ByteArray(nt.uint8, 1, "C")
MEMVIEW = nt.MemoryView(nt.uint8, 1, "C", readonly=True)
MEMVIEW_W = nt.MemoryView(nt.uint8, 1, "C")


def kernel(*signatures, warm: bool = True):
    """Declare a kernel with explicit signatures; `warm=False` leaves it out of `warmup()`."""

    def decorate(fn):
        if NO_JIT:
            return fn
        dispatcher = numba.njit(cache=_CACHE, nogil=True)(fn)
        dispatcher._hp_signatures = signatures
        # Undeclared types must fail instead of silently compiling a new specialisation.
        dispatcher._can_compile = False
        if warm:
            _KERNELS.append(dispatcher)
        return dispatcher

    return decorate


def helper(fn):
    """An inlined building block for kernels (typed by its caller, never called from Python)."""
    if NO_JIT:
        return fn
    return numba.njit(inline="always", cache=_CACHE)(fn)


def ensure(dispatcher) -> None:
    """Compile or cache-load every declared signature of one kernel."""
    if NO_JIT or len(dispatcher.overloads) >= len(dispatcher._hp_signatures):
        return
    dispatcher._can_compile = True
    try:
        for sig in dispatcher._hp_signatures:
            dispatcher.compile(sig)
    finally:
        dispatcher._can_compile = False


def call(kern, *args):
    """Call a kernel, compiling (or cache-loading) its declared signatures first if warmup has not run yet:
    a process that never called `hotpath.warmup()` (a tool, a benchmark) pays once, at its first call."""
    try:
        return kern(*args)
    except TypeError:
        if NO_JIT or len(kern.overloads) >= len(kern._hp_signatures):
            raise  # compiled already: the arguments do not match any declared signature
        ensure(kern)
        return kern(*args)


def warmup_all() -> None:
    for dispatcher in _KERNELS:
        ensure(dispatcher)


def entry_points(dispatcher) -> list:
    """The compiled entry point of each declared signature, in declaration order.

    Calling an entry point skips the dispatcher's argument typing (a few hundred ns), so the caller
    must pass exactly the declared types; wrappers use this only after an exact `type(x) is ...` test.
    """
    if NO_JIT:
        return [dispatcher] * 1
    ensure(dispatcher)
    return [dispatcher.overloads[tuple(sig.args)].entry_point for sig in dispatcher._hp_signatures]
