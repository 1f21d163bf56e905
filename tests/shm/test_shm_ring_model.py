"""The ring against a deque-based model written from the layout's rules (wrap, pad, full)."""

from __future__ import annotations

from collections import deque

from hypothesis import given, settings
from hypothesis import strategies as st

from broker.shm import layout
from broker.shm.ring import Ring


class Model:
    """Pending entries in a deque (padding as ``None``); head/tail are byte counters."""

    def __init__(self, cap: int):
        self.cap, self.head, self.tail = cap, 0, 0
        self.items: deque[tuple[int, tuple[int, bytes] | None]] = deque()

    def _room_for(self, size: int) -> bool:
        room = self.cap - self.head % self.cap
        if room < size:  # the entry goes to the next lap; the rest of this one is padding
            if self.head + room - self.tail > self.cap:
                return False
            self.head += room
            self.items.append((room, None))
        return self.head + size - self.tail <= self.cap

    def put(self, kind: int, data: bytes) -> bool:
        if not self._room_for(layout.entry_size(len(data))):
            return False
        self.commit(kind, data)
        return True

    def reserve(self, n: int) -> bool:
        return self._room_for(layout.entry_size(n))

    def commit(self, kind: int, data: bytes) -> None:
        size = layout.entry_size(len(data))
        self.head += size
        self.items.append((size, (kind, data)))

    def _skip_pads(self) -> None:
        while self.items and self.items[0][1] is None:
            self.tail += self.items.popleft()[0]

    def get(self) -> tuple[int, bytes] | None:
        self._skip_pads()
        if not self.items:
            return None
        size, msg = self.items.popleft()
        self.tail += size
        return msg

    def get_batch(self, limit: int) -> list[tuple[int, bytes]]:
        out = []
        while len(out) < limit and (msg := self.get()) is not None:
            out.append(msg)
        if len(out) < limit:
            self._skip_pads()  # the walk ran to the head, through trailing padding
        return out


ops = st.lists(
    st.one_of(
        st.tuples(st.just("put"), st.integers(0, 10), st.integers(0, 200), st.integers(1, 3)),
        st.tuples(st.just("get"), st.integers(1, 4)),
        st.tuples(st.just("batch"), st.integers(1, 6)),
        st.tuples(st.just("reserve"), st.integers(0, 10), st.integers(0, 150), st.integers(0, 150)),
        st.tuples(
            st.just("put_batch"), st.integers(0, 10), st.lists(st.integers(0, 90), max_size=5)
        ),
    ),
    max_size=80,
)


@settings(max_examples=150, deadline=None)
@given(cap=st.sampled_from([64, 256, 264, 512]), ops=ops)
def test_ring_matches_model(cap, ops):
    model = Model(cap)
    counter = 0

    def payload(n: int) -> bytes:
        nonlocal counter
        counter += 1
        return bytes((counter + i) % 251 for i in range(n))

    with Ring.create(cap) as ring:
        for op in ops:
            if op[0] == "put":
                _, kind, n, parts = op
                if layout.entry_size(n) > cap:
                    continue
                data = payload(n)
                cut = [data[i * n // parts : (i + 1) * n // parts] for i in range(parts)]
                assert ring.try_put(kind, *cut) == model.put(kind, data)
            elif op[0] == "reserve":
                _, kind, n, length = op
                if layout.entry_size(n) > cap:
                    continue
                view = ring.reserve(kind, n)
                assert (view is not None) == model.reserve(n)
                if view is not None:
                    data = payload(min(length, n))
                    view[: len(data)] = data
                    view.release()
                    ring.commit(len(data))
                    model.commit(kind, data)
            elif op[0] == "put_batch":
                _, kind, sizes = op
                datas = [payload(n) for n in sizes if layout.entry_size(n) <= cap]
                expected = 0
                for d in datas:
                    if not model.put(kind, d):
                        break
                    expected += 1
                assert ring.put_batch(kind, datas) == expected
            elif op[0] == "get":
                for _ in range(op[1]):
                    got = ring.peek()
                    expected = model.get()
                    assert (got and (got[0], bytes(got[1]))) == expected
                    if got is None:
                        break
                    del got
                    ring.advance()
            else:
                batch = ring.peek_batch(op[1])
                assert [(k, bytes(v)) for k, v in batch] == model.get_batch(op[1])
                if batch:
                    batch.clear()
                    ring.advance()
            assert ring._head == model.head
            assert ring.used_bytes() == model.head - model.tail
        rest = ring.peek_batch(1000)
        assert [(k, bytes(v)) for k, v in rest] == model.get_batch(1000)
        rest.clear()
