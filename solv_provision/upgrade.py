"""`solv-provision upgrade`: the inventory's new state rolled out with as little downtime as the site allows.

1. Stage: every image the inventory wants is made present on every host, in parallel (the roles with
   `solv_stage_images`: nothing is written, nothing restarts), so that each host's downtime is a restart,
   not a transfer.
2. Inference hosts, `serial` at a time (replicas of a model are on different hosts, so the model never
   leaves the gateway), stopping at the first host that fails; each restart is guarded by solv_common's
   health gate and rolled back there when it fails.
3. A backup of the gateway hosts' data (Open WebUI, secrets, the entry point's CA; not the metrics), before the
   first gateway host is touched.
4. Gateway hosts, `serial` at a time, stopping likewise.
Hosts after a failed one are left untouched and named.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

import click

from solv_provision import backup, runner
from solv_provision.inventory import Inventory
from solv_provision.services import GROUP_ROLES, PLAYBOOKS, SERVICE_GROUP



@dataclass(frozen=True)
class Options:
    service: str | None = None
    limit: str | None = None
    serial: int = 1
    extra_vars: tuple[str, ...] = ()
    forks: int | None = None
    verbose: int = 0
    vault_password_file: str | None = None
    backup_dir: str = backup.DEFAULT_OUTPUT
    keep: int = backup.DEFAULT_KEEP


def run_upgrade(inv: Inventory, *, inventories: list[str], options: Options) -> int:
    """Stage, then roll out group by group; returns the exit code (0 ok, 1 a host failed)."""
    services = [options.service] if options.service else list(SERVICE_GROUP)
    groups = [g for g in GROUP_ROLES if any(SERVICE_GROUP[s] == g for s in services) and inv.in_group(g)]
    # One rollout per playbook: monitoring.yml applies the roles of both monitoring groups (its hosts are the
    # first group's, the node exporters' hosts, which include the monitoring host).
    groups = [g for i, g in enumerate(groups) if PLAYBOOKS[g] not in {PLAYBOOKS[e] for e in groups[:i]}]
    tags = ",".join(services)

    _say("stage: every image present on every host (nothing restarts)")
    if not _ok(_play(inv, inventories, options, "site.yml", tags=tags, extra={"solv_stage_images": True}), "staging"):
        return 1
    for group in groups:
        if group == "gateway":
            _say("backup: gateway data, before the first gateway host is touched")
            # The gateway's parts only: what its upgrade may change (not the monitoring host's metrics, which a
            # backup of its own keeps: copying a large store on every upgrade would cost minutes and disk).
            code = backup.run_backup(inv, inventories=inventories, output=options.backup_dir, limit=options.limit,
                                     keep=options.keep, vault_password_file=options.vault_password_file,
                                     groups=("gateway",))
            if code != 0:
                _say("backup failed: no gateway host was touched", err=True)
                return code
        _say(f"{group}: {options.serial} host(s) at a time, stopping at the first that fails")
        result = _play(inv, inventories, options, PLAYBOOKS[group], tags=tags,
                       extra={"solv_serial": options.serial, "solv_max_fail_percentage": 0})
        if not _ok(result, group):
            untouched = untouched_hosts(inv.in_group(group), result.hosts, later=_later(inv, groups, group))
            if untouched and not options.limit:
                _say(f"untouched (the rollout stopped): {', '.join(untouched)}", err=True)
            elif options.limit:
                _say(f"the hosts of --limit {options.limit} after the failed one were not touched", err=True)
            return 1
    _say("upgrade done: every host passed its health gates")
    return 0


def untouched_hosts(group_hosts: Iterable[str], reached: Iterable[str], *, later: Iterable[str] = ()) -> list[str]:
    """Hosts of the stopped group the rollout never reached, then every host of the groups after it."""
    seen = set(reached)
    return [h for h in group_hosts if h not in seen] + [h for h in later if h not in seen]


def _later(inv: Inventory, groups: list[str], group: str) -> list[str]:
    return [h for g in groups[groups.index(group) + 1:] for h in inv.in_group(g)]


def _play(inv: Inventory, inventories: list[str], options: Options, playbook: str, *, tags: str, extra: dict):
    return runner.run_playbook(playbook, inventories, mode="apply", limit=options.limit, tags=tags,
                               extra_vars=[json.dumps(extra), *options.extra_vars], forks=options.forks,
                               verbosity=options.verbose, vault_password_file=options.vault_password_file, inv=inv)


def _ok(result, step: str) -> bool:
    if result.exit_code == 0:
        return True
    _say(f"{step} failed; the rollout stops here", err=True)
    return False


def _say(message: str, err: bool = False) -> None:
    click.secho(f"== {message}", fg="red" if err else "cyan", err=True)
