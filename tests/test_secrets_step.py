"""solv_common's secrets step run by ansible-playbook on two hosts of this machine (connection local, a folder each
for a root): what a re-run of unchanged hosts calls, and that the hosts sharing a secret agree on it."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from play_runner import run_play, run_plays

PLAY = """
- hosts: gateway
  gather_facts: false
  tasks:
    - name: The secrets step
      ansible.builtin.include_role: {name: solv_common, tasks_from: secrets.yml, rolespec_validate: false}
      vars:
        solv_secrets:
          - {name: litellm_master_key}
          - {name: own_key, value: "", length: 20}
    - name: What each host holds
      ansible.builtin.debug:
        msg: "{{ solv_secret_values.litellm_master_key | hash('sha1') }} {{ solv_secret_values.own_key | hash('sha1') }}"
"""


def _run(tmp_path: Path, play: str = PLAY) -> dict[str, dict[str, dict]]:
    """task name => host => result, of one run of PLAY on gw-1 and gw-2."""
    hosts = {name: {"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
                    "solv_root_dir": str(tmp_path / name), "solv_systemd_dir": str(tmp_path / name / "systemd"),
                    "solv_docker_bin": str(tmp_path / "no-docker")} for name in ("gw-1", "gw-2")}
    return run_play(tmp_path, {"all": {"children": {"gateway": {"hosts": hosts}}}}, play)


def test_a_rerun_of_unchanged_hosts_calls_nothing_for_secrets_and_the_shared_one_is_the_owner_s(tmp_path):
    """The first run creates each host's own secret and the shared one on its owner (gw-1, the first gateway
    host). A re-run reads each host once (its reading brings the files it keeps) and calls solv_secret for none:
    gw-2 takes the shared secret from what gw-1's reading brought in the same step."""
    first = _run(tmp_path)
    read = first["Secrets: read or generate once on the owning host"]
    assert read["gw-1"]["changed"] and read["gw-2"]["changed"]  # created: gw-1 both, gw-2 its own
    held = {host: r["msg"] for host, r in first["What each host holds"].items()}
    assert held["gw-1"].split()[0] == held["gw-2"].split()[0] and held["gw-1"] != held["gw-2"]
    assert sorted(os.listdir(tmp_path / "gw-1" / "secrets")) == ["litellm_master_key", "own_key"]
    assert os.listdir(tmp_path / "gw-2" / "secrets") == ["own_key"]

    again = _run(tmp_path)
    # Every value known once the hosts were read: the step ends there, no solv_secret call (nor a task) on either host.
    assert "Secrets: read or generate once on the owning host" not in again
    assert set(again["Host: read the containers, units, images, paths and secret files once"]) == {"gw-1", "gw-2"}
    assert {host: r["msg"] for host, r in again["What each host holds"].items()} == held


# PLAY's secrets step with the shared secret only, then what the roles after it would find.
SHARED_ONLY = PLAY.split("        solv_secrets:")[0] + """        solv_secrets: [{name: litellm_master_key}]
    - name: What the roles after it find
      ansible.builtin.debug:
        msg: "{{ solv_host_reading is defined and solv_host_reading is not none }}"
"""


def test_a_host_that_keeps_none_of_the_step_s_secrets_is_read_in_the_step_for_the_containers_after_it(tmp_path):
    """gw-2 keeps no secret of this step (the shared one is gw-1's), but the step reads it where it plans a read:
    the role's containers planned next find the host's reading and take no remote call of their own."""
    result = _run(tmp_path, SHARED_ONLY)
    assert set(result["Host: read the containers, units, images, paths and secret files once"]) == {"gw-1", "gw-2"}
    assert {host: r["msg"] for host, r in result["What the roles after it find"].items()} == {"gw-1": True, "gw-2": True}
    assert os.listdir(tmp_path / "gw-1" / "secrets") == ["litellm_master_key"]
    assert not (tmp_path / "gw-2" / "secrets").exists()


TWO_PLAYS = """
- hosts: gateway
  gather_facts: false
  roles: [solv_common]
- hosts: gateway
  gather_facts: false
  roles: [solv_common]
"""


def test_the_site_wide_settings_are_checked_in_the_first_play_of_a_run_only(tmp_path):
    """solv_common runs in every play of a service role; the plays after the first see the same values, and its
    check there would be a task per host for nothing: it ends before it."""
    hosts = {"gw-1": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}}
    plays = run_plays(tmp_path, {"all": {"children": {"gateway": {"hosts": hosts}}}}, TWO_PLAYS)
    checks = [[name for name, _ in tasks if name == "Site-wide settings are usable"] for tasks in plays]
    assert checks == [["Site-wide settings are usable"], []]
