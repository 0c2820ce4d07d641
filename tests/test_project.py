"""Project-wide contracts: every role input is declared, README's reference is current, the wheel is complete."""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile

import pytest
import yaml

from conftest import REPO
from solv_provision import docs, rules, specs
from solv_provision.inventory import SOLV_PREFIXES

ROLES = sorted(p for p in (REPO / "roles").iterdir() if p.is_dir())


@pytest.mark.parametrize("role", ROLES, ids=[r.name for r in ROLES])
def test_every_default_is_declared_in_the_argument_spec(role):
    """A variable a user can set must be in meta/argument_specs.yml: the validator relies on it."""
    defaults = yaml.safe_load((role / "defaults" / "main.yml").read_text()) if (role / "defaults" / "main.yml").exists() else {}
    public = {k for k in (defaults or {}) if not k.startswith("__")}
    declared = set(specs.role_specs()[role.name].options)
    assert public <= declared, f"undeclared in {role.name}/meta/argument_specs.yml: {sorted(public - declared)}"


# Each role's own prefix; solv_common's site-wide settings and call parameters carry the project's.
PREFIX = {"solv_common": "solv_"}


@pytest.mark.parametrize("role", ROLES, ids=[r.name for r in ROLES])
def test_role_variables_carry_the_role_prefix(role):
    """Public names <role>_*, internal ones __<role>_*: a variable tells which role owns it."""
    prefix = PREFIX.get(role.name, f"{role.name}_")
    public = set(specs.role_specs()[role.name].options)
    internal = set(yaml.safe_load((role / "vars" / "main.yml").read_text()) or {}) if (role / "vars" / "main.yml").exists() else set()
    assert not {n for n in public if not n.startswith(prefix)}, f"{role.name}: public names without {prefix}"
    assert not {n for n in internal if not n.startswith(f"__{prefix}")}, f"{role.name}: internal names without __{prefix}"
    # The validator checks (and the inventory loader keeps) exactly the variables with a known prefix.
    assert prefix in SOLV_PREFIXES, f"{role.name}: {prefix} missing from solv_provision.inventory.SOLV_PREFIXES"


SERVICE_ROLES = ["vllm", "litellm", "searxng", "openwebui", "caddy", "node_exporter", "dcgm_exporter",
                 "blackbox_exporter", "prometheus", "grafana"]


@pytest.mark.parametrize("role", SERVICE_ROLES)
def test_service_roles_have_one_shape(role):
    """Same task files and the same public names for the same ideas in every service role."""
    tasks = sorted(p.name for p in (REPO / "roles" / role / "tasks").glob("*.yml"))
    assert tasks == ["configure.yml", "main.yml", "preflight.yml", "run.yml", "secrets.yml"]
    options = set(specs.role_specs()[role].options)
    for idea in ("image", "image_tag", "image_archive", "extra_env", "extra_docker_args", "start_timeout",
                 "stop_timeout", "bind_address", "memory_limit", "cpu_limit"):
        assert f"{role}_{idea}" in options, f"{role} lacks {role}_{idea}"


def test_private_names_stay_in_their_role():
    """No `__solv_*` (solv_common's private namespace) is read outside solv_common, no role reads another
    role's `__<prefix>_*`, and no per-line lint exception hides a rule."""
    prefixes = {r.name: PREFIX.get(r.name, f"{r.name}_") for r in ROLES}
    files = [p for d in ("roles", "playbooks", "molecule", "inventories", "lab") for p in (REPO / d).rglob("*")
             if p.suffix in (".yml", ".j2") and p.is_file()]
    for path in files:
        text = path.read_text()
        assert "# noqa" not in text, f"{path.relative_to(REPO)}: per-line noqa (switch a rule off in .ansible-lint)"
        owner = path.relative_to(REPO).parts[1] if path.relative_to(REPO).parts[0] == "roles" else None
        for role, prefix in prefixes.items():
            if role != owner:
                assert not re.search(rf"__{prefix}\w", text), f"{path.relative_to(REPO)} reads __{prefix}* of role {role}"


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
                   "solv_provision/_content/roles/vllm/meta/argument_specs.yml",
                   "solv_provision/_content/plugins/vars/solv_host_group_vars.py",
                   "solv_provision/_content/plugins/inventory/solv_yaml.py",
                   "solv_provision/_content/playbooks/tasks/monitoring_host.yml"):
        assert needed in names, needed


def test_the_monitoring_host_gate_names_the_units_of_the_roles_it_includes():
    """playbooks/monitoring.yml skips Alertmanager, Prometheus and Grafana as one task on a host that neither runs them
    nor may have one of their units: its condition names each included role's unit (the role's `__<role>_name`) and
    its tags each role's tag."""
    play = yaml.safe_load((REPO / "playbooks" / "monitoring.yml").read_text())[0]
    gate = next(task for task in play["tasks"] if "ansible.builtin.include_tasks" in task)
    included = yaml.safe_load((REPO / "playbooks" / gate["ansible.builtin.include_tasks"]).read_text())
    roles = [task["ansible.builtin.import_role"]["name"] for task in included]
    units = [yaml.safe_load((REPO / "roles" / role / "vars" / "main.yml").read_text())[f"__{role}_name"]
             for role in roles]
    assert roles == ["alertmanager", "prometheus", "grafana"]
    assert re.findall(r"solv_may_have_unit\('([^']+)'\)", gate["when"]) == units
    assert gate["tags"] == [task["tags"][0] for task in included] == roles


def _tasks(node):
    """Every task of a parsed task file or playbook, blocks opened."""
    if isinstance(node, list):
        for item in node:
            yield from _tasks(item)
    elif isinstance(node, dict):
        nested = [node[k] for k in ("block", "rescue", "always", "tasks", "pre_tasks", "post_tasks", "handlers") if k in node]
        yield from (t for n in nested for t in _tasks(n))
        if not nested:
            yield node


def _role_includes(node):
    """Every include_role/import_role argument dict in a task file's parsed YAML, blocks included."""
    for task in _tasks(node):
        yield from (value for key, value in task.items()
                    if key.split(".")[-1] in ("include_role", "import_role") and isinstance(value, dict))


def test_solv_common_settings_are_checked_once_per_play_not_twice():
    """solv_common runs as every service role's dependency, in every play of every host. Its site-wide variables are
    its entry point `site`: a `main` entry would add Ansible's own argument spec check as a task beside its preflight,
    which checks the same (spec_check: the types as used, no coercion)."""
    entries = yaml.safe_load((REPO / "roles/solv_common/meta/argument_specs.yml").read_text())["argument_specs"]
    assert "main" not in entries
    assert specs.role_specs()["solv_common"].options == entries["site"]["options"]
    assert "solv_root_dir" in entries["site"]["options"]
    assert rules.role_problems("solv_common", {"solv_firewall": "yes"}) == [
        ("solv_firewall", "must be true or false, got the string 'yes' (write true or false, unquoted)")]


def test_solv_common_is_included_without_reading_its_argument_specs_again():
    """An include of solv_common with Ansible's default rolespec_validate reads and deep-copies its 17 KB
    meta/argument_specs.yml each time (~17 ms, ~50 includes in a no-op run) for a check Ansible never makes
    (a `tasks_from: X.yml` include is not checked against entry point X)."""
    files = sorted((REPO / "roles").glob("*/tasks/*.yml")) + sorted((REPO / "playbooks").glob("*.yml"))
    includes = [(f.relative_to(REPO), inc) for f in files for inc in _role_includes(yaml.safe_load(f.read_text()))
                if inc.get("name") == "solv_common"]
    assert len(includes) > 30
    assert [str(f) for f, inc in includes if inc.get("rolespec_validate") is not False] == []


RUN_ROLES = sorted(p.parents[1].name for p in (REPO / "roles").glob("*/tasks/run.yml"))


def _run_steps(role):
    """A role's __<role>_run (vars/main.yml): each step of its run.yml => the condition (or loop) it acts on."""
    return yaml.safe_load((REPO / "roles" / role / "vars" / "main.yml").read_text())[f"__{role}_run"]


def _step_of(role, task):
    """The entry of __<role>_run a task of run.yml acts on: its whole `when`, or its whole `loop`."""
    refs = [re.fullmatch(rf"(?:{{{{ )?__{role}_run\.(\w+)(?: }}}})?", str(task.get(key)))
            for key in ("when", "loop") if key in task]
    assert len(refs) == 1 and refs[0], f"{role}: {task['name']} acts on one entry of __{role}_run, as its when or loop"
    return refs[0].group(1)


@pytest.mark.parametrize("role", RUN_ROLES)
def test_every_run_phase_ends_the_role_where_no_step_acts(role):
    """run.yml starts with `meta: end_role` where no entry of __<role>_run is true (or a non-empty loop): a meta task
    runs in ansible-playbook's own process, where each skipped task costs a forked worker. Exact only while each
    later task acts on one entry and the entries are those steps, nothing else: checked here."""
    tasks = list(_tasks(yaml.safe_load((REPO / "roles" / role / "tasks" / "run.yml").read_text())))
    guard, steps = tasks[0], tasks[1:]
    assert guard.get("ansible.builtin.meta") == "end_role"
    assert guard["when"] == f"__{role}_run.values() | select | list == []"
    acted_on = [_step_of(role, task) for task in steps]
    assert sorted(acted_on) == sorted(_run_steps(role)), f"{role}: one task per entry of __{role}_run"


@pytest.mark.parametrize("role, on", [("node_exporter", "on"), ("dcgm_exporter", "wanted"),
                                      ("blackbox_exporter", "on"), ("grafana", "on")])
def test_a_role_that_may_be_off_ends_at_its_start_where_it_is_off_and_left_nothing(role, on):
    """Where the role does not run and its run phase has nothing to remove, every task of main.yml would be skipped,
    each at a forked worker's cost: the role's first task ends it (a meta task, in ansible-playbook's process)."""
    guard = next(_tasks(yaml.safe_load((REPO / "roles" / role / "tasks" / "main.yml").read_text())))
    assert guard.get("ansible.builtin.meta") == "end_role"
    assert guard["when"] == f"not __{role}_{on} | bool and __{role}_run.values() | select | list == []"


def test_every_role_runs_container_run_only_for_a_container_out_of_sync():
    """Each include of container_run.yml acts on a step that asks the plan (solv_container_needs_run for one
    container, solv_containers_to_run for a loop), so a container in sync costs no task at all in a no-op run."""
    sites = [(role, t) for role in RUN_ROLES
             for t in _tasks(yaml.safe_load((REPO / "roles" / role / "tasks" / "run.yml").read_text()))
             if (t.get("ansible.builtin.include_role") or {}).get("tasks_from") == "container_run.yml"]
    assert len(sites) >= 13
    asks = {"when": "solv_container_needs_run(", "loop": "solv_containers_to_run("}
    assert [(role, t["name"]) for role, t in sites
            if asks["loop" if "loop" in t else "when"] not in _run_steps(role)[_step_of(role, t)]] == []


def test_every_role_runs_containers_prune_only_where_the_reading_lists_something_to_remove():
    """Each include of containers_prune.yml acts on a step that asks the host's reading (solv_may_have_unit for one
    unit, solv_units_to_prune for a family), so a no-op run costs no task for it."""
    sites = [(role, t) for role in RUN_ROLES
             for t in _tasks(yaml.safe_load((REPO / "roles" / role / "tasks" / "run.yml").read_text()))
             if (t.get("ansible.builtin.include_role") or {}).get("tasks_from") == "containers_prune.yml"]
    assert len(sites) >= 9
    asks = ("solv_may_have_unit(", "solv_units_to_prune(")
    assert [(role, t["name"]) for role, t in sites
            if not any(a in _run_steps(role)[_step_of(role, t)] for a in asks)] == []
