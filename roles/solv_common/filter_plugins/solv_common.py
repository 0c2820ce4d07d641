"""Filters of the shared container mechanism (solv_common): systemd quoting, env files, specs."""

from __future__ import annotations

import hashlib
import json
import re

from ansible.errors import AnsibleFilterError

_BARE = re.compile(r"[A-Za-z0-9_@%+=:,./-]+")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def solv_systemd_quote(arg):
    """One argument as a systemd ExecStart word: bare when safe, else double-quoted and escaped.

    systemd expands %-specifiers and $VARIABLES in Exec lines: both are escaped, so the
    argument reaches docker exactly as given.
    """
    arg = str(arg)
    if "\n" in arg or "\r" in arg:
        raise AnsibleFilterError(f"solv_systemd_quote: newline in argument {arg!r}")
    if arg and _BARE.fullmatch(arg):
        return arg.replace("%", "%%")
    escaped = arg.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%").replace("$", "$$")
    return f'"{escaped}"'


def solv_env_file(env):
    """A Docker --env-file from a dict: NAME=value lines, sorted; refuses what the format cannot hold."""
    if env is None:
        return ""
    if not isinstance(env, dict):
        raise AnsibleFilterError("solv_env_file: expects a dict of NAME: value")
    lines = []
    for name in sorted(env):
        value = env[name]
        if not _ENV_NAME.fullmatch(str(name)):
            raise AnsibleFilterError(f"solv_env_file: invalid variable name {name!r}")
        if value is None:
            value = ""
        if isinstance(value, bool):
            value = "true" if value else "false"
        value = str(value)
        if "\n" in value or "\r" in value:
            raise AnsibleFilterError(f"solv_env_file: the value of {name} contains a newline")
        lines.append(f"{name}={value}\n")
    return "".join(lines)


def solv_spec_sha(spec):
    """A stable sha256 over a JSON-able value (the container's wanted state)."""
    text = json.dumps(spec, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class FilterModule:
    def filters(self):
        return {
            "solv_systemd_quote": solv_systemd_quote,
            "solv_env_file": solv_env_file,
            "solv_spec_sha": solv_spec_sha,
        }
