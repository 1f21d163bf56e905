"""Byte counts behind client quotas, shared by the network workers (layout: :mod:`broker.shm.layout`).

A client's connections may be spread over several network workers (and many instances of a service share
one client id), while Kafka's quota is per broker. So each worker counts what it serves into its own
table, with no lock, and judges a request by the sum over every worker's table. The counting and summing
are `hotpath.quota_add` and `hotpath.quota_counted`.
"""

from __future__ import annotations

import hashlib

import numpy as np

import hotpath
from broker.shm import layout as L
from broker.shm.region import SharedRegion, unique_name

DEFAULT_SLOTS = 4096


def counter_key(user: str, client_id: str) -> int:
    """A table key for what is counted together: 63 bits of a hash of (user, client id), never 0."""
    digest = hashlib.blake2b(f"{user}\0{client_id}".encode(), digest_size=8).digest()
    return (int.from_bytes(digest, "little") & 0x7FFF_FFFF_FFFF_FFFF) or 1


class QuotaTable:
    def __init__(self, region: SharedRegion):
        self._region = region
        self.name = region.name
        mm = region.mm
        self.tables = L.U64.unpack_from(mm, L.QUOTA_OFF_TABLES)[0]
        self.slots = L.U64.unpack_from(mm, L.QUOTA_OFF_SLOTS)[0]
        self.samples = L.U64.unpack_from(mm, L.QUOTA_OFF_SAMPLES)[0]
        n = self.tables * self.slots * L.quota_slot_words(self.samples)
        self.flat = np.ndarray((n,), dtype=np.int64, buffer=region.buf, offset=L.QUOTA_START)

    @classmethod
    def create(cls, tables: int, samples: int, slots: int = DEFAULT_SLOTS) -> QuotaTable:
        region = SharedRegion.create(unique_name("quota"), L.quota_region_size(tables, slots, samples),
                                     L.KIND_QUOTAS)
        L.U64.pack_into(region.mm, L.QUOTA_OFF_TABLES, tables)
        L.U64.pack_into(region.mm, L.QUOTA_OFF_SLOTS, slots)
        L.U64.pack_into(region.mm, L.QUOTA_OFF_SAMPLES, samples)
        return cls(region)

    @classmethod
    def attach(cls, name: str) -> QuotaTable:
        return cls(SharedRegion.attach(name, L.KIND_QUOTAS))

    def add(self, table: int, key: int, kind: int, window: int, value: int) -> bool:
        """Count `value` bytes (negative: take back) for `key` in `window`, in worker `table`'s own table.
        False when no slot could be had: more keys active at once than the probe reaches."""
        return hotpath.quota_add(self.flat, self.slots, self.samples, table, key, kind, window, value) >= 0

    def counted(self, key: int, kind: int, window: int) -> tuple[int, int]:
        """(bytes counted for `key` in the windows still in range, the oldest such window) over every
        worker's table; (0, window) when nothing was counted."""
        return hotpath.quota_counted(self.flat, self.tables, self.slots, self.samples, key, kind, window)

    def close(self) -> None:
        self.flat = None
        self._region.close()

    def unlink(self) -> bool:
        return self._region.unlink()
