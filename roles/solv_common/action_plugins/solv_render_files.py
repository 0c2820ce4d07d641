"""solv_render_files: one container's directories and files written into `solv-provision render`'s output folder, by
the controller itself: no module call (the host path's solv_files costs an interpreter start, about 0.3 s per
container of a render). Render mode only: every path must lie below `root` (solv_render_out); no owners.

Arguments: root, dirs ([{path, mode (default 0755)}]), files ([{path, mode, content}]). Returns changed_paths.
"""

from __future__ import annotations

import os
from pathlib import Path

from ansible.plugins.action import ActionBase


class ActionModule(ActionBase):
    _requires_connection = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        args = self._task.args
        root = Path(str(args.get("root") or "")).resolve()
        if not args.get("root") or root == Path("/"):
            return {**result, "failed": True, "msg": "solv_render_files: root (the render output folder) missing"}
        dirs, files = list(args.get("dirs") or []), list(args.get("files") or [])
        outside = [str(e["path"]) for e in dirs + files if not Path(str(e["path"])).resolve().is_relative_to(root)]
        if outside:
            return {**result, "failed": True, "msg": f"solv_render_files: outside {root}: {', '.join(outside)}"}
        for d in dirs:
            os.makedirs(d["path"], exist_ok=True)
            os.chmod(d["path"], int(d.get("mode", "0755"), 8))
        for f in files:
            path = Path(str(f["path"]))
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(str(f["content"]).encode("utf-8"))
            path.chmod(int(f["mode"], 8))
        return {**result, "changed": True, "changed_paths": [str(e["path"]) for e in dirs + files]}
