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
  - One call instead of three keeps an unchanged re-run cheap; the role leaves the same code on the host as a local
    fact (C(/etc/ansible/facts.d/solv_engine.fact)), and a re-run whose fact gathering read it makes no call at all.
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
  fact:
    description: The role's local fact on this host (its sha1 is returned, so that the role writes it only where it
      differs).
    type: path
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
fact_sha1:
  description: The sha1 of I(fact) ('' when it is missing or no I(fact) was given).
  type: str
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.solv_engine_probe import probe  # also the role's local fact (filter_plugins/)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            pkg_family=dict(type="str", required=True),
            packages=dict(type="list", elements="str", default=[]),
            daemon_json=dict(type="path", required=True),
            service=dict(type="str", default="docker"),
            fact=dict(type="path"),
        ),
        supports_check_mode=True,
    )
    p = module.params
    try:
        state = probe(p["pkg_family"], p["packages"], p["daemon_json"], p["service"])
    except (OSError, UnicodeDecodeError) as exc:
        module.fail_json(msg=f"{p['daemon_json']}: cannot be read: {exc}")
    fact = p["fact"] and os.path.isfile(p["fact"])
    module.exit_json(changed=False, fact_sha1=module.digest_from_file(p["fact"], "sha1") if fact else "", **state)


if __name__ == "__main__":
    main()
