"""`solv-provision backup` and `restore` on the converged stack (the CLI, not Molecule, against this scenario's
inventory): a user and a chat made through Open WebUI's API are backed up while Open WebUI runs; Open WebUI is
wiped (stopped, data directory emptied, started: it comes up empty, with only the admin from its environment);
`restore` brings the same user and chat (compared through the API) and an upload back, and the unit is healthy.

Open WebUI takes 40-120 s to start on the lab machine; every wait below is bounded well above that.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from conftest import CA, ROOT, env_file, http, inspect, secret

NAME = "solv-openwebui"
DATA = f"{ROOT}/data/openwebui"
MARKER = "uploads/solv-backup-test.txt"
START_BOUND_S = 300


def _cli(verb, *args, timeout=900):
    cli = Path(sys.executable).parent / "solv-provision"
    inventory = Path(os.environ["MOLECULE_INVENTORY_FILE"]).parent
    argv = [str(cli), verb, "-i", str(inventory), *map(str, args)]
    run = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    return run, f"{' '.join(argv)} -> {run.returncode}\n{run.stdout[-4000:]}\n{run.stderr[-4000:]}"


def _healthy(host, base, bound_s=START_BOUND_S):
    deadline = time.monotonic() + bound_s
    while http(host, "GET", f"{base}/health")["status"] != 200:
        assert time.monotonic() < deadline, f"{NAME} not healthy within {bound_s}s"
        time.sleep(3)


def _sign_in(host, base, email, password):
    r = http(host, "POST", f"{base}/api/v1/auths/signin", payload={"email": email, "password": password})
    return r["json"]["token"] if r["status"] == 200 else None


def _user_row(host, base, token):
    """The signed-in user's own row (GET /api/v1/auths/)."""
    r = http(host, "GET", f"{base}/api/v1/auths/", token)
    assert r["status"] == 200, r
    return {k: r["json"][k] for k in ("id", "email", "name", "role")}


def _chat_row(host, base, token, chat_id):
    r = http(host, "GET", f"{base}/api/v1/chats/{chat_id}", token)
    if r["status"] != 200:
        return None
    chat = r["json"]
    return {"id": chat["id"], "user_id": chat["user_id"], "title": chat["title"], "created_at": chat["created_at"],
            "messages": [(m.get("role"), m.get("content")) for m in chat["chat"].get("messages") or []]}


def test_backup_wipe_restore_brings_users_and_chats_back(host, entry, tmp_path):
    base = entry  # Open WebUI through the entry point (its port is not published)
    _healthy(host, base)
    env = env_file(host, f"{ROOT}/openwebui/env")
    admin_email, admin_password = env["WEBUI_ADMIN_EMAIL"], secret(host, "openwebui_admin_password")
    admin = _sign_in(host, base, admin_email, admin_password)
    assert admin, "the admin cannot sign in"

    # A user and a chat of theirs, and an upload, before the backup.
    email, password = f"backup-{time.time_ns()}@example.org", "Backup-Test-2025!"
    added = http(host, "POST", f"{base}/api/v1/auths/add", admin,
                 {"name": "Backup Tester", "email": email, "password": password, "role": "user"})
    assert added["status"] == 200, added
    user_id = added["json"]["id"]
    token = _sign_in(host, base, email, password)
    assert token
    chat = http(host, "POST", f"{base}/api/v1/chats/new", token,
                {"chat": {"title": "Kept by the backup", "models": [],
                          "messages": [{"id": "m1", "role": "user", "content": "remember this"}]}})
    assert chat["status"] == 200, chat
    chat_id = chat["json"]["id"]
    user_before, chat_before = _user_row(host, base, token), _chat_row(host, base, token, chat_id)
    assert user_before == {"id": user_id, "email": email, "name": "Backup Tester", "role": "user"}, user_before
    assert chat_before["title"] == "Kept by the backup" and chat_before["messages"] == [("user", "remember this")]
    host.check_output("mkdir -p %s && echo kept > %s", f"{DATA}/uploads", f"{DATA}/{MARKER}")

    # The backup, while Open WebUI runs.
    out = tmp_path / "backups"
    run, log = _cli("backup", "-o", out)
    assert run.returncode == 0, log
    [host_dir] = out.iterdir()
    [folder] = host_dir.iterdir()
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["host"] == host_dir.name and manifest["stamp"] == folder.name
    assert set(manifest["parts"]) == {"openwebui", "secrets", "caddy"}, manifest
    assert "webui.db" in manifest["parts"]["openwebui"]["sqlite"]
    assert manifest["versions"][NAME] == inspect(host, NAME)["Config"]["Labels"]["solv.image"]
    for part in manifest["parts"].values():
        data = (folder / part["file"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == part["sha256"] and len(data) == part["bytes"], part["file"]
        assert (folder / part["file"]).stat().st_mode & 0o777 == 0o600
    assert admin_password not in run.stdout + run.stderr
    assert not host.file(f"{ROOT}/backups/{folder.name}").exists, "staging folder left on the host"

    # Wiped: Open WebUI starts empty (only the admin from its environment).
    host.check_output("systemctl stop %s", NAME)
    host.check_output(f"sh -c 'rm -rf {DATA}/*'")
    host.check_output("systemctl start %s", NAME)
    _healthy(host, base)
    assert _sign_in(host, base, email, password) is None, "the user survived the wipe: the test proves nothing"
    assert not host.file(f"{DATA}/{MARKER}").exists

    # Restored: the same rows, the upload, a healthy unit.
    ca = host.file(CA).content_string
    run, log = _cli("restore", "--from", folder, "--with-secrets")
    assert run.returncode == 0, log
    assert f"{NAME} healthy after" in run.stdout, log
    try:
        _healthy(host, base)
        assert host.service(NAME).is_running
        admin = _sign_in(host, base, admin_email, admin_password)
        token = _sign_in(host, base, email, password)
        assert admin and token, "restored users cannot sign in"
        assert _user_row(host, base, token) == user_before
        assert _chat_row(host, base, token, chat_id) == chat_before
        assert host.file(f"{DATA}/{MARKER}").content_string == "kept\n"
        assert host.file(DATA).mode == 0o700
        # With the secrets, the entry point's CA came back too, Caddy's data owned by the user it runs as, and
        # Caddy passed its gate (HTTPS verified against that CA).
        assert "solv-caddy healthy after" in run.stdout, log
        assert host.file(CA).content_string == ca
        caddy_uid = int(inspect(host, "solv-caddy")["Config"]["User"].split(":")[0])
        assert host.file(f"{ROOT}/data/caddy").uid == caddy_uid
    finally:
        host.run(f"sh -c 'rm -rf {DATA}.before-restore-* {ROOT}/secrets.before-restore-* {ROOT}/data/caddy.before-restore-*'")
