# -*- coding: utf-8 -*-
# Apache-2.0
"""A host's generate-once secret files as solv_secret writes them: one implementation of reading them, for
solv_secret (`all`) and for the host's one reading (solv_host_state's `secrets_dir`)."""

from __future__ import annotations

import os
import re

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read().strip()


def read_all(directory):
    """Name => value of the secret files in `directory` (unreadable, empty or odd entries left out)."""
    found = {}
    try:
        names = os.listdir(directory)
    except (FileNotFoundError, NotADirectoryError):
        names = []
    for name in names:
        path = os.path.join(directory, name)
        if not NAME.fullmatch(name) or name.endswith(".rotating") or not os.path.isfile(path):
            continue
        try:
            value = read(path)
        except (OSError, UnicodeDecodeError):
            continue
        if value:
            found[name] = value
    return found
