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
    """{'<host>/<absolute path on the host>': text} for every file the chosen services' roles write (RenderPlay)."""
    with RenderPlay(inventories, vault_password_file) as play:
        return play.files(inv, what, host=host, meanwhile=meanwhile)


class RenderPlay:
    """playbooks/render.yml on the controller, in a temporary folder of its own: started held (runner.Held) when
    entered, so that it starts while the caller reads the inventory, then let go by files()."""

    def __init__(self, inventories: list[str], vault_password_file: str | None = None):
        self.inventories, self.vault_password_file = inventories, vault_password_file
        self.messages: list[str] = []

    def __enter__(self) -> RenderPlay:
        from solv_provision.runner import Held

        self._tmp = tempfile.TemporaryDirectory(prefix="solv-render-")
        self.private = Path(self._tmp.name)
        args = ["-e", f"@{self.private / 'render-vars.json'}"]
        if self.vault_password_file:
            args += ["--vault-password-file", str(Path(self.vault_password_file).expanduser().resolve())]
        try:
            self.held = Held(self.private, playbook=paths.playbooks_dir() / "render.yml",
                             inventories=self.inventories, limit=f"@{self.private / 'limit'}", args=shlex.join(args),
                             quiet=True, on_event=self._event)
        except BaseException:
            self._tmp.cleanup()
            raise
        return self

    def __exit__(self, *exc) -> None:
        try:
            self.held.__exit__(*exc)
        finally:
            self._tmp.cleanup()

    def _event(self, event) -> None:
        from solv_provision.runner import result_message

        data = event.get("event_data") or {}
        if event.get("event") in ("runner_on_failed", "runner_on_unreachable") and not data.get("ignore_errors"):
            self.messages.append(f"{data.get('host')}: {data.get('task')}: {result_message(data.get('res') or {})}")

    def files(self, inv: Inventory, what: str, *, host: str | None = None,
              meanwhile: Callable[[], None] | None = None) -> dict[str, str]:
        """{'<host>/<absolute path on the host>': text} for every file the chosen services' roles write.

        `meanwhile` (the CLI's check of the inventory) runs while the play does, as the play contacts no host and
        writes only into this folder; whatever it raises stops the play and is raised. Where the play cannot
        start, it runs first: an inventory's problems are said before what they make of the render."""
        from solv_provision import handover

        out = self.private / "out"
        try:
            hosts = hosts_for(inv, what, host)
            extra = _extra_vars(inv, services=services_of(what), hosts=hosts, out=out)
        except Exception:
            if meanwhile is not None:
                meanwhile()
            raise
        for name in hosts:  # the folder unit files go to, which a real host has (a module call less in the play)
            (out / name / "etc/systemd/system").mkdir(parents=True)
        (self.private / "render-vars.json").write_text(json.dumps(extra), encoding="utf-8")
        (self.private / "limit").write_text("\n".join(hosts) + "\n", encoding="utf-8")
        handover.write(self.private, inv, [json.dumps(extra)])
        rc, _ = self.held.release_and_wait(meanwhile)
        if rc != 0:
            raise RenderError(f"render failed: {'; '.join(self.messages) or _last_error(self.held.run)}")
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
