#!/usr/bin/python
"""The host's side of staging model weights (the action plugin vllm_model_stage drives it)."""

from __future__ import annotations

DOCUMENTATION = r"""
module: vllm_model_stage
short_description: What a host's staged model directories lack, and the manifest written once one is complete
description:
  - Called by the action plugin of the same name (roles/vllm/action_plugins), which copies the missing files
    from the model store on the controller in between.
  - C(inspect) answers, per model directory, whether its manifest equals the wanted one (then nothing is
    read), else which files are missing or differ (size, then sha256), and the free bytes where they go.
  - C(finish) checks every file's size, removes files the manifest does not list and writes the manifest
    last: a directory with its manifest is complete.
options:
  step:
    description: C(inspect) or C(finish).
    type: str
    required: true
    choices: [inspect, finish]
  models:
    description: "List of {path, manifest}: a model directory on the host and the store's manifest of it."
    type: list
    elements: dict
    required: true
"""

import json
import os

from ansible.module_utils.basic import AnsibleModule

MANIFEST = ".solv-manifest.json"


def _read(path):
    try:
        with open(os.path.join(path, MANIFEST)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _matches(module, path, want):
    try:
        if os.path.getsize(path) != int(want["size"]):
            return False
    except OSError:
        return False
    return module.sha256(path) == want["sha256"]


def _free_bytes(path):
    """Free bytes of the filesystem `path` is (or will be) on."""
    while not os.path.exists(path):
        path = os.path.dirname(path)
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def inspect(module, models):
    out = []
    for m in models:
        path, manifest = m["path"], m["manifest"]
        if _read(path) == manifest:
            out.append({"path": path, "complete": True, "missing": [], "bytes": 0})
            continue
        missing = [rel for rel, f in sorted(manifest["files"].items()) if not _matches(module, os.path.join(path, rel), f)]
        out.append({"path": path, "complete": False, "missing": missing,
                    "bytes": sum(int(manifest["files"][rel]["size"]) for rel in missing),
                    "free": _free_bytes(path)})
    return out


def finish(module, models):
    changed = False
    for m in models:
        path, manifest = m["path"], m["manifest"]
        if _read(path) == manifest:
            continue
        for rel, f in manifest["files"].items():
            size = os.path.getsize(os.path.join(path, rel)) if os.path.exists(os.path.join(path, rel)) else None
            if size != int(f["size"]):
                module.fail_json(msg=f"{path}/{rel}: {size} bytes after the copy, the manifest says {f['size']}")
        for root, _dirs, files in os.walk(path):
            for name in files:
                rel = os.path.relpath(os.path.join(root, name), path)
                if rel != MANIFEST and rel not in manifest["files"]:
                    os.unlink(os.path.join(root, name))
        tmp = os.path.join(path, MANIFEST + ".tmp")
        with open(tmp, "w") as f:
            json.dump(manifest, f, indent=1, sort_keys=True)
            f.write("\n")
        os.chmod(tmp, 0o644)
        os.replace(tmp, os.path.join(path, MANIFEST))
        changed = True
    return changed


def main():
    module = AnsibleModule(
        argument_spec=dict(step=dict(type="str", required=True, choices=["inspect", "finish"]),
                           models=dict(type="list", elements="dict", required=True)),
        supports_check_mode=True,
    )
    models = module.params["models"]
    if module.params["step"] == "inspect":
        module.exit_json(changed=False, models=inspect(module, models))
    if module.check_mode:
        module.exit_json(changed=False)
    module.exit_json(changed=finish(module, models))


if __name__ == "__main__":
    main()
