"""Ansible filters over solv_provision.routing (the single source of the LiteLLM routing) and
solv_provision.gateway (LiteLLM's instances and their Redis)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ansible.plugins.filter.core import to_nice_yaml

try:
    from solv_provision import addresses, gateway, handover, multinode, routing, spec_check
except ImportError:  # plain ansible-playbook from a checkout, package not installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
    from solv_provision import addresses, gateway, handover, multinode, routing, spec_check


def _hosts(hostvars, names):
    return {name: hostvars[name] for name in names}


# The routings of handed-over inputs this process computed, by the rest of their inputs: a task that reads the
# routing in several places (config.yaml's model_list and router_settings, the model names) computes it once.
_ROUTED: dict[str, dict] = {}


def solv_litellm_routing(hostvars, inference_hosts, external_models=(), fallbacks=None, router_settings=None):
    """{{ hostvars | solv_litellm_routing(groups['inference'], litellm_external_models, ...) }}: model_list and
    router_settings, and `names` (routing.model_names: computed here once, not by filters over a list of
    thousands of entries wherever a name list is used). The hosts' inputs as solv-provision handed them over, where
    it did (handover.routing_hosts)."""
    names = list(inference_hosts)
    key = None
    if handover.handed_over(names):  # the hosts' inputs are fixed for the run: the rest decides
        key = json.dumps(spec_check.plain_data([names, external_models, fallbacks, router_settings]),
                         sort_keys=True, default=str)
        if key in _ROUTED:
            return _ROUTED[key]
    hosts = handover.routing_hosts(hostvars, names)
    result = routing.litellm_routing(hosts, external_models, fallbacks, router_settings)
    result = {**result, "names": routing.model_names(result["model_list"])}
    if key is not None:
        _ROUTED[key] = result
    return result


def solv_litellm_config_yaml(config, hostvars, *routing_args):
    """{{ __litellm_config | solv_litellm_config_yaml(hostvars, *__litellm_routing_args) }}: LiteLLM's config.yaml as
    `to_nice_yaml(indent=2, sort_keys=false, width=1000)` writes it: the routing's model_list, its router_settings
    combined with CONFIG's, then CONFIG's other sections. The routing is dumped here, from its own data: handed
    through Jinja, each of a 1,000-host routing's 4,000 entries would be wrapped and templated on its way to the
    dumper (half a second of a render)."""
    routed = solv_litellm_routing(hostvars, *routing_args)
    sections = dict(config)
    doc = {"model_list": routed["model_list"],
           "router_settings": {**routed["router_settings"], **sections.pop("router_settings", {})}, **sections}
    return to_nice_yaml(doc, indent=2, sort_keys=False, width=1000)



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
            "solv_litellm_config_yaml": solv_litellm_config_yaml,
            "solv_host_address": solv_host_address,
            "solv_model_kinds": solv_model_kinds,
            "solv_vllm_models": solv_vllm_models,
            "solv_vllm_instances": solv_vllm_instances,
            "solv_litellm_instances": solv_litellm_instances,
            "solv_litellm_upstreams": solv_litellm_upstreams,
            "solv_litellm_internal_url": solv_litellm_internal_url,
            "solv_litellm_redis": solv_litellm_redis,
        }
