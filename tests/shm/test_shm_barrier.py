"""The sleep/wake fence is a real full barrier instruction, callable from Python."""

import platform
import re

import pytest
from numba import njit

from broker.shm import barrier

FULL_BARRIER = {"x86_64": r"\b(mfence|lock\s+or[lq]?)\b", "aarch64": r"\bdmb\s+ish\b"}


def test_the_fence_compiles_to_a_full_barrier_instruction():
    pattern = FULL_BARRIER.get(platform.machine())
    if pattern is None:
        pytest.skip(f"no expected barrier instruction listed for {platform.machine()}")
    probe = njit(lambda: barrier._seq_cst_fence())  # not cached, so its assembly can be read
    probe()
    asm = probe.inspect_asm(probe.signatures[0])
    assert re.search(pattern, asm), asm


def test_the_fence_is_cached_and_ready_at_import():
    assert barrier.fence._cache.__class__.__name__ != "NullCache"
    assert barrier.fence.signatures  # compiled (or loaded) when the module was imported
    assert barrier.fence() is None
