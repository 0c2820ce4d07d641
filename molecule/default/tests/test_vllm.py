"""vLLM instances on the all-in-one host (role `vllm`, vLLM stand-in image): units, containers, ports,
files, the API key, and recovery by systemd alone.

Runs after converge and the idempotence check (a second converge changed nothing, secrets included).
"""

from __future__ import annotations

import shlex
import time
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, env_file, http, inspect, process_env, secret, standin_image

# The lab pins its image versions in one place; the scenario's inventory points at them.
VERSIONS = yaml.safe_load((Path(__file__).resolve().parents[3] / "lab/images/versions.yml").read_text())
IMAGE = f"solv-lab/vllm-standin:{VERSIONS['vllm_standin']}"


def unit(name):
    return f"solv-vllm-{name}"


def test_one_unit_per_instance_active_and_enabled(host, models):
    for name in models:
        service = host.service(unit(name))
        assert service.is_running, name
        assert service.is_enabled, name
    found = host.check_output("systemctl list-unit-files 'solv-vllm-*' --no-legend --plain | cut -d' ' -f1").split()
    assert sorted(found) == sorted(f"{unit(n)}.service" for n in models)


def test_containers_run_the_pinned_image(host, models):
    """Each instance runs the host's image or its own pin (llama-1b: a canary on the stand-in's next release)."""
    assert {standin_image(m) for m in models.values()} == {IMAGE, f"solv-lab/vllm-standin:{VERSIONS['vllm_standin_next']}"}
    for name, m in models.items():
        info = inspect(host, unit(name))
        assert info["State"]["Running"]
        assert info["Config"]["Image"] == standin_image(m)
        assert info["Config"]["Labels"]["solv.image"] == standin_image(m)
        # The image the tag points at now is the one running (no stale image after a reload).
        wanted = host.check_output("docker image inspect --format '{{.Id}}' %s", standin_image(m))
        assert info["Image"] == wanted
        # systemd restarts the container; Docker must not also do it.
        assert info["HostConfig"]["RestartPolicy"]["Name"] in ("", "no")
        assert info["HostConfig"]["IpcMode"] == "host"


def test_arguments_are_what_the_inventory_says(host, models):
    for name, m in models.items():
        args = inspect(host, unit(name))["Args"]
        pairs = dict(zip(args, args[1:]))
        assert pairs["--model"] == m["model"]
        assert pairs["--served-model-name"] == m["served_model_name"]
        assert pairs["--host"] == "0.0.0.0"
        assert pairs["--port"] == str(m["port"])
        assert pairs["--tensor-parallel-size"] == "1"
        assert pairs["--pipeline-parallel-size"] == "1"
        if "max_model_len" in m:
            assert pairs["--max-model-len"] == str(m["max_model_len"])
        if "gpu_memory_utilization" in m:
            assert float(pairs["--gpu-memory-utilization"]) == m["gpu_memory_utilization"]
        extra = m.get("extra_args") or []
        # extra_args arrive last, byte for byte (JSON, %, $ survive the unit's quoting).
        assert args[len(args) - len(extra):] == extra
        # No secret on the command line.
        assert "--api-key" not in args


def test_ports_published_on_the_internal_address_only(host, models, address):
    for name, m in models.items():
        bindings = inspect(host, unit(name))["HostConfig"]["PortBindings"]
        assert bindings == {f"{m['port']}/tcp": [{"HostIp": address, "HostPort": str(m["port"])}]}
        listening = host.check_output("ss -Hltn 'sport = :%s'", str(m["port"]))
        local = {line.split()[3] for line in listening.splitlines()}
        assert local == {f"{address}:{m['port']}"}, local


def test_env_file_private_and_holds_the_key(host, models):
    key = secret(host, "vllm_api_key")
    assert len(key) >= 32
    secrets_dir = host.file(f"{ROOT}/secrets")
    assert secrets_dir.mode == 0o700 and secrets_dir.user == "root"
    key_file = host.file(f"{ROOT}/secrets/vllm_api_key")
    assert key_file.mode == 0o600 and key_file.user == "root"
    for name in models:
        f = host.file(f"{ROOT}/vllm/{name}/env")
        assert f.mode == 0o600 and f.user == "root" and f.group == "root"
        env = env_file(host, f"{ROOT}/vllm/{name}/env")
        assert env["VLLM_API_KEY"] == key
        assert env["SOLV_STANDIN_IDENTITY"] == host.backend.get_hostname()
        assert "HF_HUB_OFFLINE" not in env  # vllm_hf_offline is false here
        running = process_env(host, unit(name))
        assert running["VLLM_API_KEY"] == key


def test_no_secret_in_process_list_or_unit(host, models):
    key = secret(host, "vllm_api_key")
    assert key not in host.check_output("ps -eo args")
    for name in models:
        assert key not in host.file(f"/etc/systemd/system/{unit(name)}.service").content_string


def test_unit_file_shape(host, models):
    for name in models:
        text = host.file(f"/etc/systemd/system/{unit(name)}.service").content_string
        assert f"ExecStartPre=-/usr/bin/docker rm -f {unit(name)}" in text
        assert "ExecStart=/usr/bin/docker run" in text and "--rm" in text and "--restart" not in text
        assert f"ExecStop=/usr/bin/docker stop --time 30 {unit(name)}" in text
        assert "Restart=always" in text
        assert "WantedBy=multi-user.target" in text
        assert "--log-opt max-size=50m" in text
        # A long start is allowed for: vllm_start_timeout.
        assert "TimeoutStartSec=120" in text


def test_caches_are_shared_volumes(host, models):
    for name in models:
        mounts = {m["Destination"]: m["Source"] for m in inspect(host, unit(name))["Mounts"]}
        assert mounts["/root/.cache/huggingface"] == f"{ROOT}/data/vllm/huggingface"
        assert mounts["/root/.cache/vllm"] == f"{ROOT}/data/vllm/cache"


def test_health_open_models_need_the_key(host, models, address):
    key = secret(host, "vllm_api_key")
    for m in models.values():
        base = f"http://{address}:{m['port']}"
        assert http(host, "GET", f"{base}/health")["status"] == 200
        assert http(host, "GET", f"{base}/v1/models")["status"] == 401
        assert http(host, "GET", f"{base}/v1/models", "wrong-key")["status"] == 401
        r = http(host, "GET", f"{base}/v1/models", key)
        assert r["status"] == 200
        assert [d["id"] for d in r["json"]["data"]] == [m["served_model_name"]]


@pytest.mark.parametrize("bound_s", [60])
def test_back_by_systemd_after_kill(host, models, address, bound_s):
    key = secret(host, "vllm_api_key")
    before = {name: inspect(host, unit(name))["State"]["StartedAt"] for name in models}
    for name in models:
        host.check_output("docker kill %s", unit(name))
    deadline = time.monotonic() + bound_s
    waiting = dict(models)
    while waiting:
        for name, m in list(waiting.items()):
            info = host.run("docker inspect --format '{{.State.StartedAt}}' %s", unit(name))
            if info.rc == 0 and info.stdout.strip() != before[name]:
                r = http(host, "GET", f"http://{address}:{m['port']}/v1/models", key)
                if r["status"] == 200 and [d["id"] for d in r["json"]["data"]] == [m["served_model_name"]]:
                    del waiting[name]
        assert time.monotonic() < deadline, f"{sorted(waiting)} not ready {bound_s}s after docker kill"
        time.sleep(1)


def test_units_carry_no_shell(host, models):
    # ExecStart is an argv, not a shell line: parse it as systemd does and compare with docker's view.
    for name in models:
        text = host.file(f"/etc/systemd/system/{unit(name)}.service").content_string
        start = text.split("ExecStart=", 1)[1].split("\nExecStop=", 1)[0].replace("\\\n", " ")
        words = [w.replace("%%", "%").replace("$$", "$") for w in shlex.split(start)]
        cmd = inspect(host, unit(name))["Config"]["Cmd"]
        assert words[-len(cmd):] == cmd
