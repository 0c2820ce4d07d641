#!/usr/bin/python
# -*- coding: utf-8 -*-
# Apache-2.0
"""Read-only probe of a host's container engine: installed packages, daemon.json and the service, in one call."""

from __future__ import annotations

DOCUMENTATION = r"""
module: solv_engine_state
short_description: What container_engine needs to know about a host, in one remote call
description:
  - Which of I(packages) are installed (dpkg's or rpm's database), the content of I(daemon_json) and the
    state of the I(service) unit. Changes nothing.
  - One call instead of three keeps an unchanged re-run cheap.
options:
  pkg_family:
    description: C(apt) asks dpkg, C(dnf) asks rpm; anything else reports no package installed.
    type: str
    required: true
  packages:
    description: Package names to look up.
    type: list
    elements: str
    default: []
  daemon_json:
    description: Path of Docker's daemon.json.
    type: path
    required: true
  service:
    description: The engine's systemd unit.
    type: str
    default: docker
author: SOLV platform team
"""

RETURN = r"""
installed:
  description: The names among I(packages) that are installed.
  type: list
daemon_json:
  description: "{exists, content}: the file's text ('' when missing)."
  type: dict
service:
  description: "{load_state, unit_file_state, active_state} of I(service) ('' when systemctl cannot tell)."
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule

# dpkg's status abbreviation "ii": wanted install, installed; rpm's output is made to match.
_QUERIES = {
    "apt": ["dpkg-query", "-W", "-f=${Package} ${db:Status-Abbrev}\n"],
    "dnf": ["rpm", "-q", "--qf", "%{NAME} ii \n"],
}


def installed(module, family, packages):
    if family not in _QUERIES or not packages:
        return []
    query = _QUERIES[family]
    if not module.get_bin_path(query[0]):  # no package database of that family here: nothing installed
        return []
    # Both exit non-zero when one of the names is not installed; the other lines still count.
    _, out, _ = module.run_command(query + list(packages))
    found = [line.split() for line in out.splitlines()]
    return sorted({words[0] for words in found if len(words) >= 2 and words[1] == "ii" and words[0] in packages})


def daemon_json(path):
    try:
        with open(path, encoding="utf-8") as f:
            return {"exists": True, "content": f.read()}
    except FileNotFoundError:
        return {"exists": False, "content": ""}


def service(module, name):
    keys = {"LoadState": "load_state", "UnitFileState": "unit_file_state", "ActiveState": "active_state"}
    state = dict.fromkeys(keys.values(), "")
    if not module.get_bin_path("systemctl"):
        return state
    rc, out, _ = module.run_command(["systemctl", "show", name, "--property", ",".join(keys)])
    for line in out.splitlines() if rc == 0 else []:
        key, _, value = line.partition("=")
        if key in keys:
            state[keys[key]] = value.strip()
    return state


def main():
    module = AnsibleModule(
        argument_spec=dict(
            pkg_family=dict(type="str", required=True),
            packages=dict(type="list", elements="str", default=[]),
            daemon_json=dict(type="path", required=True),
            service=dict(type="str", default="docker"),
        ),
        supports_check_mode=True,
    )
    p = module.params
    try:
        config = daemon_json(p["daemon_json"])
    except (OSError, UnicodeDecodeError) as exc:
        module.fail_json(msg=f"{p['daemon_json']}: cannot be read: {exc}")
    module.exit_json(changed=False, installed=installed(module, p["pkg_family"], p["packages"]),
                     daemon_json=config, service=service(module, p["service"]))


if __name__ == "__main__":
    main()
