"""`solv-provision upgrade`: the order of its steps, the rollout settings it passes, where it stops.

ansible-runner and the backup are replaced by recorders; the roles' part (stage mode, serial plays, the
health gate and rollback) runs for real in the Molecule scenarios.
"""

from __future__ import annotations

import json

import pytest

from conftest import REPO
from solv_provision import backup, runner
from solv_provision.runner import HostStats, RunResult

EXAMPLE = REPO / "inventories" / "example"


class Calls:
    """Every playbook run and backup, in order; a run fails when its playbook is in `failing`."""

    def __init__(self, artifacts):
        self.log, self.failing, self.artifacts = [], set(), artifacts

    def run_playbook(self, playbook, inventories, **kw):
        self.log.append((playbook, kw["tags"], json.loads(kw["extra_vars"][0])))
        failed = playbook in self.failing
        hosts = {"gpu-a": HostStats(failed=int(failed))} if playbook == "inference.yml" else {}
        return RunResult(mode="apply", rc=2 if failed else 0, artifacts=self.artifacts, hosts=hosts)

    def run_backup(self, inv, **kw):
        self.log.append(("backup", kw["output"], {"groups": kw.get("groups")}))
        return 0


@pytest.fixture
def calls(monkeypatch, tmp_path):
    recorder = Calls(tmp_path)
    monkeypatch.setattr(runner, "run_playbook", recorder.run_playbook)
    monkeypatch.setattr(backup, "run_backup", recorder.run_backup)
    return recorder


def _upgrade(cli, *args):
    return cli("upgrade", "-i", EXAMPLE, "--vault-password-file", EXAMPLE / "vault-password.txt", *args)


def test_stage_then_inference_then_backup_then_gateway(cli, calls, tmp_path):
    result = _upgrade(cli, "--serial", "2", "--backup-dir", tmp_path / "b")
    assert result.exit_code == 0, result.output
    # The example inventory monitors: monitoring.yml last, once for both monitoring groups.
    assert [c[0] for c in calls.log] == ["site.yml", "inference.yml", "backup", "gateway.yml", "monitoring.yml"]
    stage, inference, backed_up, gateway, monitoring = calls.log
    assert stage[2] == {"solv_stage_images": True}
    assert backed_up[2] == {"groups": ("gateway",)}  # the gateway's data, not the monitoring host's metrics
    assert stage[1] == ("registry,vllm,searxng,litellm,openwebui,caddy,node_exporter,dcgm_exporter,blackbox_exporter,"
                        "alertmanager,prometheus,grafana")
    assert inference[2] == gateway[2] == monitoring[2] == {"solv_serial": 2, "solv_max_fail_percentage": 0}


def test_a_failed_inference_host_stops_the_rollout_before_any_gateway(cli, calls):
    calls.failing.add("inference.yml")
    result = _upgrade(cli)
    assert result.exit_code == 1
    assert [c[0] for c in calls.log] == ["site.yml", "inference.yml"]
    assert "untouched (the rollout stopped): gpu-b, gw-1" in result.output


def test_a_failed_stage_restarts_nothing(cli, calls):
    calls.failing.add("site.yml")
    result = _upgrade(cli)
    assert result.exit_code == 1 and [c[0] for c in calls.log] == ["site.yml"]


def test_one_gateway_service_skips_the_inference_hosts(cli, calls):
    result = _upgrade(cli, "--service", "litellm")
    assert result.exit_code == 0, result.output
    assert [(c[0], c[1]) for c in calls.log[:1]] == [("site.yml", "litellm")]
    assert [c[0] for c in calls.log] == ["site.yml", "backup", "gateway.yml"]


def test_tags_are_refused(cli, calls):
    result = _upgrade(cli, "--tags", "vllm")
    assert result.exit_code == 2 and "--service, not --tags" in result.output and calls.log == []
