"""Client quotas: which limit applies to a request (a byte rate, or request_percentage: the share of a core
its requests may take), and how long a client over it must wait.

Quotas are set per entity (AlterClientQuotas, `hpbroker quota alter`): a user, a client id, a user and
client id together, or the defaults of either (`<default>`). A request is judged by the most specific
entity with a value for that quota, in Kafka's order:

    /config/users/<user>/clients/<client-id>     /config/users/<default>/clients/<default>
    /config/users/<user>/clients/<default>       /config/users/<default>
    /config/users/<user>                         /config/clients/<client-id>
    /config/users/<default>/clients/<client-id>  /config/clients/<default>

The level found decides what is counted together (the "metric tags" below): a user's quota is shared by
all of that user's connections and client ids, a client id's quota by every connection using that client
id (many instances of one service, typically), and a default gives each user or client id its own allowance.

Rates are measured as Kafka measures them: `quota.window.num` windows of `quota.window.size.seconds`,
the bytes of the windows still in range over the time they span (at least `quota.window.num - 1` whole
windows). A client over its limit is told to wait (throttle_time_ms) for as long as it takes its rate to
fall back to the limit, X = (rate - limit) / limit * span, and its connection is not read meanwhile.
"""

from __future__ import annotations

import json
import time

from broker.logfmt import Log
from broker.metrics import PROC
from broker.shm import layout as _ml
from broker.shm.quota import counter_key

log = Log("hpbroker.quota")
PRODUCER_BYTE_RATE = "producer_byte_rate"
CONSUMER_BYTE_RATE = "consumer_byte_rate"
REQUEST_PERCENTAGE = "request_percentage"
# The quota keys hpbroker enforces, in the order of the per-entity counters (broker/shm/quota.py).
KEYS = (PRODUCER_BYTE_RATE, CONSUMER_BYTE_RATE, REQUEST_PERCENTAGE)
PRODUCE, FETCH, REQUEST = 0, 1, 2
# request_percentage counts microseconds of the broker's time: 100% is one core's worth, 10^6 µs a second.
US_PER_PERCENT = 10_000
USER, CLIENT_ID = "user", "client-id"
ENTITY_TYPES = (USER, CLIENT_ID)
DEFAULT = None  # an entity name of None is that type's default, as in the protocol
MAX_THROTTLE_MS = 2**31 - 1  # throttle_time_ms is an int32 (Kafka does not bound byte-rate throttles otherwise)


def entity_key(entity: dict) -> str:
    """The canonical text of an entity: {"user": name, "client-id": name} with only the types it names,
    None for a default. It keys stored quotas (metadata, the controller's store, etcd)."""
    return json.dumps({t: entity[t] for t in ENTITY_TYPES if t in entity}, sort_keys=True, separators=(",", ":"))


def entity_of(key: str) -> dict:
    return json.loads(key)


def principal_user(principal: str) -> str:
    """The user a quota names for a principal such as "User:alice" (ANONYMOUS for unauthenticated clients)."""
    return principal.split(":", 1)[1] if ":" in principal else principal


def resolve(quotas: dict, key: str, user: str, client_id: str) -> tuple[float, tuple[str, str]] | None:
    """(limit, tags) for quota `key` of a request from `user` with `client_id`, or None when no entity gives
    it a value. `tags` is (user, client id) with "" for a part not counted: requests with equal tags share
    one rate. `quotas`: {entity_key: {quota key: value}} as the metadata snapshot holds them."""
    for entity, tags in _levels(user, client_id):
        values = quotas.get(entity)
        if values is not None and key in values:
            return float(values[key]), tags
    return None


def _levels(user: str, client_id: str):
    both = (user, client_id)
    yield entity_key({USER: user, CLIENT_ID: client_id}), both
    yield entity_key({USER: user, CLIENT_ID: DEFAULT}), both
    yield entity_key({USER: user}), (user, "")
    yield entity_key({USER: DEFAULT, CLIENT_ID: client_id}), both
    yield entity_key({USER: DEFAULT, CLIENT_ID: DEFAULT}), both
    yield entity_key({USER: DEFAULT}), (user, "")
    yield entity_key({CLIENT_ID: client_id}), ("", client_id)
    yield entity_key({CLIENT_ID: DEFAULT}), ("", client_id)


def span_ms(now_ms: int, oldest_window: int, window_ms: int, samples: int) -> int:
    """The time a rate is taken over: from the start of the oldest window in range to now, but never less
    than `samples - 1` whole windows (a client that has just started is not judged on a few milliseconds)."""
    elapsed = now_ms - oldest_window * window_ms
    full = elapsed // window_ms
    if full < samples - 1:
        elapsed += (samples - 1 - full) * window_ms
    return elapsed


def throttle_ms(total: float, span: int, limit: float) -> int:
    """How long a client that moved `total` bytes over `span` ms must wait to be back at `limit` bytes/s."""
    rate = total * 1000.0 / span
    if rate <= limit:
        return 0
    return min(int(round((rate - limit) / limit * span)), MAX_THROTTLE_MS)


def max_fetch_bytes(limit: float, window_ms: int, samples: int) -> int:
    """The most a single fetch may return under `limit`: what the quota allows over the windows a rate
    spans. A larger response would be throttled whatever else the client did, so Kafka caps max_bytes."""
    return max(1, int(limit * (samples - 1) * window_ms / 1000))


_UNRESOLVED = object()
_CACHE_MAX = 10000


class QuotaMeter:
    """A network worker's judge of client quotas: it counts what its own connections move into its table
    of the shared quota region (`broker.shm.quota`) and judges each request by every worker's counts."""

    def __init__(self, table, index: int, window_ms: int, samples: int):
        self.table = table
        self.index = index
        self.window_ms = window_ms
        self.samples = samples
        self._version = -1
        self._limits: dict = {}
        self._requests = False
        self._full_logged = False

    def _follow(self, md) -> None:
        """Forget what was resolved against an older metadata snapshot."""
        if md.version != self._version:
            self._version = md.version
            self._limits.clear()
            self._requests = any(REQUEST_PERCENTAGE in v for v in md.quotas.values())

    def limit(self, md, kind: int, user: str, client_id: str) -> tuple[float, int] | None:
        """(limit, counter key) of the quota that applies, or None; resolved once per metadata version. The
        limit is bytes a second, or for REQUEST microseconds of broker time a second."""
        self._follow(md)
        k = (kind, user, client_id)
        hit = self._limits.get(k, _UNRESOLVED)
        if hit is _UNRESOLVED:
            found = resolve(md.quotas, KEYS[kind], user, client_id)
            if found is None:
                hit = None
            else:
                limit = found[0] * US_PER_PERCENT if kind == REQUEST else found[0]
                hit = (limit, counter_key(*found[1]))
            if len(self._limits) >= _CACHE_MAX:
                self._limits.clear()
            self._limits[k] = hit
        return hit

    def limits_requests(self, md) -> bool:
        """Whether any entity has a request_percentage (checked once per metadata version)."""
        self._follow(md)
        return self._requests

    def record(self, quota: tuple[float, int], kind: int, value: int) -> int:
        """Count `value` bytes against `quota`; the throttle time in ms the client has earned (0: none)."""
        limit, key = quota
        now_ms = time.monotonic_ns() // 1_000_000
        window = now_ms // self.window_ms
        if not self.table.add(self.index, key, kind, window, value):
            if not self._full_logged:
                self._full_logged = True
                log.warning("quota table full: some clients are not counted", worker=self.index,
                            slots=self.table.slots)
            return 0
        total, oldest = self.table.counted(key, kind, window)
        ms = throttle_ms(total, span_ms(now_ms, oldest, self.window_ms, self.samples), limit)
        # Kafka bounds a request-time throttle by one window (boundedThrottleTime); byte rates it does not bound.
        return min(ms, self.window_ms) if kind == REQUEST else ms

    def take_back(self, quota: tuple[float, int], kind: int, value: int) -> None:
        """Un-count a response that went out empty because it was throttled, as Kafka does for Fetch."""
        window = time.monotonic_ns() // 1_000_000 // self.window_ms
        self.table.add(self.index, quota[1], kind, window, -value)


class RequestTime:
    """What one request of a client under a request_percentage quota costs the broker: the network worker's
    thread time handling it, plus the partition owners' time on its appends (reported in their
    completions). Charged once, when its response is made; the throttle time it earns goes into that
    response, as Kafka puts it there."""

    __slots__ = ("ctx", "conn", "quota", "t0", "sync_us", "charged")

    def __init__(self, ctx, conn, quota: tuple[float, int]):
        self.ctx = ctx
        self.conn = conn
        self.quota = quota
        self.t0 = time.thread_time_ns()
        self.sync_us: int | None = None
        self.charged = False

    def handled(self) -> None:
        """The handler returned: what it did so far is this request's own time (a later answer is made
        while the worker does other work)."""
        if self.sync_us is None:
            self.sync_us = (time.thread_time_ns() - self.t0) // 1000

    def charge(self, owner_us: int = 0) -> int:
        """Count the request's time; the throttle time in ms it earned (0 once charged)."""
        if self.charged:
            return 0
        self.charged = True
        us = self.sync_us if self.sync_us is not None else (time.thread_time_ns() - self.t0) // 1000
        ms = self.ctx.quotas.record(self.quota, REQUEST, us + owner_us)
        if ms:
            throttle(self.ctx, self.conn, ms, _ml.MS_THROTTLED_REQUEST)
        return ms

    def on_reply(self, body: dict) -> None:
        """A response made from a body (every API but Produce and Fetch): its throttle_time_ms says so."""
        ms = self.charge()
        if ms and "throttle_time_ms" in body:
            body["throttle_time_ms"] = max(body["throttle_time_ms"] or 0, ms)


def throttle(ctx, conn, ms: int, counter: int) -> None:
    """Stop reading `conn` for `ms` (the client was told to wait that long, and one that does not is made
    to), and wake the worker's loop when that time is up."""
    PROC.scalars[counter] += 1
    PROC.scalars[_ml.MS_THROTTLE_MS] += ms
    conn.mute(ms / 1000.0)
    ctx.call_later(ms / 1000.0, _nothing)


def _nothing() -> None:
    """The loop looks at paused connections after every wakeup; the timer only wakes it."""
