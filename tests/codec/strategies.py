"""Hypothesis strategies generated from the declarations, and the normal form a decode must produce.

A generated message holds any subset of the fields present in the version (missing keys must be filled
with defaults by the encoder); `normalize` says what decoding the encoded message must return.
"""

from __future__ import annotations

from hypothesis import strategies as st

from netio.codec.schema import Field
from netio.codec.types import INT_RANGES

MAX_ITEMS = 3


def _primitive(type_: str) -> st.SearchStrategy:
    if type_ in INT_RANGES:
        lo, hi = INT_RANGES[type_]
        return st.integers(lo, hi)
    if type_ == "bool":
        return st.booleans()
    if type_ == "float64":
        return st.floats(allow_nan=False)
    if type_ == "string":
        return st.text(max_size=12)
    if type_ in ("bytes", "records"):
        return st.binary(max_size=24)
    if type_ == "uuid":
        return st.uuids()
    raise ValueError(type_)


def field_values(f: Field, version: int) -> st.SearchStrategy:
    t = f.type
    if t == "[]":
        base = st.lists(struct_values(f.fields, version), max_size=MAX_ITEMS)
    elif t == "{}":
        base = struct_values(f.fields, version)
    elif t.startswith("[]"):
        base = st.lists(_primitive(t[2:]), max_size=MAX_ITEMS)
    else:
        base = _primitive(t)
    return st.one_of(st.none(), base) if f.nullable_in(version) else base


def struct_values(fields: tuple[Field, ...], version: int) -> st.SearchStrategy:
    present = {f.name: field_values(f, version) for f in fields if f.present(version)}
    return st.fixed_dictionaries({}, optional=present)


def _plain(value):
    if isinstance(value, (memoryview, bytearray)):
        return bytes(value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def plain(value):
    """Decoded values with zero-copy views turned into bytes, for comparisons."""
    return _plain(value)


def normalize(fields: tuple[Field, ...], version: int, obj: dict) -> dict:
    """What decoding `obj` encoded at `version` must give: every declared field, defaults filled in."""
    out = {}
    for f in fields:
        if f.present(version) and f.name in obj:
            out[f.name] = _normalize_value(f, version, obj[f.name])
        else:
            out[f.name] = _plain(f.default_for(version))
    return out


def _normalize_value(f: Field, version: int, value):
    if value is None:
        return None
    if f.type == "[]":
        return [normalize(f.fields, version, item) for item in value]
    if f.type == "{}":
        return normalize(f.fields, version, value)
    return _plain(value)
