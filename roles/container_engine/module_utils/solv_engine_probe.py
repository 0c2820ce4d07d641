"""What container_engine reads of a host's engine: which packages are installed, daemon.json and the engine's unit.

Standard library only, so that it runs two ways with the same code: imported by the module solv_engine_state (the
preflight's probe), and as the executable local fact /etc/ansible/facts.d/solv_engine.fact (written out by
filter_plugins/solv_engine.py), which the role leaves on the host so that the next run's fact gathering reads the same
without a call of its own."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time

# dpkg's status abbreviation "ii": wanted install, installed; rpm's output is made to match.
QUERIES = {
    "apt": ["dpkg-query", "-W", "-f=${Package} ${db:Status-Abbrev}\n"],
    "dnf": ["rpm", "-q", "--qf", "%{NAME} ii \n"],
}
SERVICE_KEYS = {"LoadState": "load_state", "UnitFileState": "unit_file_state", "ActiveState": "active_state"}
_SBIN = ("/sbin", "/usr/sbin", "/usr/local/sbin")  # searched after PATH, as Ansible's get_bin_path does


def _bin(name: str) -> str | None:
    return shutil.which(name, path=os.pathsep.join([os.environ.get("PATH", ""), *_SBIN]))


def _output(argv: list[str]) -> tuple[int, str]:
    done = subprocess.run(argv, capture_output=True, text=True, errors="surrogateescape", check=False)
    return done.returncode, done.stdout


def installed(family: str, packages: list[str]) -> list[str]:
    """The names among PACKAGES that FAMILY's package database has installed (none without that database)."""
    query = QUERIES.get(family)
    if not query or not packages or not (path := _bin(query[0])):
        return []
    # Both exit non-zero when one of the names is not installed; the other lines still count.
    _, out = _output([path, *query[1:], *packages])
    found = [line.split() for line in out.splitlines()]
    return sorted({words[0] for words in found if len(words) >= 2 and words[1] == "ii" and words[0] in packages})


def daemon_json(path: str) -> dict:
    """{exists, content}; OSError or UnicodeDecodeError where the file cannot be read."""
    try:
        with open(path, encoding="utf-8") as f:
            return {"exists": True, "content": f.read()}
    except FileNotFoundError:
        return {"exists": False, "content": ""}


def service(name: str) -> dict:
    state = dict.fromkeys(SERVICE_KEYS.values(), "")
    if not (path := _bin("systemctl")):
        return state
    rc, out = _output([path, "show", name, "--property", ",".join(SERVICE_KEYS)])
    for line in out.splitlines() if rc == 0 else []:
        key, _, value = line.partition("=")
        if key in SERVICE_KEYS:
            state[SERVICE_KEYS[key]] = value.strip()
    return state


def probe(pkg_family: str, packages: list[str], daemon_json_path: str, service_name: str = "docker") -> dict:
    """{installed, daemon_json, service}: what the module returns."""
    return {"installed": installed(pkg_family, packages), "daemon_json": daemon_json(daemon_json_path),
            "service": service(service_name)}


def print_fact(params: dict) -> None:
    """The local fact: the probe, when it was read (`time`) and the sha1 of this script (`script`), which the role
    compares with the script it would write now; where daemon.json cannot be read, only `error` (the role's probe
    then fails with the reason)."""
    with open(sys.argv[0], "rb") as f:
        fact = {"script": hashlib.sha1(f.read()).hexdigest(), "time": time.time()}
    try:
        fact |= probe(params["pkg_family"], params["packages"], params["daemon_json"], params["service"])
    except (OSError, UnicodeDecodeError) as exc:
        fact = {"error": f"{params['daemon_json']}: cannot be read: {exc}"}
    print(json.dumps(fact))
