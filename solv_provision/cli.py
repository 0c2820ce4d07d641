"""The `solv-provision` command line: thin verbs over validate / runner / render / lab.

Imports of Ansible and rich happen inside the verbs so that `--help` stays fast.
"""

from __future__ import annotations

import contextlib
import functools
import json
import sys
from pathlib import Path

import click

from solv_provision import __version__
from solv_provision.services import SERVICES

# Exit codes (documented in README.md).
EXIT_OK = 0
EXIT_FAILED = 1  # a host failed or was unreachable
EXIT_INVALID = 2  # validation or usage error; nothing was contacted
EXIT_DRIFT = 3  # `check`: changes are pending


def inventory_option(f):
    return click.option(
        "-i", "--inventory", "inventories", multiple=True, required=True, type=click.Path(exists=False),
        help="Inventory file or folder (repeatable), as for ansible-playbook.",
    )(f)


def vault_option(f):
    return click.option(
        "--vault-password-file", type=click.Path(), envvar="ANSIBLE_VAULT_PASSWORD_FILE",
        help="Vault password file (or set ANSIBLE_VAULT_PASSWORD_FILE).",
    )(f)


def play_options(f):
    """The options every verb that runs a play shares."""
    options = [
        inventory_option,
        click.option("-l", "--limit", help="Limit to these hosts/groups (Ansible pattern)."),
        click.option("-t", "--tags", help="Only run tasks with these tags (comma-separated)."),
        click.option("-e", "--extra-vars", "extra_vars", multiple=True,
                     help="Extra variables: key=value, YAML/JSON, or @file (repeatable)."),
        click.option("-f", "--forks", type=click.IntRange(1, 500), default=None, help="Parallel hosts."),
        click.option("-v", "--verbose", count=True, help="More output; -v shows Ansible's own output too."),
        vault_option,
    ]
    for option in reversed(options):
        f = option(f)
    return f


def fail(message: str, code: int = EXIT_INVALID) -> None:
    click.secho(f"error: {message}", fg="red", err=True)
    sys.exit(code)


@contextlib.contextmanager
def usage_errors():
    """A runner.UsageError (a request that cannot run as given) becomes one line and exit 2."""
    from solv_provision.runner import UsageError

    try:
        yield
    except UsageError as exc:
        fail(str(exc))


def load_and_validate(inventories, vault_password_file, quiet=False, store_checked=True, bundle_dir=None):
    """Load + validate; exit 2 with every problem listed when something is wrong. With `bundle_dir` (`--bundle`)
    every host sees it as solv_bundle_dir, as the play will."""
    inv = load_inventory(inventories, vault_password_file, bundle_dir=bundle_dir)
    check_inventory(inv, quiet=quiet, store_checked=store_checked, bundle_dir=bundle_dir)
    return inv


def load_inventory(inventories, vault_password_file, bundle_dir=None):
    """The inventory loaded (exit 2 when it cannot be), not yet validated."""
    from solv_provision import inventory as inv_mod

    try:
        inv = inv_mod.load(list(inventories), vault_password_file)
    except inv_mod.InventoryError as exc:
        fail(str(exc))
    if bundle_dir:
        for hostvars in inv.hosts.values():
            hostvars["solv_bundle_dir"] = bundle_dir
    return inv


def check_inventory(inv, quiet=False, store_checked=True, bundle_dir=None) -> None:
    """Validate INV; exit 2 with every problem listed when something is wrong."""
    from solv_provision.validate import Problem, validate

    problems = validate(inv, store_checked=store_checked)
    if bundle_dir:
        from solv_provision import bundle

        problems += [Problem(message, key="--bundle") for message in bundle.problems(inv, bundle_dir)]
    if problems:
        click.secho(f"{len(problems)} problem(s) in the inventory; no host was contacted:", fg="red", err=True)
        for p in problems:
            click.echo(f"  - {p}", err=True)
        sys.exit(EXIT_INVALID)
    if not quiet:
        shown = {g: inv.in_group(g) for g in ("inference", "gateway")}
        # Optional groups only when they have a host.
        shown |= {g: inv.in_group(g) for g in ("registry", "monitoring") if inv.in_group(g)}
        click.secho(inventory_summary(len(inv.hosts), shown), fg="green", err=True)


SUMMARY_NAMES = 5  # names shown per group before "… and N more"


def inventory_summary(count: int, groups: dict[str, list[str]]) -> str:
    """One line: every name when each group is small, else counts per group and the first few names."""
    if all(len(names) <= SUMMARY_NAMES for names in groups.values()):
        return f"inventory ok: {count} host(s), " + ", ".join(f"{g}: {', '.join(n) or '-'}" for g, n in groups.items())
    from solv_provision.runner import brief

    parts = [f"{g}: {len(n)} ({brief(n, SUMMARY_NAMES)})" if n else f"{g}: 0" for g, n in groups.items()]
    return f"inventory ok: {count} host(s); " + "; ".join(parts)


def no_traceback(f):
    """Turn unexpected exceptions into one clear line (exit 1) unless -vvv/SOLV_DEBUG asks for the traceback."""

    @functools.wraps(f)
    def wrapper(*args, **kwargs):
        try:
            return f(*args, **kwargs)
        except (click.exceptions.Exit, click.ClickException, SystemExit, KeyboardInterrupt):
            raise
        except Exception as exc:  # noqa: BLE001
            import os

            if os.environ.get("SOLV_DEBUG"):
                raise
            fail(f"{type(exc).__name__}: {exc} (set SOLV_DEBUG=1 for the traceback)", EXIT_FAILED)

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(__version__, prog_name="solv-provision")
def main():
    """Provision the SOLV stack (SearXNG, Open WebUI, LiteLLM, vLLM) on GPU servers.

    \b
    Exit codes: 0 ok (check: no drift) | 1 a host failed or was unreachable
                2 invalid inventory or usage (nothing contacted) | 3 check: changes pending
    """


@main.command()
@inventory_option
@vault_option
@no_traceback
def validate(inventories, vault_password_file):
    """Check the inventory offline; contacts no host. Exit 0 when valid, 2 otherwise."""
    load_and_validate(inventories, vault_password_file)


def bundle_options(f):
    """--bundle and where the registry serving it listens (apply, check, upgrade)."""
    options = [
        click.option("--bundle", "bundle_dir", type=click.Path(file_okay=False, exists=True),
                     help="Converge from this offline bundle (`bundle create`): images through a registry, models "
                          "from it; nothing from the internet."),
        click.option("--bundle-address", metavar="ADDRESS",
                     help="Where the hosts reach this machine's registry for the bundle (default: this machine's "
                          "address towards the first host). Without a `registry` group only."),
        click.option("--bundle-port", type=click.IntRange(1, 65535), default=None,
                     help="Port of that registry (default: a free one)."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


@contextlib.contextmanager
def bundle_served(inv, bundle_dir, address, port):
    """The extra variables of a run ({} without a bundle); see bundle.serving."""
    if not bundle_dir:
        yield {}
        return
    from solv_provision import bundle

    try:
        with bundle.serving(inv, bundle_dir, address=address, port=port,
                            echo=lambda text: click.secho(text, err=True)) as extra:
            yield extra
    except bundle.BundleError as exc:
        fail(str(exc), EXIT_FAILED)


def _run(mode, *, inventories, limit, tags, extra_vars, forks, verbose, vault_password_file, playbook="site.yml",
         bundle_dir=None, bundle_address=None, bundle_port=None):
    """apply/check: usage checks (exit 2), then validation (exit 2) while ansible-playbook starts, held until the
    inventory is found valid (solv_provision.held_play), then the play; exits with its code."""
    from solv_provision import runner

    with usage_errors():
        book = runner.resolve_playbook(playbook)
        runner.check_extra_vars(extra_vars)
    bundle_dir = str(Path(bundle_dir).resolve()) if bundle_dir else None
    with runner.held_playbook(str(book), list(inventories), mode=mode, limit=limit, tags=tags,
                              extra_vars=list(extra_vars), forks=forks, verbosity=verbose,
                              vault_password_file=vault_password_file, late_vars=bool(bundle_dir)) as held:
        inv = load_and_validate(inventories, vault_password_file, bundle_dir=bundle_dir)
        if limit:
            with usage_errors():
                runner.check_limit(limit, hosts=inv.hosts, groups=inv.ansible_groups)
        with bundle_served(inv, bundle_dir, bundle_address, bundle_port) as bundle_vars:
            result = held.run(inv, late_vars=bundle_vars)
    sys.exit(result.exit_code)


@main.command()
@play_options
@click.option("--playbook", default="site.yml", show_default=True,
              help="Playbook from playbooks/ (site.yml, gpu_base.yml, inference.yml, gateway.yml) or a path.")
@bundle_options
@no_traceback
def apply(**options):
    """Validate, then run playbooks/site.yml: live progress per host, a summary table at the end."""
    _run("apply", **options)


@main.command()
@play_options
@click.option("--playbook", default="site.yml", show_default=True, help="Playbook from playbooks/ or a path.")
@bundle_options
@no_traceback
def check(**options):
    """Dry run (check + diff): what would change on each host. Exit 0 no drift, 3 drift, 1 failure."""
    _run("check", **options)


@main.command()
@play_options
@click.option("--service", type=click.Choice(SERVICES),
              help="Upgrade this service only (default: all of them).")
@click.option("--serial", type=click.IntRange(min=1), default=1, show_default=True,
              help="Hosts upgraded at a time within each group.")
@click.option("--backup-dir", default="solv-backups", show_default=True, type=click.Path(file_okay=False),
              help="Where the backup taken before the first gateway host goes (see `backup`).")
@click.option("--keep", type=click.IntRange(min=0), default=7, show_default=True, help="Backups kept per host.")
@bundle_options
@no_traceback
def upgrade(inventories, limit, tags, extra_vars, forks, verbose, vault_password_file, service, serial, backup_dir,
            keep, bundle_dir, bundle_address, bundle_port):
    """Roll the inventory out with the least downtime: every new image made present on every host first, then
    inference hosts SERIAL at a time, a backup of the gateways' data, then gateway hosts SERIAL at a time;
    stops at the first host that fails its health gate (rolled back there) and names the hosts left untouched.

    Exit 0 every host upgraded and healthy, 1 the rollout stopped, 2 invalid inventory or usage.
    """
    if tags:
        fail("upgrade takes --service, not --tags")
    bundle_dir = str(Path(bundle_dir).resolve()) if bundle_dir else None
    inv = load_and_validate(inventories, vault_password_file, bundle_dir=bundle_dir)
    from solv_provision import runner
    from solv_provision.upgrade import Options, run_upgrade

    with usage_errors():
        if limit:
            runner.check_limit(limit, hosts=inv.hosts, groups=inv.ansible_groups)
        runner.check_extra_vars(extra_vars)
    with bundle_served(inv, bundle_dir, bundle_address, bundle_port) as bundle_vars, usage_errors():
        served = (json.dumps(bundle_vars),) if bundle_vars else ()
        code = run_upgrade(inv, inventories=list(inventories), options=Options(
            service=service, limit=limit, serial=serial, extra_vars=tuple(extra_vars) + served,
            forks=forks, verbose=verbose, vault_password_file=vault_password_file, backup_dir=backup_dir, keep=keep))
    sys.exit(code)


@main.command()
@inventory_option
@vault_option
@click.option("-l", "--limit", help="Limit to these hosts/groups (Ansible pattern).")
@click.option("--json", "as_json", is_flag=True,
              help="Print JSON (schema: docs/status-schema.json); with --watch one document per line.")
@click.option("--watch", type=click.FloatRange(min=1), metavar="SECONDS",
              help="Repeat every SECONDS until Ctrl-C.")
@no_traceback
def status(inventories, vault_password_file, limit, as_json, watch):
    """Read-only health of every host and service: units, images, rollback, health gates, uptime, restarts,
    GPUs, and the models LiteLLM serves versus the inventory. Exit 0 all healthy, 1 otherwise (each problem named).
    """
    inv = load_and_validate(inventories, vault_password_file, quiet=as_json)
    from solv_provision import runner
    from solv_provision import status as status_mod

    if limit:
        with usage_errors():
            runner.check_limit(limit, hosts=inv.hosts, groups=inv.ansible_groups)
    sys.exit(status_mod.main(inv, inventories=list(inventories), limit=limit,
                             vault_password_file=vault_password_file, as_json=as_json, watch=watch))


@main.command()
@inventory_option
@vault_option
@click.option("--url", metavar="URL", help="Prometheus's address, e.g. http://127.0.0.1:9090 through an SSH tunnel "
              "(default: where the inventory publishes it on the monitoring host).")
@click.option("--once", is_flag=True, help="Print the view once and exit.")
@click.option("--interval", type=click.FloatRange(min=0.5), default=2.0, show_default=True, metavar="SECONDS",
              help="Refresh every SECONDS.")
@no_traceback
def top(inventories, vault_password_file, url, once, interval):
    """Live view from Prometheus: per model requests, requests/s, running and waiting requests, time to first token
    (p50, p95) and tokens/s; per GPU memory and utilisation; per team requests and spend. Read-only.
    Exit 0, 1 when Prometheus cannot be asked, 2 invalid inventory or usage.
    """
    inv = load_and_validate(inventories, vault_password_file, quiet=True)
    from rich.console import Console

    from solv_provision import top as top_mod

    try:
        sys.exit(top_mod.main(inv, url=url, once=once, interval=interval, console=Console()))
    except top_mod.TopError as exc:
        fail(str(exc), code=1)


@main.command()
@inventory_option
@vault_option
@click.option("-o", "--output", default="solv-backups", show_default=True, type=click.Path(file_okay=False),
              help="Folder on this machine; each backup goes to OUTPUT/<host>/<stamp>/.")
@click.option("-l", "--limit", help="Limit to these gateway hosts (Ansible pattern).")
@click.option("--keep", type=click.IntRange(min=0), default=7, show_default=True,
              help="Backups kept per host folder; older ones are removed after a successful backup (0: keep all).")
@no_traceback
def backup(inventories, vault_password_file, output, limit, keep):
    """Back up every gateway host, while it runs: Open WebUI's data (its SQLite databases copied online, uploads,
    vector store, cache) and the secrets directory, into OUTPUT/<host>/<stamp>/ with manifest.json (time,
    versions, checksums).

    \b
    The secrets part is encrypted with the vault password when one is given (--vault-password-file or
    ANSIBLE_VAULT_PASSWORD_FILE); without one it is NOT encrypted, only owner-only (0600 in a 0700 folder):
    keep the backups private. Exit 0 ok, 1 a host failed, 2 usage error.
    """
    inv = load_and_validate(inventories, vault_password_file)
    from solv_provision import backup as backup_mod
    from solv_provision import runner

    with usage_errors():
        if limit:
            runner.check_limit(limit, hosts=inv.hosts, groups=inv.ansible_groups)
        code = backup_mod.run_backup(inv, inventories=list(inventories), output=output, limit=limit, keep=keep,
                                     vault_password_file=vault_password_file)
    sys.exit(code)


@main.command()
@inventory_option
@vault_option
@click.option("--from", "source", required=True, type=click.Path(),
              help="A backup folder (OUTPUT/<host>/<stamp>), or a host folder (OUTPUT/<host>: its newest backup).")
@click.option("-l", "--limit", metavar="HOST",
              help="The gateway host to restore on (default: the host the backup was made on).")
@click.option("--force-host", is_flag=True, help="Restore a backup made on another host.")
@click.option("--with-secrets", is_flag=True,
              help="Also restore the secrets directory and the entry point's CA (then run apply so that the services use them).")
@click.option("--timeout", type=click.IntRange(min=1), default=300, show_default=True,
              help="Seconds to wait for the service's health gate after the start.")
@no_traceback
def restore(inventories, vault_password_file, source, limit, force_host, with_secrets, timeout):
    """Restore Open WebUI's data from a backup: checksums verified here first, then on the host: the service
    stopped, its data moved aside (<data>.before-restore-<stamp>), the backup extracted, the service started and
    health-checked; on failure the previous data is put back and started again.

    \b
    A backup of another host is refused unless --force-host. The secrets and the entry point's CA are restored
    only with --with-secrets.
    Exit 0 restored and healthy, 1 the host failed (previous data back), 2 usage error or a damaged backup
    (nothing contacted).
    """
    inv = load_and_validate(inventories, vault_password_file)
    from solv_provision import backup as backup_mod

    with usage_errors():
        code = backup_mod.run_restore(inv, inventories=list(inventories), source=source, limit=limit,
                                      force_host=force_host, with_secrets=with_secrets, timeout=timeout,
                                      vault_password_file=vault_password_file)
    sys.exit(code)


@main.command()
@click.argument("what", type=click.Choice([*SERVICES, "all"]))
@inventory_option
@vault_option
@click.option("--host", "host", help="Render for this host (default: every host the service runs on).")
@click.option("--file", "file_name", metavar="NAME",
              help="Print only this file, nothing else (base name or path suffix: config.yaml, env, qwen/env, "
                   "solv-vllm-qwen.service); needs --host when several hosts run the service.")
@click.option("-o", "--output", type=click.Path(file_okay=False), help="Write the files here instead of printing.")
@no_traceback
def render(what, inventories, vault_password_file, host, file_name, output):
    """Render the files the roles would put on a host (offline, same templates). Secrets are placeholders."""
    # The play starts (held) before the inventory is read, and the inventory is checked while the play renders:
    # the play contacts no host and writes only into a folder of its own, which a problem throws away unread (the
    # same exit and message as a check before it).
    from solv_provision.render import RenderError, RenderPlay, hosts_for, select_file
    from solv_provision.runner import brief

    try:
        with RenderPlay(list(inventories), vault_password_file) as play:
            inv = load_inventory(inventories, vault_password_file)
            check = functools.partial(check_inventory, inv, quiet=True)
            try:
                hosts = hosts_for(inv, what, host)
            except Exception:
                check()  # an inventory's problems are said before what they make of --host
                raise
            if file_name and len(hosts) > 1:
                raise RenderError(f"--file needs one host: {what} runs on {brief(hosts)}; choose one with --host",
                                  usage=True)
            files = play.files(inv, what, host=hosts[0] if file_name else host, meanwhile=check)
        if file_name:
            files = dict([select_file(files, file_name)])
    except RenderError as exc:
        fail(str(exc), EXIT_INVALID if exc.usage else EXIT_FAILED)
    if output:
        _write_files(files, Path(output))
    elif file_name:
        click.echo(next(iter(files.values())), nl=False)  # exactly the file: ready to pipe
    else:
        for rel, text in files.items():
            click.secho(f"# --- {rel}", fg="cyan")
            click.echo(text.rstrip("\n"))


def _write_files(files: dict[str, str], out: Path) -> None:
    for rel, text in files.items():
        dest = out / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(text, encoding="utf-8")
        click.echo(str(dest))


@main.group()
def inventory():
    """Inventory helpers."""


@inventory.command("init")
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--force", is_flag=True, help="Overwrite files that exist.")
@no_traceback
def inventory_init(directory, force):
    """Scaffold a new inventory with every variable listed and commented."""
    from solv_provision.scaffold import scaffold_inventory

    try:
        written = scaffold_inventory(Path(directory), force=force)
    except FileExistsError as exc:
        fail(f"{exc} exists; use --force to overwrite")
    for path in written:
        click.echo(f"wrote {path}")
    click.echo(f"next: edit {directory}/hosts.yml, then: solv-provision validate -i {directory}")


@main.group()
def models():
    """Model weights staged from a model store on the controller (vllm_model_store)."""


@models.command("fetch")
@inventory_option
@vault_option
@click.option("-o", "--output", "store", type=click.Path(file_okay=False),
              help="The model store to fill (default: each inference host's vllm_model_store).")
@click.option("--refresh", is_flag=True,
              help="Download models the store holds again (a branch such as main moves to its newest commit).")
@no_traceback
def models_fetch(inventories, vault_password_file, store, refresh):
    """Download every model the inventory stages into the model store.

    Resumable (an interrupted download continues), with progress bars. A gated model needs a token: the
    inventory's vllm_hf_token (vault), else HF_TOKEN. HF_ENDPOINT names a Hub mirror. apply then copies each
    host's models from the store; nothing is downloaded on the hosts.
    """
    from solv_provision import models as staged

    inv = load_and_validate(inventories, vault_password_file, quiet=True, store_checked=False)
    inference = {h: inv.hosts[h] for h in inv.in_group("inference")}
    plan = staged.needed(inference, str(Path(store).resolve()) if store else None)
    if not plan:
        fail("nothing to fetch: no inference host sets vllm_model_store (or give -o STORE), or every model is a path")
    failed = 0
    for where, refs in sorted(plan.items()):
        for ref in sorted(refs):
            click.echo(f"{ref} -> {where}/{ref.relpath}")
            try:
                fetched, manifest = staged.fetch(ref, Path(where), token=staged.token(inference), refresh=refresh)
            except Exception as exc:  # noqa: BLE001 - huggingface_hub's and the network's errors, one line each
                failed += 1
                click.secho(f"  failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}",
                            fg="red", err=True)
                continue
            size = staged.manifest_bytes(manifest)
            state = "downloaded" if fetched else "already in the store"
            click.echo(f"  {state}: {len(manifest['files'])} file(s), {size / 2**20:.1f} MiB")
    if store and any(str(h.get("vllm_model_store") or "") != str(Path(store).resolve()) for h in inference.values()):
        click.echo(f"apply stages from vllm_model_store: set it to {Path(store).resolve()} on the inference hosts")
    if failed:
        fail(f"{failed} model(s) not fetched", EXIT_FAILED)


@main.group()
def bundle():
    """Offline bundles: everything an inventory needs at a site without internet."""


@bundle.command("create")
@inventory_option
@vault_option
@click.option("-o", "--output", required=True, type=click.Path(file_okay=False),
              help="The bundle's directory (created; a bundle there is replaced).")
@no_traceback
def bundle_create(inventories, vault_password_file, output):
    """Write every image the inventory runs (one docker save: shared layers once), its staged models and
    bundle.json (versions, checksums). Run it where the images can be pulled and `models fetch` ran."""
    from solv_provision import bundle as offline

    inv = load_and_validate(inventories, vault_password_file, quiet=True)
    try:
        doc = offline.create(inv, Path(output), echo=click.echo)
    except offline.BundleError as exc:
        fail(str(exc), EXIT_FAILED)
    if doc["unstaged"]:
        click.secho(f"warning: {len(doc['unstaged'])} model(s) not staged (no vllm_model_store): they download from "
                    f"the Hub on first start at the site: {'; '.join(doc['unstaged'])}", fg="yellow", err=True)
    size = doc["archive"]["bytes"] + sum(m["bytes"] for m in doc["models"])
    click.echo(f"bundle {output}: {len(doc['images'])} image(s), {len(doc['models'])} model(s), "
               f"{size / 2**30:.1f} GiB; check it at the site with `solv-provision bundle verify {output}`")


@bundle.command("verify")
@click.argument("directory", type=click.Path(file_okay=False))
@no_traceback
def bundle_verify(directory):
    """Check every image and model file of a bundle against its bundle.json (exit 1 naming what differs)."""
    from solv_provision import bundle as offline

    try:
        problems = offline.verify(Path(directory))
    except offline.BundleError as exc:
        fail(str(exc), EXIT_FAILED)
    for problem in problems:
        click.secho(f"  - {problem}", fg="red", err=True)
    if problems:
        fail(f"{len(problems)} problem(s) in the bundle {directory}", EXIT_FAILED)
    click.echo(f"bundle {directory}: every image and model matches bundle.json")


@bundle.command("serve")
@click.argument("directory", type=click.Path(file_okay=False, exists=True))
@click.option("--address", required=True, help="The address the hosts reach this machine at.")
@click.option("--port", type=click.IntRange(1, 65535), default=None, help="Default: a free one.")
@no_traceback
def bundle_serve(directory, address, port):
    """Serve a bundle's images to the hosts until Ctrl-C, for plain ansible-playbook runs: set solv_bundle_dir to
    DIRECTORY and solv_bundle_registry to what this prints. (`apply --bundle` does both by itself.)"""
    import signal
    import time

    from solv_provision import bundle as offline
    from solv_provision import paths

    # A stop by kill, systemd or timeout ends the registry too (as Ctrl-C does), not only this process.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        offline.read(Path(directory))
        with offline.Served(paths.state_dir() / "bundle-registry", address, port) as served:
            click.echo(f"solv_bundle_dir={Path(directory).resolve()} solv_bundle_registry={served.reference}")
            while True:
                time.sleep(3600)
    except offline.BundleError as exc:
        fail(str(exc), EXIT_FAILED)
    except KeyboardInterrupt:
        pass


@main.group()
def secrets():
    """Read the generated secrets (printed only on explicit request)."""


@secrets.command("show")
@click.argument("name")
@inventory_option
@vault_option
@click.option("--host", "host", help="The host that stores the secret (default for shared secrets: their owner).")
@no_traceback
def secrets_show(name, inventories, vault_password_file, host):
    """Print one secret stored on HOST (e.g. litellm_master_key, openwebui_admin_password, grafana_admin_password).

    Shared secrets (vllm_api_key, litellm_master_key, litellm_salt_key) are read on their owner without --host.
    """
    from solv_provision import runner

    with usage_errors():
        runner.check_secret_name(name)
    inv = load_and_validate(inventories, vault_password_file, quiet=True)
    from solv_provision import secrets as shared

    if host is None and name not in shared.SHARED:
        fail(f"{name} is kept per host: name the host with --host", EXIT_INVALID)
    host = host or shared.owner(name, {g: inv.in_group(g) for g in ("inference", "gateway")}, "")
    if host not in inv.hosts:
        fail(f"host {host} is not in the inventory; hosts: {runner.brief(sorted(inv.hosts))}")
    from solv_provision.render import root_dir

    try:
        value = runner.read_secret(inventories=list(inventories), host=host, name=name,
                                   vault_password_file=vault_password_file, root_dir=root_dir(inv, host))
    except runner.SecretReadError as exc:
        fail(str(exc), EXIT_FAILED)
    if value is None:
        fail(f"host {host}: no secret named {name} (not generated yet, or another host owns it)", EXIT_FAILED)
    click.echo(value)


@secrets.command("rotate")
@click.argument("name")
@inventory_option
@vault_option
@click.option("--host", "host", help="The host that keeps a per-host secret (searxng_secret_key, openwebui_secret_key, "
                                     "grafana_admin_password).")
@click.option("-v", "--verbose", count=True, help="More output; -v shows Ansible's own output too.")
@no_traceback
def secrets_rotate(name, inventories, vault_password_file, host, verbose):
    """Give one generated secret a new value now and re-apply exactly the services that use it.

    vllm_api_key (vLLM, LiteLLM), litellm_master_key (LiteLLM, Open WebUI, Caddy's health gate: clients need the
    new key), searxng_secret_key, openwebui_secret_key (signs everyone out), grafana_admin_password (on the
    monitoring host; Grafana's database takes it too). A secret set in the inventory is rotated there (vault), then
    apply.
    """
    from solv_provision import rotate, runner

    inv = load_and_validate(inventories, vault_password_file, quiet=True)
    with usage_errors():
        rotation = rotate.plan(inv, name, host)
    click.echo(f"rotating {name} on {rotation.owner}, then re-applying {', '.join(rotation.services)} on "
               f"{', '.join(rotation.hosts)}", err=True)
    common = {"vault_password_file": vault_password_file, "verbosity": verbose, "inv": inv}
    first = runner.run_playbook("rotate.yml", list(inventories), limit=rotation.owner,
                                extra_vars=[rotation.extra_vars()], **common)
    if first.exit_code != 0:
        sys.exit(first.exit_code)
    result = runner.run_playbook("site.yml", list(inventories), limit=",".join(rotation.hosts),
                                 tags=",".join(rotation.services), **common)
    sys.exit(result.exit_code)


def _register_lab():
    try:
        from solv_provision.lab import lab
    except ImportError:  # lab is optional content
        return
    main.add_command(lab)


_register_lab()


def run() -> None:
    """The `solv-provision` command: main, ended without the interpreter's teardown (solv_provision.fast_exit)."""
    from solv_provision.fast_exit import exit_now

    try:
        main()
    except SystemExit as done:
        exit_now(done.code)


if __name__ == "__main__":
    run()
