"""Inventory -> LiteLLM routing: the one place that decides which model lives where.

Pure functions over plain data (host name -> that host's variables). The Ansible filter plugin in
roles/solv_common/filter_plugins/ and `solv-provision render` both call `litellm_routing`; the validator
uses `vllm_instances` (addresses from `addresses.host_address`) so that it checks exactly what will be deployed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from solv_provision.addresses import ADDRESS_KEYS, bracketed, host_address

# Production router defaults (LiteLLM docs: routing, proxy/prod). `litellm_router_settings` merges over these.
# A dead replica costs no request (measured with LiteLLM 1.108.7, two stand-in replicas, a client loop):
# - allowed_fails 0: a replica that fails once (connection refused: unit stopped, container restarting) is
#   cooled down at once, so the retry goes to another replica. One replica stopped: allowed_fails 3 lost 1-2 of
#   30 requests (a retry may pick the dead replica again), 0 lost none in 4 runs of 30-60.
# - cooldown_time 5: a rolling restart (one replica down 3 s, the other 15 s later) lost 211 of 738 requests
#   with 30 s ("all deployments in cooldown": the first was still cooling when the second went down), none of
#   631 with 5 s. A dead replica is then tried again every 5 s, and that request retried elsewhere.
# LiteLLM never cools down the only deployment of a model group, so single replicas are unaffected.
# simple-shuffle treats a deployment's rpm/tpm as a weight only; usage-based-routing-v2 enforces them (it counts
# in Redis when the router has one, so the limit holds across instances): the default once any model has a limit.
LIMITED_STRATEGY = "usage-based-routing-v2"
LIMIT_KEYS = ("rpm", "tpm")
ROUTER_DEFAULTS: dict[str, Any] = {
    "routing_strategy": "simple-shuffle",
    "num_retries": 2,
    "timeout": 600,
    "allowed_fails": 0,
    "cooldown_time": 5,
}

# LiteLLM reads the vLLM API key from this environment variable of its container.
VLLM_API_KEY_ENV = "VLLM_API_KEY"
# The only variables of a host that vllm_instances (and so litellm_routing and model_kinds) reads.
INPUT_KEYS = ("vllm_models", *ADDRESS_KEYS)


@dataclass(frozen=True)
class VllmInstance:
    """One vLLM model instance on one host, with the inventory's defaults applied."""

    host: str
    address: str
    name: str
    model: str
    served_model_name: str
    port: int
    gpus: tuple[int, ...] = ()
    tensor_parallel_size: int = 1
    pipeline_parallel_size: int = 1
    settings: Mapping[str, Any] = field(default_factory=dict)
    limits: Mapping[str, int] = field(default_factory=dict)  # rpm / tpm of this replica, as LiteLLM enforces them

    @property
    def embedding(self) -> bool:
        """An embedding model (vLLM's pooling runner): /v1/embeddings, no chat."""
        return self.settings.get("runner") == "pooling"

    @property
    def api_base(self) -> str:
        return f"http://{bracketed(self.address)}:{self.port}/v1"

    @property
    def deployment_id(self) -> str:
        return f"{self.host}/{self.name}"


def model_defaults(entry: Mapping[str, Any]) -> dict[str, Any]:
    """One `vllm_models` entry with the contract's defaults filled in (served name, parallel sizes)."""
    model = dict(entry)
    gpus = list(model.get("gpus") or [])
    model["gpus"] = gpus
    model["served_model_name"] = model.get("served_model_name") or model.get("name")
    model["runner"] = model.get("runner") or "generate"
    model["pipeline_parallel_size"] = int(model.get("pipeline_parallel_size") or 1)
    if not model.get("tensor_parallel_size"):
        model["tensor_parallel_size"] = max(1, len(gpus) // model["pipeline_parallel_size"])
    return model


def instance_image(instance: Mapping[str, Any], image: str, tag: str, archive: str = "") -> dict[str, str]:
    """{ref, archive} of the image one vLLM instance runs: its own image/image_tag, else the host's. The host's
    archive holds the host's image only, so an instance with another image has its own archive or none."""
    ref = f"{instance.get('image') or image}:{instance.get('image_tag') or tag}"
    own = instance.get("image_archive")
    return {"ref": ref, "archive": own if own else (archive if ref == f"{image}:{tag}" else "")}


# Settings that must agree between replicas of one served name (else the group would answer differently).
REPLICA_KEYS = ("model", "revision", "max_model_len", "quantization", "runner")


def vllm_instances(hosts: Mapping[str, Mapping[str, Any]]) -> list[VllmInstance]:
    """Every vLLM instance of the given hosts, ordered by served name, host, instance name."""
    found = []
    for host, hostvars in hosts.items():
        address = host_address(hostvars, host)
        for entry in hostvars.get("vllm_models") or []:
            m = model_defaults(entry)
            found.append(
                VllmInstance(
                    host=host,
                    address=address,
                    name=str(m["name"]),
                    model=str(m["model"]),
                    served_model_name=str(m["served_model_name"]),
                    port=int(m["port"]),
                    gpus=tuple(int(g) for g in m["gpus"]),
                    tensor_parallel_size=int(m["tensor_parallel_size"]),
                    pipeline_parallel_size=int(m["pipeline_parallel_size"]),
                    settings={k: m.get(k) for k in REPLICA_KEYS},
                    limits={k: int(m[k]) for k in LIMIT_KEYS if m.get(k) is not None},
                )
            )
    return sorted(found, key=lambda i: (i.served_model_name, i.host, i.name))


def model_groups(instances: Iterable[VllmInstance]) -> dict[str, list[VllmInstance]]:
    """Served name -> its replicas (one LiteLLM model group each)."""
    groups: dict[str, list[VllmInstance]] = {}
    for inst in instances:
        groups.setdefault(inst.served_model_name, []).append(inst)
    return groups


def embedding_names(instances: Iterable[VllmInstance]) -> list[str]:
    """The served names of the embedding models, sorted (the other served names are chat models)."""
    return sorted({i.served_model_name for i in instances if i.embedding})


def model_kinds(hosts: Mapping[str, Mapping[str, Any]]) -> dict[str, list[str]]:
    """{'served': every served name of the hosts' vLLM instances, 'embedding': those that are embedding models}."""
    instances = vllm_instances(hosts)
    return {"served": sorted({i.served_model_name for i in instances}), "embedding": embedding_names(instances)}


def model_names(model_list: Iterable[Mapping[str, Any]]) -> dict[str, list[str]]:
    """The names a LiteLLM model_list routes, each once in list order: 'all', 'served' (by vLLM instances: the
    entries with a model_info), 'embedding' (of those, mode embedding) and 'chat' (the other served ones); and
    'probe_chat' / 'probe_embedding': the one name of each kind a health gate calls ([] or one name), one without
    a request limit where there is one (a limited model may hold the gate's request back until the next minute)."""
    entries = list(model_list)
    local = [m for m in entries if "model_info" in m]
    embedding = list(dict.fromkeys(m["model_name"] for m in local if "mode" in m["model_info"]))
    served = list(dict.fromkeys(m["model_name"] for m in local))
    chat = [n for n in served if n not in embedding]
    limited = {m["model_name"] for m in local if any(k in m["litellm_params"] for k in LIMIT_KEYS)}

    def probe(names: list[str]) -> list[str]:
        return ([n for n in names if n not in limited] + names)[:1]

    return {"all": list(dict.fromkeys(m["model_name"] for m in entries)), "served": served, "embedding": embedding,
            "chat": chat, "probe_chat": probe(chat), "probe_embedding": probe(embedding)}


def litellm_routing(
    hosts: Mapping[str, Mapping[str, Any]],
    external_models: Iterable[Mapping[str, Any]] = (),
    fallbacks: Mapping[str, Iterable[str]] | None = None,
    router_settings: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The LiteLLM `model_list` and `router_settings` for the given inference hosts.

    hosts: inventory name -> that host's variables (only INPUT_KEYS are read).
    Local instances come first (deterministic order; each with `model_info.id`), then the external models
    (`model_name` and `litellm_params` as given, no `model_info`: the litellm role tells them apart by it).
    """
    model_list: list[dict[str, Any]] = []
    for inst in vllm_instances(hosts):
        model_list.append(
            {
                "model_name": inst.served_model_name,
                "litellm_params": {
                    "model": f"hosted_vllm/{inst.served_model_name}",
                    "api_base": inst.api_base,
                    "api_key": f"os.environ/{VLLM_API_KEY_ENV}",
                    **inst.limits,
                },
                # mode: LiteLLM's health checks and /model/info call an embedding model as one.
                "model_info": {"id": inst.deployment_id, **({"mode": "embedding"} if inst.embedding else {})},
            }
        )
    for ext in external_models:
        model_list.append({"model_name": ext["model_name"], "litellm_params": dict(ext["litellm_params"])})

    limited = any(k in m["litellm_params"] for m in model_list for k in LIMIT_KEYS)
    settings = {**ROUTER_DEFAULTS, **({"routing_strategy": LIMITED_STRATEGY} if limited else {}),
                **dict(router_settings or {})}
    if fallbacks:
        settings["fallbacks"] = [{name: list(fallbacks[name])} for name in sorted(fallbacks)]
    return {"model_list": model_list, "router_settings": settings}
