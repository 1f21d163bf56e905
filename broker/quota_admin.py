"""Client quota administration as Kafka checks it: which stored entities a DescribeClientQuotas filter matches,
and whether an AlterClientQuotas entry may be stored. Pure: the handler (`broker.api.quotas`) and the
controller (`broker.controller.Controller.alter_quotas`) call it with plain data.

The rules are those of Kafka's controller (ClientQuotaControlManager, ClientQuotasImage.describe). hpbroker
adds one: quota keys and entity types that Kafka knows but hpbroker does not enforce (controller_mutation_rate,
connection_creation_rate, the ip entity) are refused, so that nobody believes a
limit is in force that is not.
"""

from __future__ import annotations

from broker.quotas import ENTITY_TYPES, KEYS, entity_key, entity_of
from netio.codec import ErrorCode

IP = "ip"
MATCH_EXACT, MATCH_DEFAULT, MATCH_SPECIFIED = 0, 1, 2
NOT_ENFORCED = ("controller_mutation_rate", "connection_creation_rate")
DOUBLE_KEYS = ("request_percentage",)  # DOUBLE in Kafka's QuotaConfigs; the byte rates are LONG
LONG_MAX = 2 ** 63 - 1
FRACTION = 1e-6  # what Kafka lets pass as rounding error in a whole-number quota


class QuotaRequestError(Exception):
    """A request Kafka refuses as a whole, with its error code."""

    def __init__(self, code: ErrorCode, message: str):
        super().__init__(message)
        self.code = code


# -- DescribeClientQuotas -------------------------------------------------------------------------------------

def parse_filter(components: list[dict]) -> tuple[dict, set]:
    """({entity type: name or None}, {entity types matched by any name}) of a request's components.
    Raises QuotaRequestError: INVALID_REQUEST for an empty or repeated type, a match string where none belongs
    or none where one does, an unknown match type, ip with user or client-id; UNSUPPORTED_VERSION for an
    unknown entity type (Kafka's answer: a type a newer broker might know)."""
    exact: dict = {}
    typed: set = set()
    for c in components:
        etype, how, match = c["entity_type"], c["match_type"], c["match"]
        if not etype:
            raise QuotaRequestError(ErrorCode.INVALID_REQUEST, "Invalid empty entity type.")
        if etype in exact or etype in typed:
            raise QuotaRequestError(ErrorCode.INVALID_REQUEST,
                                    f"Entity type {etype} cannot appear more than once in the filter.")
        if etype not in (*ENTITY_TYPES, IP):
            raise QuotaRequestError(ErrorCode.UNSUPPORTED_VERSION, f"Unsupported entity type {etype}")
        if how == MATCH_EXACT:
            if match is None:
                raise QuotaRequestError(ErrorCode.INVALID_REQUEST,
                                        "Request specified MATCH_TYPE_EXACT, but set match string to null.")
            exact[etype] = match
        elif how == MATCH_DEFAULT:
            if match is not None:
                raise QuotaRequestError(ErrorCode.INVALID_REQUEST,
                                        "Request specified MATCH_TYPE_DEFAULT, but also specified a match string.")
            exact[etype] = None
        elif how == MATCH_SPECIFIED:
            if match is not None:
                raise QuotaRequestError(ErrorCode.INVALID_REQUEST,
                                        "Request specified MATCH_TYPE_SPECIFIED, but also specified a match string.")
            typed.add(etype)
        else:
            raise QuotaRequestError(ErrorCode.INVALID_REQUEST, f"Unknown match type {how}")
    if (IP in exact or IP in typed) and any(t in exact or t in typed for t in ENTITY_TYPES):
        raise QuotaRequestError(ErrorCode.INVALID_REQUEST, "Invalid entity filter component combination. IP filter "
                                                           "component should not be used with user or clientId "
                                                           "filter component.")
    return exact, typed


def matches(entity: dict, exact: dict, typed: set, strict: bool) -> bool:
    """Kafka's rule: every exact component names the entity's name for that type (None: its default), every
    "specified" component a type the entity has (default or not); strict also wants no other type."""
    if strict and len(entity) != len(exact) + len(typed):
        return False
    return all(t in entity and entity[t] == name for t, name in exact.items()) and all(t in entity for t in typed)


def describe(quotas: dict, components: list[dict], strict: bool) -> list[dict]:
    """The response entries for stored `quotas` ({entity_key: {key: value}}): entities in key order, an
    entity's types user first, values by key. Raises QuotaRequestError for a filter Kafka refuses."""
    exact, typed = parse_filter(components)
    if not exact and not typed and strict:
        return []
    out = []
    for key in sorted(quotas):
        entity = entity_of(key)
        if matches(entity, exact, typed, strict):
            out.append({"entity": entity_data(entity),
                        "values": [{"key": k, "value": float(v)} for k, v in sorted(quotas[key].items())]})
    return out


def entity_data(entity: dict) -> list[dict]:
    return [{"entity_type": t, "entity_name": entity[t]} for t in ENTITY_TYPES if t in entity]


# -- AlterClientQuotas ----------------------------------------------------------------------------------------

def entity_text(pairs: list) -> str:
    """An entity as Kafka's tools write it: user=alice,client-id=<default>."""
    return ",".join(f"{t}={'<default>' if n is None else n}" for t, n in pairs) or "<empty>"


def key_text(key: str) -> str:
    """A stored entity key as Kafka's tools write the entity."""
    entity = entity_of(key)
    return entity_text([(t, entity[t]) for t in ENTITY_TYPES if t in entity])


def entity_problem(pairs: list) -> tuple[ErrorCode, str] | None:
    """What is wrong with an entity given as [(type, name)], checked as Kafka checks it, plus ip refused."""
    if not pairs:
        return ErrorCode.INVALID_REQUEST, "Invalid empty client quota entity"
    seen = set()
    for etype, name in pairs:
        if etype in seen:
            return ErrorCode.INVALID_REQUEST, f"Invalid client quota entity, duplicate entity entry {etype}"
        seen.add(etype)
        if etype == IP:
            return ErrorCode.INVALID_REQUEST, "hpbroker does not enforce ip (connection rate) quotas"
        if etype not in ENTITY_TYPES:
            return ErrorCode.INVALID_REQUEST, f"Unhandled client quota entity type: {etype}"
        if name is not None and not name:
            return ErrorCode.INVALID_REQUEST, f"Empty {etype} not supported"
    return None


def value_problem(key: str, value: float) -> tuple[ErrorCode, str] | None:
    """A value set for `key`: a key hpbroker enforces, above 0; for the byte rates a whole number of bytes
    per second that fits Kafka's LONG (they are LONG in Kafka's QuotaConfigs, request_percentage a DOUBLE)."""
    if key in NOT_ENFORCED:
        return ErrorCode.INVALID_REQUEST, (f"hpbroker does not enforce {key} quotas (only "
                                           f"{', '.join(KEYS)}), so it does not store them")
    if key not in KEYS:
        return ErrorCode.INVALID_REQUEST, f"Invalid configuration key {key}"
    if not value > 0.0:  # also NaN
        return ErrorCode.INVALID_REQUEST, f"Quota {key} must be greater than 0"
    if key in DOUBLE_KEYS:
        return None if value != float("inf") else (ErrorCode.INVALID_REQUEST, f"Quota {key} must be finite")
    if value > LONG_MAX:
        return ErrorCode.INVALID_REQUEST, f"Proposed value for {key} is too large for a LONG."
    if abs(value % 1.0) > FRACTION:
        return ErrorCode.INVALID_REQUEST, f"{key} cannot be a fractional value."
    return None


def alter(current: dict, entries: list) -> tuple[list[tuple[int, str | None]], dict]:
    """Check AlterClientQuotas entries against the stored quotas `current` ({entity_key: {key: value}}).
    `entries`: [[[type, name], ...], [[key, value, remove], ...]] in request order. Returns (error code and
    message per entry, {entity_key: new values} of the entities that change, {} for one left without keys).
    An entry is stored whole or not at all; an entity named by two entries is refused in both."""
    keys = [entity_key(dict(pairs)) if entity_problem(pairs) is None else None for pairs, _ops in entries]
    results: list[tuple[int, str | None]] = []
    changed: dict = {}
    for (pairs, ops), key in zip(entries, keys):
        problem = entity_problem(pairs)
        if problem is None and keys.count(key) > 1:
            problem = ErrorCode.INVALID_REQUEST, f"Ignoring duplicate entity {entity_text(pairs)}"
        names = [op[0] for op in ops]
        repeated = next((k for k in names if names.count(k) > 1), None)
        if problem is None and repeated is not None:
            problem = ErrorCode.INVALID_REQUEST, (f"Duplicate quota key {repeated} not updating quota for this "
                                                  f"entity {entity_text(pairs)}")
        values = dict(current.get(key, {})) if key is not None else {}
        for qkey, value, remove in ops:
            if problem is not None:
                break
            if remove:
                values.pop(qkey, None)  # removing a key that is not set is no error, as in Kafka
            else:
                problem = value_problem(qkey, value)
                values[qkey] = float(value)
        if problem is not None:
            results.append((int(problem[0]), problem[1]))
            continue
        results.append((0, None))
        if values != current.get(key, {}):
            changed[key] = values
    return results, changed
