"""solv-provision's stdout callback: Ansible's default output, and the events solv-provision reads (a task started,
a host started it, a host's result) as JSON lines on the FIFO that SOLV_EVENTS names (solv_provision/play_events.py).
solv_provision.held_play makes it the stdout callback where SOLV_EVENTS is set; plain ansible-playbook never loads it.
"""

from __future__ import annotations

DOCUMENTATION = """
name: solv_events
type: stdout
short_description: Ansible's default output, and solv-provision's events as JSON lines on a FIFO
description:
  - The default callback's output. Each task start, host start and host result is also written, as one JSON line
    (event, event_data with host, task, task_action, role, res, ignore_errors, created), to the FIFO that the
    environment variable SOLV_EVENTS names. A result of a no_log task is censored as ansible-runner censors it.
  - Set by solv_provision.held_play for solv-provision's own plays (solv_provision/play_events.py).
extends_documentation_fragment:
  - default_callback
  - result_format_callback
"""

import datetime
import json
import os

from ansible.plugins.callback.default import CallbackModule as DefaultCallback

CENSORED = "the output has been hidden due to the fact that 'no_log: true' was specified for this result"


def _censored(res):
    """The result as solv-provision may keep it: a no_log result (or loop item) censored, the host's environment
    left out of gathered facts."""
    if res.get("_ansible_no_log"):
        return {"censored": CENSORED}
    res = dict(res)
    if isinstance(res.get("results"), list):
        res["results"] = [{"censored": CENSORED} if isinstance(item, dict) and item.get("_ansible_no_log") else item
                          for item in res["results"]]
    if isinstance(res.get("ansible_facts"), dict) and "ansible_env" in res["ansible_facts"]:
        res["ansible_facts"] = {k: v for k, v in res["ansible_facts"].items() if k != "ansible_env"}
    return res


class CallbackModule(DefaultCallback):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "stdout"
    CALLBACK_NAME = "solv_events"

    def __init__(self):
        super().__init__()
        # Non-blocking open: ENXIO at once if solv-provision no longer holds its end; then blocking writes.
        fd = os.open(os.environ["SOLV_EVENTS"], os.O_WRONLY | os.O_NONBLOCK)
        os.set_blocking(fd, True)
        self._events = os.fdopen(fd, "w", encoding="utf-8")

    def _emit(self, event, task, **data):
        data.update(task=task.name or task.action, task_action=task.action,
                    created=datetime.datetime.now(datetime.timezone.utc).isoformat())
        role = getattr(task, "_role", None)
        if role is not None:
            data["role"] = role.get_name(include_role_fqcn=False)
        self._events.write(json.dumps({"event": event, "event_data": data}, default=str) + "\n")
        self._events.flush()

    def _result(self, event, result, **data):
        self._emit(event, result.task, host=result.host.get_name(), res=_censored(result.result), **data)

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._emit("playbook_on_task_start", task)
        super().v2_playbook_on_task_start(task, is_conditional)

    def v2_playbook_on_handler_task_start(self, task):
        self._emit("playbook_on_task_start", task)
        super().v2_playbook_on_handler_task_start(task)

    def v2_runner_on_start(self, host, task):
        self._emit("runner_on_start", task, host=host.get_name())
        super().v2_runner_on_start(host, task)

    def v2_runner_on_ok(self, result):
        self._result("runner_on_ok", result)
        super().v2_runner_on_ok(result)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._result("runner_on_failed", result, ignore_errors=ignore_errors)
        super().v2_runner_on_failed(result, ignore_errors)

    def v2_runner_on_skipped(self, result):
        self._emit("runner_on_skipped", result.task, host=result.host.get_name())  # no result, as ansible-runner's
        super().v2_runner_on_skipped(result)

    def v2_runner_on_unreachable(self, result):
        self._result("runner_on_unreachable", result)
        super().v2_runner_on_unreachable(result)
