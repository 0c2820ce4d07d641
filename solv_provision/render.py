"""`solv-provision render`: the files the roles would write on a host, produced by the roles' own templates.

It runs playbooks/render.yml (each role's secrets.yml + configure.yml, connection local, solv_render=true)
with the output folders as extra vars, then reads back what was written. Secrets are placeholders.
"""

from __future__ import annotations

import json
import shlex
import sys
import tempfile
from pathlib import Path

from solv_provision import paths, specs
from solv_provision.inventory import Inventory

# Which group a service runs on.
SERVICE_GROUP = {"vllm": "inference", "searxng": "gateway", "litellm": "gateway", "openwebui": "gateway"}
SECRET_PLACEHOLDER = "<secret:{name}>"


class RenderError(Exception):
    def __init__(self, message: str, usage: bool = False):
        super().__init__(message)
        self.usage = usage


def _hosts_for(inv: Inventory, services: list[str], host: str | None) -> list[str]:
    candidates = sorted({h for s in services for h in inv.in_group(SERVICE_GROUP[s])})
    if host is None:
        if not candidates:
            raise RenderError(f"no host runs {', '.join(services)}", usage=True)
        return candidates
    if host not in inv.hosts:
        raise RenderError(f"host {host} is not in the inventory", usage=True)
    if host not in candidates:
        raise RenderError(f"host {host} runs none of {', '.join(services)} (not in the group it needs)", usage=True)
    return [host]


def _root_dir(inv: Inventory, host: str) -> str:
    value = inv.hosts[host].get("solv_root_dir")
    return value if isinstance(value, str) else specs.default("solv_root_dir") or "/opt/solv"


def _secret_placeholders(inv: Inventory) -> dict:
    """Extra vars that replace every secret the inventory sets (vault) with a placeholder, per host.

    Only secrets a host sets are replaced (an unset optional secret stays unset, as on the host);
    generated secrets become placeholders inside solv_common's secret.yml, which never runs on a host
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
                per_host[host][name] = {k: SECRET_PLACEHOLDER.format(name=f"{name}.{k}") for k in value}
            elif value:
                per_host[host][name] = SECRET_PLACEHOLDER.format(name=name)
            else:
                per_host[host][name] = specs.default(name) if specs.default(name) is not None else ""
    extra = {name: "{{ __solv_render_secrets[inventory_hostname]['%s'] }}" % name for name in sorted(names)}
    if names:
        extra["__solv_render_secrets"] = per_host
    return extra


def render_files(inv: Inventory, inventories: list[str], what: str, *, host: str | None = None,
                 vault_password_file: str | None = None) -> dict[str, str]:
    """{'<host>/<absolute path on the host>': text} for every file the chosen services' roles write."""
    import ansible_runner

    from solv_provision.runner import ansible_env

    services = list(SERVICE_GROUP) if what == "all" else [what]
    hosts = _hosts_for(inv, services, host)
    with tempfile.TemporaryDirectory(prefix="solv-render-") as tmp:
        out = Path(tmp) / "out"
        extra = {
            "solv_render": True,
            "solv_render_out": str(out),
            "solv_render_services": services,
            # The host's own paths, re-rooted under out/<host>; the prefix is stripped again below.
            "solv_root_dir": str(out) + "/{{ inventory_hostname }}" + "{{ __solv_render_real_root }}",
            "solv_systemd_dir": str(out) + "/{{ inventory_hostname }}/etc/systemd/system",
            # vllm_gpu_mode auto follows the toolkit's fact, which only a real run learns: render shows CDI,
            # what the toolkit picks on Docker >= 25 (set vllm_gpu_mode to see another mode).
            "solv_gpu_runtime": "cdi",
            "ansible_connection": "local",
            "ansible_python_interpreter": sys.executable,
            **_secret_placeholders(inv),
        }
        # Each host's real root dir, as a host-specific variable the extra var above can refer to.
        roots = {h: _root_dir(inv, h) for h in hosts}
        extra["__solv_render_real_root"] = "{{ __solv_render_roots[inventory_hostname] }}"
        extra["__solv_render_roots"] = roots
        cmd = ["-e", json.dumps(extra)]
        if vault_password_file:
            cmd += ["--vault-password-file", str(Path(vault_password_file).resolve())]
        messages: list[str] = []

        def handler(event):
            data = event.get("event_data") or {}
            if event.get("event") in ("runner_on_failed", "runner_on_unreachable") and not data.get("ignore_errors"):
                res = data.get("res") or {}
                messages.append(f"{data.get('host')}: {data.get('task')}: {res.get('msg') or res.get('stderr') or res}")
            return False

        run = ansible_runner.run(
            private_data_dir=tmp,
            playbook=str(paths.playbooks_dir() / "render.yml"),
            inventory=[str(Path(i).expanduser().resolve()) for i in inventories],
            limit=",".join(hosts),
            cmdline=shlex.join(cmd),
            envvars=ansible_env(),
            quiet=True,
            event_handler=handler,
        )
        if run.rc != 0:
            detail = "; ".join(messages) or f"ansible-playbook exited with {run.rc}"
            raise RenderError(f"render failed: {detail}")
        files: dict[str, str] = {}
        for path in sorted(p for p in out.rglob("*") if p.is_file()):
            rel = path.relative_to(out)
            text = path.read_text(encoding="utf-8", errors="replace")
            files[str(rel)] = text.replace(f"{out}/{rel.parts[0]}", "")
        return files
