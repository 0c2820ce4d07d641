"""Where the Ansible content lives: inside the installed package, or in the checkout."""

from __future__ import annotations

import os
from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


def content_root() -> Path:
    """The folder that holds playbooks/, roles/ and ansible.cfg."""
    bundled = _PACKAGE_DIR / "_content"
    if (bundled / "playbooks").is_dir():
        return bundled
    return _PACKAGE_DIR.parent


def playbooks_dir() -> Path:
    return content_root() / "playbooks"


def roles_dir() -> Path:
    return content_root() / "roles"


def state_dir() -> Path:
    """Per-user state: run artifacts, lab keys."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "solv-provision"


def cache_dir() -> Path:
    """Per-user cache: built lab images."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "solv-provision"
