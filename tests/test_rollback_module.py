"""solv_common's solv_rollback module, run as Ansible runs it (a JSON args file), with a fake docker CLI."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import REPO

MODULE = REPO / "roles" / "solv_common" / "library" / "solv_rollback.py"


def _run(tmp_path, **args):
    docker = tmp_path / "docker"
    if not docker.exists():
        docker.write_text(f"#!/bin/sh\necho \"$@\" >> {tmp_path}/docker.log\n")
        docker.chmod(0o755)
    path = tmp_path / "args.json"
    path.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": {"docker": str(docker), "name": "solv-vllm-a",
                                                        "dir": str(tmp_path / "rollback" / "solv-vllm-a"), **args}}))
    out = subprocess.run([sys.executable, str(MODULE), str(path)], capture_output=True, text=True, check=False)
    return json.loads(out.stdout)


def test_save_then_restore_brings_back_files_and_image(tmp_path):
    unit, env = tmp_path / "solv-vllm-a.service", tmp_path / "env"
    unit.write_text("ExecStart=docker run img:1\n")
    env.write_text("KEY=old\n")
    env.chmod(0o600)
    saved = _run(tmp_path, action="save", paths=[str(unit), str(env), str(tmp_path / "absent")],
                 image_id="sha256:old", image_ref="img:1", spec="s1")
    assert saved["changed"] and saved["state"]["files"] == [str(unit), str(env)]
    assert (tmp_path / "rollback" / "solv-vllm-a" / "files" / "1").stat().st_mode & 0o777 == 0o600
    unit.write_text("ExecStart=docker run img:2\n")
    env.write_text("KEY=new\n")

    restored = _run(tmp_path, action="restore")
    assert restored["state"]["image_ref"] == "img:1"
    assert unit.read_text() == "ExecStart=docker run img:1\n" and env.read_text() == "KEY=old\n"
    assert (tmp_path / "docker.log").read_text().splitlines() == [
        "tag sha256:old solv-previous:solv-vllm-a",  # kept from prunes at save
        "tag solv-previous:solv-vllm-a img:1",  # the old reference points at the old image again
    ]


def test_restore_without_a_generation_changes_nothing(tmp_path):
    result = _run(tmp_path, action="restore")
    assert result["changed"] is False and result["state"] == {}
    assert not (tmp_path / "docker.log").exists()
