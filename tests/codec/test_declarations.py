"""Every declaration, field by field, against Kafka's official message schemas, for every advertised version.

Checked per version: which fields exist and in what order (order is the wire layout), snake_case names,
types (common structs inlined), nullability, tags and tagged versions, defaults and ignorability; and the
version strings themselves, which declarations keep verbatim.
"""

from __future__ import annotations

import pytest

from netio.codec import APIS
from netio.codec.schema import Field

from .official import json_default, load_message, require_shared, resolve, snake_case, version_set

CASES = [(key, direction, v) for key, api in APIS.items() for direction in ("request", "response")
         for v in range(api.versions[0], api.versions[1] + 1)]


def _expected(fields: list[dict], common: dict, version: int, path: str) -> list[tuple]:
    out = []
    for f in fields:
        if version not in version_set(f["versions"]):
            continue
        type_, children = resolve(f, common)
        nullable = version in version_set(f.get("nullableVersions"))
        tagged = version in version_set(f.get("taggedVersions"))
        if "default" in f:
            default = json_default(f["default"], type_)
        else:
            default = None
        out.append({
            "path": f"{path}.{snake_case(f['name'])}",
            "type": type_, "nullable": nullable, "tag": f.get("tag") if tagged else None,
            "default": default, "ignorable": bool(f.get("ignorable", False)),
            "strings": (f["versions"], f.get("nullableVersions", "none"), f.get("taggedVersions", "none")),
            "children": None if children is None else _expected(children, common, version, f"{path}.{snake_case(f['name'])}"),
        })
    return out


def _declared(fields: tuple[Field, ...], version: int, path: str) -> list[dict]:
    out = []
    for f in fields:
        if not f.present(version):
            continue
        out.append({
            "path": f"{path}.{f.name}",
            "type": f.type, "nullable": f.nullable_in(version), "tag": f.tag if f.tagged_in(version) else None,
            "default": f.default, "ignorable": f.ignorable,
            "strings": (f.versions, f.nullable, f.tagged),
            "children": None if f.fields is None else _declared(f.fields, version, f"{path}.{f.name}"),
        })
    return out


def _paths(tree: list[dict]) -> list[str]:
    return [leaf for node in tree for leaf in [node["path"], *(_paths(node["children"] or []))]]


def _compare(declared: list[dict], expected: list[dict]) -> None:
    # Names and order first, for a readable failure.
    assert [d["path"] for d in declared] == [e["path"] for e in expected]
    for d, e in zip(declared, expected):
        where = e["path"]
        for key in ("type", "nullable", "tag", "ignorable", "strings"):
            assert d[key] == e[key], f"{where}: {key} {d[key]!r} != {e[key]!r}"
        assert d["default"] == e["default"] and type(d["default"]) is type(e["default"]), \
            f"{where}: default {d['default']!r} != {e['default']!r}"
        if e["children"] is not None:
            _compare(d["children"], e["children"])


@pytest.mark.parametrize("key,direction,version", CASES,
                         ids=[f"{APIS[k].name}-{d}-v{v}" for k, d, v in CASES])
def test_declaration_matches_official_schema(key, direction, version):
    require_shared()
    api = APIS[key]
    message = load_message(f"{api.name}{direction.capitalize()}")
    assert message["apiKey"] == key
    assert message["flexibleVersions"] == api.flexible
    assert version in version_set(message["validVersions"])
    common = {c["name"]: c["fields"] for c in message.get("commonStructs", [])}
    expected = _expected(message["fields"], common, version, api.name)
    declared = _declared(getattr(api, direction), version, api.name)
    _compare(declared, expected)


@pytest.mark.parametrize("key", sorted(APIS), ids=[APIS[k].name for k in sorted(APIS)])
def test_no_declared_field_is_unknown_to_kafka(key):
    """Fields outside every advertised version may be omitted, but none may be invented."""
    require_shared()
    api = APIS[key]
    for direction in ("request", "response"):
        message = load_message(f"{api.name}{direction.capitalize()}")
        common = {c["name"]: c["fields"] for c in message.get("commonStructs", [])}
        known: set[str] = set()
        declared: set[str] = set()
        for v in version_set(message["validVersions"]):
            known |= set(_paths(_expected(message["fields"], common, v, "")))
        for v in range(0, 64):
            declared |= set(_paths(_declared(getattr(api, direction), v, "")))
        assert declared <= known, declared - known


def test_snake_case_rule():
    assert snake_case("ThrottleTimeMs") == "throttle_time_ms"
    assert snake_case("TopicID") == "topic_id"
    assert snake_case("TopicId") == "topic_id"
    assert snake_case("ISRNodes") == "isr_nodes"
    assert snake_case("IsrNodes") == "isr_nodes"
    assert snake_case("IsInternal") == "is_internal"
    assert snake_case("V2Field") == "v2_field"
