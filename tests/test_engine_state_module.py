"""container_engine's solv_engine_state module, run as Ansible runs it, with fake dpkg-query and systemctl."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess

from conftest import REPO
from module_runner import command

MODULE = REPO / "roles" / "container_engine" / "library" / "solv_engine_state.py"


def _fake(bin_dir, name, script):
    path = bin_dir / name
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(0o755)


def _run(tmp_path, tools, **args):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name, script in tools.items():
        _fake(bin_dir, name, script)
    path = tmp_path / "args.json"
    path.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": {"daemon_json": str(tmp_path / "daemon.json"), **args}}))
    env = {**os.environ, "PATH": str(bin_dir)}  # only the fakes (get_bin_path adds the sbin folders)
    out = subprocess.run(command(MODULE, path), capture_output=True, text=True, env=env, check=False)
    return json.loads(out.stdout)


# dpkg-query -W prints installed and known-but-removed packages; unknown names go to stderr, exit 1.
DPKG = ('for p in "$@"; do case "$p" in docker.io) echo "docker.io ii ";; containerd) echo "containerd rc ";; '
        '-*) ;; *) echo "dpkg-query: no packages found matching $p" >&2;; esac; done; exit 1\n')
SYSTEMCTL = 'printf "LoadState=loaded\\nUnitFileState=enabled\\nActiveState=active\\n"\n'


def test_installed_packages_daemon_json_and_service_in_one_call(tmp_path):
    (tmp_path / "daemon.json").write_text('{"log-driver": "local"}\n')
    (tmp_path / "solv_engine.fact").write_text("the role's local fact\n")
    r = _run(tmp_path, {"dpkg-query": DPKG, "systemctl": SYSTEMCTL}, pkg_family="apt",
             packages=["docker.io", "containerd", "docker-ce"], fact=str(tmp_path / "solv_engine.fact"))
    assert r["fact_sha1"] == hashlib.sha1(b"the role's local fact\n").hexdigest()
    assert r["changed"] is False
    assert r["installed"] == ["docker.io"]  # containerd only "rc" (removed, config left)
    assert r["daemon_json"] == {"exists": True, "content": '{"log-driver": "local"}\n'}
    assert r["service"] == {"load_state": "loaded", "unit_file_state": "enabled", "active_state": "active"}


def test_a_fresh_host_has_nothing(tmp_path):
    r = _run(tmp_path, {"systemctl": 'echo "LoadState=not-found"\n'}, pkg_family="dnf", packages=["docker-ce"],
             fact=str(tmp_path / "solv_engine.fact"))
    assert r["fact_sha1"] == ""  # no local fact yet
    assert r["installed"] == []  # no rpm on this host: nothing of that family is installed
    assert r["daemon_json"] == {"exists": False, "content": ""}
    assert r["service"] == {"load_state": "not-found", "unit_file_state": "", "active_state": ""}
