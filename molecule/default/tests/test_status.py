"""`solv-provision status` on the converged stack (the CLI against this scenario's inventory): healthy -> exit 0
and --json valid against docs/status-schema.json; a stopped unit fails it, naming the unit; a container systemd
restarted after a kill is named as a warning."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import jsonschema
from conftest import secret

REPO = Path(__file__).resolve().parents[3]
SCHEMA = json.loads((REPO / "docs" / "status-schema.json").read_text())
VLLM = "solv-vllm-qwen-0.5b"


def _status(*args):
    cli = Path(sys.executable).parent / "solv-provision"
    inventory = Path(os.environ["MOLECULE_INVENTORY_FILE"]).parent
    return subprocess.run([str(cli), "status", "-i", str(inventory), *args], capture_output=True, text=True,
                          timeout=300, check=False)


def _json(run):
    doc = json.loads(run.stdout)
    jsonschema.Draft202012Validator(SCHEMA).validate(doc)
    return doc, {(p["unit"], p["kind"], p["severity"]) for p in doc["problems"]}


def _healthy_again(timeout=180):
    deadline = time.monotonic() + timeout
    while (run := _status("--json")).returncode != 0 and time.monotonic() < deadline:
        time.sleep(5)
    assert run.returncode == 0, run.stdout[-3000:]


def test_status_of_the_healthy_stack(host):
    run = _status("--json")
    doc, problems = _json(run)
    assert run.returncode == 0 and doc["ok"], run.stdout[-4000:] + run.stderr[-2000:]
    assert all(severity == "warning" for _, _, severity in problems), problems
    [h] = doc["hosts"]
    units = {s["unit"]: s for s in h["services"]}
    assert set(units) == {"solv-searxng", "solv-litellm", "solv-openwebui", "solv-caddy", VLLM, "solv-vllm-llama-1b",
                          "solv-vllm-bge-small"}
    assert all(s["health"]["ok"] and s["container"]["running"] for s in units.values()), units
    assert h["gateway"]["missing_models"] == []
    assert {"qwen-0.5b", "llama-3.2-1b"} <= set(h["gateway"]["served_models"])
    for name in ("litellm_master_key", "vllm_api_key"):
        assert secret(host, name) not in run.stdout
    table = _status()
    assert table.returncode == 0 and "OK:" in table.stdout, table.stdout


def test_status_names_a_stopped_unit(host):
    host.check_output("systemctl stop solv-searxng")
    try:
        run = _status("--json")
        _, problems = _json(run)
        assert run.returncode == 1 and ("solv-searxng", "not_active", "problem") in problems, run.stdout[-3000:]
        text = _status()
        assert text.returncode == 1 and "solv-searxng: unit inactive (dead)" in text.stdout, text.stdout
    finally:
        host.check_output("systemctl start solv-searxng")
        _healthy_again()


def test_status_names_a_restart_after_a_kill(host):
    host.check_output("docker kill %s", VLLM)
    try:
        deadline = time.monotonic() + 120  # systemd restarts it after RestartSec (5 s)
        while time.monotonic() < deadline:
            props = host.check_output("systemctl show %s.service --property=NRestarts,ActiveState", VLLM)
            if "NRestarts=0" not in props and "ActiveState=active" in props:
                break
            time.sleep(2)
        _healthy_again()
        run = _status("--json")
        _, problems = _json(run)
        assert (VLLM, "restarted", "warning") in problems, run.stdout[-3000:]
        assert "restarted 1 time" in _status().stdout
    finally:
        host.check_output("systemctl restart %s.service", VLLM)  # an explicit restart resets NRestarts
        _healthy_again()
