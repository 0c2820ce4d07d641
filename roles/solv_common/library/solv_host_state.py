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
    C(<systemd_dir>/solv-*.service). Changes nothing.
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
"""

import glob
import json
import os

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.solv_probe import containers, describe, docker, images, units


def _gate_paths(path):
    """The paths a recorded gate lists; [] for a gate without the list or one that cannot be read."""
    try:
        with open(path, encoding="utf-8") as f:
            listed = json.load(f).get("paths")
    except (OSError, ValueError, AttributeError):
        return []
    return [p for p in listed if isinstance(p, str)] if isinstance(listed, list) else []


def main():
    module = AnsibleModule(
        argument_spec=dict(
            root_dir=dict(type="path", required=True),
            systemd_dir=dict(type="path", required=True),
            docker=dict(type="path", default="/usr/bin/docker"),
        ),
        supports_check_mode=True,
    )
    p = module.params
    if not os.access(p["docker"], os.X_OK):
        module.exit_json(changed=False, usable=False)

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
    )


if __name__ == "__main__":
    main()
