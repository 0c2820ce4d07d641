"""`solv-provision inventory init`: a new inventory with every variable listed, commented, from the roles' specs."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import yaml

from solv_provision import specs
from solv_provision.services import GROUP_ROLES

HOSTS_YML = """\
# SOLV inventory. Groups: `inference` (GPU hosts running vLLM), `gateway` (LiteLLM, SearXNG, Open WebUI).
# One host may be in both. Check it offline with: solv-provision validate -i {dir}
all:
  children:
    inference:
      hosts:
        gpu-1:
          ansible_host: 10.0.0.11
          # One entry per vLLM instance on this host; see group_vars/inference.yml for every key.
          vllm_models:
            - name: qwen-7b
              model: Qwen/Qwen2.5-7B-Instruct
              gpus: [0]
              port: 8001
    gateway:
      hosts:
        gw-1:
          ansible_host: 10.0.0.10
  vars:
    ansible_user: root
"""

# Which group_vars file lists which role's variables.
GROUP_FILES = {
    # Monitoring runs on every host (node exporter) and on the monitoring host (Alertmanager, Prometheus, Grafana); the
    # registry on one. The DCGM exporter runs on inference hosts, the blackbox exporter on gateway hosts.
    "all.yml": ["solv_common", "container_engine", "registry", "node_exporter", "alertmanager", "prometheus",
                "grafana"],
    "inference.yml": ["nvidia_driver", "nvidia_container_toolkit", "vllm", "dcgm_exporter"],
    "gateway.yml": [*GROUP_ROLES["gateway"], "blackbox_exporter"],
}


def _comment_block(text: str, indent: str = "") -> str:
    lines = []
    for para in str(text).strip().splitlines():
        lines.extend(textwrap.wrap(para, 100) or [""])
    return "\n".join(f"{indent}# {line}".rstrip() for line in lines)


def _description(opt: dict[str, Any]) -> str:
    desc = opt.get("description", "")
    if isinstance(desc, list):
        desc = " ".join(str(d) for d in desc)
    kind = opt.get("type", "str")
    if opt.get("elements"):
        kind += f" of {opt['elements']}"
    if opt.get("choices"):
        kind += f", one of: {', '.join(map(str, opt['choices']))}"
    return f"{desc} ({kind})".strip()


def role_section(role: str) -> str:
    spec = specs.role_specs().get(role)
    if not spec or not spec.options:
        return ""
    out = [f"# ---- {role}: {spec.short_description}".rstrip(": ")]
    for name, opt in spec.options.items():
        out.append(_comment_block(_description(opt)))
        value = spec.defaults.get(name, opt.get("default"))
        dumped = yaml.safe_dump({name: value}, default_flow_style=False, sort_keys=False).rstrip("\n")
        out.extend(f"# {line}" for line in dumped.splitlines())
        out.append("")
    return "\n".join(out)


def scaffold_inventory(directory: Path, force: bool = False) -> list[Path]:
    files = {Path("hosts.yml"): HOSTS_YML.format(dir=directory)}
    for fname, roles in GROUP_FILES.items():
        header = (f"# Variables for group {fname[:-4]}; every one is optional and shows its default.\n"
                  "# Secrets: put them in a vault-encrypted file beside this one (ansible-vault encrypt).\n\n")
        body = "\n".join(s for s in (role_section(r) for r in roles) if s)
        files[Path("group_vars") / fname] = header + (body or "# (no variables)\n")
    written = []
    for rel, text in files.items():
        dest = directory / rel
        if dest.exists() and not force:
            raise FileExistsError(str(dest))
    for rel, text in files.items():
        dest = directory / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(text, encoding="utf-8")
        written.append(dest)
    return written
