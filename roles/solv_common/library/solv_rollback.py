#!/usr/bin/python
# -*- coding: utf-8 -*-
# Apache-2.0
"""Keep one rollback generation of a SOLV container: its files and image before a change; restore them."""

from __future__ import annotations

DOCUMENTATION = r"""
module: solv_rollback
short_description: Save or restore the previous generation of one systemd-managed SOLV container
description:
  - C(save) copies the files that define the running container (unit, env file, config files) into I(dir),
    records its spec and image in C(state.json), and tags the running image C(solv-previous:<name>) so that
    no prune removes it. One generation: a save replaces the last one.
  - C(restore) puts those files back where they were and points the saved image reference at the saved image
    again. The caller reloads systemd and restarts the unit.
options:
  action:
    description: save or restore.
    type: str
    choices: [save, restore]
    required: true
  name:
    description: Container and unit name.
    type: str
    required: true
  dir:
    description: The generation's directory (root-only, 0700).
    type: path
    required: true
  paths:
    description: Files to save (those that exist), with action save.
    type: list
    elements: path
    default: []
  image_id:
    description: Image id of the running container, with action save.
    type: str
    default: ""
  image_ref:
    description: Image reference the running container was started from (its solv.image label), with action save.
    type: str
    default: ""
  spec:
    description: The running container's spec hash (its solv.spec label), with action save.
    type: str
    default: ""
  docker:
    description: Docker CLI.
    type: path
    default: /usr/bin/docker
author: SOLV platform team
"""

RETURN = r"""
state:
  description: "The generation: {name, spec, image_id, image_ref, files: [path], saved_at}; empty when there is none."
  type: dict
"""

import json
import os
import shutil
import time

from ansible.module_utils.basic import AnsibleModule


def _tag(module, image):
    return f"solv-previous:{module.params['name']}" if image else ""


def _docker(module, *args):
    rc, out, err = module.run_command([module.params["docker"], *args])
    if rc != 0:
        module.fail_json(msg=f"docker {' '.join(args)}: {err.strip() or out.strip()}")


def _save(module):
    p = module.params
    files = [path for path in p["paths"] if os.path.isfile(path)]
    state = {"name": p["name"], "spec": p["spec"], "image_id": p["image_id"], "image_ref": p["image_ref"],
             "files": files, "saved_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    if module.check_mode:
        module.exit_json(changed=True, state=state)
    staging = p["dir"] + ".new"
    shutil.rmtree(staging, ignore_errors=True)
    os.makedirs(os.path.join(staging, "files"), mode=0o700)
    for i, path in enumerate(files):
        shutil.copy2(path, os.path.join(staging, "files", str(i)))
    with open(os.path.join(staging, "state.json"), "w", encoding="utf-8") as f:
        json.dump(state, f, indent=2)
    if p["image_id"]:
        _docker(module, "tag", p["image_id"], _tag(module, True))
    shutil.rmtree(p["dir"], ignore_errors=True)
    os.makedirs(os.path.dirname(p["dir"]), mode=0o700, exist_ok=True)
    os.rename(staging, p["dir"])
    module.exit_json(changed=True, state=state)


def _restore(module):
    p = module.params
    try:
        with open(os.path.join(p["dir"], "state.json"), encoding="utf-8") as f:
            state = json.load(f)
    except FileNotFoundError:
        module.exit_json(changed=False, state={})
    if module.check_mode:
        module.exit_json(changed=True, state=state)
    for i, path in enumerate(state["files"]):
        shutil.copy2(os.path.join(p["dir"], "files", str(i)), path)
    if state.get("image_id") and state.get("image_ref"):
        _docker(module, "tag", _tag(module, True), state["image_ref"])
    module.exit_json(changed=True, state=state)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            action=dict(type="str", choices=["save", "restore"], required=True),
            name=dict(type="str", required=True),
            dir=dict(type="path", required=True),
            paths=dict(type="list", elements="path", default=[]),
            image_id=dict(type="str", default=""),
            image_ref=dict(type="str", default=""),
            spec=dict(type="str", default=""),
            docker=dict(type="path", default="/usr/bin/docker"),
        ),
        supports_check_mode=True,
    )
    if module.params["action"] == "save":
        _save(module)
    _restore(module)


if __name__ == "__main__":
    main()
