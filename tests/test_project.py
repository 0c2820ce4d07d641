"""Project-wide contracts: every role input is declared, README's reference is current, the wheel is complete."""

from __future__ import annotations

import subprocess
import sys
import zipfile

import pytest
import yaml

from conftest import REPO
from solv_provision import docs, specs

ROLES = sorted(p for p in (REPO / "roles").iterdir() if p.is_dir())


@pytest.mark.parametrize("role", ROLES, ids=[r.name for r in ROLES])
def test_every_default_is_declared_in_the_argument_spec(role):
    """A variable a user can set must be in meta/argument_specs.yml: the validator relies on it."""
    defaults = yaml.safe_load((role / "defaults" / "main.yml").read_text()) if (role / "defaults" / "main.yml").exists() else {}
    public = {k for k in (defaults or {}) if not k.startswith("__")}
    declared = set(specs.role_specs()[role.name].options)
    assert public <= declared, f"undeclared in {role.name}/meta/argument_specs.yml: {sorted(public - declared)}"


@pytest.mark.parametrize("role", ROLES, ids=[r.name for r in ROLES])
def test_role_variables_carry_the_role_prefix(role):
    from solv_provision.inventory import SOLV_PREFIXES

    for name in specs.role_specs()[role.name].options:
        assert name.startswith(SOLV_PREFIXES), f"{role.name}: {name} has no SOLV prefix"


def test_readme_inventory_reference_matches_argument_specs():
    text = (REPO / "README.md").read_text()
    assert docs.updated_readme(text) == text, "run: python -m solv_provision.docs"


def test_wheel_carries_playbooks_and_roles(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(REPO)],
                   check=True, capture_output=True)
    wheel = next(tmp_path.glob("solv_provision-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    for needed in ("solv_provision/_content/playbooks/site.yml", "solv_provision/_content/ansible.cfg",
                   "solv_provision/_content/roles/solv_common/filter_plugins/solv_routing.py",
                   "solv_provision/_content/roles/vllm/meta/argument_specs.yml"):
        assert needed in names, needed
