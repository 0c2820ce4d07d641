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
        method (GET or POST), body (JSON sent with POST)}."
    type: list
    elements: dict
    required: true
  timeout:
    description: Seconds to wait in all.
    type: int
    default: 300
  delay:
    description: Seconds between rounds.
    type: float
    default: 2
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

import json
import time
import urllib.error
import urllib.request

from ansible.module_utils.basic import AnsibleModule

_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _unit_state(module, name):
    rc, out, _ = module.run_command(
        ["systemctl", "show", f"{name}.service", "--property=ActiveState,SubState,NRestarts"]
    )
    values = dict(line.split("=", 1) for line in out.splitlines() if "=" in line) if rc == 0 else {}
    return values.get("ActiveState", ""), values.get("SubState", ""), int(values.get("NRestarts", "0") or 0)


def _journal(module, name, lines):
    rc, out, _ = module.run_command(
        ["journalctl", "-u", f"{name}.service", "-n", str(lines), "--no-pager", "-o", "cat"]
    )
    return out.strip() if rc == 0 else ""


_ADDRESS = "{container_address}"


def _container_address(module, name, network):
    """The container's address on `network` (brackets for IPv6), or None while it has none."""
    fmt = "{{json .NetworkSettings.Networks}}"
    rc, out, _ = module.run_command([module.params["docker"], "container", "inspect", "--format", fmt, name])
    if rc != 0:
        return None
    try:
        net = (json.loads(out) or {}).get(network) or {}
    except ValueError:
        return None
    if net.get("IPAddress"):
        return net["IPAddress"]
    return f"[{net['GlobalIPv6Address']}]" if net.get("GlobalIPv6Address") else None


def _check(check, address=None):
    """One HTTP check -> (ok, status, detail)."""
    url = check["url"]
    if _ADDRESS in url:
        if not address:
            return False, -1, "the container has no address on its network yet"
        url = url.replace(_ADDRESS, address)
    data = json.dumps(check["body"]).encode() if check.get("body") is not None else None
    headers = {**({"Content-Type": "application/json"} if data else {}), **(check.get("headers") or {})}
    request = urllib.request.Request(url, data=data, headers=headers, method=check.get("method") or "GET")
    accepted = check.get("status") or [200]
    try:
        with _NO_PROXY.open(request, timeout=30 if data else 5) as response:
            status, body = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, body = exc.code, exc.read()
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return False, -1, f"no answer: {getattr(exc, 'reason', exc)}"
    if status not in accepted:
        answer = " ".join(body.decode("utf-8", "replace").split())[:300]
        return False, status, f"status {status}, want {accepted}" + (f": {answer}" if answer else "")
    wanted = check.get("models") or []
    if wanted:
        try:
            ids = {item.get("id") for item in json.loads(body).get("data", [])}
        except (ValueError, AttributeError):
            return False, status, "response is not an OpenAI model list"
        missing = sorted(set(wanted) - ids)
        if missing:
            return False, status, f"models missing: {', '.join(missing)} (listed: {', '.join(sorted(map(str, ids)))})"
    return True, status, "ok"


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
                ),
            ),
            timeout=dict(type="int", default=300),
            delay=dict(type="float", default=2),
            max_restarts=dict(type="int", default=3),
            journal_lines=dict(type="int", default=30),
            network=dict(type="str", default=""),
            docker=dict(type="path", default="/usr/bin/docker"),
        ),
        supports_check_mode=True,
    )
    p = module.params
    name = p["name"]
    start = time.monotonic()
    _, _, restarts0 = _unit_state(module, name)
    results = []
    while True:
        active, sub, restarts = _unit_state(module, name)
        elapsed = round(time.monotonic() - start, 1)
        if restarts - restarts0 >= p["max_restarts"] or active == "failed":
            module.fail_json(
                msg=f"{name}: not ready, the container keeps exiting (unit {active}/{sub}, "
                f"restarted {restarts - restarts0} times in {elapsed}s). Last log lines:\n"
                + _journal(module, name, p["journal_lines"]),
                elapsed=elapsed,
                checks=results,
            )
        results = []
        ready = True
        needs_address = any(_ADDRESS in c["url"] for c in p["checks"])
        address = _container_address(module, name, p["network"]) if needs_address else None
        for check in p["checks"]:
            ok, status, detail = _check(check, address)
            results.append({"url": check["url"], "status": status, "ok": ok, "detail": detail})
            if not ok:
                ready = False
                break
        if ready:
            module.exit_json(changed=False, elapsed=elapsed, checks=results)
        if elapsed >= p["timeout"]:
            failing = results[-1]
            module.fail_json(
                msg=f"{name}: not ready after {p['timeout']}s: {failing['url']}: {failing['detail']} "
                f"(unit {active}/{sub}). Last log lines:\n" + _journal(module, name, p["journal_lines"]),
                elapsed=elapsed,
                checks=results,
            )
        time.sleep(p["delay"])


if __name__ == "__main__":
    main()
