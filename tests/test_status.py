"""`solv-provision status`: the solv_status module (fake systemctl/docker/nvidia-smi, a local HTTP server), the
judging against the inventory, the JSON schema, the CLI wiring (ansible-runner faked) and one real run of
playbooks/status.yml against this machine (connection local)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import jsonschema
import pytest
import yaml

import module_runner
from conftest import INVENTORIES, REPO

MODULE = REPO / "roles" / "solv_common" / "library" / "solv_status.py"
SCHEMA = json.loads((REPO / "docs" / "status-schema.json").read_text())
KEY = "sk-TOPSECRET-4242"
VLLM_KEY = "vllm-KEY-9999"


def validate(doc):
    jsonschema.Draft202012Validator(SCHEMA, format_checker=jsonschema.FormatChecker()).validate(doc)


# --- a host: HTTP services, systemd, docker, nvidia-smi ------------------------------------------------------
class _Handler(BaseHTTPRequestHandler):
    routes: dict = {}

    def _answer(self):
        status, body, key = self.routes.get(self.path.split("?")[0], (404, {"error": "no route"}, None))
        if key and self.headers.get("Authorization") != f"Bearer {key}":
            status, body = 401, {"error": f"Invalid key {self.headers.get('Authorization')}"}  # echoes the key
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = _answer

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    routes = {
        "/health": (200, {}, None),
        "/healthz": (200, {}, None),
        "/search": (200, {"results": []}, None),
        "/v1/models": (200, {"data": [{"id": "qwen-7b"}, {"id": "llama-8b"}]}, VLLM_KEY),
        "/v1/completions": (200, {"choices": []}, VLLM_KEY),
        "/lite/v1/models": (200, {"data": [{"id": "qwen-7b"}]}, KEY),
    }
    handler = type("Handler", (_Handler,), {"routes": routes})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    httpd.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.routes = routes
    yield httpd
    httpd.shutdown()


UNIT_ACTIVE = "LoadState=loaded\nActiveState=active\nSubState=running\nNRestarts={n}\nActiveEnterTimestampMonotonic=1000000\n"


class FakeHost:
    """A root dir, a systemd dir, and fake systemctl, docker and nvidia-smi in bin/ (state in files)."""

    def __init__(self, base: Path, base_url: str):
        self.base, self.url = base, base_url
        self.root, self.systemd, self.bin, self.state = (base / n for n in ("root", "systemd", "bin", "state"))
        for d in (self.root / "gates", self.systemd, self.bin, self.state):
            d.mkdir(parents=True)
        self._script("systemctl", f"""#!/bin/sh
first=1
for a in "$@"; do
  case "$a" in *.service)
    [ $first = 1 ] || echo
    first=0
    echo "Id=$a"
    if [ -f "{self.state}/${{a%.service}}.unit" ]; then cat "{self.state}/${{a%.service}}.unit"
    else printf 'LoadState=not-found\\nActiveState=inactive\\nSubState=dead\\nNRestarts=0\\nActiveEnterTimestampMonotonic=0\\n'
    fi
  esac
done
""")
        self._script("docker", f"""#!{sys.executable}
import json, os, sys
found, rc = [], 0
for name in sys.argv[3:]:
    path = os.path.join({str(self.state)!r}, name + ".container.json")
    if os.path.exists(path):
        found.append(json.load(open(path)))
    else:
        print("Error: No such container: " + name, file=sys.stderr)
        rc = 1
print(json.dumps(found))
sys.exit(rc)
""")

    def _script(self, name, text):
        path = self.bin / name
        path.write_text(text)
        path.chmod(0o755)

    def nvidia_smi(self, text="0, NVIDIA H200, 550.54.15, 70123, 143771, 87\n1, NVIDIA H200, 550.54.15, 0, 143771, 0\n",
                   rc=0):
        self._script("nvidia-smi", f"#!/bin/sh\nprintf '%s' '{text}'\nexit {rc}\n")

    def service(self, name, checks, *, active=True, restarts=0, running=True, rollback=False, image="img:1"):
        (self.systemd / f"{name}.service").write_text("[Service]\n")
        (self.root / "gates" / f"{name}.json").write_text(json.dumps({"name": name, "checks": checks}))
        (self.state / f"{name}.unit").write_text(
            UNIT_ACTIVE.format(n=restarts) if active
            else "LoadState=loaded\nActiveState=inactive\nSubState=dead\nNRestarts=0\nActiveEnterTimestampMonotonic=0\n")
        if running:
            (self.state / f"{name}.container.json").write_text(json.dumps({
                "Name": f"/{name}", "Image": "sha256:" + "ab" * 32, "RestartCount": 0,
                "State": {"Running": True, "StartedAt": "2025-01-31T12:00:00Z"},
                "Config": {"Image": image, "Labels": {"solv.image": image, "solv.spec": "s1"}},
                "NetworkSettings": {"Networks": {"solv": {"IPAddress": "127.0.0.1"}}},
            }))
        if rollback:
            d = self.root / "rollback" / name
            d.mkdir(parents=True)
            (d / "state.json").write_text(json.dumps({"name": name, "spec": "s0", "image_id": "sha256:00",
                                                      "image_ref": "img:0", "files": [], "saved_at": "2025-01-30T00:00:00Z"}))

    def vllm_checks(self, port_url=None):
        base = port_url or self.url
        auth = {"Authorization": f"Bearer {VLLM_KEY}"}
        return [{"url": f"{base}/health", "status": [200]},
                {"url": f"{base}/v1/models", "headers": auth, "models": ["qwen-7b"]},
                {"url": f"{base}/v1/completions", "method": "POST", "headers": auth,
                 "body": {"model": "qwen-7b", "prompt": "ping", "max_tokens": 1}}]

    def args(self, **more):
        return {"root_dir": str(self.root), "systemd_dir": str(self.systemd), "docker": str(self.bin / "docker"), **more}

    def run(self, **more):
        path = self.base / "args.json"
        path.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": self.args(**more)}))
        env = {"PATH": f"{self.bin}:/usr/bin:/bin", "LANG": "C.UTF-8"}
        out = subprocess.run(module_runner.command(MODULE, path), capture_output=True, text=True, env=env,
                             check=False)
        assert out.stdout, out.stderr
        return out.stdout, json.loads(out.stdout)


@pytest.fixture
def host(tmp_path, server):
    return FakeHost(tmp_path, server.base)


def _units(result):
    return {u["name"]: u for u in result["units"]}


# --- the module ----------------------------------------------------------------------------------------------
def test_module_reports_a_healthy_host_in_one_call(host):
    host.service("solv-vllm-qwen-7b", host.vllm_checks(), rollback=True)
    host.service("solv-searxng", [{"url": "http://{container_address}:%s/healthz" % host.url.rsplit(":", 1)[1]},
                                  {"url": "http://{container_address}:%s/search?q=solv&format=json"
                                          % host.url.rsplit(":", 1)[1]}])
    host.nvidia_smi()
    text, result = host.run()
    assert not result.get("failed") and result["changed"] is False
    units = _units(result)
    assert set(units) == {"solv-vllm-qwen-7b", "solv-searxng"}
    vllm = units["solv-vllm-qwen-7b"]
    assert vllm["active_state"] == "active" and vllm["restarts"] == 0 and vllm["uptime_s"] > 0
    assert vllm["container"]["running"] and vllm["container"]["image_ref"] == "img:1"
    assert vllm["rollback"] == {"present": True, "image_ref": "img:0", "image_id": "sha256:00",
                                "saved_at": "2025-01-30T00:00:00Z"}
    assert vllm["health"] == {"ok": True, "url": None, "detail": "ok"}
    assert units["solv-searxng"]["health"]["ok"] is True  # {container_address} from docker inspect
    assert units["solv-searxng"]["rollback"]["present"] is False
    assert result["gpus"][0] == {"index": 0, "name": "NVIDIA H200", "driver_version": "550.54.15",
                                 "memory_used_mib": 70123, "memory_total_mib": 143771, "utilization_pct": 87}
    assert len(result["gpus"]) == 2 and result["gpu_error"] is None
    assert result["litellm"] is None and result["uptime_s"] > 0
    assert VLLM_KEY not in text


def test_module_names_the_failing_check_and_never_returns_a_key(host, server):
    server.routes["/v1/models"] = (200, {"data": [{"id": "other"}]}, VLLM_KEY)
    host.service("solv-vllm-qwen-7b", host.vllm_checks())
    checks = host.vllm_checks()
    checks[1]["headers"] = {"Authorization": "Bearer wrong-key-1234"}  # 401 whose body echoes the key
    host.service("solv-vllm-b", checks)
    host.service("solv-openwebui", [{"url": f"{host.url}/missing?api_key=QUERYSECRET&x=1"}])
    text, result = host.run()
    units = _units(result)
    qwen = units["solv-vllm-qwen-7b"]["health"]
    assert qwen["ok"] is False and qwen["url"] == f"{host.url}/v1/models"
    assert "models missing: qwen-7b" in qwen["detail"]
    b = units["solv-vllm-b"]["health"]
    assert b["ok"] is False and "status 401" in b["detail"]
    webui = units["solv-openwebui"]["health"]
    assert webui["url"] == f"{host.url}/missing?api_key=***&x=1" and "status 404" in webui["detail"]
    for secret in (VLLM_KEY, "wrong-key-1234", "QUERYSECRET"):
        assert secret not in text, secret


def test_module_reports_stopped_units_restarts_and_absent_things(host):
    host.service("solv-searxng", [{"url": f"{host.url}/healthz"}], active=False, running=False)
    host.service("solv-vllm-a", host.vllm_checks(), restarts=2)
    _, result = host.run(units=["solv-openwebui"])
    units = _units(result)
    assert units["solv-searxng"]["active_state"] == "inactive" and units["solv-searxng"]["uptime_s"] is None
    assert units["solv-searxng"]["container"]["exists"] is False
    assert units["solv-searxng"]["health"]["ok"] is None  # not run: nothing runs
    assert units["solv-vllm-a"]["restarts"] == 2
    absent = units["solv-openwebui"]
    assert absent["load_state"] == "not-found" and absent["unit_file"] is False
    assert absent["health"]["detail"] == "no health gate recorded"
    assert result["gpus"] is None and result["gpu_error"] is None  # no nvidia-smi here


def test_module_reports_a_failing_nvidia_smi(host):
    host.nvidia_smi("NVIDIA-SMI has failed because it could not communicate with the NVIDIA driver.", rc=9)
    _, result = host.run()
    assert result["gpus"] == [] and "could not communicate" in result["gpu_error"]


def test_module_reads_litellm_models_from_its_gate_or_the_key_file(host, server):
    gate = [{"url": f"{host.url}/health"},
            {"url": f"{host.url}/lite/v1/models", "headers": {"Authorization": f"Bearer {KEY}"}, "models": ["qwen-7b"]}]
    host.service("solv-litellm", gate)
    text, result = host.run()
    assert result["litellm"] == {"url": f"{host.url}/lite/v1/models", "models": ["qwen-7b"], "error": None}
    assert KEY not in text

    server.routes["/health"] = (503, {}, None)  # the gate stops early: the module asks /v1/models itself
    text, result = host.run()
    assert _units(result)["solv-litellm"]["health"]["ok"] is False
    assert result["litellm"]["models"] == ["qwen-7b"] and KEY not in text

    key_file = host.root / "secrets" / "litellm_master_key"
    key_file.parent.mkdir()
    key_file.write_text(KEY + "\n")
    text, result = host.run(litellm={"url": f"{host.url}/lite/v1/models", "key_file": str(key_file)})
    assert result["litellm"]["models"] == ["qwen-7b"] and KEY not in text
    key_file.write_text("sk-wrong-key-0000\n")
    text, result = host.run(litellm={"url": f"{host.url}/lite/v1/models", "key_file": str(key_file)})
    assert result["litellm"]["models"] is None and "401" in result["litellm"]["error"]
    assert "sk-wrong-key-0000" not in text


def _module():
    return module_runner.load(MODULE)


def test_module_helpers():
    mod = _module()
    assert mod.safe_url("http://u:p@h:1/a?token=x&q=solv") == "http://h:1/a?token=***&q=solv"
    out = "Id=solv-a.service\nLoadState=loaded\nActiveState=failed\nSubState=failed\nNRestarts=5\n" \
          "ActiveEnterTimestampMonotonic=0\n\nId=solv-b.service\nLoadState=not-found\nActiveState=inactive\n"
    states = mod.unit_states(lambda cmd: (0, out, ""), ["solv-a", "solv-b"])
    assert states["solv-a"]["active_state"] == "failed" and states["solv-a"]["restarts"] == 5
    assert states["solv-b"]["load_state"] == "not-found"
    assert mod.redact({"a": ["Bearer k123", 1]}, {"k123"}) == {"a": ["Bearer ***", 1]}


# --- judging ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def inv():
    from solv_provision import inventory

    return inventory.load([INVENTORIES / "good"])


def _unit(name, *, active="active", sub="running", restarts=0, running=True, health=True, detail="ok", url=None):
    return {"name": name, "unit_file": True, "load_state": "loaded", "active_state": active, "sub_state": sub,
            "restarts": restarts, "uptime_s": 3725.0 if active == "active" else None,
            "container": {"exists": running, "running": running, "image_ref": "vllm/vllm-openai:v0.8.5" if running else None,
                          "image_id": "sha256:" + "cd" * 32 if running else None, "started_at": "2025-01-31T12:00:00Z",
                          "restart_count": 0, "network": "solv", "error": None},
            "rollback": {"present": name.endswith("qwen-7b"), "image_ref": None, "image_id": None, "saved_at": None},
            "health": {"ok": health, "url": url, "detail": detail}}


def healthy_reports():
    gpu = {"boot_id": "b1", "uptime_s": 100000.0, "gpu_error": None, "litellm": None,
           "gpus": [{"index": 0, "name": "NVIDIA H200", "driver_version": "550.54.15", "memory_used_mib": 1,
                     "memory_total_mib": 143771, "utilization_pct": 3}],
           "units": [_unit("solv-vllm-qwen-7b"), _unit("solv-vllm-llama-8b")]}
    gw = {"boot_id": "b2", "uptime_s": 5.0, "gpu_error": None, "gpus": None,
          "litellm": {"url": "http://192.0.2.10:4000/v1/models", "models": ["llama-8b", "qwen-7b"], "error": None},
          "units": [_unit("solv-searxng"), _unit("solv-litellm"), _unit("solv-openwebui"), _unit("solv-caddy")]}
    return {"gpu-1": gpu, "gw-1": gw}


def _collected(reports, **outcomes):
    from solv_provision.status import Collected, HostOutcome

    hosts = {h: HostOutcome(report=r) for h, r in reports.items()}
    hosts.update(outcomes)
    return Collected(hosts=hosts)


def _doc(inv, collected):
    from solv_provision.status import document

    doc = document(inv, collected, now=datetime(2025, 1, 31, 12, 0, tzinfo=UTC))
    validate(doc)
    return doc


def test_a_healthy_stack_has_no_problem(inv):
    from solv_provision.status import exit_code

    doc = _doc(inv, _collected(healthy_reports()))
    assert doc["problems"] == [] and doc["ok"] is True and exit_code(doc) == 0
    gw = next(h for h in doc["hosts"] if h["host"] == "gw-1")
    assert gw["gateway"]["expected_models"] == ["llama-8b", "qwen-7b"] and gw["gateway"]["missing_models"] == []
    assert [s["unit"] for s in gw["services"]] == ["solv-caddy", "solv-litellm", "solv-openwebui", "solv-searxng"]
    vllm = next(h for h in doc["hosts"] if h["host"] == "gpu-1")["services"][0]
    assert (vllm["service"], vllm["instance"]) == ("vllm", "llama-8b")


def _kinds(doc):
    return sorted(((p["host"], p["unit"], p["kind"]) for p in doc["problems"]),
                  key=lambda k: tuple(x or "" for x in k))


def test_each_problem_is_named(inv):
    from solv_provision.status import HostOutcome, exit_code

    reports = healthy_reports()
    gw = reports["gw-1"]
    gw["units"] = [_unit("solv-searxng", active="inactive", sub="dead", running=False, health=None, detail="not run"),
                   _unit("solv-litellm", health=False, url="http://192.0.2.10:4000/v1/models",
                         detail="models missing: llama-8b"),
                   _unit("solv-caddy")]  # no solv-openwebui at all
    gw["litellm"]["models"] = ["qwen-7b", "gpt-4o"]
    reports["gpu-1"]["units"] = [_unit("solv-vllm-qwen-7b", restarts=1), _unit("solv-vllm-llama-8b"),
                                 _unit("solv-vllm-old", active="failed", sub="failed", running=False, health=None)]
    doc = _doc(inv, _collected(reports, **{"gpu-2": HostOutcome(unreachable=True, error="ssh: no route to host")}))
    assert exit_code(doc) == 1 and doc["ok"] is False
    assert _kinds(doc) == [
        ("gpu-1", "solv-vllm-old", "not_active"),  # not in the inventory, still judged
        ("gpu-1", "solv-vllm-qwen-7b", "restarted"),
        ("gpu-2", None, "unreachable"),
        ("gw-1", "solv-litellm", "models_missing"),
        ("gw-1", "solv-litellm", "unhealthy"),
        ("gw-1", "solv-openwebui", "missing"),
        ("gw-1", "solv-searxng", "not_active"),
    ]
    messages = {(p["unit"], p["kind"]): p["message"] for p in doc["problems"]}
    assert messages[("solv-searxng", "not_active")] == "unit inactive (dead)"
    assert messages[("solv-vllm-qwen-7b", "restarted")].startswith("restarted 1 time by systemd")
    assert "llama-8b" in messages[("solv-litellm", "models_missing")]
    assert messages[(None, "unreachable")] == "unreachable: ssh: no route to host"
    assert next(h for h in doc["hosts"] if h["host"] == "gw-1")["gateway"]["missing_models"] == ["llama-8b"]


def test_a_restart_systemd_recovered_from_is_a_warning(inv):
    """A killed container that systemd brought back and that passes its gate is named, but status exits 0."""
    from solv_provision.status import exit_code

    reports = healthy_reports()
    reports["gpu-1"]["units"][0]["restarts"] = 2
    doc = _doc(inv, _collected(reports))
    assert exit_code(doc) == 0 and doc["ok"] is True
    assert [(p["unit"], p["kind"], p["severity"]) for p in doc["problems"]] == [
        ("solv-vllm-qwen-7b", "restarted", "warning")]


def test_container_gate_gpu_and_run_failures_are_problems(inv):
    from solv_provision.status import Collected, HostOutcome

    reports = healthy_reports()
    reports["gpu-1"]["units"][0]["container"].update(exists=False, running=False)
    reports["gpu-1"]["units"][1]["health"] = {"ok": None, "url": None, "detail": "no health gate recorded"}
    reports["gpu-1"]["gpu_error"] = "NVIDIA-SMI has failed"
    reports["gw-1"]["litellm"] = {"url": None, "models": None, "error": "no /v1/models check in the solv-litellm gate"}
    doc = _doc(inv, _collected(reports))
    assert [k for *_, k in _kinds(doc)] == ["gpu_error", "no_gate", "not_running", "models_unknown"]
    failed = _doc(inv, _collected({}, **{"gw-1": HostOutcome(error="Site-wide settings are usable: bad root")}))
    assert _kinds(failed) == [("gw-1", None, "status_failed")]
    assert [p["kind"] for p in _doc(inv, Collected(hosts={}))["problems"]] == ["no_hosts"]
    assert [p["kind"] for p in _doc(inv, Collected(hosts={}, rc=2, error="ERROR! syntax"))["problems"]] == ["run_failed"]


def test_events_become_host_outcomes():
    from solv_provision.status import handle_event

    hosts = {}
    events = [
        {"event": "runner_on_ok", "event_data": {"host": "a", "task_action": "ansible.builtin.assert", "res": {}}},
        {"event": "runner_on_ok", "event_data": {"host": "a", "task_action": "solv_status", "res": {"units": []}}},
        {"event": "runner_on_unreachable", "event_data": {"host": "b", "res": {"msg": "timed out"}}},
        {"event": "runner_on_failed", "event_data": {"host": "c", "task": "T", "res": {"msg": "boom"}}},
    ]
    assert not any(handle_event(e, hosts) for e in events)  # nothing kept on disk
    assert hosts["a"].report == {"units": []}
    assert hosts["b"].unreachable and hosts["b"].error == "timed out"
    assert hosts["c"].error == "T: boom" and hosts["c"].report is None


def test_render_shows_services_gpus_models_and_problems(inv):
    from rich.console import Console

    from solv_provision.status import render

    reports = healthy_reports()
    reports["gw-1"]["units"][0] = _unit("solv-searxng", active="failed", sub="failed", running=False, health=None)
    console = Console(record=True, width=200)
    render(_doc(inv, _collected(reports)), console)
    text = console.export_text()
    assert "solv-vllm-qwen-7b" in text and "vllm/vllm-openai:v0.8.5 (cdcdcdcdcdcd)" in text and "1h 2m" in text
    assert "gpu-1 GPU0 NVIDIA H200, driver 550.54.15: 1/143771 MiB, 3% busy" in text
    assert "gw-1 LiteLLM serves 2/2 expected model(s)" in text
    assert "PROBLEM gw-1: solv-searxng: unit failed (failed)" in text
    assert "1 problem(s)" in text


# --- the CLI ------------------------------------------------------------------------------------------------
class _FakeRunner:
    def __init__(self, rc=0):
        self.rc, self.status = rc, "successful" if rc == 0 else "failed"


@pytest.fixture
def fake_runner(monkeypatch):
    """ansible_runner.run replaced: it answers the events of the hosts in `answers`, and records its call."""
    import ansible_runner

    state = {"answers": healthy_reports(), "calls": []}

    def run(**kwargs):
        state["calls"].append(kwargs)
        for host, report in state["answers"].items():
            kwargs["event_handler"]({"event": "runner_on_ok", "event_data": {
                "host": host, "task_action": "solv_status", "res": report}})
        return _FakeRunner()

    monkeypatch.setattr(ansible_runner, "run", run)
    return state


def test_cli_status_json_validates_and_exits_0(cli, fake_runner):
    result = cli("status", "-i", INVENTORIES / "good", "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    validate(doc)
    assert doc["ok"] and [h["host"] for h in doc["hosts"]] == ["gpu-1", "gw-1"]
    call = fake_runner["calls"][0]
    assert call["playbook"] == str(REPO / "playbooks" / "status.yml") and call["quiet"] is True
    assert call["envvars"]["ANSIBLE_ROLES_PATH"] == str(REPO / "roles")


def test_cli_status_table_exits_1_naming_problems(cli, fake_runner):
    fake_runner["answers"]["gw-1"]["units"][0] = _unit("solv-searxng", active="inactive", sub="dead", running=False,
                                                       health=None)
    result = cli("status", "-i", INVENTORIES / "good", "--limit", "gw-1")
    assert result.exit_code == 1
    assert "PROBLEM gw-1: solv-searxng: unit inactive (dead)" in result.stdout
    assert fake_runner["calls"][0]["limit"] == "gw-1"


def test_cli_status_usage_errors_exit_2(cli, fake_runner):
    assert cli("status", "-i", INVENTORIES / "good", "--limit", "gw-9").exit_code == 2
    assert cli("status", "-i", INVENTORIES / "good", "--watch", "0").exit_code == 2
    assert cli("status", "-i", INVENTORIES / "broken.yml").exit_code == 2
    assert fake_runner["calls"] == []


def test_cli_status_watch_repeats_until_ctrl_c(cli, fake_runner, monkeypatch):
    import time

    sleeps = []

    def sleep(seconds):
        sleeps.append(seconds)
        if len(sleeps) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(time, "sleep", sleep)
    result = cli("status", "-i", INVENTORIES / "good", "--json", "--watch", "5")
    assert result.exit_code == 0 and sleeps == [5, 5]
    lines = result.stdout.splitlines()
    assert len(lines) == 2 and all(json.loads(line)["ok"] for line in lines)  # one document a line


# --- the real playbook, against this machine ---------------------------------------------------------------
def test_status_playbook_runs_the_module_once_per_host(tmp_path, monkeypatch, server):
    """playbooks/status.yml through ansible-runner (connection local): solv_common's library is found, the
    site-wide defaults apply, and each host's report comes back through the events."""
    from solv_provision import inventory
    from solv_provision.status import collect, document

    fake = FakeHost(tmp_path / "h", server.base)
    fake.service("solv-searxng", [{"url": f"{server.base}/healthz"}], rollback=True)
    local = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable, "ansible_become": False,
             "solv_root_dir": str(fake.root), "solv_systemd_dir": str(fake.systemd),
             "solv_docker_bin": str(fake.bin / "docker")}
    inv_file = tmp_path / "hosts.yml"
    inv_file.write_text(yaml.safe_dump({"all": {"children": {
        "gateway": {"hosts": {"gw-local": local}},
        "inference": {"hosts": {"gpu-local": {**local, "solv_root_dir": str(tmp_path / "empty")}}}}}}))
    monkeypatch.setenv("PATH", f"{fake.bin}:{__import__('os').environ['PATH']}")
    collected = collect([str(inv_file)], limit="gw-local")
    assert collected.error is None and set(collected.hosts) == {"gw-local"}, collected
    report = collected.hosts["gw-local"].report
    assert [u["name"] for u in report["units"]] == ["solv-searxng"]
    assert report["units"][0]["health"]["ok"] is True and report["units"][0]["rollback"]["present"] is True
    doc = document(inventory.load([inv_file]), collected)
    validate(doc)
    assert sorted(p["unit"] for p in doc["problems"]) == ["solv-caddy", "solv-litellm", "solv-openwebui"]  # missing here


def test_monitoring_units_are_expected_where_the_rules_put_them(inv, tmp_path):
    """A node exporter on every host, a DCGM exporter where a model has GPUs, Prometheus on the monitoring host:
    missing ones are problems."""
    from solv_provision import inventory
    from solv_provision.status import expected_units

    (tmp_path / "hosts.yml").write_text(yaml.safe_dump({"all": {"vars": {"solv_monitoring": True}, "children": {
        "inference": {"hosts": {"gpu-1": {"ansible_host": "192.0.2.11", "vllm_models": [
            {"name": "qwen-7b", "model": "Qwen/Qwen2.5-7B-Instruct", "gpus": [0], "port": 8001}]}}},
        "gateway": {"hosts": {"gw-1": {"ansible_host": "192.0.2.10"}}},
        "registry": {"hosts": {"gw-1": None}}}}}))
    monitored = inventory.load([tmp_path])
    assert expected_units(monitored, "gpu-1") == ["solv-vllm-qwen-7b", "solv-node-exporter", "solv-dcgm-exporter"]
    assert expected_units(monitored, "gw-1")[-6:] == ["solv-registry", "solv-node-exporter", "solv-blackbox-exporter",
                                                      "solv-alertmanager", "solv-prometheus", "solv-grafana"]
    doc = _doc(monitored, _collected(healthy_reports()))
    missing = sorted((p["host"], p["unit"]) for p in doc["problems"] if p["kind"] == "missing")
    assert missing == [("gpu-1", "solv-dcgm-exporter"), ("gpu-1", "solv-node-exporter"),
                       ("gw-1", "solv-alertmanager"), ("gw-1", "solv-blackbox-exporter"), ("gw-1", "solv-grafana"),
                       ("gw-1", "solv-node-exporter"), ("gw-1", "solv-prometheus"), ("gw-1", "solv-registry")]
    # Monitoring off (the good inventory): none of them is expected.
    assert not {"solv-node-exporter", "solv-dcgm-exporter"} & set(expected_units(inv, "gpu-1"))


_ALERTS = {"status": "success", "data": {"alerts": [
    {"labels": {"alertname": "SolvVllmInstanceNotReady", "severity": "critical", "host": "gpu-1", "service": "vllm",
                "instance_name": "qwen-7b", "model": "qwen-7b", "instance": "192.0.2.11:8001", "job": "vllm"},
     "annotations": {"summary": "vLLM instance qwen-7b (qwen-7b) on gpu-1 is not ready"}, "state": "firing",
     "activeAt": "2025-01-31T11:50:00Z", "value": "0e+00"},
    {"labels": {"alertname": "SolvGpuTemperatureHigh", "severity": "warning", "host": "gpu-1", "gpu": "0"},
     "annotations": {"summary": "GPU 0 on gpu-1 is at 90 °C"}, "state": "firing", "activeAt": "2025-01-31T11:55:00Z"},
    {"labels": {"alertname": "SolvTargetDown", "severity": "critical", "host": "gw-1", "service": "litellm"},
     "annotations": {"summary": "waiting"}, "state": "pending", "activeAt": "2025-01-31T11:59:00Z"}]}}


def test_module_reports_the_alerts_prometheus_has(host, server):
    """On the monitoring host: Prometheus's firing alerts (what the status shows of them) and how many wait."""
    server.routes["/-/ready"] = (200, {}, None)
    server.routes["/api/v1/alerts"] = (200, _ALERTS, None)
    host.service("solv-prometheus", [{"url": "http://{container_address}:%s/-/ready" % host.url.rsplit(":", 1)[1]}])
    _, result = host.run()
    alerts = result["alerts"]
    assert alerts["error"] is None and alerts["pending"] == 1 and alerts["url"].endswith("/api/v1/alerts")
    assert [(a["name"], a["severity"], a["host"]) for a in alerts["firing"]] == [
        ("SolvGpuTemperatureHigh", "warning", "gpu-1"), ("SolvVllmInstanceNotReady", "critical", "gpu-1")]
    assert alerts["firing"][1] == {"name": "SolvVllmInstanceNotReady", "severity": "critical", "host": "gpu-1",
                                   "service": "vllm", "instance_name": "qwen-7b", "model": "qwen-7b",
                                   "summary": "vLLM instance qwen-7b (qwen-7b) on gpu-1 is not ready",
                                   "active_at": "2025-01-31T11:50:00Z"}
    server.routes["/api/v1/alerts"] = (503, {"error": "not ready"}, None)
    _, result = host.run()
    assert result["alerts"]["firing"] == [] and result["alerts"]["error"].startswith("status 503")


def test_a_critical_alert_is_a_problem_on_the_host_it_is_about_a_warning_is_named(inv):
    from solv_provision.status import exit_code

    reports = healthy_reports()
    firing = [{"name": "SolvVllmInstanceNotReady", "severity": "critical", "host": "gpu-1", "service": "vllm",
               "instance_name": "qwen-7b", "model": "qwen-7b", "summary": "not ready", "active_at": None},
              {"name": "SolvGpuTemperatureHigh", "severity": "warning", "host": "gpu-1", "service": None,
               "instance_name": None, "model": None, "summary": "hot", "active_at": None}]
    reports["gw-1"]["alerts"] = {"url": "http://x/api/v1/alerts", "firing": firing, "pending": 0, "error": None}
    doc = _doc(inv, _collected(reports))
    alerts = [(p["host"], p["unit"], p["kind"], p["severity"]) for p in doc["problems"] if p["kind"].startswith("alert")]
    assert alerts == [("gpu-1", "solv-vllm-qwen-7b", "alert_critical", "problem"),
                      ("gpu-1", None, "alert_warning", "warning")]
    assert exit_code(doc) == 1
    reports["gw-1"]["alerts"]["firing"] = firing[1:]  # a warning alone: named, exit 0
    assert exit_code(_doc(inv, _collected(reports))) == 0


def test_staged_models_are_reported_and_an_expected_missing_one_is_a_problem(host, tmp_path):
    """The module lists the model directories (complete: manifest written); status marks those the inventory's
    instances read and names each one they read that the host lacks."""
    from solv_provision import inventory, models

    base = host.root / "data" / "vllm" / "models"
    complete = base / "org--tiny" / "main"
    complete.mkdir(parents=True)
    (complete / "w.safetensors").write_bytes(b"12345")
    models.write_manifest(complete, models.make_manifest(complete, models.ModelRef("org/tiny")))
    (base / "org--cut" / "v1").mkdir(parents=True)  # a copy cut short: no manifest
    _, result = host.run()
    assert result["staged_models"] == [
        {"model": "org/cut", "revision": "v1", "complete": False, "bytes": None},
        {"model": "org/tiny", "revision": "main", "complete": True, "bytes": 5}]
    store = tmp_path / "store"
    (tmp_path / "inv").mkdir()
    (tmp_path / "inv" / "hosts.yml").write_text(yaml.safe_dump({"all": {"children": {
        "inference": {"hosts": {"gpu-1": {"ansible_host": "192.0.2.11", "vllm_model_store": str(store),
                                          "vllm_models": [
            {"name": "tiny", "model": "org/tiny", "gpus": [0], "port": 8001},
            {"name": "big", "model": "org/big", "revision": "v2", "gpus": [1], "port": 8002}]}}},
        "gateway": {"hosts": {"gw-1": {"ansible_host": "192.0.2.10"}}}}}}))
    reports = healthy_reports()
    reports["gpu-1"] = {**reports["gpu-1"], "staged_models": result["staged_models"],
                        "units": [_unit("solv-vllm-tiny"), _unit("solv-vllm-big")]}
    doc = _doc(inventory.load([tmp_path / "inv"]), _collected(reports))
    gpu = next(h for h in doc["hosts"] if h["host"] == "gpu-1")
    assert [(m["model"], m["expected"]) for m in gpu["staged_models"]] == [("org/cut", False), ("org/tiny", True)]
    assert [(p["host"], p["kind"], p["message"]) for p in doc["problems"] if p["host"] == "gpu-1"] == [
        ("gpu-1", "model_not_staged", "org/big@v2 is not staged on the host: apply copies it from the model store")]
