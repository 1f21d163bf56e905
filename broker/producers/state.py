"""Producer state of one partition: what deduplication and sequence checks need.

For each producer id the state keeps its epoch, the wall-clock time of its last append (for expiry) and
its last `MAX_BATCHES` appended batches as (first sequence, last sequence, base offset, last offset), as
Kafka's ProducerStateEntry does. Clients keep at most five requests in flight per partition, so a retry
of any batch they may resend is still among these.

Rules (Kafka's ProducerAppendInfo): an unknown producer may start at any sequence; an epoch lower than the
known one is fenced (INVALID_PRODUCER_EPOCH); a new epoch must start at sequence 0; within an epoch a batch
already appended is a duplicate (answered with its original offset, nothing appended), any other batch
must continue at last sequence + 1 (sequences wrap from INT32_MAX to 0), else OUT_OF_ORDER_SEQUENCE_NUMBER.
"""

from __future__ import annotations

from netio.codec import ErrorCode

MAX_BATCHES = 5
INT32_MAX = (1 << 31) - 1


class ProducerError(Exception):
    error_code = int(ErrorCode.UNKNOWN_SERVER_ERROR)


class InvalidProducerEpoch(ProducerError):
    error_code = int(ErrorCode.INVALID_PRODUCER_EPOCH)


class OutOfOrderSequence(ProducerError):
    error_code = int(ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER)


def last_sequence(first_seq: int, last_offset_delta: int) -> int:
    """Sequence of a batch's last record; sequences wrap at INT32_MAX."""
    seq = first_seq + last_offset_delta
    return seq - INT32_MAX - 1 if seq > INT32_MAX else seq


def next_sequence(seq: int) -> int:
    return 0 if seq == INT32_MAX else seq + 1


class ProducerEntry:
    __slots__ = ("epoch", "batches", "last_ms")

    def __init__(self, epoch: int, last_ms: int, batches: list[tuple[int, int, int, int]] | None = None):
        self.epoch = epoch
        self.last_ms = last_ms
        self.batches = batches if batches is not None else []  # oldest first

    def __eq__(self, other) -> bool:
        return isinstance(other, ProducerEntry) and (self.epoch, self.last_ms, self.batches) == \
            (other.epoch, other.last_ms, other.batches)

    def __repr__(self) -> str:
        return f"ProducerEntry(epoch={self.epoch}, last_ms={self.last_ms}, batches={self.batches})"


class ProducerStates:
    """Producer id -> ProducerEntry for one partition. Owned by the partition's single writer."""

    def __init__(self, entries: dict[int, ProducerEntry] | None = None):
        self.entries: dict[int, ProducerEntry] = entries if entries is not None else {}
        self.changed = False  # since the last snapshot

    def __len__(self) -> int:
        return len(self.entries)

    def check(self, pid: int, epoch: int, first_seq: int, last_seq: int) -> int | None:
        """Before an append: the original base offset if this batch is a duplicate, None if it may be
        appended; raises InvalidProducerEpoch / OutOfOrderSequence otherwise."""
        e = self.entries.get(pid)
        if e is None:
            return None
        if epoch < e.epoch:
            raise InvalidProducerEpoch(f"producer {pid} epoch {epoch} is older than {e.epoch}")
        if epoch > e.epoch:
            if first_seq != 0:
                raise OutOfOrderSequence(f"producer {pid} new epoch {epoch} starts at sequence {first_seq}")
            return None
        for first, last, base_offset, _ in e.batches:
            if first == first_seq and last == last_seq:
                return base_offset
        if e.batches:
            expected = next_sequence(e.batches[-1][1])
            if first_seq != expected:
                raise OutOfOrderSequence(f"producer {pid} sequence {first_seq}, expected {expected}")
        return None

    def record(self, pid: int, epoch: int, first_seq: int, last_seq: int, base_offset: int, last_offset: int,
               now_ms: int) -> None:
        """After an append (or when replaying the log): remember the batch."""
        e = self.entries.get(pid)
        if e is None:
            e = self.entries[pid] = ProducerEntry(epoch, now_ms)
        elif epoch != e.epoch:
            e.epoch = epoch
            e.batches = []
        e.batches.append((first_seq, last_seq, base_offset, last_offset))
        if len(e.batches) > MAX_BATCHES:
            del e.batches[0]
        e.last_ms = max(e.last_ms, now_ms)
        self.changed = True

    def expire(self, now_ms: int, expiration_ms: int) -> int:
        """Forget producers idle for `expiration_ms` (producer.id.expiration.ms); returns how many."""
        gone = [pid for pid, e in self.entries.items() if now_ms - e.last_ms >= expiration_ms]
        for pid in gone:
            del self.entries[pid]
        if gone:
            self.changed = True
        return len(gone)
