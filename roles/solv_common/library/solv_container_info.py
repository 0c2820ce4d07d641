#!/usr/bin/python
# -*- coding: utf-8 -*-
# Apache-2.0
"""Read-only probe of one SOLV container: its files, image, running container, unit and network."""

from __future__ import annotations

DOCUMENTATION = r"""
module: solv_container_info
short_description: Everything the SOLV container mechanism needs to know about one container, in one call
description:
  - Reads file checksums and modes, the image id and program (entrypoint, command) of a reference, the running
    container (state, image, labels),
    the systemd unit state and whether a Docker network exists. Changes nothing.
  - One remote call instead of one per fact keeps an unchanged re-run cheap.
options:
  name:
    description: Container and unit name (the unit is C(<name>.service)).
    type: str
    required: true
  image:
    description: Image reference whose local id is reported (empty string when absent); empty to skip.
    type: str
    default: ""
  paths:
    description: Files and directories to describe.
    type: list
    elements: path
    default: []
  network:
    description: Docker network whose existence is reported; empty to skip.
    type: str
    default: ""
  docker:
    description: Docker CLI.
    type: path
    default: /usr/bin/docker
author: SOLV platform team
"""

RETURN = r"""
paths:
  description: Path => {exists, isdir, mode, owner, group, uid, gid, checksum (sha1, files only)}.
  type: dict
image_id:
  description: Local id of I(image), empty when the image is missing.
  type: str
image_config:
  description: "The image's {entrypoint, cmd} (lists or null); null when the image is missing."
  type: dict
container:
  description: "{exists, running, image_id, labels}"
  type: dict
unit:
  description: "{load_state, active_state, sub_state, unit_file_state, need_daemon_reload, n_restarts}"
  type: dict
network_exists:
  description: Whether I(network) exists (true when I(network) is empty).
  type: bool
"""

import json
import os

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.solv_probe import NO_CONTAINER, containers, describe, docker, units


def main():
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type="str", required=True),
            image=dict(type="str", default=""),
            paths=dict(type="list", elements="path", default=[]),
            network=dict(type="str", default=""),
            docker=dict(type="path", default="/usr/bin/docker"),
        ),
        supports_check_mode=True,
    )
    p = module.params
    paths = {path: describe(module, path) for path in p["paths"]}
    if not os.access(p["docker"], os.X_OK):
        if not module.check_mode:
            module.fail_json(msg=f"{p['docker']} not found: is the container engine installed (container_engine role)?")
        # A dry run on a host whose engine is not installed yet: nothing of Docker's exists.
        module.warn(f"{p['docker']} not found; reporting no image, container or network (check mode)")
        module.exit_json(
            changed=False,
            paths=paths,
            image_id="",
            image_config=None,
            container=dict(NO_CONTAINER),
            unit=units(module, [p["name"]])[p["name"]],
            network_exists=not p["network"],
        )

    image_id, image_config = "", None
    if p["image"]:
        fmt = "{{.Id}}|{{json .Config.Entrypoint}}|{{json .Config.Cmd}}"
        raw = docker(module, ["image", "inspect", "--format", fmt, p["image"]], "image")
        if raw:
            image_id, entrypoint, cmd = raw.split("|", 2)
            image_config = {"entrypoint": json.loads(entrypoint), "cmd": json.loads(cmd)}

    container = containers(module, [p["name"]]).get(p["name"], dict(NO_CONTAINER))
    network_exists = True
    if p["network"]:
        network_exists = docker(module, ["network", "inspect", "--format", "{{.Name}}", p["network"]], "network") is not None

    module.exit_json(
        changed=False,
        paths=paths,
        image_id=image_id,
        image_config=image_config,
        container=container,
        unit=units(module, [p["name"]])[p["name"]],
        network_exists=network_exists,
    )


if __name__ == "__main__":
    main()
