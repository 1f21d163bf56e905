"""The registry of served APIs: every `Api` constant declared in `core`, `groups` and `admin`, by api key.

A module contributes by defining upper-case module-level `Api` constants; nothing else has to be listed,
and two declarations of the same key are refused at import time.
"""

from __future__ import annotations

from types import ModuleType

from netio.codec.apis import admin, core, groups
from netio.codec.schema import Api


def _collect(*modules: ModuleType) -> dict[int, Api]:
    apis: dict[int, Api] = {}
    for module in modules:
        for name, value in vars(module).items():
            if name.isupper() and isinstance(value, Api):
                if value.key in apis:
                    raise ValueError(f"api key {value.key} declared twice ({apis[value.key].name}, {value.name})")
                apis[value.key] = value
    return dict(sorted(apis.items()))


APIS: dict[int, Api] = _collect(core, groups, admin)

__all__ = ["APIS"]
