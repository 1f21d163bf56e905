"""Log-bucketed latency histogram: constant memory, mergeable across processes, bounded relative error.

Values are non-negative integers (nanoseconds in the harness). Values below 2**SUB_BITS get one bucket
each; above, every power of two is split into 2**(SUB_BITS-1) equal buckets, so a bucket's width is at most
1/2**(SUB_BITS-1) of its lowest value. A percentile is the highest value of the bucket holding the
nearest-rank sample (clamped to the exact maximum), so it never understates the true percentile and
overstates it by less than that relative width (HdrHistogram's convention).
"""

from __future__ import annotations

import numpy as np

SUB_BITS = 8
MAX_SHIFT = 48                       # values up to 2**56 ns (> 2 years)
_SUB = 1 << SUB_BITS
_HALF = _SUB >> 1
BUCKETS = _SUB + MAX_SHIFT * _HALF
RELATIVE_ERROR = 1.0 / _HALF
FEW = 32  # up to this many values, per-value increments beat a BUCKETS-long bincount


def bucket_of(values: np.ndarray) -> np.ndarray:
    """Bucket index of each value (int64 array, values >= 0)."""
    v = np.asarray(values, np.int64)
    _, exp = np.frexp(v.astype(np.float64))          # exp == bit_length for v < 2**53
    # float rounding can push exp one too high just below a power of two: recompute from the integer
    shift = np.maximum(exp.astype(np.int64) - SUB_BITS, 0)
    mantissa = v >> shift
    fix = mantissa < _HALF
    if fix.any():
        shift = np.where(fix & (shift > 0), shift - 1, shift)
        mantissa = v >> shift
    small = shift == 0
    return np.where(small, v, _SUB + (shift - 1) * _HALF + (mantissa - _HALF))


def bucket_index(value: int) -> int:
    """`bucket_of` for one Python int, without numpy (the per-request path)."""
    shift = value.bit_length() - SUB_BITS
    if shift <= 0:
        return value
    return _SUB + (shift - 1) * _HALF + ((value >> shift) - _HALF)


def bucket_high(index: int) -> int:
    """Highest value that falls in bucket `index`."""
    if index < _SUB:
        return index
    shift = (index - _SUB) // _HALF + 1
    mantissa = (index - _SUB) % _HALF + _HALF
    return ((mantissa + 1) << shift) - 1


class Histogram:
    """Counts per bucket plus exact count, min, max and sum."""

    __slots__ = ("counts", "count", "min", "max", "total")

    def __init__(self) -> None:
        self.counts = np.zeros(BUCKETS, np.int64)
        self.count = 0
        self.min = 0
        self.max = 0
        self.total = 0

    def record(self, value: int, times: int = 1) -> None:
        """One value, `times` times (a batch of records acknowledged together)."""
        value = max(int(value), 0)
        if times <= 0:
            return
        self.counts[bucket_index(value)] += times
        self._extend(value, value, times, value * times)

    def record_many(self, values) -> None:
        if isinstance(values, list) and len(values) <= FEW:
            vals = values
        else:
            v = np.asarray(values, np.int64)
            vals = v.tolist() if v.size <= FEW else None
        if vals is not None:  # the per-request path: a few records acknowledged together
            if not vals:
                return
            vals = [x if x > 0 else 0 for x in vals]
            counts = self.counts
            for value in vals:
                counts[bucket_index(value)] += 1
            self._extend(min(vals), max(vals), len(vals), sum(vals))
            return
        v = np.maximum(v, 0)
        self.counts += np.bincount(bucket_of(v), minlength=BUCKETS)
        self._extend(int(v.min()), int(v.max()), int(v.size), int(v.sum()))

    def _extend(self, lo: int, hi: int, n: int, total: int) -> None:
        self.min = lo if self.count == 0 else min(self.min, lo)
        self.max = max(self.max, hi)
        self.count += n
        self.total += total

    def merge(self, other: "Histogram") -> None:
        if other.count == 0:
            return
        self.counts += other.counts
        self._extend(other.min, other.max, other.count, other.total)

    def percentile(self, q: float) -> int:
        """Nearest-rank q-th percentile (0 < q <= 100), as the bucket's highest value; 0 when empty."""
        if self.count == 0:
            return 0
        rank = max(1, int(np.ceil(q / 100.0 * self.count - 1e-9)))
        index = int(np.searchsorted(np.cumsum(self.counts), rank))
        return min(bucket_high(index), self.max)

    def mean(self) -> float:
        return self.total / self.count if self.count else 0.0

    def summary_ms(self) -> dict:
        """The percentiles the harness reports, in milliseconds."""
        ms = 1e-6
        return {
            "p50": self.percentile(50) * ms, "p90": self.percentile(90) * ms, "p99": self.percentile(99) * ms,
            "p999": self.percentile(99.9) * ms, "max": self.max * ms, "mean": self.mean() * ms,
        }

    def to_state(self) -> tuple:
        nz = np.nonzero(self.counts)[0]
        return (nz.tolist(), self.counts[nz].tolist(), self.count, self.min, self.max, self.total)

    @classmethod
    def from_state(cls, state: tuple) -> "Histogram":
        h = cls()
        idx, cnt, h.count, h.min, h.max, h.total = state
        h.counts[np.asarray(idx, np.int64)] = np.asarray(cnt, np.int64)
        return h
