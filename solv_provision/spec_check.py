"""One variable's value against its role's argument spec, as the roles use it: the types without Ansible's
coercion (value_types), then what Ansible's own validator checks on values already of the right type (choices,
required and unknown keys of a mapping or of each list element).

One implementation: `solv-provision validate` checks every host with it, and each service role's preflight
through rules.role_problems (the playbooks import the service roles without Ansible's argument spec check).
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping
from typing import Any

from solv_provision import specs, value_types


@functools.cache
def checker() -> SpecChecker:
    """The one checker of this process (its validators built once per variable)."""
    return SpecChecker()


class SpecChecker:
    """One variable's value against its argument spec -> [(label, message)]. Validators are built once per
    variable, and a value met before (hosts sharing group_vars or a host profile) is not checked again."""

    def __init__(self):
        self.options = specs.all_options()
        self._validators: dict[str, tuple[Any, Any]] = {}
        self._seen: dict[tuple[str, str], list[tuple[str, str]]] = {}

    def problems(self, key: str, value: Any) -> list[tuple[str, str]]:
        try:
            memo = (key, json.dumps(value, sort_keys=True))
        except (TypeError, ValueError):
            return self._check(key, value)
        if memo not in self._seen:
            self._seen[memo] = self._check(key, value)
        return self._seen[memo]

    def _check(self, key: str, value: Any) -> list[tuple[str, str]]:
        # Types first, without Ansible's coercion (value_types); Ansible's validator then checks what is
        # left (required keys, choices, unknown keys) on values that are already the right type.
        value = plain_data(value)
        strict = value_types.problems(key, self.options[key][1], value)
        if strict:
            return list(strict)
        validator, element_validator = self._validators_of(key)
        found = [(key, msg) for msg in _errors(validator, {key: value})]
        if element_validator is not None and isinstance(value, list):
            for i, item in enumerate(value):
                if isinstance(item, dict):
                    label = f"{key}[{i}]" + (f" ({item['name']})" if isinstance(item.get("name"), str) else "")
                    found += [(label, msg) for msg in _errors(element_validator, item)]
        return found

    def _validators_of(self, key: str) -> tuple[Any, Any]:
        from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

        if key not in self._validators:
            spec = _clean_spec(self.options[key][1])
            elements = (ArgumentSpecValidator(spec["options"])
                        if spec.get("type") == "list" and spec.get("elements") == "dict" and spec.get("options")
                        else None)
            self._validators[key] = (ArgumentSpecValidator({key: _shallow(spec)}), elements)
        return self._validators[key]


def _clean_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """An argument_specs.yml entry without documentation keys, recursively."""
    keep = {k: v for k, v in spec.items() if k not in ("description", "version_added", "default")}
    if isinstance(keep.get("options"), dict):
        keep["options"] = {k: _clean_spec(v) for k, v in keep["options"].items()}
    return keep


def _shallow(spec: dict[str, Any]) -> dict[str, Any]:
    """A list-of-dicts spec without its sub-options: elements are checked one by one for better messages."""
    if spec.get("type") == "list" and spec.get("elements") == "dict":
        return {k: v for k, v in spec.items() if k != "options"}
    return spec


def plain_data(value: Any) -> Any:
    """The value as plain Python data, read once through Ansible's lazily templated containers (a role's preflight
    passes them; Ansible's validator would deep-copy them, templating every item again: seconds for one role)."""
    if isinstance(value, Mapping):
        return {plain_data(k): plain_data(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain_data(v) for v in value]
    if isinstance(value, str):
        return str(value)
    return value


def _errors(validator, params: dict[str, Any]) -> list[str]:
    from ansible.module_utils.errors import UnsupportedError

    result = validator.validate(params)
    return [f"unknown key {e}" if isinstance(e, UnsupportedError) else _tidy(str(e)) for e in result.errors]


_TYPE_ERROR = re.compile(r"argument '(?P<arg>[^']+)' is of type (?P<got>\w+) and we were unable to convert to (?P<want>\w+).*")
_TYPE_WORDS = {"dict": "a mapping", "list": "a list", "str": "a string", "int": "an integer", "float": "a number",
               "bool": "true/false", "NoneType": "nothing"}


def _tidy(msg: str) -> str:
    m = _TYPE_ERROR.match(msg)
    if m:
        got, want = (_TYPE_WORDS.get(m[k], m[k]) for k in ("got", "want"))
        return f"{m['arg']} must be {want}, got {got}"
    return msg.replace("found in ", "in ").strip()
