"""container_engine's local fact, run by ansible-playbook on this machine (connection local, read-only: its own
daemon.json, facts folder and fact cache): after a probe the role leaves solv_engine.fact, the next run's fact
gathering runs it and the role takes the engine's state from it without a probe; a fact for other settings, or an
old one from a fact cache, is not taken. And its merge of daemon.json, which refuses a file that is not a JSON object."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from play_runner import play_outcome, run_play

PLAY = """
- hosts: all
  gather_subset: [min]  # gathered unless a fact cache has the host (ansible.cfg: gathering = smart)
  fact_path: "{{ engine_facts_dir }}"
  tasks:
    - name: The engine's plan and preflight
      ansible.builtin.include_role:
        name: container_engine
        tasks_from: "{{ engine_step }}"
        rolespec_validate: false
        public: true  # its variables for the tasks below
      loop: [plan.yml, preflight.yml]
      loop_control: {loop_var: engine_step}
      vars: &engine_vars
        container_engine_source: distro
        container_engine_daemon_json: "{{ engine_daemon_json }}"
        __container_engine_fact_dir: "{{ engine_facts_dir }}"
    - name: Its local fact, where the gathering did not report it (as the role's main.yml)
      ansible.builtin.include_role: {name: container_engine, tasks_from: local_fact.yml, rolespec_validate: false}
      when: not __container_engine_fact_written | bool
      vars: *engine_vars
    - name: The engine's state as the role takes it
      ansible.builtin.debug:
        msg:
          probed: "{{ __container_engine_probe is not skipped }}"
          state: "{{ __container_engine_state | dict2items | selectattr('key', 'in', ['installed', 'daemon_json',
                                                                            'service']) | items2dict }}"
      vars: *engine_vars
"""


def _run(tmp_path: Path, daemon_json: Path, cache: Path | None = None) -> dict:
    host = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
            "engine_facts_dir": str(tmp_path / "facts.d"), "engine_daemon_json": str(daemon_json)}
    env = {"ANSIBLE_CACHE_PLUGIN": "jsonfile", "ANSIBLE_CACHE_PLUGIN_CONNECTION": str(cache)} if cache else {}
    report = run_play(tmp_path, {"all": {"hosts": {"engine-1": host}}}, PLAY, env=env)
    written = report["Its local fact, where the gathering did not report it (as the role's main.yml)"]["engine-1"]
    return {**report["The engine's state as the role takes it"]["engine-1"]["msg"], "wrote": not written.get("skipped")}


@pytest.mark.skipif(os.geteuid() != 0, reason="the role writes the fact as root's")
def test_a_rerun_takes_the_engine_from_the_fact_gathering_and_never_a_stale_or_foreign_fact(tmp_path):
    daemon_json = tmp_path / "daemon.json"
    daemon_json.write_text('{"log-driver": "local"}\n')
    first = _run(tmp_path, daemon_json)
    assert first["probed"] and first["wrote"] and (tmp_path / "facts.d" / "solv_engine.fact").is_file()

    daemon_json.write_text('{"log-driver": "json-file"}\n')
    again = _run(tmp_path, daemon_json)
    assert not again["probed"] and not again["wrote"]  # the fact gathering read it: no call of its own
    # ... as the host is at this run's gathering, the same as a probe of it reads
    now = {"exists": True, "content": '{"log-driver": "json-file"}\n'}
    assert again["state"] == {**first["state"], "daemon_json": now}

    other = tmp_path / "other.json"  # other settings: the fact on the host is not the script the role would write
    other.write_text("{}\n")
    foreign = _run(tmp_path, other)
    assert foreign["probed"] and foreign["wrote"]
    assert not _run(tmp_path, other)["probed"]  # rewritten for them

    cache = tmp_path / "fact-cache"  # a fact cache keeps what an earlier gathering read
    assert not _run(tmp_path, other, cache)["probed"]
    cached = next(cache.iterdir())  # ansible-core 2.19's jsonfile cache: the facts as a JSON string in __payload__
    entry = json.loads(cached.read_text())
    facts = json.loads(entry["__payload__"])
    facts["ansible_local"]["solv_engine"]["time"] -= 3600  # gathered an hour ago
    cached.write_text(json.dumps({**entry, "__payload__": json.dumps(facts)}))
    stale = _run(tmp_path, other, cache)
    assert stale["probed"] and not stale["wrote"]  # probed, and the fact on the host is left as it is


CONFIGURE = """
- hosts: all
  gather_facts: false
  tasks:
    - name: daemon.json merged as the role's configure step does, the host's file as given
      ansible.builtin.include_role:
        name: container_engine
        tasks_from: configure.yml
        rolespec_validate: false
      vars:
        container_engine_daemon_json: /etc/docker/daemon.json
        __container_engine_state: {daemon_json: {exists: true, content: "{{ engine_daemon_text }}"}}
        __container_engine_site_registry: ""
        container_engine_daemon_options: {}
        container_engine_restart_on_config_change: false  # dockerd on this machine is not restarted
"""


@pytest.mark.parametrize(("text", "merged"), [
    ('{"log-driver": "journald", "runtimes": {"nvidia": {"path": "nvidia-container-runtime"}}}',
     {"log-driver": "json-file", "live-restore": True, "runtimes": {"nvidia": {"path": "nvidia-container-runtime"}},
      "log-opts": {"max-size": "100m", "max-file": "5"}}),
    ("", {"log-driver": "json-file", "live-restore": True, "log-opts": {"max-size": "100m", "max-file": "5"}}),
    ("not json {", None),
    ('["a JSON list"]', None),
])
def test_daemon_json_is_merged_where_it_is_an_object_and_never_replaced_where_it_is_not(tmp_path, text, merged):
    """Other writers' keys stay (nvidia-ctk's runtimes); a file that is not a JSON object is refused, not replaced
    (check mode: nothing is written)."""
    host = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable, "engine_daemon_text": text}
    returncode, plays, output = play_outcome(tmp_path, {"all": {"hosts": {"engine-1": host}}}, CONFIGURE,
                                             args=("--check",))
    tasks = {name: hosts["engine-1"] for tasks in plays for name, hosts in tasks}
    if merged is None:
        assert returncode != 0
        assert "is not a valid JSON object, so it cannot be merged" in tasks[
            "Configure | Refuse to replace an unreadable daemon.json"]["msg"]
    else:
        assert returncode == 0, output[-2000:]
        facts = tasks["Configure | The current and the merged daemon.json"]["ansible_facts"]
        assert facts["__container_engine_daemon_wanted"] == merged
