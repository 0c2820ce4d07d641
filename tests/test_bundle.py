"""`solv-provision bundle create | verify`: every image the inventory runs in one archive (a layer shared by several
images once), its staged models, and checksums that catch a damaged copy."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest
import yaml

from solv_provision import bundle, inventory, models, specs

TINY = "solv-test/bundle-tiny"


def _docker_answers() -> bool:
    return shutil.which("docker") is not None and subprocess.run(
        ["docker", "info"], capture_output=True, check=False).returncode == 0


@pytest.fixture(scope="module")
def tiny_image():
    """One small image (a file in a tar, `docker import`ed), tagged once per service of the test inventory."""
    if not _docker_answers():
        pytest.skip("needs a Docker engine")
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w") as tar:
        info = tarfile.TarInfo("hello.txt")
        info.size = 5
        tar.addfile(info, io.BytesIO(b"hello"))
    subprocess.run(["docker", "import", "-", f"{TINY}:base"], input=data.getvalue(), capture_output=True, check=True)
    tags = [f"{TINY}:{t}" for t in ("vllm", "searxng", "litellm", "openwebui", "caddy")]
    for tag in tags:
        subprocess.run(["docker", "tag", f"{TINY}:base", tag], check=True)
    yield tags
    subprocess.run(["docker", "rmi", f"{TINY}:base", *tags], capture_output=True, check=False)


def _inventory(tmp_path: Path) -> Path:
    store = tmp_path / "store"
    root = store / "org--tiny" / "main"
    root.mkdir(parents=True)
    (root / "config.json").write_text("{}")
    (root / "model.safetensors").write_bytes(b"\0" * 64)
    models.write_manifest(root, models.make_manifest(root, models.ModelRef("org/tiny")))
    images = {f"{role}_image": TINY for role in ("vllm", "searxng", "litellm", "openwebui", "caddy")}
    tags = {f"{role}_image_tag": role for role in ("vllm", "searxng", "litellm", "openwebui", "caddy")}
    inv = tmp_path / "inv"
    inv.mkdir()
    check = {"nvidia_container_toolkit_verify_image": f"{TINY}:vllm"}  # the GPU check's image, held already
    (inv / "hosts.yml").write_text(yaml.safe_dump({"all": {"vars": {**images, **tags, **check}, "children": {
        "inference": {"hosts": {"gpu-1": {"ansible_host": "192.0.2.11", "vllm_gpu_mode": "none",
                                          "vllm_model_store": str(store), "vllm_models": [
            {"name": "tiny", "model": "org/tiny", "port": 8001},
            {"name": "mine", "model": "/srv/models/mine", "port": 8002}]}}},
        "gateway": {"hosts": {"gw-1": {"ansible_host": "192.0.2.10"}}}}}}))
    return inv


@pytest.mark.docker
def test_a_bundle_holds_every_image_once_and_the_staged_models_and_verify_catches_damage(cli, tmp_path, tiny_image):
    inv = _inventory(tmp_path)
    assert bundle.images(inventory.load([inv])) == {
        f"{TINY}:caddy": ["gw-1"], f"{TINY}:litellm": ["gw-1"], f"{TINY}:openwebui": ["gw-1"],
        f"{TINY}:searxng": ["gw-1"], f"{TINY}:vllm": ["gpu-1"]}
    out = tmp_path / "bundle"
    result = cli("bundle", "create", "-i", inv, "-o", out)
    assert result.exit_code == 0, result.output
    doc = json.loads((out / "bundle.json").read_text())
    assert sorted(i["ref"] for i in doc["images"]) == sorted(tiny_image)
    with tarfile.open(out / "images.tar") as tar:
        index = json.loads(tar.extractfile("manifest.json").read())
    assert sorted(t for e in index for t in e["RepoTags"]) == sorted(tiny_image)
    assert len({layer for e in index for layer in e["Layers"]}) == 1  # five tags, one layer stored once
    assert [(m["model"], m["revision"], m["path"]) for m in doc["models"]] == [("org/tiny", "main", "models/org--tiny/main")]
    assert models.read_manifest(out / "models" / "org--tiny" / "main")  # a model store: apply reads it as one
    verified = cli("bundle", "verify", out)
    assert verified.exit_code == 0, verified.output

    (out / "models" / "org--tiny" / "main" / "model.safetensors").write_bytes(b"\1" * 64)
    damaged = cli("bundle", "verify", out)
    assert damaged.exit_code == 1 and "model.safetensors: missing or not the file its manifest names" in damaged.output
    with (out / "images.tar").open("ab") as f:
        f.write(b"\0" * 1024)
    damaged = cli("bundle", "verify", out)
    assert "images.tar: sha256 differs from bundle.json" in damaged.output


def _gpu_check_inventory(tmp_path: Path, check: dict) -> inventory.Inventory:
    inv = tmp_path / "check"
    inv.mkdir(parents=True)
    (inv / "hosts.yml").write_text(yaml.safe_dump({"all": {"vars": {"vllm_image": "vllm/vllm-openai"}, "children": {
        "inference": {"hosts": {"gpu-1": {**check, "vllm_models": [{"name": "a", "model": "/m", "port": 8001}]},
                                "gpu-2": {"vllm_models": [{"name": "b", "model": "/m", "port": 8001}]}}}}}}))
    return inventory.load([inv])


def test_the_gpu_check_s_image_is_in_the_bundle_of_each_inference_host_that_starts_it(tmp_path):
    """A GPU host of an air-gapped site starts nvidia_container_toolkit's check container from the bundle: without
    it the check would try Docker Hub and fail the run."""
    vllm = f"vllm/vllm-openai:{specs.default('vllm_image_tag')}"
    default = specs.default("nvidia_container_toolkit_verify_image")
    assert bundle.images(_gpu_check_inventory(tmp_path / "1", {})) == {vllm: ["gpu-1", "gpu-2"],
                                                                        default: ["gpu-1", "gpu-2"]}
    assert bundle.images(_gpu_check_inventory(tmp_path / "2", {"nvidia_container_toolkit_verify_image": ""})) == {
        vllm: ["gpu-1", "gpu-2"], default: ["gpu-2"]}
    with pytest.raises(bundle.BundleError, match="host gpu-1: nvidia_container_toolkit_verify_image "
                                                 "registry:5000/cuda has no tag"):
        bundle.images(_gpu_check_inventory(tmp_path / "3", {"nvidia_container_toolkit_verify_image":
                                                            "registry:5000/cuda"}))


def test_bundle_create_refuses_a_model_the_store_lacks(cli, tmp_path):
    inv = _inventory(tmp_path)
    shutil.rmtree(tmp_path / "store" / "org--tiny")
    result = cli("bundle", "create", "-i", inv, "-o", tmp_path / "bundle")
    assert result.exit_code == 2 and "org/tiny@main is not in the model store" in result.output
    assert not (tmp_path / "bundle").exists()


def test_verify_of_a_directory_without_a_bundle_is_one_line(cli, tmp_path):
    result = cli("bundle", "verify", tmp_path)
    assert result.exit_code == 1 and "no readable bundle.json" in result.output and "Traceback" not in result.output


@pytest.mark.docker
def test_this_machine_s_registry_serves_the_bundle_s_images_by_digest(tmp_path, tiny_image):
    """`apply --bundle` without a registry group: Debian's docker-registry on the controller; the roles push the
    bundle's archive there (only what it lacks) and each host pulls by digest, as here this machine's engine."""
    if not shutil.which("docker-registry"):
        pytest.skip("needs Debian's docker-registry (scripts/setup.sh installs it)")
    from solv_provision import registry

    out = tmp_path / "bundle"
    bundle.create(inventory.load([_inventory(tmp_path)]), out, echo=lambda _: None)
    with bundle.Served(tmp_path / "state", "127.0.0.1") as served:
        site = registry.Registry(served.reference)
        pushed = registry.push(site, str(out / "images.tar"), f"{TINY}:vllm")
        again = registry.push(site, str(out / "images.tar"), f"{TINY}:caddy")  # same layers: nothing sent
        reference = f"{served.reference}/{pushed['repository']}@{pushed['digest']}"
        subprocess.run(["docker", "pull", reference], capture_output=True, check=True)
        pulled = subprocess.run(["docker", "image", "inspect", "--format", "{{.Id}}", reference],
                                capture_output=True, text=True, check=True).stdout.strip()
        subprocess.run(["docker", "rmi", reference], capture_output=True, check=False)
    assert pushed["changed"] and pushed["uploaded"] > 0
    assert again["uploaded"] == 0 and again["digest"] == pushed["digest"]
    assert pulled == pushed["image_id"]
    with pytest.raises(registry.RegistryError):  # stopped with the run
        registry.Registry(served.reference, timeout=1).check()


@pytest.mark.docker
@pytest.mark.parametrize("verb", ["apply", "upgrade"])
def test_a_run_from_a_bundle_that_lacks_an_image_touches_no_host(cli, tmp_path, tiny_image, monkeypatch, verb):
    from solv_provision.held_play import Hold

    inv = _inventory(tmp_path)
    out = tmp_path / "bundle"
    bundle.create(inventory.load([inv]), out, echo=lambda _: None)
    hosts = yaml.safe_load((inv / "hosts.yml").read_text())
    hosts["all"]["vars"]["caddy_image_tag"] = "newer"
    (inv / "hosts.yml").write_text(yaml.safe_dump(hosts))

    def forbidden(self):
        raise AssertionError("a play was let go")

    monkeypatch.setattr(Hold, "release", forbidden)
    result = cli(verb, "-i", inv, "--bundle", out)
    assert result.exit_code == 2, result.output
    assert f"--bundle: {out}: has no image {TINY}:newer (run on gw-1)" in result.output


@pytest.mark.docker
def test_upgrade_from_a_bundle_runs_with_this_machine_s_registry_serving_it(cli, tmp_path, tiny_image, monkeypatch):
    """`upgrade --bundle` (a new release brought as a new bundle): every pass of the rollout sees the bundle and the
    registry serving it, which runs for the upgrade and stops with it."""
    if not shutil.which("docker-registry"):
        pytest.skip("needs Debian's docker-registry (scripts/setup.sh installs it)")
    from solv_provision import registry, upgrade

    inv = _inventory(tmp_path)
    out = tmp_path / "bundle"
    bundle.create(inventory.load([inv]), out, echo=lambda _: None)
    seen = {}

    def rollout(inv, *, inventories, options):
        seen.update(json.loads(options.extra_vars[-1]))
        registry.Registry(seen["solv_bundle_registry"], timeout=2).check()  # it answers during the rollout
        return 0

    monkeypatch.setattr(upgrade, "run_upgrade", rollout)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    result = cli("upgrade", "-i", inv, "--bundle", out, "--bundle-address", "127.0.0.1")
    assert result.exit_code == 0, result.output
    assert seen["solv_bundle_dir"] == str(out.resolve()) and seen["solv_bundle_registry"].startswith("127.0.0.1:")
    with pytest.raises(registry.RegistryError):
        registry.Registry(seen["solv_bundle_registry"], timeout=1).check()


def test_an_image_the_bundle_lacks_comes_from_its_own_archive(tmp_path):
    """The bundle's images.tar for the images bundle.json lists; a release given as its own archive (an upgrade's
    `-e ..._image_tag`) from that archive; without one the bundle's, whose failure then names the bundle."""
    out = tmp_path / "bundle"
    out.mkdir()
    (out / "bundle.json").write_text(json.dumps({"format": 1, "images": [{"ref": f"{TINY}:vllm"}]}))
    images_tar = f"{out}/images.tar"
    assert bundle.image_archive("/lab/vllm.tar", str(out), f"{TINY}:vllm") == images_tar
    assert bundle.image_archive("/lab/vllm-next.tar", str(out), f"{TINY}:next") == "/lab/vllm-next.tar"
    assert bundle.image_archive("", str(out), f"{TINY}:next") == images_tar
    assert bundle.image_archive("/lab/vllm.tar", "", f"{TINY}:vllm") == "/lab/vllm.tar"
    assert bundle.image_archive("/lab/x.tar", str(tmp_path / "none"), f"{TINY}:vllm") == "/lab/x.tar"
    # A bundle made again in the same place is read again.
    (out / "bundle.json").write_text(json.dumps({"format": 1, "images": [{"ref": f"{TINY}:next"}]}))
    os.utime(out / "bundle.json", ns=(1, 1))
    assert bundle.image_archive("/lab/vllm-next.tar", str(out), f"{TINY}:next") == images_tar


def test_a_host_is_told_its_archives_in_play_order_each_once_as_its_roles_load_them(tmp_path):
    """What solv_host_state starts loading when the archives are on a shared path: the archives of the images the
    host's own roles run, in the order the plays reach them; one archive holding several images (the bundle's) is
    loaded once; an image whose variables do not resolve is left to its role."""
    hostvars = {
        "aio": {"solv_monitoring": True, "vllm_image": "v", "vllm_image_tag": "1", "vllm_image_archive": "/a/v.tar",
                "vllm_models": [{"name": "one", "model": "org/one", "port": 8001},
                                {"name": "next", "model": "org/one", "port": 8002, "image_tag": "2",
                                 "image_archive": "/a/v2.tar"},
                                {"name": "pulled", "model": "org/one", "port": 8003, "image_tag": "3"}],
                **{f"{role}_image_archive": f"/a/{role}.tar" for role in ("searxng", "openwebui", "node_exporter")},
                "litellm_image_archive": bundle.Unresolved("a locked vault")},
        "gpu-2": {"vllm_models": [], "vllm_image_archive": "/a/v.tar"},
    }
    groups = {"all": ["aio", "gpu-2"], "inference": ["aio", "gpu-2"], "gateway": ["aio"]}
    node = f"{specs.default('node_exporter_image')}:{specs.default('node_exporter_image_tag')}"
    webui = f"{specs.default('openwebui_image')}:{specs.default('openwebui_image_tag')}"
    searxng = f"{specs.default('searxng_image')}:{specs.default('searxng_image_tag')}"
    without_archive = [f"{specs.default(f'{r}_image')}:{specs.default(f'{r}_image_tag')}"
                       for r in ("caddy", "blackbox_exporter", "alertmanager", "prometheus")]
    assert bundle.host_archives("aio", hostvars, groups) == [
        {"archive": "/a/v.tar", "images": ["v:1"]}, {"archive": "/a/v2.tar", "images": ["v:2"]},
        {"archive": "/a/searxng.tar", "images": [searxng]}, {"archive": "/a/openwebui.tar", "images": [webui]},
        {"archive": "/a/node_exporter.tar", "images": [node]}]
    # Monitoring is on (the first gateway host says so): gpu-2 runs a node exporter, from its role's default.
    assert bundle.host_archives("gpu-2", hostvars, groups) == []
    hostvars["gpu-2"]["node_exporter_image_archive"] = "/a/node_exporter.tar"
    assert bundle.host_archives("gpu-2", hostvars, groups) == [{"archive": "/a/node_exporter.tar", "images": [node]}]
    # From an offline bundle: its images.tar, once, for the images it holds and those with no archive of their own
    # (which then fail at their role, naming the bundle); the others from their own archives.
    out = tmp_path / "bundle"
    out.mkdir()
    (out / "bundle.json").write_text(json.dumps({"format": 1, "images": [{"ref": r} for r in ("v:1", "v:2", node)]}))
    assert bundle.host_archives("aio", hostvars, groups, str(out)) == [
        {"archive": f"{out}/images.tar", "images": sorted(["v:1", "v:2", "v:3", node, *without_archive])},
        {"archive": "/a/searxng.tar", "images": [searxng]}, {"archive": "/a/openwebui.tar", "images": [webui]}]


def test_bundle_serve_stopped_by_sigterm_stops_its_registry(tmp_path):
    """`bundle serve` in the background (a plain ansible-playbook run's registry) ends by kill or timeout: the
    registry it started ends with it and frees its port."""
    if not shutil.which("docker-registry"):
        pytest.skip("needs Debian's docker-registry (scripts/setup.sh installs it)")
    import signal
    import socket
    import sys

    from solv_provision import registry

    out = tmp_path / "bundle"
    out.mkdir()
    (out / "bundle.json").write_text(json.dumps({"format": 1, "images": []}))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cli = Path(sys.executable).with_name("solv-provision")
    serve = subprocess.Popen([str(cli), "bundle", "serve", str(out), "--address", "127.0.0.1", "--port", str(port)],
                             env={**os.environ, "XDG_STATE_HOME": str(tmp_path / "state")},
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        site = registry.Registry(f"127.0.0.1:{port}", timeout=1)
        site.wait(30, alive=lambda: serve.poll() is None)
        serve.send_signal(signal.SIGTERM)
        assert serve.wait(timeout=20) == 0
        with pytest.raises(registry.RegistryError):
            site.check()
    finally:
        serve.kill()


def test_a_registry_that_cannot_start_is_one_line_naming_its_log(tmp_path):
    """Its port taken by another program: docker-registry exits at start; the error says so and names the log."""
    if not shutil.which("docker-registry"):
        pytest.skip("needs Debian's docker-registry (scripts/setup.sh installs it)")
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(bundle.BundleError, match="the registry exited at start .*registry.log says why"):
            with bundle.Served(tmp_path, "127.0.0.1", taken.getsockname()[1]):
                pass
