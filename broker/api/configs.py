"""DescribeConfigs: every topic and broker setting with its effective value and where it came from."""

from __future__ import annotations

from broker.config import DYNAMIC_LOG_KEYS, KEYS
from broker.log.config import TOPIC_CONFIGS
from broker.security import acl
from netio.codec import ErrorCode

TOPIC = 2
BROKER = 4

# Kafka's ConfigSource values
DYNAMIC_TOPIC_CONFIG = 1
DYNAMIC_BROKER_CONFIG = 2
DYNAMIC_DEFAULT_BROKER_CONFIG = 3
STATIC_BROKER_CONFIG = 4
DEFAULT_CONFIG = 5

# Kafka's ConfigType values
_TYPES = {"bool": 1, "string": 2, "int": 3, "long": 5, "double": 6, "list": 7, "listeners": 7, "hostport": 2}

TOPIC_DEFAULTS = {"compression.type": "producer"}  # topic keys without a broker key under them
# Kafka's TopicConfig types; a key not named here is a LONG
TOPIC_TYPES = {"message.timestamp.type": 2, "cleanup.policy": 7, "compression.type": 2, "preallocate": 1,
               "index.interval.bytes": 3, "segment.index.bytes": 3, "segment.bytes": 3, "max.message.bytes": 3,
               "min.insync.replicas": 3, "min.cleanable.dirty.ratio": 6}


def _text(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):  # a list key's dynamic value, as parsed or read back from JSON
        return ",".join(str(v) for v in value)
    return str(value)


def _entry(name, value, source, read_only, version, config_type, is_default, synonyms=(), sensitive=False) -> dict:
    return {"name": name, "value": _text(value), "read_only": read_only, "is_default": is_default,
            "config_source": source, "is_sensitive": sensitive, "synonyms": list(synonyms), "config_type": config_type,
            "documentation": None}


def _dynamic_layers(scopes: dict | None, broker_id: int) -> list[tuple[dict, int]]:
    """The dynamic broker configs over a broker's file, highest first: its own, then the cluster default."""
    scopes = scopes or {}
    return [(scopes.get(str(broker_id), {}), DYNAMIC_BROKER_CONFIG), (scopes.get("", {}), DYNAMIC_DEFAULT_BROKER_CONFIG)]


def topic_configs(cfg, overrides: dict, keys: list[str] | None, version: int,
                  synonyms: bool = False, scopes: dict | None = None) -> list[dict]:
    """Each topic key with its effective value; with `synonyms`, the chain Kafka shows (topic override,
    then the broker key it overrides: this broker's dynamic value, the cluster-wide dynamic default, then
    the file or the default), highest precedence first. `scopes`: the snapshot's dynamic broker configs."""
    layers = _dynamic_layers(scopes, cfg["broker.id"])
    broker_values = cfg.log_defaults()
    out = []
    for name, (_parse, broker_key) in TOPIC_CONFIGS.items():
        if keys is not None and name not in keys:
            continue
        ctype = TOPIC_TYPES.get(name, 5)
        chain = []
        if synonyms:
            if name in overrides:
                chain.append({"name": name, "value": _text(overrides[name]), "source": DYNAMIC_TOPIC_CONFIG})
            for values, layer_source in layers:
                if broker_key in values:
                    chain.append({"name": broker_key, "value": _text(values[broker_key]), "source": layer_source})
            if broker_key is None:
                chain.append({"name": name, "value": _text(TOPIC_DEFAULTS.get(name)), "source": DEFAULT_CONFIG})
            else:
                set_in_file = cfg.sources.get(broker_key, "default") != "default"
                chain.append({"name": broker_key, "value": _text(broker_values.get(broker_key)),
                              "source": STATIC_BROKER_CONFIG if set_in_file else DEFAULT_CONFIG})
        if name in overrides:
            out.append(_entry(name, overrides[name], DYNAMIC_TOPIC_CONFIG, False, version, ctype, False, chain))
            continue
        if broker_key is None:
            value, source = TOPIC_DEFAULTS.get(name), DEFAULT_CONFIG
        elif any(broker_key in values for values, _ in layers):
            value, source = next((values[broker_key], src) for values, src in layers if broker_key in values)
        else:
            value = broker_values.get(broker_key)
            base = "log.roll.hours" if broker_key == "log.roll.ms" and cfg["log.roll.ms"] is None else broker_key
            if broker_key == "log.retention.ms" and cfg["log.retention.ms"] is None:
                base = "log.retention.minutes" if cfg["log.retention.minutes"] is not None else "log.retention.hours"
            source = DEFAULT_CONFIG if cfg.sources.get(base, "default") == "default" else STATIC_BROKER_CONFIG
        out.append(_entry(name, value, source, False, version, ctype, source == DEFAULT_CONFIG, chain))
    return out


def broker_configs(cfg, keys: list[str] | None, version: int, scopes: dict | None = None,
                   name: str = "") -> list[dict]:
    """Every broker key: of the cluster-wide default resource (`name` "") with its dynamic defaults, of this
    broker's own resource with its dynamic configs over them."""
    layers = _dynamic_layers(scopes, cfg["broker.id"])[0 if name else 1:]
    out = []
    for k in KEYS:
        if keys is not None and k.name not in keys:
            continue
        layer = next(((values[k.name], src) for values, src in layers if k.name in values), None)
        if layer is not None:
            out.append(_entry(k.name, layer[0], layer[1], False, version, _TYPES.get(k.type, 0), False))
            continue
        source = DEFAULT_CONFIG if cfg.sources[k.name] == "default" else STATIC_BROKER_CONFIG
        value = None if cfg[k.name] is None or k.sensitive else cfg.display_value(k.name)  # Kafka: null
        read_only = k.name not in DYNAMIC_LOG_KEYS  # Kafka: false for every key a dynamic config may set
        out.append(_entry(k.name, value, source, read_only, version, _TYPES.get(k.type, 0),
                          source == DEFAULT_CONFIG, sensitive=k.sensitive))
    return out


def handle_describe_configs(dispatcher, conn, header, body: dict, slot) -> None:
    ctx = dispatcher.ctx
    md = ctx.metadata.current(max_age=0)
    results = []
    may = dispatcher.access(conn)
    for r in body["resources"]:
        # Kafka answers every key for a null list and for an empty one alike (ConfigHelper.describeConfigs).
        rtype, rname, keys = r["resource_type"], r["resource_name"], r.get("configuration_keys") or None
        res = {"error_code": 0, "error_message": None, "resource_type": rtype, "resource_name": rname,
               "configs": []}
        refused = config_refusal(may, acl.DESCRIBE_CONFIGS, rtype, rname)
        if refused is not None:
            res["error_code"], res["error_message"] = refused
        elif rtype == TOPIC:
            t = md.topic(rname)
            if t is None:
                res["error_code"] = int(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)
                res["error_message"] = f"Topic '{rname}' does not exist."
            else:
                res["configs"] = topic_configs(ctx.config, t.configs, keys, header.api_version,
                                               bool(body.get("include_synonyms")), md.broker_configs)
        elif rtype == BROKER:
            if rname not in ("", str(ctx.config["broker.id"])):
                res["error_code"] = int(ErrorCode.INVALID_REQUEST)
                res["error_message"] = f"Unexpected broker id {rname!r}"
            else:
                res["configs"] = broker_configs(ctx.config, keys, header.api_version, md.broker_configs, rname)
        else:
            res["error_code"] = int(ErrorCode.INVALID_REQUEST)
            res["error_message"] = f"Unsupported resource type {rtype}"
        results.append(res)
    slot.reply({"throttle_time_ms": 0, "results": results})


def config_refusal(may, op: int, rtype: int, rname: str) -> tuple[int, str] | None:
    """(error, message) when the client may not describe or alter (`op`) a topic's or the broker's
    configs: Kafka asks for the operation on the topic, or on the cluster for a broker."""
    if may is None:
        return None
    if rtype == TOPIC and not may(op, acl.TOPIC, rname):
        return int(ErrorCode.TOPIC_AUTHORIZATION_FAILED), "Authorization failed."
    if rtype == BROKER and not may(op, acl.CLUSTER, acl.CLUSTER_NAME):
        return int(ErrorCode.CLUSTER_AUTHORIZATION_FAILED), "Authorization failed."
    return None


HANDLERS = {32: handle_describe_configs}
