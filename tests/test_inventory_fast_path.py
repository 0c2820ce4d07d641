"""The inventory fast path (plain YAML read with libyaml) gives exactly the host variables, groups and host order
that Ansible's own loader gives: every inventory of the tests and the repository, a generated large one, and one
that mixes plain files with vault, Jinja and tags (which go to Ansible's loader, file by file)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import yaml

from conftest import INVENTORIES, REPO
from solv_provision import inventory
from solv_provision.inventory import InventoryError

sys.path.insert(0, str(REPO / "bench"))
import inventory_gen  # noqa: E402

VAULT_PASSWORD = REPO / "inventories" / "example" / "vault-password.txt"
CASES = sorted([INVENTORIES / "good", INVENTORIES / "broken.yml", *(INVENTORIES / "broken").iterdir(),
                REPO / "inventories" / "example", REPO / "inventories" / "lab"])


def both(source: Path, vault: str | None = None):
    """(fast, Ansible's) loads of one source; (InventoryError text, None) twice when both refuse it alike."""
    loads = []
    for fast in (True, False):
        try:
            inv = inventory.load([source], vault, fast_path=fast)
            loads.append((inv.groups, list(inv.hosts), inv.hosts))
        except InventoryError as exc:
            loads.append((str(exc), None, None))
    return loads


@pytest.mark.parametrize("source", CASES, ids=lambda p: str(p.relative_to(REPO)))
def test_same_variables_as_ansible(source):
    vault = str(VAULT_PASSWORD) if source.name == "example" else None
    fast, reference = both(source, vault)
    assert fast == reference


def test_a_generated_site_loads_the_same(tmp_path):
    inventory_gen.write(tmp_path, 40)
    fast, reference = both(tmp_path)
    assert fast == reference
    assert len(fast[1]) == 41 and len(fast[2]["gpu-0007"]["vllm_models"]) == 4


def _mixed_site(tmp_path: Path) -> Path:
    """Plain files next to ones only Ansible can read: vault-encrypted values, a template over another variable,
    an !unsafe string, a lookup; group order (depth, then name), group_vars/all under group_vars/<group>, a
    group_vars directory, host vars in the inventory file under host_vars/<host>."""
    (tmp_path / "group_vars" / "inference").mkdir(parents=True)
    (tmp_path / "host_vars").mkdir()
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump({"all": {
        "vars": {"vllm_image_tag": "from-all", "solv_firewall": False},
        "children": {
            "inference": {"hosts": {"gpu-1": {"vllm_start_timeout": 111}, "gpu-2": None},
                          "vars": {"vllm_image_tag": "from-inference"},
                          "children": {"big": {"hosts": {"gpu-2": {"ansible_host": "10.0.0.2"}},
                                               "vars": {"vllm_image_tag": "from-big"}}}},
            "gateway": {"hosts": {"gw-1": {"ansible_host": "10.0.0.1"}}}}}}))
    (tmp_path / "group_vars" / "all.yml").write_text("solv_firewall: true\nlitellm_port: 4001\n")
    (tmp_path / "group_vars" / "inference" / "a.yml").write_text(
        "vllm_models:\n  - {name: m, model: org/m, gpus: [0], port: 8001}\nvllm_start_timeout: 222\n")
    (tmp_path / "group_vars" / "inference" / "b.yml").write_text(
        "vllm_extra_env: {A: '{{ vllm_start_timeout }}'}\nvllm_stop_timeout: !unsafe '{{ not templated }}'\n")
    (tmp_path / "group_vars" / "gateway.yml").write_text(
        "litellm_extra_env:\n  PORT: \"{{ lookup('env', 'SOLV_TEST_PORT') }}\"\n"
        "litellm_master_key: !vault |\n" + _vaulted("sk-from-the-vault"))
    (tmp_path / "host_vars" / "gpu-1.yml").write_text("vllm_start_timeout: 333\nvllm_image_tag: host-var\n")
    return tmp_path


def test_vault_jinja_tags_and_precedence_go_the_same_way(tmp_path, monkeypatch):
    monkeypatch.setenv("SOLV_TEST_PORT", "8123")
    _mixed_site(tmp_path)
    read = {}
    original = inventory.plain_yaml
    monkeypatch.setattr(inventory, "plain_yaml", lambda p: read.setdefault(p, original(p)))
    fast, reference = both(tmp_path, str(VAULT_PASSWORD))
    assert fast == reference
    by_libyaml = sorted(str(Path(p).relative_to(tmp_path)) for p, data in read.items() if data is not inventory.PLAIN_DEFER)
    assert by_libyaml == ["group_vars/all.yml", "group_vars/inference/a.yml", "host_vars/gpu-1.yml", "hosts.yml"]
    hosts = fast[2]
    assert hosts["gpu-1"]["vllm_start_timeout"] == 333 and hosts["gpu-1"]["vllm_image_tag"] == "host-var"
    assert hosts["gpu-2"]["vllm_image_tag"] == "from-big" and hosts["gpu-2"]["vllm_start_timeout"] == 222
    assert hosts["gpu-2"]["vllm_extra_env"] == {"A": 222} and hosts["gw-1"]["solv_firewall"] is True
    assert hosts["gw-1"]["litellm_extra_env"] == {"PORT": "8123"}
    assert isinstance(hosts["gw-1"]["litellm_master_key"], inventory.Unresolved)  # vault: decrypted by the run


# Ansible's own inventory plugins, in its own order (ansible.cfg puts plugins/inventory/solv_yaml in place of `yaml`).
ANSIBLES_INVENTORY_PLUGINS = "host_list,script,auto,yaml,ini,toml"


@pytest.mark.parametrize("site", ["example", "lab", "generated", "mixed", "plugin-config"])
def test_ansible_playbook_reads_the_inventory_the_same(site, tmp_path, monkeypatch):
    """plugins/inventory/solv_yaml and plugins/vars/solv_host_group_vars (ansible.cfg) against Ansible's own yaml
    and host_group_vars: every host's variables and groups as `ansible-inventory --list` gives them, also where a
    file of the inventory is a plugin's configuration (`auto` reads it after solv_yaml refused it, as after
    `yaml`). Values read by libyaml are not marked trusted as templates (they have no template to trust); that
    mark is the only difference, and it is left out of the comparison."""
    import json
    import subprocess

    from solv_provision.runner import ansible_env

    monkeypatch.setenv("SOLV_TEST_PORT", "8123")
    source = {"example": REPO / "inventories" / "example", "lab": REPO / "inventories" / "lab",
              "generated": tmp_path / "generated", "mixed": tmp_path / "mixed",
              "plugin-config": tmp_path / "plugin-config"}[site]
    if site == "generated":
        inventory_gen.write(source, 40)
    elif site == "mixed":
        _mixed_site(source)
    elif site == "plugin-config":
        inventory_gen.write(source, 3)
        # After hosts.yml (a folder's files are read in name order): it groups the hosts read before it.
        (source / "z-constructed.yml").write_text(yaml.safe_dump({
            "plugin": "ansible.builtin.constructed",
            "groups": {"first_two": "inventory_hostname in ['gpu-0000', 'gpu-0001']"}}))

    def listed(**env):
        argv = ["ansible-inventory", "-i", str(source), "--list", "--vault-password-file", str(VAULT_PASSWORD)]
        done = subprocess.run(argv, env={**ansible_env(), **env}, capture_output=True, text=True, check=True)
        return _without_trust(json.loads(done.stdout))

    ours = listed()
    ansibles = listed(ANSIBLE_VARS_ENABLED="host_group_vars",
                      ANSIBLE_INVENTORY_ENABLED=ANSIBLES_INVENTORY_PLUGINS)
    assert ours == ansibles
    if site == "plugin-config":
        assert ours["first_two"]["hosts"] == ["gpu-0000", "gpu-0001"]
    assert len(ours["_meta"]["hostvars"]) == len(inventory.load([source], str(VAULT_PASSWORD)).hosts)


@pytest.mark.parametrize("name", ["host_vars/gpu-0001.yml", "hosts.yml"])
def test_ansible_playbook_takes_the_files_solv_provision_read_while_they_are_unchanged(tmp_path, name):
    """`apply` and `render` hand ansible-playbook the plain YAML files the CLI's validation read (at 1,000 hosts
    parsing them again costs about 0.5 s): the inventory and vars plugins take a handed-over file while its mtime
    and size are the ones recorded, and read the file again once it changed. (The handed-over value is altered here
    to tell the two apart.)"""
    import json
    import os
    import subprocess

    from solv_provision.runner import ansible_env

    source = tmp_path / "site"
    inventory_gen.write(source, 3)
    changed = source / name
    inventory.load([source])
    handed = inventory.save_plain_read(tmp_path / "handed.json")
    assert oct(handed.stat().st_mode & 0o777) == "0o600"
    doc = json.loads(handed.read_text())
    assert doc[str(changed)][2] == yaml.safe_load(changed.read_text())
    if name == "hosts.yml":
        doc[str(changed)][2]["all"]["children"]["inference"]["hosts"]["gpu-0001"]["ansible_host"] = "10.99.0.2"
    else:
        doc[str(changed)][2]["vllm_models"][0]["port"] = 9999
    handed.write_text(json.dumps(doc))

    def read():
        argv = ["ansible-inventory", "-i", str(source), "--host", "gpu-0001"]
        env = {**ansible_env(), inventory.PLAIN_YAML_CACHE: str(handed)}
        done = subprocess.run(argv, env=env, capture_output=True, text=True, check=True)
        hostvars = json.loads(done.stdout)
        return hostvars["ansible_host"], hostvars["vllm_models"][0]["port"]

    assert read() == (("10.99.0.2", 8001) if name == "hosts.yml" else ("10.20.0.2", 9999))
    stat = changed.stat()
    os.utime(changed, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert read() == ("10.20.0.2", 8001)


def _without_trust(value):
    if isinstance(value, dict):
        if set(value) == {"__ansible_unsafe"}:
            return value["__ansible_unsafe"]
        return {k: _without_trust(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_trust(v) for v in value]
    return value


def _vaulted(text: str) -> str:
    from ansible.parsing.vault import VaultLib, VaultSecret

    secret = VaultSecret(VAULT_PASSWORD.read_bytes().strip())
    blob = VaultLib([("default", secret)]).encrypt(text, secret).decode()
    return "".join(f"  {line}\n" for line in blob.splitlines())


@pytest.mark.parametrize("text", ["{{ x }}: 1\n", "a: !vault |\n  x\n", "a: 2024-01-01\n", "1: x\n", "", "[a, b\n"])
def test_anything_but_plain_yaml_goes_to_ansible(tmp_path, text):
    path = tmp_path / "f.yml"
    path.write_text(text)
    assert inventory.plain_yaml(str(path)) is inventory.PLAIN_DEFER


def test_plain_yaml_is_read_by_libyaml(tmp_path):
    path = tmp_path / "f.yml"
    path.write_text("a: [1, 2.5, true, null, 'x']\nb: {c: d}\n")
    assert inventory.plain_yaml(str(path)) == {"a": [1, 2.5, True, None, "x"], "b": {"c": "d"}}


def _parses(monkeypatch) -> list[str]:
    """The files plain_yaml parses from here on (not those it takes from the store)."""
    parsed: list[str] = []
    real = yaml.load

    def load(text, Loader):  # noqa: N803 - yaml.load's own name
        if Loader is inventory._PlainLoader:
            parsed.append(text)
        return real(text, Loader=Loader)

    monkeypatch.setattr(inventory.yaml, "load", load)
    return parsed


def test_a_run_over_unchanged_files_takes_them_from_the_store_with_the_same_variables(tmp_path, monkeypatch,
                                                                                     _isolated_state):
    inventory_gen.write(tmp_path / "site", 12)
    first = inventory.load([tmp_path / "site"])
    store = _isolated_state / "solv-provision" / "inventory-plain-yaml.json"
    assert store.stat().st_mode & 0o777 == 0o600
    monkeypatch.setattr(inventory, "_READ", {})  # a new process: nothing read yet
    monkeypatch.setattr(inventory, "_PLAIN_READ", {})
    parsed = _parses(monkeypatch)
    again = inventory.load([tmp_path / "site"])
    assert parsed == []
    assert (again.groups, again.hosts) == (first.groups, first.hosts)
    reference = inventory.load([tmp_path / "site"], fast_path=False)
    assert (again.groups, list(again.hosts), again.hosts) == \
        (reference.groups, list(reference.hosts), reference.hosts)


def test_a_file_written_since_is_read_again_even_with_its_size_and_mtime_put_back(tmp_path, monkeypatch):
    """What identifies a stored file's content includes its ctime, which every write changes and no tool sets back
    (an edit of the same length whose mtime is restored, as `cp -p` or rsync can leave it)."""
    inventory_gen.write(tmp_path / "site", 3)
    host_file = tmp_path / "site" / "host_vars" / "gpu-0001.yml"
    host_file.write_text(host_file.read_text() + "solv_internal_address: 10.30.0.2\n")
    assert inventory.load([tmp_path / "site"]).hosts["gpu-0001"]["solv_internal_address"] == "10.30.0.2"
    before = host_file.stat()
    host_file.write_text(host_file.read_text().replace("10.30.0.2", "10.30.0.9"))
    os.utime(host_file, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert host_file.stat().st_size == before.st_size and host_file.stat().st_mtime_ns == before.st_mtime_ns
    monkeypatch.setattr(inventory, "_READ", {})
    monkeypatch.setattr(inventory, "_PLAIN_READ", {})
    parsed = _parses(monkeypatch)
    assert inventory.load([tmp_path / "site"]).hosts["gpu-0001"]["solv_internal_address"] == "10.30.0.9"
    assert len(parsed) == 1
