"""What solv-provision hands the ansible-playbook it starts, so that the play does not work out again what the CLI
has just read: the plain YAML files of the inventory (inventory.save_plain_read, read by plugins/) and each host's
routing inputs (read by solv_common's routing filters: at 1,000 hosts, building every inference host's variables in
the play to read three of them costs `render litellm` and each `apply` about a second per filter)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from solv_provision import inventory, routing

ROUTING_INPUTS = "SOLV_ROUTING_INPUTS"
_FILES = ("plain-yaml.json", "routing-inputs.json")


def environment(private: Path) -> dict[str, str]:
    """The environment of a run whose private folder is PRIVATE: where `write` puts what it hands over. The play
    may start before (solv_provision.held_play); a file not written is nothing handed over."""
    return {inventory.PLAIN_YAML_CACHE: str(Path(private) / _FILES[0]), ROUTING_INPUTS: str(Path(private) / _FILES[1])}


def write(private: Path, inv: inventory.Inventory | None = None, extra_vars: Iterable[str] = ()) -> None:
    """What this process read of INV, for the play whose private folder is PRIVATE (0600), before it is let go."""
    inventory.save_plain_read(Path(private) / _FILES[0])
    inputs = routing_inputs(inv, extra_vars) if inv is not None else None
    if inputs is not None:
        write_private(Path(private) / _FILES[1], json.dumps(inputs))


def write_private(path: Path, text: str) -> None:
    """TEXT into PATH, readable by this user only (0600)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)


def remove(private: Path) -> None:
    for name in _FILES:
        (Path(private) / name).unlink(missing_ok=True)


def routing_inputs(inv: inventory.Inventory, extra_vars: Iterable[str] = ()) -> dict[str, dict[str, Any]] | None:
    """host -> the routing.INPUT_KEYS it sets, as the inventory's files say them: every host but one whose input
    came from templating (the play may template it otherwise: facts, lookups). None when an extra variable could
    set one: anything but a JSON object of other names (the CLI's own), e.g. the user's `-e key=value` or `@file`."""
    for extra in extra_vars:
        try:
            data = json.loads(extra)
        except ValueError:
            return None
        if not isinstance(data, dict) or set(data) & set(routing.INPUT_KEYS):
            return None
    keys = set(routing.INPUT_KEYS)
    return {host: {key: hostvars[key] for key in routing.INPUT_KEYS if key in hostvars}
            for host, hostvars in inv.hosts.items() if not inv.templated.get(host, frozenset()) & keys}


_HANDED: dict[str, dict[str, Any]] | None = None


def routing_hosts(hostvars: Mapping[str, Any], names: Iterable[str]) -> dict[str, Mapping[str, Any]]:
    """name -> its routing inputs for the routing filters: as handed over when every one of NAMES was (no role
    sets them: tests/test_handover.py), else Ansible's hostvars."""
    names = list(names)
    if handed_over(names):
        return {name: _HANDED[name] for name in names}
    return {name: hostvars[name] for name in names}


def handed_over(names: list[str]) -> bool:
    """Whether the routing inputs of every one of NAMES were handed over (they are then the same all run long)."""
    global _HANDED
    if _HANDED is None:
        _HANDED = _read(os.environ.get(ROUTING_INPUTS))
    return bool(names) and all(name in _HANDED for name in names)


def _read(path: str | None) -> dict[str, dict[str, Any]]:
    if not path:
        return {}
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return {}
