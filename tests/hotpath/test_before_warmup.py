"""Every public kernel wrapper works in a process that never called `hotpath.warmup()` (a tool, a benchmark, a
script using `broker.shm.Ring`): its first call compiles or cache-loads the kernel, and the result is the one a
warmed process gets. The test session itself is warmed (conftest), so the cold calls run in a child."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from hotpath import _jit

CALLS = r'''
import json, numpy as np, hotpath
from broker.shm.ring import Ring

def results():
    batch = hotpath.build_batch(np.frombuffer(b"0123456789" * 30, np.uint8), np.array([0, 100, 300], np.int64),
                                timestamps=np.array([1000, 2000], np.int64))
    arr = np.frombuffer(bytes(batch), np.uint8).copy()
    scan = hotpath.scan_batches(arr, deep=True)
    out = {"crc32c": hotpath.crc32c(b"123456789"), "scan": [scan.count, int(scan.error)],
           "first_batch_size": hotpath.first_batch_size(arr),
           "assign_offsets": hotpath.assign_offsets(arr, scan, 40, 3)}
    hotpath.patch_batch(arr, 0, 7, 2)
    hotpath.set_log_append_time(arr, 0, len(arr), 5000)
    out["patched"] = hotpath.crc32c(arr)
    records = hotpath.build_records_batch([(b"k", b"v", [("h", b"x")]), (None, b"w")], timestamps=3000)
    out["records_batch"] = hotpath.crc32c(records)
    out["varints"] = [list(hotpath.encode_varint(-300)), hotpath.decode_varint(hotpath.encode_varint(-300)),
                      list(hotpath.encode_uvarint(300)), hotpath.decode_uvarint(hotpath.encode_uvarint(300))]
    index = np.zeros(8 * 4, np.uint8)
    for i, (rel, pos) in enumerate([(0, 0), (10, 4096), (20, 8192)]):
        index[8 * i: 8 * i + 8] = np.frombuffer(int(rel).to_bytes(4, "big") + int(pos).to_bytes(4, "big"), np.uint8)
    out["offset_index"] = [hotpath.offset_index_lookup(index, 3, t) for t in (0, 15, 25)]
    out["valid_entries"] = hotpath.index_valid_entries(index, 8, 4)
    tindex = np.zeros(12 * 2, np.uint8)
    for i, (ts, rel) in enumerate([(100, 0), (200, 10)]):
        tindex[12 * i: 12 * i + 12] = np.frombuffer(int(ts).to_bytes(8, "big") + int(rel).to_bytes(4, "big"), np.uint8)
    out["time_index"] = [hotpath.time_index_lookup(tindex, 2, t) for t in (50, 150, 250)]
    ring = Ring.create(1 << 16)
    try:
        ring.try_put(1, b"abc")
        ring.try_put(2, b"defgh")
        out["ring"] = [(kind, bytes(view).decode()) for kind, view in ring.peek_batch(8)]
    finally:
        ring.close()
        ring.unlink()
    return out
'''


def _warm_results() -> dict:
    scope: dict = {}
    exec(CALLS, scope)
    return json.loads(json.dumps(scope["results"]()))  # the child's results come through JSON too


@pytest.mark.skipif(_jit.NO_JIT, reason="HPBROKER_NO_JIT=1: nothing is compiled")
def test_every_wrapper_works_before_warmup_and_matches_a_warmed_process():
    child = CALLS + "\nimport hotpath._jit as j\nassert not any(k.overloads for k in j._KERNELS)\n" \
                    "print(json.dumps(results()))\n"
    done = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    cold = json.loads(done.stdout.strip().splitlines()[-1])
    warm = _warm_results()
    assert cold == warm
    assert cold["ring"] == [[1, "abc"], [2, "defgh"]]
    assert cold["crc32c"] == 0xE3069283
