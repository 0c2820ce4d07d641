#!/usr/bin/python
# -*- coding: utf-8 -*-
# Apache-2.0
"""Read-only status of every SOLV container on one host, in one call: units, containers, health, GPUs."""

from __future__ import annotations

DOCUMENTATION = r"""
module: solv_status
short_description: What runs on a SOLV host and whether it is healthy (read-only, one call per host)
description:
  - Finds the SOLV units (C(<systemd_dir>/solv-*.service)) and the recorded health gates
    (C(<root_dir>/gates/*.json)); reports per unit its systemd state, automatic restarts, uptime, its
    container (image reference and id, start time), whether a rollback generation exists, and the result of
    running its health gate once (short timeouts).
  - Reports the GPUs from C(nvidia-smi) where it exists, LiteLLM's model list on a gateway host, and the alerts
    Prometheus has (firing and pending) on the monitoring host (C(solv-prometheus)'s C(/api/v1/alerts)).
  - Changes nothing (check mode safe). Header values and API keys from gates and key files never appear in
    the result.
options:
  root_dir:
    description: solv_root_dir (gates, rollback generations, secrets).
    type: path
    default: /opt/solv
  systemd_dir:
    description: Where the unit files are.
    type: path
    default: /etc/systemd/system
  docker:
    description: Docker CLI.
    type: path
    default: /usr/bin/docker
  units:
    description: Unit names (without C(.service)) to report even when nothing of them exists on the host.
    type: list
    elements: str
    default: []
  timeout:
    description: Seconds per GET check of a health gate.
    type: float
    default: 5
  post_timeout:
    description: Seconds per POST check (a one-token completion).
    type: float
    default: 15
  litellm:
    description:
      - "C({url, key_file}): fetch LiteLLM's C(/v1/models) from C(url) with the key read from C(key_file) on the
        host. Without it, the C(/v1/models) check of the C(solv-litellm) gate is used (URL and key as deployed)."
    type: dict
author: SOLV platform team
"""

RETURN = r"""
boot_id:
  description: The kernel's boot id.
  type: str
uptime_s:
  description: Seconds since boot.
  type: float
units:
  description:
    - "Per unit: {name, unit_file, load_state, active_state, sub_state, restarts, uptime_s,
      container: {exists, running, image_ref, image_id, started_at, restart_count, network, error},
      rollback: {present, image_ref, image_id, saved_at}, health: {ok (null: not run), url, detail}}."
  type: list
gpus:
  description: "[{index, name, driver_version, memory_used_mib, memory_total_mib, utilization_pct}]; null without nvidia-smi."
  type: list
gpu_error:
  description: Why nvidia-smi gave no answer (null when it did or does not exist).
  type: str
litellm:
  description: "{url, models (null when unknown), error}; null on a host without LiteLLM."
  type: dict
alerts:
  description:
    - "{url, firing: [{name, severity, host, service, instance_name, model, summary, active_at}], pending (how
      many wait for their C(for)), error}; null on a host without Prometheus."
  type: dict
"""

import glob
import json
import os
import re
import time
from concurrent.futures import ThreadPoolExecutor

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.solv_gate import (address_on, check, is_model_list, model_ids, read_gate, redact,
                                            run_gate, safe_url, secrets_of)

_UNIT_PROPS = "Id,LoadState,ActiveState,SubState,NRestarts,ActiveEnterTimestampMonotonic"
LITELLM = "solv-litellm"
PROMETHEUS = "solv-prometheus"
# What the status of an alert shows of its labels.
ALERT_LABELS = ("host", "service", "instance_name", "model")


# --- what is on the host ------------------------------------------------------------------------------------
def discover(root_dir, systemd_dir, extra=()):
    """Unit names: unit files solv-*.service, recorded gates, and the names asked for; sorted."""
    names = {os.path.basename(p)[: -len(".service")] for p in glob.glob(os.path.join(systemd_dir, "solv-*.service"))}
    names |= {os.path.basename(p)[: -len(".json")] for p in glob.glob(os.path.join(root_dir, "gates", "*.json"))}
    return sorted(names | set(extra))


def unit_states(run, names):
    """One `systemctl show` for every unit: name -> {load_state, active_state, sub_state, restarts, uptime_s}."""
    states = {n: {"load_state": "unknown", "active_state": "unknown", "sub_state": "unknown", "restarts": 0,
                  "uptime_s": None} for n in names}
    if not names:
        return states
    rc, out, err = run(["systemctl", "show", *[f"{n}.service" for n in names], f"--property={_UNIT_PROPS}"])
    if rc != 0:
        for s in states.values():
            s["error"] = f"systemctl show: {(err or out).strip()}"
        return states
    now = time.monotonic()  # CLOCK_MONOTONIC, the clock of systemd's *TimestampMonotonic
    for block in re.split(r"\n\s*\n", out.strip()):
        values = dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
        name = values.get("Id", "")[: -len(".service")] if values.get("Id", "").endswith(".service") else None
        if name not in states:
            continue
        entered = int(values.get("ActiveEnterTimestampMonotonic") or 0)
        active = values.get("ActiveState", "")
        states[name] = {
            "load_state": values.get("LoadState", ""),
            "active_state": active,
            "sub_state": values.get("SubState", ""),
            "restarts": int(values.get("NRestarts") or 0),
            "uptime_s": round(now - entered / 1e6, 1) if active == "active" and entered else None,
        }
    return states


def containers(run, docker, names):
    """One `docker container inspect` for every name: name -> container facts (exists false when absent)."""
    found = {n: {"exists": False, "running": False, "image_ref": None, "image_id": None, "started_at": None,
                 "restart_count": 0, "network": None, "address": None, "error": None} for n in names}
    if not names:
        return found
    if not os.access(docker, os.X_OK):
        for c in found.values():
            c["error"] = f"{docker} not found"
        return found
    rc, out, err = run([docker, "container", "inspect", *names])
    try:
        inspected = json.loads(out) if out.strip() else []
    except ValueError:
        inspected = []
    if rc != 0 and not inspected and "No such" not in err:
        for c in found.values():
            c["error"] = f"docker container inspect: {(err or out).strip()[:300]}"
        return found
    for item in inspected:
        name = str(item.get("Name", "")).lstrip("/")
        if name not in found:
            continue
        state = item.get("State") or {}
        labels = (item.get("Config") or {}).get("Labels") or {}
        networks = (item.get("NetworkSettings") or {}).get("Networks") or {}
        network = "solv" if "solv" in networks else next(iter(networks), None)
        found[name].update({
            "exists": True,
            "running": bool(state.get("Running")),
            "image_ref": labels.get("solv.image") or (item.get("Config") or {}).get("Image"),
            "image_id": item.get("Image"),
            "started_at": state.get("StartedAt"),
            "restart_count": int(item.get("RestartCount") or 0),
            "network": network,
            "_networks": networks,
        })
    return found


def rollback(root_dir, name):
    try:
        with open(os.path.join(root_dir, "rollback", name, "state.json"), encoding="utf-8") as f:
            state = json.load(f)
    except (OSError, ValueError):
        return {"present": False, "image_ref": None, "image_id": None, "saved_at": None}
    return {"present": True, "image_ref": state.get("image_ref") or None, "image_id": state.get("image_id") or None,
            "saved_at": state.get("saved_at")}


# --- GPUs ----------------------------------------------------------------------------------------------------
NVIDIA_QUERY = "index,name,driver_version,memory.used,memory.total,utilization.gpu"


def gpus(run, nvidia_smi):
    """(gpus, error): gpus None when nvidia-smi does not exist."""
    if not nvidia_smi:
        return None, None
    rc, out, err = run([nvidia_smi, f"--query-gpu={NVIDIA_QUERY}", "--format=csv,noheader,nounits"])
    if rc != 0:
        return [], " ".join((err or out).split())[:300] or f"nvidia-smi exited with {rc}"
    found = []
    for line in out.splitlines():
        fields = [f.strip() for f in line.split(",")]
        if len(fields) != 6:
            continue
        found.append({"index": _int(fields[0]), "name": fields[1], "driver_version": fields[2],
                      "memory_used_mib": _int(fields[3]), "memory_total_mib": _int(fields[4]),
                      "utilization_pct": _int(fields[5])})
    return found, None


def _int(value):
    try:
        return int(float(value))
    except ValueError:  # "[N/A]", "[Not Supported]"
        return None


# --- the host ------------------------------------------------------------------------------------------------
def _read(path):
    try:
        with open(path, encoding="utf-8") as f:
            return f.read().strip()
    except OSError:
        return None


def staged_models(root_dir):
    """The model directories under <root>/data/vllm/models (vllm_model_store): complete ones have their manifest
    (solv_provision.models), the others were cut short."""
    out = []
    for path in sorted(glob.glob(os.path.join(root_dir, "data", "vllm", "models", "*", "*"))):
        if not os.path.isdir(path):
            continue
        repo_dir, revision = path.split(os.sep)[-2:]
        try:
            with open(os.path.join(path, ".solv-manifest.json")) as f:
                manifest = json.load(f)
            out.append({"model": manifest["model"], "revision": manifest["revision"], "complete": True,
                        "bytes": sum(int(x["size"]) for x in manifest["files"].values())})
        except (OSError, ValueError, KeyError, TypeError):
            out.append({"model": repo_dir.replace("--", "/", 1), "revision": revision, "complete": False,
                        "bytes": None})
    return out


def host_uptime():
    text = _read("/proc/uptime")
    return round(float(text.split()[0]), 1) if text else None


def status(run, p, nvidia_smi=None):
    """The whole report and the secrets that must not leave the host."""
    names = discover(p["root_dir"], p["systemd_dir"], p.get("units") or [])
    states = unit_states(run, names)
    found = containers(run, p["docker"], names)
    gates = {n: read_gate(p["root_dir"], n) for n in names}
    secrets = set().union(*(secrets_of(g) for g in gates.values()))

    def health(name):
        gate, container = gates[name], found[name]
        if gate is None:
            return {"ok": None, "url": None, "detail": "no health gate recorded"}, {}
        if not container["running"]:
            return {"ok": None, "url": None, "detail": "not run: the container is not running"}, {}
        network = gate.get("network") or container["network"]
        results, models = run_gate(gate["checks"], address_on(container.get("_networks"), network), p["timeout"],
                                   p["post_timeout"])
        failed = next((r for r in results if not r["ok"]), None)
        if failed:
            return {"ok": False, "url": safe_url(failed["url"]), "detail": failed["detail"]}, models
        return {"ok": True, "url": None, "detail": "ok"}, models

    with ThreadPoolExecutor(max_workers=8) as pool:
        healths = dict(zip(names, pool.map(health, names)))

    units = []
    for name in names:
        container = {k: v for k, v in found[name].items() if not k.startswith("_") and k != "address"}
        unit_file = os.path.isfile(os.path.join(p["systemd_dir"], f"{name}.service"))
        units.append({"name": name, "unit_file": unit_file, **states[name], "container": container,
                      "rollback": rollback(p["root_dir"], name), "health": healths[name][0]})

    litellm = None
    if p.get("litellm") or LITELLM in names:
        litellm = litellm_models(p.get("litellm"), gates.get(LITELLM), healths.get(LITELLM, (None, {}))[1],
                                 p["timeout"], secrets)
    alerts = None
    if PROMETHEUS in names:
        alerts = prometheus_alerts(gates.get(PROMETHEUS), found[PROMETHEUS], p["timeout"])
    gpu_list, gpu_error = gpus(run, nvidia_smi)
    report = {"boot_id": _read("/proc/sys/kernel/random/boot_id"), "uptime_s": host_uptime(), "units": units,
              "gpus": gpu_list, "gpu_error": gpu_error, "litellm": litellm, "alerts": alerts,
              "staged_models": staged_models(p["root_dir"])}
    return report, secrets


def prometheus_alerts(gate, container, timeout):
    """Prometheus's /api/v1/alerts, on the address its health gate checks -> {url, firing, pending, error}; None
    while its container is not running."""
    ready = next((c["url"] for c in (gate or {}).get("checks", []) if c["url"].endswith("/-/ready")), None)
    if ready is None:
        return {"url": None, "firing": [], "pending": 0, "error": "no /-/ready check in the solv-prometheus gate"}
    url = ready[: -len("/-/ready")] + "/api/v1/alerts"
    if not container["running"]:
        return None  # its unit's state says why
    address = address_on(container.get("_networks"), (gate or {}).get("network") or container["network"])
    ok, _, detail, body = check({"url": url, "models": []}, address, timeout)
    try:
        alerts = json.loads(body)["data"]["alerts"] if ok else None
    except (ValueError, KeyError, TypeError):
        alerts, detail = None, "response is not Prometheus's alert list"
    if alerts is None:
        return {"url": url, "firing": [], "pending": 0, "error": detail}
    firing = [{"name": a["labels"].get("alertname", ""), "severity": a["labels"].get("severity", ""),
               **{k: a["labels"].get(k) for k in ALERT_LABELS},
               "summary": (a.get("annotations") or {}).get("summary", ""), "active_at": a.get("activeAt")}
              for a in alerts if a.get("state") == "firing"]
    pending = sum(1 for a in alerts if a.get("state") == "pending")
    return {"url": url, "firing": sorted(firing, key=lambda a: (a["name"], str(a["host"]))), "pending": pending,
            "error": None}


def litellm_models(param, gate, seen, timeout, secrets):
    """LiteLLM's /v1/models: from the explicit URL and key file, else from the gate (already fetched or fetched now).

    Adds the key read to `secrets` (redacted from everything returned)."""
    if param and param.get("url"):
        url, headers = param["url"], {}
        key = _read(param["key_file"]) if param.get("key_file") else None
        if key:
            secrets.update({key, f"Bearer {key}"})
            headers["Authorization"] = f"Bearer {key}"
        probe = {"url": url, "headers": headers}
    else:
        probe = next((c for c in (gate or {}).get("checks", []) if is_model_list(c["url"])), None)
        if probe is None:
            return {"url": None, "models": None, "error": "no /v1/models check in the solv-litellm gate"}
        if probe["url"] in seen:
            return {"url": safe_url(probe["url"]), "models": seen[probe["url"]], "error": None}
        probe = {"url": probe["url"], "headers": probe.get("headers") or {}}
    ok, _, detail, body = check({**probe, "models": []}, None, timeout)
    ids = model_ids(body) if ok else None
    error = None if ids is not None else (detail if not ok else "response is not an OpenAI model list")
    return {"url": safe_url(probe["url"]), "models": ids, "error": error}


def main():
    module = AnsibleModule(
        argument_spec=dict(
            root_dir=dict(type="path", default="/opt/solv"),
            systemd_dir=dict(type="path", default="/etc/systemd/system"),
            docker=dict(type="path", default="/usr/bin/docker"),
            units=dict(type="list", elements="str", default=[]),
            timeout=dict(type="float", default=5),
            post_timeout=dict(type="float", default=15),
            litellm=dict(type="dict", options=dict(url=dict(type="str", required=True),
                                                   key_file=dict(type="path", no_log=False))),
        ),
        supports_check_mode=True,
    )
    report, secrets = status(module.run_command, module.params, module.get_bin_path("nvidia-smi"))
    module.no_log_values.update(secrets)  # belt and braces: Ansible masks these wherever they appear
    module.exit_json(changed=False, **redact(report, secrets))


if __name__ == "__main__":
    main()
