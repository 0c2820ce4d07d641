"""Pre-flight validation: every broken inventory in tests/inventories/broken is refused, precisely, offline."""

from __future__ import annotations

import pytest
import yaml

from conftest import INVENTORIES, REPO

BROKEN = sorted(p for p in (INVENTORIES / "broken").iterdir() if p.is_dir())


EXPECTATIONS = yaml.safe_load((INVENTORIES / "broken.yml").read_text())


def test_every_broken_inventory_has_an_expectation():
    assert sorted(EXPECTATIONS) == [c.name for c in BROKEN]


def _expect(case):
    return EXPECTATIONS[case.name]


def _matching_line(output: str, case) -> str | None:
    exp = _expect(case)
    needles = list(exp.get("contains", []))
    if exp.get("host"):
        needles.append(f"host {exp['host']}")
    if exp.get("key"):
        needles.append(exp["key"])
    if exp.get("file"):
        needles.append(exp["file"])
    return next((line for line in output.splitlines() if all(n in line for n in needles)), None)


@pytest.mark.parametrize("case", BROKEN, ids=[c.name for c in BROKEN])
def test_validate_names_host_key_and_problem(cli, case):
    result = cli("validate", "-i", case)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert "WARNING" not in result.output
    line = _matching_line(result.output, case)
    assert line, f"no line names {_expect(case)}:\n{result.output}"


@pytest.mark.parametrize("case", BROKEN, ids=[c.name for c in BROKEN])
def test_apply_contacts_no_host_when_invalid(cli, case, monkeypatch, _isolated_state):
    """apply stops at validation: the play, started held beside it, is never let go (it has read nothing) and no
    run folder is left."""
    from solv_provision.held_play import Hold

    def forbidden(self):
        raise AssertionError("the play was let go for an invalid inventory")

    monkeypatch.setattr(Hold, "release", forbidden)
    result = cli("apply", "-i", case)
    assert result.exit_code == 2, result.output
    runs = _isolated_state / "solv-provision" / "runs"
    assert not runs.exists() or not any(runs.iterdir())


def test_every_problem_is_reported_at_once(cli, tmp_path):
    """Two independent mistakes in one inventory: both are listed, not only the first."""
    inv = tmp_path / "inv"
    (inv / "host_vars").mkdir(parents=True)
    (inv / "hosts.yml").write_text((INVENTORIES / "good" / "hosts.yml").read_text())
    (inv / "host_vars" / "gpu-1.yml").write_text(yaml.safe_dump({
        "vllm_models": [
            {"name": "a", "model": "m/a", "gpus": [0], "port": 8001},
            {"name": "b", "model": "m/b", "gpus": [0], "port": 8001},
        ],
        "vllm_modles": [],
    }))
    result = cli("validate", "-i", inv)
    assert result.exit_code == 2
    assert "port 8001 is already used" in result.output
    assert "GPU 0 is given to" in result.output
    assert "did you mean 'vllm_models'" in result.output


def test_good_inventory_is_valid(cli):
    result = cli("validate", "-i", INVENTORIES / "good")
    assert result.exit_code == 0, result.output


def test_example_inventory_is_valid_without_vault_password(cli, monkeypatch):
    monkeypatch.delenv("ANSIBLE_VAULT_PASSWORD_FILE", raising=False)
    result = cli("validate", "-i", REPO / "inventories" / "example")
    assert result.exit_code == 0, result.output


def test_example_inventory_is_valid_with_vault_password(cli):
    example = REPO / "inventories" / "example"
    result = cli("validate", "-i", example, "--vault-password-file", example / "vault-password.txt")
    assert result.exit_code == 0, result.output


def test_wrong_vault_password_is_a_clear_error(cli, tmp_path):
    wrong = tmp_path / "pw"
    wrong.write_text("not-the-password\n")
    result = cli("validate", "-i", REPO / "inventories" / "example", "--vault-password-file", wrong)
    assert result.exit_code in (0, 2), result.output
    assert "Traceback" not in result.output


def test_missing_inventory_is_a_clear_error(cli, tmp_path):
    result = cli("validate", "-i", tmp_path / "nope")
    assert result.exit_code == 2
    assert "inventory not found" in result.output
