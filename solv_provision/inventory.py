"""Load an inventory with Ansible's own loader, so group_vars, host_vars and vault behave as in ansible-playbook."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

# Ask Ansible to fail (not warn) on an inventory it cannot parse; must be set before ansible.constants loads.
os.environ.setdefault("ANSIBLE_INVENTORY_UNPARSED_FAILED", "True")
os.environ.setdefault("ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED", "True")

# Variables whose names start with these belong to us: they are checked against the roles' argument specs.
SOLV_PREFIXES = (
    "solv_",
    "vllm_",
    "litellm_",
    "searxng_",
    "openwebui_",
    "container_engine_",
    "nvidia_driver_",
    "nvidia_container_toolkit_",
)


class InventoryError(Exception):
    """The inventory could not be loaded at all (path missing, unparsable, vault locked)."""


@dataclass
class Unresolved:
    """A variable whose value could not be computed offline (a template over role defaults, a locked vault)."""

    reason: str


@dataclass
class Inventory:
    sources: list[Path]
    groups: dict[str, list[str]]
    hosts: dict[str, dict[str, Any]]  # host -> SOLV variables (+ address keys), templated where possible

    def in_group(self, group: str) -> list[str]:
        return self.groups.get(group, [])

    def provenance(self, host: str, key: str) -> Path | None:
        """The file that sets `key` for `host`, most specific first; None when unknown."""
        return _find_definition(self, host, key)


def is_solv_var(name: str) -> bool:
    return name.startswith(SOLV_PREFIXES)


# Keys read for every host besides ours: where the host is reached.
_ADDRESS_KEYS = ("ansible_host",)


def load(sources: list[str | Path], vault_password_file: str | None = None) -> Inventory:
    """Load inventory sources; raise InventoryError with a readable message when that is impossible."""
    from ansible.errors import AnsibleError
    from ansible.inventory.manager import InventoryManager
    from ansible.parsing.dataloader import DataLoader
    from ansible.template import Templar
    from ansible.vars.manager import VariableManager

    paths = [Path(s).expanduser().resolve() for s in sources]
    for p in paths:
        if not p.exists():
            raise InventoryError(f"{p}: inventory not found")

    _init_plugins()
    loader = DataLoader()
    vault_file = vault_password_file or os.environ.get("ANSIBLE_VAULT_PASSWORD_FILE")
    if vault_file:
        from ansible.parsing.vault import get_file_vault_secret

        try:
            secret = get_file_vault_secret(filename=vault_file, loader=loader)
            secret.load()
        except (AnsibleError, OSError) as exc:
            raise InventoryError(f"{vault_file}: cannot read the vault password: {exc}") from None
        loader.set_vault_secrets([("default", secret)])

    try:
        inv = InventoryManager(loader=loader, sources=[str(p) for p in paths])
        varman = VariableManager(loader=loader, inventory=inv)
    except AnsibleError as exc:
        raise InventoryError(_short(exc)) from None

    groups = {name: sorted(h.name for h in g.get_hosts()) for name, g in inv.groups.items()}
    hosts: dict[str, dict[str, Any]] = {}
    for host in inv.get_hosts():
        try:
            allvars = varman.get_vars(host=host, include_hostvars=False)
        except AnsibleError as exc:
            raise InventoryError(_yaml_problem(paths, host.name) or f"host {host.name}: {_short(exc)}") from None
        templar = Templar(loader=loader, variables=allvars)
        mine: dict[str, Any] = {}
        for key in allvars:
            if is_solv_var(key) or key in _ADDRESS_KEYS:
                mine[key] = _resolve(templar, allvars, key)
        hosts[host.name] = mine
    return Inventory(sources=paths, groups=groups, hosts=hosts)


_plugins_ready = False


def _init_plugins() -> None:
    """Lookups (env, file) in inventory values resolve as in ansible-playbook; once per process."""
    global _plugins_ready
    if not _plugins_ready:
        from ansible.plugins.loader import init_plugin_loader

        init_plugin_loader()
        _plugins_ready = True


def _resolve(templar, allvars, key):
    return _resolve_value(templar, allvars[key])


def _resolve_value(templar, value):
    """Template a value; where that fails, keep the structure and mark only the failing leaves Unresolved."""
    try:
        return templar.template(value)
    except Exception as exc:  # noqa: BLE001 - any templating/vault failure makes the value unknown offline
        if isinstance(value, dict):
            return {k: _resolve_value(templar, v) for k, v in value.items()}
        if isinstance(value, list):
            return [_resolve_value(templar, v) for v in value]
        return Unresolved(_short(exc))


def has_unresolved(value) -> bool:
    if isinstance(value, Unresolved):
        return True
    if isinstance(value, dict):
        return any(has_unresolved(v) for v in value.values())
    if isinstance(value, list):
        return any(has_unresolved(v) for v in value)
    return False


def _yaml_problem(sources: list[Path], host: str) -> str | None:
    """Name the file, line and column of a YAML syntax error among the inventory's files."""
    for src in sources:
        root = src if src.is_dir() else src.parent
        for f in sorted(root.rglob("*")):
            if f.suffix not in (".yml", ".yaml", "") or not f.is_file() or f.name.startswith("."):
                continue
            try:
                yaml.load(f.read_text(encoding="utf-8"), Loader=_LenientLoader)  # noqa: S506
            except yaml.MarkedYAMLError as exc:
                mark = exc.context_mark or exc.problem_mark
                where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "somewhere"
                what = "; ".join(str(x) for x in (exc.context, exc.problem) if x)
                return f"{f}: not valid YAML ({where}): {what} (while loading host {host})"
            except (yaml.YAMLError, UnicodeDecodeError, OSError):
                continue
    return None


def _short(exc: BaseException) -> str:
    text = str(getattr(exc, "message", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# --- where a variable is defined --------------------------------------------------------------------------

_VAR_SUFFIXES = ("", ".yml", ".yaml", ".json")


def _var_files(base: Path, name: str) -> list[Path]:
    """Files Ansible would read for host_vars/<name> or group_vars/<name>."""
    found = []
    for suffix in _VAR_SUFFIXES:
        p = base / f"{name}{suffix}"
        if p.is_file():
            found.append(p)
        elif p.is_dir():
            found.extend(sorted(f for f in p.rglob("*") if f.is_file()))
    return found


def _yaml_keys(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return {}
    if text.startswith("$ANSIBLE_VAULT"):
        return {}
    try:
        data = yaml.load(text, Loader=_LenientLoader)  # noqa: S506 - SafeLoader subclass that tolerates !vault tags
    except yaml.YAMLError:
        return {}
    return data if isinstance(data, dict) else {}


def _host_entry_in_source(data: Any, host: str, key: str) -> bool:
    """Is `key` set for `host` (or for a group holding it) inside a YAML inventory file's structure?"""
    if not isinstance(data, dict):
        return False
    for group in data.values():
        if not isinstance(group, dict):
            continue
        hosts = group.get("hosts") or {}
        if isinstance(hosts, dict) and host in hosts and isinstance(hosts[host], dict) and key in hosts[host]:
            return True
        if _host_entry_in_source(group.get("children") or {}, host, key):
            return True
    return False


def _find_definition(inv: Inventory, host: str, key: str) -> Path | None:
    host_groups = [g for g, members in inv.groups.items() if host in members and g != "all"]
    for src in inv.sources:
        root = src if src.is_dir() else src.parent
        for f in _var_files(root / "host_vars", host):
            if key in _yaml_keys(f):
                return f
        inventory_files = sorted(root.glob("*.y*ml")) if src.is_dir() else [src]
        for f in inventory_files:
            if _host_entry_in_source(_yaml_keys(f), host, key):
                return f
        for group in [*host_groups, "all"]:
            for f in _var_files(root / "group_vars", group):
                if key in _yaml_keys(f):
                    return f
    return None


class _LenientLoader(yaml.SafeLoader):
    """SafeLoader that reads `!vault` (and any other tag) as null: enough to see which keys a file sets."""


_LenientLoader.add_multi_constructor("!", lambda loader, suffix, node: None)
