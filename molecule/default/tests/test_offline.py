"""The stack converged as at a site without internet (converge.yml, prepare.yml): once Docker was installed the
host lost its route out, and every image came from the offline bundle (`solv-provision bundle create`) through the
registry `solv-provision bundle serve` runs on the controller, pulled by digest: no archive was copied to the host
and nothing came from anywhere else. (Molecule's idempotence step is the second run that changes nothing.)"""

from __future__ import annotations

import json
import os
from pathlib import Path

from conftest import ROOT


def _bundle():
    return json.loads((Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "bundle" / "bundle.json").read_text())


def test_the_host_has_no_route_out(host):
    assert host.check_output("ip -4 route show default") == ""
    # The kernel refuses at once: no packet leaves for an address outside the lab's network.
    attempt = host.run("ip route get 192.0.2.1")
    assert attempt.rc != 0 and "unreachable" in attempt.stderr, attempt


def test_every_running_image_came_from_the_bundle_through_the_controller_s_registry(host, inventory):
    registry = inventory["solv_bundle_registry"]
    held = {image["ref"] for image in _bundle()["images"]}
    names = host.check_output("docker ps --filter name=solv- --format '{{.Names}}'").split()
    running = {json.loads(host.check_output("docker container inspect %s", n))[0]["Config"]["Image"] for n in names}
    # The stand-ins' and the gateway's images, the canary's next release included: what the inventory runs, and the
    # image of the toolkit's GPU check (a GPU site needs it; started only where a GPU is, so not here).
    gpu_check = inventory["nvidia_container_toolkit_verify_image"]
    assert running | {gpu_check} == held and gpu_check not in running, (running, held)
    assert json.loads(host.file("/etc/docker/daemon.json").content_string)["insecure-registries"] == [registry]
    for image in sorted(running):
        digests = json.loads(host.check_output("docker image inspect -f '{{json .RepoDigests}}' %s", image))
        repo = image.rsplit(":", 1)[0]
        assert any(d.startswith(f"{registry}/{repo}@sha256:") for d in digests), (image, digests)
    assert not host.file(f"{ROOT}/images").exists, "an image archive was copied to the host"
