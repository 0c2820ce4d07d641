#!/usr/bin/python
# -*- coding: utf-8 -*-
# Apache-2.0
"""Directories and files of one SOLV container, made as wanted in one remote call."""

from __future__ import annotations

DOCUMENTATION = r"""
module: solv_files
short_description: Make directories and whole-content files as wanted, in one call
description:
  - Creates the directories, then writes each file whose content differs (a temporary file in the same
    directory, renamed over the old one) and sets the mode and owner of each that differs.
  - One remote call instead of one per file keeps a converge and C(render) cheap. Check mode reports what
    would change, with a unified diff per file; of a secret file only that it changes.
options:
  dirs:
    description: "Directories: [{path, mode, owner, group}] (owner and group: a name or a numeric id)."
    type: list
    elements: dict
    default: []
  files:
    description: "Files: [{path, mode, owner, secret}] (group root); their content is in I(contents)."
    type: list
    elements: dict
    default: []
  contents:
    description:
      - The content of each of I(files), in the same order. A no_log value, so that no content reaches the
        host's log (a module logs its parameters there) and, for secret files, no result.
    type: list
    elements: str
    default: []
  set_owner:
    description: Set owners and groups (false when rendering into a folder as an unprivileged user).
    type: bool
    default: true
author: SOLV platform team
"""

RETURN = r"""
changed_paths:
  description: The paths created or changed (or that would be, in check mode).
  type: list
"""

import difflib
import grp
import os
import pwd
import stat
import tempfile

from ansible.module_utils.basic import AnsibleModule

_DIFF_MAX = 256 * 1024  # a bigger old file is named as changed, not shown


class _Unknown(Exception):
    """An owner or group name the host does not know."""


def _uid(owner, path):
    try:
        return int(owner) if str(owner).isdigit() else pwd.getpwnam(owner).pw_uid
    except KeyError:
        raise _Unknown("%s: no user %r on this host" % (path, owner))


def _gid(group, path):
    try:
        return int(group) if str(group).isdigit() else grp.getgrnam(group).gr_gid
    except KeyError:
        raise _Unknown("%s: no group %r on this host" % (path, group))


def _stat(path):
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None


def _attr_changes(st, mode, uid, gid):
    """What differs in mode and ownership, in words, e.g. ["mode 0644 -> 0600"]."""
    out = []
    if stat.S_IMODE(st.st_mode) != mode:
        out.append("mode %04o -> %04o" % (stat.S_IMODE(st.st_mode), mode))
    if uid is not None and st.st_uid != uid:
        out.append("owner %d -> %d" % (st.st_uid, uid))
    if gid is not None and st.st_gid != gid:
        out.append("group %d -> %d" % (st.st_gid, gid))
    return out


def _make_dir(module, d, set_owner):
    path, mode = d["path"], int(d["mode"], 8)
    uid = _uid(d["owner"], path) if set_owner else None
    gid = _gid(d["group"], path) if set_owner else None
    st = _stat(path)
    if st is not None and not stat.S_ISDIR(st.st_mode):
        module.fail_json(msg="%s exists and is not a directory" % path)
    said = ["directory created"] if st is None else _attr_changes(st, mode, uid, gid)
    if said and not module.check_mode:
        os.makedirs(path, exist_ok=True)
        os.chmod(path, mode)
        if set_owner:
            os.chown(path, uid, gid)
    return said


def _old_content(path, st):
    if st is None or st.st_size > _DIFF_MAX:
        return None
    with open(path, "rb") as fh:
        return fh.read()


def _unified(path, existed, old, new):
    return "".join(difflib.unified_diff(old.decode("utf-8", "replace").splitlines(True), new.splitlines(True),
                                        path if existed else "/dev/null", path))


def _write_file(module, f, text, set_owner):
    """Returns (changed, diff) for one file."""
    path, mode, secret = f["path"], int(f["mode"], 8), f["secret"]
    content = text.encode("utf-8")
    uid = _uid(f["owner"], path) if set_owner else None
    gid = 0 if set_owner else None
    if not os.path.isdir(os.path.dirname(path)):
        if not module.check_mode:  # in check mode, a directory that would be created first
            module.fail_json(msg="%s: its directory does not exist" % path)
        st = None
    else:
        st = _stat(path)
    if st is not None and not stat.S_ISREG(st.st_mode):
        module.fail_json(msg="%s exists and is not a regular file" % path)
    old = _old_content(path, st) if st is not None else b""
    content_differs = st is None or st.st_size != len(content) or old != content
    attrs = [] if st is None else _attr_changes(st, mode, uid, gid)
    if not content_differs and not attrs:
        return False, None
    if not module.check_mode:
        if content_differs:
            fd, tmp = tempfile.mkstemp(prefix=".solv-", dir=os.path.dirname(path))
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(content)
                    fh.flush()
                    os.fsync(fh.fileno())
                    os.fchmod(fh.fileno(), mode)
                    if set_owner:
                        os.fchown(fh.fileno(), uid, gid)
                os.replace(tmp, path)
            except BaseException:
                if os.path.exists(tmp):
                    os.unlink(tmp)
                raise
        else:
            os.chmod(path, mode)
            if set_owner:
                os.chown(path, uid, gid)
    if not content_differs:
        diff = {"prepared": "%s: %s" % (path, ", ".join(attrs))}
    elif secret:
        diff = {"prepared": "%s: secret content %s (not shown)" % (path, "created" if st is None else "changed")}
    elif old is None:
        diff = {"prepared": "%s: content changed (over %d KiB: not shown)" % (path, _DIFF_MAX // 1024)}
    else:
        # Unified, not before/after: the module masks its no_log values (the contents) in what it returns.
        diff = {"prepared": _unified(path, st is not None, old, text)}
    return True, diff


def main():
    module = AnsibleModule(
        argument_spec=dict(
            dirs=dict(type="list", elements="dict", default=[],
                      options=dict(path=dict(type="path", required=True), mode=dict(type="str", default="0755"),
                                   owner=dict(type="str", default="root"), group=dict(type="str", default="root"))),
            files=dict(type="list", elements="dict", default=[],
                       options=dict(path=dict(type="path", required=True), mode=dict(type="str", default="0644"),
                                    owner=dict(type="str", default="root"), secret=dict(type="bool", default=False))),
            contents=dict(type="list", elements="str", default=[], no_log=True),
            set_owner=dict(type="bool", default=True),
        ),
        supports_check_mode=True,
    )
    p = module.params
    if len(p["contents"]) != len(p["files"]):
        module.fail_json(msg="%d files but %d contents" % (len(p["files"]), len(p["contents"])))
    changed_paths, diffs = [], []
    try:
        for d in p["dirs"]:
            said = _make_dir(module, d, p["set_owner"])
            if said:
                changed_paths.append(d["path"])
                diffs.append({"prepared": "%s/: %s" % (d["path"].rstrip("/"), ", ".join(said))})
        for f, text in zip(p["files"], p["contents"]):
            changed, diff = _write_file(module, f, text, p["set_owner"])
            if changed:
                changed_paths.append(f["path"])
                diffs.append(diff)
    except (OSError, _Unknown) as e:
        module.fail_json(msg=str(e), changed_paths=changed_paths)
    module.exit_json(changed=bool(changed_paths), changed_paths=changed_paths, diff=diffs)


if __name__ == "__main__":
    main()
