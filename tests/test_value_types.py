"""Values are used as given: every variable of every argument spec refuses a value of the wrong type (or an
int below its range, an empty name) in the validator and in the service roles' preflight (rules.role_problems),
instead of Ansible's coercion turning it into something else. Role defaults pass."""

from __future__ import annotations

import pytest

from solv_provision import rules, specs, value_types

OPTIONS = [(role, name, opt) for role, spec in specs.role_specs().items() for name, opt in spec.options.items()]


def _wrong(name, opt):
    """A value of the wrong kind for the option, and what the message must say."""
    kind = opt.get("type", "str")
    if kind == "list":
        return "a b", "must be a list"
    if kind == "dict":
        return "key=value", "must be a mapping"
    if kind == "int":
        return "8", "must be an integer, got the string '8'"
    if kind == "bool":
        return "yes", "must be true or false, got the string 'yes'"
    if kind == "float":
        return "0.5", "must be a number"
    if kind in ("str", "path"):  # a secret's value is never echoed
        return 0.10, "must be a string, got " + ("a float" if opt.get("no_log") else "the number 0.1")
    return None, None


@pytest.mark.parametrize(("role", "name", "opt"), OPTIONS, ids=[f"{r}.{n}" for r, n, _ in OPTIONS])
def test_a_value_of_the_wrong_type_is_refused_by_name(role, name, opt):
    value, says = _wrong(name, opt)
    if value is None:
        pytest.skip("raw: any value")
    problems = value_types.problems(name, opt, value)
    assert [label for label, _ in problems] == [name] and says in problems[0][1], problems
    if role in rules.ROLE_RULES:  # the preflight path refuses it too, once
        values = {k: specs.default(k) for k in specs.role_specs()[role].options
                  if specs.default(k) is not None} | {name: value}
        context = {"own_address": "10.0.0.1", "served_models": ["qwen"]}
        found = [(k, m) for k, m in rules.role_problems(role, values, context) if k == name]
        assert found == problems


@pytest.mark.parametrize(("role", "name", "opt"), [o for o in OPTIONS if o[2].get("type") == "int"],
                         ids=[f"{r}.{n}" for r, n, o in OPTIONS if o.get("type") == "int"])
def test_an_int_below_its_range_is_refused(role, name, opt):
    low = 0 if name in value_types.ZERO_OK else 1
    assert value_types.problems(name, opt, low - 1), f"{name}: {low - 1} accepted"
    assert not value_types.problems(name, opt, max(low, 1))


@pytest.mark.parametrize(("role", "name", "opt"), [o for o in OPTIONS if o[2].get("type", "str") == "str"],
                         ids=[f"{r}.{n}" for r, n, o in OPTIONS if o.get("type", "str") == "str"])
def test_an_empty_string_passes_only_where_empty_means_something(role, name, opt):
    refused = bool(value_types.problems(name, opt, ""))
    assert refused == (specs.default(name) != "" and not name.endswith("_bind_address"))


def test_role_defaults_pass():
    for role, spec in specs.role_specs().items():
        for name, opt in spec.options.items():
            value = spec.defaults.get(name)
            assert not value_types.problems(name, opt, value), (role, name, value)


def test_sub_options_are_checked_as_used():
    opt = specs.all_options()["vllm_models"][1]
    entry = {"name": "a", "model": "m", "port": 8001, "extra_args": "--max-num-seqs 8", "served_model_name": "",
             "tensor_parallel_size": 0, "gpus": [0, -1], "gpu_memory_utilization": "0.9", "image_tag": 0.1}
    labels = {label: message for label, message in value_types.problems("vllm_models", opt, [entry])}
    assert set(labels) == {"vllm_models[0] (a).extra_args", "vllm_models[0] (a).served_model_name",
                           "vllm_models[0] (a).tensor_parallel_size", "vllm_models[0] (a).gpus[1]",
                           "vllm_models[0] (a).gpu_memory_utilization", "vllm_models[0] (a).image_tag"}


def test_a_secret_is_never_echoed():
    opt = specs.all_options()["litellm_master_key"][1]
    assert value_types.problems("litellm_master_key", opt, ["sk-secret-value"]) == [
        ("litellm_master_key", "must be a string, got a list")]


def test_null_is_refused_where_the_role_has_a_default_value():
    """`vllm_image_tag:` with nothing after it would become the tag "None"."""
    options = specs.all_options()
    assert value_types.problems("vllm_image_tag", options["vllm_image_tag"][1], None) == [
        ("vllm_image_tag", "is null (nothing after the colon): give it a value, or leave it out for the role's default")]
    assert value_types.problems("vllm_hf_cache_dir", options["vllm_hf_cache_dir"][1], None)  # a template default
    assert not value_types.problems("solv_internal_address", options["solv_internal_address"][1], None)  # none
