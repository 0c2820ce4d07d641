"""solv_registry_push: an image archive on the controller pushed into the site registry (solv_provision.registry),
once whatever the number of hosts asking for it: a lock per archive and registry makes the others wait, then
find the manifest there. Runs on the controller (an action plugin); the host then pulls `reference`.

Arguments: archive (controller path), image (name:tag in it), registry (address:port).
Returns: reference (<registry>/<repository>@<manifest digest>), image_id, uploaded (bytes), changed.
In check mode nothing is pushed: changed says whether the registry lacks the image (or does not answer yet).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import sys
import tempfile
from pathlib import Path

from ansible.plugins.action import ActionBase

try:
    from solv_provision import registry
except ImportError:  # plain ansible-playbook from a checkout, package not installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
    from solv_provision import registry


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        args = self._task.args
        missing = [k for k in ("archive", "image", "registry") if not args.get(k)]
        if missing:
            return {**result, "failed": True, "msg": f"solv_registry_push: {', '.join(missing)} missing"}
        archive, image, address = str(args["archive"]), str(args["image"]), str(args["registry"])
        site = registry.Registry(address)
        try:
            if self._task.check_mode:
                held = registry.read_archive(archive, image)
                repo = registry.repository_of(image)
                return {**result, "changed": not _present(site, repo, held.manifest_digest), "image_id": held.image_id,
                        "uploaded": 0, "reference": f"{address}/{repo}@{held.manifest_digest}"}
            with _lock(address, archive):
                pushed = registry.push(site, archive, image)
        except registry.RegistryError as exc:
            return {**result, "failed": True, "msg": f"{image}: {exc}"}
        return {**result, "changed": pushed["changed"], "image_id": pushed["image_id"], "uploaded": pushed["uploaded"],
                "reference": f"{address}/{pushed['repository']}@{pushed['digest']}"}


def _present(site, repo, digest) -> bool:
    """In a dry run: is the image in the registry? A registry not running yet (a first run) lacks it."""
    try:
        return site.has_manifest(repo, digest)
    except registry.RegistryError:
        return False


class _lock:
    """An exclusive lock for one archive and registry, between the forks of this run (and concurrent runs)."""

    def __init__(self, address: str, archive: str):
        key = hashlib.sha256(f"{address}\0{os.path.realpath(archive)}".encode()).hexdigest()[:16]
        self.path = os.path.join(tempfile.gettempdir(), f"solv-registry-push-{key}.lock")

    def __enter__(self):
        self.handle = open(self.path, "a")  # noqa: SIM115
        fcntl.flock(self.handle, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        fcntl.flock(self.handle, fcntl.LOCK_UN)
        self.handle.close()
