"""Inventories drawn from the roles' argument specs (hypothesis), valid and invalid: `validate` never shows a
traceback and exits 0 or 2; an inventory built only from values the specs allow is accepted, `render all`
succeeds on it and its LiteLLM config loads. Bounded examples: each run of Ansible takes seconds."""

from __future__ import annotations

import string
import tempfile
from pathlib import Path

import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from solv_provision import specs
from solv_provision.cli import main
from solv_provision.services import GROUP_ROLES

HOSTS = {"all": {"children": {"inference": {"hosts": {"gpu-1": {"ansible_host": "192.0.2.11"}}},
                              "gateway": {"hosts": {"gw-1": {"ansible_host": "192.0.2.10"}}}}}}
MODELS = [{"name": "qwen-7b", "model": "Qwen/Qwen2.5-7B-Instruct", "gpus": [0], "port": 8001}]
OPTIONS = specs.all_options()
INFERENCE = sorted(k for k, (role, _) in OPTIONS.items() if role in ("vllm", "solv_common") and k != "vllm_models")
GATEWAY = sorted(k for k, (role, _) in OPTIONS.items() if role in GROUP_ROLES["gateway"])

# Anything YAML can hold, templates and empty strings included.
_TEXT = st.text(alphabet=string.ascii_letters + string.digits + " -_./:{}%'\"", max_size=14)
_SCALAR = st.one_of(st.none(), st.booleans(), st.integers(-3, 70000), st.floats(-2, 2, allow_nan=False), _TEXT)
ANYTHING = st.recursive(_SCALAR, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                        st.dictionaries(_TEXT, inner, max_size=3)), max_leaves=6)


def _run(*args):
    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=True)
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output, result.output
    return result


def _inventory(root: Path, inference: dict, gateway: dict) -> Path:
    (root / "host_vars").mkdir()
    (root / "group_vars").mkdir()
    (root / "hosts.yml").write_text(yaml.safe_dump(HOSTS))
    (root / "host_vars" / "gpu-1.yml").write_text(yaml.safe_dump({"vllm_models": MODELS, **inference}))
    (root / "group_vars" / "gateway.yml").write_text(yaml.safe_dump(gateway))
    return root


def _entries(option):
    """Lists of entries shaped like a list-of-dicts option (its keys, any values): deeper than ANYTHING reaches."""
    subs = OPTIONS[option][1]["options"]
    required = {k: ANYTHING for k, o in subs.items() if o.get("required")}
    entry = st.fixed_dictionaries(required, optional={k: ANYTHING for k in subs if k not in required})
    return st.lists(entry, max_size=3)


def _settings(keys):
    values = {k: st.one_of(_entries(k), ANYTHING) if OPTIONS[k][1].get("options") else ANYTHING for k in keys}
    return st.lists(st.sampled_from(keys), max_size=4, unique=True).flatmap(
        lambda chosen: st.fixed_dictionaries({k: values[k] for k in chosen}))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(inference=_settings(INFERENCE), gateway=_settings(GATEWAY),
       models=st.one_of(st.just(MODELS), _entries("vllm_models"), ANYTHING))
def test_validate_answers_any_inventory_with_0_or_2(inference, gateway, models):
    with tempfile.TemporaryDirectory() as tmp:
        root = _inventory(Path(tmp), {**inference, "vllm_models": models}, gateway)
        assert _run("validate", "-i", root).exit_code in (0, 2)


# Values the specs allow, for settings whose type is all that matters (no addresses, ports, keys or URLs).
ALLOWED = {
    "vllm_start_timeout": st.integers(1, 7200),
    "vllm_ipc_host": st.booleans(),
    "vllm_start_parallel": st.booleans(),
    "vllm_extra_env": st.dictionaries(st.from_regex(r"[A-Z][A-Z0-9_]{0,8}", fullmatch=True), _TEXT, max_size=2),
    "litellm_num_workers": st.integers(1, 4),
    "litellm_log_level": st.sampled_from(["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]),
    "litellm_disable_admin_ui": st.booleans(),
    "litellm_start_timeout": st.integers(1, 600),
    "openwebui_enable_signup": st.booleans(),
    "openwebui_web_search_result_count": st.integers(1, 10),
    "searxng_limiter": st.just(False),
}
INSTANCE = st.fixed_dictionaries({}, optional={
    "served_model_name": st.from_regex(r"[a-z][a-z0-9.-]{0,10}", fullmatch=True),
    "max_model_len": st.integers(1, 131072),
    "gpu_memory_utilization": st.floats(0.05, 1.0),
    "extra_args": st.lists(st.sampled_from(["--max-num-seqs", "8", "--enforce-eager"]), max_size=3),
})


@settings(max_examples=2, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(chosen=st.fixed_dictionaries({}, optional=ALLOWED), instance=INSTANCE)
def test_an_inventory_of_allowed_values_is_accepted_and_renders(chosen, instance):
    inference = {k: v for k, v in chosen.items() if k.startswith("vllm_")}
    gateway = {k: v for k, v in chosen.items() if not k.startswith("vllm_")}
    with tempfile.TemporaryDirectory() as tmp:
        root = _inventory(Path(tmp), {**inference, "vllm_models": [{**MODELS[0], **instance}]}, gateway)
        validated = _run("validate", "-i", root)
        assert validated.exit_code == 0, validated.output
        rendered = _run("render", "all", "-i", root)
        assert rendered.exit_code == 0, rendered.output[-3000:]
        text = rendered.output.split("# --- gw-1/opt/solv/litellm/config.yaml\n", 1)[1].split("\n# --- ", 1)[0]
        config = yaml.safe_load(text)
        served = instance.get("served_model_name") or MODELS[0]["name"]
        assert [m["model_name"] for m in config["model_list"]] == [served]
