#!/usr/bin/python
# -*- coding: utf-8 -*-
# Apache-2.0
"""Read-only probe of every SOLV container on a host, in one call."""

from __future__ import annotations

DOCUMENTATION = r"""
module: solv_host_state
short_description: What solv_container_info reports, for every SOLV container of a host at once
description:
  - Finds the containers by their recorded health gates (C(<root_dir>/gates/<name>.json)): each gate lists the
    paths its container is made of (directories, config files, env file, unit). Reports those paths, each
    container, its unit, every tagged image with its program, the Docker networks and the unit files
    C(<systemd_dir>/solv-*.service). Changes nothing, except with O(load).
  - container_files.yml takes a container's facts from here (filter C(solv_cached_probe)) when they cover
    everything it wants to know, else it probes the container alone: one remote call per host instead of one
    per container on a re-run where nothing changed.
options:
  root_dir:
    description: solv_root_dir.
    type: path
    required: true
  systemd_dir:
    description: solv_systemd_dir.
    type: path
    required: true
  docker:
    description: Docker CLI.
    type: path
    default: /usr/bin/docker
  secrets_dir:
    description:
      - The host's generate-once secret files (solv_secret's I(dir)): every one is returned in C(secret_files), so
        that a role's secrets step needs no call of its own for the secrets this host keeps.
      - Use it with C(no_log: true): the result then holds their values.
    type: path
  load:
    description:
      - The archives the host's roles will load (filter C(solv_host_archives)), in the order they need them, each
        with the images it holds. Those with an image the host lacks are loaded in the background (not in check
        mode) by two processes, the largest archive by one and the others one after the other by the second, so
        that the roles find them loaded or loading (C(loading)); image.yml waits for its own. An archive being
        loaded is not started again.
    type: list
    elements: dict
    default: []
    suboptions:
      archive:
        description: The archive's path on the host, as image.yml names it (the key of C(loading)).
        type: str
        required: true
      images:
        description: The images (name:tag) the roles want from it.
        type: list
        elements: str
        default: []
author: SOLV platform team
"""

RETURN = r"""
usable:
  description: False when Docker is not installed (a dry run before the engine): nothing else is reported.
  type: bool
gates:
  description: Container name => the paths its gate lists (empty when the gate predates the list).
  type: dict
paths:
  description: Path => as solv_container_info's paths, for every listed path and every gate file.
  type: dict
containers:
  description: Name => {exists, running, image_id, labels} of every container that has a gate and exists.
  type: dict
units:
  description: Name => as solv_container_info's unit, for every container that has a gate.
  type: dict
images:
  description: "name:tag => {id, config: {entrypoint, cmd}} of every tagged image."
  type: dict
networks:
  description: Names of the Docker networks.
  type: list
unit_files:
  description: Unit names (without .service) of the files C(<systemd_dir>/solv-*.service).
  type: list
secret_files:
  description: With O(secrets_dir), name => value of each (non-empty) secret file there, as solv_secret reads them.
  type: dict
loading:
  description: >-
    Archive => the directory of its background load (C(<root_dir>/images/loading/<id>): C(pid), then C(out) and
    C(rc) when done), for every archive of O(load) with an image the host lacks.
  type: dict
"""

import glob
import hashlib
import json
import os
import shutil
import subprocess

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.solv_probe import containers, describe, docker, images, units
from ansible.module_utils.solv_secret_files import read_all


def _gate_paths(path):
    """The paths a recorded gate lists; [] for a gate without the list or one that cannot be read."""
    try:
        with open(path, encoding="utf-8") as f:
            listed = json.load(f).get("paths")
    except (OSError, ValueError, AttributeError):
        return []
    return [p for p in listed if isinstance(p, str)] if isinstance(listed, list) else []


# One process loads the archives in order; each one's directory gets `out` and then `rc` (renamed into place).
_LOADER = """docker=$1; shift
while [ $# -gt 0 ]; do
  "$docker" load --input "$2" >"$1/out" 2>&1; echo $? >"$1/rc.part"; mv "$1/rc.part" "$1/rc"; shift 2
done"""


def _loader_alive(path):
    """True while the loader named in `path`/pid runs (this archive's load waiting, under way or done)."""
    try:
        with open(os.path.join(path, "pid"), encoding="ascii") as f:
            pid = int(f.read())
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return path.encode() in f.read().split(b"\0")
    except (OSError, ValueError):
        return False


def _start_loads(module, wanted, tags):
    """{archive: its load's directory} for the wanted archives with an image the host lacks; starts the loads."""
    base = os.path.join(module.params["root_dir"], "images", "loading")
    loading, queue = {}, []
    for entry in wanted:
        archive, path = entry["archive"], os.path.join(base, hashlib.sha1(entry["archive"].encode()).hexdigest()[:16])
        done, alive = os.path.exists(os.path.join(path, "rc")), _loader_alive(path)
        if alive and not done:  # to come or under way: never a second loader, and nothing to ask the engine
            loading[archive] = path
            continue
        lacks = [i for i in entry["images"] if i not in tags
                 and docker(module, ["image", "inspect", "--format", "{{.Id}}", i], "image") is None]
        if lacks and done:  # image.yml reads how it went (and loads it itself unless it gave the image)
            loading[archive] = path
        elif lacks:
            queue.append((archive, path))
        elif os.path.isdir(path) and not alive:
            shutil.rmtree(path, ignore_errors=True)
    if not queue or module.check_mode:
        return loading
    for archive, path in queue:
        shutil.rmtree(path, ignore_errors=True)
        os.makedirs(path, mode=0o700)
    # Two loaders: the largest archive, the longest load, beside the others, which load one after the other in play
    # order (behind them it began only when they were done: bench/RESULTS.md, session 35).
    largest = max(queue, key=lambda entry: _size(entry[0]))
    for part in [p for p in ([largest], [e for e in queue if e is not largest]) if p]:
        argv = ["/bin/sh", "-c", _LOADER, "solv-image-loader", module.params["docker"]]
        argv += [arg for archive, path in part for arg in (path, archive)]
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                close_fds=True, start_new_session=True)
        for archive, path in part:
            with open(os.path.join(path, "pid"), "w", encoding="ascii") as f:
                f.write(str(proc.pid))
            loading[archive] = path
    return loading


def _size(path):
    """The archive's size in bytes; 0 where it cannot be read (its load then says why)."""
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def main():
    module = AnsibleModule(
        argument_spec=dict(
            root_dir=dict(type="path", required=True),
            systemd_dir=dict(type="path", required=True),
            docker=dict(type="path", default="/usr/bin/docker"),
            secrets_dir=dict(type="path"),
            load=dict(type="list", elements="dict", default=[], options=dict(
                archive=dict(type="str", required=True), images=dict(type="list", elements="str", default=[]))),
        ),
        supports_check_mode=True,
    )
    p = module.params
    secrets = {"secret_files": read_all(p["secrets_dir"])} if p["secrets_dir"] else {}
    if not os.access(p["docker"], os.X_OK):
        module.exit_json(changed=False, usable=False, **secrets)

    gate_files = {os.path.basename(f)[: -len(".json")]: f for f in glob.glob(os.path.join(p["root_dir"], "gates", "*.json"))}
    gates = {name: _gate_paths(f) for name, f in gate_files.items()}
    wanted_paths = sorted(set(gate_files.values()).union(*gates.values()))
    names = sorted(gates)
    tags = [t for t in (docker(module, ["image", "ls", "--format", "{{.Repository}}:{{.Tag}}"], "images") or "").split()
            if not t.endswith(":<none>")]
    networks = (docker(module, ["network", "ls", "--format", "{{.Name}}"], "networks") or "").split()
    unit_files = sorted(os.path.basename(f)[: -len(".service")]
                        for f in glob.glob(os.path.join(p["systemd_dir"], "solv-*.service")) if os.path.isfile(f))
    module.exit_json(
        changed=False,
        usable=True,
        gates=gates,
        paths={path: describe(module, path) for path in wanted_paths},
        containers=containers(module, names),
        units=units(module, names),
        images=images(module, sorted(set(tags))),
        networks=networks,
        unit_files=unit_files,
        loading=_start_loads(module, p["load"], set(tags)),
        **secrets,
    )


if __name__ == "__main__":
    main()
