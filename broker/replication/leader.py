"""What the leader of a replicated partition knows about its followers, and what it decides from that.

Pure logic with the clock passed in (seconds, monotonic), so it is tested without processes: each follower's
log end offset (learned from the offsets its Fetch requests carry) and when it last caught up; the high
watermark (the smallest log end offset in the ISR, leader included, never moving back); which ISR change
to ask for (a follower that has not caught up for replica.lag.time.max.ms leaves, one that reached the
high watermark joins); and the acks=all appends waiting for the high watermark to cover them.

Catching up follows Kafka: a Fetch at or past the leader's log end offset means caught up now; a Fetch at or
past the log end offset the leader had at the follower's previous Fetch means caught up as of that Fetch.
"""

from __future__ import annotations

from collections import deque
from typing import Callable

NONE = 0
REQUEST_TIMED_OUT = 7
NOT_LEADER_OR_FOLLOWER = 6
NOT_ENOUGH_REPLICAS_AFTER_APPEND = 20

ISR_RETRY_S = 5.0  # an ISR change neither answered nor visible in the metadata this long is asked again
ISR_REFUSED_S = 1.0  # after a refused ISR change, the next one is asked no sooner than this


class Follower:
    __slots__ = ("replica_id", "leo", "caught_up", "last_fetch", "last_fetch_leader_leo")

    def __init__(self, replica_id: int, now: float):
        self.replica_id = replica_id
        self.leo = -1  # unknown until its first Fetch reaches this leader
        self.caught_up = now  # a member of the ISR gets a full lag period after a leader change
        self.last_fetch = now
        self.last_fetch_leader_leo = -1


_NEVER = float("inf")


class PendingAck:
    __slots__ = ("required", "deadline", "done")

    def __init__(self, required: int, deadline: float, done: Callable[[int], None]):
        self.required = required  # the high watermark that covers the batch: its last offset + 1
        self.deadline = deadline
        self.done = done  # called once with a Kafka error code


class LeaderState:
    """One led partition with more than one replica."""

    def __init__(self, me: int, replicas, isr, high_watermark: int, epoch_start: int, now: float,
                 lag_s: float, min_isr: int):
        self.me = me
        self.lag_s = lag_s
        self.hw = high_watermark
        self.epoch_start = epoch_start  # log end offset when this leader epoch began
        self.followers: dict[int, Follower] = {}
        self.replicas: tuple[int, ...] = ()
        self.isr: tuple[int, ...] = ()
        self.min_isr = min_isr
        self.acks: deque[PendingAck] = deque()
        self._next_deadline = _NEVER  # earliest deadline among acks
        self.isr_request: tuple[int, ...] | None = None  # asked for, not yet seen in the metadata
        self.isr_request_at = 0.0
        self.isr_refused_at = float("-inf")
        self.update_assignment(replicas, isr, min_isr, now)

    # -- metadata -----------------------------------------------------------------------------------------

    def update_assignment(self, replicas, isr, min_isr: int, now: float) -> None:
        """The snapshot's replicas and ISR (an ISR change this leader asked for arrives this way)."""
        self.replicas = tuple(replicas)
        self.isr = tuple(isr)
        self.min_isr = min_isr
        for r in self.replicas:
            if r != self.me and r not in self.followers:
                self.followers[r] = Follower(r, now)
        for r in [r for r in self.followers if r not in self.replicas]:
            del self.followers[r]
        if self.isr_request is not None and set(self.isr_request) == set(self.isr):
            self.isr_request = None

    def isr_answered(self, error_code: int, now: float) -> None:
        """The controller refused the change (stale epoch, a broker not yet back): decide again from fresh
        state, after a pause."""
        if error_code:
            self.isr_request = None
            self.isr_refused_at = now

    # -- followers ----------------------------------------------------------------------------------------

    def follower_fetch(self, replica_id: int, fetch_offset: int, leader_leo: int, now: float) -> bool:
        """A follower's Fetch reached `fetch_offset`; True when the high watermark moved."""
        f = self.followers.get(replica_id)
        if f is None:
            return False
        if fetch_offset >= leader_leo:
            f.caught_up = now
        elif fetch_offset >= f.last_fetch_leader_leo >= 0:
            f.caught_up = max(f.caught_up, f.last_fetch)
        f.leo = min(fetch_offset, leader_leo)
        f.last_fetch = now
        f.last_fetch_leader_leo = leader_leo
        return self.advance(leader_leo)

    def advance(self, leader_leo: int) -> bool:
        """Recompute the high watermark: the smallest log end offset over the ISR; True when it moved."""
        low = leader_leo
        for r in self.isr:
            if r != self.me:
                f = self.followers.get(r)
                if f is None or f.leo < 0:
                    return False  # a member not heard from since this leader started: wait for it
                if f.leo < low:
                    low = f.leo
        if low > self.hw:
            self.hw = low
            return True
        return False

    def isr_change(self, leader_leo: int, now: float) -> tuple[int, ...] | None:
        """The ISR to ask the controller for, or None (no change needed, or one already asked)."""
        if self.isr_request is not None and now - self.isr_request_at < ISR_RETRY_S:
            return None
        if now - self.isr_refused_at < ISR_REFUSED_S:
            return None
        out = [r for r in self.isr if r == self.me or not self._lagging(r, now)]
        if self.me not in out:
            out.insert(0, self.me)
        for r in self.replicas:
            f = self.followers.get(r)
            if r not in out and f is not None and f.leo >= max(self.hw, self.epoch_start) and \
                    not self._lagging(r, now):
                out.append(r)
        if set(out) == set(self.isr):
            self.isr_request = None
            return None
        self.isr_request = tuple(out)
        self.isr_request_at = now
        return self.isr_request

    def _lagging(self, replica_id: int, now: float) -> bool:
        f = self.followers.get(replica_id)
        return f is None or now - f.caught_up > self.lag_s

    # -- acks=all -----------------------------------------------------------------------------------------

    def wait_for(self, last_offset: int, now: float, timeout_s: float, done: Callable[[int], None]) -> int | None:
        """An acks=all append ending at `last_offset`: its error code when the high watermark covers it
        already (`done` is not called), else None and `done(code)` runs later."""
        required = last_offset + 1
        if not self.acks and self.hw >= required:
            return self._ack_code()
        deadline = now + timeout_s
        self.acks.append(PendingAck(required, deadline, done))
        self._next_deadline = min(self._next_deadline, deadline)
        return None

    def _ack_code(self) -> int:
        return NONE if len(self.isr) >= self.min_isr else NOT_ENOUGH_REPLICAS_AFTER_APPEND

    def complete(self, now: float) -> int:
        """Answer the waiting appends the high watermark covers, and those past their deadline; returns
        how many were answered."""
        acks = self.acks
        n = 0
        while acks and acks[0].required <= self.hw:
            acks.popleft().done(self._ack_code())
            n += 1
        if self._next_deadline <= now:  # each request has its own timeout: any of them may be the first due
            late = [a for a in acks if a.deadline <= now]
            self.acks = acks = deque(a for a in acks if a.deadline > now)
            for a in late:
                a.done(REQUEST_TIMED_OUT)
            n += len(late)
        if n:  # only a removed ack can have been the earliest
            self._next_deadline = min((a.deadline for a in acks), default=_NEVER)
        return n

    def next_ack_deadline(self) -> float | None:
        return self._next_deadline if self.acks else None

    def abandon(self, code: int = NOT_LEADER_OR_FOLLOWER) -> None:
        """No longer leader (or closed): every waiting append is answered with `code`."""
        acks, self.acks = self.acks, deque()
        self._next_deadline = _NEVER
        for a in acks:
            a.done(code)
