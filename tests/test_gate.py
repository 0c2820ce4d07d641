"""The health-gate checks every module shares (roles/solv_common/module_utils/solv_gate.py), against a local
HTTP server shaped like Open WebUI's sign-in and model list, and a socket server answering as Redis does."""

from __future__ import annotations

import json
import socketserver
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


# --- https: the entry point's gate verifies its certificate against the CA the service created --------------
def _pki(tmp_path):
    """A CA and a server certificate for 127.0.0.1 signed by it -> (ca.pem, server.pem, server.key)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)

    def cert(subject, key, issuer, issuer_key, ca, san=None):
        builder = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
                   .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if san:
            builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
        return builder.sign(issuer_key, hashes.SHA256())

    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    files = {"ca.pem": cert("test CA", ca_key, "test CA", ca_key, True),
             "server.pem": cert("127.0.0.1", key, "test CA", ca_key, False,
                                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])}
    for name, c in files.items():
        (tmp_path / name).write_bytes(c.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "server.key").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                            serialization.NoEncryption()))
    return tmp_path / "ca.pem", tmp_path / "server.pem", tmp_path / "server.key"


@pytest.fixture(scope="module")
def https_webui(tmp_path_factory):
    import ssl

    ca, server_cert, server_key = _pki(tmp_path_factory.mktemp("pki"))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _WebUI)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(server_cert, server_key)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"https://127.0.0.1:{httpd.server_address[1]}", ca
    httpd.shutdown()


def test_https_check_trusts_exactly_the_given_ca(https_webui, tmp_path):
    base, ca = https_webui
    ok, status, detail, _ = gate.check({**_signed_in(base), "ca": str(ca)})  # the sign-in too
    assert (ok, status) == (True, 200), detail
    # Not the host's trust store: without the CA the same server is refused, and named so.
    ok, _, detail, _ = gate.check({"url": f"{base}/health", "status": [401]})
    assert not ok and "CERTIFICATE_VERIFY_FAILED" in detail
    # A CA the service has not written yet counts as not ready, with the file named.
    ok, _, detail, _ = gate.check({"url": f"{base}/health", "status": [401], "ca": str(tmp_path / "nothing.pem")})
    assert not ok and f"CA certificate {tmp_path / 'nothing.pem'}" in detail
    # "insecure": a certificate of one's own whose names the gate's address need not match.
    ok, status, _, _ = gate.check({"url": f"{base}/health", "status": [401], "ca": "insecure"})
    assert (ok, status) == (True, 401)


def test_the_wait_module_accepts_every_check_option_the_argument_spec_documents(tmp_path):
    """roles/solv_common/meta/argument_specs.yml documents a check's options; solv_container_wait validates
    them itself: an option documented but unknown to the module fails every gate that uses it."""
    import subprocess
    import sys

    import yaml

    specs = yaml.safe_load((REPO / "roles/solv_common/meta/argument_specs.yml").read_text())["argument_specs"]
    documented = specs["container_files"]["options"]["solv_container_ready_checks"]["options"]
    check = {"url": "http://127.0.0.1:9/none", "status": [200], "headers": {}, "models": [], "method": "GET",
             "body": None, "ca": "insecure", "password": "pw",
             "signin": {"url": "http://127.0.0.1:9/in", "body": {}, "token": "token"}}
    assert set(check) == set(documented)
    fake = tmp_path / "bin"
    fake.mkdir()
    for tool in ("systemctl", "journalctl", "docker"):
        (fake / tool).write_text("#!/bin/sh\nexit 1\n")
        (fake / tool).chmod(0o755)
    args = tmp_path / "args.json"
    args.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": {"name": "solv-x", "checks": [check], "timeout": 0,
                                                         "docker": str(fake / "docker")}}))
    module = REPO / "roles/solv_common/library/solv_container_wait.py"
    out = subprocess.run([sys.executable, str(REPO / "tests/module_runner.py"), str(module), str(args)],
                         capture_output=True, text=True, check=False, env={"PATH": f"{fake}:/usr/bin:/bin"})
    result = json.loads(out.stdout)
    assert result.get("failed") and "not ready" in result["msg"], result  # the gate ran, and failed as it must


# --- a Redis check: AUTH, then PING must answer PONG ----------------------------------------------------------
REDIS_PASSWORD = "r3dis-pw"


class _Redis(socketserver.BaseRequestHandler):
    """Answers RESP commands as Redis with requirepass does: AUTH, then PING."""

    def handle(self):
        authed, buf = False, b""
        while True:
            chunk = self.request.recv(4096)
            if not chunk:
                return
            buf += chunk
            while buf.startswith(b"*"):
                words, rest = _parse_command(buf)
                if words is None:
                    break
                buf = rest
                if words[0].upper() == b"AUTH":
                    authed = words[1].decode() == REDIS_PASSWORD
                    self.request.sendall(b"+OK\r\n" if authed else b"-WRONGPASS invalid username-password pair\r\n")
                elif words[0].upper() == b"PING":
                    self.request.sendall(b"+PONG\r\n" if authed else b"-NOAUTH Authentication required.\r\n")


def _parse_command(buf):
    lines = buf.split(b"\r\n")
    count = int(lines[0][1:])
    if len(lines) < 1 + 2 * count + 1:
        return None, buf
    words = [lines[2 + 2 * i] for i in range(count)]
    return words, b"\r\n".join(lines[1 + 2 * count:])


@pytest.fixture(scope="module")
def redis():
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Redis)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"redis://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_a_redis_check_authenticates_and_pings(redis):
    assert gate.check({"url": redis, "password": REDIS_PASSWORD})[:3] == (True, 0, "ok")
    ok, _, detail, _ = gate.check({"url": redis, "password": "wrong"})
    assert not ok and "WRONGPASS" in detail and "wrong" not in detail.replace("WRONGPASS", "")
    ok, _, detail, _ = gate.check({"url": redis})
    assert not ok and "NOAUTH" in detail


def test_a_redis_check_that_nothing_answers_fails_and_the_password_is_redacted(redis):
    ok, status, detail, _ = gate.check({"url": "redis://127.0.0.1:1", "password": REDIS_PASSWORD})
    assert (ok, status) == (False, -1) and detail.startswith("no answer")
    assert REDIS_PASSWORD in gate.secrets_of({"checks": [{"url": redis, "password": REDIS_PASSWORD}]})


def test_the_wait_probes_soon_after_a_start_then_every_delay(monkeypatch):
    """A service that answers within a second of its start is seen within a second, not after a whole `delay`; a
    slow one is probed every `delay` seconds once the pauses have doubled up to it."""
    pauses, answers_after = [], 6
    monkeypatch.setattr(gate.time, "sleep", pauses.append)
    monkeypatch.setattr(gate, "run_gate", lambda *a: ([{"url": "u", "ok": len(pauses) >= answers_after}], {}))

    def systemctl(argv):
        return 0, "ActiveState=active\nSubState=running\nNRestarts=0\n", ""

    outcome = gate.wait(systemctl, "solv-x", [{"url": "http://127.0.0.1:1/"}], timeout=300, delay=2.0)
    assert outcome["ok"]
    assert pauses == [0.25, 0.5, 1.0, 2.0, 2.0, 2.0]
    pauses.clear()
    gate.wait(systemctl, "solv-x", [{"url": "http://127.0.0.1:1/"}], timeout=300, delay=0.1)
    assert pauses == [0.1] * answers_after


def test_the_wait_asks_for_the_address_once_per_start_of_the_container(monkeypatch):
    """`docker inspect` once the unit's `docker run` has a container with an address, not every round; again when
    systemd started another (a new main process: the previous container was removed, the address may differ)."""
    monkeypatch.setattr(gate.time, "sleep", lambda s: None)
    rounds, inspected, seen = [], [], []
    main_pids = [0, 0, 101, 101, 101, 101, 202]  # before the wait, then each round's; 101 crashes, systemd starts 202
    addresses = {101: [None, "10.0.0.5"], 202: ["10.0.0.7"]}

    def run(argv):
        if argv[0] == "systemctl":
            pid = main_pids[min(len(rounds), len(main_pids) - 1)]
            rounds.append(pid)
            return 0, f"ActiveState=active\nSubState=running\nNRestarts={int(pid == 202)}\nMainPID={pid}\n", ""
        pid = rounds[-1]
        inspected.append(pid)
        left = addresses.get(pid) or [None]
        ip = left.pop(0) if len(left) > 1 else left[0]
        return (0, '{"solv": {"IPAddress": "%s"}}' % ip, "") if ip else (1, "", "No such container")

    def run_gate(checks, address, *a):
        seen.append(address)
        return [{"url": "u", "ok": address == "10.0.0.7" and len(seen) >= 8}], {}

    monkeypatch.setattr(gate, "run_gate", run_gate)
    outcome = gate.wait(run, "solv-x", [{"url": "http://{container_address}:8080/"}], timeout=300, delay=0.5)
    assert outcome["ok"]
    assert seen == [None, None, "10.0.0.5", "10.0.0.5", "10.0.0.5", "10.0.0.7", "10.0.0.7", "10.0.0.7"]
    assert inspected == [0, 101, 101, 202]
