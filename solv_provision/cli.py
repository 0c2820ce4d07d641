"""The `solv-provision` command line: thin verbs over validate / runner / render / lab.

Imports of Ansible and rich happen inside the verbs so that `--help` stays fast.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import click

from solv_provision import __version__

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


def load_and_validate(inventories, vault_password_file, quiet=False):
    """Load + validate; exit 2 with every problem listed when something is wrong."""
    from solv_provision import inventory as inv_mod
    from solv_provision.validate import validate

    try:
        inv = inv_mod.load(list(inventories), vault_password_file)
    except inv_mod.InventoryError as exc:
        fail(str(exc))
    problems = validate(inv)
    if problems:
        click.secho(f"{len(problems)} problem(s) in the inventory; no host was contacted:", fg="red", err=True)
        for p in problems:
            click.echo(f"  - {p}", err=True)
        sys.exit(EXIT_INVALID)
    if not quiet:
        hosts = len(inv.hosts)
        click.secho(f"inventory ok: {hosts} host(s), inference: {', '.join(inv.in_group('inference')) or '-'}, "
                    f"gateway: {', '.join(inv.in_group('gateway')) or '-'}", fg="green", err=True)
    return inv


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


def _run(mode, inventories, limit, tags, extra_vars, forks, verbose, vault_password_file, playbook="site.yml"):
    load_and_validate(inventories, vault_password_file)
    from solv_provision.runner import run_playbook

    result = run_playbook(
        playbook, list(inventories), mode=mode, limit=limit, tags=tags, extra_vars=list(extra_vars),
        forks=forks, verbosity=verbose, vault_password_file=vault_password_file,
    )
    sys.exit(result.exit_code)


@main.command()
@play_options
@click.option("--playbook", default="site.yml", show_default=True,
              help="Playbook from playbooks/ (site.yml, gpu_base.yml, inference.yml, gateway.yml).")
@no_traceback
def apply(inventories, limit, tags, extra_vars, forks, verbose, vault_password_file, playbook):
    """Validate, then run playbooks/site.yml: live progress per host, a summary table at the end."""
    _run("apply", inventories, limit, tags, extra_vars, forks, verbose, vault_password_file, playbook)


@main.command()
@play_options
@click.option("--playbook", default="site.yml", show_default=True, help="Playbook from playbooks/.")
@no_traceback
def check(inventories, limit, tags, extra_vars, forks, verbose, vault_password_file, playbook):
    """Dry run (check + diff): what would change on each host. Exit 0 no drift, 3 drift, 1 failure."""
    _run("check", inventories, limit, tags, extra_vars, forks, verbose, vault_password_file, playbook)


@main.command()
@click.argument("what", type=click.Choice(["litellm", "vllm", "searxng", "openwebui", "all"]))
@inventory_option
@vault_option
@click.option("--host", "host", help="Render for this host (default: every host the service runs on).")
@click.option("-o", "--output", type=click.Path(file_okay=False), help="Write the files here instead of printing.")
@no_traceback
def render(what, inventories, vault_password_file, host, output):
    """Render the files the roles would put on a host (offline, same templates). Secrets are placeholders."""
    inv = load_and_validate(inventories, vault_password_file, quiet=True)
    from solv_provision.render import RenderError, render_files

    try:
        files = render_files(inv, list(inventories), what, host=host, vault_password_file=vault_password_file)
    except RenderError as exc:
        fail(str(exc), EXIT_INVALID if exc.usage else EXIT_FAILED)
    if output:
        out = Path(output)
        for rel, text in files.items():
            dest = out / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_text(text, encoding="utf-8")
            click.echo(str(dest))
        return
    for rel, text in files.items():
        click.secho(f"# --- {rel}", fg="cyan")
        click.echo(text.rstrip("\n"))


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
def secrets():
    """Read the generated secrets (printed only on explicit request)."""


@secrets.command("show")
@click.argument("name")
@inventory_option
@vault_option
@click.option("--host", "host", required=True, help="The host that stores the secret.")
@no_traceback
def secrets_show(name, inventories, vault_password_file, host):
    """Print one secret stored on HOST (e.g. litellm_master_key, openwebui_admin_password)."""
    inv = load_and_validate(inventories, vault_password_file, quiet=True)
    if host not in inv.hosts:
        fail(f"host {host} is not in the inventory (hosts: {', '.join(sorted(inv.hosts))})")
    from solv_provision import specs
    from solv_provision.runner import read_secret

    root = inv.hosts[host].get("solv_root_dir")
    root = root if isinstance(root, str) else specs.default("solv_root_dir")
    value = read_secret(list(inventories), host, name, vault_password_file=vault_password_file, root_dir=root)
    if value is None:
        fail(f"host {host}: no secret named {name}", EXIT_FAILED)
    click.echo(value)


def _register_lab():
    try:
        from solv_provision.lab import lab
    except ImportError:  # lab is optional content
        return
    main.add_command(lab)


_register_lab()

if __name__ == "__main__":
    main()
