"""The gateway's LiteLLM instances and the Redis they share router state through: the one place for their names,
when Redis runs, where, and how an instance reaches it.

LiteLLM keeps rate-limit counters, cooldowns and usage per process unless the router has a Redis (LiteLLM docs:
prod, redis_requirements). So as soon as one gateway host runs several instances (`litellm_instances`) or the
inventory has several gateway hosts, the first gateway host runs Redis (`solv-redis`) and every instance's
router_settings name it. A site with one host and one instance has no Redis (as before). The litellm and caddy
roles call these through roles/solv_common/filter_plugins/solv_routing.py; `validate` calls them directly.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from solv_provision import specs
from solv_provision.addresses import host_address

INSTANCE = "solv-litellm"  # the first instance keeps the name a single instance always had
REDIS = "solv-redis"
LITELLM_PORT = 4000  # LiteLLM's port in its container
REDIS_PORT = 6379  # Redis's port in its container
MAX_INSTANCES = 16


def instance_names(count: int) -> list[str]:
    """The containers of `count` LiteLLM instances: solv-litellm, solv-litellm-2, ..."""
    return [INSTANCE] + [f"{INSTANCE}-{i}" for i in range(2, int(count) + 1)]


def instance_ports(first_port: int, count: int) -> list[int]:
    """The host ports the instances publish (litellm_publish): litellm_port, litellm_port + 1, ..."""
    return [int(first_port) + i for i in range(int(count))]


def needs_redis(gateways: Mapping[str, Mapping[str, Any]]) -> bool:
    """Whether several LiteLLM processes route at once: several gateway hosts, or a host with several instances
    (a host that does not set litellm_instances has the role's default)."""
    default = specs.role_specs()["litellm"].defaults["litellm_instances"]
    return len(gateways) > 1 or any(int(v.get("litellm_instances", default)) > 1 for v in gateways.values())


def redis_plan(host: str, gateways: Mapping[str, Mapping[str, Any]], port: int) -> dict[str, Any]:
    """Redis as `host` (a gateway host) sees it, given every gateway host's variables in inventory order.

    {'enabled', 'runs_here' (this host runs solv-redis), 'publish' (it publishes port `port` on its own address:
    other gateway hosts connect), 'host' and 'port' (what this host's instances connect to), 'container_port'}.
    """
    names = list(gateways)
    plan = {"enabled": False, "runs_here": False, "publish": False, "host": "", "port": 0,
            "container_port": REDIS_PORT}
    if not names or not needs_redis(gateways):
        return plan
    first = names[0]
    if host == first:
        return {**plan, "enabled": True, "runs_here": True, "publish": len(names) > 1, "host": REDIS,
                "port": REDIS_PORT}
    return {**plan, "enabled": True, "host": host_address(gateways[first], first), "port": int(port)}


def instance_upstreams(count: int) -> list[str]:
    """What the entry point balances across: <container>:4000 of each instance, on the host's Docker network."""
    return [f"{name}:{LITELLM_PORT}" for name in instance_names(count)]


def internal_url(count: int, entry_point: str = "solv-caddy", entry_port: int = LITELLM_PORT) -> str:
    """The OpenAI base URL for containers on a gateway host (Open WebUI): the one instance directly, or, with
    several, the entry point's internal listener, which balances across them with health checks."""
    if int(count) > 1:
        return f"http://{entry_point}:{entry_port}/v1"
    return f"http://{INSTANCE}:{LITELLM_PORT}/v1"
