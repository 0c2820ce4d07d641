#!/usr/bin/python
# -*- coding: utf-8 -*-
# Apache-2.0
"""Generate-once secrets: read each from <dir>/<name>, or create it (0600) with a random value."""

from __future__ import annotations

DOCUMENTATION = r"""
module: solv_secret
short_description: Read or create generate-once secret files in one call
description:
  - For each secret, returns the content of I(dir)/<name> when the file exists; otherwise generates a
    random value (letters and digits, with an optional prefix) and creates the file exclusively
    (mode 0600, I(dir) 0700). Never rewrites an existing file, except the ones named in I(rotate).
  - Exclusive creation makes concurrent callers (several hosts delegating to one owner) agree on one value.
  - In check mode nothing is written; missing secrets are reported as changed with a throwaway value.
  - With I(all), every other secret file of I(dir) is returned too, so that later steps of the run need no
    call of their own for secrets of this host.
  - Use it with C(no_log: true): the result holds the values.
options:
  dir:
    description: Directory of the secret files.
    type: path
    required: true
  secrets:
    description:
      - "Secrets: {name, prefix (default empty), length (random characters, default 40)}."
      - Other keys (the caller's bookkeeping) are ignored.
    type: list
    elements: dict
    required: true
  rotate:
    description:
      - Names (among I(secrets)) given a new random value now, on purpose (C(solv-provision secrets rotate)).
      - The file is replaced atomically; the old value is gone.
    type: list
    elements: str
    default: []
  all:
    description: Also return every other (non-empty) secret file of I(dir), in I(files).
    type: bool
    default: false
author: SOLV platform team
"""

RETURN = r"""
values:
  description: Name => value.
  type: dict
generated:
  description: Names created (or rotated) by this call.
  type: list
files:
  description: With I(all), name => value of every secret file in I(dir) after this call (I(values) included).
  type: dict
"""

import os
import secrets as random
import string

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.solv_secret_files import NAME, read, read_all

_ALPHABET = string.ascii_letters + string.digits


def _replace(directory, path, value):
    """Write `value` to a new 0600 file beside `path`, then rename it over `path` (atomic)."""
    os.makedirs(directory, mode=0o700, exist_ok=True)
    tmp = f"{path}.rotating"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(value)
    os.replace(tmp, path)


def _all_files(directory, values):
    """Name => value of the secret files in `directory`, with this call's values."""
    return {**read_all(directory), **values}  # check mode's throwaway values are what this call reports


def main():
    module = AnsibleModule(
        argument_spec=dict(
            dir=dict(type="path", required=True),
            secrets=dict(type="list", elements="dict", required=True, no_log=False),
            rotate=dict(type="list", elements="str", default=[]),
            all=dict(type="bool", default=False),
        ),
        supports_check_mode=True,
    )
    directory = module.params["dir"]
    rotate = set(module.params["rotate"])
    unknown = sorted(rotate - {str(s.get("name") or "") for s in module.params["secrets"]})
    if unknown:
        module.fail_json(msg=f"rotate names secrets not listed: {', '.join(unknown)}")
    values, generated = {}, []
    for spec in module.params["secrets"]:
        name = str(spec.get("name") or "")
        prefix = str(spec.get("prefix") or "")
        try:
            length = int(spec.get("length") or 40)
        except (TypeError, ValueError):
            module.fail_json(msg=f"secret {name}: length {spec.get('length')!r} is not a number")
        if not NAME.fullmatch(name):
            module.fail_json(msg=f"invalid secret name {name!r}")
        if length < 16:
            module.fail_json(msg=f"secret {name}: length {length} is too short (16 or more)")
        path = os.path.join(directory, name)
        try:
            if name in rotate:
                values[name] = prefix + "".join(random.choice(_ALPHABET) for _ in range(length))
                generated.append(name)
                if not module.check_mode:
                    _replace(directory, path, values[name])
                continue
            if os.path.exists(path):
                values[name] = read(path)
                if not values[name]:
                    module.fail_json(msg=f"{path} exists but is empty; remove it to have it generated, or fill it")
                continue
            value = prefix + "".join(random.choice(_ALPHABET) for _ in range(length))
            generated.append(name)
            if module.check_mode:
                values[name] = value
                continue
            os.makedirs(directory, mode=0o700, exist_ok=True)
            os.chmod(directory, 0o700)
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:  # another caller created it first: use theirs
                generated.pop()
                values[name] = read(path)
                continue
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(value)
            values[name] = value
        except OSError as exc:  # the reason, never a value (the task runs with no_log)
            module.fail_json(msg=f"secret {name}: {exc.filename or path}: {exc.strerror or exc}")
    files = _all_files(directory, values) if module.params["all"] else {}
    module.exit_json(changed=bool(generated), values=values, generated=generated, files=files)


if __name__ == "__main__":
    main()
