"""Pre-flight validation: every problem in an inventory, found offline, before any host is contacted.

Two layers: each SOLV variable against the roles' argument specs (Ansible's own validator), then the
cross-host rules no single role can see (ports, GPUs, replicas, fallbacks, typos).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from solv_provision import routing, specs
from solv_provision.inventory import Inventory, Unresolved, has_unresolved, is_solv_var


@dataclass(frozen=True)
class Problem:
    message: str
    host: str | None = None
    key: str | None = None
    file: Path | None = None

    def __str__(self) -> str:
        where = []
        if self.file:
            where.append(_relative(self.file))
        if self.host:
            where.append(f"host {self.host}")
        if self.key:
            where.append(self.key)
        return f"{': '.join(where)}: {self.message}" if where else self.message


def _relative(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def validate(inv: Inventory) -> list[Problem]:
    """All problems found, in a stable order (inventory-wide first, then per host)."""
    problems: list[Problem] = []
    for rule in (_groups, _spec_types, _unknown_variables, _vllm_instances, _host_ports, _replicas, _gateway_models):
        problems.extend(rule(inv))
    return [_with_file(inv, p) for p in problems]


def _with_file(inv: Inventory, p: Problem) -> Problem:
    if p.file or not p.host or not p.key:
        return p
    top_key = re.split(r"[\[.]", p.key, maxsplit=1)[0]
    return Problem(p.message, p.host, p.key, inv.provenance(p.host, top_key))


def _value(inv: Inventory, host: str, key: str) -> Any:
    """The host's value for `key`, else the role default; Unresolved values count as the default."""
    value = inv.hosts[host].get(key)
    if value is None or isinstance(value, Unresolved):
        return specs.default(key)
    return value


# --- groups ------------------------------------------------------------------------------------------------


def _groups(inv: Inventory) -> Iterator[Problem]:
    if not inv.in_group("gateway"):
        yield Problem(
            f"{_relative(inv.sources[0])}: no host in group 'gateway': LiteLLM, SearXNG and Open WebUI need one "
            "(a host may be in both 'inference' and 'gateway')"
        )
    for host in inv.in_group("inference"):
        models = inv.hosts[host].get("vllm_models")
        if not models and not isinstance(models, Unresolved):
            yield Problem(
                "host is in group 'inference' but has no vllm_models: give it at least one model instance, "
                "or take it out of 'inference'",
                host,
                "vllm_models",
            )


# --- argument specs ----------------------------------------------------------------------------------------


def _spec_types(inv: Inventory) -> Iterator[Problem]:
    from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

    options = specs.all_options()
    for host, hostvars in inv.hosts.items():
        for key, value in hostvars.items():
            if key not in options or has_unresolved(value):
                continue
            spec = _clean_spec(options[key][1])
            for msg in _errors(ArgumentSpecValidator({key: _shallow(spec)}), {key: value}):
                yield Problem(msg, host, key)
            if spec.get("type") == "list" and spec.get("elements") == "dict" and spec.get("options"):
                if not isinstance(value, list):
                    continue
                element_validator = ArgumentSpecValidator(spec["options"])
                for i, item in enumerate(value):
                    if not isinstance(item, dict):
                        continue
                    label = f"{key}[{i}]" + (f" ({item['name']})" if isinstance(item.get("name"), str) else "")
                    for msg in _errors(element_validator, item):
                        yield Problem(msg, host, label)


def _clean_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """An argument_specs.yml entry without documentation keys, recursively."""
    keep = {k: v for k, v in spec.items() if k not in ("description", "version_added", "default")}
    if isinstance(keep.get("options"), dict):
        keep["options"] = {k: _clean_spec(v) for k, v in keep["options"].items()}
    return keep


def _shallow(spec: dict[str, Any]) -> dict[str, Any]:
    """A list-of-dicts spec without its sub-options: elements are checked one by one for better messages."""
    if spec.get("type") == "list" and spec.get("elements") == "dict":
        return {k: v for k, v in spec.items() if k != "options"}
    return spec


def _errors(validator, params: dict[str, Any]) -> list[str]:
    from ansible.module_utils.errors import UnsupportedError

    result = validator.validate(params)
    return [f"unknown key {e}" if isinstance(e, UnsupportedError) else _tidy(str(e)) for e in result.errors]


_TYPE_ERROR = re.compile(r"argument '(?P<arg>[^']+)' is of type (?P<got>\w+) and we were unable to convert to (?P<want>\w+).*")
_TYPE_WORDS = {"dict": "a mapping", "list": "a list", "str": "a string", "int": "an integer", "float": "a number",
               "bool": "true/false", "NoneType": "nothing"}


def _tidy(msg: str) -> str:
    m = _TYPE_ERROR.match(msg)
    if m:
        got, want = (_TYPE_WORDS.get(m[k], m[k]) for k in ("got", "want"))
        return f"{m['arg']} must be {want}, got {got}"
    return msg.replace("found in ", "in ").strip()


# --- typos -------------------------------------------------------------------------------------------------


def _unknown_variables(inv: Inventory) -> Iterator[Problem]:
    known = list(specs.all_options())
    reported: set[tuple[Path | None, str]] = set()
    for host, hostvars in inv.hosts.items():
        for key in hostvars:
            if not is_solv_var(key) or key in known or key.startswith("__"):
                continue
            where = inv.provenance(host, key)
            if (where, key) in reported and where is not None:
                continue  # one report per file that sets it, not one per host reading a group file
            reported.add((where, key))
            close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
            hint = f"; did you mean '{close[0]}'?" if close else "; see the inventory reference in README.md"
            yield Problem(f"unknown variable{hint}", host, key, where)


# --- vLLM instances on each host ---------------------------------------------------------------------------


def _models(inv: Inventory, host: str) -> list[dict[str, Any]]:
    """The host's vllm_models with defaults applied; [] when malformed (the spec check reports that)."""
    raw = inv.hosts[host].get("vllm_models")
    if not isinstance(raw, list) or not all(isinstance(m, dict) and {"name", "model", "port"} <= set(m) for m in raw):
        return []
    try:
        models = [routing.model_defaults(m) for m in raw]
        for m in models:
            m["port"] = int(m["port"])
            m["gpus"] = [int(g) for g in m["gpus"]]
            m["tensor_parallel_size"] = int(m["tensor_parallel_size"])
        return models
    except (TypeError, ValueError):
        return []


def _vllm_instances(inv: Inventory) -> Iterator[Problem]:
    for host in inv.hosts:
        gpu_mode = _value(inv, host, "vllm_gpu_mode") or "auto"
        for label, message in vllm_host_problems(_models(inv, host), gpu_mode):
            yield Problem(message, host, label)


def vllm_host_problems(models: list[dict[str, Any]], gpu_mode: str = "auto") -> list[tuple[str, str]]:
    """(label, message) for what is wrong with one host's vllm_models (defaults applied, types checked).

    The one implementation of the per-host instance rules: the CLI validator calls it for every host, and
    the vllm role's preflight calls it through the `vllm_host_problems` filter (plain ansible-playbook).
    """
    problems: list[tuple[str, str]] = []
    names: dict[str, int] = {}
    gpu_users: dict[int, list[dict[str, Any]]] = {}
    for i, m in enumerate(models):
        label = f"vllm_models[{i}] ({m['name']})"
        if m["name"] in names:
            problems.append((label, f"instance name '{m['name']}' is already used by vllm_models[{names[m['name']]}]; "
                                    "names must be unique on a host (they name the systemd unit)"))
        names.setdefault(m["name"], i)
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", str(m["name"])):
            problems.append((label, "name may hold only letters, digits, '.', '_' and '-' (it names a systemd unit)"))
        if not 1 <= int(m["port"]) <= 65535:
            problems.append((label, f"port {m['port']} is not in 1-65535"))
        util = m.get("gpu_memory_utilization")
        if util is not None and not 0 < float(util) <= 1:
            problems.append((label, f"gpu_memory_utilization {util} must be in (0, 1]"))
        gpus = m["gpus"]
        if any(int(g) < 0 for g in gpus):
            problems.append((label, f"gpus {gpus}: GPU indices are 0 or more"))
        if len(set(gpus)) != len(gpus):
            problems.append((label, f"gpus {gpus} names a GPU twice"))
        if not gpus and gpu_mode != "none":
            problems.append((label, "gpus is empty: list the GPU indices this instance uses "
                                    "(or set vllm_gpu_mode: none on a host without GPUs)"))
        tp, pp = int(m["tensor_parallel_size"]), int(m["pipeline_parallel_size"])
        if gpus and tp * pp != len(gpus):
            problems.append((label, f"tensor_parallel_size {tp} x pipeline_parallel_size {pp} = {tp * pp}, "
                                    f"but {len(gpus)} GPU(s) are given ({gpus}); they must match"))
        for g in set(gpus):
            gpu_users.setdefault(int(g), []).append({"index": i, **m})
    for gpu, users in sorted(gpu_users.items()):
        if len(users) < 2:
            continue
        utils = [u.get("gpu_memory_utilization") for u in users]
        if all(u is not None for u in utils) and sum(float(u) for u in utils) < 1:
            continue
        owners = ", ".join(f"vllm_models[{u['index']}] ({u['name']})" for u in users)
        problems.append((f"vllm_models[{users[-1]['index']}] ({users[-1]['name']})",
                         f"GPU {gpu} is given to {owners}; give each GPU to one instance, or set "
                         "gpu_memory_utilization on each sharer so that they sum below 1"))
    return problems


# --- ports on each host ------------------------------------------------------------------------------------

# Published host ports of the gateway services: (port variable, enabled-when variable or None).
_GATEWAY_PORTS = (("litellm_port", None), ("openwebui_port", None), ("searxng_port", "searxng_publish"))


def _host_ports(inv: Inventory) -> Iterator[Problem]:
    gateway = set(inv.in_group("gateway"))
    for host in inv.hosts:
        used: dict[int, str] = {}
        claims: list[tuple[int, str]] = []
        for i, m in enumerate(_models(inv, host)):
            claims.append((int(m["port"]), f"vllm_models[{i}] ({m['name']})"))
        if host in gateway:
            for var, enabled in _GATEWAY_PORTS:
                port = _value(inv, host, var)
                if port is not None and (enabled is None or _value(inv, host, enabled)):
                    claims.append((int(port), var))
        for port, owner in claims:
            if port in used:
                yield Problem(f"port {port} is already used by {used[port]} on this host", host, owner)
            else:
                used[port] = owner


# --- replicas across hosts ---------------------------------------------------------------------------------


def _replicas(inv: Inventory) -> Iterator[Problem]:
    hosts = {h: {**inv.hosts[h], "vllm_models": _models(inv, h)} for h in inv.in_group("inference")}
    for served, replicas in routing.model_groups(routing.vllm_instances(hosts)).items():
        first = replicas[0]
        for other in replicas[1:]:
            for key in routing.REPLICA_KEYS:
                if first.settings.get(key) != other.settings.get(key):
                    yield Problem(
                        f"replicas of '{served}' disagree on {key}: {first.settings.get(key)!r} on "
                        f"{first.host} ({first.name}) vs {other.settings.get(key)!r} here; one served name must "
                        "answer the same everywhere",
                        other.host,
                        f"vllm_models ({other.name})",
                    )


# --- what the gateway routes -------------------------------------------------------------------------------


def _gateway_models(inv: Inventory) -> Iterator[Problem]:
    local = {i.served_model_name for h in inv.in_group("inference") for i in _instances_of(inv, h)}
    for host in inv.in_group("gateway"):
        externals = _value(inv, host, "litellm_external_models") or []
        if not isinstance(externals, list):
            continue
        provider_env = inv.hosts[host].get("litellm_provider_env")
        provider_env = None if isinstance(provider_env, Unresolved) else (provider_env or {})
        names = set(local)
        for i, ext in enumerate(externals):
            if not isinstance(ext, dict) or not isinstance(ext.get("litellm_params"), dict):
                continue
            names.add(ext.get("model_name"))
            for pkey, pval in ext["litellm_params"].items():
                if pkey in ("api_key", "aws_secret_access_key", "vertex_credentials") and isinstance(pval, str):
                    if not pval.startswith("os.environ/"):
                        yield Problem(f"litellm_params.{pkey} is written in plain text into config.yaml; give "
                                      "'os.environ/NAME' and put the value (from vault) in litellm_provider_env",
                                      host, f"litellm_external_models[{i}] ({ext.get('model_name')})")
                    elif provider_env is not None and pval.split("/", 1)[1] not in provider_env:
                        yield Problem(f"litellm_params.{pkey} reads {pval} but litellm_provider_env has no "
                                      f"{pval.split('/', 1)[1]}", host,
                                      f"litellm_external_models[{i}] ({ext.get('model_name')})")
        malformed = any(inv.hosts[h].get("vllm_models") and not _models(inv, h) for h in inv.in_group("inference"))
        if not names and not malformed:
            yield Problem("LiteLLM would serve no model: no vllm_models on any 'inference' host and no "
                          "litellm_external_models", host, "litellm_external_models")
        fallbacks = _value(inv, host, "litellm_fallbacks") or {}
        if isinstance(fallbacks, dict):
            for model, targets in sorted(fallbacks.items()):
                for name in [model, *(targets if isinstance(targets, list) else [])]:
                    if name not in names:
                        allowed = ", ".join(sorted(n for n in names if n)) or "none"
                        yield Problem(f"'{name}' is not a model LiteLLM serves (known: {allowed})",
                                      host, f"litellm_fallbacks.{model}")


def _instances_of(inv: Inventory, host: str) -> list[routing.VllmInstance]:
    return routing.vllm_instances({host: {**inv.hosts[host], "vllm_models": _models(inv, host)}})
