"""LiteLLM on the all-in-one host (role `litellm`, the real proxy): config from the inventory, keys,
ports, chat completions through it to the vLLM stand-in, and recovery by systemd alone.

Runs after converge and the idempotence check (a second converge changed nothing, secrets included).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, container_url, env_file, http, inspect, process_env, secret, sse_text, standin_image

from solv_provision import routing

NAME = "solv-litellm"
VERSIONS = yaml.safe_load((Path(__file__).resolve().parents[3] / "lab/images/versions.yml").read_text())
IMAGE = f"solv-lab/litellm:{VERSIONS['litellm']}"
PROMPT = "Route me through the SOLV gateway"


@pytest.fixture(scope="module")
def base(entry):
    """The API as clients are given it: through the entry point (LiteLLM's own port is not published)."""
    return entry


@pytest.fixture(scope="module")
def config(host):
    return yaml.safe_load(host.file(f"{ROOT}/litellm/config.yaml").content_string)


def test_unit_active_and_enabled(host):
    service = host.service(NAME)
    assert service.is_running and service.is_enabled


def test_container_runs_the_pinned_image_with_its_config(host):
    info = inspect(host, NAME)
    assert info["Config"]["Image"] == IMAGE
    assert info["Image"] == host.check_output("docker image inspect --format '{{.Id}}' %s", IMAGE)
    assert info["HostConfig"]["RestartPolicy"]["Name"] in ("", "no")
    mounts = {m["Destination"]: m for m in info["Mounts"]}
    assert mounts["/etc/litellm/config.yaml"]["Source"] == f"{ROOT}/litellm/config.yaml"
    assert mounts["/etc/litellm/config.yaml"]["RW"] is False
    assert "solv" in info["NetworkSettings"]["Networks"]
    args = info["Args"]
    assert args[args.index("--config") + 1] == "/etc/litellm/config.yaml"


def test_port_not_published(host):
    assert inspect(host, NAME)["HostConfig"]["PortBindings"] in ({}, None)
    assert host.check_output("ss -Hltn 'sport = :4000'") == ""


def test_config_is_the_routing_of_the_inventory(host, config, inventory):
    want = routing.litellm_routing({host.backend.get_hostname(): inventory})
    assert config["model_list"] == want["model_list"]
    assert config["router_settings"] == want["router_settings"]
    assert config["general_settings"]["master_key"] == "os.environ/LITELLM_MASTER_KEY"
    # The lean production settings.
    assert config["general_settings"]["disable_spend_logs"] is True
    assert config["litellm_settings"]["callbacks"] == []
    assert config["litellm_settings"]["turn_off_message_logging"] is True


def test_config_names_every_instance_at_its_address(config, models, address):
    entries = {e["model_name"]: e["litellm_params"] for e in config["model_list"]}
    assert sorted(entries) == sorted(m["served_model_name"] for m in models.values())
    for m in models.values():
        params = entries[m["served_model_name"]]
        assert params["api_base"] == f"http://{address}:{m['port']}/v1"
        assert params["model"] == f"hosted_vllm/{m['served_model_name']}"
        assert params["api_key"] == "os.environ/VLLM_API_KEY"


def test_env_file_private_with_generated_keys(host):
    f = host.file(f"{ROOT}/litellm/env")
    assert f.mode == 0o600 and f.user == "root" and f.group == "root"
    for name in ("litellm_master_key", "litellm_salt_key"):
        s = host.file(f"{ROOT}/secrets/{name}")
        assert s.mode == 0o600 and s.user == "root"
    env = env_file(host, f"{ROOT}/litellm/env")
    assert env["LITELLM_MASTER_KEY"] == secret(host, "litellm_master_key")
    assert env["LITELLM_MASTER_KEY"].startswith("sk-") and len(env["LITELLM_MASTER_KEY"]) > 40
    assert env["LITELLM_SALT_KEY"] == secret(host, "litellm_salt_key")
    assert env["VLLM_API_KEY"] == secret(host, "vllm_api_key")
    assert env["LITELLM_LOG"] == "ERROR"
    # The running proxy uses exactly these (it was not restarted with other values).
    running = process_env(host, NAME)
    for key in ("LITELLM_MASTER_KEY", "LITELLM_SALT_KEY", "VLLM_API_KEY"):
        assert running[key] == env[key]


def test_no_key_in_process_list_unit_or_config(host):
    master = secret(host, "litellm_master_key")
    assert master not in host.check_output("ps -eo args")
    assert master not in host.file(f"/etc/systemd/system/{NAME}.service").content_string
    assert master not in host.file(f"{ROOT}/litellm/config.yaml").content_string


def test_liveliness_open_models_need_the_master_key(host, base, models):
    assert http(host, "GET", f"{container_url(host, NAME, 4000)}/health/liveliness")["status"] == 200
    # Without a database the master key is the only key: anything else, or none, is a 401 (the role's auth
    # hook; LiteLLM alone answers 400 "No connected db." and 500).
    for token in ("", "sk-wrong", "not-even-sk"):
        r = http(host, "GET", f"{base}/v1/models", token)
        assert r["status"] == 401 and "qwen" not in r["body"], r
    r = http(host, "GET", f"{base}/v1/models", secret(host, "litellm_master_key"))
    assert r["status"] == 200
    assert sorted(d["id"] for d in r["json"]["data"]) == sorted(m["served_model_name"] for m in models.values())


def test_chat_completion_reaches_each_instance(host, base, chat_models):
    key = secret(host, "litellm_master_key")
    me = host.backend.get_hostname()
    for m in chat_models.values():
        r = http(host, "POST", f"{base}/v1/chat/completions", key,
                 {"model": m["served_model_name"], "messages": [{"role": "user", "content": PROMPT}]})
        assert r["status"] == 200, r
        answer = r["json"]["choices"][0]["message"]["content"]
        assert answer == f"[{m['served_model_name']}@{me}:{m['port']} v{standin_image(m).split(':')[1]}] echo: {PROMPT}"


def test_streamed_chat_completion_reaches_each_instance(host, base, chat_models):
    key = secret(host, "litellm_master_key")
    me = host.backend.get_hostname()
    for m in chat_models.values():
        r = http(host, "POST", f"{base}/v1/chat/completions", key,
                 {"model": m["served_model_name"], "stream": True, "messages": [{"role": "user", "content": PROMPT}]})
        assert r["status"] == 200, r
        assert r["type"].startswith("text/event-stream")
        assert sse_text(r["body"]) == f"[{m['served_model_name']}@{me}:{m['port']} v{standin_image(m).split(':')[1]}] echo: {PROMPT}"


def test_embeddings_reach_the_embedding_model_unchanged(host, base, embedding_models, address):
    """Through the proxy, the same vectors the instance gives; its model group is an embedding model to LiteLLM."""
    assert embedding_models, "the scenario serves an embedding model (runner: pooling)"
    key = secret(host, "litellm_master_key")
    texts = ["where do the backups go", "GPU alerts"]
    for m in embedding_models.values():
        r = http(host, "POST", f"{base}/v1/embeddings", key, {"model": m["served_model_name"], "input": texts})
        assert r["status"] == 200, r
        direct = http(host, "POST", f"http://{address}:{m['port']}/v1/embeddings", secret(host, "vllm_api_key"),
                      {"model": m["served_model_name"], "input": texts})
        assert [d["embedding"] for d in r["json"]["data"]] == [d["embedding"] for d in direct["json"]["data"]]
        info = http(host, "GET", f"{base}/v1/model/info", key)
        modes = {e["model_name"]: e["model_info"].get("mode") for e in info["json"]["data"]}
        assert modes[m["served_model_name"]] == "embedding"
        # A chat request to an embedding model fails (vLLM's pooling runner has no chat route).
        chat = http(host, "POST", f"{base}/v1/chat/completions", key,
                    {"model": m["served_model_name"], "messages": [{"role": "user", "content": "hi"}]})
        assert chat["status"] >= 400, chat


def test_unknown_model_is_refused(host, base):
    r = http(host, "POST", f"{base}/v1/chat/completions", secret(host, "litellm_master_key"),
             {"model": "no-such-model", "messages": [{"role": "user", "content": PROMPT}]})
    assert 400 <= r["status"] < 500, r


@pytest.mark.parametrize("bound_s", [90])
def test_back_by_systemd_after_kill(host, base, models, bound_s):
    key = secret(host, "litellm_master_key")
    before = inspect(host, NAME)["State"]["StartedAt"]
    host.check_output("docker kill %s", NAME)
    deadline = time.monotonic() + bound_s
    while True:
        started = host.run("docker inspect --format '{{.State.StartedAt}}' %s", NAME)
        if started.rc == 0 and started.stdout.strip() != before:
            if http(host, "GET", f"{container_url(host, NAME, 4000)}/health/liveliness")["status"] == 200:
                break
        assert time.monotonic() < deadline, f"{NAME} not live {bound_s}s after docker kill"
        time.sleep(1)
    m = next(iter(models.values()))
    r = http(host, "POST", f"{base}/v1/chat/completions", key,
             {"model": m["served_model_name"], "messages": [{"role": "user", "content": PROMPT}]})
    assert r["status"] == 200, r
