"""Kernel hygiene: declared signatures compiled by warmup, contiguous typed arguments, no stray types."""

import os
import subprocess
import sys

import numpy as np
import pytest

import hotpath
from hotpath import _jit, batch, crc, index

pytestmark = pytest.mark.skipif(_jit.NO_JIT, reason="inspects compiled kernels")


def test_warmup_compiles_every_declared_signature():
    hotpath.warmup()
    assert _jit._KERNELS
    for kernel in _jit._KERNELS:
        assert len(kernel.overloads) == len(kernel._hp_signatures), kernel.py_func.__name__


def test_declared_array_arguments_are_contiguous():
    from numba import types

    for kernel in _jit._KERNELS:
        for sig in kernel._hp_signatures:
            for arg in sig.args:
                if isinstance(arg, types.Buffer):
                    assert arg.layout == "C", (kernel.py_func.__name__, arg)


def test_undeclared_types_are_refused_not_compiled():
    before = len(batch._scan.overloads)
    meta = np.empty((12, 4), np.int64)
    with pytest.raises(TypeError):
        batch._scan(np.zeros(8, np.int32), 0, 8, 100, False, 4, crc.CRC_TABLES, meta)
    with pytest.raises(TypeError):
        index._offset_lookup(np.zeros(16, np.uint8)[::2], 1, 0)
    assert len(batch._scan.overloads) == before


def test_scan_fast_path_is_bound_and_still_checks_its_buffer():
    """scan_batches calls the compiled entry point directly (no dispatcher typing), so the wrapper's own
    checks are all that stands between a wrong array and the machine code."""
    hotpath.warmup()
    assert batch._FAST_SCAN[0] is not None
    with pytest.raises(TypeError):
        hotpath.scan_batches(np.zeros(64, np.int32))
    with pytest.raises(ValueError):
        hotpath.scan_batches(np.zeros(256, np.uint8)[::2])
    raw = hotpath.build_records_batch([(b"k", b"v")])
    assert hotpath.scan_batches(np.frombuffer(raw, np.uint8), deep=True).ok


def test_kernels_run_without_the_gil():
    for kernel in _jit._KERNELS:
        assert kernel.targetoptions.get("nogil"), kernel.py_func.__name__


# Run in a fresh interpreter: numba reads NUMBA_BOUNDSCHECK once, at import, and the cache directory is
# new so no unchecked machine code from an earlier build can be loaded.
_BOUNDS_CHECKED_RUN = """
import numpy as np
from numba.core import config
from hotpath import _jit, index

assert config.BOUNDSCHECK and not _jit._CACHE, (config.BOUNDSCHECK, _jit._CACHE)
buf = np.zeros(16, np.uint8)  # two offset-index entries, one time-index entry
calls = [(index._offset_lookup, index.offset_index_lookup, (100, 2**31)),
         (index._time_lookup, index.time_index_lookup, (100, -1)),
         (index._valid_entries, None, (8, 100))]
for kernel, wrapper, args in calls:
    name = kernel.py_func.__name__
    if wrapper is not None:
        try:
            wrapper(buf, *args)
        except ValueError:
            pass
        else:
            raise SystemExit(f"{wrapper.__name__} accepted {args}")
    _jit.ensure(kernel)
    try:
        result = kernel(buf, *args)
    except IndexError:
        print("IndexError", name)
    else:
        raise SystemExit(f"{name}{args} returned {result} instead of raising IndexError")
"""


def test_bounds_checked_build_catches_what_the_wrappers_prevent(tmp_path):
    """Under NUMBA_BOUNDSCHECK=1 a kernel fed inconsistent arguments (which the public wrapper
    refuses) raises IndexError; this proves the checked run really checks."""
    env = dict(os.environ, NUMBA_BOUNDSCHECK="1", NUMBA_CACHE_DIR=str(tmp_path / "numba-cache"))
    env.pop("HPBROKER_NO_JIT", None)
    r = subprocess.run([sys.executable, "-c", _BOUNDS_CHECKED_RUN], env=env, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.split("\n") == ["IndexError _offset_lookup", "IndexError _time_lookup",
                                    "IndexError _valid_entries", ""], r.stdout
