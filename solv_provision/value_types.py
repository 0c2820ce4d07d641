"""What a value must be for a role to use it as it is: the argument specs' types, without Ansible's coercion.

Ansible's argument-spec validator converts what it can ("8" -> 8, "yes" -> True, 0.10 -> "0.1", a string
-> a one-element list) and reports nothing, while the roles read the raw inventory value: a string where a
list belongs becomes one argument per character. Here a value passes only when it already is what the spec
says, so what validation accepts is exactly what the roles use. Numbers and names get the range a role can
use: integers count from 1 (ports up to 65535) unless 0 means something, and a string that names something
is never empty.

One implementation: the validator checks every variable of every role with `problems`; the service roles'
preflight reaches the same function through rules.role_problems.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from solv_provision import specs

Problems = list[tuple[str, str]]

# Integers where 0 is a real value (GPU index 0). SearXNG's uid and gid are not: the container never runs as root.
ZERO_OK = frozenset({"gpus"})
_PORT = re.compile(r"(^|_)port$")
# Top-level strings whose empty value means something: the role's documented default ("" = the host's
# internal address, "" = generated, ...) is empty, or the name says so.
_EMPTY_OK = re.compile(r"_bind_address$")
_NO_DEFAULT = object()  # sub-options: no top-level default


def problems(name: str, spec: Mapping[str, Any], value: Any) -> Problems:
    """(label, message) for one top-level variable and its spec (argument_specs.yml). An empty string passes
    only where the role's default is empty too (or the name says that empty means something); null only where
    the role has no default value either (the role would otherwise use it as the text "None")."""
    if value is None and spec.get("type") != "raw" and specs.has_value_default(name):
        return [(name, "is null (nothing after the colon): give it a value, or leave it out for the role's default")]
    return _check(name, name, spec, value, nested=False, default=specs.default(name))


def _check(label: str, name: str, spec: Mapping[str, Any], value: Any, *, nested: bool, default: Any) -> Problems:
    kind = spec.get("type", "str")
    if kind == "raw" or value is None:  # a sub-option given null is a sub-option left out, for the roles too
        return []
    check = _CHECKS.get(kind)
    return check(label, name, spec, value, nested, default) if check else []


def _bool(label, name, spec, value, nested, default) -> Problems:
    if isinstance(value, bool):
        return []
    return [(label, f"must be true or false, got {_describe(value, spec)}" + _hint(value, "true or false, unquoted"))]


def _int(label, name, spec, value, nested, default) -> Problems:
    if not isinstance(value, int) or isinstance(value, bool):
        return [(label, f"must be an integer, got {_describe(value, spec)}" + _hint(value, "a number, unquoted"))]
    if _PORT.search(name):
        return [] if 1 <= value <= 65535 else [(label, f"port {value} is not in 1-65535")]
    low = 0 if name in ZERO_OK else 1
    return [] if value >= low else [(label, f"must be {low} or more, got {value}")]


def _float(label, name, spec, value, nested, default) -> Problems:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return []
    return [(label, f"must be a number, got {_describe(value, spec)}" + _hint(value, "a number, unquoted"))]


def _str(label, name, spec, value, nested, default) -> Problems:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        hint = ""
        if isinstance(value, (bool, float)):
            hint = " (YAML read it as a " + ("boolean" if isinstance(value, bool) else "number") + ": quote it)"
        return [(label, f"must be a string, got {_describe(value, spec)}{hint}")]
    if isinstance(value, str) and not value.strip():
        if nested:
            return [(label, "must not be empty (leave the key out for its default)")]
        if default != "" and not _EMPTY_OK.search(name):
            return [(label, "must not be empty (leave it out for the role's default)")]
    return []


def _list(label, name, spec, value, nested, default) -> Problems:
    if not isinstance(value, list):
        return [(label, f"must be a list, got {_describe(value, spec)} (a YAML list: [a, b], or '- a' lines)")]
    element = {"type": spec.get("elements", "raw"), "options": spec.get("options")}
    found: Problems = []
    for i, item in enumerate(value):
        title = f" ({item['name']})" if isinstance(item, Mapping) and isinstance(item.get("name"), str) else ""
        found += _check(f"{label}[{i}]{title}", name, element, item, nested=True, default=_NO_DEFAULT)
    return found


def _dict(label, name, spec, value, nested, default) -> Problems:
    if not isinstance(value, Mapping):
        return [(label, f"must be a mapping (key: value), got {_describe(value, spec)}")]
    found: Problems = []
    for key, sub in (spec.get("options") or {}).items():
        if key in value:
            found += _check(f"{label}.{key}", key, sub, value[key], nested=True, default=_NO_DEFAULT)
    return found


_CHECKS = {"bool": _bool, "int": _int, "float": _float, "str": _str, "path": _str, "list": _list, "dict": _dict}


def _describe(value: Any, spec: Mapping[str, Any] | None = None) -> str:
    if spec and spec.get("no_log"):
        return f"a {type(value).__name__}"  # a secret: its value is never echoed
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, str):
        return f"the string {value!r}"
    if isinstance(value, (int, float)):
        return f"the number {value!r}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, Mapping):
        return "a mapping"
    return f"a {type(value).__name__}"


def _hint(value: Any, want: str) -> str:
    return f" (write {want})" if isinstance(value, str) else ""
