"""A play started before the CLI has read the inventory (solv_provision.held_play): it runs only once let go, with
what the CLI wrote meanwhile, and a play held back, or whose CLI is gone, reads nothing and exits at once."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import yaml

from solv_provision import held_play
from solv_provision.runner import Held


def _play(tmp_path, word_file):
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump(
        {"all": {"hosts": {"h1": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable},
                           "h2": {"ansible_connection": "local"}}}}))
    (tmp_path / "play.yml").write_text(
        "- hosts: all\n  gather_facts: false\n  tasks:\n"
        "    - ansible.builtin.debug:\n        msg: \"the word is {{ late_word }}\"\n")
    return Held(tmp_path / "private", playbook=tmp_path / "play.yml", inventories=[str(tmp_path / "hosts.yml")],
                limit=f"@{tmp_path / 'limit'}", args=f"-e @{word_file}", quiet=True)


def test_a_play_let_go_runs_with_the_variables_and_limit_written_after_it_started(tmp_path):
    (tmp_path / "private").mkdir()
    word_file = tmp_path / "late.json"
    with _play(tmp_path, word_file) as held:
        time.sleep(1)  # the child is past its imports, waiting
        word_file.write_text('{"late_word": "written late"}')
        (tmp_path / "limit").write_text("h1\n")
        rc, status = held.release_and_wait()
    assert (rc, status) == (0, "successful")
    out = held.run.stdout.read()
    assert "the word is written late" in out
    assert "h1" in out and "h2" not in out
    assert not (tmp_path / "private" / "hold").exists()


def test_a_failed_play_exits_with_ansible_playbooks_status(tmp_path):
    (tmp_path / "private").mkdir()
    (tmp_path / "late.json").write_text("{}")  # late_word undefined: the task fails
    (tmp_path / "limit").write_text("h1\n")
    with _play(tmp_path, tmp_path / "late.json") as held:
        rc, status = held.release_and_wait()
    assert (rc, status) == (2, "failed")
    assert "late_word" in held.run.stdout.read()


def test_a_play_held_back_reads_nothing_and_exits(tmp_path):
    """Its inventory, variables and limit files do not exist: ansible-playbook would fail on them."""
    (tmp_path / "private").mkdir()
    with _play(tmp_path, tmp_path / "no-such.json") as held:
        pass
    assert held.run.rc == held_play.HELD_BACK
    assert held.run.stdout.read() == ""
    assert not held.released


def _child(path):
    return subprocess.Popen([sys.executable, "-m", "solv_provision.held_play", "--version"],
                            env={**os.environ, held_play.HOLD: str(path)}, stdout=subprocess.PIPE, text=True)


def test_the_child_exits_when_the_cli_is_gone(tmp_path):
    """The CLI's end closes with the CLI however it ends: the child, mid-import or waiting, exits then."""
    hold = held_play.Hold(tmp_path)
    child = _child(hold.path)
    time.sleep(0.5)
    hold.close()
    assert child.wait(timeout=10) == held_play.HELD_BACK
    assert child.stdout.read() == ""
    late = _child(hold.path)  # started after the CLI held it back and removed the FIFO
    assert late.wait(timeout=10) == held_play.HELD_BACK


def test_the_child_runs_ansible_playbook_once_let_go(tmp_path):
    hold = held_play.Hold(tmp_path)
    child = _child(hold.path)
    hold.release()
    try:
        assert child.wait(timeout=30) == 0
        assert child.stdout.read().startswith("ansible-playbook [core ")
    finally:
        hold.close()
