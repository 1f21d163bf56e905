"""Access to Kafka's official message schemas in the `shared` folder beside the repository.

The schemas are JSON with `//` comments. Tests that use them skip cleanly when the folder is absent, so a
fresh clone still passes.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "kafka-protocol"
MESSAGES = SHARED / "message"
ERRORS_TSV = SHARED / "errors.tsv"

PRIMITIVES = {"bool", "int8", "int16", "int32", "int64", "uint16", "uint32", "float64", "string", "bytes",
              "records", "uuid"}


def require_shared() -> None:
    if not MESSAGES.is_dir():
        pytest.skip("official Kafka schemas (../shared/kafka-protocol) are not available")


@lru_cache(maxsize=None)
def load_message(name: str) -> dict:
    text = (MESSAGES / f"{name}.json").read_text()
    return json.loads("\n".join(line for line in text.splitlines() if not line.strip().startswith("//")))


def snake_case(name: str) -> str:
    """`ThrottleTimeMs` -> `throttle_time_ms`, `TopicID` -> `topic_id`, `ISRNodes` -> `isr_nodes`."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()


def version_set(spec: str | None, top: int = 64) -> frozenset[int]:
    if spec is None or spec == "none":
        return frozenset()
    if spec.endswith("+"):
        return frozenset(range(int(spec[:-1]), top))
    if "-" in spec:
        lo, hi = spec.split("-")
        return frozenset(range(int(lo), int(hi) + 1))
    return frozenset({int(spec)})


def json_default(raw, type_: str):
    """A JSON `default` as the Python value the declarations use."""
    if isinstance(raw, (bool, int, float)):
        return raw
    if raw == "null":
        return None
    if raw in ("true", "false"):
        return raw == "true"
    if type_ == "string":
        return raw
    if type_ == "float64":
        return float(raw)
    return int(raw, 0)


def resolve(field: dict, common: dict[str, list]) -> tuple[str, list | None]:
    """(DSL type, child fields) for a JSON field, inlining common structs."""
    t = field["type"]
    children = field.get("fields")
    if t.startswith("[]"):
        inner = t[2:]
        if inner in PRIMITIVES:
            return t, None
        return "[]", children if children is not None else common[inner]
    if t in PRIMITIVES:
        return t, None
    return "{}", children if children is not None else common[t]
