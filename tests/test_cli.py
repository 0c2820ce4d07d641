"""The CLI as an operator uses it: help, exit codes, live runs through ansible-runner, scaffolding."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from conftest import INVENTORIES, REPO


def test_help_does_not_load_ansible():
    """`--help` must stay instant: the CLI module may not import Ansible, ansible-runner or rich."""
    code = ("import sys, solv_provision.cli; "
            "print([m for m in ('ansible', 'ansible_runner', 'rich') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_every_verb_has_help(cli):
    for verb in (["apply"], ["check"], ["validate"], ["render"], ["inventory", "init"], ["secrets", "show"], ["lab"]):
        result = cli(*verb, "--help")
        assert result.exit_code == 0, (verb, result.output)
        assert "Usage:" in result.output


def test_play_verbs_share_options(cli):
    for verb in ("apply", "check"):
        text = cli(verb, "--help").output
        for option in ("--inventory", "--limit", "--tags", "--extra-vars", "--forks", "--verbose"):
            assert option in text, (verb, option)


def test_inventory_init_scaffolds_a_valid_inventory(cli, tmp_path):
    target = tmp_path / "site"
    result = cli("inventory", "init", target)
    assert result.exit_code == 0, result.output
    from solv_provision import specs

    text = (target / "group_vars" / "inference.yml").read_text()
    options = specs.role_specs()["vllm"].options
    assert options, "the vllm role declares its inputs"
    for name in options:  # every input is listed, commented out with its default
        assert f"# {name}:" in text, name
    assert cli("validate", "-i", target).exit_code == 0
    again = cli("inventory", "init", target)
    assert again.exit_code == 2 and "--force" in again.output


def test_validate_lists_every_host_of_a_small_inventory(cli):
    result = cli("validate", "-i", REPO / "inventories" / "example")
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "inventory ok: 3 host(s), inference: gpu-a, gpu-b, gateway: gw-1, monitoring: gw-1"


def _generated_inventory(tmp_path, inference: int):
    """A valid inventory with INFERENCE GPU hosts (one small model each) and two gateways."""
    inv = tmp_path / "big"
    (inv / "group_vars").mkdir(parents=True)
    gpus = {f"gpu-{i:03d}": {"ansible_host": f"10.1.{i // 250}.{i % 250 + 1}"} for i in range(1, inference + 1)}
    gateways = {f"gw-{i}": {"ansible_host": f"10.0.0.{i}"} for i in (1, 2)}
    (inv / "hosts.yml").write_text(yaml.safe_dump(
        {"all": {"children": {"inference": {"hosts": gpus}, "gateway": {"hosts": gateways}}}}))
    (inv / "group_vars" / "inference.yml").write_text(yaml.safe_dump(
        {"vllm_models": [{"name": "qwen-7b", "model": "Qwen/Qwen2.5-7B-Instruct", "gpus": [0], "port": 8001}]}))
    return inv


def test_validate_summarises_a_large_inventory(cli, tmp_path):
    result = cli("validate", "-i", _generated_inventory(tmp_path, inference=60))
    assert result.exit_code == 0, result.output
    assert result.output.strip() == ("inventory ok: 62 host(s); inference: 60 (gpu-001, gpu-002, gpu-003, gpu-004, "
                                     "gpu-005, … and 55 more); gateway: 2 (gw-1, gw-2)")


def test_inventory_summary_stays_one_short_line_at_1000_hosts():
    from solv_provision.cli import inventory_summary

    gpus = [f"gpu-{i:04d}" for i in range(1, 999)]
    line = inventory_summary(1000, {"inference": gpus, "gateway": ["gw-1", "gw-2"]})
    assert line == ("inventory ok: 1000 host(s); inference: 998 (gpu-0001, gpu-0002, gpu-0003, gpu-0004, gpu-0005, "
                    "… and 993 more); gateway: 2 (gw-1, gw-2)")


def _local_inventory(tmp_path):
    """A valid SOLV inventory whose hosts are reached with the local connection (no SSH)."""
    inv = tmp_path / "inv"
    (inv / "host_vars").mkdir(parents=True, exist_ok=True)
    hosts = yaml.safe_load((INVENTORIES / "good" / "hosts.yml").read_text())
    for group in hosts["all"]["children"].values():
        for name in group["hosts"]:  # ansible_host (the hosts' address in the configs) stays; local ignores it
            group["hosts"][name].update(ansible_connection="local", ansible_python_interpreter=sys.executable)
    (inv / "hosts.yml").write_text(yaml.safe_dump(hosts))
    (inv / "host_vars" / "gpu-1.yml").write_text((INVENTORIES / "good" / "host_vars" / "gpu-1.yml").read_text())
    return inv


def _playbook(tmp_path, body):
    book = tmp_path / "play.yml"
    book.write_text(textwrap.dedent(body))
    return book


def test_apply_reports_changes_and_exit_0(cli, tmp_path):
    marker = tmp_path / "marker"
    book = _playbook(tmp_path, f"""
        - hosts: all
          gather_facts: false
          tasks:
            - name: Write a marker
              ansible.builtin.copy:
                content: "{{{{ inventory_hostname }}}}\\n"
                dest: "{marker}-{{{{ inventory_hostname }}}}"
                mode: "0644"
        """)
    result = cli("apply", "-i", _local_inventory(tmp_path), "--playbook", book)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "marker-gpu-1").read_text() == "gpu-1\n"
    assert "changed gpu-1: Write a marker" in result.output
    assert "artifacts:" in result.output
    # Idempotent second run: nothing changed, and check mode says "no drift" (exit 0).
    again = cli("check", "-i", _local_inventory(tmp_path), "--playbook", book)
    assert again.exit_code == 0, again.output
    assert "NO DRIFT" in again.output


def test_check_reports_drift_with_diff_and_changes_nothing(cli, tmp_path):
    target = tmp_path / "file.txt"
    target.write_text("old\n")
    book = _playbook(tmp_path, f"""
        - hosts: gw-1
          gather_facts: false
          tasks:
            - name: Manage file
              ansible.builtin.copy:
                content: "new\\n"
                dest: "{target}"
                mode: "0644"
        """)
    result = cli("check", "-i", _local_inventory(tmp_path), "--playbook", book)
    assert result.exit_code == 3, result.output
    assert "would change gw-1: Manage file" in result.output
    assert "+new" in result.output and "-old" in result.output
    assert target.read_text() == "old\n"


def test_check_shows_the_diff_of_each_file_a_loop_would_change(cli, tmp_path):
    (tmp_path / "a.txt").write_text("a by hand\n")
    (tmp_path / "b.txt").write_text("b\n")
    book = _playbook(tmp_path, f"""
        - hosts: gw-1
          gather_facts: false
          tasks:
            - name: Manage files
              ansible.builtin.copy:
                content: "{{{{ item }}}}\\n"
                dest: "{tmp_path}/{{{{ item }}}}.txt"
                mode: "0644"
              loop: [a, b]
        """)
    result = cli("check", "-i", _local_inventory(tmp_path), "--playbook", book)
    assert result.exit_code == 3, result.output
    assert f"{tmp_path}/a.txt" in result.output and "-a by hand" in result.output and "+a" in result.output
    assert f"{tmp_path}/b.txt" not in result.output  # unchanged: no diff


def test_failed_host_gives_exit_1_and_names_host_and_task(cli, tmp_path):
    book = _playbook(tmp_path, """
        - hosts: all
          gather_facts: false
          tasks:
            - name: Break on the GPU host
              ansible.builtin.fail:
                msg: driver not loaded
              when: inventory_hostname == 'gpu-1'
        """)
    result = cli("apply", "-i", _local_inventory(tmp_path), "--playbook", book)
    assert result.exit_code == 1, result.output
    assert "FAILED: gpu-1 at task 'Break on the GPU host': driver not loaded" in result.output


def test_the_summary_keeps_a_long_failure_whole_with_its_last_log_lines(cli, tmp_path):
    """A rollback's message ends with the container's last log lines: the summary shows them, line by line."""
    book = _playbook(tmp_path, """
        - hosts: gpu-1
          gather_facts: false
          tasks:
            - name: Fail like a rolled-back gate
              ansible.builtin.fail:
                msg: "{{ 'solv-vllm-a on gpu-1: ROLLED BACK. Last log lines:\\n' ~ lines | join('\\n') }}"
              vars:
                lines: "{{ range(40) | map('string') | map('regex_replace', '^', 'log line ') | list
                           + ['RuntimeError: Engine core initialization failed'] }}"
        """)
    result = cli("apply", "-i", _local_inventory(tmp_path), "--playbook", book)
    assert result.exit_code == 1, result.output
    summary = result.output.split("FAILED: gpu-1 at task 'Fail like a rolled-back gate': ", 1)[1]
    assert summary.splitlines()[0] == "solv-vllm-a on gpu-1: ROLLED BACK. Last log lines:"
    assert "log line 39\nRuntimeError: Engine core initialization failed" in summary


def test_a_failing_secret_task_says_why_and_shows_no_value(cli, tmp_path):
    """solv_common's secrets.yml reads secrets with no_log; when that fails, the summary says why (no value)."""
    secrets_dir = tmp_path / "root" / "secrets"
    secrets_dir.mkdir(parents=True)
    (secrets_dir / "searxng_secret_key").write_text("")
    (secrets_dir / "other_secret").write_text("do-not-print-this-value")
    book = _playbook(tmp_path, f"""
        - hosts: gw-1
          gather_facts: false
          tasks:
            - name: Read the secrets
              ansible.builtin.include_role:
                name: solv_common
                tasks_from: secrets.yml
              vars:
                solv_root_dir: {tmp_path / "root"}
                solv_secrets: [{{name: other_secret, value: ''}}, {{name: searxng_secret_key, value: ''}}]
        """)
    result = cli("apply", "-i", _local_inventory(tmp_path), "--playbook", book, "-vvv")
    assert result.exit_code == 1, result.output
    assert f"gw-1: {secrets_dir}/searxng_secret_key exists but is empty" in result.output, result.output[-3000:]
    assert "do-not-print-this-value" not in result.output


def test_unreachable_host_gives_exit_1(cli, tmp_path):
    inv = _unreachable_gw1(tmp_path)
    book = _playbook(tmp_path, """
        - hosts: all
          gather_facts: false
          tasks:
            - name: Ping
              ansible.builtin.ping:
        """)
    result = cli("apply", "-i", inv, "--playbook", book)
    assert result.exit_code == 1, result.output
    assert "UNREACHABLE gw-1" in result.output
    assert "UNREACHABLE: gw-1 at task 'Ping'" in result.output


def _unreachable_gw1(tmp_path):
    """The local inventory with gw-1 behind a closed SSH port."""
    inv = _local_inventory(tmp_path)
    hosts = yaml.safe_load((inv / "hosts.yml").read_text())
    hosts["all"]["children"]["gateway"]["hosts"]["gw-1"] = {
        "ansible_host": "127.0.0.1", "ansible_port": 1, "ansible_connection": "ssh",
        "ansible_ssh_common_args": "-o ConnectTimeout=3"}
    (inv / "hosts.yml").write_text(yaml.safe_dump(hosts))
    return inv


@pytest.mark.parametrize(("kind", "word"), [("runner_on_unreachable", "UNREACHABLE"), ("runner_on_failed", "FAILED")])
def test_reason_line_says_unreachable_or_failed(capsys, kind, word):
    """The one-line reason names the first failing host, and says UNREACHABLE when it could not be reached."""
    from solv_provision.progress import Progress
    from solv_provision.runner import RunResult, handle_event

    result = RunResult(mode="apply", rc=4, artifacts=Path("artifacts"))
    progress = Progress(result)
    message = "Failed to connect to the host via ssh: [Errno 111] Connection refused [/tmp]"
    events = [
        {"event": "playbook_on_task_start", "event_data": {"task": "Ping"}},
        {"event": "runner_on_start", "event_data": {"host": "gw-1", "task": "Ping"}},
        {"event": "runner_on_ok", "event_data": {"host": "gpu-1", "task": "Ping", "res": {}}},
        {"event": kind, "event_data": {"host": "gw-1", "task": "Ping", "res": {"msg": message}}},
    ]
    with progress:
        for event in events:
            handle_event(event, result, progress)
    progress.summary()
    reason = capsys.readouterr().err.strip().splitlines()[-1]
    assert result.exit_code == 1
    # Brackets in a message are text, not markup.
    assert reason == f"{word}: gw-1 at task 'Ping': {message}"


def test_secrets_show_names_an_unreachable_host_and_a_missing_secret(cli, tmp_path):
    inv = _unreachable_gw1(tmp_path)
    result = cli("secrets", "show", "litellm_master_key", "-i", inv, "--host", "gw-1")
    assert result.exit_code == 1, result.output
    assert "host gw-1: UNREACHABLE" in result.output
    missing = cli("secrets", "show", "no_such_secret", "-i", inv, "--host", "gpu-1")  # local: nothing stored
    assert missing.exit_code == 1, missing.output
    assert "host gpu-1: no secret named no_such_secret" in missing.output
