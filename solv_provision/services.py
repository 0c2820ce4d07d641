"""The service roles and the inventory group each runs on, in playbook order (playbooks/registry.yml,
playbooks/inference.yml, playbooks/gateway.yml, playbooks/monitoring.yml). The one list the validator, render,
upgrade, the CLI and the docs read."""

from __future__ import annotations

GROUP_ROLES: dict[str, tuple[str, ...]] = {
    # Optional, at most one host: the registry the other hosts pull the inventory's image archives from.
    "registry": ("registry",),
    "inference": ("vllm",),
    "gateway": ("searxng", "litellm", "openwebui", "caddy"),
    # Monitoring (solv_provision.monitoring): a node exporter on every host of the groups above and the monitoring
    # host (`solv_monitored`), NVIDIA's DCGM exporter on the inference hosts with GPUs (`solv_gpu_monitored`), the
    # blackbox exporter on the gateway hosts (`solv_probing`); Alertmanager, Prometheus and Grafana on the monitoring
    # host. These groups are filled in by that module's rules (the inventory may name the `monitoring` host; the
    # others are never written by hand).
    "solv_monitored": ("node_exporter",),
    "solv_gpu_monitored": ("dcgm_exporter",),
    "solv_probing": ("blackbox_exporter",),
    "monitoring": ("alertmanager", "prometheus", "grafana"),
}
# Service -> its group.
SERVICE_GROUP: dict[str, str] = {role: group for group, roles in GROUP_ROLES.items() for role in roles}
SERVICES: tuple[str, ...] = tuple(SERVICE_GROUP)
# Group -> the playbook that applies its roles (its name, where not said here).
PLAYBOOKS: dict[str, str] = {group: f"{group}.yml" for group in GROUP_ROLES} | {"solv_monitored": "monitoring.yml",
                                                                             "solv_gpu_monitored": "monitoring.yml",
                                                                             "solv_probing": "monitoring.yml"}
