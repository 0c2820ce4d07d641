"""`solv-provision lab`: local lab hosts and images (test and lab use, never production).

Import cost matters (the CLI loads this for every verb): only click and stdlib at import time;
the work lives in lab_images / lab_hosts, imported when a command runs.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import click

from solv_provision import paths


def _fail(err: Exception | str) -> None:
    click.echo(f"error: {err}", err=True)
    sys.exit(1)


def _ensure_docker() -> None:
    """Make a Docker engine answer (lab/bootstrap-docker.sh: no-op when one does)."""
    script = paths.content_root() / "lab" / "bootstrap-docker.sh"
    if subprocess.run(["sh", str(script)], check=False).returncode != 0:
        _fail("no Docker engine answers (see the message above)")


@click.group()
def lab() -> None:
    """Local lab: test hosts as systemd containers, and the images the lab inventory uses."""


@lab.command()
@click.option("--only", "only", multiple=True, metavar="NAME",
              help="Build only this image (name or name:tag) and its parents; repeatable.")
@click.option("--force", is_flag=True, help="Rebuild even when the recipe hash matches.")
def images(only: tuple[str, ...], force: bool) -> None:
    """Build the lab images (lab/images/), rebuilding only those whose recipe changed."""
    from solv_provision import lab_images

    _ensure_docker()
    try:
        lab_images.build(only, force=force, progress=click.echo)
    except lab_images.LabError as err:
        _fail(err)


_INVENTORY = click.option(
    "-i", "--inventory", "inventory", default="inventories/lab", show_default=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Lab inventory folder (its hosts.yml names the hosts and their addresses).",
)


@lab.command()
@_INVENTORY
@click.option("--images", "which", type=click.Choice(["host", "all", "none"]), default="host", show_default=True,
              help="Build first (when missing or outdated): the host image, every lab image "
                   "(what converging the lab inventory needs), or nothing.")
def up(inventory: Path, which: str) -> None:
    """Start one systemd test host per inventory host, reachable over SSH; idempotent."""
    from solv_provision import lab_hosts, lab_images

    _ensure_docker()
    try:
        if which != "none":
            lab_images.build(("host:debian12",) if which == "host" else (), progress=click.echo)
        for line in lab_hosts.up(inventory):
            click.echo(line)
    except (lab_images.LabError, lab_hosts.LabHostError) as err:
        _fail(err)


@lab.command()
@_INVENTORY
def down(inventory: Path) -> None:
    """Remove this lab's containers, volumes and network (nothing else)."""
    from solv_provision import lab_hosts

    try:
        for line in lab_hosts.down(inventory):
            click.echo(line)
    except lab_hosts.LabHostError as err:
        _fail(err)


@lab.command()
@_INVENTORY
def status(inventory: Path) -> None:
    """Show each lab host's container and systemd state."""
    from solv_provision import lab_hosts

    try:
        for line in lab_hosts.status(inventory):
            click.echo(line)
    except lab_hosts.LabHostError as err:
        _fail(err)
