"""One model across several inference hosts: vLLM's native multi-node mode (`--nnodes`, `--node-rank`,
`--master-addr`, `--master-port`; the followers `--headless`).

A `vllm_models` entry with `nodes: GROUP` is listed once, on its head: the host that lists it, which serves the API,
answers the health gate and is what LiteLLM routes to (rank 0). The other hosts of the inventory group GROUP are
its followers (ranks 1..N-1, in the group's order): each runs the same instance (same image, model, revision and
parallel sizes), unlisted in its own vllm_models. Every node runs it with host networking, `--ipc=host` and
VLLM_HOST_IP set to its internal address; losing one rank stops the group, and systemd restarts each node's
container until the group is whole again.

`nodes` names a group rather than a list of hosts so that a host finds the instances it follows among the hosts of
its own groups, without reading every other host's variables (1,000 hosts would make that a million reads).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from solv_provision import addresses, routing
from solv_provision import models as staged_models

DEFAULT_MASTER_PORT = 29501
# Groups every SOLV inventory has or computes: never a multi-node model's group.
_SITE_GROUPS = frozenset({"all", "ungrouped", "inference", "gateway", "registry", "monitoring", "solv_monitored",
                          "solv_gpu_monitored", "solv_probing"})


def _nodes(entry: Mapping[str, Any], head: str, groups: Mapping[str, Iterable[str]]) -> list[str] | None:
    """[head, followers...] of an entry with `nodes` (the group's hosts, the head first), else None."""
    group = entry.get("nodes")
    if not group or not isinstance(group, str):
        return None
    members = list(groups.get(group) or [])
    return [head, *(h for h in members if h != head)]


def _rank_fields(nodes: list[str], rank: int, head_vars: Mapping[str, Any], entry: Mapping[str, Any]) -> dict:
    return {"nnodes": len(nodes), "node_rank": rank, "head": nodes[0],
            "master_addr": addresses.host_address(head_vars, nodes[0]),
            "master_port": int(entry.get("master_port") or DEFAULT_MASTER_PORT)}


def _followed(entry: Mapping[str, Any], head_vars: Mapping[str, Any]) -> dict[str, Any]:
    """A head's entry as one of its followers runs it: with the image the head runs (routing.instance_image over
    the head's vllm_image, vllm_image_tag and vllm_image_archive), so that every node runs the same."""
    from solv_provision import specs

    def var(name: str) -> Any:
        return head_vars.get(name) or specs.default(name)

    image = routing.instance_image(entry, var("vllm_image"), var("vllm_image_tag"),
                                   head_vars.get("vllm_image_archive") or "")
    name, _, tag = image["ref"].rpartition(":")
    return {**entry, "image": name, "image_tag": tag, "image_archive": image["archive"]}


def host_instances(host: str, models: Iterable[Mapping[str, Any]], hostvars: Mapping[str, Mapping[str, Any]],
                   groups: Mapping[str, Iterable[str]], group_names: Iterable[str]) -> list[dict[str, Any]]:
    """The vLLM instances `host` runs: its own `models` (vllm_models, normalized; a multi-node head's with its rank
    fields), then one follower instance per multi-node model of another host whose group `host` is in."""
    out = []
    for m in models:
        nodes = _nodes(m, host, groups)
        out.append({**m, **_rank_fields(nodes, 0, hostvars[host], m)} if nodes else dict(m))
    for group in sorted(set(group_names) - _SITE_GROUPS):
        for head in groups.get(group) or []:
            if head == host:
                continue
            head_vars = hostvars[head]
            for raw in head_vars.get("vllm_models") or []:
                if isinstance(raw, Mapping) and raw.get("nodes") == group:
                    entry = routing.model_defaults(raw)
                    nodes = _nodes(entry, head, groups)
                    if host in nodes:
                        out.append({**_followed(entry, head_vars),
                                    **_rank_fields(nodes, nodes.index(host), head_vars, entry)})
    return out


def is_follower(instance: Mapping[str, Any]) -> bool:
    return int(instance.get("node_rank") or 0) > 0


# --- rules -------------------------------------------------------------------------------------------------


def problems(host: str, hostvars: Mapping[str, Mapping[str, Any]], groups: Mapping[str, Iterable[str]],
             models: list[Mapping[str, Any]]) -> list[tuple[str, str]]:
    """(key, message) for this host's multi-node heads (`models`: its vllm_models, normalized)."""
    out: list[tuple[str, str]] = []
    inference = set(groups.get("inference") or [])
    for i, m in enumerate(models):
        if m.get("nodes") is None:
            continue
        label = f"vllm_models[{i}] ({m['name']})"
        group = m["nodes"]
        if not isinstance(group, str) or group in _SITE_GROUPS:
            out.append((label, f"nodes must name an inventory group of your own (the hosts that run this model "
                               f"together, this host among them), got {group!r}"))
            continue
        members = list(groups.get(group) or [])
        if host not in members:
            out.append((label, f"nodes: this host (the head) must be in group '{group}' (its hosts: "
                               f"{', '.join(members) or 'none'})"))
            continue
        if len(members) < 2:
            out.append((label, f"nodes: group '{group}' has only this host; a model across hosts needs two or more"))
            continue
        strangers = [h for h in members if h not in inference]
        if strangers:
            out.append((label, f"nodes: {', '.join(strangers)} of group '{group}' not in group 'inference'"))
        gpus, tp, pp = list(m.get("gpus") or []), int(m["tensor_parallel_size"]), int(m["pipeline_parallel_size"])
        if gpus and tp * pp != len(gpus) * len(members):
            out.append((label, f"tensor_parallel_size {tp} x pipeline_parallel_size {pp} = {tp * pp}, but "
                               f"{len(members)} nodes x {len(gpus)} GPU(s) = {len(members) * len(gpus)}; they must "
                               f"match (e.g. tensor_parallel_size: {len(gpus)}, pipeline_parallel_size: "
                               f"{len(members)})"))
        heads = [h for h in members if h != host and any(
            isinstance(o, Mapping) and o.get("nodes") == group for o in hostvars[h].get("vllm_models") or [])]
        if heads:
            out.append((label, f"group '{group}' is the nodes of another model too (on {', '.join(heads)}): one "
                               "group per model across hosts"))
    return out


def follower_problems(host: str, own: list[Mapping[str, Any]], instances: list[Mapping[str, Any]],
                      hostvars: Mapping[str, Mapping[str, Any]]) -> list[tuple[str, str]]:
    """(key, message) for what the instances `host` follows clash with: its own instances' names, GPUs and ports,
    and the model store the head stages from."""
    out = []
    mine = {m["name"]: m for m in own}
    for f in (i for i in instances if is_follower(i)):
        key = f"vllm_models (rank {f['node_rank']} of {f['name']} on {f['head']})"
        if f["name"] in mine:
            out.append((key, f"instance name '{f['name']}' is also this host's own instance; the head {f['head']} "
                             "names one this host must run under that name: rename one"))
        shared = sorted(set(f.get("gpus") or []) & {g for m in own for g in m.get("gpus") or []})
        if shared:
            out.append((key, f"GPU(s) {shared} are this host's own instances' too; a follower needs the same GPUs "
                             "as the head lists, free"))
        if int(f["master_port"]) in {int(m["port"]) for m in own}:
            out.append((key, f"master_port {f['master_port']} is the port of an instance of this host"))
        head_store = staged_models.host_store(hostvars[f["head"]])
        if head_store != staged_models.host_store(hostvars[host]):
            out.append((key, f"vllm_model_store differs from the head's ({head_store or 'none'}): every node "
                             "reads the same staged copy"))
    return out
