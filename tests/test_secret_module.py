"""solv_common's solv_secret module, run as Ansible runs it (a JSON args file): generate once, read, all files."""

from __future__ import annotations

import json
import subprocess

from conftest import REPO
from module_runner import command

MODULE = REPO / "roles" / "solv_common" / "library" / "solv_secret.py"


def _run(tmp_path, **args):
    path = tmp_path / "args.json"
    path.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": {"dir": str(tmp_path / "secrets"), **args}}))
    out = subprocess.run(command(MODULE, path), capture_output=True, text=True, check=False)
    return json.loads(out.stdout)


def test_generated_once_then_read_and_all_returns_every_file_of_the_host(tmp_path):
    first = _run(tmp_path, secrets=[{"name": "a_key", "prefix": "sk-", "length": 20}])
    assert first["changed"] and first["generated"] == ["a_key"] and first["files"] == {}
    key = first["values"]["a_key"]
    assert key.startswith("sk-") and len(key) == 23
    assert (tmp_path / "secrets" / "a_key").stat().st_mode & 0o777 == 0o600
    (tmp_path / "secrets" / "other").write_text("other-value\n")
    (tmp_path / "secrets" / "empty").write_text("")
    (tmp_path / "secrets" / "half.rotating").write_text("x")
    (tmp_path / "secrets" / "sub").mkdir()
    again = _run(tmp_path, secrets=[{"name": "a_key", "prefix": "sk-", "length": 20}, {"name": "new_one"}], all=True)
    assert again["values"]["a_key"] == key and again["generated"] == ["new_one"]
    # Every usable secret file, the one just generated included; no empty, temporary or directory entry.
    assert again["files"] == {"a_key": key, "other": "other-value", "new_one": again["values"]["new_one"]}


def test_check_mode_writes_nothing_and_reports_its_throwaway_values(tmp_path):
    run = _run(tmp_path, secrets=[{"name": "b_key"}], all=True, _ansible_check_mode=True)
    assert run["changed"] and run["files"] == {"b_key": run["values"]["b_key"]}
    assert not (tmp_path / "secrets").exists()
