"""etcd v3 through its JSON gateway: key-value, transactions, leases, prefix watches and a leader election.

The gateway (`POST /v3/...`, keys and values base64, int64 fields as JSON strings) needs only http.client,
so cluster mode adds no dependency. Every call has a timeout and tries each endpoint in turn; an endpoint
that answers with an etcd error is not retried elsewhere (the cluster has spoken), one that cannot be
reached is. One HTTP connection per thread and endpoint: the supervisor, the lease thread and watch threads
call the same client concurrently.
"""

from __future__ import annotations

import base64
import http.client
import json
import socket
import threading
import time
from dataclasses import dataclass, field

from broker.logfmt import Log

log = Log("hpbroker.etcd")

_CMP = {"=": "EQUAL", "!=": "NOT_EQUAL", "<": "LESS", ">": "GREATER"}
_UNAVAILABLE = 14  # gRPC code of "no leader" / "not ready": another member may answer


class EtcdError(Exception):
    """etcd answered an error (`code` is its gRPC status code) or no endpoint could be reached (code -1)."""

    def __init__(self, message: str, code: int = -1):
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class KV:
    key: str
    value: bytes
    create_revision: int
    mod_revision: int
    version: int
    lease: int


@dataclass(frozen=True)
class Event:
    type: str  # "PUT" | "DELETE"
    kv: KV     # for DELETE: key and mod_revision set, value b""


def _b64(data: str | bytes) -> str:
    return base64.b64encode(data.encode() if isinstance(data, str) else data).decode("ascii")


def _prefix_end(prefix: str) -> str:
    """The first key after every key starting with `prefix` (etcd's range_end for a prefix)."""
    end = bytearray(prefix.encode())
    while end and end[-1] == 0xFF:
        end.pop()
    if not end:
        return _b64(b"\0")  # the empty prefix: every key
    end[-1] += 1
    return _b64(bytes(end))


def _range(key: str, prefix: bool) -> dict:
    req = {"key": _b64(key)}
    if prefix:
        req["range_end"] = _prefix_end(key)
    return req


def _kv(obj: dict) -> KV:
    return KV(key=base64.b64decode(obj["key"]).decode(), value=base64.b64decode(obj.get("value", "")),
              create_revision=int(obj.get("create_revision", 0)), mod_revision=int(obj.get("mod_revision", 0)),
              version=int(obj.get("version", 0)), lease=int(obj.get("lease", 0)))


def _revision(resp: dict) -> int:
    return int(resp.get("header", {}).get("revision", 0))


@dataclass(frozen=True)
class Compare:
    """One condition of a transaction; build with the static methods."""
    key: str
    target: str   # "MOD" | "CREATE" | "VALUE"
    op: str       # "=" | "!=" | "<" | ">"
    operand: int | bytes

    @staticmethod
    def mod_revision(key: str, op: str, rev: int) -> "Compare":
        return Compare(key, "MOD", op, rev)

    @staticmethod
    def create_revision(key: str, op: str, rev: int) -> "Compare":
        return Compare(key, "CREATE", op, rev)

    @staticmethod
    def value(key: str, op: str, value: bytes) -> "Compare":
        return Compare(key, "VALUE", op, value)

    def request(self) -> dict:
        if self.op not in _CMP:
            raise ValueError(f"compare operator must be one of {sorted(_CMP)}: {self.op!r}")
        req = {"key": _b64(self.key), "target": self.target, "result": _CMP[self.op]}
        if self.target == "VALUE":
            req["value"] = _b64(self.operand)
        else:
            req["mod_revision" if self.target == "MOD" else "create_revision"] = str(self.operand)
        return req


@dataclass(frozen=True)
class Op:
    """One operation of a transaction branch; build with the static methods."""
    kind: str  # "put" | "delete" | "get"
    key: str
    value: bytes = b""
    lease: int = 0
    prefix: bool = False

    @staticmethod
    def put(key: str, value: bytes, lease: int = 0) -> "Op":
        return Op("put", key, value, lease)

    @staticmethod
    def delete(key: str, prefix: bool = False) -> "Op":
        return Op("delete", key, prefix=prefix)

    @staticmethod
    def get(key: str, prefix: bool = False) -> "Op":
        return Op("get", key, prefix=prefix)

    def request(self) -> dict:
        if self.kind == "put":
            return {"request_put": {"key": _b64(self.key), "value": _b64(self.value), "lease": str(self.lease)}}
        if self.kind == "delete":
            return {"request_delete_range": _range(self.key, self.prefix)}
        return {"request_range": _range(self.key, self.prefix)}


@dataclass
class TxnResult:
    succeeded: bool
    revision: int
    responses: list = field(default_factory=list)  # per op of the branch taken: list[KV] for a get, else None


def _endpoints(endpoints: str | list[str]) -> list[tuple[str, int]]:
    if isinstance(endpoints, str):
        endpoints = endpoints.split(",")
    out = []
    for ep in endpoints:
        ep = ep.strip().removeprefix("http://")
        if ep:
            host, _, port = ep.rstrip("/").rpartition(":")
            out.append((host or "127.0.0.1", int(port)))
    if not out:
        raise ValueError("no etcd endpoint given")
    return out


class EtcdClient:
    """Blocking calls to etcd; safe to share between threads."""

    def __init__(self, endpoints: str | list[str], timeout: float = 5.0):
        self.endpoints = _endpoints(endpoints)
        self.timeout = timeout
        self._current = 0              # the endpoint that answered last: tried first
        self._local = threading.local()
        self._lock = threading.Lock()
        self._conns: set[http.client.HTTPConnection] = set()
        self._closed = False

    # -- transport ---------------------------------------------------------------------------------------------

    def _conn(self, index: int) -> http.client.HTTPConnection:
        conns = self._local.__dict__.setdefault("conns", {})
        conn = conns.get(index)
        if conn is None:
            host, port = self.endpoints[index]
            conn = http.client.HTTPConnection(host, port, timeout=self.timeout)
            conns[index] = conn
            with self._lock:
                self._conns.add(conn)
        return conn

    def _drop(self, index: int) -> None:
        conn = self._local.__dict__.get("conns", {}).pop(index, None)
        if conn is not None:
            conn.close()
            with self._lock:
                self._conns.discard(conn)

    def call(self, path: str, body: dict) -> dict:
        """POST one gateway request; the decoded JSON answer (streams: the first object's `result`)."""
        if self._closed:
            raise EtcdError("client is closed")
        data = json.dumps(body).encode()
        failures = []
        # One more attempt than endpoints: a kept-alive connection the server has since closed gets a fresh one.
        for attempt in range(len(self.endpoints) + 1):
            index = (self._current + attempt) % len(self.endpoints)
            try:
                conn = self._conn(index)
                conn.request("POST", path, data, {"Content-Type": "application/json"})
                resp = conn.getresponse()
                raw = resp.read()
            except (OSError, http.client.HTTPException) as e:
                self._drop(index)
                failures.append(f"{self.endpoints[index][0]}:{self.endpoints[index][1]}: {e!r}")
                continue
            try:
                answer = json.loads(raw.splitlines()[0]) if raw.strip() else {}
            except ValueError:
                raise EtcdError(f"{path}: HTTP {resp.status}: {raw[:200]!r}") from None
            if "result" in answer:
                answer = answer["result"]
            err = answer.get("error")
            if err is not None:
                if isinstance(err, dict):
                    code, message = int(err.get("grpc_code", err.get("code", -1))), err.get("message", "")
                else:
                    code, message = int(answer.get("code", -1)), answer.get("message", err)
                if code == _UNAVAILABLE and attempt < len(self.endpoints):
                    failures.append(f"{self.endpoints[index][0]}:{self.endpoints[index][1]}: {message}")
                    continue
                raise EtcdError(f"{path}: {message}", code)
            if resp.status != 200:
                raise EtcdError(f"{path}: HTTP {resp.status}", -1)
            self._current = index
            return answer
        raise EtcdError("etcd unreachable: " + "; ".join(failures))

    # -- key-value ---------------------------------------------------------------------------------------------

    def get(self, key: str) -> KV | None:
        kvs = self.call("/v3/kv/range", _range(key, False)).get("kvs", [])
        return _kv(kvs[0]) if kvs else None

    def get_prefix(self, prefix: str) -> tuple[list[KV], int]:
        """Every key under `prefix`, sorted by key, and the revision they were read at."""
        resp = self.call("/v3/kv/range", _range(prefix, True))
        return sorted((_kv(o) for o in resp.get("kvs", [])), key=lambda kv: kv.key), _revision(resp)

    def put(self, key: str, value: bytes, lease: int = 0) -> int:
        return _revision(self.call("/v3/kv/put", Op.put(key, value, lease).request()["request_put"]))

    def delete(self, key: str, prefix: bool = False) -> int:
        return int(self.call("/v3/kv/deleterange", _range(key, prefix)).get("deleted", 0))

    def txn(self, compare: list, success: list, failure: list = ()) -> TxnResult:
        resp = self.call("/v3/kv/txn", {"compare": [c.request() for c in compare],
                                        "success": [o.request() for o in success],
                                        "failure": [o.request() for o in failure]})
        responses = []
        for r in resp.get("responses", []):
            rng = r.get("response_range")
            responses.append([_kv(o) for o in rng.get("kvs", [])] if rng is not None else None)
        return TxnResult(bool(resp.get("succeeded", False)), _revision(resp), responses)

    # -- leases ------------------------------------------------------------------------------------------------

    def lease_grant(self, ttl_s: int) -> int:
        return int(self.call("/v3/lease/grant", {"TTL": str(int(ttl_s))})["ID"])

    def lease_keepalive(self, lease_id: int) -> int:
        """Renew once; the remaining TTL in seconds, 0 when the lease has expired or was revoked."""
        return max(0, int(self.call("/v3/lease/keepalive", {"ID": str(lease_id)}).get("TTL", 0)))

    def lease_revoke(self, lease_id: int) -> None:
        self.call("/v3/lease/revoke", {"ID": str(lease_id)})

    # -- watches -----------------------------------------------------------------------------------------------

    def watch_prefix(self, prefix: str, start_revision: int, callback) -> "Watch":
        """Stream changes under `prefix` from `start_revision` (0: from now) to `callback(events, revision)`."""
        return Watch(self, prefix, start_revision, callback)

    def release_thread(self) -> None:
        """Close the calling thread's connections: a thread that is about to end leaves no socket behind."""
        for index in list(self._local.__dict__.get("conns", {})):
            self._drop(index)

    def close(self) -> None:
        self._closed = True
        with self._lock:
            conns, self._conns = self._conns, set()
        for conn in conns:
            conn.close()


class Watch:
    """A daemon thread following one prefix through etcd's watch stream.

    `callback(events, revision)` runs in that thread; `revision` is the mod_revision of the last event, so
    the caller's view is complete up to it. A dropped stream (etcd restarted, endpoint lost) is reopened
    from that revision + 1 on the next reachable endpoint. When that revision has been compacted away the
    callback gets `([], -1)`: the caller reloads everything; the watch then continues from the oldest
    revision etcd still keeps, so events at or below the caller's reload revision arrive again (compare
    their mod_revision with it).
    """

    RETRY_S = (0.1, 0.2, 0.5, 1.0)

    def __init__(self, client: EtcdClient, prefix: str, start_revision: int, callback):
        self.client = client
        self.prefix = prefix
        self.callback = callback
        self.next_revision = start_revision
        self._stop = threading.Event()
        self._conn: http.client.HTTPConnection | None = None
        self._thread = threading.Thread(target=self._run, name=f"etcd-watch {prefix}", daemon=True)
        self._thread.start()

    def cancel(self) -> None:
        self._stop.set()
        conn = self._conn
        if conn is not None and conn.sock is not None:
            try:
                conn.sock.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked reading the stream
            except OSError:
                pass
        if threading.current_thread() is not self._thread:
            self._thread.join(self.client.timeout)

    def _run(self) -> None:
        failures = 0
        index = self.client._current
        while not self._stop.is_set():
            try:
                if self._stream(index):
                    failures = 0
            except (OSError, http.client.HTTPException, ValueError) as e:
                if not self._stop.is_set():
                    log.warning("etcd watch dropped", prefix=self.prefix, error=repr(e),
                                resume_revision=self.next_revision)
            finally:
                if self._conn is not None:
                    self._conn.close()
                    self._conn = None
            index = (index + 1) % len(self.client.endpoints)
            self._stop.wait(self.RETRY_S[min(failures, len(self.RETRY_S) - 1)])
            failures += 1

    def _stream(self, index: int) -> bool:
        """Follow one watch stream until it ends; True if it delivered anything."""
        host, port = self.client.endpoints[index]
        self._conn = conn = http.client.HTTPConnection(host, port, timeout=self.client.timeout)
        conn.connect()
        # The stream is idle while nothing changes: no read timeout, TCP keepalive notices a dead peer.
        conn.sock.settimeout(None)
        _keepalive(conn.sock)
        if self._stop.is_set():
            return False
        req = _range(self.prefix, True)
        if self.next_revision > 0:
            req["start_revision"] = str(self.next_revision)
        conn.request("POST", "/v3/watch", json.dumps({"create_request": req}).encode(),
                     {"Content-Type": "application/json"})
        resp = conn.getresponse()
        if resp.status != 200:
            raise http.client.HTTPException(f"watch: HTTP {resp.status}")
        delivered = False
        while not self._stop.is_set():
            line = resp.readline()
            if not line:
                return delivered
            if not line.strip():
                continue
            msg = json.loads(line)
            if "error" in msg:
                raise ValueError(f"watch error: {msg['error']}")
            result = msg.get("result", {})
            delivered = True
            if int(result.get("compact_revision", 0)) > 0:
                log.warning("etcd watch compacted", prefix=self.prefix, wanted=self.next_revision,
                            compact_revision=result["compact_revision"])
                self.next_revision = int(result["compact_revision"])
                self._deliver([], -1)
                return True
            if result.get("canceled"):
                raise ValueError(f"watch canceled: {result.get('cancel_reason', '')}")
            if result.get("created") and self.next_revision <= 0:
                self.next_revision = _revision(result) + 1
            events = [Event(e.get("type", "PUT"), _kv(e["kv"])) for e in result.get("events", [])]
            if events:
                self.next_revision = events[-1].kv.mod_revision + 1
                self._deliver(events, events[-1].kv.mod_revision)
        return delivered

    def _deliver(self, events: list[Event], revision: int) -> None:
        try:
            self.callback(events, revision)
        except Exception:
            log.error("etcd watch callback failed", exc_info=True, prefix=self.prefix, revision=revision)


def _keepalive(sock: socket.socket) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for opt, val in (("TCP_KEEPIDLE", 10), ("TCP_KEEPINTVL", 5), ("TCP_KEEPCNT", 3)):
        if hasattr(socket, opt):
            sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, opt), val)


class Lease:
    """A lease kept alive by a daemon thread every `interval_s`; `on_lost()` is called once (in that thread) if
    etcd says the lease is gone or it could not be renewed for ttl_s."""

    def __init__(self, client: EtcdClient, ttl_s: int, interval_s: float, on_lost=None):
        self.client = client
        self.ttl_s = ttl_s
        self.interval_s = interval_s
        self.on_lost = on_lost
        self.id = client.lease_grant(ttl_s)
        self.lost = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"etcd-lease {self.id:x}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._renew()
        finally:
            self.client.release_thread()

    def _renew(self) -> None:
        renewed = time.monotonic()  # etcd restarts the TTL when it receives a renewal, after we send it
        while not self._stop.wait(self.interval_s):
            sent = time.monotonic()
            try:
                ttl = self.client.lease_keepalive(self.id)
            except EtcdError as e:
                if time.monotonic() - renewed < self.ttl_s:
                    log.warning("etcd lease not renewed", lease=f"{self.id:x}", error=str(e))
                    continue
                ttl = 0
            if ttl > 0:
                renewed = sent
                continue
            if self._stop.is_set():
                return
            self.lost = True
            log.warning("etcd lease lost", lease=f"{self.id:x}", ttl_s=self.ttl_s)
            if self.on_lost is not None:
                try:
                    self.on_lost()
                except Exception:
                    log.error("etcd lease on_lost failed", exc_info=True, lease=f"{self.id:x}")
            return

    def revoke(self) -> None:
        """Stop renewing and revoke: keys attached to the lease vanish now rather than after the TTL."""
        self._stop.set()
        if threading.current_thread() is not self._thread:
            self._thread.join(self.client.timeout)
        try:
            self.client.lease_revoke(self.id)
        except EtcdError as e:
            log.info("etcd lease revoke failed", lease=f"{self.id:x}", error=str(e))


def campaign(client: EtcdClient, key: str, value: bytes, lease: int) -> bool:
    """Become the holder of `key` if nobody holds it (txn create_revision == 0 -> put with lease).

    Holding it already with this lease counts as winning: a retried request whose first attempt succeeded
    reads back our own put.
    """
    res = client.txn([Compare.create_revision(key, "=", 0)], [Op.put(key, value, lease)], [Op.get(key)])
    if res.succeeded:
        return True
    holder = res.responses[0] if res.responses else []
    return bool(holder) and holder[0].lease == lease
