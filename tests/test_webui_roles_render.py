"""The searxng and openwebui roles, rendered offline by Ansible itself (no Docker, no host): a few seconds.

One `ansible-playbook` run over a local inventory whose hosts are scenarios. Each host runs the roles' `main`
entry point (argument specs, preflight, secrets, configure) with solv_render=true, so files land below a
temporary folder and nothing is started. Hosts named bad_* must be stopped by the preflight; the others must
render files that the tests below read back the way SearXNG, Docker and Open WebUI would.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]

GOOD = {
    "default": {"ansible_host": "10.0.0.5"},
    "custom": {
        "ansible_host": "10.0.0.6",
        "searxng_publish": True,
        "searxng_port": 8888,
        "searxng_bind_address": "127.0.0.1",
        "searxng_limiter": True,
        "searxng_valkey_url": "valkey://solv-valkey:6379/0",
        "searxng_limiter_pass_ip": ["172.16.0.0/12"],
        "searxng_base_url": "https://search.example.org/",
        "searxng_engines": [{"name": "bing", "disabled": False}],
        "searxng_engines_keep_only": ["bing", "wikipedia"],
        "searxng_settings": {"outgoing": {"request_timeout": 5.0}, "server": {"image_proxy": True}},
        "openwebui_publish": True,
        "openwebui_bind_address": "::1",
        "openwebui_port": 3000,
        "openwebui_offline": True,
        "openwebui_web_search_fetch_pages": False,
        "openwebui_rag_embedding_engine": "openai",
        "openwebui_rag_embedding_model": "bge-m3",
        "openwebui_enable_signup": True,
        "openwebui_default_user_role": "user",
        "openwebui_url": "https://chat.example.org",
        "openwebui_openai_api_base_url": "http://10.0.0.9:4000/v1",
        "openwebui_extra_env": {"WEBUI_NAME": "SOLV Chat", "ENABLE_SIGNUP": False, "RAG_TOP_K": 5},
    },
    # Values from a vault are used verbatim, YAML-special characters included.
    "vault": {
        "ansible_host": "10.0.0.7",
        "searxng_secret_key": "k: #not-a-comment 'q' \"dq\"",
        "openwebui_secret_key": "s3cret: with # hash",
        "openwebui_admin_password": "pw with spaces",
        "openwebui_openai_api_key": "sk-from-the-vault",
        "openwebui_web_search": False,
    },
}
# Stopped by the preflight of one role (the play runs only that role on them), without Ansible's argument spec
# check, as the playbooks import the service roles: wrong types and choices included.
BAD_SEARXNG = {
    "bad_formats": {"searxng_formats": ["html"]},
    "bad_limiter": {"searxng_limiter": True},
    "bad_settings_secret": {"searxng_settings": {"server": {"secret_key": "x"}}},
    "bad_type": {"searxng_port": "not-a-port"},
}
BAD_OPENWEBUI = {
    "bad_bind_name": {"ansible_host": "gw.example.org", "openwebui_publish": True},
    "bad_email": {"openwebui_admin_email": "admin"},
    "bad_password": {"openwebui_admin_password": "\u00e4" * 37},  # 74 bytes of UTF-8
    "bad_rag": {"openwebui_rag_embedding_engine": "openai"},
    "bad_env": {"openwebui_extra_env": {"X": "two\nlines"}},
    "bad_choice": {"openwebui_rag_embedding_engine": "magic"},
}
BAD = {**BAD_SEARXNG, **BAD_OPENWEBUI}

PLAY = """
- name: Render searxng
  hosts: good:bad_searxng
  gather_facts: false
  connection: local
  tasks:
    - name: SearXNG
      ansible.builtin.include_role:
        name: searxng
        rolespec_validate: false

- name: Render openwebui
  hosts: good:bad_openwebui
  gather_facts: false
  connection: local
  tasks:
    - name: Open WebUI
      ansible.builtin.include_role:
        name: openwebui
        rolespec_validate: false
"""


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("webui-render")
    out = tmp / "out"
    groups = {}
    for group, scenarios in (("good", GOOD), ("bad_searxng", BAD_SEARXNG), ("bad_openwebui", BAD_OPENWEBUI)):
        groups[group] = {"hosts": {}}
        for i, (name, hostvars) in enumerate(scenarios.items()):
            groups[group]["hosts"][name] = {
                "ansible_host": f"10.0.{len(groups)}.{i + 10}",
                **hostvars,
                "ansible_python_interpreter": sys.executable,
                "solv_render": True,
                "solv_render_out": str(out),
                "solv_root_dir": f"{out}/{name}/opt/solv",
                "solv_systemd_dir": f"{out}/{name}/etc/systemd/system",
            }
            (out / name / "etc/systemd/system").mkdir(parents=True)
    inventory = {"all": {"children": {"gateway": {"children": groups}}}}
    (tmp / "inventory.yml").write_text(yaml.safe_dump(inventory))
    (tmp / "play.yml").write_text(PLAY)
    env = {
        **os.environ,
        "ANSIBLE_ROLES_PATH": str(REPO / "roles"),
        "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json",
        "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
        "ANSIBLE_FORKS": "20",
    }
    ansible_playbook = Path(sys.executable).with_name("ansible-playbook")
    proc = subprocess.run(
        [str(ansible_playbook), "-i", str(tmp / "inventory.yml"), str(tmp / "play.yml")],
        cwd=tmp, env=env, capture_output=True, text=True, timeout=300,
    )
    result = json.loads(proc.stdout[proc.stdout.index("{"):])
    failed_tasks = {}
    for play in result["plays"]:
        for task in play["tasks"]:
            for host, res in task["hosts"].items():
                if res.get("failed"):
                    failed_tasks[host] = (task["task"]["name"], res.get("msg", ""))
    return {"out": out, "stats": result["stats"], "failed": failed_tasks, "stderr": proc.stderr}


def files(rendered, host):
    root = rendered["out"] / host
    return {"/" + str(p.relative_to(root)): p for p in root.rglob("*") if p.is_file()}


def env_file(path: Path) -> dict[str, str]:
    """NAME='value' lines (sh syntax) as a dict."""
    return dict(shlex.split(line)[0].split("=", 1) for line in path.read_text().splitlines() if line and not line.startswith("#"))


def program(args: list[str], image: str) -> list[str]:
    """What the container runs: after the image, sh -c <wrapper that sources the env file> solv-env <program>."""
    tail = args[args.index(image) + 1:]
    assert tail[:1] == ["-c"] and ". /run/solv/env" in tail[1] and tail[2] == "solv-env", tail
    assert option_values(args, "--entrypoint") == ["/bin/sh"]
    return tail[3:]


def exec_start(unit: Path) -> list[str]:
    text = unit.read_text().replace("\\\n", " ")
    line = next(line for line in text.splitlines() if line.startswith("ExecStart="))
    return shlex.split(line.removeprefix("ExecStart="))


def option_values(args: list[str], option: str) -> list[str]:
    return [args[i + 1] for i, a in enumerate(args[:-1]) if a == option]


@pytest.mark.parametrize("host", sorted(GOOD))
def test_good_hosts_render(rendered, host):
    assert rendered["stats"][host]["failures"] == 0, (rendered["failed"].get(host), rendered["stderr"][-2000:])
    assert set(files(rendered, host)) == {
        "/opt/solv/searxng/settings.yml",
        "/opt/solv/searxng/limiter.toml",
        "/opt/solv/searxng/env",
        "/opt/solv/openwebui/env",
        "/etc/systemd/system/solv-searxng.service",
        "/etc/systemd/system/solv-openwebui.service",
        "/opt/solv/gates/solv-searxng.json",
        "/opt/solv/gates/solv-openwebui.json",
    }


@pytest.mark.parametrize(
    "host, words",
    [
        ("bad_formats", ["json"]),
        ("bad_limiter", ["searxng_valkey_url"]),
        ("bad_settings_secret", ["secret_key"]),
        ("bad_bind_name", ["gw.example.org", "IP address"]),
        ("bad_email", ["openwebui_admin_email"]),
        ("bad_password", ["72 bytes"]),
        ("bad_rag", ["openwebui_rag_embedding_model"]),
        ("bad_env", ["openwebui_extra_env"]),
        ("bad_choice", ["openwebui_rag_embedding_engine", "magic"]),
        ("bad_type", ["searxng_port"]),
    ],
)
def test_bad_hosts_are_stopped_before_any_file(rendered, host, words):
    assert rendered["stats"][host]["failures"] == 1
    _, msg = rendered["failed"][host]
    for word in words:
        assert word in msg, msg
    assert files(rendered, host) == {}


def test_searxng_default_settings(rendered):
    f = files(rendered, "default")
    settings = yaml.safe_load(f["/opt/solv/searxng/settings.yml"].read_text())
    assert settings == {
        "use_default_settings": True,
        "server": {"limiter": False, "public_instance": False, "base_url": False},
        "search": {"formats": ["html", "json"]},
        "valkey": {"url": False},
    }
    assert f["/opt/solv/searxng/settings.yml"].read_text().startswith("#")  # ansible_managed
    assert oct(f["/opt/solv/searxng/env"].stat().st_mode & 0o777) == "0o600"
    env = env_file(f["/opt/solv/searxng/env"])
    assert env == {"SEARXNG_SECRET": "<secret:searxng_secret_key>", "GRANIAN_HOST": "0.0.0.0"}


def test_searxng_default_container(rendered):
    args = exec_start(files(rendered, "default")["/etc/systemd/system/solv-searxng.service"])
    assert args[:2] == ["/usr/bin/docker", "run"]
    assert option_values(args, "--name") == ["solv-searxng"]
    assert option_values(args, "--network") == ["solv"]
    assert option_values(args, "--publish") == []
    assert option_values(args, "--user") == ["977:977"]
    root = str(rendered["out"] / "default" / "opt/solv")
    assert option_values(args, "--volume") == [
        f"{root}/searxng/env:/run/solv/env:ro",
        f"{root}/searxng/settings.yml:/etc/searxng/settings.yml:ro",
        f"{root}/searxng/limiter.toml:/etc/searxng/limiter.toml:ro",
        f"{root}/data/searxng:/var/cache/searxng",
    ]
    tomllib = pytest.importorskip("tomllib")
    limiter = tomllib.loads(files(rendered, "default")["/opt/solv/searxng/limiter.toml"].read_text())
    assert limiter == {"botdetection": {"ip_lists": {"pass_ip": []}}}
    assert program(args, "docker.io/searxng/searxng:2026.9.25-12f8b6515") == [
        "<entrypoint of docker.io/searxng/searxng:2026.9.25-12f8b6515>",
        "<command of docker.io/searxng/searxng:2026.9.25-12f8b6515>"]  # render cannot read the image


def test_searxng_custom(rendered):
    f = files(rendered, "custom")
    settings = yaml.safe_load(f["/opt/solv/searxng/settings.yml"].read_text())
    assert settings["use_default_settings"] == {"engines": {"keep_only": ["bing", "wikipedia"]}}
    assert settings["server"] == {"limiter": True, "public_instance": False,
                                  "base_url": "https://search.example.org/", "image_proxy": True}
    assert settings["valkey"] == {"url": "valkey://solv-valkey:6379/0"}
    assert settings["engines"] == [{"name": "bing", "disabled": False}]
    assert settings["outgoing"] == {"request_timeout": 5.0}
    tomllib = pytest.importorskip("tomllib")
    limiter = tomllib.loads(f["/opt/solv/searxng/limiter.toml"].read_text())
    assert limiter == {"botdetection": {"ip_lists": {"pass_ip": ["172.16.0.0/12"]}}}
    args = exec_start(f["/etc/systemd/system/solv-searxng.service"])
    assert option_values(args, "--publish") == ["127.0.0.1:8888:8080"]


def test_openwebui_default_env(rendered):
    f = files(rendered, "default")
    path = f["/opt/solv/openwebui/env"]
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    env = env_file(path)
    assert env["OPENAI_API_BASE_URL"] == "http://solv-litellm:4000/v1"
    assert env["OPENAI_API_KEY"] == "<secret:litellm_master_key>"
    assert env["WEBUI_SECRET_KEY"] == "<secret:openwebui_secret_key>"
    assert env["WEBUI_ADMIN_PASSWORD"] == "<secret:openwebui_admin_password>"
    assert env["WEBUI_ADMIN_EMAIL"] == "admin@localhost"
    expected = {
        "ENABLE_OLLAMA_API": "False", "ENABLE_OPENAI_API": "True", "WEBUI_AUTH": "True", "ENABLE_SIGNUP": "False",
        "ENABLE_PERSISTENT_CONFIG": "False", "DEFAULT_USER_ROLE": "pending", "DATA_DIR": "/app/backend/data",
        "ENABLE_WEB_SEARCH": "True", "WEB_SEARCH_ENGINE": "searxng",
        "SEARXNG_QUERY_URL": "http://solv-searxng:8080/search?q=<query>",
        "BYPASS_EMBEDDING_AND_RETRIEVAL": "True", "BYPASS_WEB_SEARCH_EMBEDDING_AND_RETRIEVAL": "True",
        "BYPASS_WEB_SEARCH_WEB_LOADER": "False",
    }
    assert {k: env.get(k) for k in expected} == expected
    assert "OFFLINE_MODE" not in env and "WEBUI_URL" not in env


def test_openwebui_default_container(rendered):
    args = exec_start(files(rendered, "default")["/etc/systemd/system/solv-openwebui.service"])
    assert option_values(args, "--name") == ["solv-openwebui"]
    assert option_values(args, "--network") == ["solv"]
    # Not published: users reach it through the entry point (caddy), containers on the solv network.
    assert option_values(args, "--publish") == []
    root = str(rendered["out"] / "default" / "opt/solv")
    assert option_values(args, "--volume") == [f"{root}/openwebui/env:/run/solv/env:ro",
                                                f"{root}/data/openwebui:/app/backend/data"]
    assert program(args, "ghcr.io/open-webui/open-webui:v0.12.4")[0] == "<entrypoint of ghcr.io/open-webui/open-webui:v0.12.4>"


def test_openwebui_custom(rendered):
    f = files(rendered, "custom")
    env = env_file(f["/opt/solv/openwebui/env"])
    assert env["OFFLINE_MODE"] == "True" and env["HF_HUB_OFFLINE"] == "1"
    assert env["BYPASS_WEB_SEARCH_WEB_LOADER"] == "True"
    assert env["RAG_EMBEDDING_ENGINE"] == "openai" and env["RAG_EMBEDDING_MODEL"] == "bge-m3"
    assert env["RAG_OPENAI_API_BASE_URL"] == env["OPENAI_API_BASE_URL"] == "http://10.0.0.9:4000/v1"
    assert env["RAG_OPENAI_API_KEY"] == env["OPENAI_API_KEY"]
    assert env["BYPASS_EMBEDDING_AND_RETRIEVAL"] == "False"
    assert env["WEBUI_URL"] == "https://chat.example.org"
    assert env["DEFAULT_USER_ROLE"] == "user"
    # openwebui_extra_env has the last word, as strings.
    assert env["WEBUI_NAME"] == "SOLV Chat" and env["ENABLE_SIGNUP"] == "False" and env["RAG_TOP_K"] == "5"
    args = exec_start(f["/etc/systemd/system/solv-openwebui.service"])
    assert option_values(args, "--publish") == ["[::1]:3000:8080"]


def test_vault_values_verbatim(rendered):
    f = files(rendered, "vault")
    assert env_file(f["/opt/solv/searxng/env"])["SEARXNG_SECRET"] == "k: #not-a-comment 'q' \"dq\""
    env = env_file(f["/opt/solv/openwebui/env"])
    assert env["WEBUI_SECRET_KEY"] == "s3cret: with # hash"
    assert env["WEBUI_ADMIN_PASSWORD"] == "pw with spaces"
    assert env["OPENAI_API_KEY"] == "sk-from-the-vault"
    assert env["ENABLE_WEB_SEARCH"] == "False" and "SEARXNG_QUERY_URL" not in env


@pytest.mark.parametrize("role", ["searxng", "openwebui"])
def test_every_default_is_a_documented_input(role):
    defaults = yaml.safe_load((REPO / "roles" / role / "defaults/main.yml").read_text())
    spec = yaml.safe_load((REPO / "roles" / role / "meta/argument_specs.yml").read_text())
    options = spec["argument_specs"]["main"]["options"]
    assert set(defaults) == set(options)
    assert all(name.startswith(role + "_") for name in options)
    assert all(opt.get("type") and opt.get("description") for opt in options.values())
    secret_names = {n for n in options if n.endswith(("_key", "_password"))} - {"openwebui_openai_api_key"}
    assert all(options[n].get("no_log") for n in secret_names | {"openwebui_openai_api_key"} if n in options)
