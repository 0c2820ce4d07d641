"""The GPU base on the stack's GPU-less Debian 12 host: a real dockerd inside it (Debian's docker.io, systemd as
its init) whose daemon.json keeps the keys others wrote (prepare.yml) beside the role's, the NVIDIA roles skipping
cleanly, and solv_common's image path without a registry (an archive sent without the layers the host has)."""

import json
import subprocess
from pathlib import Path

import pytest
import yaml

DAEMON_JSON = "/etc/docker/daemon.json"
ROOT = Path(__file__).resolve().parents[3]
VERSIONS = yaml.safe_load((ROOT / "lab/images/versions.yml").read_text())
IMAGE = f"solv-lab/vllm-standin:{VERSIONS['vllm_standin']}"
NEXT = f"solv-lab/vllm-standin:{VERSIONS['vllm_standin_next']}"
BROKEN = f"solv-lab/vllm-standin:{VERSIONS['vllm_standin']}-broken"
LABEL = '{{ index .Config.Labels "org.solv-lab.recipe-hash" }}'


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


def test_the_engine_is_installed_without_build_tools(host):
    """apt installs the engine without its Recommends, and with those dockerd uses at run time: AppArmor's parser
    (the docker-default profile) and xz; not git, nor needrestart, which restarts services after a library upgrade."""
    assert [p for p in ("apparmor", "xz-utils", "ca-certificates") if not host.package(p).is_installed] == []
    assert [p for p in ("git", "needrestart", "perl") if host.package(p).is_installed] == []


def test_the_engine_state_is_left_for_the_next_fact_gathering(host, daemon):
    """The local fact a re-run reads the engine from (no probe call of its own): root's, executable, and it reports
    this host's engine as the preflight's probe would."""
    fact = host.file("/etc/ansible/facts.d/solv_engine.fact")
    assert fact.user == "root" and fact.mode == 0o755
    state = json.loads(host.check_output(fact.path))
    assert "docker.io" in state["installed"] and json.loads(state["daemon_json"]["content"]) == daemon
    assert state["service"] == {"load_state": "loaded", "unit_file_state": "enabled", "active_state": "active"}


def test_systemd_booted(host):
    assert host.run("systemctl is-system-running").stdout.strip() in ("running", "degraded")


def test_the_lab_images_in_the_host_are_the_controllers(host):
    for image in (IMAGE, NEXT):
        inner = host.check_output(f"docker image inspect --format '{LABEL}' {image}")
        outer = subprocess.run(["docker", "image", "inspect", "--format", LABEL, image],
                               capture_output=True, text=True, check=True).stdout.strip()
        assert inner == outer != ""


def test_an_archive_reaches_the_host_without_the_layers_it_has(host, tmp_path):
    """solv_common's path without a registry (here its registry is set aside): an image the host lacks comes as its
    archive from the controller, sent without the layers the host has already (the stand-in's 215 MB base), loaded,
    and the copy removed; the image is the controller's."""
    import os

    import ansible_runner

    archive = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / \
        f"solv-provision/images/vllm-standin-{VERSIONS['vllm_standin']}-broken.tar"
    assert host.run("docker image inspect %s", BROKEN).rc != 0, "the host has the image: the test proves nothing"
    play = tmp_path / "archive.yml"
    play.write_text(yaml.safe_dump([{"hosts": "inference", "become": True, "gather_facts": False, "tasks": [
        {"ansible.builtin.include_role": {"name": "solv_common", "tasks_from": "image.yml"},
         "vars": {"solv_image": BROKEN, "solv_image_archive": str(archive), "solv_image_via_registry": False}}]}]))
    (tmp_path / "runner").mkdir()
    try:
        run = ansible_runner.run(private_data_dir=str(tmp_path / "runner"), playbook=str(play), quiet=True,
                                 inventory=str(Path(os.environ["MOLECULE_INVENTORY_FILE"]).parent),
                                 envvars={"ANSIBLE_ROLES_PATH": str(ROOT / "roles")})
        assert run.rc == 0, run.stdout.read()[-3000:]
        assert host.check_output("ls -A /opt/solv/images") == ""
    finally:  # this site has no staging directory otherwise (tests/test_offline.py)
        host.run("rmdir /opt/solv/images")
    [copied] = [e["event_data"]["res"] for e in run.events if e["event"] == "runner_on_ok"
                and e["event_data"].get("task_action", "").endswith("solv_image_copy")]
    assert 0 < copied["layers_left_out"] <= copied["layers"] and copied["bytes"] < archive.stat().st_size / 10, copied
    inner = host.check_output(f"docker image inspect --format '{LABEL}' {BROKEN}")
    outer = subprocess.run(["docker", "image", "inspect", "--format", LABEL, BROKEN],
                           capture_output=True, text=True, check=True).stdout.strip()
    assert inner == outer != ""


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


def test_vllm_alone_reads_the_gpu_runtime_a_previous_run_stored(host, tmp_path):
    """`apply --tags vllm` skips the GPU base roles: the vllm role's preflight (vllm_gpu_mode auto, instances that
    list GPUs) takes the runtime a previous run stored (the local fact the toolkit role writes on a GPU host,
    written here by hand: this host has no GPU, and the GPU roles leave such a host untouched) instead of
    refusing as 'not known'; without the fact it refuses."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    assert not host.file("/etc/ansible/facts.d/solv.fact").exists  # no GPU: the GPU roles wrote nothing
    repo = Path(__file__).resolve().parents[3]
    play = tmp_path / "vllm-preflight.yml"
    play.write_text("- hosts: inference\n  become: true\n  gather_facts: false\n  tasks:\n"
                    "    - ansible.builtin.include_role: {name: vllm, tasks_from: preflight.yml, public: true}\n"
                    "    - ansible.builtin.debug: {msg: 'GPU-MODE {{ __vllm_gpu_mode }}'}\n")
    extra = ('{"vllm_gpu_mode": "auto", "vllm_bind_address": "127.0.0.1",'
             ' "vllm_models": [{"name": "m", "model": "x", "port": 8001, "gpus": [0]}]}')

    def preflight():
        return subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "-i",
                               str(Path(os.environ["MOLECULE_INVENTORY_FILE"]).parent), str(play), "-e", extra],
                              capture_output=True, text=True, timeout=300, check=False,
                              env={**os.environ, "ANSIBLE_ROLES_PATH": str(repo / "roles")})

    refused = preflight()
    assert refused.returncode != 0 and "solv_gpu_runtime is" in refused.stdout + refused.stderr, refused.stdout[-3000:]
    host.check_output("mkdir -p /etc/ansible/facts.d && echo '{\"gpu_runtime\": \"cdi\"}' > /etc/ansible/facts.d/solv.fact")
    assert json.loads(host.file("/etc/ansible/facts.d/solv.fact").content_string) == {"gpu_runtime": "cdi"}
    try:
        run = preflight()
        assert run.returncode == 0 and "GPU-MODE cdi" in run.stdout, run.stdout[-3000:]
    finally:
        host.run("rm -f /etc/ansible/facts.d/solv.fact")


def test_switching_the_engine_source_is_refused_naming_the_installed_package(host, tmp_path):
    """docker.io is installed (source distro): asked for Docker's own packages, the role stops before touching
    anything and names the package that conflicts (read with one dpkg-query, not package_facts)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[3]
    play = tmp_path / "engine.yml"
    play.write_text("- hosts: inference\n  become: true\n  gather_subset: [min]\n  roles: [container_engine]\n")
    run = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "--check", "-i",
                          str(Path(os.environ["MOLECULE_INVENTORY_FILE"]).parent), str(play),
                          "-e", "container_engine_source=docker"],
                         capture_output=True, text=True, timeout=300, check=False,
                         env={**os.environ, "ANSIBLE_ROLES_PATH": str(repo / "roles")})
    said = " ".join((run.stdout + run.stderr).split())
    assert run.returncode != 0 and "docker.io installed, but container_engine_source=docker" in said, said[-3000:]
