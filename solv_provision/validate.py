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

from solv_provision import addresses, gateway, monitoring, multinode, routing, rules, spec_check, specs
from solv_provision import models as staged_models
from solv_provision.inventory import Inventory, Unresolved, has_unresolved, is_solv_var
from solv_provision.services import GROUP_ROLES


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


def validate(inv: Inventory, *, store_checked: bool = True) -> list[Problem]:
    """All problems found, in a stable order (inventory-wide first, then per host). store_checked=False leaves out
    whether the model store holds the staged models (`models fetch`, which fills it)."""
    type_problems = list(_spec_types(inv))
    mistyped = {(p.host, _top_key(p.key)) for p in type_problems if p.key}
    problems = [*_groups(inv), *_unresolvable(inv), *type_problems, *_unknown_variables(inv),
                *_role_rules(inv, mistyped, store_checked), *_host_ports(inv, mistyped), *_replicas(inv),
                *_monitoring(inv)]
    return [_with_file(inv, p) for p in problems]


def _top_key(key: str) -> str:
    return re.split(r"[\[.]", key, maxsplit=1)[0]


def _with_file(inv: Inventory, p: Problem) -> Problem:
    if p.file or not p.host or not p.key:
        return p
    return Problem(p.message, p.host, p.key, inv.provenance(p.host, _top_key(p.key)))


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
    registry_hosts = inv.in_group("registry")
    for host in registry_hosts[1:]:
        yield Problem(f"group 'registry' may have one host, it has {len(registry_hosts)} "
                      f"({', '.join(registry_hosts)}): every host pulls from the one registry", host)
    if registry_hosts:
        for host in inv.hosts:
            if _value(inv, host, "solv_image_archive_shared") is True:
                yield Problem(f"is true while group 'registry' has a host ({registry_hosts[0]}): the registry brings "
                              "the image archives to the hosts, a shared path needs none; keep one of the two",
                              host, "solv_image_archive_shared")
    for host in inv.in_group("inference"):
        models = inv.hosts[host].get("vllm_models")
        if not models and not isinstance(models, Unresolved):
            yield Problem(
                "host is in group 'inference' but has no vllm_models: give it at least one model instance, "
                "or take it out of 'inference'",
                host,
                "vllm_models",
            )


# --- lookups -----------------------------------------------------------------------------------------------


def _unresolvable(inv: Inventory) -> Iterator[Problem]:
    """Values a lookup could not compute (a file or environment the inventory reads is missing): the run would
    fail on them too, inside tasks that hide their values. Templates over role defaults and values in a locked
    vault are unknown offline by design and not reported."""
    reported: set[tuple[Path | None, str]] = set()
    for host, hostvars in inv.hosts.items():
        for key, value in hostvars.items():
            reason = next(_lookup_failures(value), None)
            if reason is None:
                continue
            where = inv.provenance(host, key)
            if (where, key) in reported and where is not None:
                continue
            reported.add((where, key))
            yield Problem(f"cannot be resolved: {reason.replace(' Use -vvvvv to see paths searched.', '')}", host,
                          key, where)


def _lookup_failures(value: Any) -> Iterator[str]:
    if isinstance(value, Unresolved) and "lookup plugin" in value.reason:
        yield value.reason
    elif isinstance(value, dict):
        for v in value.values():
            yield from _lookup_failures(v)
    elif isinstance(value, list):
        for v in value:
            yield from _lookup_failures(v)


# --- argument specs ----------------------------------------------------------------------------------------


def _spec_types(inv: Inventory) -> Iterator[Problem]:
    checker = spec_check.checker()
    for host, hostvars in inv.hosts.items():
        for key, value in hostvars.items():
            if key in checker.options and not has_unresolved(value):
                for label, msg in checker.problems(key, value):
                    yield Problem(msg, host, label)


# --- typos -------------------------------------------------------------------------------------------------


# Names the roles used before they took one shape: an inventory that still sets one is pointed to the new name.
RENAMED = {
    "vllm_env": "vllm_extra_env",
    "vllm_docker_args": "vllm_extra_docker_args",
    "litellm_env": "litellm_extra_env",
    "litellm_docker_args": "litellm_extra_docker_args",
    "searxng_ready_timeout": "searxng_start_timeout",
    "openwebui_ready_timeout": "openwebui_start_timeout",
    # Open WebUI now reads LiteLLM's master key where the litellm role keeps it (solv_provision.secrets).
    "openwebui_litellm_host": "openwebui_openai_api_key",
}


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
            close = [RENAMED[key]] if key in RENAMED else difflib.get_close_matches(key, known, n=1, cutoff=0.6)
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
            m["pipeline_parallel_size"] = int(m["pipeline_parallel_size"])
            for key in routing.LIMIT_KEYS:
                if m.get(key) is not None:
                    m[key] = int(m[key])
        return models
    except (TypeError, ValueError):
        return []


def _role_rules(inv: Inventory, mistyped: set[tuple[str | None, str]], store_checked: bool) -> Iterator[Problem]:
    """Each service role's own rules (solv_provision.rules), with the values the role will see.

    A value of the wrong type (reported by the spec check) counts as the default here, so one mistake
    gives one message."""
    instances = [i for h in inv.in_group("inference") for i in _instances_of(inv, h)]
    served = {i.served_model_name for i in instances}
    embedding = routing.embedding_names(instances)
    malformed = any(inv.hosts[h].get("vllm_models") and not _models(inv, h) for h in inv.in_group("inference"))
    gateways = _gateways(inv, mistyped)
    for host in inv.hosts:
        own_address = addresses.host_address(inv.hosts[host], host)
        services = rules.roles_of(g for g in GROUP_ROLES if host in inv.in_group(g))
        # The site-wide settings (solv_common) on every host that runs a service.
        for role in ["solv_common", *services] if services else []:
            values = {key: specs.default(key) if (host, key) in mistyped else _value(inv, host, key)
                      for key in specs.role_specs()[role].options}
            provider_env = inv.hosts[host].get("litellm_provider_env")
            models = [] if (host, "vllm_models") in mistyped else _models(inv, host)
            context = {"own_address": own_address, "models": models, "served_models": served, "embedding_models": embedding,
                       "models_malformed": malformed, "provider_env_known": not isinstance(provider_env, Unresolved),
                       "redis": _redis_plan(inv, host, gateways, mistyped), "store_checked": store_checked,
                       "model_store": staged_models.host_store(inv.hosts[host]),
                       "host": host, "hostvars": inv.hosts, "groups": inv.ordered_groups,
                       "group_names": inv.group_names(host)}
            for key, message in rules.role_problems(role, values, context, check_types=False):
                yield Problem(message, host, key)


def _gateways(inv: Inventory, mistyped: set[tuple[str | None, str]]) -> dict[str, dict[str, Any]]:
    """Each gateway host's litellm_instances as the roles see it (a mistyped or out-of-range one counts as 1)."""
    out = {}
    for host in inv.in_group("gateway"):
        count = specs.default("litellm_instances") if (host, "litellm_instances") in mistyped \
            else _value(inv, host, "litellm_instances")
        usable = isinstance(count, int) and not isinstance(count, bool) and 1 <= count <= gateway.MAX_INSTANCES
        out[host] = {**inv.hosts[host], "litellm_instances": count if usable else 1}
    return out


def _redis_plan(inv: Inventory, host: str, gateways: dict[str, dict[str, Any]],
                mistyped: set[tuple[str | None, str]]) -> dict[str, Any]:
    if host not in gateways:
        return {}
    port = specs.default("litellm_redis_port") if (host, "litellm_redis_port") in mistyped \
        else _value(inv, host, "litellm_redis_port")
    return gateway.redis_plan(host, gateways, int(port))


# --- ports on each host ------------------------------------------------------------------------------------

# Published host ports of the gateway services: (port variable, enabled-when variable or None).
_GATEWAY_PORTS = (("litellm_port", "litellm_publish"), ("openwebui_port", "openwebui_publish"),
                  ("searxng_port", "searxng_publish"), ("caddy_https_port", None), ("caddy_http_port", None))


def _host_ports(inv: Inventory, mistyped: set[tuple[str | None, str]]) -> Iterator[Problem]:
    """Ports claimed twice on a host (a port of the wrong type was reported already and is left out here)."""
    gateways = _gateways(inv, mistyped)
    registry = set(inv.in_group("registry"))
    for host in inv.hosts:
        used: dict[int, str] = {}
        claims: list[tuple[int, str, str]] = []  # (port, key, what claims it)
        for i, m in enumerate(_models(inv, host)):
            claims.append((int(m["port"]), f"vllm_models[{i}] ({m['name']})", f"vllm_models[{i}] ({m['name']})"))
            if m.get("nodes"):  # a model across hosts: its head listens for the followers too
                port = int(m.get("master_port") or multinode.DEFAULT_MASTER_PORT)
                claims.append((port, f"vllm_models[{i}] ({m['name']}).master_port",
                               f"vllm_models[{i}] ({m['name']}) master_port"))
        if host in gateways:
            for var, enabled in _GATEWAY_PORTS:
                if (host, var) in mistyped or (enabled and (host, enabled) in mistyped):
                    continue
                port = _value(inv, host, var)
                if port is None or (enabled is not None and not _value(inv, host, enabled)):
                    continue
                if var == "litellm_port":  # one published port per instance
                    ports = gateway.instance_ports(port, gateways[host]["litellm_instances"])
                    claims += [(p, var, var if i == 0 else f"{var} + {i} (LiteLLM instance {i + 1})")
                               for i, p in enumerate(ports)]
                else:
                    claims.append((int(port), var, var))
            if _redis_plan(inv, host, gateways, mistyped).get("publish") and (host, "litellm_redis_port") not in mistyped:
                claims.append((int(_value(inv, host, "litellm_redis_port")), "litellm_redis_port", "litellm_redis_port"))
        if host in registry and (host, "registry_port") not in mistyped:
            claims.append((int(_value(inv, host, "registry_port")), "registry_port", "registry_port"))
        for group, var in (("solv_monitored", "node_exporter_port"), ("solv_gpu_monitored", "dcgm_exporter_port"),
                           ("solv_probing", "blackbox_exporter_port"),
                           ("monitoring", "prometheus_port"),
                           ("monitoring", "alertmanager_port")):
            if host in inv.in_group(group) and (host, var) not in mistyped:
                claims.append((int(_value(inv, host, var)), var, var))
        if monitoring.runs_grafana(host, inv.ordered_groups, inv.hosts) and (host, "grafana_port") not in mistyped:
            claims.append((int(_value(inv, host, "grafana_port")), "grafana_port", "grafana_port"))
        for port, key, owner in claims:
            if port in used:
                yield Problem(f"port {port} is already used by {used[port]} on this host", host, key)
            else:
                used[port] = owner


# --- monitoring --------------------------------------------------------------------------------------------


def _monitoring(inv: Inventory) -> Iterator[Problem]:
    """One Prometheus host, one switch for the site, and every LiteLLM instance within Prometheus's reach."""
    hosts = inv.ordered_group(monitoring.GROUP)
    for host in hosts[1:]:
        yield Problem(f"group '{monitoring.GROUP}' may have one host, it has {len(hosts)} ({', '.join(hosts)}): "
                      "one Prometheus scrapes the whole site", host)
    gateways = inv.ordered_group("gateway")
    if gateways:
        first = gateways[0]
        wanted = _value(inv, first, "solv_monitoring")
        for host in inv.hosts:
            value = _value(inv, host, "solv_monitoring")
            if host != first and value != wanted:
                yield Problem(f"solv_monitoring is {value!r} here but {wanted!r} on the first gateway host ({first}), "
                              "where it is read: it is one switch for the site, set it in group_vars/all",
                              host, "solv_monitoring")
    here = monitoring.prometheus_host(inv.ordered_groups, inv.hosts)
    for host in monitoring.unscrapable_gateways(inv.ordered_groups, inv.hosts):
        yield Problem(f"Prometheus on {here} cannot reach LiteLLM here: its instances publish no port (set "
                      "litellm_publish: true on this host, or make it the monitoring host)", host, "litellm_publish")


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


def _instances_of(inv: Inventory, host: str) -> list[routing.VllmInstance]:
    return routing.vllm_instances({host: {**inv.hosts[host], "vllm_models": _models(inv, host)}})
