#!/usr/bin/python
# -*- coding: utf-8 -*-
# Apache-2.0
"""Back up and restore a SOLV host's data, one call per host: parts as tar.gz files plus a manifest."""

from __future__ import annotations

DOCUMENTATION = r"""
module: solv_backup
short_description: Back up or restore the data of a SOLV host (Open WebUI, the secrets, the entry point's CA, metrics)
description:
  - >-
    C(backup) writes one C(<part>.tar.gz) per part into C(<root_dir>/backups/<stamp>/) (0700) and returns the
    manifest C({format, host, stamp, created_at, root_dir, parts: {name: {file, sha256, bytes, files, sqlite,
    warnings}}, versions: {unit: image reference}}). Part C(openwebui) is C(<root_dir>/data/openwebui) while
    Open WebUI runs: every SQLite database in it (C(webui.db), the vector store's) is copied with SQLite's
    online backup API (a consistent copy of what was committed), the other files as they are; the live
    database files and their C(-wal)/C(-shm)/C(-journal) files are never copied. Part C(secrets) is
    C(<root_dir>/secrets) (0600 tarball); part C(caddy) is C(<root_dir>/data/caddy), the entry point's private CA
    and certificates; part C(prometheus) is C(<root_dir>/data/prometheus) while Prometheus runs: its blocks
    hard-linked and its write-ahead log copied into the staging folder first (one moment's copy, as Prometheus's
    own snapshot makes; its admin API stays off), then packed; part C(grafana) is C(<root_dir>/data/grafana), its
    SQLite database copied online as Open WebUI's.
  - >-
    C(restore) verifies the uploaded files in I(dir) against I(manifest) (checksums, safe member names), refuses
    a backup of another host unless I(force_host), stops the units of the parts, moves each part's directory
    aside to C(<dir>.before-restore-<stamp>), extracts the backup into a directory owned as the previous one
    was, starts the units and runs each unit's recorded
    health gate (C(<root_dir>/gates/<unit>.json)) until it passes. When anything fails after the stop, the
    previous directories are put back, the units started again and checked, and the module fails saying so.
  - C(prepare) creates the upload folder C(<root_dir>/backups/restore-<stamp>) (0700) of a restore.
  - C(cleanup) removes C(<root_dir>/backups/<stamp>) and C(<root_dir>/backups/restore-<stamp>).
  - Part C(secrets) has no unit; after restoring it, run C(solv-provision apply) so that the services use it.
options:
  action:
    description: What to do.
    type: str
    choices: [backup, restore, prepare, cleanup]
    required: true
  root_dir:
    description: solv_root_dir.
    type: path
    default: /opt/solv
  stamp:
    description: C(YYYYmmddTHHMMSSZ) of this run (names the staging and upload folders and the aside folders).
    type: str
    required: true
  host:
    description: The inventory name of this host (recorded by backup; compared with the manifest by restore).
    type: str
    required: true
  parts:
    description: Parts to back up or restore (default for backup, every part; for restore, required).
    type: list
    elements: str
  owner:
    description: Backup only; user who gets the staging files (the SSH login user, so fetch reads them without become).
    type: str
  docker:
    description: Docker CLI.
    type: path
    default: /usr/bin/docker
  manifest:
    description: Restore only; the backup's manifest (C(host), C(parts) with C(file) and C(sha256)).
    type: dict
  dir:
    description: Restore only; the folder the backup's files were uploaded to.
    type: path
  force_host:
    description: Restore only; restore a backup made on another host.
    type: bool
    default: false
  gate_timeout:
    description: Restore only; seconds to wait for each unit's health gate after the start.
    type: float
    default: 300
  delay:
    description: Longest pause between gate rounds, in seconds (the first is 0.25 s, each next one twice as long).
    type: float
    default: 0.5
  check_timeout:
    description: Seconds per HTTP check of a gate.
    type: float
    default: 5
author: SOLV platform team
"""

RETURN = r"""
dir:
  description: backup, prepare; the staging (or upload) folder on the host.
  type: str
manifest:
  description: backup; the manifest (also written as manifest.json in I(dir)).
  type: dict
skipped_parts:
  description: backup; parts not backed up and why (their directory does not exist).
  type: dict
restored:
  description: restore; per part {target, previous (the directory moved aside, or null), files}.
  type: dict
gates:
  description: restore; per unit {ok, elapsed, detail}.
  type: dict
versions_before:
  description: restore; image reference per unit before the restore (compare with the manifest's versions).
  type: dict
removed:
  description: cleanup; the folders removed.
  type: list
"""

import errno
import hashlib
import json
import os
import pwd
import re
import shutil
import sqlite3
import stat
import subprocess
import tarfile
from datetime import datetime, timezone

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.solv_gate import failure, journal, read_gate, wait

FORMAT = 1
# What a part is: a directory below root_dir and the unit that uses it (stopped while it is restored).
# A LiteLLM database, once there is one, is a further entry (a dump instead of a directory: a new `kind`).
PARTS = {
    "openwebui": {"kind": "dir", "dir": "data/openwebui", "unit": "solv-openwebui", "mode": 0o700},
    "secrets": {"kind": "dir", "dir": "secrets", "unit": None, "mode": 0o700},
    # The entry point's private CA (its key included) and certificates: secret, restored with the secrets.
    "caddy": {"kind": "dir", "dir": "data/caddy", "unit": "solv-caddy", "mode": 0o700},
    # Prometheus's metrics (the monitoring host): a TSDB, copied as one moment's snapshot (tsdb_snapshot).
    "prometheus": {"kind": "tsdb", "dir": "data/prometheus", "unit": "solv-prometheus", "mode": 0o700},
    # Grafana's database (users, their preferences and own dashboards; the shipped ones are provisioned files).
    "grafana": {"kind": "dir", "dir": "data/grafana", "unit": "solv-grafana", "mode": 0o700},
}
# A Prometheus TSDB: blocks are directories named by a ULID, immutable once in place (a compaction writes new ones,
# then deletes those they replace); the write-ahead log and the head chunks are appended to; `lock` and
# `queries.active` belong to the running process and are not data.
TSDB_BLOCK = re.compile(r"^[0-9A-HJKMNP-TV-Z]{26}$")
TSDB_APPENDED = ("wal", "chunks_head")
STAMP = re.compile(r"^\d{8}T\d{6}Z$")
SQLITE_MAGIC = b"SQLite format 3\x00"
SQLITE_SIDECARS = ("-wal", "-shm", "-journal")
# A database the backup fails on when it cannot be copied online; any other SQLite file (an uploaded one, say)
# is then copied as a plain file, with a warning.
ESSENTIAL_DATABASES = ("webui.db",)


class BackupError(Exception):
    """A clear, one-paragraph reason the action failed."""


def run(cmd):
    """(rc, stdout, stderr); a missing program is rc 127, not an exception."""
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, errors="replace", check=False)
    except OSError as exc:
        return 127, "", str(exc)
    return out.returncode, out.stdout, out.stderr


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def human(n):
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024.0
    return str(n)


# --- backup ------------------------------------------------------------------------------------------------
def is_sqlite(path):
    try:
        with open(path, "rb") as f:
            return f.read(16) == SQLITE_MAGIC
    except OSError:
        return False


def sqlite_copy(src, dst, timeout=60.0):
    """A consistent copy of the committed state of a (possibly busy) SQLite database, checked."""
    if os.path.exists(dst):
        os.unlink(dst)
    source = sqlite3.connect(src, timeout=timeout)
    try:
        target = sqlite3.connect(dst)
        try:
            source.backup(target)
            check = target.execute("PRAGMA quick_check").fetchone()[0]
        finally:
            target.close()
    finally:
        source.close()
    if check != "ok":
        raise BackupError(f"the copy of {src} fails SQLite's quick_check: {check}")


def _sidecars(dirpath, filenames):
    """Names of the -wal/-shm/-journal files of the SQLite databases in one directory."""
    skip = set()
    for f in filenames:
        for suffix in SQLITE_SIDECARS:
            if f.endswith(suffix) and f[: -len(suffix)] in filenames and is_sqlite(os.path.join(dirpath, f[: -len(suffix)])):
                skip.add(f)
    return skip


def _copy_tree(src, dst, link):
    """src's tree into dst with each entry's mode and owner: files hard-linked (link; copied across filesystems)
    or copied. A file that vanishes while copied (a log segment truncated) is left out; while linked, an error."""
    for dirpath, dirnames, filenames in os.walk(src, onerror=_raise):
        target = os.path.join(dst, os.path.relpath(dirpath, src))
        st = os.stat(dirpath)
        os.makedirs(target, exist_ok=True)
        os.chmod(target, stat.S_IMODE(st.st_mode))
        os.chown(target, st.st_uid, st.st_gid)
        for f in filenames:
            source, dest = os.path.join(dirpath, f), os.path.join(target, f)
            try:
                if link:
                    try:
                        os.link(source, dest)
                        continue
                    except OSError as exc:
                        if exc.errno != errno.EXDEV:
                            raise
                st = os.stat(source)
                shutil.copy2(source, dest)
                os.chown(dest, st.st_uid, st.st_gid)
            except FileNotFoundError:
                if link:
                    raise


def _raise(exc):
    raise exc


def tsdb_snapshot(src, dest):
    """One moment's copy of a running Prometheus's data directory in dest: every block hard-linked, the directory
    listed again until no new block appeared (a compaction that finished meanwhile), then the write-ahead log and
    head chunks copied (Prometheus replays the log at start and repairs a torn last record). Prometheus renames a
    block away before it deletes its files: a block whose name is gone after it was linked is left out (a
    compaction replaced it: its samples are in the new block)."""
    os.mkdir(dest, 0o700)
    seen = set()
    while True:
        blocks = {n for n in os.listdir(src) if TSDB_BLOCK.match(n) and os.path.isfile(os.path.join(src, n, "meta.json"))}
        if not blocks - seen:
            break
        for name in sorted(blocks - seen):
            seen.add(name)
            try:
                _copy_tree(os.path.join(src, name), os.path.join(dest, name), link=True)
                complete = os.path.isdir(os.path.join(src, name))
            except FileNotFoundError:
                complete = False
            if not complete:
                shutil.rmtree(os.path.join(dest, name), ignore_errors=True)
    for name in TSDB_APPENDED:
        if os.path.isdir(os.path.join(src, name)):
            _copy_tree(os.path.join(src, name), os.path.join(dest, name), link=False)


def tree_size(top):
    """(bytes of regular files, bytes of the largest SQLite database) below top."""
    total = largest = 0
    for dirpath, _, filenames in os.walk(top):
        for f in filenames:
            try:
                st = os.lstat(os.path.join(dirpath, f))
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode):
                total += st.st_size
                if st.st_size > largest and is_sqlite(os.path.join(dirpath, f)):
                    largest = st.st_size
    return total, largest


def pack(src, tar_path, work):
    """src's content (not src itself) into tar_path; SQLite databases as online copies -> {files, sqlite, warnings}."""
    files, databases, warnings = 0, [], []
    copy = os.path.join(work, ".sqlite-copy")
    fd = os.open(tar_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz", compresslevel=6) as tar:
        for dirpath, dirnames, filenames in os.walk(src):
            dirnames.sort()
            rel = os.path.relpath(dirpath, src)
            skip = _sidecars(dirpath, set(filenames))
            entries = [(d, True) for d in dirnames] + [(f, False) for f in sorted(filenames) if f not in skip]
            for name, is_dir in entries:
                full = os.path.join(dirpath, name)
                arc = os.path.normpath(os.path.join(rel, name))
                try:
                    st = os.lstat(full)
                    if is_dir or not stat.S_ISREG(st.st_mode):
                        if stat.S_ISDIR(st.st_mode) or stat.S_ISLNK(st.st_mode) or stat.S_ISREG(st.st_mode):
                            tar.add(full, arcname=arc, recursive=False)  # sockets and fifos are not data
                        continue
                    online = is_sqlite(full)
                    if online:
                        try:
                            sqlite_copy(full, copy)
                        except (sqlite3.Error, BackupError) as exc:
                            if os.path.exists(copy):
                                os.unlink(copy)
                            if arc in ESSENTIAL_DATABASES:
                                raise BackupError(f"{full}: SQLite online copy failed: {exc}") from None
                            warnings.append(f"{arc}: not a usable SQLite database ({exc}); copied as a plain file")
                            online = False
                    if online:
                        info = tar.gettarinfo(copy, arcname=arc)
                        info.mode, info.uid, info.gid, info.mtime = st.st_mode & 0o7777, st.st_uid, st.st_gid, st.st_mtime
                        info.uname, info.gname = "", ""
                        with open(copy, "rb") as f:
                            tar.addfile(info, f)
                        os.unlink(copy)
                        databases.append(arc)
                    else:
                        tar.add(full, arcname=arc, recursive=False)
                    files += 1
                except FileNotFoundError:  # removed while we walked (a cache file): not part of the backup
                    continue
    return {"files": files, "sqlite": databases, "warnings": warnings}


def container_versions(docker, names):
    """unit -> the image reference its running container was started with (label solv.image), or None."""
    versions = {n: None for n in names}
    if not names:
        return versions
    rc, out, _ = run([docker, "container", "inspect", *names])
    try:
        items = json.loads(out) if out.strip() else []
    except ValueError:
        items = []
    for item in items:
        name = str(item.get("Name", "")).lstrip("/")
        if name in versions and (item.get("State") or {}).get("Running"):
            config = item.get("Config") or {}
            versions[name] = (config.get("Labels") or {}).get("solv.image") or config.get("Image")
    return versions


def _staging_root(root_dir, owner_uid):
    """<root>/backups: 0700 root, or 0711 when another user must reach a folder inside it."""
    path = os.path.join(root_dir, "backups")
    os.makedirs(path, mode=0o700, exist_ok=True)
    if owner_uid not in (None, os.geteuid()):
        os.chmod(path, 0o711)
    return path


def backup(p):
    root, stamp = p["root_dir"], p["stamp"]
    parts = p["parts"] or list(PARTS)
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        raise BackupError(f"unknown part(s) {', '.join(unknown)}; known: {', '.join(PARTS)}")
    owner = None
    if p.get("owner"):
        try:
            owner = pwd.getpwnam(p["owner"])
        except KeyError:
            raise BackupError(f"no user {p['owner']} on this host") from None
    present = {n: os.path.join(root, PARTS[n]["dir"]) for n in parts}
    skipped = {n: f"{d} does not exist" for n, d in present.items() if not os.path.isdir(d)}
    present = {n: d for n, d in present.items() if n not in skipped}
    if not present:
        raise BackupError(f"nothing to back up: {'; '.join(skipped.values())}")
    staging = os.path.join(_staging_root(root, owner.pw_uid if owner else None), stamp)
    try:
        os.mkdir(staging, 0o700)
    except FileExistsError:
        raise BackupError(f"{staging} exists (another backup with the same stamp is running?)") from None
    try:
        sizes = {n: tree_size(d) for n, d in present.items()}
        need = sum(s[0] for s in sizes.values()) + max(s[1] for s in sizes.values()) + (16 << 20)
        free = shutil.disk_usage(staging).free
        if free < need:
            raise BackupError(f"not enough space in {staging}: {human(free)} free, up to {human(need)} needed")
        manifest_parts = {}
        for name, src in present.items():
            file = f"{name}.tar.gz"
            path = os.path.join(staging, file)
            if PARTS[name]["kind"] == "tsdb":
                snapshot = os.path.join(staging, f".{name}-snapshot")
                try:
                    tsdb_snapshot(src, snapshot)
                    info = pack(snapshot, path, staging)
                finally:
                    shutil.rmtree(snapshot, ignore_errors=True)
            else:
                info = pack(src, path, staging)
            manifest_parts[name] = {"file": file, "sha256": sha256_file(path), "bytes": os.path.getsize(path),
                                    "source": src, **info}
        units = sorted({PARTS[n]["unit"] for n in present if PARTS[n]["unit"]})
        manifest = {
            "format": FORMAT, "host": p["host"], "stamp": stamp,
            "created_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "root_dir": root, "parts": manifest_parts, "versions": container_versions(p["docker"], units),
        }
        fd = os.open(os.path.join(staging, "manifest.json"), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(manifest, f, indent=2, sort_keys=True)
        if owner and owner.pw_uid != os.geteuid():
            for name in [*os.listdir(staging), "."]:
                os.chown(os.path.join(staging, name), owner.pw_uid, owner.pw_gid)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    # Not "skipped": Ansible takes a module result's truthy `skipped` for a skipped task.
    return {"changed": True, "dir": staging, "manifest": manifest, "skipped_parts": skipped}


def prepare(p):
    """The upload folder of a restore: <root>/backups/restore-<stamp> (0700)."""
    path = os.path.join(_staging_root(p["root_dir"], None), f"restore-{p['stamp']}")
    os.makedirs(path, mode=0o700, exist_ok=True)
    os.chmod(path, 0o700)
    return {"changed": True, "dir": path}


def cleanup(p):
    base = os.path.join(p["root_dir"], "backups")
    removed = []
    for name in (p["stamp"], f"restore-{p['stamp']}"):
        path = os.path.join(base, name)
        if os.path.lexists(path):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return {"changed": bool(removed), "removed": removed}


# --- restore: files ----------------------------------------------------------------------------------------
def _escapes(rel):
    rel = os.path.normpath(rel)
    return os.path.isabs(rel) or rel == ".." or rel.startswith("../")


def check_members(tar):
    """Refuse members that could write outside the target: absolute or .. names, links that leave, devices."""
    for m in tar.getmembers():
        if _escapes(m.name):
            raise BackupError(f"unsafe member {m.name!r}")
        if not (m.isreg() or m.isdir() or m.issym() or m.islnk()):
            raise BackupError(f"member {m.name!r} is not a file, directory or link")
        if m.issym() and _escapes(os.path.join(os.path.dirname(m.name), m.linkname)):
            raise BackupError(f"member {m.name!r} links outside the backup ({m.linkname!r})")
        if m.islnk() and _escapes(m.linkname):
            raise BackupError(f"member {m.name!r} links outside the backup ({m.linkname!r})")


def extract(path, target):
    with tarfile.open(path, "r:gz") as tar:
        check_members(tar)
        if hasattr(tarfile, "tar_filter"):  # Python >= 3.11.4 (and security backports): the checks again
            tar.extractall(target, numeric_owner=True, filter="tar")
        else:
            tar.extractall(target, numeric_owner=True)  # members checked above
        return sum(1 for m in tar.getmembers() if not m.isdir())


def verify(upload, manifest, parts):
    """Every part's file exists, matches its checksum and is a safe archive; -> {part: path}."""
    files = {}
    for name in parts:
        entry = (manifest.get("parts") or {}).get(name)
        if not entry:
            raise BackupError(f"the backup has no part {name}")
        path = os.path.join(upload, os.path.basename(entry["file"]))
        if not os.path.isfile(path):
            raise BackupError(f"{path} is missing")
        digest = sha256_file(path)
        if digest != entry.get("sha256"):
            raise BackupError(f"checksum mismatch: {path} is {digest}, the manifest says {entry.get('sha256')}")
        try:
            with tarfile.open(path, "r:gz") as tar:
                check_members(tar)
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise BackupError(f"{path} is not a readable tar.gz: {exc}") from None
        files[name] = path
    return files


# --- restore: units and gates ------------------------------------------------------------------------------
def systemctl(verb, unit):
    rc, out, err = run(["systemctl", verb, f"{unit}.service"])
    if rc != 0:
        raise BackupError(f"systemctl {verb} {unit}: {' '.join((err or out).split())[:300] or f'exit {rc}'}")


def wait_gate(unit, gate, p):
    """Run the unit's recorded gate until it passes -> (ok, detail, seconds)."""
    outcome = wait(run, unit, gate["checks"], p["gate_timeout"], p["delay"], network=gate.get("network") or "solv",
                   docker=p["docker"], check_timeout=p["check_timeout"])
    return outcome["ok"], "ok" if outcome["ok"] else failure(outcome, p["gate_timeout"]), outcome["elapsed"]


def restore(p):
    manifest, host = p["manifest"] or {}, p["host"]
    if not p.get("dir"):
        raise BackupError("restore needs dir (the uploaded backup)")
    parts = p["parts"] or []
    unknown = sorted(set(parts) - set(PARTS))
    if not parts or unknown:
        raise BackupError(f"parts to restore: {', '.join(parts) or 'none given'}; known: {', '.join(PARTS)}")
    if manifest.get("host") != host and not p["force_host"]:
        raise BackupError(f"this is a backup of {manifest.get('host')}, not of {host}; refused (force_host to restore it here)")
    files = verify(p["dir"], manifest, parts)
    units = sorted({PARTS[n]["unit"] for n in parts if PARTS[n]["unit"]})
    gates = {u: read_gate(p["root_dir"], u) for u in units}
    missing = [u for u, g in gates.items() if g is None]
    if missing:
        raise BackupError(f"no health gate recorded for {', '.join(missing)} on this host "
                          f"({p['root_dir']}/gates/): run `solv-provision apply` first, then restore")
    versions_before = container_versions(p["docker"], units)
    stamp = p["stamp"]

    for u in units:
        systemctl("stop", u)
    swapped, restored = [], {}
    try:
        for name in parts:
            spec = PARTS[name]
            target = os.path.join(p["root_dir"], spec["dir"])
            aside = f"{target}.before-restore-{stamp}"
            if os.path.lexists(aside):
                raise BackupError(f"{aside} exists already")
            previous, owner = None, None
            if os.path.lexists(target):
                st = os.lstat(target)
                owner = (st.st_uid, st.st_gid)  # a service running as another user keeps its directory
                os.rename(target, aside)
                previous = aside
            swapped.append((target, previous))
            os.makedirs(os.path.dirname(target), exist_ok=True)
            os.mkdir(target, spec["mode"])
            os.chmod(target, spec["mode"])
            if owner:
                os.chown(target, *owner)
            restored[name] = {"target": target, "previous": previous, "files": extract(files[name], target)}
        for u in units:
            systemctl("start", u)
        results = {}
        for u in units:
            ok, detail, elapsed = wait_gate(u, gates[u], p)
            results[u] = {"ok": ok, "elapsed": elapsed, "detail": detail}
            if not ok:
                raise BackupError(f"{u}: {detail}")
    except Exception as exc:  # whatever failed after the stop: put the previous data back
        reason = str(exc) if isinstance(exc, BackupError) else f"{type(exc).__name__}: {exc}"
        raise BackupError(f"restore failed: {reason}. " + put_back(p, units, gates, swapped)) from None
    return {"changed": True, "restored": restored, "gates": results, "versions_before": versions_before}


def put_back(p, units, gates, swapped):
    """Undo a failed restore: previous directories back, units started and checked -> one sentence."""
    for u in units:
        run(["systemctl", "stop", f"{u}.service"])
    for target, previous in reversed(swapped):
        shutil.rmtree(target, ignore_errors=True)
        if previous:
            os.rename(previous, target)
    verdicts = []
    for u in units:
        try:
            systemctl("start", u)
            ok, detail, elapsed = wait_gate(u, gates[u], p)
        except BackupError as exc:
            ok, detail, elapsed = False, str(exc), 0
        if ok:
            verdicts.append(f"{u} is healthy again ({elapsed:g}s)")
        else:
            log = journal(run, u, 20)
            verdicts.append(f"{u} is NOT healthy either: {detail}" + (f". Last log lines:\n{log}" if log else ""))
    what = "The previous data was put back" if swapped else "Nothing was changed"
    return f"{what}; " + "; ".join(verdicts) if verdicts else f"{what}."


def main():
    module = AnsibleModule(
        argument_spec=dict(
            action=dict(type="str", required=True, choices=["backup", "restore", "prepare", "cleanup"]),
            root_dir=dict(type="path", default="/opt/solv"),
            stamp=dict(type="str", required=True),
            host=dict(type="str", required=True),
            parts=dict(type="list", elements="str"),
            owner=dict(type="str"),
            docker=dict(type="path", default="/usr/bin/docker"),
            manifest=dict(type="dict"),
            dir=dict(type="path"),
            force_host=dict(type="bool", default=False),
            gate_timeout=dict(type="float", default=300),
            delay=dict(type="float", default=0.5),
            check_timeout=dict(type="float", default=5),
        ),
        supports_check_mode=False,
    )
    p = module.params
    if not STAMP.match(p["stamp"]):
        module.fail_json(msg=f"stamp {p['stamp']!r} is not YYYYmmddTHHMMSSZ")
    for part in p["parts"] or []:  # header values of the gates (API keys) never reach the output
        unit = PARTS.get(part, {}).get("unit")
        for c in (read_gate(p["root_dir"], unit) or {}).get("checks", []) if unit else []:
            module.no_log_values.update(str(v) for v in (c.get("headers") or {}).values() if len(str(v)) >= 4)
    action = {"backup": backup, "restore": restore, "prepare": prepare, "cleanup": cleanup}[p["action"]]
    try:
        result = action(p)
    except BackupError as exc:
        module.fail_json(msg=str(exc))
    except (OSError, tarfile.TarError, sqlite3.Error) as exc:
        module.fail_json(msg=f"{p['action']} failed: {type(exc).__name__}: {exc}")
    module.exit_json(**result)


if __name__ == "__main__":
    main()
