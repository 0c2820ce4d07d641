"""`solv-provision apply --tags litellm` (README: per-service tags) on the converged stack: the CLI, not
Molecule, runs it against this scenario's inventory. A LiteLLM setting given only to that run reaches
LiteLLM alone: it is reconfigured and restarted, every other container keeps running untouched, and the
gateway answers again. A second run without the setting puts the inventory's state back.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import ROOT, env_file, http, inspect, secret

OTHERS = ["solv-searxng", "solv-openwebui", "solv-vllm-qwen-0.5b", "solv-vllm-llama-1b"]


def _apply_litellm(extra_vars=None):
    cli = Path(sys.executable).parent / "solv-provision"
    inventory = Path(os.environ["MOLECULE_INVENTORY_FILE"]).parent
    args = [str(cli), "apply", "-i", str(inventory), "--tags", "litellm"]
    if extra_vars:
        args += ["-e", json.dumps(extra_vars)]
    run = subprocess.run(args, capture_output=True, text=True, timeout=900, check=False)
    assert run.returncode == 0, f"{' '.join(args)} failed:\n{run.stdout[-4000:]}\n{run.stderr[-4000:]}"
    return run.stdout + run.stderr


def _started(host, name):
    return inspect(host, name)["State"]["StartedAt"]


def test_apply_tags_litellm_touches_litellm_only(host, address):
    before = {name: _started(host, name) for name in OTHERS + ["solv-litellm"]}
    output = _apply_litellm({"litellm_extra_env": {"SOLV_TAGS_TEST": "1"}})
    try:
        assert env_file(host, f"{ROOT}/litellm/env").get("SOLV_TAGS_TEST") == "1"
        assert _started(host, "solv-litellm") != before["solv-litellm"], "LiteLLM was not restarted"
        assert {name: _started(host, name) for name in OTHERS} == {n: before[n] for n in OTHERS}
        assert "TASK Run | proxy running and ready" in output, output[-3000:]
        assert "instances running" not in output and "container running and ready" not in output, output[-3000:]
        answer = http(host, "POST", f"http://{address}:4000/v1/chat/completions", secret(host, "litellm_master_key"),
                      {"model": "qwen-0.5b", "messages": [{"role": "user", "content": "tags"}], "max_tokens": 8})
        assert answer["status"] == 200, answer
    finally:
        _apply_litellm()
    assert "SOLV_TAGS_TEST" not in env_file(host, f"{ROOT}/litellm/env")
