"""Every shared-memory object of one broker run, created by the supervisor before it forks.

For N network workers and M I/O workers there are N*M request rings (network n -> I/O m), N*M completion
rings (I/O m -> network n), one receive arena per network worker (large Produce frames, read by the
owners in place), one partition-state table (written per slot by the owner, read by all) and one doorbell
per network worker that owners ring when a partition a parked fetch waits for advances, and the quota table
(what each network worker counted against client quotas).
Children attach by name, which gives each process its own cursors over the shared counters (a restarted
worker continues where its predecessor's published counters stand). Only the supervisor unlinks.
"""

from __future__ import annotations

from dataclasses import dataclass

from broker.logfmt import Log
from broker.shm.arena import ReceiveArena
from broker.shm.partitions import PartitionTable
from broker.shm.quota import QuotaTable
from broker.shm.region import cleanup_stale
from broker.shm.ring import Ring

log = Log("hpbroker.shared")

PARTITION_SLOTS = 16384
REQUEST_RING_MIN = 8 * 1024 * 1024
COMPLETION_RING_BYTES = 1024 * 1024
ARENA_MIN = 32 * 1024 * 1024


def request_ring_capacity(max_message_bytes: int) -> int:
    """Room for at least four largest batches, so one big batch never blocks a ring by itself."""
    cap = max(REQUEST_RING_MIN, 4 * (max_message_bytes + 4096))
    return (cap + 7) & ~7


def arena_capacity(max_message_bytes: int) -> int:
    """Room for several frames in flight; a frame that does not fit is copied through the ring instead."""
    return max(ARENA_MIN, 8 * (max_message_bytes + 4096))


@dataclass
class SharedState:
    n_net: int
    n_io: int
    req: list[list[Ring]]  # [net][io]
    done: list[list[Ring]]  # [net][io]
    table: PartitionTable
    arenas: list[ReceiveArena | None]  # [net]; None: no room in /dev/shm, large frames go through the ring
    quotas: QuotaTable
    creator: bool = False

    @classmethod
    def create(cls, n_net: int, n_io: int, max_message_bytes: int, quota_samples: int = 11) -> "SharedState":
        cleanup_stale()
        cap = request_ring_capacity(max_message_bytes)
        made: list = []
        try:
            req = [[_track(made, Ring.create(cap)) for _ in range(n_io)] for _ in range(n_net)]
            done = [[_track(made, Ring.create(COMPLETION_RING_BYTES)) for _ in range(n_io)] for _ in range(n_net)]
            table = _track(made, PartitionTable.create(PARTITION_SLOTS, n_net))
            arenas = [_arena(made, arena_capacity(max_message_bytes)) for _ in range(n_net)]
            quotas = _track(made, QuotaTable.create(n_net, quota_samples))
        except BaseException:
            for obj in made:
                obj.close()
                obj.unlink()
            raise
        return cls(n_net, n_io, req, done, table, arenas, quotas, creator=True)

    @property
    def max_message(self) -> int:
        """Largest payload a request ring takes."""
        return self.req[0][0].capacity // 2 - 4096

    def attach_in_child(self) -> "SharedState":
        return SharedState(
            self.n_net, self.n_io,
            [[Ring.attach(r.name) for r in row] for row in self.req],
            [[Ring.attach(r.name) for r in row] for row in self.done],
            PartitionTable.attach(self.table.name),
            [None if a is None else ReceiveArena.attach(a.name) for a in self.arenas],
            QuotaTable.attach(self.quotas.name),
        )

    def request_rings_for_io(self, io: int) -> list[Ring]:
        return [self.req[n][io] for n in range(self.n_net)]

    def completion_rings_for_io(self, io: int) -> list[Ring]:
        return [self.done[n][io] for n in range(self.n_net)]

    def request_rings_for_net(self, net: int) -> list[Ring]:
        return self.req[net]

    def completion_rings_for_net(self, net: int) -> list[Ring]:
        return self.done[net]

    def all_objects(self) -> list:
        return ([r for row in self.req for r in row] + [r for row in self.done for r in row] + [self.table]
                + [a for a in self.arenas if a is not None] + [self.quotas])

    def destroy(self) -> None:
        for obj in self.all_objects():
            try:
                obj.close()
            finally:
                if self.creator:
                    obj.unlink()


def _arena(made: list, capacity: int) -> ReceiveArena | None:
    try:
        return _track(made, ReceiveArena.create(capacity))
    except OSError as e:
        log.warning("no receive arena: large produce requests are copied through the rings",
                    bytes=capacity, error=e.strerror or repr(e))
        return None


def _track(made: list, obj):
    made.append(obj)
    return obj
