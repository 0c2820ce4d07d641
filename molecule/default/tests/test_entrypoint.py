"""The entry point (role caddy) as users meet it: HTTPS with the private CA, the API at /v1 for a real OpenAI
client, Open WebUI and its websockets at /, HTTP redirecting to HTTPS, the CA kept across restarts.

The clients run here, on the controller, which sits on the scenario's network like a developer's machine.
"""

from __future__ import annotations

import hashlib
import os
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx2  # the HTTP client openai 3 uses
import openai
import pytest
from conftest import CA, ROOT, inspect, secret

NAME = "solv-caddy"
PROMPT = "Through the front door"


@pytest.fixture(scope="module")
def ca_file(host, tmp_path_factory):
    """The CA certificate as a user gets it: `solv-provision secrets show caddy_ca_certificate --host H`."""
    cli = Path(sys.executable).parent / "solv-provision"
    inventory = Path(os.environ["MOLECULE_INVENTORY_FILE"]).parent
    run = subprocess.run([str(cli), "secrets", "show", "caddy_ca_certificate", "--host", host.backend.get_hostname(),
                          "-i", str(inventory)], capture_output=True, text=True, timeout=300, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.startswith("-----BEGIN CERTIFICATE-----"), run.stdout[:200]
    assert run.stdout.strip() == host.file(CA).content_string.strip()
    path = tmp_path_factory.mktemp("ca") / "solv-ca.pem"
    path.write_text(run.stdout)
    return path


def test_openai_client_streams_a_chat_through_https(host, entry, ca_file, models):
    client = openai.OpenAI(base_url=f"{entry}/v1", api_key=secret(host, "litellm_master_key"),
                           http_client=httpx2.Client(verify=str(ca_file), trust_env=False), max_retries=0)
    listed = sorted(m.id for m in client.models.list())
    assert listed == sorted(m["served_model_name"] for m in models.values())
    model = next(iter(models.values()))["served_model_name"]
    chunks = [c.choices[0].delta.content or "" for c in client.chat.completions.create(
        model=model, stream=True, messages=[{"role": "user", "content": PROMPT}]) if c.choices]
    assert len([c for c in chunks if c]) > 1, chunks  # streamed in pieces, not one buffered body
    assert "".join(chunks).endswith(f"echo: {PROMPT}")


def test_a_wrong_or_missing_key_gets_401(entry, ca_file):
    client = openai.OpenAI(base_url=f"{entry}/v1", api_key="sk-wrong",
                           http_client=httpx2.Client(verify=str(ca_file), trust_env=False), max_retries=0)
    with pytest.raises(openai.AuthenticationError) as refused:
        client.chat.completions.create(model="any", messages=[{"role": "user", "content": PROMPT}])
    assert refused.value.status_code == 401
    # The openai client refuses to send no key at all: a plain request without the header.
    r = httpx2.post(f"{entry}/v1/chat/completions", verify=str(ca_file), trust_env=False,
                    json={"model": "any", "messages": [{"role": "user", "content": PROMPT}]})
    assert r.status_code == 401, r.text


def test_the_certificate_is_refused_without_the_ca(entry, host):
    with pytest.raises(httpx2.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx2.get(f"{entry}/health", verify=True, trust_env=False)


def test_http_redirects_to_https(address, ca_file):
    r = httpx2.get(f"http://{address}/some/page?x=1", follow_redirects=False, trust_env=False)
    assert r.status_code in (301, 308), r
    assert r.headers["location"] == f"https://{address}/some/page?x=1"
    followed = httpx2.get(f"http://{address}/health", follow_redirects=True, verify=str(ca_file), trust_env=False)
    assert followed.status_code == 200 and followed.json() == {"status": True}


def test_open_webui_websocket_upgrades_through_the_entry_point(address, ca_file):
    context = ssl.create_default_context(cafile=str(ca_file))
    with socket.create_connection((address, 443), timeout=10) as raw, \
            context.wrap_socket(raw, server_hostname=address) as tls:
        tls.sendall((f"GET /ws/socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: {address}\r\n"
                     "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n").encode())
        head = tls.recv(4096).decode("latin-1")
    assert head.startswith("HTTP/1.1 101"), head[:300]
    assert "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" in head  # the accept key of RFC 6455's example: Open WebUI answered


def test_the_private_ca_is_kept_across_restarts(host, entry, ca_file):
    root = f"{ROOT}/data/caddy/caddy/pki/authorities/local/root.crt"
    before = hashlib.sha256(host.file(root).content).hexdigest()
    started = inspect(host, NAME)["State"]["StartedAt"]
    host.check_output("systemctl restart %s", NAME)
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx2.get(f"{entry}/health", verify=str(ca_file), trust_env=False).status_code == 200:
                break
        except httpx2.HTTPError:
            pass
        assert time.monotonic() < deadline, "the entry point did not come back within 60 s"
        time.sleep(1)
    assert inspect(host, NAME)["State"]["StartedAt"] != started
    assert hashlib.sha256(host.file(root).content).hexdigest() == before  # the same CA, not a new one


def test_the_ca_copy_for_clients_is_made_again_only_when_it_differs(host):
    """The copy of the CA's root kept with the secrets (`secrets show caddy_ca_certificate`) is made again when it
    is missing, and a run that finds it equal makes none (the host's reading describes both files)."""
    root = f"{ROOT}/data/caddy/caddy/pki/authorities/local/root.crt"
    copy = f"{ROOT}/secrets/caddy_ca_certificate"
    cli = Path(sys.executable).parent / "solv-provision"
    inventory = Path(os.environ["MOLECULE_INVENTORY_FILE"]).parent

    def apply_caddy():
        run = subprocess.run([str(cli), "apply", "-i", str(inventory), "--tags", "caddy"], capture_output=True,
                             text=True, timeout=600, check=False)
        assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
        return run.stdout + run.stderr

    host.check_output("rm -f %s", copy)
    made = apply_caddy()
    assert f"changed {host.backend.get_hostname()}: Run | the private CA's certificate for clients" in made, made[-3000:]
    assert host.file(copy).content == host.file(root).content
    assert (host.file(copy).mode, host.file(copy).user) == (0o600, "root")
    again = apply_caddy()
    assert f"changed {host.backend.get_hostname()}:" not in again, again[-3000:]
