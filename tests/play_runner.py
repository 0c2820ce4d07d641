"""Run a play with ansible-playbook as the roles' wiring tests do: this checkout's ansible.cfg and roles, the JSON
callback, Ansible's temporary folders under the test's own."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from conftest import REPO


def run_play(tmp_path: Path, inventory: dict, play: str,
             env: dict[str, str] | None = None) -> dict[str, dict[str, dict]]:
    """task name (without its role) => host => result, of one run of PLAY over INVENTORY (ENV added to the
    environment); the run must pass."""
    report = run_plays(tmp_path, inventory, play, env)
    return {name: hosts for tasks in report for name, hosts in tasks}


def run_plays(tmp_path: Path, inventory: dict, play: str,
              env: dict[str, str] | None = None) -> list[list[tuple[str, dict[str, dict]]]]:
    """Per play of PLAY, in order: its tasks as (task name without its role, host => result); the run must pass."""
    returncode, plays, output = play_outcome(tmp_path, inventory, play, env)
    assert returncode == 0, output[-6000:]
    return plays


def play_outcome(tmp_path: Path, inventory: dict, play: str, env: dict[str, str] | None = None,
                 args: tuple[str, ...] = ()) -> tuple[int, list[list[tuple[str, dict[str, dict]]]], str]:
    """ansible-playbook's exit code, the plays as run_plays gives them, and its whole output, of one run of PLAY over
    INVENTORY with ARGS (--check, -e ...), whether it passed or not."""
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump(inventory))
    (tmp_path / "play.yml").write_text(play)
    env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "ANSIBLE_ROLES_PATH": str(REPO / "roles"),
           "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json", "ANSIBLE_LOCAL_TEMP": str(tmp_path / "local"),
           "ANSIBLE_REMOTE_TEMP": str(tmp_path / "remote"), **(env or {})}
    playbook = shutil.which("ansible-playbook", path=str(Path(sys.executable).parent)) or "ansible-playbook"
    proc = subprocess.run([playbook, "-i", str(tmp_path / "hosts.yml"), *args, str(tmp_path / "play.yml")],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=240, check=False)
    start = proc.stdout.find("{")
    report = json.loads(proc.stdout[start:]) if start >= 0 else {"plays": []}
    plays = [[(t["task"]["name"].split(" : ", 1)[-1], t["hosts"]) for t in p["tasks"]] for p in report["plays"]]
    return proc.returncode, plays, proc.stdout + proc.stderr
