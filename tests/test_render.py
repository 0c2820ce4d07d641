"""`solv-provision render`: the roles' own templates, run offline, for the example cluster."""

from __future__ import annotations

import yaml

from conftest import REPO

EXAMPLE = REPO / "inventories" / "example"


def _files(output: str) -> dict[str, str]:
    files, name = {}, None
    for line in output.splitlines():
        if line.startswith("# --- "):
            name = line[6:]
            files[name] = ""
        elif name:
            files[name] += line + "\n"
    return files


def test_render_litellm_config_for_the_example(cli):
    result = cli("render", "litellm", "-i", EXAMPLE)
    assert result.exit_code == 0, result.output
    files = _files(result.output)
    config_name = next(n for n in files if n.endswith("/litellm/config.yaml"))
    assert config_name.startswith("gw-1/opt/solv/")
    config = yaml.safe_load(files[config_name])
    entries = [(m["model_name"], m["litellm_params"].get("api_base")) for m in config["model_list"]]
    # One entry per (host, instance) with its host's address and port; the replica under one name.
    assert ("llama-8b", "http://10.20.0.11:8002/v1") in entries
    assert ("llama-8b", "http://10.20.0.12:8002/v1") in entries
    assert ("qwen-coder-32b", "http://10.20.0.11:8001/v1") in entries
    assert ("qwen-7b", "http://10.20.0.12:8001/v1") in entries
    assert ("bge-m3", "http://10.20.0.11:8003/v1") in entries
    assert len([e for e in entries if e[0] == "llama-8b"]) == 2
    external = [m for m in config["model_list"] if m["model_name"] == "gpt-4o"]
    assert external and external[0]["litellm_params"]["api_key"] == "os.environ/N1N_API_KEY"
    assert {"qwen-coder-32b": ["gpt-4o"]} in config["router_settings"]["fallbacks"]


def test_render_never_shows_a_secret(cli, tmp_path):
    example_pw = EXAMPLE / "vault-password.txt"
    result = cli("render", "all", "-i", EXAMPLE, "--vault-password-file", example_pw, "-o", tmp_path / "out")
    assert result.exit_code == 0, result.output
    texts = "".join(p.read_text() for p in (tmp_path / "out").rglob("*") if p.is_file())
    assert "n1n-demo-key-replace-me" not in texts  # the vaulted provider key stays out
    assert "<secret:" in texts


def test_render_vllm_units_per_instance(cli):
    result = cli("render", "vllm", "-i", EXAMPLE, "--host", "gpu-a")
    assert result.exit_code == 0, result.output
    files = _files(result.output)
    units = sorted(n for n in files if n.endswith(".service"))
    assert units == ["gpu-a/etc/systemd/system/solv-vllm-bge-m3.service",
                     "gpu-a/etc/systemd/system/solv-vllm-llama-8b.service",
                     "gpu-a/etc/systemd/system/solv-vllm-qwen-coder-32b.service"]
    coder = files["gpu-a/etc/systemd/system/solv-vllm-qwen-coder-32b.service"]
    assert "--tensor-parallel-size 2" in coder or "--tensor-parallel-size=2" in coder
    assert "10.20.0.11:8001:" in coder  # bound to the host's internal address, never 0.0.0.0
    assert "--device nvidia.com/gpu=0" in coder and "--device nvidia.com/gpu=1" in coder
    assert "nvidia.com/gpu=2" not in coder  # GPU 2 belongs to llama-8b
    assert "VLLM_API_KEY" not in coder  # the key is in the env file, never on the command line


def test_render_host_that_does_not_run_the_service_is_a_usage_error(cli):
    result = cli("render", "litellm", "-i", EXAMPLE, "--host", "gpu-a")
    assert result.exit_code == 2
    assert "gpu-a runs none of litellm" in result.output
