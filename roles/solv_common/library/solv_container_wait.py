#!/usr/bin/python
# -*- coding: utf-8 -*-
# Apache-2.0
"""Wait until a SOLV container answers its readiness checks; fail early when systemd keeps restarting it."""

from __future__ import annotations

DOCUMENTATION = r"""
module: solv_container_wait
short_description: Readiness wait for one systemd-managed container
description:
  - Polls HTTP checks in order until all pass, the timeout passes, or the unit crash-loops
    (systemd restarted it I(max_restarts) times, or it entered the failed state).
  - On failure the message names the failing check and carries the unit's last journal lines.
  - Header values (API keys) never appear in the output.
options:
  name:
    description: Unit name without C(.service).
    type: str
    required: true
  checks:
    description:
      - "Checks: {url, status (list of accepted codes), headers, models (OpenAI /v1/models data[].id must contain),
        method (GET or POST), body (JSON sent with POST), password (redis:// URLs: AUTH with it, then PING),
        signin ({url, body, token}: POST body to url first and
        send the answer's token field as a bearer token), ca (https: CA file on the host, or insecure)}."
    type: list
    elements: dict
    required: true
  timeout:
    description: Seconds to wait in all.
    type: int
    default: 300
  delay:
    description: Longest pause between rounds, in seconds (the first is 0.25 s, each next one twice as long).
    type: float
    default: 0.5
  max_restarts:
    description: Fail once systemd restarted the unit this many times during the wait.
    type: int
    default: 3
  journal_lines:
    description: Journal lines of the unit quoted on failure.
    type: int
    default: 30
  network:
    description: Docker network whose address of the container replaces C({container_address}) in check URLs.
    type: str
    default: ""
  docker:
    description: Docker CLI.
    type: path
    default: /usr/bin/docker
author: SOLV platform team
"""

RETURN = r"""
elapsed:
  description: Seconds waited.
  type: float
checks:
  description: Last result per check (url, status, ok, detail).
  type: list
"""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.solv_gate import failure, journal, wait


def main():
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type="str", required=True),
            checks=dict(
                type="list",
                elements="dict",
                required=True,
                options=dict(
                    url=dict(type="str", required=True),
                    status=dict(type="list", elements="int", default=[200]),
                    headers=dict(type="dict", default={}, no_log=True),
                    models=dict(type="list", elements="str", default=[]),
                    method=dict(type="str", choices=["GET", "POST"], default="GET"),
                    body=dict(type="raw"),
                    ca=dict(type="str"),
                    password=dict(type="str", no_log=True),
                    signin=dict(type="dict", no_log=True, options=dict(
                        url=dict(type="str", required=True),
                        body=dict(type="dict", required=True),
                        token=dict(type="str", default="token"),
                    )),
                ),
            ),
            timeout=dict(type="int", default=300),
            delay=dict(type="float", default=0.5),
            max_restarts=dict(type="int", default=3),
            journal_lines=dict(type="int", default=30),
            network=dict(type="str", default=""),
            docker=dict(type="path", default="/usr/bin/docker"),
        ),
        supports_check_mode=True,
    )
    p = module.params
    outcome = wait(module.run_command, p["name"], p["checks"], p["timeout"], p["delay"], p["max_restarts"],
                   p["network"], p["docker"])
    if outcome["ok"]:
        module.exit_json(changed=False, elapsed=outcome["elapsed"], checks=outcome["results"])
    module.fail_json(msg=f"{p['name']}: {failure(outcome, p['timeout'])}. Last log lines:\n"
                     + journal(module.run_command, p["name"], p["journal_lines"]),
                     elapsed=outcome["elapsed"], checks=outcome["results"])


if __name__ == "__main__":
    main()
