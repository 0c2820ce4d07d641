"""Verify the lab-host scenario: systemd host, its own Docker, the lab image loaded from a tarball."""

import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[3]
VERSION = yaml.safe_load((ROOT / "lab/images/versions.yml").read_text())["vllm_standin"]
IMAGE = f"solv-lab/vllm-standin:{VERSION}"
LABEL = '{{ index .Config.Labels "org.solv-lab.recipe-hash" }}'


def test_systemd_booted(host):
    assert host.run("systemctl is-system-running").stdout.strip() in ("running", "degraded")


def test_docker_engine_runs(host):
    docker = host.service("docker")
    assert docker.is_running
    assert docker.is_enabled


def test_image_is_the_controllers(host):
    inner = host.check_output(f"docker image inspect --format '{LABEL}' {IMAGE}")
    outer = subprocess.run(["docker", "image", "inspect", "--format", LABEL, IMAGE],
                           capture_output=True, text=True, check=True).stdout.strip()
    assert inner == outer != ""


def test_loaded_image_serves(host):
    host.run("docker rm -f lab-probe")
    host.check_output(f"docker run -d --name lab-probe -p 127.0.0.1:18000:8000 {IMAGE} "
                      "--model Qwen/Qwen2.5-0.5B-Instruct --served-model-name qwen-0.5b")
    try:
        models = host.run("curl -sf --retry 30 --retry-all-errors --retry-delay 1 "
                          "http://127.0.0.1:18000/v1/models")
        assert models.rc == 0, models.stderr
        assert '"id": "qwen-0.5b"' in models.stdout
    finally:
        host.run("docker rm -f lab-probe")
