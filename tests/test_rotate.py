"""`solv-provision secrets rotate`: which host keeps the secret, which services and hosts are re-applied, and
what is refused before any host is contacted (the runs themselves: Molecule default, test_rotate.py)."""

from __future__ import annotations

import json

import pytest
import yaml

from conftest import REPO
from solv_provision import inventory as inv_mod
from solv_provision import rotate, runner
from solv_provision.runner import RunResult, UsageError

EXAMPLE = REPO / "inventories" / "example"
VAULT = EXAMPLE / "vault-password.txt"


@pytest.fixture(scope="module")
def inv():
    return inv_mod.load([str(EXAMPLE)], str(VAULT))


def test_a_shared_secret_is_rotated_on_its_owner_and_every_user_is_reapplied(inv):
    r = rotate.plan(inv, "vllm_api_key", None)
    assert r.owner == inv.in_group("inference")[0] and r.role == "vllm"
    assert r.services == ("vllm", "litellm")
    assert set(r.hosts) == set(inv.in_group("inference")) | set(inv.in_group("gateway"))
    assert json.loads(r.extra_vars()) == {"solv_rotate_name": "vllm_api_key", "solv_rotate_role": "vllm"}


def test_a_per_host_secret_needs_its_host(inv):
    gateway = inv.in_group("gateway")[0]
    r = rotate.plan(inv, "searxng_secret_key", gateway)
    assert (r.owner, r.role, r.services, r.hosts) == (gateway, "searxng", ("searxng",), (gateway,))
    with pytest.raises(UsageError, match="kept per host: name the host with --host"):
        rotate.plan(inv, "searxng_secret_key", None)
    with pytest.raises(UsageError, match="does not run searxng"):
        rotate.plan(inv, "searxng_secret_key", inv.in_group("inference")[-1])


def test_grafana_s_admin_password_is_rotated_on_the_monitoring_host(inv):
    """Kept per host, on the monitoring host (the example's gw-1, which sets solv_monitoring); only Grafana re-applied
    (its secrets step also sets the new password in Grafana's database)."""
    monitoring_host = inv.in_group("monitoring")[0]
    r = rotate.plan(inv, "grafana_admin_password", monitoring_host)
    assert (r.owner, r.role, r.services, r.hosts) == (monitoring_host, "grafana", ("grafana",), (monitoring_host,))
    with pytest.raises(UsageError, match="does not run grafana"):
        rotate.plan(inv, "grafana_admin_password", inv.in_group("inference")[0])


@pytest.mark.parametrize(("name", "message"), [
    ("litellm_salt_key", "it encrypts what LiteLLM stores"),
    ("openwebui_admin_password", "change it in Open WebUI"),
    ("caddy_ca_certificate", "cannot be rotated; rotatable: grafana_admin_password, litellm_master_key, "
                             "litellm_redis_password, openwebui_secret_key"),
])
def test_what_must_not_be_rotated_is_refused(inv, name, message):
    with pytest.raises(UsageError, match=message):
        rotate.plan(inv, name, None)


def test_a_value_from_the_inventory_is_changed_there(tmp_path):
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump({"all": {"children": {
        "inference": {"hosts": {"gpu-1": {"ansible_host": "192.0.2.11"}}},
        "gateway": {"hosts": {"gw-1": {"ansible_host": "192.0.2.10", "litellm_master_key": "sk-" + "k" * 40}}}}}}))
    own = inv_mod.load([str(tmp_path)])
    with pytest.raises(UsageError, match=r"set in the inventory \(litellm_master_key of gw-1\).*vault"):
        rotate.plan(own, "litellm_master_key", None)
    assert rotate.plan(own, "vllm_api_key", None).owner == "gpu-1"


def test_cli_runs_the_rotation_then_the_services(cli, monkeypatch, tmp_path):
    runs = []

    def record(playbook, inventories, **kw):
        runs.append((playbook, kw["limit"], kw.get("tags"), kw.get("extra_vars")))
        return RunResult(mode="apply", rc=0, artifacts=tmp_path)

    monkeypatch.setattr(runner, "run_playbook", record)
    result = cli("secrets", "rotate", "vllm_api_key", "-i", EXAMPLE, "--vault-password-file", VAULT)
    assert result.exit_code == 0, result.output
    assert [r[0] for r in runs] == ["rotate.yml", "site.yml"]
    assert runs[0][1] == "gpu-a" and json.loads(runs[0][3][0])["solv_rotate_name"] == "vllm_api_key"
    assert runs[1][2] == "vllm,litellm"
    usage = cli("secrets", "rotate", "litellm_salt_key", "-i", EXAMPLE, "--vault-password-file", VAULT)
    assert usage.exit_code == 2 and "not rotated by solv-provision" in usage.output and len(runs) == 2
