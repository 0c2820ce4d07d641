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

OTHERS = ["solv-searxng", "solv-openwebui", "solv-vllm-qwen-0.5b", "solv-vllm-llama-1b", "solv-vllm-bge-small"]


def _apply_litellm(extra_vars=None, state_dir=None, verbose=""):
    cli = Path(sys.executable).parent / "solv-provision"
    inventory = Path(os.environ["MOLECULE_INVENTORY_FILE"]).parent
    args = [str(cli), "apply", "-i", str(inventory), "--tags", "litellm"] + ([verbose] if verbose else [])
    if extra_vars:
        args += ["-e", json.dumps(extra_vars)]
    env = {**os.environ, **({"XDG_STATE_HOME": str(state_dir)} if state_dir else {})}
    run = subprocess.run(args, capture_output=True, text=True, timeout=900, check=False, env=env)
    assert run.returncode == 0, f"{' '.join(args)} failed:\n{run.stdout[-4000:]}\n{run.stderr[-4000:]}"
    return run.stdout + run.stderr


def _started(host, name):
    return inspect(host, name)["State"]["StartedAt"]


def test_apply_tags_litellm_touches_litellm_only(host, address, tmp_path):
    before = {name: _started(host, name) for name in OTHERS + ["solv-litellm"]}
    output = _apply_litellm({"litellm_extra_env": {"SOLV_TAGS_TEST": "1"}})
    try:
        assert env_file(host, f"{ROOT}/litellm/env").get("SOLV_TAGS_TEST") == "1"
        assert _started(host, "solv-litellm") != before["solv-litellm"], "LiteLLM was not restarted"
        assert {name: _started(host, name) for name in OTHERS} == {n: before[n] for n in OTHERS}
        assert "TASK Run | proxy instances ready, one at a time" in output, output[-3000:]
        assert "instances running" not in output and "container running and ready" not in output, output[-3000:]
        answer = http(host, "POST", f"https://{address}/v1/chat/completions", secret(host, "litellm_master_key"),
                      {"model": "qwen-0.5b", "messages": [{"role": "user", "content": "tags"}], "max_tokens": 8})
        assert answer["status"] == 200, answer
    finally:
        # Put the inventory's state back, at Ansible's highest verbosity: a restart with every secret of LiteLLM
        # in play, and not one of them in the output or the kept ansible-runner artifacts.
        restored = _apply_litellm(state_dir=tmp_path / "state", verbose="-vvvvv")
    assert "SOLV_TAGS_TEST" not in env_file(host, f"{ROOT}/litellm/env")
    secrets = {secret(host, n) for n in ("litellm_master_key", "litellm_salt_key", "vllm_api_key")}
    artifacts = [p for p in (tmp_path / "state").rglob("*") if p.is_file()]
    assert any(p.name == "stdout" for p in artifacts), artifacts  # the artifacts were kept
    text = restored + "".join(p.read_text(errors="replace") for p in artifacts)
    assert "ESTABLISH" in text  # Ansible's -vvv connection lines: it was that verbose
    assert [s[:4] for s in secrets if s in text] == []
