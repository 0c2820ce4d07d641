"""`solv-provision secrets rotate vllm_api_key` on the converged stack: a new key on the host that keeps it, the
vLLM instances and LiteLLM (its users) restarted with it, SearXNG, Open WebUI and Caddy untouched; the old key is
refused by vLLM, the gateway answers through the entry point."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import http, inspect, process_env, secret

USERS = ["solv-vllm-qwen-0.5b", "solv-vllm-llama-1b", "solv-vllm-bge-small", "solv-litellm"]
OTHERS = ["solv-searxng", "solv-openwebui", "solv-caddy"]


def _started(host, names):
    return {name: inspect(host, name)["State"]["StartedAt"] for name in names}


def test_rotate_restarts_exactly_the_services_that_use_the_secret(host, address, entry, models):
    old = secret(host, "vllm_api_key")
    before = _started(host, USERS + OTHERS)
    cli = Path(sys.executable).parent / "solv-provision"
    inventory = Path(os.environ["MOLECULE_INVENTORY_FILE"]).parent
    run = subprocess.run([str(cli), "secrets", "rotate", "vllm_api_key", "-i", str(inventory)],
                         capture_output=True, text=True, timeout=900, check=False)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    assert old not in run.stdout + run.stderr

    new = secret(host, "vllm_api_key")
    assert new != old and len(new) == len(old)
    after = _started(host, USERS + OTHERS)
    assert [n for n in USERS if after[n] == before[n]] == [], "a user of the key was not restarted"
    assert {n: after[n] for n in OTHERS} == {n: before[n] for n in OTHERS}
    for name in USERS:
        assert process_env(host, name)["VLLM_API_KEY"] == new, name

    m = next(iter(models.values()))
    vllm = f"http://{address}:{m['port']}"  # the instance's published port on the internal address
    assert http(host, "GET", f"{vllm}/v1/models", old)["status"] == 401
    assert http(host, "GET", f"{vllm}/v1/models", new)["status"] == 200
    answer = http(host, "POST", f"{entry}/v1/chat/completions", secret(host, "litellm_master_key"),
                  {"model": m["served_model_name"], "messages": [{"role": "user", "content": "rotated"}]})
    assert answer["status"] == 200, answer
