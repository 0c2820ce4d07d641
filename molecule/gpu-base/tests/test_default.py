"""Verifier of molecule/gpu-base: a real dockerd inside a GPU-less Debian 12 lab host."""

import json

import pytest

DAEMON_JSON = "/etc/docker/daemon.json"


@pytest.fixture(scope="module")
def daemon(host):
    f = host.file(DAEMON_JSON)
    assert f.exists and f.user == "root" and f.mode == 0o644
    return json.loads(f.content_string)


def test_docker_runs_and_starts_at_boot(host):
    docker = host.service("docker")
    assert docker.is_running
    assert docker.is_enabled
    assert host.package("docker.io").is_installed  # container_engine_source: distro


def test_foreign_keys_survive_the_merge(daemon):
    assert daemon["debug"] is True
    assert daemon["runtimes"] == {"foo": {"path": "/usr/bin/runc", "runtimeArgs": []}}
    # recursive merge: the admin's log option stays beside the role's
    assert daemon["log-opts"]["compress"] == "true"


def test_role_keys_win_and_user_options_are_merged(daemon):
    assert daemon["live-restore"] is True
    assert daemon["log-driver"] == "json-file"
    assert daemon["log-opts"]["max-size"] == "100m"
    assert daemon["log-opts"]["max-file"] == "5"
    assert daemon["default-address-pools"] == [{"base": "10.222.0.0/16", "size": 24}]


def test_running_dockerd_uses_the_merged_config(host):
    out = host.check_output("docker info --format '{{json .}}'")
    info = json.loads(out)
    assert info["LiveRestoreEnabled"] is True
    assert info["LoggingDriver"] == "json-file"
    assert info["Debug"] is True
    assert "foo" in info["Runtimes"]


def test_driver_and_toolkit_changed_nothing(host):
    facts = json.loads(host.file("/root/gpu-base-facts.json").content_string)
    assert facts == {
        "solv_gpu_runtime": "none",
        "nvidia_driver_gpu_present": False,
        "nvidia_driver_gpu_count": 0,
        "nvidia_driver_nvswitch_present": False,
        "nvidia_driver_reboot_pending": False,
        "nvidia_driver_ready": False,
    }
    assert not host.file("/etc/modprobe.d/blacklist-nouveau.conf").exists
    assert not host.file("/etc/apt/apt.conf.d/51solv-nvidia-driver").exists
    assert not host.file("/etc/apt/preferences.d/solv-cuda-repository").exists
    assert host.run("ls /etc/apt/sources.list.d/ | grep -Ei 'cuda|nvidia'").rc != 0
    assert host.run("dpkg -l | grep -Ei 'nvidia|cuda'").rc != 0
    assert host.check_output("apt-mark showhold") == ""
