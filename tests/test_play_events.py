"""The events of solv-provision's plays (solv_provision.play_events, plugins/callback/solv_events.py): each task
start, host start and host result reaches the CLI as ansible-runner's events did, no_log results censored, kept
in the run's artifacts, with Ansible's default output beside them and none of ansible-runner's own event files."""

from __future__ import annotations

import json
import os
import sys
import threading

import pytest
import yaml

from solv_provision import play_events
from solv_provision.runner import Held


def _run(tmp_path, tasks):
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump(
        {"all": {"hosts": {"h1": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}}}}))
    (tmp_path / "play.yml").write_text(yaml.safe_dump([{"hosts": "all", "gather_facts": False, "tasks": tasks}]))
    private = tmp_path / "private"
    private.mkdir()
    events = []
    with Held(private, playbook=tmp_path / "play.yml", inventories=[str(tmp_path / "hosts.yml")], limit=None,
              args="", on_event=events.append, quiet=True) as held:
        rc, _ = held.release_and_wait()
    return rc, events, held, private


def test_the_cli_reads_each_task_and_result_as_ansible_runner_gave_them(tmp_path):
    rc, events, held, private = _run(tmp_path, [
        {"name": "say", "ansible.builtin.debug": {"msg": "hello"}},
        {"name": "changed", "ansible.builtin.command": "true", "changed_when": True},
        {"name": "secret", "ansible.builtin.set_fact": {"token": "s3cr3t-value"}, "no_log": True},
        {"name": "not here", "ansible.builtin.debug": {"msg": "no"}, "when": False},
        {"name": "fails", "ansible.builtin.fail": {"msg": "it broke"}, "ignore_errors": True},
    ])
    assert rc == 0
    seen = [(e["event"], e["event_data"]["task"], e["event_data"].get("host")) for e in events]
    expected = []
    for task, result in [("say", "runner_on_ok"), ("changed", "runner_on_ok"), ("secret", "runner_on_ok"),
                         ("not here", "runner_on_skipped"), ("fails", "runner_on_failed")]:
        expected += [("playbook_on_task_start", task, None), ("runner_on_start", task, "h1"), (result, task, "h1")]
    assert seen == expected
    results = {e["event_data"]["task"]: e["event_data"] for e in events if e["event"].startswith("runner_on_")
               and e["event"] != "runner_on_start"}
    assert results["say"]["res"]["msg"] == "hello" and results["say"]["task_action"] == "ansible.builtin.debug"
    assert results["changed"]["res"]["changed"] is True
    assert list(results["secret"]["res"]) == ["censored"]
    assert "res" not in results["not here"]
    assert results["fails"]["ignore_errors"] is True and results["fails"]["res"]["msg"] == "it broke"
    kept = (private / "artifacts" / "events.jsonl").read_text()
    assert [json.loads(line) for line in kept.splitlines()] == events
    assert "s3cr3t-value" not in kept
    # Ansible's default output, without ansible-runner's encoded events or event files; the FIFO removed.
    out = held.run.stdout.read()
    assert "TASK [say]" in out and "ok: [h1]" in out and "\x1b[K" not in out
    assert list(private.glob("artifacts/*/job_events/*")) == []
    assert not (private / "events").exists()


def test_close_reads_to_the_end_through_a_cut_line_and_raises_the_handlers_error(tmp_path):
    """A play stopped mid-line leaves half a line; a handler that fails does not stop the reading (a full pipe
    would block the play): close() hands over what came before, then raises."""
    handled = []

    def handler(event):
        handled.append(event["n"])
        if event["n"] == 2:
            raise RuntimeError("handler broke")

    events = play_events.Events(tmp_path, handler, tmp_path / "artifacts" / "events.jsonl")
    writer = os.open(events.path, os.O_WRONLY)
    lines = b"".join(json.dumps({"n": n}).encode() + b"\n" for n in range(1, 2000))  # more than a pipe holds
    done = threading.Event()
    threading.Thread(target=lambda: (os.write(writer, lines + b'{"n": 20'), done.set()), daemon=True).start()
    assert done.wait(10)
    os.close(writer)
    with pytest.raises(RuntimeError, match="handler broke"):
        events.close()
    assert handled == [1, 2]
    assert len((tmp_path / "artifacts" / "events.jsonl").read_text().splitlines()) == 2000
    assert not events.path.exists()
