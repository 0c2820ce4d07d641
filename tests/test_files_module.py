"""solv_common's solv_files module (every file of a container in one call), run as Ansible runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from conftest import REPO

MODULE = REPO / "roles" / "solv_common" / "library" / "solv_files.py"
ME = str(os.getuid())


def _run(tmp_path, check=False, files=(), **args):
    """Run the module with `files` as the roles give them: [(path, content, mode, secret)]."""
    args = {**args, "files": [{"path": str(p), "mode": m, "owner": ME, "secret": s} for p, _, m, s in files],
            "contents": [c for _, c, _, _ in files]}
    path = tmp_path / "args.json"
    path.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": {**args, "_ansible_check_mode": check}}))
    out = subprocess.run([sys.executable, str(MODULE), str(path)], capture_output=True, text=True, check=False)
    return json.loads(out.stdout), out.stdout


def _file(path, content, mode="0644", secret=False):
    return (path, content, mode, secret)


def test_writes_directories_then_files_and_a_second_run_changes_nothing(tmp_path):
    cdir = tmp_path / "c"
    args = {"dirs": [{"path": str(cdir), "mode": "0750", "owner": ME, "group": str(os.getgid())}],
            "files": [_file(cdir / "config.yaml", "a: 1\n"), _file(cdir / "env", "KEY=s3cret\n", "0600", True)]}
    first, _ = _run(tmp_path, **args, set_owner=False)
    assert first["changed"] and first["changed_paths"] == [str(cdir), str(cdir / "config.yaml"), str(cdir / "env")]
    assert (cdir / "config.yaml").read_text() == "a: 1\n" and (cdir / "env").read_text() == "KEY=s3cret\n"
    assert (cdir.stat().st_mode & 0o777, (cdir / "env").stat().st_mode & 0o777) == (0o750, 0o600)
    again, _ = _run(tmp_path, **args)  # owners are the caller's own: set_owner changes nothing either
    assert again["changed"] is False and again["changed_paths"] == []
    assert not [p for p in cdir.iterdir() if p.name.startswith(".solv-")]  # no temporary file left


def test_check_mode_reports_each_difference_and_writes_nothing(tmp_path):
    (tmp_path / "config.yaml").write_text("a: 1\nb: 1\n")
    (tmp_path / "unit").write_text("same\n")
    (tmp_path / "unit").chmod(0o600)
    args = {"dirs": [{"path": str(tmp_path / "new"), "mode": "0755", "owner": ME, "group": str(os.getgid())}],
            "files": [_file(tmp_path / "config.yaml", "a: 2\nb: 1\n"), _file(tmp_path / "unit", "same\n"),
                      _file(tmp_path / "new" / "x", "x\n")]}
    result, _ = _run(tmp_path, check=True, **args)
    assert result["changed"] and len(result["diff"]) == 4
    assert result["diff"][0] == {"prepared": f"{tmp_path}/new/: directory created"}
    # (a file of one line would show as +********: the module masks its no_log values, the contents)
    assert result["diff"][1]["prepared"].splitlines()[2:] == ["@@ -1,2 +1,2 @@", "-a: 1", "+a: 2", " b: 1"]
    assert result["diff"][2] == {"prepared": f"{tmp_path}/unit: mode 0600 -> 0644"}
    assert result["diff"][3]["prepared"].startswith("--- /dev/null\n")  # its directory is to be created first
    assert (tmp_path / "config.yaml").read_text() == "a: 1\nb: 1\n" and not (tmp_path / "new").exists()
    assert (tmp_path / "unit").stat().st_mode & 0o777 == 0o600


def test_a_secret_file_content_is_never_returned(tmp_path):
    (tmp_path / "env").write_text("KEY=old-secret\n")
    result, stdout = _run(tmp_path, check=True, files=[_file(tmp_path / "env", "KEY=new-secret\n", "0600", True)])
    assert result["diff"] == [{"prepared": f"{tmp_path}/env: secret content changed (not shown)"}]
    assert "new-secret" not in stdout and "old-secret" not in stdout


def test_an_unknown_owner_fails_naming_the_file(tmp_path):
    args = {"files": [{"path": str(tmp_path / "x"), "mode": "0644", "owner": "no-such-user-solv"}], "contents": ["x\n"]}
    path = tmp_path / "args.json"
    path.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
    result = json.loads(subprocess.run([sys.executable, str(MODULE), str(path)], capture_output=True, text=True,
                                       check=False).stdout)
    assert result["failed"] and result["msg"] == f"{tmp_path}/x: no user 'no-such-user-solv' on this host"
    assert not (tmp_path / "x").exists()


def test_a_missing_directory_fails_naming_the_file(tmp_path):
    result, _ = _run(tmp_path, files=[_file(tmp_path / "nodir" / "x", "x\n")])
    assert result["failed"] and result["msg"] == f"{tmp_path}/nodir/x: its directory does not exist"


def test_no_content_reaches_the_hosts_log(tmp_path, monkeypatch):
    """A module logs its parameters to the host's journal; the contents (secret or not) must not be there."""
    import io

    from ansible.module_utils import basic

    import module_runner

    logged = []
    monkeypatch.setattr(basic.AnsibleModule, "log", lambda self, msg, log_args=None: logged.append(msg))
    args = {"files": [{"path": str(tmp_path / "env"), "mode": "0600", "owner": ME, "secret": True},
                      {"path": str(tmp_path / "c.yaml"), "mode": "0644", "owner": ME, "secret": False}],
            "contents": ["A='it''s a\nsecret'\n", "b: [1, 2]\nc: 3\n"], "set_owner": False}
    monkeypatch.setattr(basic, "_ANSIBLE_ARGS", json.dumps({"ANSIBLE_MODULE_ARGS": args}).encode())
    monkeypatch.setattr(basic, "_ANSIBLE_PROFILE", "legacy")
    monkeypatch.setattr(sys, "stdout", io.StringIO())
    try:
        module_runner.load(MODULE).main()
    except SystemExit:
        pass
    assert (tmp_path / "env").read_text() == "A='it''s a\nsecret'\n"
    assert len(logged) == 1 and "contents=NOT_LOGGING_PARAMETER" in logged[0]
    assert not [m for m in logged if "it''s" in m or "c: 3" in m]
