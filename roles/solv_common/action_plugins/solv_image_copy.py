"""solv_image_copy: an image archive copied from the controller to `dest` on the host as that image alone, without the
files of the layers the host has already (solv_provision.thin_archives): the controller writes that smaller archive
to a temporary file, ansible.builtin.copy sends it (mode 0600, root), the temporary file is removed.

Arguments: archive (controller path), image (name:tag in it), dest (host path), host_layers (the lines of
`docker image inspect --format '{{json .RootFS.Layers}}'` over the host's images; empty: send the whole archive).
Returns copy's result plus layers (of the image), layers_left_out, bytes (sent).
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from ansible.plugins.action import ActionBase

try:
    from solv_provision import registry, thin_archives
except ImportError:  # plain ansible-playbook from a checkout, package not installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
    from solv_provision import registry, thin_archives


class ActionModule(ActionBase):
    TRANSFERS_FILES = True

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        args = self._task.args
        missing = [k for k in ("archive", "image", "dest") if not args.get(k)]
        if missing:
            return {**result, "failed": True, "msg": f"solv_image_copy: {', '.join(missing)} missing"}
        archive = str(args["archive"])
        try:
            chosen = thin_archives.plan(archive, str(args["image"]), args.get("host_layers") or [])
        except registry.RegistryError as exc:
            return {**result, "failed": True, "msg": str(exc)}
        src, scratch = archive, None
        try:
            if chosen.write and not self._task.check_mode:
                fd, scratch = tempfile.mkstemp(prefix="solv-image-", suffix=".tar")
                os.close(fd)
                thin_archives.write_image(archive, chosen.held, chosen.left_out, scratch)
                src = scratch
            sent = os.path.getsize(src)
            copied = self._copy(src, str(args["dest"]), task_vars)
        except registry.RegistryError as exc:
            return {**result, "failed": True, "msg": str(exc)}
        finally:
            if scratch:
                os.unlink(scratch)
        result.update(copied)
        result.update(layers=len(chosen.held.layers), layers_left_out=chosen.left_out, bytes=sent)
        return result

    def _copy(self, src, dest, task_vars):
        task = self._task.copy()
        task.args = {"src": src, "dest": dest, "mode": "0600", "owner": "root", "group": "root"}
        copy = self._shared_loader_obj.action_loader.get(
            "ansible.legacy.copy", task=task, connection=self._connection, play_context=self._play_context,
            loader=self._loader, templar=self._templar, shared_loader_obj=self._shared_loader_obj)
        return copy.run(task_vars=task_vars)
