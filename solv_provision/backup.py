"""`solv-provision backup` and `restore`: one solv_backup call per gateway and monitoring host
(playbooks/backup.yml, playbooks/restore.yml), the controller's half around it: folders, checksums, the secret parts' encryption,
retention, and what is printed.

Layout on the controller: <DIR>/<host>/<stamp>/ (0700) with one <part>.tar.gz per part (0600) and manifest.json,
written last: a folder without one is not a backup. Parts: `openwebui` (Open WebUI's data directory, its SQLite
databases copied online), `secrets` (<root>/secrets) and `caddy` (the entry point's private CA and certificates),
both encrypted with the vault password when one is given, else owner-only, `prometheus` (the monitoring host's
metrics: its blocks, write-ahead log and head chunks as they were at one moment, Prometheus running) and `grafana`
(Grafana's data directory: its SQLite database copied online, users and their own dashboards). A further part (LiteLLM's database)
is one more entry in the module's PARTS and in PARTS here.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from solv_provision import __version__, paths
from solv_provision.inventory import Inventory
from solv_provision.runner import UsageError, brief

MODULE = "solv_backup"
MANIFEST = "manifest.json"
FORMAT = 1
STAMP = re.compile(r"^\d{8}T\d{6}Z$")
# Part -> the unit it belongs to (None: files only). Restored by default: every part except the secret ones.
PARTS = {"openwebui": "solv-openwebui", "secrets": None, "caddy": "solv-caddy", "prometheus": "solv-prometheus",
         "grafana": "solv-grafana"}
SECRETS = "secrets"
# Parts holding keys (the secrets directory, the entry point's private CA): encrypted with the vault password,
# restored only with --with-secrets.
SECRET_PARTS = (SECRETS, "caddy")
VAULT_SUFFIX = ".vault"
DEFAULT_KEEP = 7
DEFAULT_OUTPUT = "solv-backups"  # relative to the current folder
# The groups whose hosts hold data, and the parts each group's hosts have (Grafana's only where it runs).
GROUP_PARTS = {"gateway": ("openwebui", "secrets", "caddy"), "monitoring": ("prometheus", "grafana")}
DATA_GROUPS = tuple(GROUP_PARTS)


# --- running a playbook quietly ----------------------------------------------------------------------------
@dataclass
class HostOutcome:
    result: dict[str, Any] | None = None  # the solv_backup result of the main action
    unreachable: bool = False
    error: str | None = None


@dataclass
class Played:
    hosts: dict[str, HostOutcome] = field(default_factory=dict)
    rc: int = 0
    error: str | None = None  # the play failed and no host answered


def handle_event(event: dict[str, Any], hosts: dict[str, HostOutcome], action: str, echo=None) -> bool:
    """One ansible-runner event -> the host's outcome (the first failure counts). False: keep nothing on disk."""
    from solv_provision.runner import result_message

    kind = event.get("event", "")
    data = event.get("event_data") or {}
    host, res, task = data.get("host"), data.get("res") or {}, data.get("task", "")
    if not host or kind not in ("runner_on_ok", "runner_on_failed", "runner_on_unreachable"):
        return False
    outcome = hosts.setdefault(host, HostOutcome())
    if kind == "runner_on_unreachable":
        outcome.unreachable, outcome.error = True, outcome.error or f"UNREACHABLE: {result_message(res)}"
    elif kind == "runner_on_failed" and not data.get("ignore_errors"):
        outcome.error = outcome.error or f"{task}: {result_message(res)}"
    elif kind == "runner_on_ok" and str(data.get("task_action", "")).rsplit(".", 1)[-1] == MODULE \
            and res.get("manifest" if action == "backup" else "restored") is not None:
        outcome.result = dict(res)
    if echo and " | " in task:
        state = "ok" if kind == "runner_on_ok" else "FAILED" if kind == "runner_on_failed" else "UNREACHABLE"
        echo(f"  {host}: {task}: {state}")
    return False


def play(playbook: str, inventories: list[str], *, limit: str | None, extravars: dict[str, Any], action: str,
         vault_password_file: str | None = None, echo=None) -> Played:
    """Run one of our playbooks through ansible-runner; artifacts go to a temporary folder that is removed."""
    import ansible_runner

    from solv_provision import runner

    args: list[str] = []
    if vault_password_file:
        args += ["--vault-password-file", str(Path(vault_password_file).expanduser().resolve())]
    played = Played()
    with tempfile.TemporaryDirectory(prefix=f"solv-{action}-") as private:
        r = ansible_runner.run(
            private_data_dir=private,
            playbook=str(paths.playbooks_dir() / playbook),
            inventory=[str(Path(i).expanduser().resolve()) for i in inventories],
            limit=limit,
            extravars=extravars,
            cmdline=shlex.join(args) if args else None,
            envvars=runner.ansible_env(),
            quiet=True,
            event_handler=lambda event: handle_event(event, played.hosts, action, echo),
            settings={"suppress_env_files": True},
        )
        played.rc = r.rc
        if r.rc != 0 and not played.hosts:
            played.error = f"ansible-playbook exited with {r.rc} ({r.status}): {runner.output_tail(r)}"
    return played


# --- small helpers -----------------------------------------------------------------------------------------
def new_stamp(now: datetime | None = None) -> str:
    return (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def private_dir(path: Path) -> None:
    """A folder only its owner may enter (created 0700; an existing one is tightened)."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.chmod(0o700)


def write_private(path: Path, data: bytes) -> None:
    """Write atomically, 0600 from the first byte."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def vault_lib(vault_password_file: str | None):
    """Ansible's VaultLib over the vault password file, or None without one. UsageError when unreadable."""
    if not vault_password_file:
        return None
    from ansible.errors import AnsibleError
    from ansible.parsing.dataloader import DataLoader
    from ansible.parsing.vault import VaultLib, get_file_vault_secret

    try:
        secret = get_file_vault_secret(filename=str(Path(vault_password_file).expanduser()), loader=DataLoader())
        secret.load()
    except AnsibleError as exc:
        raise UsageError(f"{vault_password_file}: cannot read the vault password: {exc}") from None
    return VaultLib([("default", secret)])


def backups_in(host_dir: Path) -> list[Path]:
    """The complete backups in a host folder (stamp folders with a manifest), oldest first."""
    if not host_dir.is_dir():
        return []
    return sorted(d for d in host_dir.iterdir() if d.is_dir() and STAMP.match(d.name) and (d / MANIFEST).is_file())


def prune(host_dir: Path, keep: int) -> list[str]:
    """Remove all but the newest `keep` complete backups of a host folder (0 keeps all); -> removed stamps."""
    if keep <= 0:
        return []
    old = backups_in(host_dir)[:-keep]
    for d in old:
        shutil.rmtree(d)
    return [d.name for d in old]


# --- backup ------------------------------------------------------------------------------------------------
def finish_backup(folder: Path, result: dict[str, Any], vault) -> tuple[dict[str, Any] | None, list[str]]:
    """Verify what was fetched, encrypt or mark the secrets, write the manifest -> (manifest, problems)."""
    manifest = json.loads(json.dumps(result["manifest"]))
    problems = []
    for name, part in manifest["parts"].items():
        path = folder / Path(part["file"]).name
        if not path.is_file():
            problems.append(f"{name}: {path.name} was not fetched")
            continue
        path.chmod(0o600)
        digest = sha256(path)
        if digest != part["sha256"]:
            problems.append(f"{name}: checksum mismatch after the transfer ({path.name} is {digest}, "
                            f"the host wrote {part['sha256']})")
    if problems:
        return None, problems
    for secret in (manifest["parts"][n] for n in SECRET_PARTS if n in manifest["parts"]):
        plain = folder / secret["file"]
        if vault is not None:
            sealed = folder / f"{secret['file']}{VAULT_SUFFIX}"
            write_private(sealed, vault.encrypt(plain.read_bytes()))
            plain.unlink()
            secret.update(file=sealed.name, plain_sha256=secret["sha256"], sha256=sha256(sealed),
                          bytes=sealed.stat().st_size, protection="encrypted (ansible-vault, the inventory's vault password)")
        else:
            secret["protection"] = "NOT encrypted (no vault password given): owner-only files; keep this folder private"
    manifest["skipped"] = result.get("skipped_parts") or {}
    manifest["solv_provision"] = __version__
    write_private(folder / MANIFEST, (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode())
    return manifest, []


def run_backup(inv: Inventory, *, inventories: list[str], output: str, limit: str | None = None,
               keep: int = DEFAULT_KEEP, vault_password_file: str | None = None, now: datetime | None = None,
               groups: tuple[str, ...] = DATA_GROUPS) -> int:
    """Back up every (limited) host of `groups` (default: every data group) into output/<host>/<stamp>/, each with
    those groups' parts; prints a summary; -> exit code."""
    vault = vault_lib(vault_password_file)
    hosts = data_hosts(inv, groups)
    if not hosts:
        raise UsageError("the inventory has no gateway host: nothing to back up (only gateway and monitoring hosts "
                         "hold data)")
    out = Path(output).expanduser().resolve()
    out.mkdir(mode=0o700, parents=True, exist_ok=True)  # an existing folder keeps its mode; host folders are 0700
    stamp = new_stamp(now)
    while any((out / h / stamp).exists() for h in hosts):  # two backups within one second
        time.sleep(1)
        stamp = new_stamp()
    for h in hosts:  # created private before fetch writes into them
        private_dir(out / h)
        (out / h / stamp).mkdir(mode=0o700)
    click.echo(f"backup {stamp} of {brief(hosts) if not limit else f'hosts matching {limit}'} -> {out}", err=True)
    played = play("backup.yml", inventories, limit=limit, action="backup", vault_password_file=vault_password_file,
                  extravars={"backup_stamp": stamp, "backup_dest": str(out),
                             "backup_parts": {h: parts_of(inv, h, groups) for h in hosts}},
                  echo=lambda s: click.echo(s, err=True))
    failed, done = [], 0
    for host in hosts:
        folder, outcome = out / host / stamp, played.hosts.get(host)
        if outcome is None:  # not matched by --limit
            shutil.rmtree(folder, ignore_errors=True)
            _remove_if_empty(out / host)
            continue
        manifest, problems = None, [outcome.error] if outcome.error else []
        if not problems and outcome.result is None:
            problems = ["no answer from solv_backup"]
        if not problems:
            manifest, problems = finish_backup(folder, outcome.result, vault)
        if problems:
            shutil.rmtree(folder, ignore_errors=True)
            _remove_if_empty(out / host)
            failed.append(host)
            click.secho(f"FAILED {host}: {'; '.join(problems)}", fg="red")
            continue
        done += 1
        removed = prune(out / host, keep)
        _print_backup(host, folder, manifest, removed, keep)
    if played.error:
        click.secho(f"FAILED: {played.error}", fg="red")
        return 1
    if not done and not failed:
        raise UsageError(f"no gateway or monitoring host matched --limit {limit}; those hosts: {brief(hosts)}")
    verdict = f"{done} host(s) backed up" + (f", {len(failed)} FAILED: {', '.join(failed)}" if failed else "")
    click.secho(verdict, fg="red" if failed else "green")
    return 1 if failed else 0


def data_hosts(inv: Inventory, groups: tuple[str, ...] = DATA_GROUPS) -> list[str]:
    """The hosts backup and restore work on (those of the data groups), each once, gateway hosts first."""
    return list(dict.fromkeys(h for group in groups for h in inv.in_group(group)))


def parts_of(inv: Inventory, host: str, groups: tuple[str, ...] = DATA_GROUPS) -> list[str]:
    """The parts `host` has, in PARTS order: those of each of `groups` it is in."""
    from solv_provision import monitoring

    mine = {p for group in groups if host in inv.in_group(group) for p in GROUP_PARTS[group]}
    if not monitoring.runs_grafana(host, inv.ordered_groups, inv.hosts):
        mine.discard("grafana")
    return [p for p in PARTS if p in mine]


def _remove_if_empty(path: Path) -> None:
    try:
        path.rmdir()
    except OSError:
        pass


def _print_backup(host: str, folder: Path, manifest: dict[str, Any], removed: list[str], keep: int) -> None:
    click.echo(f"{host}: {folder}")
    for name, part in manifest["parts"].items():
        detail = f"{part.get('files', '?')} files"
        if part.get("sqlite"):
            detail += f"; SQLite copied online: {', '.join(part['sqlite'])}"
        if part.get("protection"):
            detail += f"; {part['protection']}"
        click.echo(f"  {name:<10} {human(part['bytes']):>10}  {part['file']} ({detail})")
        for warning in part.get("warnings") or []:
            click.secho(f"  warning: {warning}", fg="yellow")
    for name, why in (manifest.get("skipped") or {}).items():
        click.echo(f"  {name:<10} {'-':>10}  skipped: {why}")
    versions = {u: v for u, v in (manifest.get("versions") or {}).items()}
    if versions:
        click.echo("  versions: " + ", ".join(f"{u} {v or 'not running'}" for u, v in versions.items()))
    if removed:
        click.echo(f"  retention ({keep} kept): removed {', '.join(removed)}")


# --- restore -----------------------------------------------------------------------------------------------
def find_backup(source: str) -> tuple[Path, dict[str, Any]]:
    """--from: a backup folder, or a host folder (its newest backup) -> (folder, manifest). UsageError."""
    src = Path(source).expanduser()
    if not src.is_dir():
        raise UsageError(f"--from {source}: no such folder")
    folder = src
    if not (src / MANIFEST).is_file():
        found = backups_in(src)
        if not found:
            raise UsageError(f"--from {source}: no {MANIFEST} there; give a backup folder (<DIR>/<host>/<stamp>) "
                             "or a host folder (<DIR>/<host>: its newest backup)")
        folder = found[-1]
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UsageError(f"{folder / MANIFEST}: unreadable: {exc}") from None
    parts = manifest.get("parts") if isinstance(manifest, dict) else None
    if not (isinstance(manifest, dict) and isinstance(manifest.get("host"), str) and isinstance(parts, dict)
            and all(isinstance(p, dict) and p.get("file") and p.get("sha256") for p in parts.values())):
        raise UsageError(f"{folder / MANIFEST}: not a solv-provision backup manifest")
    if int(manifest.get("format") or 0) > FORMAT:
        raise UsageError(f"{folder / MANIFEST}: format {manifest['format']} is newer than this solv-provision reads")
    return folder.resolve(), manifest


def restore_target(inv: Inventory, manifest: dict[str, Any], limit: str | None, force_host: bool) -> str:
    """The one host to restore on; refuses a backup of another host unless force_host. UsageError."""
    hosts, made_on = data_hosts(inv), manifest["host"]
    if limit:
        if limit not in inv.hosts:
            raise UsageError(f"--limit {limit}: restore takes the name of one gateway or monitoring host; "
                             f"those hosts: {brief(hosts)}")
        if limit not in hosts:
            raise UsageError(f"--limit {limit}: not a gateway or monitoring host (only they hold data); "
                             f"those hosts: {brief(hosts)}")
        target = limit
    elif made_on in hosts:
        target = made_on
    else:
        raise UsageError(f"the backup is of {made_on}, which is not a gateway or monitoring host of this inventory; "
                         f"name the host to restore on with --limit HOST (and --force-host)")
    if target != made_on and not force_host:
        raise UsageError(f"the backup is of {made_on}, not of {target}: refused (pass --force-host to restore it "
                         f"on {target})")
    return target


def restore_parts(manifest: dict[str, Any], with_secrets: bool) -> list[str]:
    wanted = [p for p in PARTS if p not in SECRET_PARTS and p in manifest["parts"]]
    if with_secrets:
        secret = [p for p in SECRET_PARTS if p in manifest["parts"]]
        if not secret:
            raise UsageError("--with-secrets: this backup has no secrets part")
        wanted += secret
    if not wanted:
        raise UsageError(f"nothing to restore: the backup holds {', '.join(manifest['parts']) or 'no part'}")
    return wanted


def verify_backup(folder: Path, manifest: dict[str, Any], parts: list[str]) -> None:
    """Every part to restore is there and matches its checksum (before any host is contacted). UsageError."""
    for name in parts:
        entry = manifest["parts"][name]
        path = folder / Path(entry["file"]).name
        if not path.is_file():
            raise UsageError(f"{path}: missing (part {name} of the manifest)")
        digest = sha256(path)
        if digest != entry["sha256"]:
            raise UsageError(f"checksum mismatch: {path} is {digest}, the manifest says {entry['sha256']}; "
                             "refusing to restore a damaged backup")


def uploads(folder: Path, manifest: dict[str, Any], parts: list[str], vault, scratch: Path):
    """The files to upload and the manifest the host checks them against (plain files: vault decrypted here)."""
    files, host_parts = [], {}
    for name in parts:
        entry = manifest["parts"][name]
        path = folder / Path(entry["file"]).name
        digest = entry["sha256"]
        if path.name.endswith(VAULT_SUFFIX):
            if vault is None:
                raise UsageError(f"{path.name} is encrypted: give the vault password it was made with "
                                 "(--vault-password-file or ANSIBLE_VAULT_PASSWORD_FILE)")
            from ansible.errors import AnsibleError

            try:
                data = vault.decrypt(path.read_bytes())
            except AnsibleError as exc:
                raise UsageError(f"{path.name}: cannot decrypt with this vault password: {exc}") from None
            path = scratch / path.name[: -len(VAULT_SUFFIX)]
            write_private(path, data)
            digest = entry.get("plain_sha256") or hashlib.sha256(data).hexdigest()
            if hashlib.sha256(data).hexdigest() != digest:
                raise UsageError(f"{path.name}: decrypted content does not match the manifest's checksum")
        files.append({"src": str(path), "file": path.name})
        host_parts[name] = {"file": path.name, "sha256": digest}
    return files, {"host": manifest["host"], "stamp": manifest.get("stamp"), "parts": host_parts}


def run_restore(inv: Inventory, *, inventories: list[str], source: str, limit: str | None = None,
                force_host: bool = False, with_secrets: bool = False, timeout: int = 300,
                vault_password_file: str | None = None) -> int:
    """Checks on the controller (UsageError, nothing contacted), then playbooks/restore.yml on one host."""
    folder, manifest = find_backup(source)
    target = restore_target(inv, manifest, limit, force_host)
    parts = restore_parts(manifest, with_secrets)
    verify_backup(folder, manifest, parts)
    vault = vault_lib(vault_password_file) if set(SECRET_PARTS) & set(parts) else None
    stamp = new_stamp()
    with tempfile.TemporaryDirectory(prefix="solv-restore-") as scratch:
        os.chmod(scratch, 0o700)
        files, host_manifest = uploads(folder, manifest, parts, vault, Path(scratch))
        made = f"{manifest['host']}, made {manifest.get('created_at') or manifest.get('stamp') or '?'}"
        click.echo(f"restore {', '.join(parts)} on {target} from {folder} (backup of {made})", err=True)
        played = play("restore.yml", inventories, limit=target, action="restore", vault_password_file=vault_password_file,
                      echo=lambda s: click.echo(s, err=True),
                      extravars={"restore_stamp": stamp, "restore_files": files, "restore_manifest": host_manifest,
                                 "restore_parts": parts, "restore_force_host": force_host,
                                 "restore_gate_timeout": timeout})
    outcome = played.hosts.get(target)
    if played.error or outcome is None:
        click.secho(f"FAILED {target}: {played.error or 'the host did not run the restore'}", fg="red")
        return 1
    if outcome.error or outcome.result is None:
        click.secho(f"FAILED {target}: {outcome.error or 'no answer from solv_backup'}", fg="red")
        return 1
    _print_restore(target, manifest, outcome.result)
    return 0


def _print_restore(host: str, manifest: dict[str, Any], result: dict[str, Any]) -> None:
    for name, r in result["restored"].items():
        click.echo(f"{host}: restored {name} ({r['files']} files) into {r['target']}")
        if r.get("previous"):
            click.echo(f"  the data it replaced is kept in {r['previous']} (remove it when satisfied)")
    for unit, g in (result.get("gates") or {}).items():
        click.secho(f"{host}: {unit} healthy after {g['elapsed']:g}s", fg="green")
    before = result.get("versions_before") or {}
    for unit, made_with in (manifest.get("versions") or {}).items():
        if unit in before and made_with and before[unit] and made_with != before[unit]:
            click.secho(f"warning: the backup was made with {made_with}, {host} ran {before[unit]}: a newer "
                        "version migrates the restored database, an older one may not read it", fg="yellow")
    if SECRETS in result["restored"]:
        click.secho("note: the secrets directory was restored; run `solv-provision apply` so that the services "
                    "use these secrets", fg="yellow")
