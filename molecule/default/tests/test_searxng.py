"""SearXNG on the all-in-one test host (role `searxng`), as Open WebUI sees it.

Runs after converge and the idempotence check (which proves a second run changes nothing, secrets included).
Every HTTP request to SearXNG is made from inside solv-openwebui, on the address Open WebUI is configured with.
"""

from __future__ import annotations

import json
import time

import yaml
from conftest import env_file, process_env

ROOT = "/opt/solv"
SETTINGS = f"{ROOT}/searxng/settings.yml"
SECRET = f"{ROOT}/secrets/searxng_secret_key"
ENV_FILE = f"{ROOT}/searxng/env"
NAME = "solv-searxng"
# What the openwebui role writes into Open WebUI's environment (SEARXNG_QUERY_URL).
QUERY_URL = "http://solv-searxng:8080/search"

# A GET from inside the Open WebUI container: prints {"status": ..., "type": ..., "body": ...}.
_FETCH = (
    "import json, sys, urllib.request, urllib.error\n"
    "req = urllib.request.Request(sys.argv[1], headers={'Accept-Language': 'en'})\n"
    "try:\n"
    "    r = urllib.request.urlopen(req, timeout=30)\n"
    "    out = {'status': r.status, 'type': r.headers.get('Content-Type', ''), 'body': r.read().decode()}\n"
    "except urllib.error.HTTPError as e:\n"
    "    out = {'status': e.code, 'type': e.headers.get('Content-Type', ''), 'body': ''}\n"
    "print(json.dumps(out))\n"
)


def fetch_from_openwebui(host, url):
    out = host.check_output("docker exec solv-openwebui python3 -c %s %s", _FETCH, url)
    return json.loads(out)


def settings(host):
    return yaml.safe_load(host.file(SETTINGS).content_string)


def test_unit_runs_and_is_enabled(host):
    unit = host.service(NAME)
    assert unit.is_running
    assert unit.is_enabled


def test_settings_file(host):
    f = host.file(SETTINGS)
    # No secret in it (the key travels in the env file): readable by the container's unprivileged user.
    assert f.user == "root" and f.group == "root"
    assert f.mode == 0o644
    s = settings(host)
    assert s["use_default_settings"] is True
    assert {"html", "json"} <= set(s["search"]["formats"])
    assert s["server"]["limiter"] is False
    assert "secret_key" not in s["server"]


def test_secret_generated_once_and_used(host):
    secret = host.file(SECRET)
    assert secret.user == "root" and secret.mode == 0o600
    assert host.file(f"{ROOT}/secrets").mode == 0o700
    key = secret.content_string.strip()
    assert len(key) >= 32
    env = host.file(ENV_FILE)
    # Read inside the container by its unprivileged user (uid 977), by no one else.
    assert env.uid == 977 and env.mode == 0o600
    assert f"SEARXNG_SECRET='{key}'" in env.content_string.splitlines()
    # The running container got it (a key changed without a restart would differ here).
    assert process_env(host, NAME)["SEARXNG_SECRET"] == key


def test_port_not_published(host):
    # Open WebUI reaches SearXNG on the Docker network; nothing listens on the host for it.
    ports = host.check_output("docker inspect --format '{{json .HostConfig.PortBindings}}' %s", NAME)
    assert ports in ("{}", "null")


def test_on_the_solv_network_and_not_root(host):
    info = json.loads(host.check_output("docker inspect %s", NAME))[0]
    assert "solv" in info["NetworkSettings"]["Networks"]
    assert info["Config"]["User"] == "977:977"
    mounts = {m["Destination"]: m for m in info["Mounts"]}
    assert mounts["/etc/searxng/settings.yml"]["Source"] == SETTINGS
    assert mounts["/etc/searxng/settings.yml"]["RW"] is False
    assert mounts["/var/cache/searxng"]["Source"] == f"{ROOT}/data/searxng"


def test_json_answers_on_the_address_openwebui_uses(host):
    assert env_file(host, f"{ROOT}/openwebui/env")["SEARXNG_QUERY_URL"] == f"{QUERY_URL}?q=<query>"
    r = fetch_from_openwebui(host, f"{QUERY_URL}?q=solv+provision&format=json")
    assert r["status"] == 200, r
    assert r["type"].startswith("application/json")
    body = json.loads(r["body"])
    assert body["query"] == "solv provision"
    assert isinstance(body["results"], list)


def test_html_still_answers(host):
    r = fetch_from_openwebui(host, f"{QUERY_URL}?q=solv+provision")
    assert r["status"] == 200, r
    assert r["type"].startswith("text/html")


def test_healthz(host):
    r = fetch_from_openwebui(host, "http://solv-searxng:8080/healthz")
    assert r["status"] == 200 and r["body"].strip() == "OK"


def test_back_by_systemd_after_kill(host):
    bound_s = 60  # RestartSec (5 s) plus a start of a few seconds
    before = host.check_output("docker inspect --format '{{.State.StartedAt}}' %s", NAME)
    host.check_output("docker kill %s", NAME)
    deadline = time.monotonic() + bound_s
    while True:
        started = host.run("docker inspect --format '{{.State.StartedAt}}' %s", NAME)
        if started.rc == 0 and started.stdout.strip() != before:
            r = fetch_from_openwebui(host, "http://solv-searxng:8080/healthz")
            if r["status"] == 200:
                break
        assert time.monotonic() < deadline, f"{NAME} not healthy again {bound_s}s after docker kill"
        time.sleep(1)
    assert host.service(NAME).is_running
