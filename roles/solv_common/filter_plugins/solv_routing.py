"""Ansible filters over solv_provision.routing (the single source of the LiteLLM routing) and
solv_provision.gateway (LiteLLM's instances and their Redis)."""

from __future__ import annotations

import sys
from pathlib import Path

try:
    from solv_provision import addresses, gateway, handover, multinode, routing
except ImportError:  # plain ansible-playbook from a checkout, package not installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
    from solv_provision import addresses, gateway, handover, multinode, routing


def _hosts(hostvars, names):
    return {name: hostvars[name] for name in names}


def solv_litellm_routing(hostvars, inference_hosts, external_models=(), fallbacks=None, router_settings=None):
    """{{ hostvars | solv_litellm_routing(groups['inference'], litellm_external_models, ...) }}: model_list and
    router_settings, and `names` (routing.model_names: computed here once, not by filters over a list of
    thousands of entries wherever a name list is used). The hosts' inputs as solv-provision handed them over, where
    it did (handover.routing_hosts)."""
    hosts = handover.routing_hosts(hostvars, inference_hosts)
    result = routing.litellm_routing(hosts, external_models, fallbacks, router_settings)
    return {**result, "names": routing.model_names(result["model_list"])}


def solv_model_kinds(hostvars, inference_hosts):
    """{{ hostvars | solv_model_kinds(groups['inference']) }} -> {served: [...], embedding: [...]}"""
    return routing.model_kinds(handover.routing_hosts(hostvars, inference_hosts))


def solv_host_address(name, hostvars):
    """{{ inventory_hostname | solv_host_address(hostvars) }}"""
    return addresses.host_address(hostvars[name], name)


def solv_vllm_models(models):
    """vllm_models with the contract's defaults (served_model_name, parallel sizes)."""
    return [routing.model_defaults(m) for m in models or []]


def solv_vllm_instances(host, models, hostvars, groups, group_names):
    """{{ inventory_hostname | solv_vllm_instances(vllm_models, hostvars, groups, group_names) }}: the vLLM instances
    this host runs (its vllm_models with the contract's defaults, and the multi-node models it follows)."""
    return multinode.host_instances(host, solv_vllm_models(models), hostvars, groups, group_names)


def solv_litellm_instances(count):
    """{{ litellm_instances | solv_litellm_instances }} -> the instances' container names, in restart order."""
    return gateway.instance_names(int(count))


def solv_litellm_upstreams(count):
    """{{ litellm_instances | solv_litellm_upstreams }} -> <container>:4000 of each instance (the entry point's)."""
    return gateway.instance_upstreams(int(count))


def solv_litellm_internal_url(count):
    """{{ litellm_instances | solv_litellm_internal_url }} -> the OpenAI base URL for containers on the host."""
    return gateway.internal_url(int(count))


def solv_litellm_redis(host, hostvars, gateway_hosts, port):
    """{{ inventory_hostname | solv_litellm_redis(hostvars, groups['gateway'], litellm_redis_port) }} -> gateway.redis_plan"""
    return gateway.redis_plan(host, _hosts(hostvars, gateway_hosts), int(port))


class FilterModule:
    def filters(self):
        return {
            "solv_litellm_routing": solv_litellm_routing,
            "solv_host_address": solv_host_address,
            "solv_model_kinds": solv_model_kinds,
            "solv_vllm_models": solv_vllm_models,
            "solv_vllm_instances": solv_vllm_instances,
            "solv_litellm_instances": solv_litellm_instances,
            "solv_litellm_upstreams": solv_litellm_upstreams,
            "solv_litellm_internal_url": solv_litellm_internal_url,
            "solv_litellm_redis": solv_litellm_redis,
        }
