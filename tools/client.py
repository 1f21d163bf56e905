"""A small blocking Kafka client on hpbroker's codec: the only module of the CLI that touches the network.

One connection per broker, opened on first use; the first request on each is ApiVersions, and every
later request uses the highest version both the broker and our codec declarations support. It speaks
plain Kafka, so the CLI works against any Kafka broker, not only hpbroker.
"""

from __future__ import annotations

import socket
import struct

from netio.codec import APIS, ErrorCode, decode_response, encode_request

API_VERSIONS = 18
SASL_HANDSHAKE = 17
SASL_AUTHENTICATE = 36
LIST_OFFSETS = 2
METADATA = 3
FIND_COORDINATOR = 10
CLIENT_ID = "hpbroker-cli"
_SIZE = struct.Struct(">i")


class KafkaError(Exception):
    """A Kafka error code returned by the broker (or a connection failure, with code None)."""

    def __init__(self, code: int | None, message: str | None = None, what: str = ""):
        self.code = code
        self.name = _error_name(code) if code is not None else "CONNECTION"
        text = f"{what}: " if what else ""
        if code is None:
            super().__init__(f"{text}{message}")
        else:
            super().__init__(f"{text}{self.name}" + (f" ({message})" if message else ""))


def _error_name(code: int) -> str:
    try:
        return ErrorCode(code).name
    except ValueError:
        return f"error {code}"


def parse_address(text: str) -> tuple[str, int]:
    host, _, port = text.strip().rpartition(":")
    if not host:
        return text.strip(), 9092
    return host.strip("[]"), int(port)


class Connection:
    """One blocking TCP connection with negotiated API versions; logged in first when `sasl` is
    (mechanism, user, password)."""

    def __init__(self, host: str, port: int, timeout: float = 30.0, sasl: tuple[str, str, str] | None = None,
                 tls=None):
        self.address = f"{host}:{port}"
        try:
            self.sock = socket.create_connection((host, port), timeout=timeout)
            if tls is not None:  # an ssl.SSLContext: the broker's certificate is checked against `host`
                self.sock = tls.wrap_socket(self.sock, server_hostname=host)
        except OSError as e:
            raise KafkaError(None, f"cannot connect to {self.address}: {e.strerror or e}") from None
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.correlation = 0
        self.versions: dict[int, tuple[int, int]] = {}
        body = self._call(API_VERSIONS, 0, {})
        if body["error_code"]:
            raise KafkaError(body["error_code"], what="ApiVersions")
        self.versions = {a["api_key"]: (a["min_version"], a["max_version"]) for a in body["api_keys"]}
        if sasl is not None:
            self._authenticate(*sasl)

    def _authenticate(self, mechanism: str, user: str, password: str) -> None:
        from broker.security.sasl import AuthenticationFailed, client_exchange

        reply = self.request(SASL_HANDSHAKE, {"mechanism": mechanism}, highest=1)
        if reply["error_code"]:
            offered = ", ".join(reply["mechanisms"]) or "none"
            raise KafkaError(reply["error_code"], f"{mechanism}; the broker offers {offered}", "SASL")

        def send(token: bytes) -> bytes:
            r = self.request(SASL_AUTHENTICATE, {"auth_bytes": token}, highest=1)
            if r["error_code"]:
                raise KafkaError(r["error_code"], r.get("error_message"), "SASL")
            return r["auth_bytes"]

        try:
            client_exchange(mechanism, user, password, send)
        except AuthenticationFailed as e:
            raise KafkaError(int(e.error_code), str(e), "SASL") from None

    def version_for(self, api_key: int, highest: int | None = None) -> int:
        """Highest version that the broker advertises and our declaration encodes."""
        api = APIS[api_key]
        broker = self.versions.get(api_key)
        if broker is None:
            raise KafkaError(int(ErrorCode.UNSUPPORTED_VERSION), f"{self.address} does not serve {api.name}")
        hi = min(broker[1], api.versions[1], highest if highest is not None else 1 << 15)
        lo = max(broker[0], api.versions[0])
        if api_key == 0:
            lo = max(lo, 3)  # Produce v0-v2 carry no record batches
        if hi < lo:
            raise KafkaError(int(ErrorCode.UNSUPPORTED_VERSION), f"no common {api.name} version with {self.address}")
        return hi

    def request(self, api_key: int, body: dict, highest: int | None = None) -> dict:
        return self._call(api_key, self.version_for(api_key, highest), body)

    def _call(self, api_key: int, version: int, body: dict) -> dict:
        self.correlation += 1
        frame = encode_request(api_key, version, self.correlation, CLIENT_ID, body)
        try:
            self.sock.sendall(frame)
            size = _SIZE.unpack(self._read(4))[0]
            data = self._read(size)
        except OSError as e:
            raise KafkaError(None, f"{self.address}: {e}") from None
        correlation, reply = decode_response(api_key, version, data)
        if correlation != self.correlation:
            raise KafkaError(None, f"{self.address}: response out of order")
        return reply

    def _read(self, n: int) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("connection closed by the broker")
            buf += chunk
        return bytes(buf)

    def close(self) -> None:
        self.sock.close()


class Client:
    """Cluster-aware: bootstrap, Metadata, leaders and group coordinators."""

    def __init__(self, bootstrap: str, timeout: float = 30.0, sasl: tuple[str, str, str] | None = None, tls=None):
        self.timeout = timeout
        self.sasl = sasl
        self.tls = tls
        self.seeds = [parse_address(a) for a in bootstrap.split(",") if a.strip()]
        self.conns: dict[int | str, Connection] = {}
        self.brokers: dict[int, tuple[str, int]] = {}
        self.any = self._bootstrap()

    def _bootstrap(self) -> Connection:
        errors = []
        for host, port in self.seeds:
            try:
                conn = Connection(host, port, self.timeout, self.sasl, self.tls)
                self.conns[f"seed:{host}:{port}"] = conn
                return conn
            except KafkaError as e:
                if e.code is not None:  # the broker answered (a refused login): another seed would too
                    raise
                errors.append(str(e))
        raise KafkaError(None, "; ".join(errors) or "no bootstrap address given")

    def broker(self, node_id: int) -> Connection:
        conn = self.conns.get(node_id)
        if conn is None:
            if node_id not in self.brokers:
                self.metadata([])
            if node_id not in self.brokers:
                raise KafkaError(int(ErrorCode.BROKER_NOT_AVAILABLE), f"broker {node_id} is not in the cluster")
            host, port = self.brokers[node_id]
            conn = self.any if self.any.address == f"{host}:{port}" else Connection(host, port, self.timeout,
                                                                                     self.sasl, self.tls)
            self.conns[node_id] = conn
        return conn

    def metadata(self, topics: list[str] | None = None, auto_create: bool = False) -> dict:
        """Metadata for `topics` (None: all topics; []: brokers only)."""
        body = {"topics": None if topics is None else [{"name": t} for t in topics],
                "allow_auto_topic_creation": auto_create,
                "include_cluster_authorized_operations": False, "include_topic_authorized_operations": False}
        reply = self.any.request(METADATA, body)
        self.brokers = {b["node_id"]: (b["host"], b["port"]) for b in reply["brokers"]}
        return reply

    def topic(self, name: str) -> dict:
        """One topic's metadata; raises KafkaError for an unknown topic."""
        md = self.metadata([name])
        for t in md["topics"]:
            if t["name"] == name:
                if t["error_code"]:
                    raise KafkaError(t["error_code"], f"topic {name!r}")
                return t
        raise KafkaError(int(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION), f"topic {name!r}")

    def leaders(self, name: str) -> dict[int, int]:
        return {p["partition_index"]: p["leader_id"] for p in self.topic(name)["partitions"]}

    def controller(self) -> Connection:
        md = self.metadata([])
        cid = md.get("controller_id", -1)
        return self.broker(cid) if cid in self.brokers else self.any

    def coordinator(self, group: str) -> Connection:
        conn = self.any
        reply = conn.request(FIND_COORDINATOR, {"key": group, "key_type": 0}, highest=3)
        if reply["error_code"]:
            raise KafkaError(reply["error_code"], reply.get("error_message"), f"coordinator of group {group!r}")
        self.brokers[reply["node_id"]] = (reply["host"], reply["port"])
        return self.broker(reply["node_id"])

    def list_offsets(self, topic: str, timestamps: dict[int, int]) -> dict[int, tuple[int, int]]:
        """{partition: (offset, timestamp)} for each {partition: timestamp} (-2 earliest, -1 latest),
        asking each partition's leader; offset -1 means no record at or after that timestamp."""
        leaders = self.leaders(topic)
        by_leader: dict[int, list[int]] = {}
        for p in timestamps:
            if p not in leaders:
                raise KafkaError(int(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION), f"{topic}-{p}")
            by_leader.setdefault(leaders[p], []).append(p)
        out = {}
        for leader, parts in by_leader.items():
            body = {"replica_id": -1, "isolation_level": 0, "topics": [{"name": topic, "partitions": [
                {"partition_index": p, "current_leader_epoch": -1, "timestamp": timestamps[p]} for p in parts]}]}
            reply = self.broker(leader).request(LIST_OFFSETS, body)
            for t in reply["topics"]:
                for p in t["partitions"]:
                    check(p["error_code"], what=f"offsets of {topic}-{p['partition_index']}")
                    out[p["partition_index"]] = (p["offset"], p["timestamp"])
        return out

    def close(self) -> None:
        for conn in set(self.conns.values()):
            conn.close()
        self.conns.clear()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def check(code: int, message: str | None = None, what: str = "") -> None:
    """Raise KafkaError for a non-zero error code."""
    if code:
        raise KafkaError(code, message, what)
