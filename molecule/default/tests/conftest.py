"""Shared helpers of the default scenario's vLLM/LiteLLM tests (test_vllm.py, test_litellm.py).

Everything runs on the all-in-one test host through testinfra: files, units, `docker inspect`, and HTTP
requests made by the host's python3 (as a client on the host's network would).
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest
import yaml

ROOT = "/opt/solv"
# The entry point's private CA (role caddy copies it here; `solv-provision secrets show caddy_ca_certificate`).
CA = f"{ROOT}/secrets/caddy_ca_certificate"

# One HTTP request from the test host. argv: method url headers-json body; prints {"status", "body"}.
# https is verified against the entry point's CA, as a client given that CA would.
# A streamed body is read to the end (the SSE text comes back whole).
_REQUEST = (
    "import json, ssl, sys, urllib.request, urllib.error\n"
    "method, url, headers, body = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), sys.argv[4]\n"
    f"context = ssl.create_default_context(cafile={CA!r}) if url.startswith('https:') else None\n"
    "opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=context))\n"
    "req = urllib.request.Request(url, data=body.encode() if body else None, headers=headers, method=method)\n"
    "try:\n"
    "    r = opener.open(req, timeout=60)\n"
    "    out = {'status': r.status, 'body': r.read().decode(), 'type': r.headers.get('Content-Type', '')}\n"
    "except urllib.error.HTTPError as e:\n"
    "    out = {'status': e.code, 'body': e.read().decode(), 'type': ''}\n"
    "except OSError as e:\n"
    "    out = {'status': -1, 'body': str(e), 'type': ''}\n"
    "print(json.dumps(out))\n"
)


def http(host, method, url, token="", payload=None, raw=None, content_type="application/json"):
    """{'status', 'body', 'type', 'json' (when the body is JSON)} of one request from the test host.
    raw: a text body sent as is (with its content_type) instead of the JSON of payload."""
    headers = {"Content-Type": content_type}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    body = raw if raw is not None else (json.dumps(payload) if payload is not None else "")
    # The token goes over argv of a short-lived process on a test host: acceptable in a test, never in a role.
    out = host.check_output("python3 -c %s %s %s %s %s", _REQUEST, method, url, json.dumps(headers), body)
    result = json.loads(out)
    try:
        result["json"] = json.loads(result["body"])
    except ValueError:
        pass
    return result


def secret(host, name):
    return host.file(f"{ROOT}/secrets/{name}").content_string.strip()


def env_file(host, path):
    """A container's env file (NAME='value' lines, sh syntax) as a dict."""
    lines = host.file(path).content_string.splitlines()
    return dict(shlex.split(line)[0].split("=", 1) for line in lines if line and not line.startswith("#"))


def _main_pid(host, name):
    # Read from the host's side: `docker exec` into a container of a non-root user fails on these nested test
    # hosts ("error executing setns process"), and /proc of the host shows every container's processes.
    # The container's PID 1 is Docker's init (solv_common runs every container with --init): the service is its child.
    init = int(host.check_output("docker inspect --format '{{.State.Pid}}' %s", name))
    [child] = host.file(f"/proc/{init}/task/{init}/children").content_string.split()
    return int(child)


def process_env(host, name):
    """The environment of a container's main process (what the program sees; docker inspect shows none of it)."""
    raw = host.check_output("tr '\\0' '\\n' < /proc/%s/environ", str(_main_pid(host, name)))
    return dict(line.split("=", 1) for line in raw.splitlines() if "=" in line)


def process_uid(host, name):
    """The uid a container's main process runs as."""
    status = host.file(f"/proc/{_main_pid(host, name)}/status").content_string
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("Uid:")))


def inspect(host, name):
    return json.loads(host.check_output("docker inspect %s", name))[0]


def container_url(host, name, port):
    """http://<address of the container on the solv network>:port, as the host itself reaches it."""
    ip = inspect(host, name)["NetworkSettings"]["Networks"]["solv"]["IPAddress"]
    return f"http://{ip}:{port}"


def sse_text(body):
    """The assistant text of an OpenAI streamed chat completion (SSE `data:` lines)."""
    text, done = [], False
    for line in body.splitlines():
        if not line.startswith("data:"):
            continue
        data = line[5:].strip()
        if data == "[DONE]":
            done = True
            continue
        for choice in json.loads(data).get("choices", []):
            text.append((choice.get("delta") or {}).get("content") or "")
    assert done, "stream did not end with [DONE]"
    return "".join(text)


@pytest.fixture(scope="module")
def inventory(host):
    """The test host's inventory variables (molecule.yml), as Ansible loaded them (not templated)."""
    return host.ansible.get_variables()


@pytest.fixture(scope="module")
def address(inventory):
    return inventory["solv_internal_address"]


@pytest.fixture(scope="module")
def entry(address):
    """The entry point users are given: https on the gateway host (Open WebUI at /, the API at /v1)."""
    return f"https://{address}"


@pytest.fixture(scope="module")
def models(host):
    """vllm_models as the roles see them (templated), with the contract's defaults, by instance name."""
    out = {}
    for m in host.ansible("ansible.builtin.debug", "var=vllm_models", check=False)["vllm_models"]:
        m = dict(m)
        m.setdefault("served_model_name", m["name"])
        out[m["name"]] = m
    return out


@pytest.fixture(scope="module")
def chat_models(models):
    """The instances that chat (not embedding models: runner pooling)."""
    return {name: m for name, m in models.items() if m.get("runner", "generate") != "pooling"}


@pytest.fixture(scope="module")
def embedding_models(models):
    return {name: m for name, m in models.items() if m.get("runner") == "pooling"}


_VERSIONS = yaml.safe_load((Path(__file__).resolve().parents[3] / "lab/images/versions.yml").read_text())


def standin_image(m):
    """The image an instance runs: its own tag (a canary) or the host's; the stand-in's version is its tag."""
    return f"solv-lab/vllm-standin:{m.get('image_tag') or _VERSIONS['vllm_standin']}"
