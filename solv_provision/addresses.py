"""Host addresses: how other hosts reach a host, and how a service listens, publishes and is probed.

The one implementation of these rules; the roles use them through solv_common's filters
(`solv_host_address`, `solv_listen`) and the validator calls them directly.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any

WILDCARDS = ("0.0.0.0", "::")
# The variables host_address reads, in order.
ADDRESS_KEYS = ("solv_internal_address", "ansible_host")


def host_address(hostvars: Mapping[str, Any], name: str) -> str:
    """The address other hosts use to reach `name`: solv_internal_address, else ansible_host, else the name."""
    for key in ADDRESS_KEYS:
        value = hostvars.get(key)
        if value:
            return str(value)
    return name


def is_ip_address(value: Any) -> bool:
    """An IPv4 or IPv6 literal (Docker publishes ports on addresses, not names)."""
    try:
        ipaddress.ip_address(str(value))
    except ValueError:
        return False
    return True


def bracketed(address: str) -> str:
    """An address as URLs and Docker's --publish want it: IPv6 literals in brackets."""
    return f"[{address}]" if ":" in address else address


def listen(bind_address: str, own_address: str) -> dict[str, str]:
    """Where a service listens: `address` (bind_address, or the host's own address when empty), `publish`
    (for `docker run --publish`) and `probe` (what the host itself connects to: loopback for a wildcard)."""
    address = str(bind_address or own_address)
    if address == "0.0.0.0":
        probe = "127.0.0.1"
    elif address == "::":
        probe = "::1"
    else:
        probe = address
    return {"address": address, "publish": bracketed(address), "probe": bracketed(probe)}
