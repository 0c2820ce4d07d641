"""`solv-provision upgrade` on the converged stack (the CLI against this scenario's inventory): a changed vLLM
setting is rolled out after the staging pass, the gateway's data is backed up before the gateway hosts are
touched, nothing that did not change restarts, and the stack answers through LiteLLM afterwards. An `apply`
without the change puts the inventory's state back."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import ROOT, env_file, http, inspect, secret

VLLM = ["solv-vllm-qwen-0.5b", "solv-vllm-llama-1b"]
GATEWAY = ["solv-searxng", "solv-litellm", "solv-openwebui"]


def _cli(*args):
    cli = Path(sys.executable).parent / "solv-provision"
    inventory = Path(os.environ["MOLECULE_INVENTORY_FILE"]).parent
    run = subprocess.run([str(cli), args[0], "-i", str(inventory), *args[1:]], capture_output=True, text=True,
                         timeout=1200, check=False)
    return run, run.stdout + run.stderr


def _started(host, name):
    return inspect(host, name)["State"]["StartedAt"]


def test_upgrade_rolls_out_a_change_with_a_backup_first(host, address, tmp_path):
    before = {name: _started(host, name) for name in VLLM + GATEWAY}
    change = {"vllm_extra_env": {"SOLV_STANDIN_IDENTITY": host.backend.get_hostname(), "SOLV_UPGRADE_TEST": "2"}}
    run, output = _cli("upgrade", "--backup-dir", str(tmp_path), "-e", json.dumps(change))
    try:
        assert run.returncode == 0, output[-5000:]
        steps = [line for line in output.splitlines() if line.startswith("== ")]
        assert [s.split(":")[0] for s in steps] == ["== stage", "== inference", "== backup", "== gateway",
                                                    "== upgrade done"], steps
        for name in VLLM:
            assert env_file(host, f"{ROOT}/vllm/{name.removeprefix('solv-vllm-')}/env")["SOLV_UPGRADE_TEST"] == "2"
            assert _started(host, name) != before[name], f"{name} was not restarted"
        assert {n: _started(host, n) for n in GATEWAY} == {n: before[n] for n in GATEWAY}, "a gateway restarted"
        [manifest] = list(tmp_path.glob("*/*/manifest.json"))
        assert "openwebui" in json.loads(manifest.read_text())["parts"]
        answer = http(host, "POST", f"http://{address}:4000/v1/chat/completions", secret(host, "litellm_master_key"),
                      {"model": "qwen-0.5b", "messages": [{"role": "user", "content": "after"}], "max_tokens": 8})
        assert answer["status"] == 200, answer
    finally:
        restored, output = _cli("apply", "--tags", "vllm")
        assert restored.returncode == 0, output[-4000:]
    assert "SOLV_UPGRADE_TEST" not in env_file(host, f"{ROOT}/vllm/qwen-0.5b/env")
