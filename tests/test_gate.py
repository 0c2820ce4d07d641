"""The health-gate checks every module shares (roles/solv_common/module_utils/solv_gate.py), against a local
HTTP server shaped like Open WebUI's sign-in and model list."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

import module_runner
from conftest import REPO

gate = module_runner.module_util(REPO / "roles" / "solv_common", "solv_gate")
PASSWORD = "s3cret-admin-pw"
TOKEN = "eyJ-session-token"


class _WebUI(BaseHTTPRequestHandler):
    def _send(self, status, obj):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):  # noqa: N802
        length = int(self.headers.get("Content-Length") or 0)
        creds = json.loads(self.rfile.read(length) or b"{}")
        if self.path == "/api/v1/auths/signin" and creds == {"email": "admin@localhost", "password": PASSWORD}:
            self._send(200, {"token": TOKEN, "token_type": "Bearer"})
        else:
            self._send(400, {"detail": "The email or password provided is incorrect."})

    def do_GET(self):  # noqa: N802
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            self._send(401, {"detail": "Not authenticated"})
        else:
            self._send(200, {"data": [{"id": "qwen-0.5b"}, {"id": "llama-1b"}]})

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def webui():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _WebUI)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def _signed_in(base, password=PASSWORD, models=()):
    return {"url": f"{base}/api/models", "models": list(models),
            "signin": {"url": f"{base}/api/v1/auths/signin", "body": {"email": "admin@localhost", "password": password}}}


def test_a_signed_in_check_sends_the_token(webui):
    ok, status, detail, _ = gate.check(_signed_in(webui, models=["qwen-0.5b"]))
    assert (ok, status, detail) == (True, 200, "ok")


def test_without_signin_the_same_url_is_refused(webui):
    ok, status, detail, _ = gate.check({"url": f"{webui}/api/models"})
    assert not ok and status == 401 and "Not authenticated" in detail


def test_a_wrong_password_says_the_signin_failed(webui):
    ok, _, detail, _ = gate.check(_signed_in(webui, password="changed-in-the-ui"))
    assert not ok
    assert detail.startswith(f"sign-in at {webui}/api/v1/auths/signin: status 400") and "incorrect" in detail


def test_a_missing_model_is_named(webui):
    ok, _, detail, _ = gate.check(_signed_in(webui, models=["qwen-0.5b", "gone-model"]))
    assert not ok and detail == "models missing: gone-model (listed: llama-1b, qwen-0.5b)"


def test_nothing_listening_is_no_answer():
    ok, status, detail, _ = gate.check({"url": "http://127.0.0.1:9/health"})
    assert not ok and status == -1 and detail.startswith("no answer:")


def test_the_password_is_a_secret_of_the_gate_and_the_email_is_not(webui):
    secrets = gate.secrets_of({"checks": [_signed_in(webui), {"url": "x", "headers": {"Authorization": "Bearer k-123"}}]})
    assert secrets == {PASSWORD, "Bearer k-123", "k-123"}
    assert gate.redact({"msg": f"bad {PASSWORD}"}, secrets) == {"msg": "bad ***"}
