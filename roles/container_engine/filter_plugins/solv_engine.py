"""container_engine's filters: the site registry's address (solv_provision.registry, its one rule) and the engine's
local fact (the script the role leaves on a host, and whether the fact a host reported is that script's, fresh)."""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Mapping
from pathlib import Path

try:
    from solv_provision import local_facts, registry
except ImportError:  # plain ansible-playbook from a checkout, package not installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
    from solv_provision import local_facts, registry

# The probe's code, read once per process (each fact script and its sha1 are built from it).
_PROBE = (Path(__file__).resolve().parents[1] / "module_utils" / "solv_engine_probe.py").read_text(encoding="utf-8")


def engine_fact_script(params: Mapping) -> str:
    """/etc/ansible/facts.d/solv_engine.fact: the probe's code (module_utils/solv_engine_probe.py), run with PARAMS
    (the module's options) by each fact gathering."""
    return ("#!/usr/bin/env python3\n"
            "# The container engine's state for Ansible's fact gathering (ansible_local.solv_engine), written by the\n"
            "# role container_engine: its module_utils/solv_engine_probe.py with the packages it plans for this host.\n"
            + _PROBE
            + "\n\nif __name__ == \"__main__\":\n"
            + f"    print_fact(json.loads({json.dumps(json.dumps(params, sort_keys=True))}))\n")


def engine_fact_sha1(params: Mapping) -> str:
    return hashlib.sha1(engine_fact_script(params).encode("utf-8")).hexdigest()


def daemon_json_object(text: str) -> dict:
    """daemon.json's text as the mapping it holds ({} for an empty file); anything else (not JSON, or JSON that is
    not an object) raises, which configure.yml's rescue turns into its refusal to replace the file."""
    if not (text or "").strip():
        return {}
    parsed = json.loads(text)
    if not isinstance(parsed, dict):
        raise ValueError(f"daemon.json holds a JSON {type(parsed).__name__}, not an object")
    return parsed


def engine_fact_current(fact, params: Mapping) -> bool:
    """Whether FACT (ansible_local.solv_engine) is what the script for PARAMS reported within local_facts.FACT_MAX_AGE."""
    return (isinstance(fact, Mapping) and fact.get("script") == engine_fact_sha1(params)
            and isinstance(fact.get("time"), (int, float)) and local_facts.read_recently(fact["time"]))


class FilterModule:
    def filters(self):
        return {
            # {{ hostvars | solv_engine_site_registry(groups) }} -> 'address:port' or ''
            "solv_engine_site_registry": registry.site_address,
            # {{ params | solv_engine_fact_script }} -> the local fact's text
            "solv_engine_fact_script": engine_fact_script,
            # {{ params | solv_engine_fact_sha1 }} -> the sha1 of that text
            "solv_engine_fact_sha1": engine_fact_sha1,
            # {{ text | solv_engine_daemon_json }} -> the mapping daemon.json holds, or an error
            "solv_engine_daemon_json": daemon_json_object,
            # {{ ansible_local.solv_engine | solv_engine_fact_current(params) }} -> bool: fresh, of that script
            "solv_engine_fact_current": engine_fact_current,
        }
