"""Staged weights (vllm_model_store): prepare.yml filled the store with `models fetch` from a local fake Hub; each
inference host holds exactly the store's copy of its models and its instances read them offline from /models."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from solv_provision import models

testinfra_hosts = ["ansible://molecule-stack-inf1", "ansible://molecule-stack-inf2"]

STORE = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "models"
QWEN = models.ModelRef("Qwen/Qwen2.5-0.5B-Instruct")
HOST_DIR = f"/opt/solv/{models.HOST_DIR}"


def test_the_host_holds_the_store_s_copy_of_its_models(host):
    store_manifest = models.read_manifest(STORE / QWEN.relpath)
    assert store_manifest and store_manifest["files"], "models fetch filled the store"
    text = host.file(f"{HOST_DIR}/{QWEN.relpath}/{models.MANIFEST}").content_string
    assert json.loads(text) == store_manifest
    for rel, f in store_manifest["files"].items():
        staged = host.file(f"{HOST_DIR}/{QWEN.relpath}/{rel}")
        assert staged.size == f["size"] and staged.sha256sum == f["sha256"], rel


def test_instances_read_the_staged_weights_offline(host):
    inspect = json.loads(host.check_output("docker inspect solv-vllm-shared"))[0]
    args = inspect["Args"]
    assert args[args.index("--model") + 1] == f"{models.CONTAINER_DIR}/{QWEN.relpath}"
    mount = next(m for m in inspect["Mounts"] if m["Destination"] == models.CONTAINER_DIR)
    assert mount["Source"] == HOST_DIR and mount["RW"] is False
    assert "HF_HUB_OFFLINE='1'" in host.file("/opt/solv/vllm/shared/env").content_string
    log = host.check_output("docker logs solv-vllm-shared 2>&1")
    assert f"loading weights: 2 tensors from 1 safetensors file(s) in /models/{QWEN.relpath}" in log


def test_status_lists_the_staged_models():
    """`solv-provision status` shows per host which models are staged (the JSON document)."""
    inventory = Path(os.environ["MOLECULE_INVENTORY_FILE"]).parent
    out = subprocess.run([str(Path(sys.executable).with_name("solv-provision")), "status", "-i", str(inventory),
                          "--limit", "molecule-stack-inf1", "--json"], capture_output=True, text=True, timeout=300,
                         check=False)
    doc = json.loads(out.stdout)
    staged = {(m["model"], m["revision"]): m for m in doc["hosts"][0]["staged_models"]}
    assert staged[(QWEN.repo, QWEN.revision)]["complete"] and staged[(QWEN.repo, QWEN.revision)]["expected"]
    assert not [p for p in doc["problems"] if p["kind"] == "model_not_staged"]
