"""The lab: image recipes and their hashes, the lab inventory, and `lab up/status/down` on Docker."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from solv_provision import lab_hosts, lab_images
from solv_provision.lab import lab

ROOT = Path(__file__).resolve().parents[1]


def _docker_answers() -> bool:
    return shutil.which("docker") is not None and subprocess.run(
        ["docker", "info"], capture_output=True, check=False).returncode == 0


def _inspect(kind: str, name: str) -> dict | None:
    r = subprocess.run(["docker", kind, "inspect", name], capture_output=True, text=True, check=False)
    return json.loads(r.stdout)[0] if r.returncode == 0 else None


# --- recipes and hashes (no Docker) -------------------------------------------------------------


def test_every_lab_parent_is_a_lab_image():
    images = lab_images.catalogue()
    refs = [i.ref for i in images]
    for i, img in enumerate(images):
        parent = lab_images.parent_ref(img)
        if img.suite:
            assert parent is None, img.ref
        else:
            assert parent in refs[:i], f"{img.ref} builds FROM {parent}, not an earlier lab image"


def test_recipe_hash_follows_sources_and_parents(tmp_path, monkeypatch):
    shutil.copytree(ROOT / "lab", tmp_path / "lab", ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(lab_images, "lab_dir", lambda: tmp_path / "lab")
    monkeypatch.setattr(lab_images, "images_dir", lambda: tmp_path / "lab" / "images")

    def hashes() -> dict[str, str]:
        images = lab_images.catalogue()
        by_ref = {i.ref: i for i in images}
        return {i.ref: lab_images.recipe_hash(i, by_ref) for i in images}

    v = lab_images.versions()
    before = hashes()
    assert before == hashes()
    (tmp_path / "lab/doubles/vllm_standin/server.py").write_text("# changed\n", encoding="utf-8")
    after = hashes()
    changed = {ref for ref in before if before[ref] != after[ref]}
    assert changed == {f"solv-lab/vllm-standin:{v['vllm_standin']}", f"solv-lab/vllm-standin:{v['vllm_standin_next']}",
                       f"solv-lab/vllm-standin:{v['vllm_standin']}-broken"}
    with (tmp_path / "lab/images/base/packages").open("a") as fh:
        fh.write("less\n")
    changed = {ref for ref, h in hashes().items() if h != after[ref]}
    # base and every image built FROM it, directly or not (the others descend from their own debootstrap).
    def descends_from_base(ref: str | None) -> bool:
        while ref and ref != "solv-lab/base:debian12":
            ref = lab_images.parent_ref(next(i for i in lab_images.catalogue() if i.ref == ref))
        return ref is not None

    assert changed == {i.ref for i in lab_images.catalogue() if descends_from_base(i.ref)}
    assert f"solv-lab/litellm:{v['litellm']}-next" in changed
    assert f"solv-lab/prometheus:{v['prometheus']}" not in changed  # FROM the monitoring rootfs


def test_images_waiting_for_a_pip_tree_are_built_last_parents_still_first():
    images = lab_images.catalogue()
    v = lab_images.versions()
    pip = {i.ref for i in images if i.pip}
    order = [i.ref for i in lab_images.build_order(images, pip)]
    assert sorted(order) == sorted(i.ref for i in images)
    later = {*pip, f"solv-lab/litellm:{v['litellm']}-next", f"solv-lab/open-webui:{v['open_webui']}-next"}
    assert set(order[-len(later):]) == later
    for i, ref in enumerate(order):
        parent = lab_images.parent_ref(next(img for img in images if img.ref == ref))
        assert parent is None or parent in order[:i], f"{ref} comes before its parent {parent}"
    assert lab_images.build_order(images, set()) == images


def test_select_adds_parents_in_order():
    v = lab_images.versions()
    refs = [i.ref for i in lab_images.select(lab_images.catalogue(), ("vllm-standin",))]
    assert refs == ["solv-lab/base:debian12", f"solv-lab/vllm-standin:{v['vllm_standin']}",
                    f"solv-lab/vllm-standin:{v['vllm_standin_next']}", f"solv-lab/vllm-standin:{v['vllm_standin']}-broken"]
    nxt = [i.ref for i in lab_images.select(lab_images.catalogue(), (f"litellm:{v['litellm']}-next",))]
    assert nxt[-2:] == [f"solv-lab/litellm:{v['litellm']}", f"solv-lab/litellm:{v['litellm']}-next"]
    with pytest.raises(lab_images.LabError, match="no lab image"):
        lab_images.select(lab_images.catalogue(), ("nginx",))


# --- the lab inventory (no Docker) --------------------------------------------------------------


def test_lab_inventory_hosts_are_in_the_lab_subnet():
    hosts = lab_hosts.read_hosts(ROOT / "inventories" / "lab")
    assert [(h.name, h.address) for h in hosts] == [("lab-aio", "10.213.47.10")]


@pytest.mark.parametrize("address, message", [
    ("192.168.1.5", "not a usable address"),
    ("10.213.47.1", "not a usable address"),
    ("lab-aio.example", "literal ansible_host"),
])
def test_read_hosts_refuses_addresses_outside_the_lab(tmp_path, address, message):
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump({"all": {"hosts": {"h": {"ansible_host": address}}}}))
    with pytest.raises(lab_hosts.LabHostError, match=message):
        lab_hosts.read_hosts(tmp_path)


def test_lab_inventory_points_at_the_lab_images(tmp_path):
    """Templated through Ansible: tags from versions.yml, archives where `lab images` writes them."""
    names = ["vllm", "litellm", "searxng", "openwebui", "caddy"]
    expr = "{{ {" + ", ".join(f"'{n}': [{n}_image, {n}_image_tag, {n}_image_archive]" for n in names) + "} }}"
    env = {**os.environ, "ANSIBLE_STDOUT_CALLBACK": "json", "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1",
           "XDG_CACHE_HOME": str(tmp_path)}
    r = subprocess.run([str(Path(sys.executable).parent / "ansible"), "-i", str(ROOT / "inventories/lab"),
                        "lab-aio", "-m", "ansible.builtin.debug", "-a", f"msg={expr}"],
                       capture_output=True, text=True, env=env, cwd=ROOT, check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    got = json.loads(r.stdout)["plays"][0]["tasks"][0]["hosts"]["lab-aio"]["msg"]
    by_name: dict[str, lab_images.Image] = {}
    for img in lab_images.catalogue():
        by_name.setdefault(img.name, img)  # the first: vllm-standin:<v>, not <v>-broken
    expected = {"vllm": "vllm-standin", "litellm": "litellm", "searxng": "searxng-standin", "openwebui": "open-webui",
                "caddy": "caddy"}
    for var, image in expected.items():
        img = by_name[image]
        assert got[var] == [f"solv-lab/{img.name}", img.tag,
                            str(tmp_path / "solv-provision" / "images" / f"{img.name}-{img.tag}.tar")]


# --- lab up / status / down on Docker -----------------------------------------------------------


@pytest.fixture
def lab_inventory(tmp_path):
    if not _docker_answers():
        pytest.skip("no Docker engine answers (run lab/bootstrap-docker.sh)")
    name = f"lab-test-{random.randrange(16**4):04x}"
    address = f"10.213.47.{random.randrange(200, 250)}"
    inv = tmp_path / "inventory"
    inv.mkdir()
    (inv / "hosts.yml").write_text(yaml.safe_dump(
        {"all": {"children": {"inference": {"hosts": {name: {"ansible_host": address}}}}}}))
    yield inv, lab_hosts.LabHost(name, address)
    CliRunner().invoke(lab, ["down", "-i", str(inv)])


@pytest.fixture
def bystanders():
    """Two containers lab down must leave alone: one unlabelled, one of another lab."""
    suffix = f"{random.randrange(16**6):06x}"
    names = [f"solv-lab-bystander-{suffix}", f"solv-lab-other-{suffix}"]
    image = lab_hosts.HOST_IMAGE
    labels = [[], ["--label", f"{lab_hosts.LABEL}=/elsewhere"]]
    yield_names = []
    for name, label in zip(names, labels):
        r = subprocess.run(["docker", "create", "--name", name, *label, image, "true"],
                           capture_output=True, text=True, check=False)
        if r.returncode == 0:
            yield_names.append(name)
    yield yield_names
    for name in yield_names:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True, check=False)


@pytest.mark.docker
def test_lab_up_is_idempotent_and_down_removes_only_the_lab(lab_inventory, bystanders):
    inv, host = lab_inventory
    runner = CliRunner()

    first = runner.invoke(lab, ["up", "-i", str(inv)])
    assert first.exit_code == 0, first.output
    assert f"{host.name}: created at {host.address}, systemd " in first.output
    assert "ssh ok" in first.output
    info = _inspect("container", host.container)
    assert info["Config"]["Labels"][lab_hosts.LABEL] == str(inv.resolve())
    state = subprocess.run(["docker", "exec", host.container, "systemctl", "is-system-running"],
                           capture_output=True, text=True, check=False).stdout.strip()
    assert state in ("running", "degraded")
    key = lab_hosts.key_path(inv)
    ssh = subprocess.run(["ssh", "-i", str(key), "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
                          "-o", "UserKnownHostsFile=/dev/null", f"root@{host.address}", "hostname"],
                         capture_output=True, text=True, check=False)
    assert ssh.stdout.strip() == host.name, ssh.stderr

    key_before = key.read_bytes()
    second = runner.invoke(lab, ["up", "-i", str(inv), "--images", "none"])
    assert second.exit_code == 0, second.output
    assert second.output.strip() == f"{host.name}: running at {host.address}, systemd {state}, ssh ok"
    again = _inspect("container", host.container)
    assert (again["Id"], again["State"]["StartedAt"]) == (info["Id"], info["State"]["StartedAt"])
    assert key.read_bytes() == key_before

    status = runner.invoke(lab, ["status", "-i", str(inv)])
    assert status.output.strip() == f"{host.name}: running at {host.address}, systemd {state}, ssh ok"

    # A stopped host whose network went away (docker's state reset) is attached again, at its address.
    for args in (["stop", "-t", "1", host.container], ["network", "disconnect", "-f", lab_hosts.NETWORK, host.container]):
        subprocess.run(["docker", *args], capture_output=True, check=True)
    third = runner.invoke(lab, ["up", "-i", str(inv), "--images", "none"])
    assert third.exit_code == 0, third.output
    assert third.output.strip().startswith(f"{host.name}: started at {host.address}, systemd ")
    assert third.output.strip().endswith("ssh ok")

    down = runner.invoke(lab, ["down", "-i", str(inv)])
    assert down.exit_code == 0, down.output
    assert _inspect("container", host.container) is None
    assert _inspect("volume", host.volume) is None
    net = _inspect("network", lab_hosts.NETWORK)
    assert net is None or net.get("Containers"), "an unused lab network is left behind"
    for name in bystanders:
        assert _inspect("container", name) is not None, f"lab down removed {name}"
    assert runner.invoke(lab, ["status", "-i", str(inv)]).output.strip() == f"{host.name}: absent ({host.address})"


@pytest.mark.docker
def test_bootstrap_docker_is_a_noop_when_docker_answers():
    if not _docker_answers():
        pytest.skip("no Docker engine answers")
    r = subprocess.run(["sh", str(ROOT / "lab" / "bootstrap-docker.sh")], capture_output=True, text=True,
                       timeout=30, check=False)
    assert (r.returncode, r.stdout, r.stderr) == (0, "", "")
