"""The service roles and the inventory group each runs on, in playbook order (playbooks/registry.yml,
playbooks/inference.yml, playbooks/gateway.yml). The one list the validator, render, upgrade, the CLI and the docs read."""

from __future__ import annotations

GROUP_ROLES: dict[str, tuple[str, ...]] = {
    # Optional, at most one host: the registry the other hosts pull the inventory's image archives from.
    "registry": ("registry",),
    "inference": ("vllm",),
    "gateway": ("searxng", "litellm", "openwebui", "caddy"),
}
# Service -> its group.
SERVICE_GROUP: dict[str, str] = {role: group for group, roles in GROUP_ROLES.items() for role in roles}
SERVICES: tuple[str, ...] = tuple(SERVICE_GROUP)
