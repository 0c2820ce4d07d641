"""`solv-provision render`: the files the roles would write on a host, produced by the roles' own templates.

It runs playbooks/render.yml (each role's secrets.yml + configure.yml, connection local, solv_render=true)
with the output folders as extra vars, then reads back what was written. Secrets are placeholders.
"""

from __future__ import annotations

import json
import re
import shlex
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

from solv_provision import paths, specs
from solv_provision.inventory import Inventory
from solv_provision.secrets import PLACEHOLDER
from solv_provision.services import GROUP_ROLES, SERVICE_GROUP



class RenderError(Exception):
    def __init__(self, message: str, usage: bool = False):
        super().__init__(message)
        self.usage = usage


def services_of(what: str) -> list[str]:
    return list(SERVICE_GROUP) if what == "all" else [what]


def hosts_for(inv: Inventory, what: str, host: str | None = None) -> list[str]:
    """The hosts to render WHAT for: HOST (checked), else every host that runs it; RenderError(usage) otherwise."""
    from solv_provision.runner import brief

    services = services_of(what)
    candidates = sorted({h for s in services for h in inv.in_group(SERVICE_GROUP[s])})
    if host is None:
        if not candidates:
            raise RenderError(f"no host runs {', '.join(services)}", usage=True)
        return candidates
    if host not in inv.hosts:
        raise RenderError(f"host {host} is not in the inventory; hosts that run {what}: {brief(candidates)}",
                          usage=True)
    if host not in candidates:
        raise RenderError(f"host {host} runs none of {', '.join(services)} (not in the group it needs); "
                          f"hosts that do: {brief(candidates)}", usage=True)
    return [host]


def select_file(files: dict[str, str], name: str) -> tuple[str, str]:
    """The one rendered file whose path ends with NAME (a base name or a path suffix): (path, text).

    RenderError(usage) listing the candidates when NAME matches no file or several.
    """
    wanted = [part for part in name.split("/") if part]
    matches = [rel for rel in files if wanted and rel.split("/")[-len(wanted):] == wanted]
    if len(matches) == 1:
        return matches[0], files[matches[0]]
    short = short_names(list(files))
    if not matches:
        raise RenderError(f"no rendered file is named {name}; files: {', '.join(sorted(short.values()))}", usage=True)
    raise RenderError(f"{name} matches {len(matches)} files: {', '.join(sorted(short[m] for m in matches))}; "
                      "name one of them", usage=True)


def short_names(paths: list[str]) -> dict[str, str]:
    """Each path -> its shortest suffix (base name, then parent/base name, ...) that no other path ends with."""
    split = {p: p.split("/") for p in paths}
    short = {}
    for path, parts in split.items():
        for n in range(1, len(parts) + 1):
            if all(other[-n:] != parts[-n:] for o, other in split.items() if o != path):
                break
        short[path] = "/".join(parts[-n:])
    return short


def root_dir(inv: Inventory, host: str) -> str:
    """The host's solv_root_dir (the inventory's, else the role default)."""
    value = inv.hosts[host].get("solv_root_dir")
    return value if isinstance(value, str) else specs.default("solv_root_dir") or "/opt/solv"


def _secret_placeholders(inv: Inventory) -> dict:
    """Extra vars that replace every secret the inventory sets (vault) with a placeholder, per host.

    Only secrets a host sets are replaced (an unset optional secret stays unset, as on the host);
    generated secrets become placeholders inside solv_common's secrets.yml, which never runs on a host
    in render mode.
    """
    per_host: dict[str, dict] = {h: {} for h in inv.hosts}
    names = set()
    for name in sorted(specs.secret_options()):
        if not any(inv.hosts[h].get(name) for h in inv.hosts):
            continue
        names.add(name)
        for host, hostvars in inv.hosts.items():
            value = hostvars.get(name)
            if isinstance(value, dict):
                per_host[host][name] = {k: PLACEHOLDER.format(name=f"{name}.{k}") for k in value}
            elif value:
                per_host[host][name] = PLACEHOLDER.format(name=name)
            else:
                per_host[host][name] = specs.default(name) if specs.default(name) is not None else ""
    extra = {name: "{{ __render_secrets[inventory_hostname]['%s'] }}" % name for name in sorted(names)}
    if names:
        extra["__render_secrets"] = per_host
    return extra


def render_files(inv: Inventory, inventories: list[str], what: str, *, host: str | None = None,
                 vault_password_file: str | None = None,
                 meanwhile: Callable[[], None] | None = None) -> dict[str, str]:
    """{'<host>/<absolute path on the host>': text} for every file the chosen services' roles write.

    `meanwhile` (the CLI's check of the inventory) runs while the play does, as the play contacts no host and
    writes only into this call's temporary folder; whatever it raises stops the play and is raised. Where the play
    cannot start, it runs first: an inventory's problems are said before what they make of the render."""
    with tempfile.TemporaryDirectory(prefix="solv-render-") as tmp:
        out = Path(tmp) / "out"
        try:
            hosts = hosts_for(inv, what, host)
            extra = _extra_vars(inv, services=services_of(what), hosts=hosts, out=out)
        except Exception:
            if meanwhile is not None:
                meanwhile()
            raise
        for name in hosts:  # the folder unit files go to, which a real host has (a module call less in the play)
            (out / name / "etc/systemd/system").mkdir(parents=True)
        _run_render_play(tmp, inv=inv, inventories=inventories, hosts=hosts, extra=extra,
                         vault_password_file=vault_password_file, meanwhile=meanwhile)
        return _read_back(out)


def _extra_vars(inv: Inventory, *, services: list[str], hosts: list[str], out: Path) -> dict:
    """render.yml's inputs: render mode, output folders per host, placeholders for the inventory's secrets."""
    return {
        "solv_render": True,
        "solv_render_out": str(out),
        # Each host's services to render, in playbook order: those of its groups (the monitoring groups as
        # solv_provision.monitoring makes them, which Ansible's group_names does not show).
        "solv_render_host_roles": {
            host: [role for group, roles in GROUP_ROLES.items() if host in inv.in_group(group)
                   for role in roles if role in services]
            for host in hosts
        },
        # The host's own paths, re-rooted under out/<host>; the prefix is stripped again in _read_back.
        "solv_root_dir": str(out) + "/{{ inventory_hostname }}" + "{{ __render_real_root }}",
        "solv_systemd_dir": str(out) + "/{{ inventory_hostname }}/etc/systemd/system",
        # vllm_gpu_mode auto follows the toolkit's fact, which only a real run learns: render shows CDI,
        # what the toolkit picks on Docker >= 25 (set vllm_gpu_mode to see another mode).
        "solv_gpu_runtime": "cdi",
        "ansible_connection": "local",
        "ansible_python_interpreter": sys.executable,
        # Each host's real root dir, as a host-specific variable solv_root_dir above refers to.
        "__render_real_root": "{{ __render_roots[inventory_hostname] }}",
        "__render_roots": {h: root_dir(inv, h) for h in hosts},
        **_secret_placeholders(inv),
    }


def _run_render_play(private: str, *, inv: Inventory, inventories: list[str], hosts: list[str], extra: dict,
                     vault_password_file: str | None, meanwhile: Callable[[], None] | None = None) -> None:
    """Run playbooks/render.yml on the controller, `meanwhile` beside it (render_files); RenderError with the first
    failures when it fails."""
    import ansible_runner

    from solv_provision import handover
    from solv_provision.runner import ansible_env, result_message

    cmd = ["-e", json.dumps(extra)]
    if vault_password_file:
        cmd += ["--vault-password-file", str(Path(vault_password_file).expanduser().resolve())]
    messages: list[str] = []

    def handler(event):
        data = event.get("event_data") or {}
        if event.get("event") in ("runner_on_failed", "runner_on_unreachable") and not data.get("ignore_errors"):
            messages.append(f"{data.get('host')}: {data.get('task')}: {result_message(data.get('res') or {})}")
        return False

    stop = threading.Event()
    thread, run = ansible_runner.run_async(
        private_data_dir=private,
        playbook=str(paths.playbooks_dir() / "render.yml"),
        inventory=[str(Path(i).expanduser().resolve()) for i in inventories],
        limit=",".join(hosts),
        cmdline=shlex.join(cmd),
        envvars=ansible_env(handover.environment(Path(private), inv, [json.dumps(extra)])),
        quiet=True,
        event_handler=handler,
        cancel_callback=stop.is_set,
        settings={"pexpect_timeout": 0.2},  # how soon a stop is seen while the play prints nothing
    )
    try:
        if meanwhile is not None:
            meanwhile()
    except BaseException:
        stop.set()
        raise
    finally:
        _wait(thread, stop)
    if run.rc != 0:
        raise RenderError(f"render failed: {'; '.join(messages) or _last_error(run)}")


def _wait(thread: threading.Thread, stop: threading.Event) -> None:
    """Wait for the play's thread; Ctrl-C stops the play (then raised once it has stopped)."""
    try:
        thread.join()
    except KeyboardInterrupt:
        stop.set()
        thread.join()
        raise


def _read_back(out: Path) -> dict[str, str]:
    files: dict[str, str] = {}
    for path in sorted(p for p in out.rglob("*") if p.is_file()):
        rel = path.relative_to(out)
        text = path.read_text(encoding="utf-8", errors="replace")
        files[str(rel)] = text.replace(f"{out}/{rel.parts[0]}", "")
    return files


def _last_error(run) -> str:
    """The last ERROR line ansible-playbook printed (a play that fails before any task has no event)."""
    try:
        with run.stdout as stdout:
            text = stdout.read()
    except Exception:  # noqa: BLE001 - no stdout artifact: fall back to the exit code
        text = ""
    plain = re.sub(r"\x1b\[[0-9;]*m", "", text)
    errors = [" ".join(line.split()) for line in plain.splitlines() if "ERROR" in line]
    return errors[-1] if errors else f"ansible-playbook exited with {run.rc}"
