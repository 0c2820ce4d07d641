"""vllm_model_stage: a host's staged models made equal to the model store on the controller, sending only what
the host lacks.

Arguments: store (the controller's model store), models_dir (on the host), models (relative paths
`<org>--<name>/<revision>`, solv_provision.models.ModelRef.relpath). The host's module of the same name says
which files each model directory lacks (its manifest equal to the store's: nothing); the free space is checked
for all of them before the first byte moves; ansible.builtin.copy sends each missing file (checksummed, atomic,
with become); the module then writes the manifest last. Returns staged (the relative paths), sent (files) and
bytes (sent); in check mode, what would be sent.
"""

from __future__ import annotations

import sys
from pathlib import Path

from ansible.plugins.action import ActionBase

try:
    from solv_provision import models as staged
except ImportError:  # plain ansible-playbook from a checkout, package not installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
    from solv_provision import models as staged


def gib(n: int) -> str:
    return f"{n / 2**30:.1f} GiB"


class ActionModule(ActionBase):
    TRANSFERS_FILES = True

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        args = self._task.args
        store, models_dir = Path(str(args["store"])), str(args["models_dir"])
        wanted = []
        for rel in args.get("models") or []:
            manifest = staged.read_manifest(store / rel)
            if manifest is None:
                return {**result, "failed": True, "msg": f"{store / rel} has no manifest (an incomplete download): "
                                                         "run `solv-provision models fetch -i INVENTORY`"}
            wanted.append({"path": f"{models_dir}/{rel}", "manifest": manifest, "rel": rel})
        if not wanted:
            return {**result, "changed": False, "staged": [], "sent": 0, "bytes": 0}
        module_models = [{"path": w["path"], "manifest": w["manifest"]} for w in wanted]
        found = self._module("inspect", module_models, task_vars)
        if found.get("failed"):
            return {**result, **found}
        lacking = [(w, f) for w, f in zip(wanted, found["models"], strict=True) if not f["complete"]]
        need = sum(f["bytes"] for _, f in lacking)
        free = min((f["free"] for _, f in lacking), default=0)
        if need > free:
            detail = ", ".join(f"{w['manifest']['model']}@{w['manifest']['revision']} {gib(f['bytes'])}"
                               for w, f in lacking if f["bytes"])
            return {**result, "failed": True,
                    "msg": f"staging the models needs {gib(need)} under {models_dir} ({detail}), but only "
                           f"{gib(free)} is free there: free space, or set solv_root_dir to a larger disk"}
        files = [(w, rel) for w, f in lacking for rel in f["missing"]]
        result.update(changed=bool(lacking), staged=[w["rel"] for w in wanted], sent=len(files), bytes=need)
        if self._task.check_mode or not lacking:
            return result
        for parent in sorted({f"{w['path']}/{rel}".rsplit("/", 1)[0] for w, rel in files}):
            made = self._execute_module(module_name="ansible.legacy.file",
                                        module_args={"path": parent, "state": "directory", "mode": "0755"},
                                        task_vars=task_vars)
            if made.get("failed"):
                return {**result, **made}
        for w, rel in files:
            copied = self._copy(store / w["rel"] / rel, f"{w['path']}/{rel}", task_vars)
            if copied.get("failed"):
                return {**result, **copied}
        done = self._module("finish", [{"path": w["path"], "manifest": w["manifest"]} for w, _ in lacking], task_vars)
        if done.get("failed"):
            return {**result, **done}
        return result

    def _module(self, step, models, task_vars):
        return self._execute_module(module_name="vllm_model_stage", module_args={"step": step, "models": models},
                                    task_vars=task_vars)

    def _copy(self, src: Path, dest: str, task_vars):
        task = self._task.copy()
        task.args = {"src": str(src), "dest": dest, "mode": "0644", "owner": "root", "group": "root"}
        copy = self._shared_loader_obj.action_loader.get(
            "ansible.legacy.copy", task=task, connection=self._connection, play_context=self._play_context,
            loader=self._loader, templar=self._templar, shared_loader_obj=self._shared_loader_obj)
        return copy.run(task_vars=task_vars)
