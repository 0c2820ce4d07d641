"""`solv-provision status`: one read-only call per host (playbooks/status.yml, module solv_status), judged
against what the inventory implies, shown as a table or as JSON (schema: docs/status-schema.json).

collect() runs the playbook and gathers each host's module result from ansible-runner's events; document()
turns results + inventory into the documented JSON (problems included); render() prints it for people.
"""

from __future__ import annotations

import json
import shlex
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from solv_provision import models, monitoring, multinode, paths, routing
from solv_provision.inventory import Inventory, has_unresolved
from solv_provision.services import GROUP_ROLES

SCHEMA_VERSION = 3
PLAYBOOK = "status.yml"
MODULE = "solv_status"
VLLM_PREFIX = "solv-vllm-"
GATEWAY_UNITS = tuple(f"solv-{role}" for role in GROUP_ROLES["gateway"])
LITELLM = "solv-litellm"

# Problem kinds (docs/status-schema.json lists the same).
KINDS = ("unreachable", "status_failed", "run_failed", "no_hosts", "missing", "not_active", "not_running",
         "restarted", "unhealthy", "no_gate", "gpu_error", "models_missing", "models_unknown", "model_not_staged",
         "alert_critical", "alert_warning")
# Named, but no reason for exit 1: a container systemd restarted and that is healthy now; an alert of severity
# warning.
WARNINGS = ("restarted", "alert_warning")


# --- collecting -------------------------------------------------------------------------------------------
@dataclass
class HostOutcome:
    """What one host answered: the module's report, or why there is none."""

    report: dict[str, Any] | None = None
    unreachable: bool = False
    error: str | None = None


@dataclass
class Collected:
    hosts: dict[str, HostOutcome]
    rc: int = 0
    error: str | None = None  # the play itself failed and no host answered (syntax, missing module, ...)


def collect(inventories: list[str], *, limit: str | None = None, vault_password_file: str | None = None,
            forks: int | None = None) -> Collected:
    """Run playbooks/status.yml quietly; artifacts go to a temporary folder that is removed (--watch repeats)."""
    import ansible_runner

    from solv_provision import runner

    args: list[str] = []
    if vault_password_file:
        args += ["--vault-password-file", str(Path(vault_password_file).expanduser().resolve())]
    if forks:
        args += ["--forks", str(forks)]
    hosts: dict[str, HostOutcome] = {}
    with tempfile.TemporaryDirectory(prefix="solv-status-") as private:
        r = ansible_runner.run(
            private_data_dir=private,
            playbook=str(paths.playbooks_dir() / PLAYBOOK),
            inventory=[str(Path(i).expanduser().resolve()) for i in inventories],
            limit=limit,
            cmdline=shlex.join(args) if args else None,
            envvars=runner.ansible_env(),
            quiet=True,
            event_handler=lambda event: handle_event(event, hosts),
            settings={"suppress_env_files": True},
        )
        error = None
        if r.rc != 0 and not hosts:
            error = f"ansible-playbook exited with {r.rc} ({r.status}): {runner.output_tail(r)}"
    return Collected(hosts=hosts, rc=r.rc, error=error)


def handle_event(event: Mapping[str, Any], hosts: dict[str, HostOutcome]) -> bool:
    """One ansible-runner event -> the host's outcome. Returns False: keep no event on disk."""
    from solv_provision.runner import result_message

    kind = event.get("event", "")
    data = event.get("event_data") or {}
    host, res = data.get("host"), data.get("res") or {}
    if not host:
        return False
    if kind == "runner_on_unreachable":
        hosts[host] = HostOutcome(unreachable=True, error=result_message(res))
    elif kind == "runner_on_failed" and not data.get("ignore_errors"):
        hosts[host] = HostOutcome(error=f"{data.get('task', '')}: {result_message(res)}")
    elif kind == "runner_on_ok" and str(data.get("task_action", "")).rsplit(".", 1)[-1] == MODULE:
        hosts[host] = HostOutcome(report=dict(res))
    return False


# --- what the inventory implies ---------------------------------------------------------------------------
def expected_units(inv: Inventory, host: str) -> list[str]:
    units: list[str] = []
    if host in inv.in_group("inference"):
        models = inv.hosts.get(host, {}).get("vllm_models") or []
        if isinstance(models, list):
            units += [f"{VLLM_PREFIX}{m['name']}" for m in models if isinstance(m, Mapping) and m.get("name")]
        units += [f"{VLLM_PREFIX}{m['name']}" for m in multinode.host_instances(
            host, [], inv.hosts, inv.ordered_groups, inv.group_names(host))]  # the models across hosts it follows
    if host in inv.in_group("gateway"):
        units += list(GATEWAY_UNITS)
    if host in inv.in_group("registry"):
        units.append("solv-registry")
    if host in inv.in_group(monitoring.MONITORED):
        units.append(monitoring.NODE_EXPORTER)
    if host in inv.in_group(monitoring.GPU_MONITORED):
        units.append(monitoring.DCGM_EXPORTER)
    if host in inv.in_group(monitoring.PROBING):
        units.append(monitoring.BLACKBOX_EXPORTER)
    if host in inv.in_group(monitoring.GROUP):
        units += [monitoring.ALERTMANAGER, monitoring.PROMETHEUS]
    if monitoring.runs_grafana(host, inv.ordered_groups, inv.hosts):
        units.append(monitoring.GRAFANA)
    return units


def expected_models(inv: Inventory, host: str) -> list[str] | None:
    """The model names LiteLLM on `host` should serve (as roles/litellm computes them); None when unknowable."""
    inference = {h: inv.hosts.get(h, {}) for h in inv.in_group("inference")}
    external = inv.hosts.get(host, {}).get("litellm_external_models") or []
    if has_unresolved(inference) or has_unresolved(external):
        return None
    try:
        model_list = routing.litellm_routing(inference, external)["model_list"]
    except (KeyError, TypeError, ValueError):
        return None
    return list(dict.fromkeys(str(m["model_name"]) for m in model_list))


# --- judging ----------------------------------------------------------------------------------------------
def _problem(host: str | None, unit: str | None, kind: str, message: str) -> dict[str, Any]:
    assert kind in KINDS, kind
    severity = "warning" if kind in WARNINGS else "problem"
    return {"host": host, "unit": unit, "kind": kind, "severity": severity, "message": message}


def _service(unit: str) -> tuple[str, str | None]:
    """solv-vllm-qwen -> (vllm, qwen); solv-litellm -> (litellm, None)."""
    if unit.startswith(VLLM_PREFIX):
        return "vllm", unit[len(VLLM_PREFIX):]
    return unit.removeprefix("solv-"), None


def _installed(u: Mapping[str, Any]) -> bool:
    return bool(u.get("unit_file") or u.get("load_state") not in ("not-found", "unknown", "", None)
                or (u.get("container") or {}).get("exists"))


def judge_service(host: str, u: Mapping[str, Any]) -> list[dict[str, Any]]:
    name = u["unit"]
    if not u["installed"]:
        return [_problem(host, name, "missing", "expected by the inventory, not installed (run apply)")] \
            if u["expected"] else []
    problems = []
    container = u["container"]
    if u["active_state"] != "active":
        problems.append(_problem(host, name, "not_active", f"unit {u['active_state']} ({u['sub_state']})"))
    elif not container["running"]:
        why = container.get("error") or ("container exists but is not running" if container["exists"]
                                         else "no container")
        problems.append(_problem(host, name, "not_running", f"unit active but {why}"))
    if u["restarts"] > 0:
        n = u["restarts"]
        problems.append(_problem(host, name, "restarted",
                                 f"restarted {n} time{'s' if n != 1 else ''} by systemd (crashed or killed) "
                                 "since it was last started"))
    health = u["health"]
    if health["ok"] is False:
        problems.append(_problem(host, name, "unhealthy", f"health check failed: {health['url']}: {health['detail']}"))
    elif health["ok"] is None and container["running"] and health["detail"] == "no health gate recorded":
        problems.append(_problem(host, name, "no_gate", "no health gate recorded on the host (run apply)"))
    return problems


def host_document(inv: Inventory, host: str, outcome: HostOutcome) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """One host's part of the document and its problems."""
    groups = [g for g in ("inference", "gateway") if host in inv.in_group(g)]
    doc: dict[str, Any] = {"host": host, "groups": groups, "reachable": not outcome.unreachable,
                           "error": outcome.error, "boot_id": None, "uptime_s": None, "services": [],
                           "gpus": None, "gpu_error": None, "gateway": None, "alerts": None, "staged_models": None}
    if outcome.unreachable:
        return doc, [_problem(host, None, "unreachable", f"unreachable: {outcome.error}")]
    if outcome.report is None:
        return doc, [_problem(host, None, "status_failed", f"status failed: {outcome.error or 'no answer'}")]
    rep = outcome.report
    doc.update(boot_id=rep.get("boot_id"), uptime_s=rep.get("uptime_s"), gpus=rep.get("gpus"),
               gpu_error=rep.get("gpu_error"))
    wanted = expected_units(inv, host)
    reported = {u["name"]: u for u in rep.get("units") or []}
    problems: list[dict[str, Any]] = []
    for name in sorted(set(wanted) | set(reported), key=lambda n: (n not in wanted, n)):
        service = _service_document(name, reported.get(name), expected=name in wanted)
        if service["installed"] or service["expected"]:
            doc["services"].append(service)
            problems += judge_service(host, service)
    if doc["gpu_error"]:
        problems.append(_problem(host, None, "gpu_error", f"nvidia-smi failed: {doc['gpu_error']}"))
    doc["staged_models"], found = _staged(inv, host, rep.get("staged_models") or [])
    problems += found
    if rep.get("alerts") is not None:
        doc["alerts"] = rep["alerts"]
        problems += judge_alerts(host, rep["alerts"])
    if host in inv.in_group("gateway"):
        doc["gateway"], found = _gateway(host, inv, rep.get("litellm"))
        problems += found
    return doc, problems


def _staged(inv: Inventory, host: str, reported: list[Mapping[str, Any]]):
    """The host's staged models, each marked expected when an instance of the inventory reads it, and a problem
    for each expected one that is not complete there."""
    wanted = set().union(*models.needed({host: inv.hosts[host]}).values()) if host in inv.in_group("inference") \
        else set()
    staged = [{**m, "expected": models.ModelRef(m["model"], m["revision"]) in wanted} for m in reported]
    complete = {models.ModelRef(m["model"], m["revision"]) for m in reported if m["complete"]}
    problems = [_problem(host, None, "model_not_staged", f"{ref} is not staged on the host: apply copies it from "
                                                         "the model store")
                for ref in sorted(wanted - complete)]
    return staged, problems


_EMPTY_CONTAINER = {"exists": False, "running": False, "image_ref": None, "image_id": None, "started_at": None,
                    "error": None}


def _service_document(name: str, u: Mapping[str, Any] | None, *, expected: bool) -> dict[str, Any]:
    u = u or {"load_state": "not-found", "active_state": "inactive", "sub_state": "dead", "restarts": 0}
    service, instance = _service(name)
    container = {k: (u.get("container") or {}).get(k, v) for k, v in _EMPTY_CONTAINER.items()}
    rollback = u.get("rollback") or {}
    health = u.get("health") or {"ok": None, "url": None, "detail": "not run"}
    return {
        "unit": name, "service": service, "instance": instance, "expected": expected, "installed": _installed(u),
        "load_state": u.get("load_state") or "", "active_state": u.get("active_state") or "",
        "sub_state": u.get("sub_state") or "", "uptime_s": u.get("uptime_s"), "restarts": int(u.get("restarts") or 0),
        "container": container,
        "rollback": {"present": bool(rollback.get("present")), "image_ref": rollback.get("image_ref"),
                     "saved_at": rollback.get("saved_at")},
        "health": {"ok": health.get("ok"), "url": health.get("url"), "detail": str(health.get("detail") or "")},
    }


def _gateway(host: str, inv: Inventory, litellm: Mapping[str, Any] | None):
    wanted = expected_models(inv, host)
    litellm = litellm or {}
    served = litellm.get("models")
    missing = sorted(set(wanted) - set(served)) if wanted is not None and served is not None else []
    doc = {"litellm_url": litellm.get("url"), "expected_models": wanted, "served_models": served,
           "missing_models": missing, "error": litellm.get("error")}
    problems = []
    if missing:
        problems.append(_problem(host, LITELLM, "models_missing",
                                 f"LiteLLM does not serve {len(missing)} model(s) the inventory expects: "
                                 f"{', '.join(missing)}"))
    elif served is None and wanted:
        why = litellm.get("error") or "no answer from solv-litellm"
        problems.append(_problem(host, LITELLM, "models_unknown", f"LiteLLM's model list is unavailable: {why}"))
    return doc, problems


def document(inv: Inventory, collected: Collected, now: datetime | None = None) -> dict[str, Any]:
    """The JSON document of docs/status-schema.json."""
    hosts, problems = [], []
    for host in sorted(collected.hosts):
        doc, found = host_document(inv, host, collected.hosts[host])
        hosts.append(doc)
        problems += found
    if collected.error:
        problems.append(_problem(None, None, "run_failed", collected.error))
    elif not hosts:
        problems.append(_problem(None, None, "no_hosts", "no inference or gateway host matched (check --limit)"))
    return {
        "schema_version": SCHEMA_VERSION,
        "generated_at": (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "ok": not any(p["severity"] == "problem" for p in problems),
        "hosts": hosts,
        "problems": problems,
    }


def exit_code(doc: Mapping[str, Any]) -> int:
    return 0 if doc["ok"] else 1


def judge_alerts(host: str, alerts: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Prometheus on `host` (the monitoring host): each firing alert, named on the host it is about."""
    if alerts.get("error"):
        return [_problem(host, monitoring.PROMETHEUS, "unhealthy", f"no alerts from Prometheus: {alerts['error']}")]
    found = []
    for a in alerts["firing"]:
        kind = "alert_warning" if a["severity"] == "warning" else "alert_critical"
        unit = f"{VLLM_PREFIX}{a['instance_name']}" if a["service"] == "vllm" and a["instance_name"] else \
            a["instance_name"] if a["service"] == "litellm" else None
        found.append(_problem(a["host"] or host, unit, kind, f"alert {a['name']} ({a['severity']}): {a['summary']}"))
    return found


# --- rendering --------------------------------------------------------------------------------------------
def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = int(seconds)
    for unit, size, sub, subsize in (("d", 86400, "h", 3600), ("h", 3600, "m", 60), ("m", 60, "s", 1)):
        if s >= size:
            return f"{s // size}{unit} {s % size // subsize}{sub}"
    return f"{s}s"


def _image(c: Mapping[str, Any]) -> str:
    if not c["exists"]:
        return "-"
    short = str(c.get("image_id") or "").removeprefix("sha256:")[:12]
    return f"{c.get('image_ref') or '?'}" + (f" ({short})" if short else "")


def _health(h: Mapping[str, Any]) -> str:
    if h["ok"] is True:
        return "[green]ok[/]"
    if h["ok"] is False:
        return "[red]FAIL[/]"
    return "[dim]-[/]"


def render(doc: Mapping[str, Any], console) -> None:
    """A table of every service, GPU and gateway lines, one line per problem, a verdict."""
    from rich.markup import escape
    from rich.table import Table

    table = Table(title_justify="left")
    for col in ("host", "service", "state", "image", "rollback", "health", "uptime", "restarts"):
        table.add_column(col, justify="right" if col in ("uptime", "restarts") else "left")
    for h in doc["hosts"]:
        if not h["reachable"] or h["error"]:
            table.add_row(escape(h["host"]), "-", "[red]unreachable[/]" if not h["reachable"] else "[red]error[/]",
                          "", "", "", "", "")
            continue
        for s in h["services"]:
            state = f"{s['active_state']}/{s['sub_state']}" if s["installed"] else "missing"
            good = s["active_state"] == "active" and s["container"]["running"]
            table.add_row(
                escape(h["host"]), escape(s["unit"]) + ("" if s["expected"] else " [dim](not in inventory)[/]"),
                f"[{'green' if good else 'red'}]{escape(state)}[/]", escape(_image(s["container"])),
                "yes" if s["rollback"]["present"] else "no", _health(s["health"]), duration(s["uptime_s"]),
                f"[red]{s['restarts']}[/]" if s["restarts"] else "0",
            )
    console.print(table)
    for h in doc["hosts"]:
        for g in h.get("gpus") or []:
            console.print(f"{escape(h['host'])} GPU{g['index']} {escape(str(g['name']))}, driver "
                          f"{escape(str(g['driver_version']))}: {g['memory_used_mib']}/{g['memory_total_mib']} MiB, "
                          f"{g['utilization_pct']}% busy", highlight=False)
        gw = h.get("gateway")
        if gw and gw["served_models"] is not None and gw["expected_models"] is not None:
            served = len(set(gw["expected_models"]) & set(gw["served_models"]))
            console.print(f"{escape(h['host'])} LiteLLM serves {served}/{len(gw['expected_models'])} expected "
                          f"model(s)" + (f" (+{len(gw['served_models']) - served} other)"
                                         if len(gw["served_models"]) > served else ""), highlight=False)
        if h.get("staged_models"):
            console.print(f"{escape(h['host'])} models staged: " + ", ".join(
                f"{escape(m['model'])}@{escape(m['revision'])} "
                + (f"{m['bytes'] / 2**30:.1f} GiB" if m["complete"] else "[red]incomplete[/]")
                + ("" if m["expected"] else " [dim](not in inventory)[/]") for m in h["staged_models"]),
                highlight=False)
        alerts = h.get("alerts")
        if alerts and not alerts["error"]:
            console.print(f"{escape(h['host'])} Prometheus: {len(alerts['firing'])} alert(s) firing, "
                          f"{alerts['pending']} pending", highlight=False)
    for p in doc["problems"]:
        where = ": ".join(x for x in (p["host"], p["unit"]) if x)
        label = "[bold red]PROBLEM[/]" if p["severity"] == "problem" else "[yellow]WARNING[/]"
        console.print(f"{label} {escape(where) + ': ' if where else ''}{escape(p['message'])}",
                      highlight=False, soft_wrap=True)
    services = sum(len(h["services"]) for h in doc["hosts"])
    if doc["ok"]:
        console.print(f"[green]OK[/]: {len(doc['hosts'])} host(s), {services} service(s) healthy")
    else:
        count = sum(p["severity"] == "problem" for p in doc["problems"])
        console.print(f"[bold red]{count} problem(s)[/] on {len(doc['hosts'])} host(s)")


# --- the verb ---------------------------------------------------------------------------------------------
def main(inv: Inventory, *, inventories: list[str], limit: str | None = None, vault_password_file: str | None = None,
         as_json: bool = False, watch: float | None = None) -> int:
    """One status (or, with watch, one every `watch` seconds until Ctrl-C); returns the last exit code."""
    from rich.console import Console

    console = Console()
    code = 1
    try:
        while True:
            doc = document(inv, collect(inventories, limit=limit, vault_password_file=vault_password_file))
            code = exit_code(doc)
            if as_json:  # one document; with --watch one per line (JSON Lines)
                print(json.dumps(doc, indent=None if watch else 2), flush=True)
            else:
                if watch and console.is_terminal:
                    console.clear()
                render(doc, console)
                if watch:
                    console.print(f"[dim]{doc['generated_at']}; every {watch:g}s, Ctrl-C to stop[/]")
            if not watch:
                return code
            time.sleep(watch)
    except KeyboardInterrupt:
        return code
