"""Log compaction in the I/O worker that owns a partition (an owner extension, see broker/ioworker.py).

Every log.cleaner.backoff.ms the worker looks, in turn, at the partitions it owns whose cleanup.policy
includes compact, for one that needs a pass (`cleaner.plan`). The pass runs on a thread of the worker's own,
so requests keep being served while it reads and writes segments (the kernels it uses release the
interpreter); its result is swapped in by the worker between requests (`PartitionLog.apply_cleaning`),
which is the only place the log changes. One pass at a time per worker, like one cleaner thread per broker
in Kafka. Each active producer's last batch is kept whole, so its sequence survives a
restart or a new leader.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor

from broker.log import cleaner
from broker.metrics import PROC
from broker.shm import layout as _ml
from broker.log.log import now_ms
from broker.logfmt import Log

log = Log("hpbroker.cleaner")

POLL_S = 0.05  # how often a running pass is checked for completion


class Compaction:
    def __init__(self, worker):
        cfg = worker.config
        self.worker = worker
        self.enabled = bool(cfg["log.cleaner.enable"])
        self.backoff_s = max(0.01, int(cfg["log.cleaner.backoff.ms"]) / 1000.0)
        self.max_keys = max(1, int(cfg["log.cleaner.dedupe.buffer.size"]) // cleaner.BYTES_PER_KEY)
        self.pool: ThreadPoolExecutor | None = None
        self.running: tuple[object, object, Future, float] | None = None  # (owned partition, log, pass, start)
        self.stopping = threading.Event()
        self.turn = 0
        if self.enabled:
            worker.call_later(self.backoff_s, self._tick)

    def close(self) -> None:
        self.stopping.set()
        if self.pool is not None:
            self.pool.shutdown(wait=False, cancel_futures=True)

    def _tick(self) -> None:
        if self.stopping.is_set():
            return
        if self.running is not None:
            if self.running[2].done():
                self._finish()
            self.worker.call_later(POLL_S if self.running is not None else self.backoff_s, self._tick)
            return
        started = self._start_one()
        self.worker.call_later(POLL_S if started else self.backoff_s, self._tick)

    def _start_one(self) -> bool:
        """Plan a pass for the next compacted partition that needs one; True when one started."""
        owned = [op for op in self.worker.owned.values()
                 if op.log.config.compact and not op.log.offline]
        now = now_ms()
        for k in range(len(owned)):
            op = owned[(self.turn + k) % len(owned)]
            try:
                p = cleaner.plan(op.log, now, self._protected(op), self.max_keys)
            except Exception as e:
                log.error("compaction plan failed", topic=op.topic, partition=op.partition, error=repr(e))
                continue
            if p is None:
                continue
            self.turn = (self.turn + k + 1) % len(owned)
            if self.pool is None:
                self.pool = ThreadPoolExecutor(1, thread_name_prefix="log-cleaner")
            self.running = (op, op.log, self.pool.submit(cleaner.clean, p, self.stopping.is_set), time.monotonic())
            return True
        return False

    def _protected(self, op) -> set[int]:
        """The last offset of each producer's last batch: a new leader or a restart without a snapshot
        rebuilds the producer's sequence from it."""
        part = getattr(getattr(self.worker, "producers", None), "parts", {}).get(op.slot)
        if part is None:
            return set()
        return {e.batches[-1][3] for e in part.states.entries.values() if e.batches}

    def _finish(self) -> None:
        op, plog, fut, started = self.running
        self.running = None
        try:
            outcome = fut.result()
        except cleaner.SegmentChanged as e:
            log.info("compaction pass dropped", topic=op.topic, partition=op.partition, reason=str(e))
            return
        except Exception as e:
            log.error("compaction pass failed", topic=op.topic, partition=op.partition, error=repr(e))
            return
        if self.worker.owned.get(op.slot) is not op or op.log is not plog:
            log.info("compaction pass dropped", topic=op.topic, partition=op.partition,
                     reason="the partition closed meanwhile")
            return
        try:
            applied = plog.apply_cleaning(outcome)
        except Exception as e:
            log.error("compaction swap failed", topic=op.topic, partition=op.partition, error=repr(e))
            return
        if not applied:
            log.info("compaction pass dropped", topic=op.topic, partition=op.partition, reason="the log changed")
            return
        PROC.scalars[_ml.MS_CLEANER_PASSES] += 1
        PROC.scalars[_ml.MS_CLEANER_RECORDS_REMOVED] += outcome.records_removed
        PROC.scalars[_ml.MS_CLEANER_BYTES_FREED] += outcome.bytes_before - outcome.bytes_after
        self.worker.publish(op)
        log.info("partition compacted", topic=op.topic, partition=op.partition, upto=outcome.upto,
                 records_read=outcome.records_read, records_removed=outcome.records_removed,
                 bytes_before=outcome.bytes_before, bytes_after=outcome.bytes_after,
                 segments_replaced=sum(len(a.members) for a in outcome.actions),
                 ms=round((time.monotonic() - started) * 1000, 1))


def attach(worker) -> Compaction:
    return Compaction(worker)
