"""Byte counts behind client quotas, shared by the network workers (layout: :mod:`broker.shm.layout`).

A client's connections may be spread over several network workers (and many instances of a service share
one client id), while Kafka's quota is per broker. So each worker counts what it serves into its own
table, with no lock, and judges a request by the sum over every worker's table.
"""

from __future__ import annotations

import hashlib

import numpy as np

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
        words = L.quota_slot_words(self.samples)
        self.words = np.ndarray((self.tables, self.slots, words), dtype=np.int64, buffer=region.buf,
                                offset=L.QUOTA_START)

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
        slot = self._claim(table, key, window)
        if slot < 0:
            return False
        row = self.words[table, slot]
        n = self.samples
        ids = 2 + kind * 2 * n
        i = window % n
        if row[ids + i] != window:
            row[ids + n + i] = 0
            row[ids + i] = window
        row[ids + n + i] += value
        return True

    def counted(self, key: int, kind: int, window: int) -> tuple[int, int]:
        """(bytes counted for `key` in the windows still in range, the oldest such window) over every
        worker's table; (0, window) when nothing was counted."""
        n = self.samples
        ids = 2 + kind * 2 * n
        total = 0
        oldest = window
        for table in range(self.tables):
            slot = self._find(table, key)
            if slot < 0:
                continue
            row = self.words[table, slot]
            windows = row[ids:ids + n]
            live = (windows > window - n) & (windows <= window)
            if live.any():
                total += int(row[ids + n:ids + 2 * n][live].sum())
                oldest = min(oldest, int(windows[live].min()))
        return total, oldest

    def _find(self, table: int, key: int) -> int:
        keys = self.words[table, :, 0]
        slots = self.slots
        start = key % slots
        for j in range(min(L.QUOTA_PROBE, slots)):
            s = (start + j) % slots
            k = keys[s]
            if k == key:
                return s
            if k == 0:
                return -1
        return -1

    def _claim(self, table: int, key: int, window: int) -> int:
        """The slot counting `key` in this table: its own, else a never-used one or one whose windows are
        all out of range (zeroed, then the key written last)."""
        rows = self.words[table]
        slots = self.slots
        start = key % slots
        spare = -1
        for j in range(min(L.QUOTA_PROBE, slots)):
            s = (start + j) % slots
            k = rows[s, 0]
            if k == key:
                return s
            if k == 0:
                if spare < 0:
                    spare = s
                break
            if spare < 0 and self._idle(rows[s], window):
                spare = s
        if spare >= 0:
            rows[spare, 1:] = 0
            rows[spare, 0] = key
        return spare

    def _idle(self, row, window: int) -> bool:
        n = self.samples
        for kind in range(L.QUOTA_KINDS):
            ids = 2 + kind * 2 * n
            if (row[ids:ids + n] > window - n).any():
                return False
        return True

    def close(self) -> None:
        self.words = None
        self._region.close()

    def unlink(self) -> bool:
        return self._region.unlink()
