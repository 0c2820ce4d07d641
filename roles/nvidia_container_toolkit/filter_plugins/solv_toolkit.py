"""nvidia_container_toolkit's filter: whether a host's fact gathering read the GPU facts the role would keep now
(solv_provision.local_facts, the rule container_engine's own local fact follows)."""

from __future__ import annotations

import sys
from pathlib import Path

try:
    from solv_provision import local_facts
except ImportError:  # plain ansible-playbook from a checkout, package not installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
    from solv_provision import local_facts


class FilterModule:
    def filters(self):
        return {
            # {{ ansible_local.solv | solv_toolkit_fact_as_wanted(wanted, ansible_facts.date_time) }} -> bool
            "solv_toolkit_fact_as_wanted": local_facts.fact_as_wanted,
        }
