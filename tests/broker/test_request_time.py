"""A request's cost under a request_percentage quota: the owner's append time travels back in APPEND_DONE and
is charged with the network worker's own time, once, when the Produce response is made."""

from __future__ import annotations

from types import SimpleNamespace

from broker import ipc
from broker.api.produce import ProduceState, _completion
from broker.quotas import REQUEST, RequestTime


def test_append_done_carries_the_owner_time():
    assert ipc.parse_append_done(memoryview(ipc.append_done(7, 0, 100, -1, 5, owner_us=321))) == (7, 0, 100, -1, 5, 321)
    assert ipc.parse_append_done(memoryview(ipc.append_done(7, 0)))[5] == 0
    assert ipc.parse_append_done(memoryview(ipc.append_done(7, 0, owner_us=2 ** 40)))[5] == 2 ** 32 - 1


class Meter:
    def __init__(self, ms: int):
        self.ms = ms
        self.charged: list[tuple] = []

    def record(self, quota, kind, value):
        self.charged.append((quota, kind, value))
        return self.ms


class Slot:
    correlation_id = 1

    def __init__(self, request_time):
        self.request_time = request_time
        self.parts = None

    def reply_parts(self, parts):
        self.parts = parts


def test_a_produce_is_charged_its_owners_time_once_and_answers_the_throttle():
    meter = Meter(0)
    ctx = SimpleNamespace(quotas=meter)
    rt = RequestTime(ctx, conn=None, quota=(10_000.0, 42))
    rt.sync_us = 30  # what the handler itself took
    slot = Slot(rt)
    state = ProduceState(slot, 7, 1, conn=None)
    state.outstanding = 2
    _completion(state, "t", 0)((1, 0, 10, -1, 0, 400))  # two partitions' appends at their owners
    _completion(state, "t", 1)((2, 0, 20, -1, 0, 600))
    assert meter.charged == [((10_000.0, 42), REQUEST, 30 + 400 + 600)]
    assert slot.parts is not None
    assert rt.charge() == 0 and len(meter.charged) == 1  # charged once
