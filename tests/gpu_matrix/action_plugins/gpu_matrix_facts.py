"""Test helper: make a host look like another OS by returning fixture facts as `ansible_facts`.

`gpu_matrix_facts: {src: <json file on the controller>, overrides: {...}}` reads the file (the
`ansible_facts` subset of one OS, see tests/fixtures/facts/) and returns it, updated with the
overrides, so the roles' `ansible_facts[...]` lookups see that OS. Only for tests/gpu_matrix.
"""

from __future__ import annotations

import json

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase


class ActionModule(ActionBase):
    TRANSFERS_FILES = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        src = self._task.args.get("src")
        overrides = self._task.args.get("overrides") or {}
        if not src:
            raise AnsibleActionFail("gpu_matrix_facts needs src")
        try:
            with open(src, encoding="utf-8") as handle:
                facts = json.load(handle)
        except (OSError, ValueError) as exc:
            raise AnsibleActionFail(f"cannot read fixture facts {src}: {exc}") from exc
        facts.update(dict(overrides))
        result.update(changed=False, ansible_facts=facts)
        return result
