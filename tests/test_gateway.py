"""LiteLLM's instances and their Redis: names, ports, where Redis runs and how each gateway host reaches it."""

from __future__ import annotations

from solv_provision import gateway


def test_instances_keep_the_single_instance_name_first():
    assert gateway.instance_names(1) == ["solv-litellm"]
    assert gateway.instance_names(3) == ["solv-litellm", "solv-litellm-2", "solv-litellm-3"]
    assert gateway.instance_ports(4000, 3) == [4000, 4001, 4002]
    assert gateway.instance_upstreams(2) == ["solv-litellm:4000", "solv-litellm-2:4000"]


def test_open_webui_reaches_one_instance_directly_and_several_through_the_entry_point():
    assert gateway.internal_url(1) == "http://solv-litellm:4000/v1"
    assert gateway.internal_url(2) == "http://solv-caddy:4000/v1"


def test_one_instance_on_one_gateway_host_needs_no_redis():
    plan = gateway.redis_plan("gw", {"gw": {}}, 6379)
    assert plan["enabled"] is False and plan["runs_here"] is False


def test_several_instances_share_redis_on_the_docker_network_unpublished():
    plan = gateway.redis_plan("gw", {"gw": {"litellm_instances": 2}}, 6390)
    assert plan == {"enabled": True, "runs_here": True, "publish": False, "host": "solv-redis", "port": 6379,
                    "container_port": 6379}


def test_several_gateway_hosts_reach_redis_on_the_first_hosts_address():
    gateways = {"gw-a": {"solv_internal_address": "10.0.0.5"}, "gw-b": {"ansible_host": "10.0.0.6"}}
    first = gateway.redis_plan("gw-a", gateways, 6390)
    assert (first["runs_here"], first["publish"], first["host"], first["port"]) == (True, True, "solv-redis", 6379)
    other = gateway.redis_plan("gw-b", gateways, 6390)
    assert (other["enabled"], other["runs_here"], other["host"], other["port"]) == (True, False, "10.0.0.5", 6390)
