"""Converge time against the number of lab hosts (bench/run.py --converge): for N in 1, 2, 4, a lab of N hosts
(the first runs the gateway and vLLM, the others vLLM only, with the lab's own settings and images) is made,
converged from nothing (`apply`, timed once: each host loads the lab's tarballs from its shared folder), re-run
`repeat` times with nothing to change (no-op `apply`, timed), and removed; then made again and converged from
nothing with the first host as the site registry (the tarballs pushed into it once, every host pulling from it),
timed once, and removed. The hosts are extra lab hosts (bench-1 ... on the lab
network, 10.213.47.101 ...), so the lab itself (lab-aio) is left as it is; when the lab's host was stopped, the
last `lab down` removes the unused lab network and `solv-provision lab up -i inventories/lab` re-attaches the host.
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
from collections.abc import Callable
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
LAB = REPO / "inventories" / "lab"
FIRST_ADDRESS = 101
# The targets: a fresh converge of one host in 90 s, a no-op re-run of one host in 8 s, of four in 20 s. The
# fresh target is the shared path's: one host gets its images that way (the lab's own inventory), as a site registry on
# that same host adds a push of every archive and a second copy of its layers (that case is timed beside it, without a
# target: the registry is for sites of several hosts).
TARGETS = {"fresh": {1: 90.0}, "noop": {1: 8.0, 4: 20.0}}


WHAT = {"fresh": "fresh `apply` of a lab of {n} host(s) (image tarballs on a shared path)",
        "noop": "no-op `apply` of a lab of {n} host(s)",
        "fresh-registry": "fresh `apply` of a lab of {n} host(s), the first also the site registry (tarballs "
                          "pushed once, pulled by every host)"}


def write_inventory(folder: Path, hosts: int, registry: bool = False) -> Path:
    """A lab inventory of `hosts` hosts in `folder`: the lab's group_vars, bench-1 in both groups (and the
    registry group with `registry`), the others inference hosts."""
    names = {f"bench-{i}": {"ansible_host": f"10.213.47.{FIRST_ADDRESS + i - 1}"} for i in range(1, hosts + 1)}
    groups = {"inference": {"hosts": names}, "gateway": {"hosts": {"bench-1": None}}}
    if registry:
        groups["registry"] = {"hosts": {"bench-1": None}}
    doc = {"all": {"vars": {"ansible_user": "root",
                            "ansible_ssh_private_key_file": "{{ inventory_dir }}/.lab/id_ed25519"},
                   "children": groups}}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "hosts.yml").write_text(yaml.safe_dump(doc, sort_keys=False))
    shutil.copytree(LAB / "group_vars", folder / "group_vars", dirs_exist_ok=True)
    # The lab finds its image versions relative to its own folder: point them at the checkout's.
    for path in (folder / "group_vars").rglob("*.yml"):
        text = path.read_text().replace("inventory_dir ~ '/../../lab/images/versions.yml'",
                                        f"'{REPO}/lab/images/versions.yml'")
        if registry:  # the registry brings the archives to the hosts, not the lab's shared folder
            text = text.replace("solv_image_archive_shared: true", "solv_image_archive_shared: false")
        path.write_text(text)
    return folder


def _cli(cli: str, *args: str) -> None:
    done = subprocess.run([cli, *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args[:3])}: exit {done.returncode}\n{(done.stdout + done.stderr)[-3000:]}")


def converge(cli: str, folder: Path, sizes: tuple[int, ...], repeat: int,
             timed: Callable[[list[str]], tuple[float, int, int, str]], stamp: dict) -> list[dict]:
    """One result per size and kind (`converge-fresh-N`, `converge-noop-N`, `converge-fresh-registry-N`), as
    run.py's run_case writes them."""
    results = []
    for n in sizes:
        inv = write_inventory(folder / f"hosts-{n}", n)
        try:
            _cli(cli, "lab", "up", "-i", str(inv))
            runs = {"fresh": [timed([cli, "apply", "-i", str(inv)])]}
            runs["noop"] = [timed([cli, "apply", "-i", str(inv)]) for _ in range(repeat)]
        finally:
            _cli(cli, "lab", "down", "-i", str(inv))
        inv = write_inventory(folder / f"hosts-{n}-registry", n, registry=True)
        try:
            _cli(cli, "lab", "up", "-i", str(inv))
            runs["fresh-registry"] = [timed([cli, "apply", "-i", str(inv)])]
        finally:
            _cli(cli, "lab", "down", "-i", str(inv))
        for kind, samples in runs.items():
            failed = [tail for _, code, _, tail in samples if code != 0]
            if failed:
                raise SystemExit(f"{kind} apply of {n} host(s) failed:\n{failed[0]}")
            seconds = [round(s[0], 2) for s in samples]
            target = TARGETS.get(kind, {}).get(n)
            med = statistics.median(seconds)
            results.append({
                "case": f"converge-{kind}-{n}", "size": n, "samples_s": seconds, "min_s": min(seconds),
                "median_s": med, "max_s": max(seconds), "max_rss_mib": max(s[2] for s in samples),
                "target_s": target, "met": None if target is None else med <= target,
                "what": WHAT[kind].format(n=n), **stamp})
    return results
