"""Filters of the shared container mechanism (solv_common): systemd quoting, env files, specs."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
from collections.abc import Mapping
from pathlib import Path

import jinja2
from ansible.errors import AnsibleFilterError
from ansible.plugins.filter.core import to_nice_json

_BARE = re.compile(r"[A-Za-z0-9_@%+=:,./-]+")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def solv_systemd_quote(arg):
    """One argument as a systemd ExecStart word: bare when safe, else double-quoted and escaped.

    systemd expands %-specifiers and $VARIABLES in Exec lines: both are escaped, so the
    argument reaches docker exactly as given.
    """
    arg = str(arg)
    if "\n" in arg or "\r" in arg:
        raise AnsibleFilterError(f"solv_systemd_quote: newline in argument {arg!r}")
    if arg and _BARE.fullmatch(arg):
        return arg.replace("%", "%%")
    escaped = arg.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%").replace("$", "$$")
    return f'"{escaped}"'


def solv_env_file(env):
    """The container's environment file from a dict: `NAME='value'` lines, sorted, quoted for sh.

    The container's entrypoint wrapper sources it (`set -a; . file`), so no value reaches Docker's
    container config (`docker inspect`). Refuses what the format cannot hold.
    """
    if env is None:
        return ""
    if not isinstance(env, dict):
        raise AnsibleFilterError("solv_env_file: expects a dict of NAME: value")
    lines = []
    for name in sorted(env):
        value = env[name]
        if not _ENV_NAME.fullmatch(str(name)):
            raise AnsibleFilterError(f"solv_env_file: invalid variable name {name!r}")
        if value is None:
            value = ""
        if isinstance(value, bool):
            value = "true" if value else "false"
        value = str(value)
        if "\n" in value or "\r" in value:
            raise AnsibleFilterError(f"solv_env_file: the value of {name} contains a newline")
        quoted = value.replace("'", "'\\''")
        lines.append(f"{name}='{quoted}'\n")
    return "".join(lines)


def solv_spec_sha(spec):
    """A stable sha256 over a JSON-able value (the container's wanted state)."""
    text = json.dumps(spec, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# Where the env file appears inside the container, and the wrapper that exports it and then runs the
# container's program: the environment lives only in that file (root-only on the host), never in
# Docker's container config.
ENV_IN_CONTAINER = "/run/solv/env"
ENV_WRAPPER = f'set -a && . {ENV_IN_CONTAINER} && set +a && exec "$@"'


def solv_container_run_args(spec):
    """The `docker run` arguments (after `run`) of one container, from its wanted-state dict.

    Keys: name, image, env_file, program (the argv the wrapper runs), user, network, ports, volumes,
    memory_limit, cpu_limit, docker_args, log_driver, log_opts, labels (dict). Order is fixed so that
    equal specs give equal units.
    """
    args = ["--rm", "--name", spec["name"]]
    # Docker's init (tini) as PID 1 passes signals on, so a stop reaches the service at once even while it starts: a
    # program that is PID 1 ignores SIGTERM until it installs a handler (LiteLLM's imports took a stop to its whole
    # timeout, 30 s). Not in the host's PID namespace, where nothing of the container is PID 1.
    if "--pid=host" not in (spec.get("docker_args") or []):
        args.append("--init")
    for key, value in sorted((spec.get("labels") or {}).items()):
        args += ["--label", f"{key}={value}"]
    if spec.get("user"):
        args += ["--user", spec["user"]]
    if spec.get("log_driver"):
        args += ["--log-driver", spec["log_driver"]]
    for key, value in sorted((spec.get("log_opts") or {}).items()):
        args += ["--log-opt", f"{key}={value}"]
    if spec.get("network"):
        args += ["--network", spec["network"]]
    for port in spec.get("ports") or []:
        args += ["--publish", str(port)]
    args += ["--volume", f"{spec['env_file']}:{ENV_IN_CONTAINER}:ro"]
    for volume in spec.get("volumes") or []:
        args += ["--volume", str(volume)]
    if spec.get("memory_limit"):
        args += ["--memory", str(spec["memory_limit"])]
    if spec.get("cpu_limit"):
        args += ["--cpus", str(spec["cpu_limit"])]
    args += ["--entrypoint", "/bin/sh"]
    args += [str(a) for a in spec.get("docker_args") or []]
    args += [spec["image"], "-c", ENV_WRAPPER, "solv-env"]
    args += [str(a) for a in spec["program"]]
    return args


def solv_container_program(image, entrypoint="", command=None, image_config=None):
    """The argv a container runs, as Docker would: the given entrypoint, else the image's; the given
    command, else the image's (an explicit entrypoint drops the image's command, as `docker run` does).

    image_config: {entrypoint, cmd} read from the image on the host; None when it cannot be read (render,
    or a dry run before the image is there): the image's parts are then named placeholders.
    """
    command = [str(a) for a in command or []]
    if entrypoint:
        return [str(entrypoint)] + command
    if image_config is None:
        return [f"<entrypoint of {image}>"] + (command or [f"<command of {image}>"])
    program = list(image_config.get("entrypoint") or []) + (command or list(image_config.get("cmd") or []))
    if not program:
        raise AnsibleFilterError(f"solv_container_program: {image} has no entrypoint or command, and none is given")
    return [str(a) for a in program]


def solv_arg_lines(args):
    """Group a flat argument list for display, one option per line: `--flag value` stays together.

    Only the layout of a unit's ExecStart continuation lines depends on it, never the arguments.
    """
    lines = []
    for arg in args:
        last = lines[-1] if lines else None
        if last and len(last) == 1 and last[0].startswith("-") and "=" not in last[0] and not str(arg).startswith("-"):
            last.append(str(arg))
        else:
            lines.append([str(arg)])
    return lines


def _sha1(text):
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def _same_owner(seen, wanted, key):
    """A file's owner (key "owner") or group as the probe saw it, by name or, for a number, by id."""
    wanted = str(wanted)
    if wanted.isdigit():
        return seen.get("uid" if key == "owner" else "gid") == int(wanted)
    return seen.get(key) == wanted


def solv_pending_files(files, probe_paths=None):
    """The files whose content, mode or owner differ from the probe (all of them without a probe).

    files: [{path, content, mode, secret, owner (default root)}]; probe_paths: solv_container_info's `paths`, or None.
    """
    pending = []
    for f in files:
        seen = None if probe_paths is None else probe_paths.get(f["path"], {})
        if (
            seen is None
            or not seen.get("exists")
            or seen.get("isdir")
            or seen.get("checksum") != _sha1(f["content"])
            or seen.get("mode") != f["mode"]
            or not _same_owner(seen, f.get("owner", "root"), "owner")
        ):
            pending.append(f)
    return pending


def solv_pending_dirs(dirs, probe_paths=None):
    """The directories that are missing or differ in mode/owner/group (all of them without a probe)."""
    pending = []
    for d in dirs:
        seen = None if probe_paths is None else probe_paths.get(d["path"], {})
        if (
            seen is None
            or not seen.get("exists")
            or not seen.get("isdir")
            or seen.get("mode") != d.get("mode", "0755")
            or not _same_owner(seen, d.get("owner", "root"), "owner")
            or not _same_owner(seen, d.get("group", "root"), "group")
        ):
            pending.append(d)
    return pending


def solv_file_args(f):
    """One file as solv_files takes it, without its content (that goes in the module's no_log `contents`)."""
    return {"path": f["path"], "mode": f["mode"], "owner": str(f.get("owner", "root")), "secret": bool(f["secret"])}


_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def _without(prefix, value):
    """value with `prefix` taken out of every string (nothing when prefix is empty)."""
    if not prefix:
        return value
    if isinstance(value, dict):
        return {k: _without(prefix, v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without(prefix, v) for v in value]
    return value.replace(prefix, "") if isinstance(value, str) else value


def solv_container_spec(params):
    """Everything the mechanism derives from one container's parameters, computed on the controller.

    params: name, description, image, image_config (the image's {entrypoint, cmd}, None when unknown),
    command, entrypoint, user, env, dir, files, dirs, volumes, ports, network, memory_limit, cpu_limit,
    docker_args, start_timeout, stop_timeout, root_dir, systemd_dir, log_driver, log_opts (the caller
    passes both timeouts: each service role has its own); render_prefix (render mode: the output folder the
    paths are under, left out of the hash, so it is the one the host's own files give).
    Returns: name, description, image, dir, unit_path, env_path, sha (the wanted-state hash, also the
    container's `solv.spec` label), run_args, files (env file, config files, unit not included),
    dirs, start_timeout, stop_timeout.
    """
    name = str(params["name"])
    if not _NAME.fullmatch(name):
        raise AnsibleFilterError(f"solv_container_spec: invalid container name {name!r}")
    root = str(params["root_dir"]).rstrip("/")
    cdir = str(params.get("dir") or f"{root}/{re.sub(r'^solv-', '', name)}").rstrip("/")
    env_path = f"{cdir}/env"
    env_content = solv_env_file(params.get("env") or {})

    user = str(params.get("user") or "")
    # The env file is read inside the container by the user it runs as (uid of --user, else root).
    env_owner = user.split(":", 1)[0] or "root"
    files = [{"path": env_path, "content": env_content, "mode": "0600", "secret": True, "owner": env_owner}]
    for f in params.get("files") or []:
        fname = str(f["name"])
        if "/" in fname or fname in ("", ".", "..", "env"):
            raise AnsibleFilterError(f"solv_container_spec: {name}: invalid file name {fname!r}")
        secret = bool(f.get("secret", False))
        mode = str(f.get("mode") or ("0600" if secret else "0644"))
        files.append({"path": f"{cdir}/{fname}", "content": str(f["content"]), "mode": mode, "secret": secret,
                      "owner": str(f.get("owner") or "root")})

    dirs = [
        {"path": root, "mode": "0755", "owner": "root", "group": "root"},
        {"path": cdir, "mode": "0755", "owner": "root", "group": "root"},
    ]
    for d in params.get("dirs") or []:
        dirs.append(
            {
                "path": str(d["path"]).rstrip("/"),
                "mode": str(d.get("mode") or "0755"),
                "owner": str(d.get("owner") or "root"),
                "group": str(d.get("group") or "root"),
            }
        )

    run = {
        "name": name,
        "image": str(params["image"]),
        "env_file": env_path,
        "network": params.get("network") or "",
        "user": user,
        "ports": list(params.get("ports") or []),
        "volumes": list(params.get("volumes") or []),
        "docker_args": list(params.get("docker_args") or []),
        "program": solv_container_program(
            str(params["image"]), params.get("entrypoint") or "", params.get("command"), params.get("image_config")
        ),
        "memory_limit": str(params.get("memory_limit") or ""),
        "cpu_limit": str(params.get("cpu_limit") or ""),
        "log_driver": params.get("log_driver") or "",
        "log_opts": dict(params.get("log_opts") or {}),
    }
    sha = solv_spec_sha(_without(str(params.get("render_prefix") or ""),
                                 {"run": run, "files": [[f["path"], f["content"]] for f in files]}))
    run["labels"] = {"solv.spec": sha, "solv.image": run["image"]}
    return {
        "name": name,
        "description": str(params.get("description") or name),
        "image": run["image"],
        "dir": cdir,
        "unit_path": f"{str(params['systemd_dir']).rstrip('/')}/{name}.service",
        "env_path": env_path,
        "sha": sha,
        "run_args": solv_container_run_args(run),
        "run_lines": solv_arg_lines(solv_container_run_args(run)),
        "files": files,
        "dirs": dirs,
        "start_timeout": int(params["start_timeout"]),
        "stop_timeout": int(params["stop_timeout"]),
    }


def solv_cached_probe(host_state, name, image, paths, network):
    """One container's facts, as solv_container_info would report them, taken from the host's probe
    (solv_host_state); None when that probe does not cover them all: the caller then probes the container.

    Covered means: the probe is usable, the container has a recorded gate (so its container and unit were
    inspected), every wanted path was described (the gates list them), and the image reference is one of the
    host's `name:tag` tags. A gated container absent from the probe is absent from the host, and so is a
    network (the probe lists them all).
    """
    if not host_state or not host_state.get("usable") or name not in host_state.get("gates", {}):
        return None
    described = host_state["paths"]
    if any(p not in described for p in paths):
        return None
    found = host_state.get("images", {}).get(image) if image else {"id": "", "config": None}
    if found is None:
        return None
    return {
        "paths": {p: described[p] for p in paths},
        "image_id": found["id"],
        "image_config": found["config"],
        "container": host_state.get("containers", {}).get(
            name, {"exists": False, "running": False, "image_id": "", "labels": {}}),
        "unit": host_state["units"][name],
        "network_exists": not network or network in host_state.get("networks", []),
    }


def _gate_path(params):
    """<root>/gates/<name>.json: the container's health gate on the host."""
    return f"{params['root_dir']}/gates/{params['name']}.json"


def solv_container_prepare(params, reading):
    """One container's parameters with what the mechanism knows before the image's program: `paths` (its
    directories, files, unit and health gate: they do not depend on the image) and `probe`, what the host's
    reading (solv_host_state) says of them (solv_cached_probe; None when the reading does not cover them)."""
    spec = solv_container_spec(params)
    paths = [x["path"] for x in spec["dirs"] + spec["files"]] + [spec["unit_path"], _gate_path(params)]
    probe = solv_cached_probe(reading, spec["name"], spec["image"], paths, params.get("network") or "")
    return {**params, "paths": paths, "probe": probe}


def solv_may_have_unit(reading, unit):
    """{{ solv_host_reading | default(none) | solv_may_have_unit('solv-prometheus') }}: whether the host may have the
    unit file <unit>.service. The host's reading (when usable) lists every solv-*.service file; without one, maybe.
    A role that removes what it no longer runs has its run step act only then."""
    if not reading or not reading.get("usable"):
        return True
    return unit in reading.get("unit_files", [])


def solv_units_to_prune(reading, prefix, keep, found=None):
    """{{ solv_host_reading | default(none) | solv_units_to_prune(prefix, keep[, found]) }}: the units <prefix>* the
    host has whose names are not <prefix><k> for a k in keep (containers_prune.yml removes them), from the host's
    reading, or else from `found` (the `find` module's files in the systemd directory); None when neither can say
    (no usable reading, or a prefix outside solv-*, which it does not list): then containers_prune.yml looks on the
    host. A role's run step includes containers_prune.yml only where this is not []."""
    if reading and reading.get("usable") and str(prefix).startswith("solv-"):
        units = reading.get("unit_files", [])
    elif found is not None:
        units = [os.path.basename(f["path"]).removesuffix(".service") for f in found]
    else:
        return None
    kept = {f"{prefix}{k}" for k in keep}
    return [u for u in units if u.startswith(prefix) and u not in kept]


def solv_container_actions(state, image, ctx):
    """What container_run.yml has to do for one container, from what container_files.yml found (`state`, an
    entry of solv_container_state): {network (create it), reload (daemon-reload), enable, restart, dry_new (check
    mode: the unit is not on the host yet)}. Nothing with `stage` (upgrade's first pass).

    ctx: stage, check_mode, images_present and networks_present (made present in this run).
    """
    if ctx.get("stage"):
        return {"network": False, "reload": False, "enable": False, "restart": False, "dry_new": False}
    unit, container = state.get("unit") or {}, state.get("container") or {}
    have_image = bool(state.get("image_id")) or image in (ctx.get("images_present") or [])
    network = state.get("network") or ""
    return {
        "network": bool(network) and not state.get("network_exists") and network not in (ctx.get("networks_present") or []),
        "reload": bool(state.get("unit_changed") or unit.get("need_daemon_reload")),
        "enable": unit.get("unit_file_state", "") != "enabled",
        "restart": bool(
            not have_image
            or unit.get("active_state", "") != "active"
            or not container.get("running")
            or (container.get("labels") or {}).get("solv.spec", "") != state.get("sha")
            or container.get("image_id", "") != state.get("image_id")
        ),
        "dry_new": bool(ctx.get("check_mode")) and unit.get("load_state", "") != "loaded",
    }


def solv_container_state(spec, pending_files, probe, checks, network, ctx):
    """What container_files.yml leaves for container_run.yml about one container (its plan's containers[name]): the
    wanted spec hash, whether the unit file changes, what the probe saw, the health gate, `in_sync`: nothing
    for container_run.yml to do (solv_container_actions all false), so it does not enter its task chain, and
    `writes`: a file (`pending_files`) or directory differs from the probe."""
    probe = probe or {}
    state = {
        "sha": spec["sha"],
        "writes": bool(pending_files or solv_pending_dirs(spec["dirs"], probe.get("paths"))),
        "unit_changed": spec["unit_path"] in [f["path"] for f in pending_files],
        "image_id": probe.get("image_id") or "",
        "container": probe.get("container") or {},
        "unit": probe.get("unit") or {},
        "network": network,
        "network_exists": bool(probe.get("network_exists")),
        "start_timeout": spec["start_timeout"],
        "checks": checks,
    }
    state["in_sync"] = not any(solv_container_actions(state, spec["image"], ctx).values())
    return state


def solv_container_wanted(params, checks, watch_paths, docker_bin, restart_sec, ctx):
    """One container's wanted state once the image's program is known (params from solv_container_prepare, with
    `probe`; solv_container_plan calls it): `container` (its spec), `files` (the spec's files, the unit and the
    health gate), `probe` and `state` (solv_container_state).

    The health gate (<root>/gates/<name>.json, 0600: its checks may carry API keys) is what `solv-provision status`
    checks; it also lists the container's paths, which the next run's host reading (solv_host_state) describes.
    It is not part of the spec hash, so a changed check restarts nothing.
    """
    probe = params.get("probe")
    spec = solv_container_spec({**params, "image_config": (probe or {}).get("image_config")})
    gate_path = _gate_path(params)
    gate = {"name": spec["name"], "checks": checks,
            "paths": [p for p in params["paths"] if p != gate_path] + list(watch_paths)}
    files = spec["files"] + [
        {"path": spec["unit_path"], "mode": "0644", "secret": False,
         "content": solv_unit_file(spec, docker_bin, restart_sec)},
        {"path": gate_path, "mode": "0600", "secret": True, "content": to_nice_json(gate, sort_keys=True)},
    ]
    pending = solv_pending_files(files, (probe or {}).get("paths"))
    state = solv_container_state(spec, pending, probe, checks, params.get("network") or "", ctx)
    return {"container": spec, "files": files, "probe": probe, "state": state}


def solv_container_plan(params, reading, settings, previous=None, probe=None):
    """{{ __solv_params | solv_container_plan(...) }}: what container_files.yml knows of one container, computed
    once per step (a set_fact evaluates each key's template on its own: one key, one evaluation).

    settings: checks, watch_paths, docker_bin, restart_sec (solv_container_wanted's), render, and the context of
    solv_container_state (stage, check_mode, images_present, networks_present): solv_common's
    __solv_container_settings.
    Returns params, paths and probe (solv_container_prepare; `probe` given: the container probed alone, which
    replaces what the reading says), `wanted` (solv_container_wanted), and `containers`: the `previous` plan's
    states of this host's containers with this one's (container_run.yml reads it by name). `wanted` is none while
    the image's program is unknown (not covered by the reading, or its image missing: the caller probes it
    alone, makes the image present and plans again with `probe`); in render mode or with `probe` it is
    always computed (a dry run names the program as a placeholder).
    """
    prepared = solv_container_prepare(params, reading)
    if probe is not None:
        prepared["probe"] = probe
    known = (prepared["probe"] or {}).get("image_id")
    wanted = None
    if probe is not None or settings.get("render") or known:
        wanted = solv_container_wanted(prepared, settings["checks"], settings["watch_paths"], settings["docker_bin"],
                                       settings["restart_sec"], settings)
    containers = dict((previous or {}).get("containers") or {})
    if wanted is not None:
        containers[prepared["name"]] = wanted["state"]
    return {"params": prepared, "wanted": wanted, "containers": containers}


def solv_container_needs_run(plan, name):
    """{{ solv_container_plan | default(none) | solv_container_needs_run(name) }}: whether container_run.yml has
    anything to do for the container <name> (network, reload, enable or restart: not `in_sync` in its plan). A role's
    run step asks it before including container_run.yml, which checks it again. Fails when container_files.yml did
    not plan <name> in this play."""
    containers = (plan or {}).get("containers") or {}
    if name not in containers:
        raise AnsibleFilterError(f"Include solv_common's container_files.yml for {name} before container_run.yml.")
    return not containers[name]["in_sync"]


def solv_containers_to_run(plan, items, prefix=""):
    """{{ solv_container_plan | default(none) | solv_containers_to_run(items[, prefix]) }}: the items, in their
    order, whose container needs container_run.yml (solv_container_needs_run): container names, or instances
    {name, ...} of the containers <prefix><name>. A role loops its include of container_run.yml over these, so a
    run that changes nothing has an empty loop (its run phase then ends the role: solv_common's README)."""
    return [item for item in items
            if solv_container_needs_run(plan, prefix + (item["name"] if isinstance(item, Mapping) else item))]


_UNIT_TEMPLATE = Path(__file__).resolve().parents[1] / "templates" / "solv-container.service.j2"


def solv_unit_file(unit, docker_bin, restart_sec):
    """{{ spec | solv_unit_file(solv_docker_bin, solv_container_restart_sec) }}: the container's systemd unit,
    templates/solv-container.service.j2 rendered as Ansible's template lookup renders it (trim_blocks, the trailing
    newline kept), from a template compiled once per process: the lookup compiled it for every container, about
    70 ms each of a run that changes nothing."""
    return _unit_template(_UNIT_TEMPLATE.stat().st_mtime_ns).render(
        __solv_unit=unit, solv_docker_bin=docker_bin, solv_container_restart_sec=restart_sec)


@functools.lru_cache(maxsize=2)
def _unit_template(_mtime_ns: int) -> jinja2.Template:
    env = jinja2.Environment(trim_blocks=True, keep_trailing_newline=True, undefined=jinja2.StrictUndefined,
                             autoescape=False)
    env.filters["solv_systemd_quote"] = solv_systemd_quote
    return env.from_string(_UNIT_TEMPLATE.read_text())


class FilterModule:
    def filters(self):
        return {
            "solv_unit_file": solv_unit_file,
            "solv_systemd_quote": solv_systemd_quote,
            "solv_env_file": solv_env_file,
            "solv_spec_sha": solv_spec_sha,
            "solv_container_run_args": solv_container_run_args,
            "solv_pending_files": solv_pending_files,
            "solv_pending_dirs": solv_pending_dirs,
            "solv_file_args": solv_file_args,
            "solv_container_spec": solv_container_spec,
            "solv_arg_lines": solv_arg_lines,
            "solv_cached_probe": solv_cached_probe,
            "solv_may_have_unit": solv_may_have_unit,
            "solv_units_to_prune": solv_units_to_prune,
            "solv_container_state": solv_container_state,
            "solv_container_plan": solv_container_plan,
            "solv_container_actions": solv_container_actions,
            "solv_container_needs_run": solv_container_needs_run,
            "solv_containers_to_run": solv_containers_to_run,
        }
