"""Counter blocks in shared memory: one block per worker process, written only by that process.

The supervisor creates the region before it forks; children inherit the shared mapping and `bind` the
process-wide writer `PROC` to their own block. Until bound (unit tests, tools) `PROC` writes into a private
block, so instrumented code never has to ask whether metrics are on. Layout: `broker.shm.layout`
("Metrics region").
"""

from __future__ import annotations

import os
import time
from bisect import bisect_left

import numpy as np

from broker.shm import layout as L
from broker.shm.region import SharedRegion, unique_name

ROLE_NETWORK = 1
ROLE_IO = 2
ROLES = {ROLE_NETWORK: "network", ROLE_IO: "io"}
STAGE = {name: i for i, name in enumerate(L.STAGES)}
_BOUNDS = L.LATENCY_BOUNDS_US
_NB = L.BUCKETS
_ROW = L.BUCKETS + 2
_API_SLOTS = L.API_SLOTS
_ERROR_SLOTS = L.ERROR_SLOTS


def now_us() -> int:
    return time.monotonic_ns() // 1000


class BlockView:
    """Named numpy views over one block's words (the same shapes for writer and reader)."""

    def __init__(self, words: np.ndarray, slots: int):
        self.words = words
        self.slots = slots
        self.scalars = words[L.MB_SCALARS:L.MB_SCALARS + L.MB_SCALAR_WORDS]
        self.requests = words[L.MB_REQUESTS:L.MB_REQUESTS + L.API_SLOTS]
        self.errors = words[L.MB_ERRORS:L.MB_LATENCY].reshape(L.API_SLOTS, L.ERROR_SLOTS)
        self.latency = words[L.MB_LATENCY:L.MB_SLOT_ARRAYS].reshape(len(L.STAGES), L.API_SLOTS, _NB + 2)
        self.per_slot = words[L.MB_SLOT_ARRAYS:L.MB_SLOT_ARRAYS + len(L.SLOT_COUNTERS) * slots].reshape(
            len(L.SLOT_COUNTERS), slots)

    @property
    def pid(self) -> int:
        return int(self.words[L.MB_PID])

    @property
    def role(self) -> str:
        return ROLES.get(int(self.words[L.MB_ROLE]), "unknown")

    @property
    def index(self) -> int:
        return int(self.words[L.MB_INDEX])

    @property
    def started_ns(self) -> int:
        return int(self.words[L.MB_STARTED_NS])


class MetricsRegion:
    """The region of every worker's block; created by the supervisor, inherited across fork."""

    def __init__(self, region: SharedRegion):
        self.region = region
        mm = region.mm
        self.blocks = L.U64.unpack_from(mm, L.METRICS_OFF_BLOCKS)[0]
        self.block_words = L.U64.unpack_from(mm, L.METRICS_OFF_BLOCK_WORDS)[0]
        self.slots = L.U64.unpack_from(mm, L.METRICS_OFF_SLOTS)[0]
        self._all = np.frombuffer(mm, dtype=np.int64, count=self.blocks * self.block_words,
                                  offset=L.METRICS_START).reshape(self.blocks, self.block_words)

    @classmethod
    def create(cls, blocks: int, slots: int) -> "MetricsRegion":
        region = SharedRegion.create(unique_name("metrics"), L.metrics_region_size(blocks, slots), L.KIND_METRICS)
        L.U64.pack_into(region.mm, L.METRICS_OFF_BLOCKS, blocks)
        L.U64.pack_into(region.mm, L.METRICS_OFF_BLOCK_WORDS, L.metrics_block_words(slots))
        L.U64.pack_into(region.mm, L.METRICS_OFF_SLOTS, slots)
        return cls(region)

    def block(self, b: int) -> BlockView:
        return BlockView(self._all[b], self.slots)

    def views(self) -> list[BlockView]:
        return [self.block(b) for b in range(self.blocks)]

    def destroy(self) -> None:
        self._all = None
        self.region.close()
        self.region.unlink()


class ProcessMetrics:
    """This process's writer. Every method is a few aligned 8-byte stores into its own block.

    Writes go through a flat memoryview of native i64 (cheaper per element than numpy scalar indexing);
    the reader side uses numpy views of the same words (`BlockView`).
    """

    def __init__(self, slots: int = 16384):
        self._bind(memoryview(bytearray(L.metrics_block_words(slots) * 8)).cast("q"), slots)
        self.bound = False

    def _bind(self, words: memoryview, slots: int) -> None:
        self.slots = slots
        self.words = words
        self.scalars = words[L.MB_SCALARS:L.MB_SCALARS + L.MB_SCALAR_WORDS]
        self.requests = words[L.MB_REQUESTS:L.MB_REQUESTS + L.API_SLOTS]
        self.errors = words[L.MB_ERRORS:L.MB_LATENCY]  # [api * ERROR_SLOTS + code + 1]
        self.latency = words[L.MB_LATENCY:L.MB_SLOT_ARRAYS]  # [(stage * API_SLOTS + api) * (BUCKETS + 2) + i]
        self.per_slot = words[L.MB_SLOT_ARRAYS:L.MB_SLOT_ARRAYS + len(L.SLOT_COUNTERS) * slots]

    def bind(self, region: MetricsRegion, block: int, role: int, index: int) -> None:
        """Write into `block` of the shared region from now on (a restarted worker keeps its counts)."""
        start = L.METRICS_START + block * region.block_words * 8
        words = memoryview(region.region.mm)[start:start + region.block_words * 8].cast("q")
        words[L.MB_ROLE] = role
        words[L.MB_INDEX] = index
        words[L.MB_STARTED_NS] = time.time_ns()
        words[L.MB_PID] = os.getpid()
        words[L.MB_SCALARS + L.MS_CONN_OPEN] = 0  # the predecessor's connections died with it
        self._bind(words, region.slots)
        self.bound = True

    def add(self, scalar: int, n: int = 1) -> None:
        self.scalars[scalar] += n

    def request(self, api: int) -> None:
        if 0 <= api < _API_SLOTS:
            self.requests[api] += 1

    def error(self, api: int, code: int) -> None:
        if code and 0 <= api < _API_SLOTS and -1 <= code < _ERROR_SLOTS - 1:
            self.errors[api * _ERROR_SLOTS + code + 1] += 1

    def observe(self, stage: int, api: int, micros: int, n: int = 1) -> None:
        """``n`` observations of ``micros`` each (things finished together, as the appends of one write)."""
        if 0 <= api < _API_SLOTS:
            base = (stage * _API_SLOTS + api) * _ROW
            lat = self.latency
            lat[base + bisect_left(_BOUNDS, micros)] += n
            lat[base + _NB] += n
            lat[base + _NB + 1] += micros * n

    def slot_add(self, counter: int, slot: int, n: int) -> None:
        if 0 <= slot < self.slots:
            self.per_slot[counter * self.slots + slot] += n


def errors_in(body, out: list) -> list:
    """Every non-zero `error_code` in a response body (nested dicts and lists), for the errors counter."""
    if isinstance(body, dict):
        for k, v in body.items():
            if k == "error_code":
                if v:
                    out.append(v)
            elif isinstance(v, (list, dict)):
                errors_in(v, out)
    elif isinstance(body, list):
        for v in body:
            if isinstance(v, (list, dict)):
                errors_in(v, out)
    return out


PROC = ProcessMetrics()
