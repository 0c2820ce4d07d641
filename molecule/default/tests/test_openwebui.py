"""Open WebUI on the all-in-one test host (role `openwebui`): admin sign-in, models and chat through LiteLLM.

Runs after converge and the idempotence check. Requests go to the published address (from `docker port`),
from the test host itself, as a user's browser would.
"""

from __future__ import annotations

import json
import time

ROOT = "/opt/solv"
ENV_FILE = f"{ROOT}/openwebui/env"
NAME = "solv-openwebui"

# An HTTP request from the test host: prints {"status": ..., "body": ...}.
_REQUEST = (
    "import json, sys, urllib.request, urllib.error\n"
    "method, url, token, data = sys.argv[1:5]\n"
    "headers = {'Content-Type': 'application/json'}\n"
    "if token:\n"
    "    headers['Authorization'] = 'Bearer ' + token\n"
    "req = urllib.request.Request(url, data=data.encode() if data else None, headers=headers, method=method)\n"
    "try:\n"
    "    r = urllib.request.urlopen(req, timeout=120)\n"
    "    out = {'status': r.status, 'body': r.read().decode()}\n"
    "except urllib.error.HTTPError as e:\n"
    "    out = {'status': e.code, 'body': e.read().decode()}\n"
    "except OSError as e:\n"
    "    out = {'status': -1, 'body': str(e)}\n"
    "print(json.dumps(out))\n"
)


def env(host):
    lines = host.file(ENV_FILE).content_string.splitlines()
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


def base_url(host):
    # e.g. "10.0.0.3:8080" (the role's default bind address: the host's internal address)
    published = host.check_output("docker port %s 8080/tcp", NAME).splitlines()[0]
    return f"http://{published}"


def request(host, method, path, token="", payload=None):
    data = json.dumps(payload) if payload is not None else ""
    out = host.check_output("python3 -c %s %s %s %s %s", _REQUEST, method, base_url(host) + path, token, data)
    result = json.loads(out)
    if result["body"] and result["status"] > 0:
        try:
            result["json"] = json.loads(result["body"])
        except ValueError:
            pass
    return result


def admin_token(host):
    e = env(host)
    password = host.file(f"{ROOT}/secrets/openwebui_admin_password").content_string.strip()
    r = request(host, "POST", "/api/v1/auths/signin", payload={"email": e["WEBUI_ADMIN_EMAIL"], "password": password})
    assert r["status"] == 200, r
    assert r["json"]["role"] == "admin"
    return r["json"]["token"]


def test_unit_runs_and_is_enabled(host):
    unit = host.service(NAME)
    assert unit.is_running
    assert unit.is_enabled


def test_env_file_is_private_and_wired(host):
    f = host.file(ENV_FILE)
    assert f.user == "root" and f.group == "root" and f.mode == 0o600
    e = env(host)
    assert e["OPENAI_API_BASE_URL"] == "http://solv-litellm:4000/v1"
    assert e["ENABLE_OLLAMA_API"] == "False"
    assert e["ENABLE_PERSISTENT_CONFIG"] == "False"
    assert e["ENABLE_SIGNUP"] == "False"
    assert e["WEBUI_AUTH"] == "True"
    assert e["ENABLE_WEB_SEARCH"] == "True" and e["WEB_SEARCH_ENGINE"] == "searxng"
    # Secrets come from the host's secret files (generated once), LiteLLM's key from LiteLLM's.
    assert e["WEBUI_SECRET_KEY"] == host.file(f"{ROOT}/secrets/openwebui_secret_key").content_string.strip()
    assert e["OPENAI_API_KEY"] == host.file(f"{ROOT}/secrets/litellm_master_key").content_string.strip()
    assert e["OPENAI_API_KEY"].startswith("sk-")


def test_data_volume(host):
    info = json.loads(host.check_output("docker inspect %s", NAME))[0]
    mounts = {m["Destination"]: m["Source"] for m in info["Mounts"]}
    assert mounts["/app/backend/data"] == f"{ROOT}/data/openwebui"
    assert "solv" in info["NetworkSettings"]["Networks"]
    assert host.file(f"{ROOT}/data/openwebui/webui.db").exists


def test_health(host):
    r = request(host, "GET", "/health")
    assert r["status"] == 200 and r["json"] == {"status": True}


def test_admin_signs_in(host):
    assert admin_token(host)


def test_wrong_password_is_refused(host):
    e = env(host)
    r = request(host, "POST", "/api/v1/auths/signin", payload={"email": e["WEBUI_ADMIN_EMAIL"], "password": "wrong"})
    assert r["status"] in (400, 401, 403), r


def test_signup_is_refused(host):
    r = request(host, "POST", "/api/v1/auths/signup",
                payload={"name": "Mallory", "email": "mallory@example.org", "password": "S3cret-enough!"})
    assert r["status"] == 403, r


def test_models_from_litellm_and_a_chat_through_them(host):
    token = admin_token(host)
    r = request(host, "GET", "/api/models", token)
    assert r["status"] == 200, r
    ids = [m["id"] for m in r["json"]["data"]]
    assert ids, "Open WebUI lists no model: LiteLLM not reached?"
    model = sorted(ids)[0]
    prompt = "Say hello to the SOLV stack"
    chat = request(host, "POST", "/api/chat/completions", token,
                   {"model": model, "stream": False, "messages": [{"role": "user", "content": prompt}]})
    assert chat["status"] == 200, chat
    answer = chat["json"]["choices"][0]["message"]["content"]
    # The vLLM stand-in's deterministic answer: "[<served model>@<identity>:<port>] echo: <prompt>".
    assert answer.startswith(f"[{model}@"), answer
    assert answer.endswith(f"] echo: {prompt}"), answer


def test_back_by_systemd_after_kill(host):
    bound_s = 180  # RestartSec plus a start with migrations already done (about 15-40 s here)
    before = host.check_output("docker inspect --format '{{.State.StartedAt}}' %s", NAME)
    host.check_output("docker kill %s", NAME)
    deadline = time.monotonic() + bound_s
    while True:
        started = host.run("docker inspect --format '{{.State.StartedAt}}' %s", NAME)
        if started.rc == 0 and started.stdout.strip() != before and request(host, "GET", "/health")["status"] == 200:
            break
        assert time.monotonic() < deadline, f"{NAME} not healthy again {bound_s}s after docker kill"
        time.sleep(2)
    # Data survived the restart: the admin still signs in.
    assert admin_token(host)
