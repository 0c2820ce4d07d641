"""Staged model weights: `models fetch` against a local fake Hub (HF_ENDPOINT), and the vllm role's staging
action copying from the store to a host directory (ansible-playbook, local connection)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from conftest import REPO
from fake_hub import TOKEN, FakeHub, commit_of, tiny_model
from solv_provision import models

TINY = tiny_model()
BIGGER = tiny_model(hidden=16)


def _inventory(tmp_path: Path, store: Path, hf_token: str = "", **model) -> Path:
    entry = {"name": "tiny", "model": "org/tiny", "port": 8001, "gpus": [0], **model}
    host = {"vllm_models": [entry], "vllm_model_store": str(store)}
    if hf_token:
        host["vllm_hf_token"] = hf_token
    inv = tmp_path / "inv"
    (inv / "host_vars").mkdir(parents=True)
    (inv / "hosts.yml").write_text(yaml.safe_dump({"all": {"children": {
        "inference": {"hosts": {"gpu-1": {"ansible_host": "192.0.2.11"}}},
        "gateway": {"hosts": {"gw-1": {"ansible_host": "192.0.2.10"}}}}}}))
    (inv / "host_vars" / "gpu-1.yml").write_text(yaml.safe_dump(host))
    return inv


@pytest.fixture
def hub(monkeypatch):
    with FakeHub({"org/tiny": {"main": TINY, "v2": BIGGER}, "org/gated": {"main": TINY}},
                 gated=("org/gated",)) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
        monkeypatch.delenv("HF_TOKEN", raising=False)
        yield hub


def test_model_refs_name_the_same_place_in_the_store_and_on_the_host():
    assert models.ModelRef("Qwen/Qwen2.5-7B").relpath == "Qwen--Qwen2.5-7B/main"
    assert models.staged_ref({"model": "Qwen/Qwen2.5-7B", "revision": "v1"}, "/store").relpath == "Qwen--Qwen2.5-7B/v1"
    assert models.staged_ref({"model": "/models/local"}, "/store") is None  # a path is the user's
    assert models.staged_ref({"model": "Qwen/Qwen2.5-7B"}, "") is None  # no store: vLLM downloads
    assert models.model_problems("gpt2", None) == []
    assert models.model_problems("/models/x", "main") == [
        "revision 'main' applies to a Hugging Face repository, not to the path '/models/x'"]
    assert "must be a branch, tag or commit" in models.model_problems("org/x", "refs/pr/1")[0]


def test_fetch_downloads_every_staged_model_and_validate_then_passes(cli, hub, tmp_path):
    store = tmp_path / "store"
    inv = _inventory(tmp_path, store)
    refused = cli("validate", "-i", inv)
    assert refused.exit_code == 2 and "org/tiny@main is not in the model store" in refused.output
    result = cli("models", "fetch", "-i", inv)
    assert result.exit_code == 0, result.output
    assert "downloaded: 3 file(s)" in result.output
    root = store / "org--tiny" / "main"
    manifest = models.read_manifest(root)
    assert manifest["commit"] == commit_of("org/tiny", "main")
    assert {rel: f["size"] for rel, f in manifest["files"].items()} == {rel: len(b) for rel, b in TINY.items()}
    for rel, data in TINY.items():
        assert (root / rel).read_bytes() == data
        assert manifest["files"][rel]["sha256"] == models.sha256_of(root / rel)
    assert cli("validate", "-i", inv).exit_code == 0
    hub.requests.clear()
    again = cli("models", "fetch", "-i", inv)
    assert again.exit_code == 0 and "already in the store" in again.output
    assert hub.requests == []  # a complete copy is not downloaded again


def test_fetch_takes_the_revision_and_refresh_replaces_the_copy(cli, hub, tmp_path):
    store = tmp_path / "store"
    inv = _inventory(tmp_path, store, revision="v2")
    assert cli("models", "fetch", "-i", inv).exit_code == 0
    root = store / "org--tiny" / "v2"
    assert (root / "model.safetensors").read_bytes() == BIGGER["model.safetensors"]
    hub.repos["org/tiny"]["v2"] = TINY  # the branch moved
    assert cli("models", "fetch", "-i", inv, "--refresh").exit_code == 0
    assert (root / "model.safetensors").read_bytes() == TINY["model.safetensors"]
    assert models.read_manifest(root)["files"]["model.safetensors"]["size"] == len(TINY["model.safetensors"])


def test_a_gated_model_needs_the_inventory_s_token_and_a_failure_is_one_line(cli, hub, tmp_path):
    store = tmp_path / "store"
    refused = cli("models", "fetch", "-i", _inventory(tmp_path / "a", store, model="org/gated"))
    assert refused.exit_code == 1
    assert "failed:" in refused.output and "Traceback" not in refused.output
    assert models.read_manifest(store / "org--gated" / "main") is None  # no manifest: not complete
    result = cli("models", "fetch", "-i", _inventory(tmp_path / "b", store, hf_token=TOKEN, model="org/gated"))
    assert result.exit_code == 0, result.output
    assert hub.token == TOKEN


def test_fetch_into_another_store_names_the_variable_to_set(cli, hub, tmp_path):
    inv = _inventory(tmp_path, tmp_path / "store")
    result = cli("models", "fetch", "-i", inv, "-o", tmp_path / "elsewhere")
    assert result.exit_code == 0, result.output
    assert models.read_manifest(tmp_path / "elsewhere" / "org--tiny" / "main")
    assert f"set it to {tmp_path / 'elsewhere'}" in result.output


# --- staging to a host: the vllm role's action plugin, local connection ----------------------------------


def _store(tmp_path: Path, files: dict[str, bytes]) -> Path:
    store = tmp_path / "store"
    ref = models.ModelRef("org/tiny")
    root = store / ref.relpath
    root.mkdir(parents=True)
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    models.write_manifest(root, models.make_manifest(root, ref))
    return store


def _stage(tmp_path: Path, store: Path, check: bool = False) -> dict:
    playbook = tmp_path / "stage.yml"
    playbook.write_text(textwrap.dedent(f"""\
        - hosts: localhost
          gather_facts: false
          tasks:
            - vllm_model_stage:
                store: {store}
                models_dir: {tmp_path / 'host'}
                models: [org--tiny/main]
              register: staged
            - copy:
                content: "{{{{ staged | to_json }}}}"
                dest: {tmp_path / 'result.json'}
              check_mode: false
        """))
    env = {**os.environ, "ANSIBLE_ACTION_PLUGINS": str(REPO / "roles" / "vllm" / "action_plugins"),
           "ANSIBLE_LIBRARY": str(REPO / "roles" / "vllm" / "library"), "ANSIBLE_LOCALHOST_WARNING": "false",
           "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false"}
    run = subprocess.run([str(Path(sys.executable).with_name("ansible-playbook")), str(playbook),
                          "-c", "local", "-i", "localhost,", "-e", f"ansible_python_interpreter={sys.executable}",
                          *(["--check"] if check else [])],
                         env=env, capture_output=True, text=True, timeout=120, check=False)
    result = json.loads((tmp_path / "result.json").read_text()) if run.returncode == 0 else {}
    return {"rc": run.returncode, "out": run.stdout + run.stderr, **result}


@pytest.mark.skipif(os.geteuid() != 0, reason="the staged files are owned by root")
def test_staging_sends_only_what_the_host_lacks_and_an_interrupted_copy_resumes(tmp_path):
    files = {**TINY, "sub/extra.json": b"{}"}
    store = _store(tmp_path, files)
    host = tmp_path / "host" / "org--tiny" / "main"
    checked = _stage(tmp_path, store, check=True)
    assert (checked["rc"], checked["changed"], checked["sent"]) == (0, True, 4), checked["out"]
    assert not host.exists()  # check mode sends nothing
    first = _stage(tmp_path, store)
    assert (first["rc"], first["changed"], first["sent"]) == (0, True, 4), first["out"]
    assert {rel: (host / rel).read_bytes() for rel in files} == files
    assert models.read_manifest(host) == models.read_manifest(store / "org--tiny" / "main")
    assert _stage(tmp_path, store)["changed"] is False  # complete: nothing read but the manifest
    # An interrupted copy: no manifest yet, one file cut short, one not sent.
    (host / models.MANIFEST).unlink()
    (host / "model.safetensors").write_bytes(b"cut short")
    (host / "config.json").unlink()
    (host / "stale.bin").write_bytes(b"from an older revision")
    repaired = _stage(tmp_path, store)
    assert (repaired["changed"], repaired["sent"]) == (True, 2), repaired["out"]
    assert (host / "model.safetensors").read_bytes() == TINY["model.safetensors"]
    assert not (host / "stale.bin").exists()


def test_staging_checks_the_free_space_before_sending_anything(tmp_path):
    store = _store(tmp_path, TINY)
    root = store / "org--tiny" / "main"
    manifest = models.read_manifest(root)
    manifest["files"]["model.safetensors"]["size"] = 2**60  # more than any disk
    models.write_manifest(root, manifest)
    result = _stage(tmp_path, store)
    assert result["rc"] != 0
    assert f"staging the models needs {2**60 / 2**30:.1f} GiB under {tmp_path / 'host'}" in result["out"]
    assert "org/tiny@main" in result["out"] and "is free there" in result["out"]
    assert not (tmp_path / "host" / "org--tiny" / "main" / "config.json").exists()
