"""The routing function: inventory -> LiteLLM model_list and router_settings."""

from __future__ import annotations

from solv_provision import addresses, routing

HOSTS = {
    "gpu-b": {"ansible_host": "10.0.0.12", "vllm_models": [
        {"name": "llama-8b", "model": "meta-llama/Llama-3.1-8B-Instruct", "gpus": [0], "port": 8002},
        {"name": "qwen-7b", "model": "Qwen/Qwen2.5-7B-Instruct", "gpus": [1], "port": 8001},
    ]},
    "gpu-a": {"ansible_host": "10.0.0.11", "vllm_models": [
        {"name": "coder", "served_model_name": "qwen-coder", "model": "Qwen/Coder", "gpus": [0, 1], "port": 8001},
        {"name": "llama-8b", "model": "meta-llama/Llama-3.1-8B-Instruct", "gpus": [2], "port": 8002},
    ]},
}
EXTERNAL = [{"model_name": "gpt-4o", "litellm_params": {"model": "openai/gpt-4o", "api_key": "os.environ/N1N_API_KEY",
                                                         "api_base": "https://api.n1n.ai/v1"}}]


def _entries(config, name):
    return [m for m in config["model_list"] if m["model_name"] == name]


def test_one_entry_per_instance_with_host_address_and_port():
    config = routing.litellm_routing(HOSTS)
    bases = sorted(m["litellm_params"]["api_base"] for m in config["model_list"])
    assert bases == ["http://10.0.0.11:8001/v1", "http://10.0.0.11:8002/v1",
                     "http://10.0.0.12:8001/v1", "http://10.0.0.12:8002/v1"]


def test_replicas_share_one_model_name():
    config = routing.litellm_routing(HOSTS)
    llama = _entries(config, "llama-8b")
    assert [m["litellm_params"]["api_base"] for m in llama] == ["http://10.0.0.11:8002/v1", "http://10.0.0.12:8002/v1"]
    assert len({m["model_info"]["id"] for m in config["model_list"]}) == 4  # deployment ids stay unique


def test_served_model_name_is_the_group_and_the_backend_model():
    entry = _entries(routing.litellm_routing(HOSTS), "qwen-coder")[0]
    assert entry["litellm_params"]["model"] == "hosted_vllm/qwen-coder"
    assert entry["litellm_params"]["api_key"] == "os.environ/VLLM_API_KEY"


def test_an_embedding_model_is_routed_as_one_and_told_apart():
    hosts = {**HOSTS, "gpu-c": {"ansible_host": "10.0.0.13", "vllm_models": [
        {"name": "bge", "served_model_name": "bge-m3", "model": "BAAI/bge-m3", "runner": "pooling", "gpus": [0],
         "port": 8003}]}}
    config = routing.litellm_routing(hosts)
    assert _entries(config, "bge-m3")[0]["model_info"] == {"id": "gpu-c/bge", "mode": "embedding"}
    assert all("mode" not in m["model_info"] for m in config["model_list"] if m["model_name"] != "bge-m3")
    assert routing.model_kinds(hosts) == {"served": ["bge-m3", "llama-8b", "qwen-7b", "qwen-coder"],
                                          "embedding": ["bge-m3"]}


def test_the_routed_names_by_kind_each_once_in_list_order():
    hosts = {**HOSTS, "gpu-c": {"ansible_host": "10.0.0.13", "vllm_models": [
        {"name": "bge", "served_model_name": "bge-m3", "model": "BAAI/bge-m3", "runner": "pooling", "gpus": [0],
         "port": 8003}]}}
    names = routing.model_names(routing.litellm_routing(hosts, EXTERNAL)["model_list"])
    assert names == {"all": ["bge-m3", "llama-8b", "qwen-7b", "qwen-coder", "gpt-4o"],
                     "served": ["bge-m3", "llama-8b", "qwen-7b", "qwen-coder"], "embedding": ["bge-m3"],
                     "chat": ["llama-8b", "qwen-7b", "qwen-coder"], "probe_chat": ["llama-8b"],
                     "probe_embedding": ["bge-m3"]}


def test_external_models_are_appended_untouched():
    config = routing.litellm_routing(HOSTS, EXTERNAL)
    assert config["model_list"][-1] == EXTERNAL[0]
    assert config["model_list"][-1] is not EXTERNAL[0]  # a copy: the inventory's data is not aliased


def test_fallbacks_and_router_defaults():
    config = routing.litellm_routing(HOSTS, EXTERNAL, {"qwen-coder": ["gpt-4o"], "llama-8b": ["qwen-7b", "gpt-4o"]},
                                     {"num_retries": 5})
    rs = config["router_settings"]
    assert rs["fallbacks"] == [{"llama-8b": ["qwen-7b", "gpt-4o"]}, {"qwen-coder": ["gpt-4o"]}]
    assert rs["routing_strategy"] == "simple-shuffle"
    assert rs["num_retries"] == 5


def test_order_is_deterministic_whatever_the_inventory_order():
    reordered = {k: {**v, "vllm_models": list(reversed(v["vllm_models"]))} for k, v in reversed(list(HOSTS.items()))}
    assert routing.litellm_routing(HOSTS, EXTERNAL) == routing.litellm_routing(reordered, EXTERNAL)
    names = [m["model_name"] for m in routing.litellm_routing(HOSTS)["model_list"]]
    assert names == sorted(names)


def test_address_prefers_internal_address_then_ansible_host_then_name():
    assert addresses.host_address({"solv_internal_address": "192.168.5.1", "ansible_host": "x"}, "h") == "192.168.5.1"
    assert addresses.host_address({"ansible_host": "10.1.1.1"}, "h") == "10.1.1.1"
    assert addresses.host_address({}, "h.example.com") == "h.example.com"


def test_model_defaults():
    m = routing.model_defaults({"name": "a", "model": "x", "gpus": [0, 1, 2, 3], "port": 1, "pipeline_parallel_size": 2})
    assert m["served_model_name"] == "a"
    assert m["tensor_parallel_size"] == 2
    assert routing.model_defaults({"name": "a", "model": "x", "gpus": [], "port": 1})["tensor_parallel_size"] == 1


def test_ipv6_address_is_bracketed():
    hosts = {"v6": {"ansible_host": "fd00::11", "vllm_models": [{"name": "a", "model": "m", "gpus": [0], "port": 8001}]}}
    assert routing.litellm_routing(hosts)["model_list"][0]["litellm_params"]["api_base"] == "http://[fd00::11]:8001/v1"


def test_request_limits_go_to_the_replica_and_make_the_router_enforce_them():
    """rpm/tpm of a vllm_models entry become its deployment's; LiteLLM's simple-shuffle only weighs by them, so
    the router's default strategy becomes usage-based-routing-v2 (one that enforces them); an explicit one stays."""
    hosts = {"gpu-a": {"ansible_host": "10.0.0.11", "vllm_models": [
        {"name": "coder", "model": "Qwen/Coder", "gpus": [0], "port": 8001, "rpm": 60, "tpm": 100000},
        {"name": "chat", "model": "Qwen/Chat", "gpus": [1], "port": 8002},
    ]}}
    config = routing.litellm_routing(hosts)
    assert _entries(config, "coder")[0]["litellm_params"] | {} == {
        "model": "hosted_vllm/coder", "api_base": "http://10.0.0.11:8001/v1", "api_key": "os.environ/VLLM_API_KEY",
        "rpm": 60, "tpm": 100000}
    assert "rpm" not in _entries(config, "chat")[0]["litellm_params"]
    assert config["router_settings"]["routing_strategy"] == "usage-based-routing-v2"
    explicit = routing.litellm_routing(hosts, router_settings={"routing_strategy": "simple-shuffle"})
    assert explicit["router_settings"]["routing_strategy"] == "simple-shuffle"
    assert routing.litellm_routing(HOSTS)["router_settings"]["routing_strategy"] == "simple-shuffle"
    # The health gate's completion goes to a model no limit can hold back.
    names = routing.model_names(config["model_list"])
    assert names["chat"] == ["chat", "coder"] and names["probe_chat"] == ["chat"]
    limited_only = routing.model_names(routing.litellm_routing({"gpu-a": {**hosts["gpu-a"], "vllm_models": [
        hosts["gpu-a"]["vllm_models"][0]]}})["model_list"])
    assert limited_only["probe_chat"] == ["coder"] and limited_only["probe_embedding"] == []
