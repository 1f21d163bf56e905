"""A small parser for the Prometheus text format (what our /metrics writes: no timestamps, no escapes
beyond \\\\, \\" and \\n)."""

from __future__ import annotations

import re

_LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)\s*$')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')

Samples = dict[str, list[tuple[dict[str, str], float]]]


def _unescape(s: str) -> str:
    return s.replace("\\n", "\n").replace('\\"', '"').replace("\\\\", "\\")


def parse(text: str) -> Samples:
    """{metric name: [(labels, value), ...]} for every sample line."""
    out: Samples = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _LINE.match(line)
        if not m:
            continue
        name, labels, value = m.groups()
        lab = {k: _unescape(v) for k, v in _LABEL.findall(labels or "")}
        try:
            out.setdefault(name, []).append((lab, float(value)))
        except ValueError:
            continue
    return out


def total(samples: Samples, name: str, **match) -> float:
    """Sum of the samples of `name` whose labels include `match`."""
    return sum(v for lab, v in samples.get(name, ()) if all(lab.get(k) == str(x) for k, x in match.items()))
