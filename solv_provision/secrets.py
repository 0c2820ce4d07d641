"""Generate-once secrets: who owns a secret that several roles share, and what a role's secrets step reads.

A secret's value comes from the inventory (vault) when set there, else from `<root>/secrets/<name>` on its
owning host, created once with a random value (roles/solv_common/library/solv_secret.py). Per-host secrets
are owned by the host that uses them; the shared ones below by the first host of a group, so every
consumer agrees on one value. solv_common's secrets.yml calls `secret_plan`; `solv-provision secrets show`
uses `owner` to find a shared secret without --host.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

PLACEHOLDER = "<secret:{name}>"


@dataclass(frozen=True)
class SharedSecret:
    group: str  # owned by the first host of this group
    variable: str  # the inventory variable (vault) that sets it, read on the owner
    length: int = 48
    prefix: str = ""


# The secrets more than one role reads. The roles name them; owner, length and prefix live here only.
SHARED: dict[str, SharedSecret] = {
    "vllm_api_key": SharedSecret(group="inference", variable="vllm_api_key"),
    "litellm_master_key": SharedSecret(group="gateway", variable="litellm_master_key", prefix="sk-"),
    "litellm_salt_key": SharedSecret(group="gateway", variable="litellm_salt_key"),
    "litellm_redis_password": SharedSecret(group="gateway", variable="litellm_redis_password"),
}


# The services whose containers hold each secret that can be rotated on purpose (`secrets rotate`), the first
# being the role that keeps it (its secrets step writes the new value). Only these are re-applied, and of them
# only the containers whose env file changes restart.
ROTATABLE: dict[str, tuple[str, ...]] = {
    "vllm_api_key": ("vllm", "litellm"),
    "litellm_master_key": ("litellm", "openwebui", "caddy", "prometheus"),
    "searxng_secret_key": ("searxng",),
    "openwebui_secret_key": ("openwebui",),
    "litellm_redis_password": ("litellm",),
    # Grafana keeps its admin's password in its database: the grafana role's secrets step resets it there too.
    "grafana_admin_password": ("grafana",),
}
NOT_ROTATABLE: dict[str, str] = {
    "litellm_salt_key": "it encrypts what LiteLLM stores in its database: a new one makes that unreadable",
    "openwebui_admin_password": ("Open WebUI keeps the admin's password in its own database: change it in Open "
                                 "WebUI, then set openwebui_admin_password (vault) to the new one"),
}


def inventory_variable(name: str) -> str:
    """The inventory variable that sets secret `name` (the name itself for a per-host secret)."""
    return SHARED[name].variable if name in SHARED else name


def owner(name: str, groups: Mapping[str, Iterable[str]], host: str) -> str:
    """The inventory host that owns secret `name` when `host` asks for it."""
    shared = SHARED.get(name)
    members = list(groups.get(shared.group) or []) if shared else []
    return members[0] if members else host


# The fact in which solv_common's secrets step keeps, per owner, the secret files this run read (secrets_read.yml,
# host_read.yml).
FILES_FACT = "__solv_secret_files"


def secret_plan(wanted: Iterable[Mapping[str, Any]], *, host: str, hostvars: Mapping[str, Any],
                groups: Mapping[str, Iterable[str]], root_dir: str, render: bool = False,
                files: Mapping[str, Mapping[str, str]] | None = None) -> dict[str, Any]:
    """What a role's secrets step must do for `host`.

    wanted: [{name, value (inventory value, per-host secrets), length, prefix}]; a shared secret needs its
    name only. files: owner => {name: value} of the secret files an earlier read of this run returned (each
    read returns all of its owner's files, so a host's later roles read nothing); the owner's own such files
    (its FILES_FACT: what its reading of itself brought) count too. Returns
    {'known': {name: value}, 'reads': [{owner, dir, secrets: [{name, length, prefix}]}]}: values already
    known (inventory, read earlier in this run on the owner, or placeholders in render mode) and one read per
    owning host for the rest.
    """
    known: dict[str, str] = {}
    reads: dict[str, dict[str, Any]] = {}
    for entry in wanted:
        name = str(entry["name"])
        shared = SHARED.get(name)
        where = owner(name, groups, host)
        owner_vars = hostvars[where] if where in hostvars else {}
        if shared:
            value, length, prefix = owner_vars.get(shared.variable), shared.length, shared.prefix
        else:
            value, length, prefix = entry.get("value"), int(entry.get("length") or 40), str(entry.get("prefix") or "")
        earlier = (((files or {}).get(where) or {}).get(name)
                   or ((owner_vars.get(FILES_FACT) or {}).get(where) or {}).get(name)
                   or (owner_vars.get("solv_secret_values") or {}).get(name))
        if value or earlier or render:
            known[name] = str(value or earlier or PLACEHOLDER.format(name=name))
            continue
        read = reads.setdefault(where, {"owner": where, "dir": f"{owner_vars.get('solv_root_dir') or root_dir}/secrets",
                                        "secrets": []})
        read["secrets"].append({"name": name, "length": length, "prefix": prefix})
    return {"known": known, "reads": list(reads.values())}


def files_read(earlier: Mapping[str, Mapping[str, str]], read_results: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, str]]:
    """owner => {name: value}: the secret files known so far in this run, with what these reads returned."""
    known = {owner: dict(files) for owner, files in (earlier or {}).items()}
    for result in read_results:
        owner = (result.get("item") or {}).get("owner")
        if owner and "files" in result:
            known[owner] = {**known.get(owner, {}), **result["files"]}
    return known


def collect(plan: Mapping[str, Any], read_results: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """The values of a plan: the known ones plus what each owner's read returned."""
    values = dict(plan.get("known") or {})
    for result in read_results:
        values.update(result.get("values") or {})
    return values
