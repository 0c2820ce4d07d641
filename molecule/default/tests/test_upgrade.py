"""`solv-provision upgrade` and `check` on the converged stack (the CLI against this scenario's inventory).

- One upgrade with a changed vLLM setting and LiteLLM and Open WebUI on newer images (the lab's -next releases):
  staged first, vLLM rolled out, the gateway's data backed up before the gateway host is touched, nothing that
  did not change restarts, and the stack answers through LiteLLM afterwards. A user and a chat made through Open
  WebUI's API before are the same rows, byte for byte, after; the backup taken before holds them too and matches
  its checksum. The new images (the lab's archives: the offline bundle lacks them) reach the host through the
  registry serving the bundle, which gets none of their layers (it has them all). An `apply` without the vLLM
  change puts it back; last in this file, the gateway stays on the -next images (the scenario ends after the
  side effect, which touches vLLM and LiteLLM's config only).
- `check` after a hand edit of a config file on the host shows that file's diff and exits 3.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import yaml
from conftest import ROOT, env_file, http, inspect, secret

VLLM = ["solv-vllm-qwen-0.5b", "solv-vllm-llama-1b", "solv-vllm-bge-small"]
GATEWAY = ["solv-searxng", "solv-litellm", "solv-openwebui"]


def _cli(*args, state_dir=None):
    """solv-provision VERB -i INVENTORY ARGS...; state_dir: where its runs' artifacts are kept (XDG_STATE_HOME)."""
    cli = Path(sys.executable).parent / "solv-provision"
    inventory = Path(os.environ["MOLECULE_INVENTORY_FILE"]).parent
    env = {**os.environ, **({"XDG_STATE_HOME": str(state_dir)} if state_dir else {})}
    run = subprocess.run([str(cli), args[0], "-i", str(inventory), *args[1:]], capture_output=True, text=True,
                         timeout=1200, check=False, env=env)
    return run, run.stdout + run.stderr


def _images_pushed(state_dir):
    """{image: solv_registry_push's result} of the runs whose artifacts are under state_dir."""
    pushed = {}
    events = [json.loads(line) for path in state_dir.rglob("events.jsonl") for line in path.read_text().splitlines()]
    for event in events:
        data = event.get("event_data", {})
        if event.get("event") == "runner_on_ok" and data.get("task_action", "").endswith("solv_registry_push"):
            pushed[data["task"].rsplit("| ", 1)[1]] = data["res"]
    return pushed


def _started(host, name):
    return inspect(host, name)["State"]["StartedAt"]


def test_check_after_a_hand_edit_shows_the_diff_and_exits_3(host):
    config = f"{ROOT}/litellm/config.yaml"
    original = host.file(config).content_string
    host.check_output("sh -c %s", f"echo '# edited by hand' >> {config}")
    try:
        drift, output = _cli("check", "--tags", "litellm")
        assert drift.returncode == 3, output[-4000:]
        assert config in output and "-# edited by hand" in output, output[-4000:]
    finally:
        host.check_output("sed -i '$ d' %s", config)  # the appended line, by hand again: nothing restarts
    assert host.file(config).content_string == original
    clean, output = _cli("check", "--tags", "litellm")
    assert clean.returncode == 0, output[-4000:]


# --- the gateway to newer images, its data untouched --------------------------------------------------------
VERSIONS = yaml.safe_load((Path(__file__).resolve().parents[3] / "lab/images/versions.yml").read_text())
WEBUI_DB = f"{ROOT}/data/openwebui/webui.db"
# The rows of one user and one chat of Open WebUI's database, as stored (repr of each value). Read-only.
_ROWS = (
    "import json, sqlite3, sys\n"
    "db = sqlite3.connect(f'file:{sys.argv[1]}?mode=ro', uri=True)\n"
    "rows = {t: [[repr(v) for v in r] for r in db.execute(f'SELECT * FROM \"{t}\" WHERE id = ?', (k,))]\n"
    "        for t, k in (('user', sys.argv[2]), ('auth', sys.argv[2]), ('chat', sys.argv[3]))}\n"
    "print(json.dumps(rows))\n"
)


def _rows_in(db_path, user_id, chat_id):
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        return {t: [[repr(v) for v in r] for r in db.execute(f'SELECT * FROM "{t}" WHERE id = ?', (k,))]
                for t, k in (("user", user_id), ("auth", user_id), ("chat", chat_id))}
    finally:
        db.close()


def test_upgrade_rolls_out_new_gateway_images_and_a_vllm_change_after_a_backup_keeping_users_and_chats(
        host, address, entry, tmp_path):
    """One upgrade, both kinds of change (one run: CI time): a vLLM setting and the gateway's newer images."""
    base = entry  # Open WebUI through the entry point
    admin = http(host, "POST", f"{base}/api/v1/auths/signin",
                 payload={"email": env_file(host, f"{ROOT}/openwebui/env")["WEBUI_ADMIN_EMAIL"],
                          "password": secret(host, "openwebui_admin_password")})
    assert admin["status"] == 200, admin
    email, password = f"upgrade-{time.time_ns()}@example.org", "Upgrade-Test-2026!"
    added = http(host, "POST", f"{base}/api/v1/auths/add", admin["json"]["token"],
                 {"name": "Upgrade Tester", "email": email, "password": password, "role": "user"})
    assert added["status"] == 200, added
    token = http(host, "POST", f"{base}/api/v1/auths/signin", payload={"email": email, "password": password})
    chat = http(host, "POST", f"{base}/api/v1/chats/new", token["json"]["token"],
                {"chat": {"title": "Kept across the upgrade", "models": [],
                          "messages": [{"id": "m1", "role": "user", "content": "still here?"}]}})
    assert chat["status"] == 200, chat
    ids = (added["json"]["id"], chat["json"]["id"])
    before = json.loads(host.check_output("python3 -c %s %s %s %s", _ROWS, WEBUI_DB, *ids))
    assert all(before.values()), before
    started = {n: _started(host, n) for n in VLLM + GATEWAY}

    new = {"litellm_image_tag": f"{VERSIONS['litellm']}-next", "openwebui_image_tag": f"{VERSIONS['open_webui']}-next"}
    change = {"vllm_extra_env": {"SOLV_STANDIN_IDENTITY": host.backend.get_hostname(), "SOLV_UPGRADE_TEST": "2"}}
    run, output = _cli("upgrade", "--backup-dir", str(tmp_path), "-e", json.dumps({**new, **change}),
                       state_dir=tmp_path / "state")
    try:
        _upgraded(host, address, tmp_path, run, output, new, started, before, ids)
    finally:  # the inventory's vLLM settings back (the gateway stays on the -next images)
        restored, output = _cli("apply", "--tags", "vllm")
        assert restored.returncode == 0, output[-4000:]
    assert "SOLV_UPGRADE_TEST" not in env_file(host, f"{ROOT}/vllm/qwen-0.5b/env")


def _upgraded(host, address, tmp_path, run, output, new, started, before, ids):
    assert run.returncode == 0, output[-5000:]
    steps = [line for line in output.splitlines() if line.startswith("== ")]
    assert [s.split(":")[0] for s in steps] == ["== stage", "== inference", "== backup", "== gateway",
                                                "== upgrade done"], steps
    for name in VLLM:
        assert env_file(host, f"{ROOT}/vllm/{name.removeprefix('solv-vllm-')}/env")["SOLV_UPGRADE_TEST"] == "2"
    assert inspect(host, "solv-litellm")["Config"]["Image"] == f"solv-lab/litellm:{new['litellm_image_tag']}"
    # The new releases, which the offline bundle lacks, came as the lab's archives through the same registry. They
    # differ from the running ones in their config only: the registry got no layer (Open WebUI's archive is 3 GB).
    pushed = _images_pushed(tmp_path / "state")
    registry = host.ansible.get_variables()["solv_bundle_registry"]
    for image in (f"solv-lab/litellm:{new['litellm_image_tag']}", f"solv-lab/open-webui:{new['openwebui_image_tag']}"):
        assert pushed[image]["reference"].startswith(f"{registry}/"), (image, pushed.get(image))
        assert 0 < pushed[image]["uploaded"] < 1_000_000, (image, pushed[image])
        assert pushed[image]["reference"] in json.loads(
            host.check_output("docker image inspect -f '{{json .RepoDigests}}' %s", image)), image
    assert not host.file(f"{ROOT}/images").exists, "an image archive was copied to the host"
    assert inspect(host, "solv-openwebui")["Config"]["Image"] == f"solv-lab/open-webui:{new['openwebui_image_tag']}"
    # What changed restarted, nothing else (SearXNG's image and settings are the same).
    assert {n: _started(host, n) != started[n] for n in VLLM + GATEWAY} == \
        {**{n: True for n in VLLM}, "solv-searxng": False, "solv-litellm": True, "solv-openwebui": True}
    # The Open WebUI gate signed in as the admin (the model list answers only to a signed-in user).
    gate = json.loads(host.file(f"{ROOT}/gates/solv-openwebui.json").content_string)
    assert [c["url"].rsplit("/", 1)[1] for c in gate["checks"]] == ["health", "models"] and gate["checks"][1]["signin"]

    assert json.loads(host.check_output("python3 -c %s %s %s %s", _ROWS, WEBUI_DB, *ids)) == before
    [folder] = list(tmp_path.glob("*/*/manifest.json"))
    part = json.loads(folder.read_text())["parts"]["openwebui"]
    tarball = folder.parent / part["file"]
    assert hashlib.sha256(tarball.read_bytes()).hexdigest() == part["sha256"]
    with tarfile.open(tarball) as tar:
        member = next(m for m in tar.getmembers() if m.name.rsplit("/", 1)[-1] == "webui.db")
        (tmp_path / "webui.db").write_bytes(tar.extractfile(member).read())
    assert _rows_in(tmp_path / "webui.db", *ids) == before

    answer = http(host, "POST", f"https://{address}/v1/chat/completions", secret(host, "litellm_master_key"),
                  {"model": "qwen-0.5b", "messages": [{"role": "user", "content": "after"}], "max_tokens": 8})
    assert answer["status"] == 200, answer
