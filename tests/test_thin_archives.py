"""An image archive sent as that image alone, without the layers the host has (solv_provision.thin_archives,
solv_common's solv_image_copy): which layers are left out, what the smaller archive holds, and Docker loading it as
the very image the whole archive holds."""

from __future__ import annotations

import json
import subprocess
import tarfile
import time

import pytest
from test_registry import _docker_answers, make_archive, make_images_archive

from solv_provision import registry, thin_archives

BASE = {"base.txt": b"a base layer\n" * 1000}
MIDDLE = {"etc/middle": b"a middle layer\n"}


def _members(path):
    with tarfile.open(path) as tar:
        return sorted(tar.getnames())


def test_the_layers_left_out_are_the_longest_prefix_one_host_image_starts_with(tmp_path):
    archive = tmp_path / "two.tar"
    make_archive(archive, "solv-test/thin:2", [BASE, MIDDLE, {"top": b"2"}])
    held = registry.read_archive(str(archive), "solv-test/thin:2")
    base, middle, top = (b.digest for b in held.layers)
    assert thin_archives.layers_on_host(held, []) == 0
    assert thin_archives.layers_on_host(held, [[base]]) == 1
    assert thin_archives.layers_on_host(held, [[base], [base, middle, "sha256:other"]]) == 2
    assert thin_archives.layers_on_host(held, [[base, middle, top, "sha256:more"]]) == 3
    # A layer is keyed by its chain: the middle layer over another base is not this image's middle layer.
    assert thin_archives.layers_on_host(held, [[middle, top], ["sha256:other", middle]]) == 0


def test_the_host_reading_is_one_json_list_per_image():
    lines = ['["sha256:a","sha256:b"]', "", "Error: No such image: x", '"sha256:c"', "[]", '["sha256:d"]']
    assert thin_archives.parse_host_layers(lines) == [["sha256:a", "sha256:b"], [], ["sha256:d"]]


def test_the_smaller_archive_lacks_exactly_the_files_of_the_layers_left_out(tmp_path):
    archive, thin = tmp_path / "two.tar", tmp_path / "thin.tar"
    make_archive(archive, "solv-test/thin:2", [BASE, MIDDLE, {"top": b"2"}])
    held = registry.read_archive(str(archive), "solv-test/thin:2")
    size = thin_archives.write_image(str(archive), held, 2, str(thin))
    assert size == thin.stat().st_size < archive.stat().st_size
    assert _members(thin) == sorted(set(_members(archive)) - {"layer0/layer.tar", "layer1/layer.tar"})
    # What is kept is byte for byte the archive's (the config, so the image ID, and the top layer).
    with tarfile.open(archive) as a, tarfile.open(thin) as t:
        for name in t.getnames():
            assert t.extractfile(name).read() == a.extractfile(name).read(), name


def test_layers_under_a_tenth_of_the_archive_are_sent_anyway(tmp_path):
    archive = tmp_path / "two.tar"
    make_archive(archive, "solv-test/thin:2", [MIDDLE, {"top": b"t" * 200_000}])
    held = registry.read_archive(str(archive), "solv-test/thin:2")
    small, big = held.layers
    assert thin_archives.plan(str(archive), "solv-test/thin:2", [json.dumps([small.digest])]) == \
        thin_archives.Plan(held, 0, write=False)
    assert thin_archives.plan(str(archive), "solv-test/thin:2", [json.dumps([small.digest, big.digest])]) == \
        thin_archives.Plan(held, 2, write=True)


def test_an_image_of_a_bundle_is_sent_alone_its_shared_layer_as_a_file(tmp_path):
    """An offline bundle holds every image in one archive, a layer two images list stored once (the other's is a
    link): one image is sent alone, each of its layers a file under the name its entry gives it."""
    archive, thin = tmp_path / "bundle.tar", tmp_path / "thin.tar"
    make_images_archive(archive, {"solv-test/big:1": [{"big": b"b" * 500_000}], "solv-test/base:1": [BASE],
                                  "solv-test/app:1": [BASE, {"app": b"app"}]})
    chosen = thin_archives.plan(str(archive), "solv-test/app:1", [])
    assert chosen.write and chosen.left_out == 0
    thin_archives.write_image(str(archive), chosen.held, 0, str(thin))
    with tarfile.open(archive) as a, tarfile.open(thin) as t:
        assert all(m.isfile() for m in t.getmembers())
        [entry] = json.loads(t.extractfile("manifest.json").read())
        assert entry["RepoTags"] == ["solv-test/app:1"]
        assert entry["Layers"] == ["image2-layer0/layer.tar", "image2-layer1/layer.tar"]
        assert t.extractfile("image2-layer0/layer.tar").read() == a.extractfile("image1-layer0/layer.tar").read()
    alone = registry.read_archive(str(thin), "solv-test/app:1")
    assert (alone.image_id, alone.manifest_digest) == (chosen.held.image_id, chosen.held.manifest_digest)


def test_an_archive_that_is_not_one_is_named(tmp_path):
    bad = tmp_path / "bad.tar"
    bad.write_bytes(b"not a tar")
    with pytest.raises(registry.RegistryError, match="bad.tar: not a readable image archive"):
        thin_archives.plan(str(bad), "solv-test/thin:2", [])


@pytest.mark.docker
def test_docker_loads_the_smaller_archive_as_the_image_the_whole_one_holds(tmp_path):
    if not _docker_answers():
        pytest.skip("needs Docker")
    run = time.monotonic_ns()
    one, two, thin = (f"solv-test/thin:{run}-1", f"solv-test/thin:{run}-2", tmp_path / "thin.tar")
    make_archive(tmp_path / "one.tar", one, [BASE, MIDDLE])
    two_id = make_archive(tmp_path / "two.tar", two, [BASE, MIDDLE, {"top": str(run).encode()}])
    try:
        subprocess.run(["docker", "load", "-q", "-i", str(tmp_path / "one.tar")], check=True, capture_output=True)
        ids = subprocess.run(["docker", "image", "ls", "-q", "--no-trunc"], check=True, capture_output=True,
                             text=True).stdout.split()
        # The other docker tests add and remove images meanwhile: one gone since the listing is left out (docker
        # inspects the others and exits 1), as a host's own `docker image inspect` would leave it.
        lines = subprocess.run(["docker", "image", "inspect", "--format", "{{json .RootFS.Layers}}", *set(ids)],
                               check=False, capture_output=True, text=True).stdout.splitlines()
        chosen = thin_archives.plan(str(tmp_path / "two.tar"), two, lines)
        held = chosen.held
        assert chosen.left_out == 2 and chosen.write
        thin_archives.write_image(str(tmp_path / "two.tar"), held, 2, str(thin))
        subprocess.run(["docker", "load", "-q", "-i", str(thin)], check=True, capture_output=True)
        loaded = json.loads(subprocess.run(["docker", "image", "inspect", two], check=True, capture_output=True,
                                           text=True).stdout)[0]
        assert loaded["Id"] == two_id
        assert loaded["RootFS"]["Layers"] == [b.digest for b in held.layers]
    finally:
        subprocess.run(["docker", "image", "rm", "-f", one, two], capture_output=True, check=False)
