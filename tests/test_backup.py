"""`solv-provision backup` / `restore`: the solv_backup module on a temporary host (a real SQLite database, fake
systemctl and docker, a local HTTP server as the health gate), the controller's checks (checksums, host,
retention, vault), the CLI's usage errors, and one real run of playbooks/backup.yml and restore.yml against this
machine (connection local)."""

from __future__ import annotations

import io
import json
import os
import socket
import sqlite3
import subprocess
import sys
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

import module_runner
from conftest import INVENTORIES, REPO

MODULE = REPO / "roles" / "solv_common" / "library" / "solv_backup.py"
UNIT = "solv-openwebui"
IMAGE = "ghcr.io/open-webui/open-webui:v0.12.4"
CADDY, CADDY_IMAGE, CADDY_UID = "solv-caddy", "caddy:2.6.2", 8443
STAMP = "20250131T120000Z"


# --- a host: data, secrets, gate, systemctl, docker ----------------------------------------------------------
class _Health(BaseHTTPRequestHandler):
    broken: Path | None = None  # /health answers 500 while this file exists (a data dir that "cannot start")

    def do_GET(self):  # noqa: N802
        status = 500 if self.broken and self.broken.exists() else 200
        body = b'{"status": true}' if status == 200 else b'{"detail": "database is broken"}'
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), type("Handler", (_Health,), {}))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    httpd.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield httpd
    httpd.shutdown()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class FakeHost:
    """<root> with Open WebUI's data and the secrets; bin/ with systemctl (state + log in files) and docker."""

    def __init__(self, base: Path, gate_url: str):
        self.base = base
        self.root, self.bin, self.state = base / "root", base / "bin", base / "state"
        self.data, self.secrets = self.root / "data" / "openwebui", self.root / "secrets"
        for d in (self.bin, self.state, self.root / "gates", self.data / "uploads", self.data / "vector_db",
                  self.data / "cache" / "embedding"):
            d.mkdir(parents=True, exist_ok=True)
        self.data.chmod(0o700)
        self.db = self.data / "webui.db"
        with sqlite3.connect(self.db) as c:
            c.execute("CREATE TABLE chat (id INTEGER PRIMARY KEY, title TEXT)")
            c.executemany("INSERT INTO chat (title) VALUES (?)", [("first",), ("second",)])
        with sqlite3.connect(self.data / "vector_db" / "chroma.sqlite3") as c:
            c.execute("CREATE TABLE embeddings (id INTEGER PRIMARY KEY, v BLOB)")
            c.execute("INSERT INTO embeddings (v) VALUES (x'0102')")
        (self.data / "uploads" / "report.pdf").write_bytes(b"%PDF-1.4 upload")
        (self.data / "cache" / "embedding" / "model.bin").write_bytes(b"\0" * 1024)
        self.secrets.mkdir(mode=0o700)
        for name, value in (("openwebui_secret_key", "s3cr3t-key"), ("openwebui_admin_password", "pw-123456")):
            (self.secrets / name).write_text(value + "\n")
            (self.secrets / name).chmod(0o600)
        # The entry point's CA, owned by the user Caddy runs as.
        self.caddy = self.root / "data" / "caddy"
        (self.caddy / "pki" / "authorities" / "local").mkdir(parents=True)
        (self.caddy / "pki" / "authorities" / "local" / "root.key").write_text("CA KEY\n")
        for path in (self.caddy, *self.caddy.rglob("*")):
            os.chown(path, CADDY_UID, CADDY_UID)
        self.caddy.chmod(0o700)
        self.gate(gate_url)
        for unit in (UNIT, CADDY):
            (self.state / f"{unit}.active").write_text("active")
        self._script("systemctl", f"""#!/bin/sh
echo "$*" >> {self.state}/systemctl.log
unit=$(echo "$2" | sed 's/\\.service$//')
case "$1" in
  stop) echo inactive > {self.state}/$unit.active ;;
  start) echo active > {self.state}/$unit.active ;;
  show) printf 'ActiveState=%s\\nSubState=running\\nNRestarts=0\\n' "$(cat {self.state}/$unit.active 2>/dev/null || echo inactive)" ;;
esac
""")
        # docker container inspect NAME...: the running ones, each with its image label.
        self._script("docker", f"""#!/bin/sh
shift 2; sep=''; printf '['
for unit in "$@"; do
  [ "$(cat {self.state}/$unit.active 2>/dev/null)" = active ] || continue
  case $unit in {UNIT}) image={IMAGE} ;; *) image={CADDY_IMAGE} ;; esac
  printf '%s{{"Name": "/%s", "State": {{"Running": true}}, "Config": {{"Labels": {{"solv.image": "%s"}}}}}}' "$sep" $unit $image
  sep=', '
done
echo ']'
""")

    def gate(self, url):
        for unit in (UNIT, CADDY):
            (self.root / "gates" / f"{unit}.json").write_text(json.dumps({"name": unit, "checks": [{"url": url}]}))

    def _script(self, name, text):
        path = self.bin / name
        path.write_text(text)
        path.chmod(0o755)

    def systemctl_calls(self):
        log = self.state / "systemctl.log"
        return [line for line in log.read_text().splitlines() if not line.startswith("show")] if log.exists() else []

    def run(self, **args):
        path = self.base / "args.json"
        args = {"root_dir": str(self.root), "docker": str(self.bin / "docker"), "host": "gw-1", "stamp": STAMP,
                **args}
        path.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
        env = {"PATH": f"{self.bin}:/usr/bin:/bin", "LANG": "C.UTF-8"}
        out = subprocess.run(module_runner.command(MODULE, path), capture_output=True, text=True, env=env,
                             check=False, timeout=120)
        assert out.stdout, out.stderr
        return json.loads(out.stdout)

    def backup(self, **args):
        result = self.run(action="backup", **{"parts": ["openwebui", "secrets", "caddy"], **args})
        assert not result.get("failed"), result
        return result

    def restore(self, staging, manifest, parts=("openwebui",), **args):
        return self.run(action="restore", dir=str(staging), manifest=manifest, parts=list(parts),
                        gate_timeout=1, delay=0.1, check_timeout=1, **args)


@pytest.fixture
def host(tmp_path, server):
    fake = FakeHost(tmp_path / "host", f"{server.base}/health")
    server.RequestHandlerClass.broken = fake.data / "BROKEN"
    return fake


def rows(db: Path) -> list[str]:
    with sqlite3.connect(db) as c:
        return [r[0] for r in c.execute("SELECT title FROM chat ORDER BY id")]


def members(tar_path: Path) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(tar_path) as tar:
        return {m.name: m for m in tar.getmembers()}


# --- the module: backup ------------------------------------------------------------------------------------
@pytest.mark.parametrize("journal_mode", ["wal", "delete"])
def test_backup_is_a_consistent_copy_while_a_writer_holds_a_transaction(host, tmp_path, journal_mode):
    writer = sqlite3.connect(host.db, isolation_level=None, timeout=0)
    writer.execute(f"PRAGMA journal_mode={journal_mode}")
    writer.execute("INSERT INTO chat (title) VALUES ('third, committed')")
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("INSERT INTO chat (title) VALUES ('not committed')")  # open while the backup runs
    try:
        result = host.backup()
    finally:
        writer.execute("ROLLBACK")
        writer.close()

    staging = Path(result["dir"])
    assert staging == host.root / "backups" / STAMP and staging.stat().st_mode & 0o777 == 0o700
    manifest = result["manifest"]
    assert manifest["host"] == "gw-1" and manifest["stamp"] == STAMP and manifest["created_at"].endswith("Z")
    assert manifest["versions"] == {UNIT: IMAGE, CADDY: CADDY_IMAGE}
    assert set(manifest["parts"]) == {"openwebui", "secrets", "caddy"} and result["skipped_parts"] == {}
    assert json.loads((staging / "manifest.json").read_text()) == manifest
    webui = manifest["parts"]["openwebui"]
    assert webui["file"] == "openwebui.tar.gz" and sorted(webui["sqlite"]) == ["vector_db/chroma.sqlite3", "webui.db"]
    assert webui["files"] == 4 and webui["warnings"] == []
    import hashlib

    for part in manifest["parts"].values():
        path = staging / part["file"]
        assert hashlib.sha256(path.read_bytes()).hexdigest() == part["sha256"] and path.stat().st_size == part["bytes"]
        assert path.stat().st_mode & 0o777 == 0o600

    names = members(staging / "openwebui.tar.gz")
    assert {"webui.db", "uploads/report.pdf", "vector_db/chroma.sqlite3", "cache/embedding/model.bin"} <= set(names)
    assert not [n for n in names if n.endswith(("-wal", "-shm", "-journal"))], names  # live sidecars never copied
    out = tmp_path / "out"
    with tarfile.open(staging / "openwebui.tar.gz") as tar:
        tar.extractall(out, filter="tar")
    assert rows(out / "webui.db") == ["first", "second", "third, committed"]
    secrets = members(staging / "secrets.tar.gz")
    assert {n: m.mode for n, m in secrets.items()} == {"openwebui_admin_password": 0o600, "openwebui_secret_key": 0o600}
    assert "pki/authorities/local/root.key" in members(staging / "caddy.tar.gz")


def test_backup_skips_a_missing_part_and_fails_with_nothing(host):
    import shutil

    shutil.rmtree(host.secrets)
    result = host.backup()
    assert set(result["manifest"]["parts"]) == {"openwebui", "caddy"}
    assert result["skipped_parts"] == {"secrets": f"{host.secrets} does not exist"}
    # (not `skipped`: Ansible took a truthy `skipped` for a skipped task, and the backup of a gateway host
    # without Open WebUI failed with "no answer from solv_backup")
    assert "skipped" not in result
    shutil.rmtree(host.data)
    shutil.rmtree(host.caddy)
    failed = host.run(action="backup", stamp="20250131T120001Z")
    assert failed["failed"] and "nothing to back up" in failed["msg"]
    assert not (host.root / "backups" / "20250131T120001Z").exists()  # no staging left behind


def test_a_broken_uploaded_database_is_copied_plain_but_webui_db_must_copy_online(host):
    (host.data / "uploads" / "user.db").write_bytes(b"SQLite format 3\x00" + b"\xff" * 200)  # not a database
    result = host.backup()
    webui = result["manifest"]["parts"]["openwebui"]
    assert "uploads/user.db" not in webui["sqlite"] and "uploads/user.db" in members(Path(result["dir"]) / webui["file"])
    assert len(webui["warnings"]) == 1 and webui["warnings"][0].startswith("uploads/user.db: not a usable SQLite")
    (host.data / "uploads" / "user.db").rename(host.db)
    failed = host.run(action="backup", stamp="20250131T120001Z")
    assert failed["failed"] and "webui.db: SQLite online copy failed" in failed["msg"]


def test_cleanup_removes_only_this_stamps_folders(host):
    host.backup()
    other = host.root / "backups" / "20240101T000000Z"
    other.mkdir()
    result = host.run(action="cleanup")
    assert result["changed"] and not (host.root / "backups" / STAMP).exists() and other.exists()
    assert host.run(action="cleanup", stamp="../..")["failed"]


# --- the module: restore -----------------------------------------------------------------------------------
def _wreck(host):
    """What a restore must undo: a new row, an upload gone, a stray file."""
    with sqlite3.connect(host.db) as c:
        c.execute("INSERT INTO chat (title) VALUES ('after the backup')")
    (host.data / "uploads" / "report.pdf").unlink()
    (host.data / "stray.txt").write_text("x")


def test_restore_stops_restores_starts_and_checks_health(host):
    result = host.backup()
    staging, manifest = Path(result["dir"]), result["manifest"]
    _wreck(host)
    restored = host.restore(staging, manifest, stamp="20250201T000000Z")
    assert not restored.get("failed"), restored
    assert rows(host.db) == ["first", "second"] and (host.data / "uploads" / "report.pdf").exists()
    assert not (host.data / "stray.txt").exists() and host.data.stat().st_mode & 0o777 == 0o700
    previous = host.root / "data" / "openwebui.before-restore-20250201T000000Z"
    assert restored["restored"]["openwebui"]["previous"] == str(previous) and (previous / "stray.txt").exists()
    assert restored["gates"][UNIT]["ok"] is True and restored["versions_before"] == {UNIT: IMAGE}
    assert host.systemctl_calls() == [f"stop {UNIT}.service", f"start {UNIT}.service"]
    assert (host.secrets / "openwebui_secret_key").read_text() == "s3cr3t-key\n"  # not asked for: untouched


def test_restore_with_secrets(host):
    result = host.backup()
    (host.secrets / "openwebui_secret_key").write_text("rotated\n")
    restored = host.restore(Path(result["dir"]), result["manifest"], parts=["openwebui", "secrets"])
    assert not restored.get("failed"), restored
    assert (host.secrets / "openwebui_secret_key").read_text() == "s3cr3t-key\n"
    assert host.secrets.stat().st_mode & 0o777 == 0o700
    assert (host.secrets / "openwebui_secret_key").stat().st_mode & 0o777 == 0o600


def test_restore_of_the_ca_keeps_its_owner_and_restarts_the_entry_point(host):
    result = host.backup()
    key = host.caddy / "pki" / "authorities" / "local" / "root.key"
    key.write_text("another CA\n")
    restored = host.restore(Path(result["dir"]), result["manifest"], parts=["secrets", "caddy"])
    assert not restored.get("failed"), restored
    assert key.read_text() == "CA KEY\n" and restored["gates"][CADDY]["ok"] is True
    assert (host.caddy.stat().st_uid, host.caddy.stat().st_mode & 0o777) == (CADDY_UID, 0o700)
    assert key.stat().st_uid == CADDY_UID  # Caddy runs as this user: a root-owned CA would stop it
    assert host.systemctl_calls() == [f"stop {CADDY}.service", f"start {CADDY}.service"]


# --- Prometheus's data (part prometheus) -------------------------------------------------------------------
NOBODY = 65534
BLOCKS = ("01JDZ0000000000000000000A1", "01JDZ0000000000000000000B2")


def _tsdb(root: Path) -> Path:
    """A Prometheus data directory as a running Prometheus has it, owned by its user."""
    data = root / "data" / "prometheus"
    for block in BLOCKS:
        (data / block / "chunks").mkdir(parents=True)
        (data / block / "meta.json").write_text(json.dumps({"ulid": block}))
        (data / block / "index").write_bytes(b"index of " + block.encode())
        (data / block / "chunks" / "000001").write_bytes(b"chunks of " + block.encode())
    (data / "wal" / "checkpoint.00000001").mkdir(parents=True)
    (data / "wal" / "00000002").write_bytes(b"wal record")
    (data / "chunks_head").mkdir()
    (data / "chunks_head" / "000003").write_bytes(b"head chunk")
    (data / "lock").write_text("")
    (data / "queries.active").write_text("")
    (data / "01JDZ0000000000000000000C3.tmp-for-creation").mkdir()  # a compaction's block, not yet in place
    for path in (data, *data.rglob("*")):
        os.chown(path, NOBODY, NOBODY)
    data.chmod(0o700)
    return data


def test_prometheus_s_data_is_backed_up_as_one_moment_s_copy_and_restored_for_its_user(host):
    data = _tsdb(host.root)
    (host.root / "gates" / "solv-prometheus.json").write_text(
        json.dumps({"name": "solv-prometheus", "checks": host_gate(host)}))
    result = host.backup(parts=["prometheus"])
    part = result["manifest"]["parts"]["prometheus"]
    got = members(Path(result["dir"]) / part["file"])
    # Blocks in place, the write-ahead log and head chunks; not the process's lock and query log, nor a block
    # still being written. Owned by Prometheus's user, so that it can write there after a restore.
    assert sorted(n for n, m in got.items() if m.isfile()) == sorted(
        [f"{b}/{f}" for b in BLOCKS for f in ("chunks/000001", "index", "meta.json")]
        + ["chunks_head/000003", "wal/00000002"])
    assert {(m.uid, m.gid) for m in got.values()} == {(NOBODY, NOBODY)}
    assert part["source"] == str(data) and not list(Path(result["dir"]).glob(".*"))  # the snapshot is gone
    # The snapshot's files were links: the data directory still has one name per block file.
    assert (data / BLOCKS[0] / "index").stat().st_nlink == 1
    (data / "wal" / "00000002").write_bytes(b"newer samples")
    shutil_rmtree(data / BLOCKS[1])
    restored = host.restore(Path(result["dir"]), result["manifest"], parts=["prometheus"])
    assert not restored.get("failed"), restored
    assert (data / "wal" / "00000002").read_bytes() == b"wal record" and (data / BLOCKS[1] / "index").exists()
    assert (data.stat().st_uid, (data / BLOCKS[1]).stat().st_uid, (data / "wal").stat().st_uid) == (NOBODY,) * 3
    assert host.systemctl_calls() == ["stop solv-prometheus.service", "start solv-prometheus.service"]


def test_the_snapshot_takes_a_block_a_compaction_finished_meanwhile_and_leaves_out_one_it_deleted(tmp_path):
    backup = module_runner.load(MODULE)
    data = _tsdb(tmp_path)
    listings = []
    real_listdir = os.listdir

    def listdir(path):
        names = real_listdir(path)
        if Path(path) == data:
            listings.append(names)
            if len(listings) == 1:  # the compaction: a new block in place, one it replaced renamed away
                (data / "01JDZ0000000000000000000C3.tmp-for-creation").rename(data / "01JDZ0000000000000000000C3")
                (data / "01JDZ0000000000000000000C3" / "meta.json").write_text("{}")
                (data / BLOCKS[0]).rename(data / f"{BLOCKS[0]}.tmp-for-deletion")
        return names

    backup.os.listdir = listdir
    try:
        backup.tsdb_snapshot(str(data), str(tmp_path / "snapshot"))
    finally:
        backup.os.listdir = real_listdir
    assert sorted(p.name for p in (tmp_path / "snapshot").iterdir()) == [
        BLOCKS[1], "01JDZ0000000000000000000C3", "chunks_head", "wal"]
    assert len(listings) == 3  # listed again until no new block appeared


def host_gate(host: FakeHost) -> list[dict[str, str]]:
    return json.loads((host.root / "gates" / f"{UNIT}.json").read_text())["checks"]


def shutil_rmtree(path: Path) -> None:
    import shutil

    shutil.rmtree(path)


def test_restore_refuses_a_checksum_mismatch_before_stopping_anything(host):
    result = host.backup()
    staging = Path(result["dir"])
    with open(staging / "openwebui.tar.gz", "ab") as f:
        f.write(b"tampered")
    _wreck(host)
    failed = host.restore(staging, result["manifest"])
    assert failed["failed"] and "checksum mismatch" in failed["msg"]
    assert host.systemctl_calls() == [] and (host.data / "stray.txt").exists()


def test_restore_refuses_another_hosts_backup_unless_forced(host):
    result = host.backup()
    failed = host.restore(Path(result["dir"]), result["manifest"], host="gw-2")
    assert failed["failed"] and "backup of gw-1, not of gw-2" in failed["msg"] and host.systemctl_calls() == []
    forced = host.restore(Path(result["dir"]), result["manifest"], host="gw-2", force_host=True)
    assert not forced.get("failed"), forced


def test_restore_refuses_members_outside_the_target(host, tmp_path):
    evil = tmp_path / "evil.tar.gz"
    with tarfile.open(evil, "w:gz") as tar:
        info = tarfile.TarInfo("../../escaped")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"bad"))
    import hashlib

    manifest = {"host": "gw-1", "parts": {"openwebui": {"file": "evil.tar.gz",
                                                        "sha256": hashlib.sha256(evil.read_bytes()).hexdigest()}}}
    failed = host.restore(tmp_path, manifest)
    assert failed["failed"] and "unsafe member '../../escaped'" in failed["msg"] and host.systemctl_calls() == []


def test_restore_puts_the_previous_data_back_when_the_gate_fails(host):
    (host.data / "BROKEN").write_text("this data makes Open WebUI fail")
    result = host.backup()
    (host.data / "BROKEN").unlink()
    _wreck(host)
    before = sorted(p.relative_to(host.data) for p in host.data.rglob("*"))
    failed = host.restore(Path(result["dir"]), result["manifest"], stamp="20250201T000000Z")
    assert failed["failed"], failed
    assert "restore failed: solv-openwebui: not ready after 1s" in failed["msg"] and "status 500" in failed["msg"]
    assert "The previous data was put back; solv-openwebui is healthy again" in failed["msg"]
    assert sorted(p.relative_to(host.data) for p in host.data.rglob("*")) == before
    assert rows(host.db) == ["first", "second", "after the backup"]
    assert not list(host.data.parent.glob("openwebui.before-restore-*"))
    assert host.systemctl_calls() == [f"stop {UNIT}.service", f"start {UNIT}.service"] * 2


def test_restore_says_so_when_the_previous_data_is_unhealthy_too(host):
    result = host.backup()
    host.gate(f"http://127.0.0.1:{closed_port()}/health")  # nothing answers
    failed = host.restore(Path(result["dir"]), result["manifest"])
    assert failed["failed"] and "no answer" in failed["msg"]
    assert "The previous data was put back; solv-openwebui is NOT healthy either" in failed["msg"]
    assert rows(host.db) == ["first", "second"]


def test_restore_needs_the_recorded_gate(host):
    result = host.backup()
    (host.root / "gates" / f"{UNIT}.json").unlink()
    failed = host.restore(Path(result["dir"]), result["manifest"])
    assert failed["failed"] and "run `solv-provision apply` first" in failed["msg"] and host.systemctl_calls() == []


# --- the controller's half ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def inv():
    from solv_provision import inventory

    return inventory.load([INVENTORIES / "good"])


def test_each_data_host_is_asked_for_its_own_parts(tmp_path):
    """The gateway hosts' data, the monitoring host's metrics and Grafana's; with the switch, the first gateway host
    has both."""
    from solv_provision import inventory
    from solv_provision.backup import data_hosts, parts_of

    hosts = {"inference": {"hosts": {"gpu-1": {"ansible_host": "192.0.2.11"}}},
             "gateway": {"hosts": {"gw-1": {"ansible_host": "192.0.2.10"}, "gw-2": {"ansible_host": "192.0.2.12"}}}}
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump({"all": {"children": {
        **hosts, "monitoring": {"hosts": {"mon-1": {"ansible_host": "192.0.2.30"}}}}}}))
    separate = inventory.load([tmp_path])
    assert data_hosts(separate) == ["gw-1", "gw-2", "mon-1"]
    assert [parts_of(separate, h) for h in data_hosts(separate)] == [
        ["openwebui", "secrets", "caddy"], ["openwebui", "secrets", "caddy"], ["prometheus", "grafana"]]
    # With the switch, and Grafana left out (as in the lab): nothing of it is asked for.
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump({"all": {"vars": {"solv_monitoring": True,
                                                                         "grafana_enabled": False},
                                                                "children": hosts}}))
    switched = inventory.load([tmp_path])
    assert data_hosts(switched) == ["gw-1", "gw-2"]
    assert parts_of(switched, "gw-1") == ["openwebui", "secrets", "caddy", "prometheus"]
    # What `upgrade` backs up before the gateway: the gateway's parts only.
    assert parts_of(switched, "gw-1", ("gateway",)) == ["openwebui", "secrets", "caddy"]
    assert data_hosts(separate, ("gateway",)) == ["gw-1", "gw-2"]


def _backup_folder(base: Path, host="gw-1", stamp=STAMP, parts=None) -> Path:
    """A backup folder as `backup` leaves it (manifest last)."""
    import hashlib

    folder = base / host / stamp
    folder.mkdir(parents=True)
    manifest = {"format": 1, "host": host, "stamp": stamp, "created_at": "2025-01-31T12:00:00Z", "parts": {},
                "versions": {UNIT: IMAGE}}
    for name, content in (parts or {"openwebui": b"data", "secrets": b"keys", "caddy": b"ca"}).items():
        (folder / f"{name}.tar.gz").write_bytes(content)
        manifest["parts"][name] = {"file": f"{name}.tar.gz", "sha256": hashlib.sha256(content).hexdigest(),
                                   "bytes": len(content)}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def test_retention_keeps_the_newest_complete_backups(tmp_path):
    from solv_provision.backup import prune

    stamps = [f"2025013{d}T120000Z" for d in range(1, 6)]
    for s in stamps:
        _backup_folder(tmp_path, stamp=s)
    (tmp_path / "gw-1" / "20250139T000000Z").mkdir()  # incomplete (no manifest): not a backup, not counted
    (tmp_path / "gw-1" / "notes").mkdir()
    assert prune(tmp_path / "gw-1", 2) == stamps[:3]
    assert sorted(p.name for p in (tmp_path / "gw-1").iterdir()) == [*stamps[3:], "20250139T000000Z", "notes"]
    assert prune(tmp_path / "gw-1", 0) == []


def test_find_backup_takes_a_backup_or_a_host_folder(tmp_path):
    from solv_provision.backup import find_backup
    from solv_provision.runner import UsageError

    _backup_folder(tmp_path, stamp="20250130T000000Z")
    newest = _backup_folder(tmp_path, stamp="20250131T000000Z")
    assert find_backup(str(newest))[0] == newest.resolve()
    assert find_backup(str(tmp_path / "gw-1"))[0] == newest.resolve()
    with pytest.raises(UsageError, match="no such folder"):
        find_backup(str(tmp_path / "nosuch"))
    with pytest.raises(UsageError, match="no manifest.json there"):
        find_backup(str(tmp_path))
    (newest / "manifest.json").write_text('{"host": "gw-1"}')
    with pytest.raises(UsageError, match="not a solv-provision backup manifest"):
        find_backup(str(newest))


def test_restore_target_refuses_another_host_unless_forced(inv):
    from solv_provision.backup import restore_target
    from solv_provision.runner import UsageError

    assert restore_target(inv, {"host": "gw-1"}, None, False) == "gw-1"
    assert restore_target(inv, {"host": "gw-1"}, "gw-1", False) == "gw-1"
    assert restore_target(inv, {"host": "old-gw"}, "gw-1", True) == "gw-1"
    with pytest.raises(UsageError, match="the backup is of old-gw, not of gw-1: refused .*--force-host"):
        restore_target(inv, {"host": "old-gw"}, "gw-1", False)
    with pytest.raises(UsageError, match="not a gateway or monitoring host of this inventory"):
        restore_target(inv, {"host": "old-gw"}, None, False)
    with pytest.raises(UsageError, match="--limit gpu-1: not a gateway or monitoring host"):
        restore_target(inv, {"host": "gw-1"}, "gpu-1", True)
    with pytest.raises(UsageError, match="restore takes the name of one gateway or monitoring host"):
        restore_target(inv, {"host": "gw-1"}, "gateway", False)


def test_secrets_are_encrypted_with_the_vault_password_and_decrypted_for_restore(tmp_path):
    from solv_provision.backup import finish_backup, uploads, vault_lib

    folder = _backup_folder(tmp_path)
    manifest = json.loads((folder / "manifest.json").read_text())
    password = tmp_path / "vault-password.txt"
    password.write_text("correct horse\n")
    vault = vault_lib(str(password))
    written, problems = finish_backup(folder, {"manifest": manifest, "skipped_parts": {}}, vault)
    assert problems == []
    secrets = written["parts"]["secrets"]
    assert secrets["file"] == "secrets.tar.gz.vault" and not (folder / "secrets.tar.gz").exists()
    assert (folder / secrets["file"]).read_bytes().startswith(b"$ANSIBLE_VAULT;1.1;AES256")
    assert (folder / secrets["file"]).stat().st_mode & 0o777 == 0o600
    assert written["parts"]["caddy"]["file"] == "caddy.tar.gz.vault" and not (folder / "caddy.tar.gz").exists()
    assert written["parts"]["openwebui"]["file"] == "openwebui.tar.gz"  # data, not keys: plain
    assert json.loads((folder / "manifest.json").read_text()) == written
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    files, host_manifest = uploads(folder, written, ["openwebui", "secrets"], vault, scratch)
    assert (scratch / "secrets.tar.gz").read_bytes() == b"keys"
    assert host_manifest["parts"]["secrets"] == {"file": "secrets.tar.gz", "sha256": manifest["parts"]["secrets"]["sha256"]}
    assert files[0] == {"src": str(folder / "openwebui.tar.gz"), "file": "openwebui.tar.gz"}


def test_the_secret_parts_are_restored_only_with_secrets():
    from solv_provision.backup import restore_parts
    from solv_provision.runner import UsageError

    manifest = {"parts": {"openwebui": {}, "secrets": {}, "caddy": {}}}
    assert restore_parts(manifest, False) == ["openwebui"]
    assert restore_parts(manifest, True) == ["openwebui", "secrets", "caddy"]
    with pytest.raises(UsageError, match="no secrets part"):
        restore_parts({"parts": {"openwebui": {}}}, True)


def test_without_a_vault_password_the_secrets_are_marked_not_encrypted(tmp_path):
    from solv_provision.backup import finish_backup

    folder = _backup_folder(tmp_path)
    manifest = json.loads((folder / "manifest.json").read_text())
    (folder / "openwebui.tar.gz").write_bytes(b"changed in transit")
    assert finish_backup(folder, {"manifest": manifest}, None)[1] == [
        f"openwebui: checksum mismatch after the transfer (openwebui.tar.gz is "
        f"{__import__('hashlib').sha256(b'changed in transit').hexdigest()}, the host wrote "
        f"{manifest['parts']['openwebui']['sha256']})"]
    (folder / "openwebui.tar.gz").write_bytes(b"data")
    written, problems = finish_backup(folder, {"manifest": manifest}, None)
    assert problems == [] and "NOT encrypted" in written["parts"]["secrets"]["protection"]
    assert (folder / "secrets.tar.gz").stat().st_mode & 0o777 == 0o600


# --- the CLI: refused before any host is contacted -------------------------------------------------------
@pytest.fixture
def no_runs(monkeypatch):
    import ansible_runner

    calls = []
    monkeypatch.setattr(ansible_runner, "run", lambda **kw: calls.append(kw))
    return calls


def test_cli_restore_usage_errors_exit_2_and_contact_nothing(cli, tmp_path, no_runs):
    good = INVENTORIES / "good"
    result = cli("restore", "-i", good, "--from", tmp_path / "nosuch")
    assert result.exit_code == 2 and "no such folder" in result.output
    folder = _backup_folder(tmp_path)
    (folder / "openwebui.tar.gz").write_bytes(b"damaged")
    result = cli("restore", "-i", good, "--from", folder)
    assert result.exit_code == 2 and "checksum mismatch" in result.output and "refusing" in result.output
    other = _backup_folder(tmp_path / "b", host="old-gw")
    result = cli("restore", "-i", good, "--from", other, "--limit", "gw-1")
    assert result.exit_code == 2 and "--force-host" in result.output
    result = cli("restore", "-i", good, "--from", _backup_folder(tmp_path / "c", parts={"openwebui": b"x"}),
                 "--with-secrets")
    assert result.exit_code == 2 and "no secrets part" in result.output
    assert cli("restore", "-i", good).exit_code == 2  # --from is required
    assert no_runs == []


def test_cli_backup_usage_errors_exit_2(cli, tmp_path, no_runs):
    result = cli("backup", "-i", INVENTORIES / "good", "-o", tmp_path / "out", "--limit", "gw-9")
    assert result.exit_code == 2 and "gw-9 matches no host or group" in result.output
    assert cli("backup", "-i", INVENTORIES / "good", "--keep", "-1").exit_code == 2
    assert no_runs == []


@pytest.mark.parametrize("book", ["backup.yml", "restore.yml"])
def test_apply_refuses_the_backup_playbooks(cli, book, no_runs):
    result = cli("apply", "--playbook", book, "-i", INVENTORIES / "good")
    assert result.exit_code == 2 and f"{book} is run by `solv-provision {book[:-4]}`" in result.output


# --- the real playbooks, against this machine --------------------------------------------------------------
def test_backup_and_restore_playbooks_end_to_end(cli, host, tmp_path, monkeypatch):
    """backup.yml and restore.yml through the CLI and ansible-runner (connection local): the module is found,
    the parts are fetched and verified, the staging and upload folders are removed, retention applies, and the
    restore brings the data back."""
    local = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable, "ansible_become": False,
             "solv_root_dir": str(host.root), "solv_docker_bin": str(host.bin / "docker"),
             "solv_internal_address": "127.0.0.1",  # a valid gateway for the validator
             "litellm_external_models": [{"model_name": "gpt-x", "litellm_params": {"model": "openai/gpt-x"}}]}
    inv_file = tmp_path / "hosts.yml"
    inv_file.write_text(yaml.safe_dump({"all": {"children": {"gateway": {"hosts": {"gw-local": local}}}}}))
    monkeypatch.setenv("PATH", f"{host.bin}:{os.environ['PATH']}")
    out = tmp_path / "backups"

    first = cli("backup", "-i", inv_file, "-o", out, "--keep", "1")
    assert first.exit_code == 0, first.output
    [folder] = (out / "gw-local").iterdir()
    assert sorted(p.name for p in folder.iterdir()) == ["caddy.tar.gz", "manifest.json", "openwebui.tar.gz",
                                                        "secrets.tar.gz"]
    assert folder.stat().st_mode & 0o777 == 0o700 and (out / "gw-local").stat().st_mode & 0o777 == 0o700
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["host"] == "gw-local" and manifest["versions"] == {UNIT: IMAGE, CADDY: CADDY_IMAGE}
    for part in ("secrets", "caddy"):
        assert "NOT encrypted" in manifest["parts"][part]["protection"]
    assert f"gw-local: {folder}" in first.output and "openwebui" in first.output
    assert "s3cr3t-key" not in first.output
    assert list((host.root / "backups").iterdir()) == []  # staging removed

    import time

    time.sleep(1.1)  # a new stamp
    second = cli("backup", "-i", inv_file, "-o", out, "--keep", "1")
    assert second.exit_code == 0, second.output
    assert [p.name for p in (out / "gw-local").iterdir()] != [folder.name]
    assert len(list((out / "gw-local").iterdir())) == 1 and f"removed {folder.name}" in second.output
    [folder] = (out / "gw-local").iterdir()

    _wreck(host)
    restored = cli("restore", "-i", inv_file, "--from", out / "gw-local", "--timeout", "5")
    assert restored.exit_code == 0, restored.output
    assert rows(host.db) == ["first", "second"] and (host.data / "uploads" / "report.pdf").exists()
    assert f"{UNIT} healthy after" in restored.output and "before-restore-" in restored.output
    assert list((host.root / "backups").iterdir()) == []  # upload folder removed
    assert host.systemctl_calls() == [f"stop {UNIT}.service", f"start {UNIT}.service"]
