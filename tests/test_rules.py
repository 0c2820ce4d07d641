"""The rules a role's settings follow (solv_provision.rules), the shared-secret plan and the address helpers:
one implementation, called by the validator and by the roles' preflight and secrets steps."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import INVENTORIES, REPO
from play_runner import play_outcome
from solv_provision import addresses, rules, secrets, spec_check, specs


def _defaults(role):
    """The role's default values as its preflight sees them (a template default is left out: it is resolved there)."""
    return {k: specs.default(k) for k in specs.role_specs()[role].options if specs.default(k) is not None}


def _keys(problems):
    return [key for key, _ in problems]


# --- role rules --------------------------------------------------------------------------------------------


def test_fallbacks_must_be_lists_of_served_models():
    values = {**_defaults("litellm"), "litellm_fallbacks": {"coder": "high-reasoning"}}
    problems = rules.role_problems("litellm", values, {"own_address": "10.0.0.1", "served_models": ["coder"]})
    assert problems == [("litellm_fallbacks.coder", problems[0][1])]
    assert "must be a list of model names" in problems[0][1]


@pytest.mark.parametrize("role", ["openwebui", "litellm", "caddy"])
def test_a_published_bind_address_must_be_an_ip_and_defaults_to_the_host_address(role):
    values = {**_defaults(role), f"{role}_publish": True} if role != "caddy" else _defaults(role)
    context = {"own_address": "10.0.0.1", "served_models": ["m"]}
    assert rules.role_problems(role, values, context) == []
    problems = rules.role_problems(role, values, {**context, "own_address": "gw-1.example"})
    assert _keys(problems) == [f"{role}_bind_address"]
    assert "'gw-1.example' is not an IP address" in problems[0][1]
    if role != "caddy":  # not published (the default): no host address involved
        assert rules.role_problems(role, _defaults(role), {**context, "own_address": "gw-1.example"}) == []


@pytest.mark.parametrize(("values", "keys"), [
    ({"caddy_tls_certificate": "-----BEGIN CERTIFICATE-----\nx"}, ["caddy_tls_key"]),
    ({"caddy_tls_key": "-----BEGIN PRIVATE KEY-----\nx"}, ["caddy_tls_certificate"]),
    ({"caddy_tls_certificate": "not pem", "caddy_tls_key": "nor this"}, ["caddy_tls_certificate", "caddy_tls_key"]),
    ({"caddy_server_names": ["chat.example.org", "bad name", "x}"]}, ["caddy_server_names[1]", "caddy_server_names[2]"]),
    ({"caddy_http_port": 443}, ["caddy_http_port"]),
    ({"caddy_max_request_body": "lots"}, ["caddy_max_request_body"]),
])
def test_caddy_refuses_what_would_break_the_caddyfile_or_tls(values, keys):
    problems = rules.role_problems("caddy", {**_defaults("caddy"), **values}, {"own_address": "10.0.0.1"})
    assert _keys(problems) == keys


@pytest.mark.parametrize("role", ["vllm", "litellm", "searxng", "openwebui", "caddy", "grafana"])
def test_every_service_role_checks_limits_timeouts_and_extra_env(role):
    values = {**_defaults(role), f"{role}_memory_limit": "8 GB", f"{role}_cpu_limit": "-1",
              f"{role}_start_timeout": 0, f"{role}_extra_env": {"BAD-NAME": "x", "OK": "two\nlines"}}
    context = {"own_address": "10.0.0.1", "served_models": ["m"],
               "models": [{"name": "m", "model": "x", "port": 8001, "gpus": [0], "served_model_name": "m",
                           "tensor_parallel_size": 1, "pipeline_parallel_size": 1}]}
    keys = _keys(rules.role_problems(role, values, context))
    assert sorted(keys) == sorted([f"{role}_memory_limit", f"{role}_cpu_limit", f"{role}_start_timeout",
                                   f"{role}_extra_env.BAD-NAME", f"{role}_extra_env.OK"])


_CHOICES = [(role, key) for role in rules.ROLE_RULES for key, spec in specs.role_specs()[role].options.items()
            if spec.get("choices")]


@pytest.mark.parametrize("role, key", _CHOICES)
def test_the_preflight_refuses_a_value_outside_the_choices(role, key):
    """The playbooks import the service roles without Ansible's argument spec check: their preflight refuses a
    value the spec does not list (one of a list's elements too), with the message `validate` gives."""
    spec = specs.role_specs()[role].options[key]
    wrong = ["magic"] if spec.get("type") == "list" else "magic"
    problems = rules.role_problems(role, {**_defaults(role), key: wrong}, {"own_address": "10.0.0.1"})
    assert [message for name, message in problems if name == key] == \
        [message for _, message in spec_check.checker().problems(key, wrong)]
    assert "magic" in dict(problems)[key]


def test_the_preflight_refuses_an_unknown_key_of_a_model():
    model = {"name": "m", "model": "org/m", "port": 8001, "gpus": [0], "tensor_paralel_size": 2}
    problems = rules.role_problems("vllm", {**_defaults("vllm"), "vllm_models": [model]},
                                   {"own_address": "10.0.0.1", "models": []})
    assert dict(problems)["vllm_models[0] (m)"].startswith("unknown key tensor_paralel_size. Supported parameters")


def test_grafana_gets_its_admin_password_only_from_the_role_and_publishes_on_an_ip():
    context = {"own_address": "10.0.0.1"}
    assert rules.role_problems("grafana", _defaults("grafana"), context) == []
    values = {**_defaults("grafana"), "grafana_admin_password": "two\nlines-secret",
              "grafana_extra_env": {"GF_SECURITY_ADMIN_PASSWORD": "x", "GF_SERVER_ROOT_URL": "https://g.example.org"}}
    problems = rules.role_problems("grafana", values, {"own_address": "mon-1.example"})
    assert _keys(problems) == ["grafana_bind_address", "grafana_extra_env.GF_SECURITY_ADMIN_PASSWORD",
                               "grafana_admin_password"]
    assert not any("lines-secret" in message for _, message in problems)  # a rule never echoes a secret


def test_master_key_message_never_echoes_the_key():
    values = {**_defaults("litellm"), "litellm_master_key": "hunter2-secret"}
    problems = rules.role_problems("litellm", values, {"own_address": "10.0.0.1", "served_models": ["m"]})
    assert _keys(problems) == ["litellm_master_key"]
    assert "hunter2" not in problems[0][1]


@pytest.mark.parametrize(("case", "role", "message"), [
    ("plaintext-api-key", "litellm", "litellm_external_models[0] (gpt-4o): litellm_params.api_key is written in plain text"),
    # The preflights learn which served models are embedding models from the inference hosts' variables.
    ("fallback-to-embedding-model", "litellm", "litellm_fallbacks.qwen-7b: 'bge-m3' is an embedding model"),
    ("embedding-model-as-default-chat", "openwebui", "openwebui_default_models[0]: 'bge-m3' is an embedding model"),
    # The site-wide settings every service role depends on (solv_common's preflight).
    ("site-root-dir-relative", "solv_common", "solv_root_dir: must be an absolute path below /"),
    ("site-docker-network-not-a-name", "solv_common", "solv_docker_network: must be a Docker network name"),
    ("site-ready-delay-zero", "solv_common", "solv_container_ready_delay: must be more than 0 and at most 60"),
])
def test_role_preflight_refuses_what_validate_refuses(tmp_path, case, role, message):
    """Plain ansible-playbook (no CLI) runs the role's preflight: the same rule, the same message."""
    inv = INVENTORIES / "broken" / case
    play = tmp_path / "play.yml"
    play.write_text("- hosts: gateway\n  gather_facts: false\n  connection: local\n  tasks:\n"
                    f"    - ansible.builtin.include_role: {{name: {role}, tasks_from: preflight.yml}}\n")
    env = {"ANSIBLE_ROLES_PATH": str(REPO / "roles"), "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
           "PATH": f"{sys.prefix}/bin", "HOME": str(tmp_path), "ANSIBLE_LOCAL_TEMP": str(tmp_path)}
    run = subprocess.run([f"{sys.prefix}/bin/ansible-playbook", "-i", str(inv), str(play),
                          "-e", json.dumps({"ansible_python_interpreter": sys.executable})],
                         capture_output=True, text=True, env=env, cwd=REPO, timeout=300)
    assert run.returncode != 0
    assert message in run.stdout


@pytest.mark.parametrize(("extra", "message"), [
    ({}, "vllm_models list GPUs and vllm_gpu_mode is auto, but solv_gpu_runtime is not known"),
    ({"solv_gpu_runtime": "gpu"}, "vllm_gpu_mode auto follows solv_gpu_runtime, which is gpu; expected cdi, gpus or none"),
    ({"solv_gpu_runtime": "cdi"}, None),
    ({"vllm_gpu_mode": "gpus"}, None),
])
def test_the_vllm_preflight_refuses_instances_with_gpus_and_no_known_gpu_runtime(tmp_path, extra, message):
    """vllm_gpu_mode auto runs the instances the way the toolkit role found (solv_gpu_runtime, else the local fact a
    previous run stored): where neither is known, instances that list GPUs are refused, not run without them."""
    inventory = {"all": {"children": {
        "inference": {"hosts": {"gpu-1": {
            "ansible_host": "192.0.2.11", "ansible_connection": "local", "ansible_python_interpreter": sys.executable,
            "vllm_models": [{"name": "qwen-7b", "model": "Qwen/Qwen2.5-7B-Instruct", "gpus": [0], "port": 8001}]}}},
        "gateway": {"hosts": {"gw-1": {"ansible_host": "192.0.2.10"}}}}}}
    play = ("- hosts: inference\n  gather_facts: false\n  tasks:\n"
            "    - ansible.builtin.include_role: {name: vllm, tasks_from: preflight.yml}\n")
    returncode, _, output = play_outcome(tmp_path, inventory, play, args=("-e", json.dumps(extra)))
    if message is None:
        assert returncode == 0, output
    else:
        assert returncode != 0 and message in output, output


# --- shared secrets ----------------------------------------------------------------------------------------

GROUPS = {"inference": ["gpu-1", "gpu-2"], "gateway": ["gw-1", "gw-2"]}


def _plan(wanted, host, hostvars=None, render=False):
    hostvars = {h: {} for hs in GROUPS.values() for h in hs} | (hostvars or {})
    return secrets.secret_plan(wanted, host=host, hostvars=hostvars, groups=GROUPS, root_dir="/opt/solv", render=render)


def test_shared_secret_is_read_on_its_owner_with_its_own_length_and_prefix():
    plan = _plan([{"name": "litellm_master_key", "length": 5}, {"name": "vllm_api_key"}], "gw-2")
    assert plan["known"] == {}
    assert plan["reads"] == [
        {"owner": "gw-1", "dir": "/opt/solv/secrets", "secrets": [{"name": "litellm_master_key", "length": 48, "prefix": "sk-"}]},
        {"owner": "gpu-1", "dir": "/opt/solv/secrets", "secrets": [{"name": "vllm_api_key", "length": 48, "prefix": ""}]},
    ]


def test_inventory_value_on_the_owner_wins_and_an_earlier_read_is_reused():
    plan = _plan([{"name": "litellm_master_key"}, {"name": "vllm_api_key"}], "gw-2", hostvars={
        "gw-1": {"litellm_master_key": "sk-from-vault"},
        "gpu-1": {"solv_secret_values": {"vllm_api_key": "read-earlier"}, "solv_root_dir": "/srv/solv"},
    })
    assert plan == {"known": {"litellm_master_key": "sk-from-vault", "vllm_api_key": "read-earlier"}, "reads": []}


def test_what_an_owner_s_own_reading_brought_is_known_to_the_hosts_that_share_its_secret():
    """The owner's reading of itself (host_read.yml) keeps its secret files in its own fact: a host whose shared
    secret that owner keeps plans no read of its own in the same step (the owner's values are not set yet then)."""
    wanted = [{"name": "litellm_master_key"}, {"name": "openwebui_secret_key", "value": "", "length": 48}]
    gw1 = {secrets.FILES_FACT: {"gw-1": {"litellm_master_key": "sk-1", "openwebui_secret_key": "gw-1's"}}}
    plan = _plan(wanted, "gw-2", hostvars={"gw-1": gw1})
    assert plan["known"] == {"litellm_master_key": "sk-1"}
    assert [r["owner"] for r in plan["reads"]] == ["gw-2"]  # gw-1's file never stands in for gw-2's own secret


def test_files_an_earlier_read_returned_are_known_by_owner_only():
    """A read returns all of its owner's secret files: a later role of the run reads nothing from that owner,
    and a file of one host never stands in for another host's secret of the same name."""
    read = [{"item": {"owner": "gw-1"}, "files": {"litellm_master_key": "sk-1", "openwebui_secret_key": "gw-1's"}}]
    files = secrets.files_read({}, read)
    assert files == {"gw-1": {"litellm_master_key": "sk-1", "openwebui_secret_key": "gw-1's"}}
    wanted = [{"name": "litellm_master_key"}, {"name": "openwebui_secret_key", "value": "", "length": 48}]
    on_gw1 = secrets.secret_plan(wanted, host="gw-1", hostvars={"gw-1": {}, "gw-2": {}}, groups=GROUPS,
                                 root_dir="/opt/solv", files=files)
    assert on_gw1 == {"known": {"litellm_master_key": "sk-1", "openwebui_secret_key": "gw-1's"}, "reads": []}
    on_gw2 = secrets.secret_plan(wanted, host="gw-2", hostvars={"gw-1": {}, "gw-2": {}}, groups=GROUPS,
                                 root_dir="/opt/solv", files=files)
    assert on_gw2["known"] == {"litellm_master_key": "sk-1"}
    assert [r["owner"] for r in on_gw2["reads"]] == ["gw-2"]
    # A later read of the same owner adds to what is known (a generated secret, a rotated one replaces).
    later = secrets.files_read(files, [{"item": {"owner": "gw-1"}, "files": {"openwebui_secret_key": "new"}},
                                       {"item": {"owner": "gpu-1"}, "skipped": True}])
    assert later == {"gw-1": {"litellm_master_key": "sk-1", "openwebui_secret_key": "new"}}


def test_per_host_secrets_stay_on_the_host_and_render_contacts_nobody():
    wanted = [{"name": "searxng_secret_key", "value": "", "length": 48}]
    assert _plan(wanted, "gw-2")["reads"][0]["owner"] == "gw-2"
    assert _plan(wanted, "gw-2", render=True) == {"known": {"searxng_secret_key": "<secret:searxng_secret_key>"}, "reads": []}
    plan = _plan([{"name": "vllm_api_key"}], "gw-1")
    assert secrets.collect(plan, [{"values": {"vllm_api_key": "v"}}]) == {"vllm_api_key": "v"}


# --- addresses ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("bind", "own", "expected"), [
    ("", "10.0.0.5", {"address": "10.0.0.5", "publish": "10.0.0.5", "probe": "10.0.0.5"}),
    ("0.0.0.0", "10.0.0.5", {"address": "0.0.0.0", "publish": "0.0.0.0", "probe": "127.0.0.1"}),
    ("::", "10.0.0.5", {"address": "::", "publish": "[::]", "probe": "[::1]"}),
    ("", "fd00::5", {"address": "fd00::5", "publish": "[fd00::5]", "probe": "[fd00::5]"}),
])
def test_listen_publish_and_probe_addresses(bind, own, expected):
    assert addresses.listen(bind, own) == expected
    assert addresses.is_ip_address(expected["address"])
