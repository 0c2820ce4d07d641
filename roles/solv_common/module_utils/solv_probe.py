# -*- coding: utf-8 -*-
# Apache-2.0
"""Read-only facts about SOLV containers, one implementation for the probe of one container
(solv_container_info) and the probe of a whole host (solv_host_state). Every function takes the
AnsibleModule (for run_command, digests and failing) and changes nothing.
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import re
import stat

_MISSING = ("No such image", "No such object", "No such container", "No such network", "not found")
_UNIT_PROPS = "Id,LoadState,ActiveState,SubState,UnitFileState,NeedDaemonReload,NRestarts"
NO_CONTAINER = {"exists": False, "running": False, "image_id": "", "labels": {}}


def docker(module, args, what):
    """Run docker; return stdout, or None when the object does not exist. Fail on anything else."""
    rc, out, err = module.run_command([module.params["docker"]] + args)
    if rc == 0:
        return out.strip()
    if any(marker in err for marker in _MISSING):
        return None
    module.fail_json(msg=f"docker {' '.join(args[:2])} ({what}) failed: {err.strip() or out.strip()}", rc=rc)
    return None


def describe(module, path):
    """{exists, isdir, mode, uid, gid, owner, group, checksum (sha1, files only)} of a path."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return {"exists": False}
    info = {
        "exists": True,
        "isdir": stat.S_ISDIR(st.st_mode),
        "mode": "%04o" % stat.S_IMODE(st.st_mode),
    }
    info["uid"], info["gid"] = st.st_uid, st.st_gid
    try:
        info["owner"] = pwd.getpwuid(st.st_uid).pw_name
    except KeyError:
        info["owner"] = str(st.st_uid)
    try:
        info["group"] = grp.getgrgid(st.st_gid).gr_name
    except KeyError:
        info["group"] = str(st.st_gid)
    if not info["isdir"]:
        info["checksum"] = module.digest_from_file(path, "sha1")
    return info


def units(module, names):
    """One `systemctl show` for every unit name (without .service): name -> {load_state, active_state, sub_state,
    unit_file_state, need_daemon_reload, n_restarts}."""
    if not names:
        return {}
    rc, out, err = module.run_command(["systemctl", "show", *[f"{n}.service" for n in names],
                                       f"--property={_UNIT_PROPS}"])
    if rc != 0:
        module.fail_json(msg=f"systemctl show failed: {err.strip()}", rc=rc)
    found = {}
    for block in re.split(r"\n\s*\n", out.strip()):
        values = dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
        unit_id = values.get("Id", "")
        if not unit_id.endswith(".service"):
            continue
        found[unit_id[: -len(".service")]] = {
            "load_state": values.get("LoadState", ""),
            "active_state": values.get("ActiveState", ""),
            "sub_state": values.get("SubState", ""),
            "unit_file_state": values.get("UnitFileState", ""),
            "need_daemon_reload": values.get("NeedDaemonReload", "no") == "yes",
            "n_restarts": int(values.get("NRestarts", "0") or 0),
        }
    missing = [n for n in names if n not in found]
    if missing:
        module.fail_json(msg=f"systemctl show did not describe {', '.join(missing)}")
    return found


def inspect(module, kind, names):
    """`docker <kind> inspect` of several objects in one call: the list of those that exist (docker prints
    them and fails with "No such ..." for the others). Fails on any other error."""
    rc, out, err = module.run_command([module.params["docker"], kind, "inspect", *names])
    problems = [line for line in err.splitlines() if line.strip() and not any(m in line for m in _MISSING)]
    if rc != 0 and (problems or not err.strip()):
        module.fail_json(msg=f"docker {kind} inspect failed: {err.strip() or out.strip()}", rc=rc)
    return json.loads(out) if out.strip() else []


def containers(module, names):
    """One `docker container inspect` for names that exist: name -> {exists, running, image_id, labels}."""
    if not names:
        return {}
    found = {}
    for c in inspect(module, "container", names):
        found[c["Name"].lstrip("/")] = {
            "exists": True,
            "running": bool(c["State"]["Running"]),
            "image_id": c["Image"],
            "labels": c["Config"].get("Labels") or {},
        }
    return found


def images(module, refs):
    """One `docker image inspect` for references that exist: ref -> {id, config: {entrypoint, cmd}}.

    A reference is reported under each of the image's RepoTags it equals, so only exact `name:tag` references
    (as `docker image ls` shows them) are found; callers treat any other as unknown, not as missing.
    """
    if not refs:
        return {}
    found = {}
    for image in inspect(module, "image", refs):
        config = image.get("Config") or {}
        for tag in image.get("RepoTags") or []:
            if tag in refs:
                found[tag] = {"id": image["Id"],
                              "config": {"entrypoint": config.get("Entrypoint"), "cmd": config.get("Cmd")}}
    return found
