"""`solv-provision render`: the roles' own templates, run offline, for the example cluster."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import REPO

EXAMPLE = REPO / "inventories" / "example"
LITELLM_CONFIG = "gw-1/opt/solv/litellm/config.yaml"


def _render(*args):
    """`solv-provision render ARGS` in-process (module-scoped fixtures cannot use the `cli` fixture)."""
    from click.testing import CliRunner

    from solv_provision.cli import main

    return CliRunner().invoke(main, ["render", *map(str, args)], catch_exceptions=False)


def _files(output: str) -> dict[str, str]:
    files, name = {}, None
    for line in output.splitlines():
        if line.startswith("# --- "):
            name = line[6:]
            files[name] = ""
        elif name:
            files[name] += line + "\n"
    return files


# Each render runs Ansible (seconds): one per fixture, shared by the tests of this module.
@pytest.fixture(scope="module")
def litellm_files():
    result = _render("litellm", "-i", EXAMPLE)
    assert result.exit_code == 0, result.output
    return _files(result.output)


@pytest.fixture(scope="module")
def vllm_files():
    result = _render("vllm", "-i", EXAMPLE, "--host", "gpu-a")
    assert result.exit_code == 0, result.output
    return _files(result.output)


def test_render_litellm_config_for_the_example(litellm_files):
    config_name = next(n for n in litellm_files if n.endswith("/litellm/config.yaml"))
    assert config_name == LITELLM_CONFIG
    config = yaml.safe_load(litellm_files[config_name])
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


def test_render_litellm_gives_up_on_a_silent_backend_in_seconds(litellm_files):
    """A replica host that does not answer at all must fail the connection fast enough for LiteLLM's retry."""
    unit = litellm_files["gw-1/etc/systemd/system/solv-litellm.service"]
    assert "--sysctl=net.ipv4.tcp_syn_retries=2" in unit and "--sysctl=net.ipv4.tcp_retries2=5" in unit


def test_render_never_shows_a_secret(cli, tmp_path):
    example_pw = EXAMPLE / "vault-password.txt"
    result = cli("render", "all", "-i", EXAMPLE, "--vault-password-file", example_pw, "-o", tmp_path / "out")
    assert result.exit_code == 0, result.output
    texts = "".join(p.read_text() for p in (tmp_path / "out").rglob("*") if p.is_file())
    assert "n1n-demo-key-replace-me" not in texts  # the vaulted provider key stays out
    assert "<secret:" in texts


def test_render_vllm_units_per_instance(vllm_files):
    files = vllm_files
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


def test_render_gives_the_same_files_every_time(vllm_files):
    """The unit's spec hash is the host's (not the render folder's, which differs on each run): renders compare."""
    again = _render("vllm", "-i", EXAMPLE, "--host", "gpu-a")
    assert _files(again.output) == vllm_files
    assert "solv.spec=" in vllm_files["gpu-a/etc/systemd/system/solv-vllm-llama-8b.service"]


def test_render_host_that_does_not_run_the_service_is_a_usage_error(cli):
    result = cli("render", "litellm", "-i", EXAMPLE, "--host", "gpu-a")
    assert result.exit_code == 2
    assert "gpu-a runs none of litellm" in result.output


@pytest.mark.parametrize("host", [None, "gpu-a", "gw-1"])
def test_render_of_an_inventory_with_a_problem_says_the_problem_and_gives_no_file(cli, tmp_path, host):
    """render checks the inventory while its play runs (it contacts no host): a problem stops the play, its files
    are thrown away unread, and the exit and message are validate's, also before what a --host makes of it."""
    import shutil

    inv = tmp_path / "example"
    shutil.copytree(EXAMPLE, inv)
    with (inv / "host_vars" / "gpu-a.yml").open("a") as f:
        f.write("vllm_start_timeout: soon\n")
    result = cli("render", "vllm", "-i", inv, *(["--host", host] if host else []),
                 "--vault-password-file", EXAMPLE / "vault-password.txt")
    assert result.exit_code == 2, result.output
    assert "problem(s) in the inventory" in result.output and "vllm_start_timeout" in result.output
    assert "# --- " not in result.output and "runs none of" not in result.output


def test_render_file_prints_only_that_file_ready_to_pipe(litellm_files):
    """`render litellm --host H --file config.yaml | yaml.safe_load`: stdout is the file, nothing else."""
    run = subprocess.run(
        [sys.executable, "-m", "solv_provision.cli", "render", "litellm", "-i", str(EXAMPLE),
         "--host", "gw-1", "--file", "config.yaml"],
        capture_output=True, text=True, cwd=REPO, check=False)
    assert run.returncode == 0, run.stderr
    assert run.stdout.rstrip("\n") == litellm_files[LITELLM_CONFIG].rstrip("\n")
    assert run.stdout.endswith("\n") and "# --- " not in run.stdout
    assert yaml.safe_load(run.stdout)["model_list"]


def test_render_file_needs_no_host_when_one_host_runs_the_service(cli, litellm_files):
    result = cli("render", "litellm", "-i", EXAMPLE, "--file", "env")  # env files are NAME='value' lines, not YAML
    assert result.exit_code == 0, result.output
    assert result.stdout.rstrip("\n") == litellm_files["gw-1/opt/solv/litellm/env"].rstrip("\n")
    assert "LITELLM_MASTER_KEY='<secret:litellm_master_key>'" in result.stdout


def test_render_file_matches_a_base_name_or_a_path_suffix(vllm_files):
    from solv_provision.render import RenderError, select_file

    assert select_file(vllm_files, "qwen-coder-32b/env")[0] == "gpu-a/opt/solv/vllm/qwen-coder-32b/env"
    assert select_file(vllm_files, "solv-vllm-llama-8b.service")[0] == \
        "gpu-a/etc/systemd/system/solv-vllm-llama-8b.service"
    with pytest.raises(RenderError, match="env matches 3 files: bge-m3/env, llama-8b/env, qwen-coder-32b/env") as exc:
        select_file(vllm_files, "env")
    assert exc.value.usage
    with pytest.raises(RenderError, match=r"no rendered file is named m3/env; files: bge-m3/env, llama-8b/env, .*"
                                          r"solv-vllm-bge-m3\.service") as exc:
        select_file(vllm_files, "m3/env")  # whole path components only
    assert exc.value.usage


def test_firewall_table_lets_the_gateways_reach_the_instance_ports(cli, tmp_path):
    """solv_firewall: the nftables table the vllm role writes names every gateway address and instance port."""
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump({"all": {"vars": {"solv_firewall": True}, "children": {
        "inference": {"hosts": {"gpu-1": {"ansible_host": "192.0.2.11", "vllm_models": [
            {"name": "a", "model": "x/a", "gpus": [0], "port": 8001},
            {"name": "b", "model": "x/b", "gpus": [1], "port": 8002}]}}},
        "gateway": {"hosts": {"gw-1": {"ansible_host": "192.0.2.10"}, "gw-2": {"ansible_host": "192.0.2.20"}}}}}}))
    table = cli("render", "vllm", "-i", tmp_path, "--host", "gpu-1", "--file", "firewall.nft")
    assert table.exit_code == 0, table.output
    assert "elements = { 192.0.2.10, 192.0.2.20 }" in table.stdout
    assert "ct status dnat tcp dport { 8001, 8002 } drop" in table.stdout
    assert "tcp dport { 8001, 8002 } drop" in table.stdout.split("chain input", 1)[1]
    unit = cli("render", "vllm", "-i", tmp_path, "--host", "gpu-1", "--file", "solv-firewall-vllm.service")
    assert "ExecStart=/usr/sbin/nft -f /opt/solv/vllm/firewall.nft" in unit.stdout, unit.output


def test_an_embedding_model_is_served_routed_and_used_for_documents(tmp_path):
    """runner: pooling -> vLLM's pooling runner, gated on /v1/embeddings; LiteLLM routes it as an embedding model
    (and its gate embeds through the proxy); Open WebUI's RAG (engine auto) uses it through the gateway."""
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump({"all": {"children": {
        "inference": {"hosts": {"aio": {"ansible_host": "192.0.2.10", "vllm_gpu_mode": "none", "vllm_models": [
            {"name": "chat", "model": "x/chat", "port": 8001},
            {"name": "embed", "model": "BAAI/bge-m3", "served_model_name": "bge-m3", "runner": "pooling",
             "port": 8002}]}}},
        "gateway": {"hosts": {"aio": {}}}}}}))
    result = _render("all", "-i", tmp_path, "--host", "aio")
    assert result.exit_code == 0, result.output
    files = _files(result.output)
    units = {n.rsplit("/", 1)[1]: text for n, text in files.items() if "/solv-vllm-" in n and n.endswith(".service")}
    assert "--runner pooling" in units["solv-vllm-embed.service"]
    assert "--runner" not in units["solv-vllm-chat.service"]
    vllm_gate = json.loads(files["aio/opt/solv/gates/solv-vllm-embed.json"])
    assert vllm_gate["checks"][-1]["url"].endswith(":8002/v1/embeddings")
    assert vllm_gate["checks"][-1]["body"] == {"model": "bge-m3", "input": "ping"}

    config = yaml.safe_load(files["aio/opt/solv/litellm/config.yaml"])
    info = {m["model_name"]: m["model_info"] for m in config["model_list"]}
    assert info["bge-m3"] == {"id": "aio/embed", "mode": "embedding"}
    assert "mode" not in info["chat"]
    gate = json.loads(files["aio/opt/solv/gates/solv-litellm.json"])
    bodies = {c["url"].rsplit(":4000", 1)[1]: c.get("body") for c in gate["checks"]}
    assert bodies["/v1/chat/completions"]["model"] == "chat"
    assert bodies["/v1/embeddings"] == {"model": "bge-m3", "input": "ping"}

    env = dict(shlex.split(line)[0].split("=", 1) for line in files["aio/opt/solv/openwebui/env"].splitlines()
               if "=" in line and not line.startswith("#"))
    assert env["BYPASS_EMBEDDING_AND_RETRIEVAL"] == "False"
    assert env["RAG_EMBEDDING_ENGINE"] == "openai"
    assert env["RAG_EMBEDDING_MODEL"] == "bge-m3"
    assert env["RAG_OPENAI_API_BASE_URL"] == "http://solv-litellm:4000/v1"


def test_several_litellm_instances_share_redis_behind_the_entry_point(tmp_path):
    """litellm_instances 2: two units with their own files (instance 2 publishes the next port), Redis with its
    password only in its 0600 config file, both configs naming it, the entry point balancing both and serving
    them to Open WebUI on its internal listener. A second gateway host reaches Redis on the first's address."""
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump({"all": {"children": {
        "inference": {"hosts": {"gpu": {"ansible_host": "192.0.2.10", "vllm_gpu_mode": "none", "vllm_models": [
            {"name": "chat", "model": "x/chat", "port": 8001, "rpm": 120}]}}},
        "gateway": {"hosts": {"gw-1": {"ansible_host": "192.0.2.20", "litellm_instances": 2, "litellm_publish": True},
                              "gw-2": {"ansible_host": "192.0.2.21"}}}}}}))
    result = _render("all", "-i", tmp_path, "--host", "gw-1")
    assert result.exit_code == 0, result.output
    files = _files(result.output)
    units = sorted(n.rsplit("/", 1)[1] for n in files if n.endswith(".service") and "litellm" in n)
    assert units == ["solv-litellm-2.service", "solv-litellm.service"]
    assert "192.0.2.20:4001:4000" in files["gw-1/etc/systemd/system/solv-litellm-2.service"]
    assert "/opt/solv/litellm/2/config.yaml:/etc/litellm/config.yaml:ro" in \
        files["gw-1/etc/systemd/system/solv-litellm-2.service"]
    for config in ("gw-1/opt/solv/litellm/config.yaml", "gw-1/opt/solv/litellm/2/config.yaml"):
        router = yaml.safe_load(files[config])["router_settings"]
        assert (router["redis_host"], router["redis_port"], router["redis_password"]) == \
            ("solv-redis", 6379, "os.environ/REDIS_PASSWORD")
        assert router["routing_strategy"] == "usage-based-routing-v2"  # the rpm limit is enforced
    assert 'requirepass "<secret:litellm_redis_password>"' in files["gw-1/opt/solv/redis/redis.conf"]
    redis_unit = files["gw-1/etc/systemd/system/solv-redis.service"]
    assert "192.0.2.20:6379:6379" in redis_unit and "secret:litellm_redis_password" not in redis_unit
    assert json.loads(files["gw-1/opt/solv/gates/solv-redis.json"])["checks"][0]["url"].startswith("redis://")
    caddyfile = files["gw-1/opt/solv/caddy/Caddyfile"]
    assert "reverse_proxy solv-litellm:4000 solv-litellm-2:4000 {" in caddyfile
    assert "health_uri /health/liveliness" in caddyfile and "http://:4000 {" in caddyfile
    env = dict(shlex.split(line)[0].split("=", 1) for line in files["gw-1/opt/solv/openwebui/env"].splitlines()
               if "=" in line and not line.startswith("#"))
    assert env["OPENAI_API_BASE_URL"] == "http://solv-caddy:4000/v1"

    second = _files(_render("litellm", "-i", tmp_path, "--host", "gw-2").output)
    router = yaml.safe_load(second["gw-2/opt/solv/litellm/config.yaml"])["router_settings"]
    assert (router["redis_host"], router["redis_port"]) == ("192.0.2.20", 6379)
    assert not any("redis" in n for n in second)  # Redis runs on the first gateway host only


def test_a_staged_model_is_read_offline_from_its_directory_and_new_weights_restart_it(tmp_path):
    """vllm_model_store: the staged instance reads /models/<org>--<name>/<revision> (mounted read-only) with
    HF_HUB_OFFLINE=1 and carries the weights' digest (new weights, new spec: a restart); a path stays as given."""
    from solv_provision import models

    store = tmp_path / "store"
    root = store / "org--tiny" / "v2"
    root.mkdir(parents=True)
    (root / "config.json").write_text("{}")
    models.write_manifest(root, models.make_manifest(root, models.ModelRef("org/tiny", "v2")))
    inv = tmp_path / "inv"
    inv.mkdir()
    (inv / "hosts.yml").write_text(yaml.safe_dump({"all": {"children": {
        "inference": {"hosts": {"aio": {"ansible_host": "192.0.2.10", "vllm_gpu_mode": "none",
                                        "vllm_model_store": str(store), "vllm_models": [
            {"name": "tiny", "model": "org/tiny", "revision": "v2", "port": 8001},
            {"name": "local", "model": "/srv/models/mine", "port": 8002}]}}},
        "gateway": {"hosts": {"aio": {}}}}}}))

    def rendered():
        result = _render("vllm", "-i", inv, "--host", "aio")
        assert result.exit_code == 0, result.output
        return _files(result.output)

    files = rendered()
    tiny = files["aio/etc/systemd/system/solv-vllm-tiny.service"]
    assert "--model /models/org--tiny/v2" in tiny and "--revision" not in tiny
    assert "/opt/solv/data/vllm/models:/models:ro" in tiny
    digest = models.manifest_digest(models.read_manifest(root))
    assert f"solv.weights={digest}" in tiny
    local = files["aio/etc/systemd/system/solv-vllm-local.service"]
    assert "--model /srv/models/mine" in local and "solv.weights" not in local
    assert "HF_HUB_OFFLINE='1'" in files["aio/opt/solv/vllm/tiny/env"]
    (root / "config.json").write_text('{"changed": true}')
    models.write_manifest(root, models.make_manifest(root, models.ModelRef("org/tiny", "v2")))
    assert f"solv.weights={digest}" not in rendered()["aio/etc/systemd/system/solv-vllm-tiny.service"]


def _across_inventory(tmp_path, **entry):
    """gpu-1 (head) and gpu-2 (follower) run one model of 2 nodes x 2 GPUs; gpu-2 has an instance of its own."""
    model = {"name": "big", "model": "meta-llama/Llama-3.1-405B-Instruct", "nodes": "big_nodes", "gpus": [0, 1],
             "tensor_parallel_size": 2, "pipeline_parallel_size": 2, "port": 8001, **entry}
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump({"all": {"children": {
        "inference": {"hosts": {
            "gpu-1": {"ansible_host": "192.0.2.11", "vllm_models": [model]},
            "gpu-2": {"ansible_host": "192.0.2.12", "vllm_models": [
                {"name": "small", "model": "Qwen/Qwen2.5-7B-Instruct", "gpus": [2], "port": 8002}]}}},
        "big_nodes": {"hosts": {"gpu-1": None, "gpu-2": None}},
        "gateway": {"hosts": {"gw-1": {"ansible_host": "192.0.2.10"}}}}}}))
    return tmp_path


def test_a_model_across_two_hosts_renders_a_head_and_a_follower_with_matching_ranks(tmp_path):
    inv = _across_inventory(tmp_path)
    units = {}
    for host in ("gpu-1", "gpu-2"):
        result = _render("vllm", "-i", inv, "--host", host)
        assert result.exit_code == 0, result.output
        units.update(_files(result.output))
    flat = {name: " ".join(line.strip().rstrip("\\").strip() for line in text.splitlines())
            for name, text in units.items()}
    head = flat["gpu-1/etc/systemd/system/solv-vllm-big.service"]
    follower = flat["gpu-2/etc/systemd/system/solv-vllm-big.service"]
    group = "--nnodes 2 --node-rank {} --master-addr 192.0.2.11 --master-port 29501"
    assert group.format(0) in head and "--headless" not in head
    assert group.format(1) + " --headless" in follower
    for unit in (head, follower):
        assert "--network host" in unit and "--ipc=host" in unit and "--publish" not in unit
        assert "--tensor-parallel-size 2 --pipeline-parallel-size 2" in unit
        assert "--device nvidia.com/gpu=0 --device nvidia.com/gpu=1" in unit
        assert "meta-llama/Llama-3.1-405B-Instruct" in unit
    assert "--host 192.0.2.11 --port 8001" in head  # the API on the head's own address only
    assert "VLLM_HOST_IP='192.0.2.11'" in units["gpu-1/opt/solv/vllm/big/env"]
    assert "VLLM_HOST_IP='192.0.2.12'" in units["gpu-2/opt/solv/vllm/big/env"]
    assert "solv-vllm-small.service" in " ".join(units)  # the follower's own instance stays
    assert json.loads(units["gpu-2/opt/solv/gates/solv-vllm-big.json"])["checks"] == []  # health on the head only
    assert json.loads(units["gpu-1/opt/solv/gates/solv-vllm-big.json"])["checks"]
    litellm = _render("litellm", "-i", inv, "--host", "gw-1", "--file", "config.yaml")
    bases = [m["litellm_params"]["api_base"] for m in yaml.safe_load(litellm.output)["model_list"]
             if m["model_name"] == "big"]
    assert bases == ["http://192.0.2.11:8001/v1"]  # LiteLLM routes to the head


@pytest.mark.parametrize("entry, host_key, message", [
    ({"tensor_parallel_size": 2, "pipeline_parallel_size": 1}, ("gpu-1", "vllm_models[0] (big)"),
     "tensor_parallel_size 2 x pipeline_parallel_size 1 = 2, but 2 nodes x 2 GPU(s) = 4"),
    ({"nodes": "nobody"}, ("gpu-1", "vllm_models[0] (big)"), "this host (the head) must be in group 'nobody'"),
    ({"nodes": "inference"}, ("gpu-1", "vllm_models[0] (big)"), "must name an inventory group of your own"),
    ({"name": "small"}, ("gpu-2", "rank 1 of small on gpu-1"), "instance name 'small' is also this host's own"),
    ({"gpus": [1, 2]}, ("gpu-2", "rank 1 of big on gpu-1"), "GPU(s) [2] are this host's own instances' too"),
    ({"master_port": 8002}, ("gpu-2", "rank 1 of big on gpu-1"), "master_port 8002 is the port of an instance"),
    ({"master_port": 8001}, ("gpu-1", "vllm_models[0] (big).master_port"), "port 8001 is already used"),
])
def test_a_model_across_hosts_is_validated_before_any_host_is_touched(cli, tmp_path, entry, host_key, message):
    result = cli("validate", "-i", _across_inventory(tmp_path, **entry))
    assert result.exit_code == 2, result.output
    host, key = host_key
    assert any(f"host {host}" in line and key in line and message in line for line in result.output.splitlines()), \
        result.output


def test_render_writes_only_below_its_output_folder(tmp_path):
    """solv_render_files (render mode's writer: the controller itself, no module call) writes a container's
    directories and files with their modes, and refuses any path outside the output folder before writing."""
    out = tmp_path / "out"
    play = tmp_path / "play.yml"
    play.write_text(yaml.safe_dump([{"hosts": "localhost", "gather_facts": False, "tasks": [
        {"name": "inside", "solv_render_files": {"root": str(out), "dirs": [{"path": f"{out}/h/opt", "mode": "0750"}],
                                                 "files": [{"path": f"{out}/h/opt/env", "mode": "0600",
                                                            "content": "A='1'\n"}]}},
        {"name": "outside", "solv_render_files": {"root": str(out), "files": [
            {"path": f"{out}/h/opt/ok", "mode": "0644", "content": "x"},
            {"path": f"{out}/../escaped", "mode": "0644", "content": "x"}]}}]}]))
    env = {**os.environ, "ANSIBLE_ACTION_PLUGINS": str(REPO / "roles/solv_common/action_plugins"),
           "ANSIBLE_LOCALHOST_WARNING": "0"}
    run = subprocess.run([str(Path(sys.executable).with_name("ansible-playbook")), "-i", "localhost,", "-c", "local",
                          str(play)], capture_output=True,
                         text=True, env=env, cwd=tmp_path, check=False)
    assert run.returncode == 2, run.stdout + run.stderr
    assert (out / "h/opt/env").read_text() == "A='1'\n" and oct((out / "h/opt/env").stat().st_mode & 0o777) == "0o600"
    assert oct((out / "h/opt").stat().st_mode & 0o777) == "0o750"
    assert f"outside {out}: {out}/../escaped" in run.stdout
    assert not (out / "h/opt/ok").exists() and not (tmp_path / "escaped").exists()
