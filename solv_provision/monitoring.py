"""Monitoring: which host runs Prometheus, which hosts run which exporter, and every target the inventory implies.

The one place for these rules: the node, DCGM and blackbox exporter, alertmanager, prometheus, grafana, litellm and
vllm roles call them through roles/solv_common/filter_plugins/solv_monitoring.py; `solv_provision.inventory`,
`validate` and `status` directly.

Monitoring is on when the `monitoring` group has a host (Prometheus runs there), or when the first gateway host
sets `solv_monitoring: true` (Prometheus runs on that host). Every host of the inventory's service groups then
runs a node exporter, every GPU host (`gpu_hosts`) NVIDIA's DCGM exporter, every gateway host a blackbox exporter
that checks SearXNG's and Open WebUI's health; Prometheus scrapes them, every vLLM instance's `/metrics` (vLLM
serves it without a key), every LiteLLM instance's `/metrics` (LiteLLM asks for a key: the master key, from a file
only Prometheus reads), Alertmanager next to it (which it sends its alerts to) and itself.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from solv_provision import gateway, routing, specs
from solv_provision.addresses import WILDCARDS, bracketed, host_address

GROUP = "monitoring"
MONITORED = "solv_monitored"  # every host that runs a node exporter: filled in by `groups_with_monitoring`
GPU_MONITORED = "solv_gpu_monitored"  # the inference hosts that run a DCGM exporter: filled in the same way
PROBING = "solv_probing"  # the gateway hosts that run a blackbox exporter: filled in the same way
PROMETHEUS = "solv-prometheus"
NODE_EXPORTER = "solv-node-exporter"
DCGM_EXPORTER = "solv-dcgm-exporter"
BLACKBOX_EXPORTER = "solv-blackbox-exporter"
BLACKBOX_PORT = 9115  # the blackbox exporter's port in its container
# What the blackbox exporter on each gateway host checks, over that host's Docker network: the health URLs of the
# gateway's services without metrics of their own (the same URLs their roles' health gates ask).
PROBES = {"searxng": "http://solv-searxng:8080/healthz", "openwebui": "http://solv-openwebui:8080/health"}
PROBE_MODULE = "http_2xx"  # roles/blackbox_exporter/templates/config.yml.j2
ALERTMANAGER = "solv-alertmanager"
GRAFANA = "solv-grafana"
GRAFANA_DATASOURCE_UID = "solv-prometheus"  # Grafana's Prometheus data source: every shipped dashboard names it
PROMETHEUS_PORT = 9090  # Prometheus's port in its container
ALERTMANAGER_PORT = 9093  # Alertmanager's port in its container
# The groups whose hosts run a node exporter, in playbook order.
MONITORED_GROUPS = ("registry", "inference", "gateway", GROUP)
# Where Prometheus reads the key it sends to LiteLLM's /metrics (a file in its container, 0600 on the host).
LITELLM_KEY_FILE = "/etc/prometheus/secrets/litellm_master_key"

Groups = Mapping[str, Sequence[str]]
HostVars = Mapping[str, Mapping[str, Any]]


def prometheus_host(groups: Groups, hostvars: HostVars) -> str | None:
    """The host that runs Prometheus: the `monitoring` group's host, else the first gateway host when it sets
    `solv_monitoring: true`, else None (monitoring is off)."""
    if groups.get(GROUP):
        return groups[GROUP][0]
    gateways = groups.get("gateway") or []
    if gateways and hostvars[gateways[0]].get("solv_monitoring") is True:
        return gateways[0]
    return None


def monitored_hosts(groups: Groups, hostvars: HostVars) -> list[str]:
    """The hosts that run a node exporter (every host of a service group, once), empty when monitoring is off."""
    if prometheus_host(groups, hostvars) is None:
        return []
    seen: dict[str, None] = {}
    for group in MONITORED_GROUPS:
        for host in groups.get(group) or []:
            seen.setdefault(host, None)
    return list(seen)


def gpu_hosts(groups: Groups, hostvars: HostVars) -> list[str]:
    """The inference hosts that run a DCGM exporter while monitoring is on: `dcgm_exporter_when` always, or auto
    (the default) and one of the host's vllm_models lists GPUs. Known from the inventory alone, so that Prometheus
    scrapes exactly these (a GPU host whose exporter cannot start shows as a target down)."""
    if prometheus_host(groups, hostvars) is None:
        return []
    return [h for h in groups.get("inference") or [] if _runs_dcgm_exporter(hostvars[h])]


def _runs_dcgm_exporter(hv: Mapping[str, Any]) -> bool:
    when = _var(hv, "dcgm_exporter_when")
    if when == "auto":
        models = _var(hv, "vllm_models")
        return isinstance(models, list) and any(isinstance(m, Mapping) and m.get("gpus") for m in models)
    return when == "always"


def computed_groups(groups: Groups, hostvars: HostVars) -> dict[str, list[str]]:
    """`monitoring` (the Prometheus host), `solv_monitored` (the node exporters' hosts), `solv_gpu_monitored`
    (the DCGM exporters' hosts) and `solv_probing` (the blackbox exporters' hosts: the gateway hosts) as these
    rules make them. The roles ask this per host (filter `solv_monitoring_groups`): it reads the service groups
    only."""
    host = prometheus_host(groups, hostvars)
    # The inventory's own group stays as written (validate refuses a second host).
    return {GROUP: list(groups.get(GROUP) or []) or ([host] if host else []),
            MONITORED: monitored_hosts(groups, hostvars), GPU_MONITORED: gpu_hosts(groups, hostvars),
            PROBING: list(groups.get("gateway") or []) if host else []}


def computed_groups_of(host: str, groups: Groups, hostvars: HostVars) -> list[str]:
    """The computed groups `host` is in, as computed_groups makes them, reading only this host and the first
    gateway host (a per-host question asked for every host stays linear in the inventory)."""
    prometheus = prometheus_host(groups, hostvars)
    if prometheus is None:
        return []
    found = [GROUP] if host == prometheus else []
    if any(host in (groups.get(g) or []) for g in MONITORED_GROUPS):
        found.append(MONITORED)
    if host in (groups.get("inference") or []) and _runs_dcgm_exporter(hostvars[host]):
        found.append(GPU_MONITORED)
    if host in (groups.get("gateway") or []):
        found.append(PROBING)
    return found


def groups_with_monitoring(groups: Groups, hostvars: HostVars) -> dict[str, list[str]]:
    """The inventory's groups with the two computed ones. solv_provision.inventory adds both on load, so every verb
    sees the hosts the roles pick with the same rules (the playbooks visit every host of the service groups; each
    role asks whether it runs there)."""
    return {**{name: list(members) for name, members in groups.items()}, **computed_groups(groups, hostvars)}


def _var(hv: Mapping[str, Any], name: str) -> Any:
    """A role variable of another host: hostvars carry the inventory's values, not the roles' defaults."""
    return hv[name] if name in hv else specs.default(name)


def _reached(hv: Mapping[str, Any], host: str, bind_var: str) -> str:
    """Where another host reaches a service of `host` that listens on its `bind_var` (empty or a wildcard: the
    host's internal address), bracketed for a URL."""
    bind = str(_var(hv, bind_var) or "")
    return bracketed(host_address(hv, host) if bind in ("", *WILDCARDS) else bind)


def _static(target: str, labels: Mapping[str, Any]) -> dict[str, Any]:
    return {"targets": [target], "labels": {k: str(v) for k, v in labels.items()}}


def scrape_jobs(groups: Groups, hostvars: HostVars) -> list[dict[str, Any]]:
    """Prometheus's scrape_configs for the inventory, as seen from the Prometheus host: jobs `prometheus`,
    `alertmanager`, `node`, `dcgm`, `vllm`, `litellm` and `probe` (the gateway services' health checks), each
    target labelled with its `host` and `service` (vLLM also `model`: the served name, and `instance_name`; DCGM's
    own labels name the GPU: `gpu`, `UUID`, `modelName`). A job without targets is left out.

    Targets on the Prometheus host's own Docker network (LiteLLM instances there) are named by container;
    everything else by host address and published port. LiteLLM on another gateway host is scraped on its
    published ports (validate requires `litellm_publish` there)."""
    here = prometheus_host(groups, hostvars)
    if here is None:
        return []
    jobs: list[dict[str, Any]] = [
        {"job_name": "prometheus",
         "static_configs": [_static(f"localhost:{PROMETHEUS_PORT}", {"host": here, "service": "prometheus"})]},
        {"job_name": "alertmanager",
         "static_configs": [_static(alertmanager_target(), {"host": here, "service": "alertmanager"})]},
    ]
    nodes = [
        _static(f"{_reached(hostvars[h], h, 'node_exporter_bind_address')}:{int(_var(hostvars[h], 'node_exporter_port'))}",
                {"host": h, "service": "node"})
        for h in monitored_hosts(groups, hostvars)
    ]
    jobs.append({"job_name": "node", "static_configs": nodes})
    gpus = [
        _static(f"{_reached(hostvars[h], h, 'dcgm_exporter_bind_address')}:{int(_var(hostvars[h], 'dcgm_exporter_port'))}",
                {"host": h, "service": "dcgm"})
        for h in gpu_hosts(groups, hostvars)
    ]
    jobs.append({"job_name": "dcgm", "static_configs": gpus})
    inference = {h: hostvars[h] for h in groups.get("inference") or []}
    vllm = [
        _static(f"{bracketed(i.address)}:{i.port}",
                {"host": i.host, "service": "vllm", "model": i.served_model_name, "instance_name": i.name})
        for i in routing.vllm_instances(inference)
    ]
    jobs.append({"job_name": "vllm", "static_configs": vllm})
    jobs.append({"job_name": "litellm", "authorization": {"credentials_file": LITELLM_KEY_FILE},
                 "static_configs": litellm_targets(here, groups, hostvars)})
    jobs.append({"job_name": "probe", "metrics_path": "/probe", "params": {"module": [PROBE_MODULE]},
                 "static_configs": probe_targets(here, groups, hostvars)})
    return [job for job in jobs if job["static_configs"]]


def probe_targets(here: str, groups: Groups, hostvars: HostVars) -> list[dict[str, Any]]:
    """Each gateway host's blackbox exporter once per service it checks (the URL as `__param_target`), reached on
    the Docker network from the Prometheus host `here` and on its published port from anywhere else."""
    targets = []
    for host in groups.get("gateway") or []:
        hv = hostvars[host]
        exporter = (f"{BLACKBOX_EXPORTER}:{BLACKBOX_PORT}" if host == here else
                    f"{_reached(hv, host, 'blackbox_exporter_bind_address')}:{int(_var(hv, 'blackbox_exporter_port'))}")
        for service, url in PROBES.items():
            targets.append(_static(exporter, {"host": host, "service": service, "__param_target": url}))
    return targets


def alertmanager_target() -> str:
    """Where Prometheus sends alerts: Alertmanager next to it, on the monitoring host's Docker network."""
    return f"{ALERTMANAGER}:{ALERTMANAGER_PORT}"


def prometheus_url() -> str:
    """Where Grafana reads Prometheus: next to it, on the monitoring host's Docker network."""
    return f"http://{PROMETHEUS}:{PROMETHEUS_PORT}"


def runs_grafana(host: str, groups: Groups, hostvars: HostVars) -> bool:
    """Grafana runs on the monitoring host unless that host sets `grafana_enabled: false`."""
    return host == prometheus_host(groups, hostvars) and _var(hostvars[host], "grafana_enabled") is not False


def grafana_datasource(host: str, hostvars: HostVars) -> dict[str, Any]:
    """Grafana's Prometheus data source on the monitoring host `host` (provisioned from a file)."""
    return {"name": "Prometheus", "uid": GRAFANA_DATASOURCE_UID, "type": "prometheus", "access": "proxy",
            "url": prometheus_url(), "isDefault": True, "editable": False,
            # Grafana's $__rate_interval takes at least four of these.
            "jsonData": {"timeInterval": str(_var(hostvars[host], "prometheus_scrape_interval")), "httpMethod": "POST"}}


def litellm_targets(here: str, groups: Groups, hostvars: HostVars) -> list[dict[str, Any]]:
    """Every LiteLLM instance of every gateway host, as the Prometheus host `here` reaches it."""
    targets = []
    for host in groups.get("gateway") or []:
        hv = hostvars[host]
        count = int(_var(hv, "litellm_instances"))
        if host == here:
            addresses = [f"{name}:{gateway.LITELLM_PORT}" for name in gateway.instance_names(count)]
        else:
            address = bracketed(host_address(hv, host))
            addresses = [f"{address}:{port}" for port in gateway.instance_ports(int(_var(hv, "litellm_port")), count)]
        for name, address in zip(gateway.instance_names(count), addresses):
            targets.append(_static(address, {"host": host, "service": "litellm", "instance_name": name}))
    return targets


def unscrapable_gateways(groups: Groups, hostvars: HostVars) -> list[str]:
    """Gateway hosts other than the Prometheus host whose LiteLLM publishes no port (Prometheus could not reach
    it): validate names them."""
    here = prometheus_host(groups, hostvars)
    if here is None:
        return []
    return [h for h in groups.get("gateway") or [] if h != here and _var(hostvars[h], "litellm_publish") is not True]
