"""`solv-provision secrets rotate NAME`: a new value for one secret, on purpose, and exactly the services that
use it re-applied (of those, only the containers whose env file changes restart, by solv_common's spec hash).

Two runs: playbooks/rotate.yml on the host that keeps the secret (the keeping role's own secrets step writes the
new value), then site.yml with the tags of the services that use it, on the hosts that run them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from solv_provision import secrets as shared
from solv_provision.inventory import Inventory
from solv_provision.runner import UsageError
from solv_provision.services import SERVICE_GROUP


@dataclass(frozen=True)
class Rotation:
    name: str
    owner: str  # the host that keeps it
    role: str  # the role whose secrets step writes it
    services: tuple[str, ...]  # tags re-applied
    hosts: tuple[str, ...]  # where those services run

    def extra_vars(self) -> str:
        return json.dumps({"solv_rotate_name": self.name, "solv_rotate_role": self.role})


def plan(inv: Inventory, name: str, host: str | None) -> Rotation:
    """What rotating `name` means for this inventory; UsageError when it cannot or must not be rotated here."""
    if name in shared.NOT_ROTATABLE:
        raise UsageError(f"{name} is not rotated by solv-provision: {shared.NOT_ROTATABLE[name]}")
    if name not in shared.ROTATABLE:
        raise UsageError(f"{name} cannot be rotated; rotatable: {', '.join(sorted(shared.ROTATABLE))}")
    services = shared.ROTATABLE[name]
    groups = {g: inv.in_group(g) for g in ("inference", "gateway", "monitoring")}
    if name in shared.SHARED:
        if host:
            raise UsageError(f"{name} is shared: it is kept on its owner, leave out --host")
        owner = shared.owner(name, groups, "")
        hosts = sorted({h for s in services for h in groups.get(SERVICE_GROUP[s], [])})
    else:
        if not host:
            raise UsageError(f"{name} is kept per host: name the host with --host")
        owner, hosts = host, [host]
    if owner not in inv.hosts or owner not in groups.get(SERVICE_GROUP[services[0]], []):
        raise UsageError(f"host {owner or '(none)'} does not run {services[0]}, which keeps {name}")
    variable = shared.inventory_variable(name)
    if inv.hosts[owner].get(variable):
        raise UsageError(f"{name} is set in the inventory ({variable} of {owner}): change the value there "
                         "(vault) and run apply")
    return Rotation(name, owner, services[0], services, tuple(hosts))
