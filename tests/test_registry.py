"""The site registry: reading `docker save` archives, pushing them into a real registry (the lab's Debian
docker-registry image), and Docker pulling what was pushed by digest as the very image the archive held."""

from __future__ import annotations

import hashlib
import io
import json
import socket
import subprocess
import tarfile
import time

import pytest

from solv_provision import registry
from solv_provision.lab_images import REPO, versions


def _tar_bytes(files: dict[str, bytes], links: dict[str, str] | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
    return buf.getvalue()


def make_archive(path, image: str, layers: list[dict[str, bytes]], *, corrupt: bool = False) -> str:
    """A `docker save` archive (legacy layout, as Debian's Docker 20.10 writes it) of one image; returns the
    image ID. corrupt: one layer's bytes differ from the diff ID the config names."""
    return make_images_archive(path, {image: layers}, corrupt=corrupt)[image]


def make_images_archive(path, images: dict[str, list[dict[str, bytes]]], *, corrupt: bool = False) -> dict[str, str]:
    """The archive of several images (`docker save a b`): a layer two images list is stored once, under the first's
    directory, and the other's layer.tar is a symbolic link to it, as Docker writes it. Returns the image IDs."""
    members, links, index, ids, stored = {}, {}, [], {}, {}
    for n, (image, layers) in enumerate(images.items()):
        layer_tars = [_tar_bytes(files) for files in layers]
        diff_ids = ["sha256:" + hashlib.sha256(t).hexdigest() for t in layer_tars]
        config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["/hello"]},
                             "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
        config_name = hashlib.sha256(config).hexdigest() + ".json"
        members[config_name] = config
        names = [f"layer{i}/layer.tar" if n == 0 else f"image{n}-layer{i}/layer.tar" for i in range(len(layers))]
        for name, t, diff_id in zip(names, layer_tars, diff_ids):
            if diff_id in stored:
                links[name] = f"../{stored[diff_id]}"
            else:
                members[name] = (t + b"\0" * 512) if corrupt and not stored else t
                stored[diff_id] = name
        index.append({"Config": config_name, "RepoTags": [image], "Layers": names})
        ids[image] = "sha256:" + hashlib.sha256(config).hexdigest()
    members["manifest.json"] = json.dumps(index).encode()
    path.write_bytes(_tar_bytes(members, links))
    return ids


BASE = {"base.txt": b"a base layer\n" * 1000}


# --- reading archives (no Docker) --------------------------------------------------------------------------


def test_read_archive_describes_the_image_without_reading_its_layers(tmp_path):
    archive = tmp_path / "img.tar"
    image_id = make_archive(archive, "solv-test/hello:1.0", [{"a": b"one"}, {"b": b"two"}])
    held = registry.read_archive(str(archive), "solv-test/hello:1.0")
    assert held.image_id == image_id
    assert [b.member for b in held.layers] == ["layer0/layer.tar", "layer1/layer.tar"]
    manifest = json.loads(held.manifest())
    assert manifest["config"]["digest"] == image_id
    assert [layer["digest"] for layer in manifest["layers"]] == [b.digest for b in held.layers]
    # The same archive gives the same manifest digest on every run (hosts pull by it).
    assert registry.read_archive(str(archive), "solv-test/hello:1.0").manifest_digest == held.manifest_digest


def test_a_layer_stored_once_for_two_images_is_read_through_the_link_to_it(tmp_path):
    """What failed a push in CI: Docker stores a layer two images list once; the other's layer.tar is a link of size
    0, and its bytes (and size, the manifest's and the upload's Content-Length) are those of the file it leads to."""
    archive = tmp_path / "two.tar"
    make_images_archive(archive, {"solv-test/base:1": [BASE], "solv-test/app:1": [BASE, {"app": b"app"}]})
    base = registry.read_archive(str(archive), "solv-test/base:1").layers[0]
    shared, own = registry.read_archive(str(archive), "solv-test/app:1").layers
    assert (shared.member, shared.source) == ("image1-layer0/layer.tar", "layer0/layer.tar")
    assert shared.size == base.size == len(_tar_bytes(BASE)) and shared.digest == base.digest
    assert own.source == own.member == "image1-layer1/layer.tar"


def test_read_archive_names_what_the_archive_holds_instead(tmp_path):
    archive = tmp_path / "img.tar"
    make_archive(archive, "solv-test/hello:1.0", [{"a": b"one"}])
    with pytest.raises(registry.RegistryError, match=r"holds no image solv-test/hello:2.0 \(it holds: solv-test/hello:1.0\)"):
        registry.read_archive(str(archive), "solv-test/hello:2.0")


def test_read_archive_refuses_a_file_that_is_not_an_image_archive(tmp_path):
    bad = tmp_path / "notes.txt"
    bad.write_text("not a tar")
    with pytest.raises(registry.RegistryError, match="not a readable image archive"):
        registry.read_archive(str(bad), "x:1")
    missing = tmp_path / "missing.tar"
    with pytest.raises(registry.RegistryError, match="missing.tar"):
        registry.read_archive(str(missing), "x:1")


@pytest.mark.parametrize(("image", "repository"), [
    ("solv-lab/litellm:1.108.7", "solv-lab/litellm"),
    ("ghcr.io/berriai/litellm:v1.108.11", "berriai/litellm"),
    ("registry.example:5000/vllm/vllm-openai:v0.11.0", "vllm/vllm-openai"),
    ("localhost/caddy:2", "caddy"),
    ("vllm/vllm-openai", "vllm/vllm-openai"),
])
def test_repository_of_drops_the_tag_and_a_registry_host(image, repository):
    assert registry.repository_of(image) == repository


def test_site_address_is_the_registry_hosts_internal_address_and_port():
    hostvars = {"gw": {"ansible_host": "203.0.113.5", "solv_internal_address": "10.0.0.5"},
                "gw6": {"ansible_host": "fd00::5", "registry_port": 5443}}
    assert registry.site_address(hostvars, {"registry": ["gw"]}) == "10.0.0.5:5000"
    assert registry.site_address(hostvars, {"registry": ["gw6"]}) == "[fd00::5]:5443"
    assert registry.site_address(hostvars, {"registry": []}) == ""
    assert registry.site_address(hostvars, {}) == ""


# --- against a real registry and Docker ----------------------------------------------------------------------


def _docker_answers() -> bool:
    return subprocess.run(["docker", "info"], capture_output=True, check=False).returncode == 0


@pytest.fixture(scope="module")
def site_registry(tmp_path_factory):
    """The lab's registry image (Debian's docker-registry) on a loopback port of this machine: Docker pulls from
    127.0.0.0/8 over plain HTTP without configuration."""
    image = f"{REPO}/registry:{versions()['registry']}"
    if not _docker_answers() or subprocess.run(["docker", "image", "inspect", image], capture_output=True,
                                               check=False).returncode != 0:
        pytest.skip(f"needs Docker and {image} (solv-provision lab images --only registry)")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = tmp_path_factory.mktemp("registry") / "config.yml"
    config.write_text("version: 0.1\nstorage: {filesystem: {rootdirectory: /var/lib/registry}}\nhttp: {addr: ':5000'}\n")
    config.chmod(0o644)
    name = f"solv-test-registry-{port}"
    subprocess.run(["docker", "run", "-d", "--rm", "--name", name, "-p", f"127.0.0.1:{port}:5000",
                    "-v", f"{config}:/etc/docker/registry/config.yml:ro", image], check=True, capture_output=True)
    site = registry.Registry(f"127.0.0.1:{port}")
    site.wait(30)
    yield site
    subprocess.run(["docker", "rm", "-f", name], capture_output=True, check=False)


@pytest.mark.docker
def test_pushed_archive_is_pulled_by_digest_as_the_same_image(site_registry, tmp_path):
    tag = f"solv-test/hello:{time.monotonic_ns()}"
    archive = tmp_path / "hello.tar"
    image_id = make_archive(archive, tag, [{"hello.txt": b"hello\n"}, {"etc/solv": b"second layer\n"}])

    first = registry.push(site_registry, str(archive), tag)
    assert first["changed"] and first["image_id"] == image_id and first["uploaded"] > 0
    again = registry.push(site_registry, str(archive), tag)
    assert not again["changed"] and again["uploaded"] == 0 and again["digest"] == first["digest"]

    reference = f"{site_registry.address}/{first['repository']}@{first['digest']}"
    try:
        subprocess.run(["docker", "pull", "-q", reference], check=True, capture_output=True, text=True)
        pulled = json.loads(subprocess.run(["docker", "image", "inspect", reference], check=True,
                                           capture_output=True, text=True).stdout)[0]
        # Docker's image ID is the config's digest: the very image the archive held.
        assert pulled["Id"] == image_id
        assert pulled["RootFS"]["Layers"] == [b.digest for b in registry.read_archive(str(archive), tag).layers]
    finally:
        subprocess.run(["docker", "image", "rm", "-f", reference], capture_output=True, check=False)


@pytest.mark.docker
def test_a_second_image_sends_only_the_layers_the_registry_lacks(site_registry, tmp_path):
    shared = {"base.txt": b"a base layer\n" * 1000}
    one, two = tmp_path / "one.tar", tmp_path / "two.tar"
    make_archive(one, "solv-test/layers:one", [shared, {"one": b"1"}])
    make_archive(two, "solv-test/layers:two", [shared, {"two": b"2"}])
    registry.push(site_registry, str(one), "solv-test/layers:one")
    second = registry.push(site_registry, str(two), "solv-test/layers:two")
    held = registry.read_archive(str(two), "solv-test/layers:two")
    assert second["uploaded"] == held.layers[1].size + len(held.config)


@pytest.mark.docker
def test_images_docker_saved_together_are_pushed_and_pulled_as_themselves(site_registry, tmp_path):
    """`docker save` of an image and one built on it (Docker links the layer they share): both pushed, both pulled
    by digest as the very images saved."""
    run = time.monotonic_ns()
    base, app, archive = f"solv-test/saved-base:{run}", f"solv-test/saved-app:{run}", tmp_path / "saved.tar"
    remove, references = ["docker", "image", "rm", "-f", base, app], []
    try:
        subprocess.run(["docker", "import", "-", base], input=_tar_bytes(BASE), check=True, capture_output=True)
        box = subprocess.run(["docker", "create", base, "/app"], check=True, capture_output=True,
                             text=True).stdout.strip()
        (tmp_path / "app").write_text("app\n")
        subprocess.run(["docker", "cp", str(tmp_path / "app"), f"{box}:/app"], check=True, capture_output=True)
        subprocess.run(["docker", "commit", box, app], check=True, capture_output=True)
        subprocess.run(["docker", "rm", box], check=True, capture_output=True)
        subprocess.run(["docker", "save", "-o", str(archive), base, app], check=True, capture_output=True)
        with tarfile.open(archive) as tar:
            assert any(m.issym() for m in tar.getmembers()), "no layer stored as a link: the test proves nothing"
        ids = {image: subprocess.run(["docker", "image", "inspect", "--format", "{{.Id}}", image], check=True,
                                     capture_output=True, text=True).stdout.strip() for image in (base, app)}
        for image in (base, app):
            pushed = registry.push(site_registry, str(archive), image)
            references.append(f"{site_registry.address}/{pushed['repository']}@{pushed['digest']}")
        subprocess.run(remove, capture_output=True, check=False)
        for image, reference in zip((base, app), references):
            subprocess.run(["docker", "pull", "-q", reference], check=True, capture_output=True)
            pulled = subprocess.run(["docker", "image", "inspect", "--format", "{{.Id}}", reference], check=True,
                                    capture_output=True, text=True).stdout.strip()
            assert pulled == ids[image]
    finally:
        subprocess.run([*remove, *references], capture_output=True, check=False)


@pytest.mark.docker
def test_a_layer_that_is_not_what_the_config_says_is_refused_by_name(site_registry, tmp_path):
    archive = tmp_path / "bad.tar"
    make_archive(archive, "solv-test/bad:1", [{"x": b"x"}], corrupt=True)
    with pytest.raises(registry.RegistryError, match="layer0/layer.tar"):
        registry.push(site_registry, str(archive), "solv-test/bad:1")
    assert not site_registry.has_manifest("solv-test/bad",
                                          registry.read_archive(str(archive), "solv-test/bad:1").manifest_digest)
