"""Usage errors exit 2 before anything runs or any host is contacted, with one line: what is wrong, what is allowed."""

from __future__ import annotations

import pytest

from conftest import REPO

EXAMPLE = REPO / "inventories" / "example"
PLAYBOOKS = sorted(p.name for p in (REPO / "playbooks").glob("*.yml")
                   if p.name not in ("render.yml", "status.yml", "backup.yml", "restore.yml"))


def _nothing_ran(state) -> bool:
    """No run folder left: a play started beside the checks (held, solv_provision.held_play) was held back."""
    runs = state / "solv-provision" / "runs"
    return not runs.exists() or not any(runs.iterdir())


def _error_line(result) -> str:
    lines = [line for line in result.output.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, result.output
    return lines[0]


@pytest.mark.parametrize("verb", ["apply", "check"])
def test_unknown_playbook_lists_the_available_ones(cli, _isolated_state, verb):
    result = cli(verb, "--playbook", "nosuch.yml", "-i", EXAMPLE)
    assert result.exit_code == 2, result.output
    assert "site.yml" in PLAYBOOKS
    assert _error_line(result).startswith(f"error: no playbook nosuch.yml; available: {', '.join(PLAYBOOKS)}")
    assert _nothing_ran(_isolated_state)


def test_render_playbook_is_not_for_apply(cli, _isolated_state):
    result = cli("apply", "--playbook", "render.yml", "-i", EXAMPLE)
    assert result.exit_code == 2, result.output
    assert "render.yml is run by `solv-provision render`" in _error_line(result)
    assert _nothing_ran(_isolated_state)


@pytest.mark.parametrize("limit", ["gpu-z", "gw-1,gpu-z"])
def test_limit_that_matches_nothing_is_refused(cli, _isolated_state, limit):
    result = cli("check", "-i", EXAMPLE, "--limit", limit)
    assert result.exit_code == 2, result.output
    line = _error_line(result)
    assert f"--limit {limit}: gpu-z matches no host or group" in line
    # The inventory's own groups (not the computed solv_monitored, which Ansible does not know).
    assert "groups: all, gateway, inference, monitoring, ungrouped; hosts: gpu-a, gpu-b, gw-1" in line
    assert _nothing_ran(_isolated_state)


def test_missing_extra_vars_file_is_refused(cli, _isolated_state, tmp_path):
    result = cli("apply", "-i", EXAMPLE, "-e", f"@{tmp_path / 'nosuch.yml'}")
    assert result.exit_code == 2, result.output
    assert f"no such file {tmp_path / 'nosuch.yml'}" in _error_line(result)
    assert _nothing_ran(_isolated_state)


HOSTS = ["gpu-a", "gpu-b", "gw-1"]
GROUPS = ["all", "ungrouped", "inference", "gateway"]


@pytest.mark.parametrize("limit", ["gateway", "gw-1", "gpu-*", "~gpu-[ab]", "inference[0]", "inference[0:1]",
                                   "all:!gpu-a", "gateway:&all", "gpu-a,gw-1", "localhost", "@{retry}"])
def test_limit_patterns_ansible_accepts_pass(limit, tmp_path):
    from solv_provision.runner import check_limit

    retry = tmp_path / "site.retry"
    retry.write_text("gw-1\n")
    check_limit(limit.format(retry=retry), hosts=HOSTS, groups=GROUPS)


@pytest.mark.parametrize("limit", ["gpu-z", "gw-1:gw-9", "!nosuch", "~(", "@/nonexistent/retry"])
def test_limit_typos_raise_a_usage_error(limit):
    from solv_provision.runner import UsageError, check_limit

    with pytest.raises(UsageError, match="matches no host or group"):
        check_limit(limit, hosts=HOSTS, groups=GROUPS)


def test_render_unknown_host_lists_the_hosts_that_run_the_service(cli):
    result = cli("render", "vllm", "-i", EXAMPLE, "--host", "gpu-z")
    assert result.exit_code == 2, result.output
    assert _error_line(result) == "error: host gpu-z is not in the inventory; hosts that run vllm: gpu-a, gpu-b"


@pytest.mark.parametrize("what", ["vllm", "all"])
def test_render_file_asks_for_a_host_when_several_run_the_service(cli, what):
    result = cli("render", what, "-i", EXAMPLE, "--file", "env")
    assert result.exit_code == 2, result.output
    assert "--file needs one host" in _error_line(result) and "--host" in _error_line(result)


def test_secrets_show_unknown_host(cli):
    result = cli("secrets", "show", "litellm_master_key", "-i", EXAMPLE, "--host", "gpu-z")
    assert result.exit_code == 2, result.output
    assert _error_line(result) == "error: host gpu-z is not in the inventory; hosts: gpu-a, gpu-b, gw-1"


@pytest.mark.parametrize("name", ["../../etc/shadow", ".hidden", "a/b", ""])
def test_secrets_show_refuses_a_path_as_name(cli, name):
    result = cli("secrets", "show", name, "-i", EXAMPLE, "--host", "gw-1")
    assert result.exit_code == 2, result.output
    assert "not a secret name" in _error_line(result)


def test_secrets_show_needs_a_host_for_a_per_host_secret(cli):
    result = cli("secrets", "show", "openwebui_admin_password", "-i", EXAMPLE)
    assert result.exit_code == 2, result.output
    assert _error_line(result) == "error: openwebui_admin_password is kept per host: name the host with --host"


def test_secrets_show_reads_a_shared_secret_on_its_owner(cli, monkeypatch):
    from solv_provision import runner

    asked = {}
    monkeypatch.setattr(runner, "read_secret", lambda **kw: asked.update(kw) or "sk-value")
    result = cli("secrets", "show", "vllm_api_key", "-i", EXAMPLE)
    assert result.exit_code == 0, result.output
    assert asked["host"] == "gpu-a" and result.output.strip().endswith("sk-value")
