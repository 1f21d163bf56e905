"""Declarative message schemas and the one generic encoder/decoder that serves every API.

An API is declared once as data (`Api` holding `Field`s with Kafka's version-range strings); nothing here
knows any particular API. For each (fields, version, flexible) the codec compiles a plan once: a tuple of
(name, reader) or (name, writer, default) steps plus a tag table, cached, so a decode is a flat loop over
closures. Decoded messages are plain dicts keyed by snake_case names; every declared field is present,
with its default when the version does not carry it, so handlers read all versions uniformly.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field as dc_field
from functools import lru_cache
from typing import Any, Callable

from netio.codec import types as T
from netio.codec.errors import CodecError

MAX_VERSION = 0x7FFF

# Exceptions a reader may raise on short or hostile input; turned into CodecError at the decode entry.
_DECODE_FAULTS = (struct.error, IndexError, ValueError, OverflowError)
_ENCODE_FAULTS = (struct.error, TypeError, AttributeError, ValueError, OverflowError, KeyError)


# ---------------------------------------------------------------------------------------------------------
# version ranges


@lru_cache(maxsize=None)
def parse_versions(spec: str) -> tuple[int, int] | None:
    """Kafka range string -> inclusive (lo, hi), or None for "none". Accepts "N+", "N-M" and "N"."""
    spec = spec.strip()
    if spec == "none":
        return None
    if spec.endswith("+"):
        return int(spec[:-1]), MAX_VERSION
    if "-" in spec:
        lo, hi = spec.split("-", 1)
        return int(lo), int(hi)
    return int(spec), int(spec)


def in_versions(spec: str, version: int) -> bool:
    rng = parse_versions(spec)
    return rng is not None and rng[0] <= version <= rng[1]


# ---------------------------------------------------------------------------------------------------------
# declarations


@dataclass(frozen=True, slots=True)
class Field:
    """One field of a message, with Kafka's version-range strings kept verbatim."""

    name: str
    type: str
    versions: str = "0+"
    nullable: str = "none"
    tag: int | None = None
    tagged: str = "none"
    default: Any = None
    fields: tuple[Field, ...] | None = None
    ignorable: bool = False

    def __post_init__(self) -> None:
        for spec in (self.versions, self.nullable, self.tagged):
            parse_versions(spec)
        if self.type in ("[]", "{}"):
            if not self.fields:
                raise ValueError(f"{self.name}: struct type {self.type!r} needs fields")
        elif self.fields is not None:
            raise ValueError(f"{self.name}: type {self.type!r} takes no fields")
        elif (self.type[2:] if self.type.startswith("[]") else self.type) not in T.PRIMITIVES:
            raise ValueError(f"{self.name}: unknown type {self.type!r}")
        if (self.tag is None) != (self.tagged == "none"):
            raise ValueError(f"{self.name}: tag and tagged versions go together")

    def present(self, version: int) -> bool:
        return in_versions(self.versions, version)

    def nullable_in(self, version: int) -> bool:
        return in_versions(self.nullable, version)

    def tagged_in(self, version: int) -> bool:
        return in_versions(self.tagged, version)

    def default_for(self, version: int) -> Any:
        """The declared default, else the type's zero value (None where the version allows null)."""
        if self.default is not None:
            return self.default
        if self.nullable_in(version):
            return None
        return zero_value(self, version)


def zero_value(f: Field, version: int) -> Any:
    t = f.type
    if t.startswith("[]"):
        return []
    if t == "{}":
        return {sub.name: sub.default_for(version) for sub in f.fields}
    if t == "bool":
        return False
    if t == "float64":
        return 0.0
    if t == "string":
        return ""
    if t in ("bytes", "records"):
        return b""
    if t == "uuid":
        return T.ZERO_UUID
    return 0


@dataclass(frozen=True, eq=False)
class Api:
    """One Kafka API: the versions hpbroker advertises and the request/response fields.

    `rejected` names advertised versions that requests may not use (Produce v0-v2 are advertised so old
    librdkafka enables compression, but refused, as Kafka 4 does). `tolerated_tail`: bytes a real client is
    known to send after a request body, accepted there and nowhere else (Kafka does not check for a tail;
    hpbroker closes a connection that sends one).
    """

    key: int
    name: str
    versions: tuple[int, int]
    flexible: str
    request: tuple[Field, ...] = dc_field(repr=False)
    response: tuple[Field, ...] = dc_field(repr=False)
    rejected: str = "none"
    tolerated_tail: bytes = b""
    _plans: dict = dc_field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        lo, hi = self.versions
        if not 0 <= lo <= hi:
            raise ValueError(f"{self.name}: bad version range {self.versions}")
        parse_versions(self.flexible)
        parse_versions(self.rejected)

    def advertises(self, version: int) -> bool:
        return self.versions[0] <= version <= self.versions[1]

    def accepts(self, version: int) -> bool:
        return self.advertises(version) and not in_versions(self.rejected, version)

    def is_flexible(self, version: int) -> bool:
        return in_versions(self.flexible, version)

    def _plan(self, direction: str, version: int, kind: str):
        key = (direction, version, kind)
        plan = self._plans.get(key)
        if plan is None:
            fields = self.request if direction == "request" else self.response
            build = struct_reader if kind == "r" else struct_writer
            plan = self._plans[key] = build(fields, version, self.is_flexible(version))
        return plan

    def decode_body(self, direction: str, version: int, buf: memoryview, pos: int = 0) -> tuple[dict, int]:
        return run_reader(self._plan(direction, version, "r"), buf, pos)

    def encode_body(self, direction: str, version: int, obj: dict, out: bytearray | None = None) -> bytearray:
        out = bytearray() if out is None else out
        run_writer(self._plan(direction, version, "w"), obj, out)
        return out


# ---------------------------------------------------------------------------------------------------------
# plan compilation: decode


def _min_size(f: Field, version: int, flexible: bool) -> int:
    """Fewest bytes a present, untagged field can take; bounds array counts before allocation."""
    t = f.type
    if t.startswith("[]"):
        return 1 if flexible else 4
    if t == "{}":
        if f.nullable_in(version):
            return 1
        return struct_min_size(f.fields, version, flexible)
    return T.primitive_min_size(t, flexible)


def struct_min_size(fields: tuple[Field, ...], version: int, flexible: bool) -> int:
    size = 1 if flexible else 0
    for f in fields:
        if f.present(version) and not (flexible and f.tagged_in(version)):
            size += _min_size(f, version, flexible)
    return size


def _nullable_struct_reader(inner: T.Reader) -> T.Reader:
    def read(buf, pos):
        marker = buf[pos]
        if marker == 0xFF:
            return None, pos + 1
        if marker != 1:
            raise CodecError(f"invalid nullable struct marker {marker}")
        return inner(buf, pos + 1)

    return read


def field_reader(f: Field, version: int, flexible: bool) -> T.Reader:
    nullable = f.nullable_in(version)
    t = f.type
    if t == "[]":
        item = struct_reader(f.fields, version, flexible)
        return T.array_reader(item, struct_min_size(f.fields, version, flexible), flexible, nullable)
    if t == "{}":
        inner = struct_reader(f.fields, version, flexible)
        return _nullable_struct_reader(inner) if nullable else inner
    if t.startswith("[]"):
        prim = t[2:]
        item = T.primitive_reader(prim, flexible, False)
        return T.array_reader(item, T.primitive_min_size(prim, flexible), flexible, nullable)
    return T.primitive_reader(t, flexible, nullable)


def _default_factory(f: Field, version: int) -> Callable[[], Any]:
    return lambda: f.default_for(version)


def _read_tagged(buf: memoryview, pos: int, obj: dict, tags: dict) -> int:
    count, pos = T.read_uvarint(buf, pos)
    if count * 2 > len(buf) - pos:
        raise CodecError(f"{count} tagged fields cannot fit in {len(buf) - pos} remaining bytes")
    for _ in range(count):
        tag, pos = T.read_uvarint(buf, pos)
        size, pos = T.read_uvarint(buf, pos)
        end = pos + size
        if end > len(buf):
            raise CodecError(f"tagged field {tag} of {size} bytes runs past the end of the message")
        known = tags.get(tag)
        if known is not None:
            name, read = known
            obj[name], used = read(buf[:end], pos)
            if used != end:
                raise CodecError(f"tagged field {tag} declared {size} bytes but used {used - pos}")
        pos = end
    return pos


def struct_reader(fields: tuple[Field, ...], version: int, flexible: bool) -> T.Reader:
    template: dict[str, Any] = {}
    steps: list[tuple[str, T.Reader]] = []
    fresh: list[tuple[str, Callable[[], Any]]] = []
    tags: dict[int, tuple[str, T.Reader]] = {}
    for f in fields:
        default = f.default_for(version)
        template[f.name] = None if isinstance(default, (list, dict)) else default
        present = f.present(version)
        tagged = present and flexible and f.tagged_in(version)
        if isinstance(default, (list, dict)) and (not present or tagged):
            fresh.append((f.name, _default_factory(f, version)))
        if tagged:
            tags[f.tag] = (f.name, field_reader(f, version, True))
        elif present:
            steps.append((f.name, field_reader(f, version, flexible)))
    steps_t = tuple(steps)
    fresh_t = tuple(fresh)
    copy = template.copy

    if not flexible:
        def read(buf, pos):
            obj = copy()
            for name, step in steps_t:
                obj[name], pos = step(buf, pos)
            for name, make in fresh_t:
                obj[name] = make()
            return obj, pos
        return read

    def read_flexible(buf, pos):
        obj = copy()
        for name, make in fresh_t:
            obj[name] = make()
        for name, step in steps_t:
            obj[name], pos = step(buf, pos)
        if buf[pos] == 0:
            return obj, pos + 1
        return obj, _read_tagged(buf, pos, obj, tags)

    return read_flexible


def run_reader(read: T.Reader, buf, pos: int = 0) -> tuple[Any, int]:
    """Run a compiled reader, converting any low-level fault on hostile input into CodecError."""
    if not isinstance(buf, memoryview):
        buf = memoryview(buf)
    try:
        return read(buf, pos)
    except CodecError:
        raise
    except _DECODE_FAULTS as exc:
        raise CodecError(f"malformed message: {type(exc).__name__}: {exc}") from None


# ---------------------------------------------------------------------------------------------------------
# plan compilation: encode


def _nullable_struct_writer(inner: T.Writer) -> T.Writer:
    def write(value, out):
        if value is None:
            out.append(0xFF)
            return
        out.append(1)
        inner(value, out)

    return write


def _strict_struct_writer(inner: T.Writer, name: str) -> T.Writer:
    def write(value, out):
        if value is None:
            raise CodecError(f"null given for non-nullable struct {name}")
        inner(value, out)

    return write


def field_writer(f: Field, version: int, flexible: bool) -> T.Writer:
    nullable = f.nullable_in(version)
    t = f.type
    if t == "[]":
        return T.array_writer(struct_writer(f.fields, version, flexible), flexible, nullable)
    if t == "{}":
        inner = struct_writer(f.fields, version, flexible)
        return _nullable_struct_writer(inner) if nullable else _strict_struct_writer(inner, f.name)
    if t.startswith("[]"):
        return T.array_writer(T.primitive_writer(t[2:], flexible, False), flexible, nullable)
    return T.primitive_writer(t, flexible, nullable)


def _differs(value: Any, default: Any) -> bool:
    if isinstance(value, memoryview) or isinstance(default, memoryview):
        return not (value is None and default is None) and (value is None or default is None
                                                             or bytes(value) != bytes(default))
    return value != default


def struct_writer(fields: tuple[Field, ...], version: int, flexible: bool) -> T.Writer:
    steps: list[tuple[str, T.Writer, Any]] = []
    tagged: list[tuple[int, str, T.Writer, Any]] = []
    for f in fields:
        if not f.present(version):
            continue
        default = f.default_for(version)
        if flexible and f.tagged_in(version):
            tagged.append((f.tag, f.name, field_writer(f, version, True), default))
        else:
            steps.append((f.name, field_writer(f, version, flexible), default))
    steps_t = tuple(steps)
    tagged_t = tuple(sorted(tagged, key=lambda entry: entry[0]))

    def write(obj, out):
        get = obj.get
        for name, step, default in steps_t:
            try:
                step(get(name, default), out)
            except CodecError as exc:
                raise CodecError(f"{name}.{exc}") from None
            except _ENCODE_FAULTS as exc:
                raise CodecError(f"{name}: {type(exc).__name__}: {exc}") from None
        if flexible:
            _write_tagged(obj, out, tagged_t)

    return write


def _write_tagged(obj: dict, out: bytearray, tagged_t: tuple) -> None:
    if not tagged_t:
        out.append(0)
        return
    chunks = []
    for tag, name, step, default in tagged_t:
        value = obj.get(name, default)
        if not _differs(value, default):
            continue
        body = bytearray()
        try:
            step(value, body)
        except CodecError as exc:
            raise CodecError(f"{name}.{exc}") from None
        except _ENCODE_FAULTS as exc:
            raise CodecError(f"{name}: {type(exc).__name__}: {exc}") from None
        chunks.append((tag, body))
    T.write_uvarint(len(chunks), out)
    for tag, body in chunks:
        T.write_uvarint(tag, out)
        T.write_uvarint(len(body), out)
        out += body


def run_writer(write: T.Writer, obj: dict, out: bytearray) -> bytearray:
    try:
        write(obj, out)
    except CodecError:
        raise
    except _ENCODE_FAULTS as exc:
        raise CodecError(f"cannot encode message: {type(exc).__name__}: {exc}") from None
    return out


# ---------------------------------------------------------------------------------------------------------
# generic entry points for callers holding a field tuple rather than an Api

_PLANS: dict[tuple[int, int, bool, str], tuple[tuple[Field, ...], Callable]] = {}


def _cached(fields: tuple[Field, ...], version: int, flexible: bool, kind: str) -> Callable:
    key = (id(fields), version, flexible, kind)
    hit = _PLANS.get(key)
    if hit is None or hit[0] is not fields:
        build = struct_reader if kind == "r" else struct_writer
        hit = _PLANS[key] = (fields, build(fields, version, flexible))
    return hit[1]


def encode(fields: tuple[Field, ...], version: int, flexible: bool, obj: dict) -> bytes:
    """Encode `obj` as the struct `fields` at `version`; missing keys take their defaults."""
    return bytes(run_writer(_cached(fields, version, flexible, "w"), obj, bytearray()))


def decode(fields: tuple[Field, ...], version: int, flexible: bool, buf, pos: int = 0) -> tuple[dict, int]:
    """Decode the struct `fields` at `version` from `buf[pos:]`; returns (obj, end position)."""
    return run_reader(_cached(fields, version, flexible, "r"), buf, pos)
