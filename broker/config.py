"""Broker configuration: Kafka key names and semantics, declared once as data.

Every key is typed and validated where it is parsed, so a typo or a bad value stops the broker before it
binds a socket (exit status 2) instead of surfacing as odd behaviour later. Values come from three layers,
later ones winning: built-in defaults, a ``server.properties`` file, ``--set key=value`` flags. Each
effective value remembers which layer it came from, for ``hpbroker config show``.
"""

from __future__ import annotations

import difflib
import math
import os
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

DEFAULT_DATA_DIR = "./hpbroker-data"
DEFAULT_METRICS_LISTENER = "127.0.0.1:9404"


class ConfigError(ValueError):
    """A key is unknown or a value does not parse or validate; the message names the key."""


@dataclass(frozen=True)
class Key:
    name: str
    type: str  # int | long | double | bool | string | list | listeners | hostport
    default: Any
    doc: str
    min: float | None = None
    max: float | None = None
    choices: tuple[str, ...] | None = None
    nullable: bool = False
    sensitive: bool = False  # a secret: never shown (DescribeConfigs, `hpbroker config`, logs)


INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1


def serves_oauthbearer(cfg) -> bool:
    """OAUTHBEARER is enabled and some listener asks clients to log in."""
    return "OAUTHBEARER" in cfg["sasl.enabled.mechanisms"] and any(lst.name in SASL_LISTENERS
                                                                   for lst in cfg.listeners)


def available_cpus() -> int:
    """The CPUs this process may run on: a broker started under `taskset` or in a container's cpuset
    gets one worker of each kind per CPU it has, not per CPU of the machine."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):  # no affinity API on this platform
        return os.cpu_count() or 1


SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")  # a listener's name is its protocol
TLS_LISTENERS = ("SSL", "SASL_SSL")
SASL_LISTENERS = ("SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")  # what a client logs in with by password
SERVED_SASL_MECHANISMS = SASL_MECHANISMS + ("OAUTHBEARER",)
# Class names Kafka operators set authorizer.class.name to; each turns on the ACL authorizer
# (broker/security/acl.py).
# Broker keys a cluster-wide dynamic default may change while brokers run (AlterConfigs on the broker
# resource with an empty name): the log settings topics inherit. Open logs take them at once.
DYNAMIC_LOG_KEYS = ("log.retention.ms", "log.retention.bytes", "log.segment.bytes", "log.roll.ms",
                    "log.flush.interval.messages", "log.flush.interval.ms", "log.index.interval.bytes",
                    "log.index.size.max.bytes", "log.message.timestamp.type", "log.preallocate",
                    "log.cleanup.policy", "log.cleaner.min.cleanable.ratio", "log.cleaner.delete.retention.ms",
                    "log.cleaner.min.compaction.lag.ms", "log.cleaner.max.compaction.lag.ms")


def sasl_passwords(entries: Iterable[str] | None) -> dict[str, str]:
    """`sasl.users` (user:password entries) as {user: password}; a password may itself hold colons."""
    return {user: password for user, _, password in (e.partition(":") for e in entries or ())}


def dynamic_log_defaults(scopes: Mapping[str, Mapping[str, Any]], broker_id: int) -> dict[str, Any]:
    """The dynamic log defaults in force on one broker: the cluster-wide ones (scope "") overridden by the
    broker's own (scope str(broker id)), as Kafka layers them."""
    return {**scopes.get("", {}), **scopes.get(str(broker_id), {})}


AUTHORIZERS = ("org.apache.kafka.metadata.authorizer.StandardAuthorizer", "kafka.security.authorizer.AclAuthorizer")

KEYS: tuple[Key, ...] = (
    Key("broker.id", "int", 0, "This broker's id in the cluster.", min=0, max=INT32_MAX),
    Key("listeners", "listeners", "PLAINTEXT://127.0.0.1:9092",
        "Comma-separated listeners NAME://host:port, NAME one of PLAINTEXT, SSL (TLS), SASL_PLAINTEXT and "
        "SASL_SSL (clients authenticate first); port 0 picks a free port. Brokers replicate through "
        "inter.broker.listener.name (default: the first)."),
    Key("advertised.listeners", "listeners", None,
        "Listeners returned to clients in Metadata; defaults to `listeners`.", nullable=True),
    Key("log.dirs", "list", DEFAULT_DATA_DIR, "Comma-separated data directories holding partition logs."),
    Key("num.network.threads", "int", available_cpus,
        "Network worker processes (default: the CPUs this process may run on).", min=1, max=256),
    Key("num.io.threads", "int", available_cpus,
        "I/O worker processes owning partitions (default: the CPUs this process may run on).", min=1, max=256),
    Key("socket.send.buffer.bytes", "int", 102400, "SO_SNDBUF for client sockets; -1 keeps the OS default.",
        min=-1),
    # Not Kafka's 102400: a fixed SO_RCVBUF turns off the kernel's receive autotuning, and 100 KB of window
    # split every large Produce into several receives and wakeups (perf/RESULTS.md, "socket receive buffer").
    Key("socket.receive.buffer.bytes", "int", -1,
        "SO_RCVBUF for client sockets; -1 (default) keeps the OS default and its autotuning.", min=-1),
    Key("socket.request.max.bytes", "int", 104857600, "Largest request frame accepted.", min=64),
    Key("quota.window.num", "int", 11,
        "Windows a client's byte rate is measured over for its quotas (the current one included).", min=2),
    Key("quota.window.size.seconds", "int", 1, "Length of one quota window.", min=1),
    Key("max.request.partition.size.limit", "int", 2000,
        "Most partitions one DescribeTopicPartitions response carries (a client asking for more pages on).",
        min=1),
    Key("num.partitions", "int", 1, "Partitions of an auto-created topic.", min=1, max=100000),
    Key("default.replication.factor", "int", 1, "Replication factor of an auto-created topic.", min=1,
        max=32767),
    Key("auto.create.topics.enable", "bool", True, "Create a topic on first Metadata/Produce for it."),
    Key("message.max.bytes", "int", 1048588, "Largest record batch accepted (topic: max.message.bytes).",
        min=0),
    Key("log.segment.bytes", "int", 1073741824, "Segment size at which the log rolls.", min=14,
        max=INT32_MAX),
    Key("log.roll.ms", "long", None, "Segment age at which the log rolls (overrides log.roll.hours).",
        min=1, nullable=True),
    Key("log.roll.hours", "int", 168, "Segment age in hours at which the log rolls.", min=1),
    Key("log.retention.ms", "long", None,
        "Retention by time; overrides minutes/hours; -1 keeps forever.", min=-1, nullable=True),
    Key("log.retention.minutes", "int", None, "Retention by time in minutes; overrides hours.", min=-1,
        nullable=True),
    Key("log.retention.hours", "int", 168, "Retention by time in hours.", min=-1),
    Key("log.retention.bytes", "long", -1, "Retention by partition size; -1 is unlimited.", min=-1),
    Key("log.retention.check.interval.ms", "long", 300000, "How often retention runs.", min=1),
    Key("log.flush.interval.messages", "long", INT64_MAX,
        "fsync after this many messages; the default leaves flushing to the OS.", min=1),
    Key("log.flush.interval.ms", "long", None, "fsync data older than this; unset leaves it to the OS.",
        min=0, nullable=True),
    Key("log.index.interval.bytes", "int", 4096, "Bytes between offset-index entries.", min=0),
    Key("log.preallocate", "bool", False,
        "Reserve a whole segment's disk space when it is created (else it grows in steps ahead of the writer)."),
    Key("log.index.size.max.bytes", "int", 10485760, "Preallocated size of each index file.", min=4),
    Key("log.message.timestamp.type", "string", "CreateTime", "Timestamp kept in appended batches.",
        choices=("CreateTime", "LogAppendTime")),
    Key("log.cleanup.policy", "list", "delete",
        "What happens to old segments: delete (retention), compact (keep each key's latest record) or both."),
    Key("log.cleaner.enable", "bool", True, "Run the log cleaner, which compacts topics with cleanup.policy=compact."),
    Key("log.cleaner.threads", "int", 1, "Cleaner threads (accepted for Kafka compatibility).", min=1),
    Key("log.cleaner.backoff.ms", "long", 15000, "Pause of the cleaner when no log needs cleaning.", min=0),
    Key("log.cleaner.dedupe.buffer.size", "long", 134217728,
        "Memory the cleaner uses to map keys to their latest offsets, across all cleaner threads.", min=1 << 20),
    Key("log.cleaner.min.cleanable.ratio", "double", 0.5,
        "Share of a log's bytes that must be uncleaned before it is compacted (topic: min.cleanable.dirty.ratio).",
        min=0, max=1),
    Key("log.cleaner.delete.retention.ms", "long", 86400000,
        "How long a compacted log keeps tombstones (topic: delete.retention.ms).", min=0),
    Key("log.cleaner.min.compaction.lag.ms", "long", 0,
        "Records younger than this are never compacted (topic: min.compaction.lag.ms).", min=0),
    Key("log.cleaner.max.compaction.lag.ms", "long", INT64_MAX,
        "Records older than this make their log eligible for compaction whatever its dirty ratio "
        "(topic: max.compaction.lag.ms).", min=1),
    Key("offsets.topic.num.partitions", "int", 50, "Partitions of __consumer_offsets.", min=1),
    Key("offsets.topic.replication.factor", "int", 3,
        "Replicas of __consumer_offsets in a cluster (it is created once this many brokers are up).",
        min=1, max=32767),
    Key("group.initial.rebalance.delay.ms", "int", 3000,
        "Wait for more members before the first rebalance of an empty group.", min=0),
    Key("offsets.retention.minutes", "int", 10080,
        "Committed offsets of a group that has been empty this long, of a topic a live consumer group no longer "
        "subscribes to, or of a standalone consumer, are removed this long after their commit (KIP-211).",
        min=1),
    Key("offsets.retention.check.interval.ms", "long", 600000, "How often committed offsets are checked for "
        "expiry.", min=1),
    Key("group.min.session.timeout.ms", "int", 6000, "Smallest session timeout a member may ask for.", min=0),
    Key("group.max.session.timeout.ms", "int", 1800000, "Largest session timeout a member may ask for.",
        min=0),
    Key("min.insync.replicas", "int", 1, "Replicas that must be in sync for acks=all.", min=1),
    Key("replica.lag.time.max.ms", "long", 30000, "A follower this far behind leaves the ISR.", min=1),
    Key("producer.id.expiration.ms", "int", 86400000, "Idle producer state is dropped after this.", min=1),
    Key("metrics.listener", "hostport", DEFAULT_METRICS_LISTENER,
        "host:port serving Prometheus /metrics; `none` disables.", nullable=True),
    Key("etcd.connect", "string", None, "Comma-separated etcd host:port; unset runs a single node.",
        nullable=True),
    Key("etcd.prefix", "string", "/hpbroker", "Key prefix under which the cluster keeps its state in etcd."),
    Key("broker.session.timeout.ms", "int", 9000,
        "A broker whose etcd lease is not renewed for this long leaves the cluster.", min=2000),
    Key("broker.heartbeat.interval.ms", "int", 2000, "How often the etcd lease is renewed.", min=100),
    Key("replica.fetch.wait.max.ms", "int", 500, "Longest a follower's Fetch waits at the leader.", min=0),
    Key("replica.fetch.max.bytes", "int", 1048576, "Bytes a follower asks for per partition.", min=1),
    Key("replica.fetch.backoff.ms", "int", 200, "Pause after a failed follower fetch.", min=0),
    Key("replica.socket.timeout.ms", "int", 30000, "Socket timeout of follower fetches.", min=1),
    Key("auto.leader.rebalance.enable", "bool", True,
        "The controller moves leadership back to each partition's preferred (first) replica once it is in sync."),
    Key("leader.imbalance.check.interval.seconds", "long", 300,
        "How often the controller looks for partitions led by another than their preferred replica.", min=1),
    Key("unclean.leader.election.enable", "bool", False,
        "Elect a replica outside the ISR when no in-sync one is alive (may lose acknowledged records)."),
    Key("ssl.keystore.location", "string", None,
        "PEM file with the broker's private key and certificate chain, for SSL and SASL_SSL listeners.",
        nullable=True),
    Key("ssl.key.password", "string", None, "Password of the private key in ssl.keystore.location, if any.",
        nullable=True, sensitive=True),
    Key("ssl.truststore.location", "string", None,
        "PEM file with the CA certificates that sign client certificates (ssl.client.auth).", nullable=True),
    Key("ssl.client.auth", "string", "none",
        "Client certificates on TLS listeners: none, requested (checked when sent) or required.",
        choices=("none", "requested", "required")),
    Key("ssl.principal.mapping.rules", "string", "DEFAULT",
        "How a client certificate's subject names its principal: RULE:pattern/replacement/[LU] rules, "
        "comma-separated, tried in order, DEFAULT keeping the whole RFC 2253 name (Kafka's syntax)."),
    Key("sasl.enabled.mechanisms", "list", "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512",
        "SASL mechanisms the SASL_PLAINTEXT and SASL_SSL listeners offer."),
    Key("sasl.oauthbearer.jwks.endpoint.url", "string", None,
        "The JWKS (an https:, http: or file: URL) whose keys sign OAUTHBEARER tokens; unset accepts unsecured "
        "tokens (alg none), as Kafka's default validator does: for development only.", nullable=True),
    Key("sasl.oauthbearer.jwks.endpoint.refresh.ms", "long", 3600000, "How often the JWKS is fetched again.",
        min=1000),
    Key("sasl.oauthbearer.expected.audience", "list", None,
        "Audiences a signed token must name one of (its aud claim); unset checks none.", nullable=True),
    Key("sasl.oauthbearer.expected.issuer", "string", None, "The iss a signed token must carry; unset checks none.",
        nullable=True),
    Key("sasl.oauthbearer.sub.claim.name", "string", "sub", "The token claim naming the principal."),
    Key("sasl.oauthbearer.scope.claim.name", "string", "scope",
        "The token claim holding its scopes (accepted for Kafka configs; scopes grant nothing, as in Kafka)."),
    Key("sasl.oauthbearer.clock.skew.seconds", "int", 30,
        "How far a token's exp, iat and nbf may be off the broker's clock.", min=0),
    Key("sasl.users", "list", None,
        "Comma-separated user:password pairs the SASL listeners accept (every enabled mechanism).",
        nullable=True, sensitive=True),
    Key("connection.failed.authentication.delay.ms", "int", 100,
        "A refused SASL login is answered, and its connection closed, this much later (slows password guessing).",
        min=0),
    Key("connections.max.reauth.ms", "long", 0,
        "A SASL login lasts this long: a client re-authenticates on its connection before then or is "
        "disconnected at its next request (KIP-368); 0 keeps logins for the connection's life.", min=0),
    Key("sasl.server.max.receive.size", "int", 524288,
        "Largest request a client may send before it has authenticated.", min=64),
    Key("authorizer.class.name", "string", None,
        "Set to org.apache.kafka.metadata.authorizer.StandardAuthorizer (or kafka.security.authorizer."
        "AclAuthorizer) to enforce ACLs; unset allows every client everything.", nullable=True),
    Key("super.users", "string", None,
        "Principals the authorizer always allows, separated by semicolons (User:admin;User:CN=ops).",
        nullable=True),
    Key("allow.everyone.if.no.acl.found", "bool", False,
        "With the authorizer on: whether a resource that no ACL names is open to everyone."),
    Key("inter.broker.listener.name", "string", None,
        "The listener brokers replicate through and the broker asks itself through (group lag metrics); "
        "default: the first.", nullable=True),
    Key("sasl.mechanism.inter.broker.protocol", "string", "PLAIN",
        "The SASL mechanism a broker logs in with on a SASL inter-broker listener.", choices=SASL_MECHANISMS),
    Key("inter.broker.sasl.user", "string", None,
        "The user of sasl.users a broker logs in as on a SASL inter-broker listener (make it a super user "
        "when the authorizer is on).", nullable=True),
    Key("replica.ack.timeout.ms", "int", 30000,
        "Longest an acks=all append waits for the ISR before REQUEST_TIMED_OUT (the Produce request's "
        "timeout_ms applies when shorter).", min=1),
)

BY_NAME: dict[str, Key] = {k.name: k for k in KEYS}


# -- parsing --------------------------------------------------------------------------------------------

def _parse_int(key: Key, raw: str) -> int:
    try:
        value = int(raw.strip())
    except ValueError:
        raise ConfigError(f"{key.name}: expected an integer, got {raw!r}") from None
    return value


def _parse_double(key: Key, raw: str) -> float:
    try:
        value = float(raw.strip())
    except ValueError:
        raise ConfigError(f"{key.name}: expected a number, got {raw!r}") from None
    if not math.isfinite(value):
        raise ConfigError(f"{key.name}: expected a finite number, got {raw!r}")
    return value


def _parse_bool(key: Key, raw: str) -> bool:
    s = raw.strip().lower()
    if s in ("true", "1", "yes"):
        return True
    if s in ("false", "0", "no"):
        return False
    raise ConfigError(f"{key.name}: expected true or false, got {raw!r}")


def hostport(host: str, port: int) -> str:
    """``host:port``, an IPv6 address in brackets, as listeners, URLs and bootstrap lists write it."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"




@dataclass(frozen=True)
class Listener:
    name: str
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.name}://{hostport(self.host, self.port)}"


def parse_listeners(text: str, key: str = "listeners") -> tuple[Listener, ...]:
    out = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        name, sep, rest = part.partition("://")
        if not sep or not name:
            raise ConfigError(f"{key}: expected NAME://host:port, got {part!r}")
        host, colon, port = rest.rpartition(":")
        if not colon:
            raise ConfigError(f"{key}: missing port in {part!r}")
        host = host.strip("[]")
        try:
            p = int(port)
        except ValueError:
            raise ConfigError(f"{key}: port must be an integer in {part!r}") from None
        if not 0 <= p <= 65535:
            raise ConfigError(f"{key}: port out of range 0..65535 in {part!r}")
        if name.upper() not in SECURITY_PROTOCOLS:
            raise ConfigError(f"{key}: the security protocol of {part!r} is not one of "
                              f"{', '.join(SECURITY_PROTOCOLS)}")
        out.append(Listener(name.upper(), host or "0.0.0.0", p))
    if not out:
        raise ConfigError(f"{key}: at least one listener is required")
    return tuple(out)


def parse_hostport(text: str, key: str) -> tuple[str, int]:
    host, colon, port = text.strip().rpartition(":")
    if not colon:
        raise ConfigError(f"{key}: expected host:port or none, got {text!r}")
    try:
        p = int(port)
    except ValueError:
        raise ConfigError(f"{key}: port must be an integer, got {text!r}") from None
    if not 0 <= p <= 65535:
        raise ConfigError(f"{key}: port out of range 0..65535 in {text!r}")
    return host.strip("[]") or "0.0.0.0", p


def parse_value(key: Key, raw: str) -> Any:
    if key.nullable and raw.strip().lower() in ("", "none", "null"):
        return None
    t = key.type
    if t in ("int", "long"):
        value = _parse_int(key, raw)
        limit = INT32_MAX if t == "int" else INT64_MAX
        lo = key.min if key.min is not None else -limit - 1
        hi = key.max if key.max is not None else limit
        if not lo <= value <= hi:
            raise ConfigError(f"{key.name}: {value} is out of range [{lo}, {hi}]")
        return value
    if t == "double":
        value = _parse_double(key, raw)
        lo = key.min if key.min is not None else -math.inf
        hi = key.max if key.max is not None else math.inf
        if not lo <= value <= hi:
            raise ConfigError(f"{key.name}: {value} is out of range [{lo}, {hi}]")
        return value
    if t == "bool":
        return _parse_bool(key, raw)
    if t == "list":
        items = [s.strip() for s in raw.split(",") if s.strip()]
        if not items:
            raise ConfigError(f"{key.name}: expected a comma-separated list, got {raw!r}")
        return tuple(items)
    if t == "listeners":
        return parse_listeners(raw, key.name)
    if t == "hostport":
        return parse_hostport(raw, key.name)
    value = raw.strip()
    if key.choices and value not in key.choices:
        raise ConfigError(f"{key.name}: {value!r} is not one of {', '.join(key.choices)}")
    return value


def unknown_key_error(name: str) -> ConfigError:
    close = difflib.get_close_matches(name, BY_NAME, n=1, cutoff=0.6)
    hint = f" (did you mean {close[0]}?)" if close else ""
    return ConfigError(f"unknown configuration key {name!r}{hint}")


def read_properties(path: str) -> dict[str, str]:
    """Java-properties subset: `key=value` or `key: value`, `#`/`!` comments, blank lines."""
    out: dict[str, str] = {}
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            s = line.strip()
            if not s or s[0] in "#!":
                continue
            for sep in ("=", ":"):
                if sep in s:
                    k, _, v = s.partition(sep)
                    out[k.strip()] = v.strip()
                    break
            else:
                raise ConfigError(f"{path}:{lineno}: expected key=value, got {s!r}")
    return out


def parse_assignments(items: Iterable[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        k, sep, v = item.partition("=")
        if not sep or not k.strip():
            raise ConfigError(f"--set expects key=value, got {item!r}")
        out[k.strip()] = v
    return out


# -- the effective configuration -------------------------------------------------------------------------

@dataclass
class BrokerConfig:
    values: dict[str, Any]
    sources: dict[str, str] = field(default_factory=dict)

    def __getitem__(self, name: str) -> Any:
        return self.values[name]

    def get(self, name: str, default: Any = None) -> Any:
        return self.values.get(name, default)

    # Derived settings with Kafka's precedence rules.
    @property
    def log_dirs(self) -> tuple[str, ...]:
        return tuple(os.path.abspath(d) for d in self.values["log.dirs"])

    @property
    def listeners(self) -> tuple[Listener, ...]:
        return self.values["listeners"]

    @property
    def advertised_listeners(self) -> tuple[Listener, ...]:
        return self.values["advertised.listeners"] or self.listeners

    @property
    def log_roll_ms(self) -> int:
        ms = self.values["log.roll.ms"]
        return ms if ms is not None else self.values["log.roll.hours"] * 3600_000

    @property
    def log_retention_ms(self) -> int:
        v = self.values
        if v["log.retention.ms"] is not None:
            return v["log.retention.ms"]
        if v["log.retention.minutes"] is not None:
            m = v["log.retention.minutes"]
            return -1 if m < 0 else m * 60_000
        h = v["log.retention.hours"]
        return -1 if h < 0 else h * 3600_000

    @property
    def metrics_listener(self) -> tuple[str, int] | None:
        return self.values["metrics.listener"]

    def log_defaults(self, dynamic: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Broker-level values that topic configs override, under Kafka's broker key names; `dynamic`: the
        cluster-wide dynamic defaults (the metadata snapshot's `broker_configs`), which win."""
        v = self.values
        return {
            "log.segment.bytes": v["log.segment.bytes"],
            "log.roll.ms": self.log_roll_ms,
            "log.retention.ms": self.log_retention_ms,
            "log.retention.bytes": v["log.retention.bytes"],
            "log.index.interval.bytes": v["log.index.interval.bytes"],
            "log.index.size.max.bytes": v["log.index.size.max.bytes"],
            "log.preallocate": v["log.preallocate"],
            "log.flush.interval.messages": v["log.flush.interval.messages"],
            "log.flush.interval.ms": v["log.flush.interval.ms"],
            "message.max.bytes": v["message.max.bytes"],
            "log.message.timestamp.type": v["log.message.timestamp.type"],
            "min.insync.replicas": v["min.insync.replicas"],
            "log.retention.check.interval.ms": v["log.retention.check.interval.ms"],
            "log.cleanup.policy": ",".join(v["log.cleanup.policy"]),
            "log.cleaner.min.cleanable.ratio": v["log.cleaner.min.cleanable.ratio"],
            "log.cleaner.delete.retention.ms": v["log.cleaner.delete.retention.ms"],
            "log.cleaner.min.compaction.lag.ms": v["log.cleaner.min.compaction.lag.ms"],
            "log.cleaner.max.compaction.lag.ms": v["log.cleaner.max.compaction.lag.ms"],
            **(dynamic or {}),
        }

    def display_value(self, name: str) -> str:
        value = self.values[name]
        if value is None:
            return "null"
        if BY_NAME[name].sensitive:
            return "[hidden]"
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, tuple) and name == "metrics.listener":
            return f"{value[0]}:{value[1]}"
        if isinstance(value, tuple):
            return ",".join(str(x) for x in value)
        return str(value)


def load_config(path: str | None = None, overrides: Iterable[str] = ()) -> BrokerConfig:
    """Defaults, then the properties file, then --set flags; raises ConfigError naming the key."""
    layers: list[tuple[str, dict[str, str]]] = []
    if path:
        try:
            layers.append(("file", read_properties(path)))
        except OSError as e:
            raise ConfigError(f"cannot read config file {path}: {e.strerror}") from None
    layers.append(("flag", parse_assignments(overrides)))

    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for key in KEYS:
        values[key.name] = key.default() if callable(key.default) else key.default
        if key.type == "listeners" and isinstance(values[key.name], str):
            values[key.name] = parse_listeners(values[key.name], key.name)
        elif key.type == "list" and isinstance(values[key.name], str):
            values[key.name] = tuple(values[key.name].split(","))
        elif key.type == "hostport" and isinstance(values[key.name], str):
            values[key.name] = parse_hostport(values[key.name], key.name)
        sources[key.name] = "default"
    for source, raw in layers:
        for name, text in raw.items():
            key = BY_NAME.get(name)
            if key is None:
                raise unknown_key_error(name)
            values[name] = parse_value(key, text)
            sources[name] = source
    _check_relations(values)
    return BrokerConfig(values, sources)


def _check_relations(values: dict[str, Any]) -> None:
    if values["group.min.session.timeout.ms"] > values["group.max.session.timeout.ms"]:
        raise ConfigError("group.min.session.timeout.ms must not exceed group.max.session.timeout.ms")
    adv = values["advertised.listeners"]
    listeners = values["listeners"]
    if adv is not None:
        for listener in adv:
            if listener.port == 0 or listener.host in ("0.0.0.0", "::"):
                raise ConfigError(f"advertised.listeners: {listener} is not an address clients can reach")
        if [a.name for a in adv] != [lst.name for lst in listeners]:
            raise ConfigError("advertised.listeners must name the same listeners as listeners, in the same order")
    names = {lst.name for lst in listeners}
    if names.intersection(TLS_LISTENERS):
        if not values["ssl.keystore.location"]:
            raise ConfigError("ssl.keystore.location: a TLS listener needs the broker's key and certificate (PEM)")
        if values["ssl.client.auth"] != "none" and not values["ssl.truststore.location"]:
            raise ConfigError("ssl.truststore.location: ssl.client.auth needs the CAs of client certificates")
    if names.intersection(SASL_LISTENERS):
        bad = [m for m in values["sasl.enabled.mechanisms"] if m not in SERVED_SASL_MECHANISMS]
        if bad or not values["sasl.enabled.mechanisms"]:
            raise ConfigError(f"sasl.enabled.mechanisms: {', '.join(bad) or 'none'} not served; "
                              f"choose from {', '.join(SERVED_SASL_MECHANISMS)}")
        if not values["sasl.users"] and set(values["sasl.enabled.mechanisms"]) & set(SASL_MECHANISMS):
            raise ConfigError("sasl.users: a SASL listener with PLAIN or SCRAM needs at least one user:password")
        for entry in values["sasl.users"] or ():
            user, colon, password = entry.partition(":")
            if not colon or not user or not password:
                raise ConfigError("sasl.users: expected user:password pairs separated by commas")
    from broker.log.config import _cleanup_policy
    from broker.log.errors import InvalidConfig
    from broker.security.principal import PrincipalMapper

    try:
        _cleanup_policy("log.cleanup.policy", values["log.cleanup.policy"])
    except InvalidConfig as e:
        raise ConfigError(str(e)) from None

    try:
        PrincipalMapper(values["ssl.principal.mapping.rules"])
    except ValueError as e:
        raise ConfigError(str(e)) from None
    if values["authorizer.class.name"] and values["authorizer.class.name"] not in AUTHORIZERS:
        raise ConfigError(f"authorizer.class.name: {values['authorizer.class.name']} is not served; "
                          f"use {' or '.join(AUTHORIZERS)}")
    for principal in (values["super.users"] or "").split(";"):
        if principal.strip() and ":" not in principal:
            raise ConfigError(f"super.users: {principal.strip()!r} is not a principal (expected User:name)")
    inter = values["inter.broker.listener.name"]
    if inter is not None and inter not in names:
        raise ConfigError(f"inter.broker.listener.name: {inter} is not one of the listeners")
    user = values["inter.broker.sasl.user"]
    if (inter or listeners[0].name) in SASL_LISTENERS and (user or values["etcd.connect"]):
        if user not in sasl_passwords(values["sasl.users"]):
            raise ConfigError("inter.broker.sasl.user: a SASL inter-broker listener needs a user of sasl.users "
                              "for brokers to log in as")

