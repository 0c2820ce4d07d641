"""What solv-provision hands ansible-playbook (solv_provision.handover): each host's routing inputs as the inventory's
files say them, taken by the routing filters only where the play could not see anything else."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import pytest
import yaml

from conftest import REPO
from solv_provision import handover, inventory, render, routing

sys.path.insert(0, str(REPO / "bench"))
sys.path.insert(0, str(REPO / "roles" / "solv_common" / "filter_plugins"))
import inventory_gen  # noqa: E402

EXAMPLE = REPO / "inventories" / "example"


@pytest.fixture
def handed(monkeypatch):
    """Set the handover a filter reads (as ansible-playbook's environment would) and forget what was read."""
    def hand(path: Path | None):
        monkeypatch.setattr(handover, "_HANDED", None)
        if path is None:
            monkeypatch.delenv(handover.ROUTING_INPUTS, raising=False)
        else:
            monkeypatch.setenv(handover.ROUTING_INPUTS, str(path))
    yield hand
    monkeypatch.setattr(handover, "_HANDED", None)


def test_the_inputs_are_each_hosts_routing_variables_as_the_files_say_them(tmp_path):
    inventory_gen.write(tmp_path, 3)
    inv = inventory.load([tmp_path])
    inputs = handover.routing_inputs(inv)
    assert set(inputs) == set(inv.hosts)
    assert inputs["gpu-0001"] == {"vllm_models": inv.hosts["gpu-0001"]["vllm_models"], "ansible_host": "10.20.0.2"}
    assert all(set(values) <= set(routing.INPUT_KEYS) for values in inputs.values())
    handover.write(tmp_path, inv, [json.dumps({"solv_render": True})])
    written = Path(handover.environment(tmp_path)[handover.ROUTING_INPUTS])
    assert json.loads(written.read_text()) == inputs and oct(written.stat().st_mode & 0o777) == "0o600"
    handover.remove(tmp_path)
    assert not written.exists()


@pytest.mark.parametrize("extra", ["vllm_models=[]", "@vars.yml", '{"ansible_host": "10.0.0.9"}', '["x"]'])
def test_nothing_is_handed_over_where_an_extra_variable_could_set_an_input(tmp_path, extra):
    inventory_gen.write(tmp_path, 2)
    inv = inventory.load([tmp_path])
    assert handover.routing_inputs(inv, [json.dumps({"solv_serial": 1}), extra]) is None
    assert handover.routing_inputs(inv, [json.dumps({"solv_serial": 1})]) is not None


def test_a_host_whose_input_is_templated_is_left_to_the_play(tmp_path):
    inventory_gen.write(tmp_path, 2)
    host_file = tmp_path / "host_vars" / "gpu-0001.yml"
    host_file.write_text(host_file.read_text() + "solv_internal_address: \"{{ '10.30.0.2' }}\"\n")
    inv = inventory.load([tmp_path])
    assert inv.templated["gpu-0001"] == {"solv_internal_address"} and inv.templated["gpu-0000"] == set()
    assert set(handover.routing_inputs(inv)) == set(inv.hosts) - {"gpu-0001"}


def test_the_filters_take_the_handover_only_where_it_holds_every_host(tmp_path, handed):
    path = tmp_path / "inputs.json"
    path.write_text(json.dumps({"a": {"ansible_host": "10.0.0.1"}, "b": {}}))
    hostvars = {"a": {"ansible_host": "10.9.9.1"}, "b": {"ansible_host": "10.9.9.2"}, "c": {}}
    handed(path)
    assert handover.routing_hosts(hostvars, ["a", "b"]) == {"a": {"ansible_host": "10.0.0.1"}, "b": {}}
    assert handover.routing_hosts(hostvars, ["a", "c"]) == {"a": hostvars["a"], "c": hostvars["c"]}
    handed(None)
    assert handover.routing_hosts(hostvars, ["a", "b"]) == {"a": hostvars["a"], "b": hostvars["b"]}


@pytest.fixture
def routing_filter(monkeypatch):
    """solv_common's routing filters, with a count of the routings they compute and none remembered."""
    module = importlib.import_module("solv_routing")
    monkeypatch.setattr(module, "_ROUTED", {})
    computed = []
    real = routing.litellm_routing
    monkeypatch.setattr(routing, "litellm_routing", lambda *args: computed.append(args) or real(*args))
    monkeypatch.setattr(module, "computed", computed, raising=False)
    return module


def test_a_routing_of_handed_over_inputs_is_computed_once_for_the_same_other_inputs(tmp_path, handed,
                                                                                     routing_filter):
    path = tmp_path / "inputs.json"
    model = {"name": "q", "model": "Qwen/Qwen2.5-0.5B-Instruct", "port": 8000}
    path.write_text(json.dumps({"a": {"vllm_models": [model], "ansible_host": "10.0.0.1"}}))
    handed(path)
    external = [{"model_name": "gpt-4o", "litellm_params": {"model": "openai/gpt-4o"}}]
    first = routing_filter.solv_litellm_routing({}, ["a"], external, None, None)
    assert routing_filter.solv_litellm_routing({}, ["a"], external, None, None) is first
    assert len(routing_filter.computed) == 1
    other = routing_filter.solv_litellm_routing({}, ["a"], [], None, {"routing_strategy": "simple-shuffle"})
    assert len(routing_filter.computed) == 2
    assert other["names"]["all"] == ["q"] and first["names"]["all"] == ["q", "gpt-4o"]
    assert other["router_settings"]["routing_strategy"] == "simple-shuffle"


def test_a_routing_over_the_plays_hostvars_is_computed_each_time(handed, routing_filter):
    """Without the handover the hosts' variables may differ between two calls (facts): nothing is remembered."""
    handed(None)
    model = {"name": "q", "model": "Qwen/Qwen2.5-0.5B-Instruct", "port": 8000}
    hostvars = {"a": {"vllm_models": [model], "ansible_host": "10.0.0.1"}}
    first = routing_filter.solv_litellm_routing(hostvars, ["a"])
    hostvars["a"]["ansible_host"] = "10.0.0.2"
    second = routing_filter.solv_litellm_routing(hostvars, ["a"])
    assert len(routing_filter.computed) == 2
    assert [m["litellm_params"]["api_base"] for m in (first["model_list"][0], second["model_list"][0])] == \
        ["http://10.0.0.1:8000/v1", "http://10.0.0.2:8000/v1"]


def _litellm_config(inv, source) -> dict:
    files = render.render_files(inv, [str(source)], "litellm")
    return yaml.safe_load(next(text for name, text in files.items() if name.endswith("/litellm/config.yaml")))


def test_the_play_routes_from_the_handover_and_renders_the_same_config_as_without_it(tmp_path, monkeypatch):
    """The rendered config.yaml is the same with and without the handover (a generated site: every input plain,
    so all of it is handed over); and the play does read it: an address changed in the handover shows."""
    inventory_gen.write(tmp_path, 6)
    inv = inventory.load([tmp_path])
    handed_inputs = handover.routing_inputs
    with_it = render.render_files(inv, [str(tmp_path)], "litellm")
    monkeypatch.setattr(handover, "routing_inputs", lambda *_: None)
    without = render.render_files(inv, [str(tmp_path)], "litellm")
    assert with_it == without

    def altered(*args):
        inputs = handed_inputs(*args)
        inputs["gpu-0003"]["ansible_host"] = "10.77.0.4"
        return inputs

    monkeypatch.setattr(handover, "routing_inputs", altered)
    bases = {m["litellm_params"].get("api_base", "") for m in _litellm_config(inv, tmp_path)["model_list"]}
    assert any(base.startswith("http://10.77.0.4:") for base in bases)
    assert not any(base.startswith("http://10.20.0.4:") for base in bases)


def test_no_role_sets_a_routing_input_during_a_run():
    """The handover holds because nothing in a run changes these variables of a host: no set_fact, register or
    include_vars file of a role names them (role defaults and vars never reach hostvars)."""
    def names(node):
        if isinstance(node, list):
            for item in node:
                yield from names(item)
        elif isinstance(node, dict):
            for key, value in node.items():
                if key.split(".")[-1] == "set_fact" and isinstance(value, dict):
                    yield from value
                elif key == "register":
                    yield value
                else:
                    yield from names(value)

    task_files = sorted((REPO / "roles").glob("*/tasks/*.yml")) + sorted((REPO / "playbooks").glob("*.yml"))
    set_in_tasks = {name for f in task_files for name in names(yaml.safe_load(f.read_text()))}
    vars_files = {name for f in sorted((REPO / "roles").glob("*/vars/*.yml"))
                  for name in yaml.safe_load(f.read_text()) or {}}
    assert len(set_in_tasks) > 50
    assert (set_in_tasks | vars_files) & set(routing.INPUT_KEYS) == set()
