"""The roles' declared inputs: `meta/argument_specs.yml` (types) and `defaults/main.yml` (default values).

These files are the single source of truth for what a user may set; the validator, `inventory init`
and the README's inventory reference all read them from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from solv_provision import paths


class SpecError(Exception):
    """A role's own metadata is broken (a bug in the roles, not in the user's inventory)."""


@dataclass(frozen=True)
class RoleSpec:
    role: str
    short_description: str
    options: dict[str, dict[str, Any]]  # variable -> argument spec (type, choices, elements, options, ...)
    defaults: dict[str, Any]  # literal defaults from defaults/main.yml


def _read_yaml(path: Path) -> Any:
    if not path.is_file():
        return None
    try:
        return yaml.load(path.read_text(encoding="utf-8"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # noqa: S506
    except yaml.YAMLError as exc:
        raise SpecError(f"{path}: not valid YAML: {' '.join(str(exc).split())}") from None


# The entry point holding a role's inventory variables: `main`, except solv_common's `site` (Ansible checks a `main`
# entry as a task of its own in every play that runs the role, and solv_common runs as every service role's
# dependency; its preflight checks the same).
_ENTRY_POINT = {"solv_common": "site"}


@lru_cache(maxsize=None)
def role_specs(roles_dir: Path | None = None) -> dict[str, RoleSpec]:
    """Every role that declares an argument spec, by name."""
    roles_dir = roles_dir or paths.roles_dir()
    found: dict[str, RoleSpec] = {}
    for role_dir in sorted(p for p in roles_dir.iterdir() if p.is_dir()):
        data = _read_yaml(role_dir / "meta" / "argument_specs.yml") or {}
        main = (data.get("argument_specs") or {}).get(_ENTRY_POINT.get(role_dir.name, "main")) or {}
        defaults = _read_yaml(role_dir / "defaults" / "main.yml") or {}
        found[role_dir.name] = RoleSpec(
            role=role_dir.name,
            short_description=str(main.get("short_description", "")),
            options=dict(main.get("options") or {}),
            defaults=dict(defaults),
        )
    return found


def all_options() -> dict[str, tuple[str, dict[str, Any]]]:
    """variable -> (owning role, spec), over all roles."""
    merged: dict[str, tuple[str, dict[str, Any]]] = {}
    for spec in role_specs().values():
        for name, opt in spec.options.items():
            merged.setdefault(name, (spec.role, opt))
    return merged


def default(name: str) -> Any:
    """A variable's role default (None when it has none or it is a template)."""
    for spec in role_specs().values():
        if name in spec.defaults:
            value = spec.defaults[name]
            if isinstance(value, str) and "{{" in value:
                return None
            return value
    return None


def has_value_default(name: str) -> bool:
    """The role's defaults/main.yml gives the variable a value (templates count; null does not)."""
    return any(spec.defaults.get(name) is not None for spec in role_specs().values())


def secret_options() -> set[str]:
    """Variables the roles mark `no_log: true`: never printed, placeholders in `render`."""
    return {name for name, (_, opt) in all_options().items() if opt.get("no_log")}
