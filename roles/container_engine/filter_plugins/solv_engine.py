"""container_engine's filter over solv_provision.registry (the one rule for the site registry's address)."""

from __future__ import annotations

import sys
from pathlib import Path

try:
    from solv_provision import registry
except ImportError:  # plain ansible-playbook from a checkout, package not installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
    from solv_provision import registry


class FilterModule:
    def filters(self):
        # {{ hostvars | solv_engine_site_registry(groups) }} -> 'address:port' or ''
        return {"solv_engine_site_registry": registry.site_address}
