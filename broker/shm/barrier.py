"""Full memory fence for the sleep/wake handshakes.

A side about to sleep stores "I am sleeping" and then re-reads the other side's counter; the
other side stores its counter and then reads the flag.  x86 TSO may reorder each side's store
after its load (weaker CPUs reorder more), so both could miss each other: a lost wakeup.  Both
sides call :func:`fence` between their store and their load.  It is one sequentially consistent
fence compiled by numba (``lock or`` on x86-64, ``dmb ish`` on arm64) and costs about as much as
a ``struct.pack_into`` from Python (~0.1 us), so the hot side pays it on every publish.

(An asymmetric ``membarrier(2)`` issued only by the sleeper spares the hot side that call, but
costs the sleeper a syscall that interrupts every other CPU running a broker process: 10-20 us
per sleep in a VM, where interrupts between CPUs are slow.)

The fence is compiled (or loaded from numba's cache) when this module is imported, so forked
workers inherit it ready.
"""

from __future__ import annotations

from numba import njit, types
from numba.extending import intrinsic


@intrinsic
def _seq_cst_fence(typingctx):
    def codegen(context, builder, signature, args):
        builder.fence("seq_cst")
        return context.get_dummy_value()

    return types.void(), codegen


@njit(cache=True, nogil=True)
def fence() -> None:
    """Every store before this call is visible to other CPUs before any load after it."""
    _seq_cst_fence()


fence()
