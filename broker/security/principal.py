"""`ssl.principal.mapping.rules`: the name a client certificate's subject gives its principal, as Kafka maps it.

Rules are tried in order on the subject's RFC 2253 name; the first that matches it whole gives the name.
`RULE:pattern/replacement/` rewrites with the pattern's groups ($1, $2, ...), an `L` or `U` after the last
slash lowers or raises its case, and `DEFAULT` keeps the whole name. A subject no rule matches has no
principal: its connection is refused, as Kafka refuses it.
"""

from __future__ import annotations

import re

_RULE = re.compile(r"\s*(DEFAULT|RULE:((?:\\.|[^\\/])*)/((?:\\.|[^\\/])*)/([LU]?))\s*(?:,|$)")


class NoMatchingRule(ValueError):
    pass


class PrincipalMapper:
    def __init__(self, text: str | None):
        self.rules: list[tuple[re.Pattern, str, str] | None] = []  # None: DEFAULT
        text = (text or "DEFAULT").strip()
        pos = 0
        while pos < len(text):
            m = _RULE.match(text, pos)
            if m is None or m.end() == pos:
                raise ValueError(f"ssl.principal.mapping.rules: cannot parse {text[pos:]!r}")
            if m.group(1) == "DEFAULT":
                self.rules.append(None)
            else:
                pattern = m.group(2).replace("\\/", "/")
                try:
                    compiled = re.compile(pattern)
                except re.error as e:
                    raise ValueError(f"ssl.principal.mapping.rules: bad pattern {pattern!r}: {e}") from None
                replacement = re.sub(r"\$(\d+)", r"\\g<\1>", m.group(3).replace("\\/", "/"))
                self.rules.append((compiled, replacement, m.group(4)))
            pos = m.end()
        if not self.rules:
            raise ValueError("ssl.principal.mapping.rules: no rule")

    def name(self, subject: str) -> str:
        for rule in self.rules:
            if rule is None:
                return subject
            pattern, replacement, case = rule
            m = pattern.fullmatch(subject)
            if m is not None:
                out = m.expand(replacement)
                return out.lower() if case == "L" else out.upper() if case == "U" else out
        raise NoMatchingRule(f"no ssl.principal.mapping.rules rule matches {subject!r}")
