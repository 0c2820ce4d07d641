"""The Grafana dashboards' metric names against this scenario's live Prometheus: after client traffic through
LiteLLM (answered requests and one it refuses), every node exporter, vLLM and LiteLLM metric a dashboard of the
grafana role queries has a series, DCGM's from the scenario's stand-in exporters.
Grafana itself does not run here (no package ships it; tests/test_dashboards.py checks the role and the names
offline).

Runs in phase "full" only (the other phase repeats nothing of this)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
# The scenario's helpers and fixtures (Prometheus's API, the phase, the client's key and LiteLLM's address).
from test_monitoring import _api, prometheus  # noqa: F401
from test_multinode import base, hostvars, http, master_key, phase  # noqa: F401

from solv_provision import promql_names

testinfra_hosts = ["ansible://molecule-stack-gw"]

DASHBOARDS = sorted((Path(__file__).resolve().parents[3] / "roles" / "grafana" / "files" / "dashboards").glob("*.json"))


def _used() -> dict[str, list[str]]:
    """Metric name -> the dashboards (and where in them) that query it."""
    used: dict[str, list[str]] = {}
    for path in DASHBOARDS:
        for name, where in promql_names.dashboard_metric_names(json.loads(path.read_text())).items():
            used.setdefault(name, []).extend(f"{path.name}: {w}" for w in where)
    return used


def test_every_metric_the_dashboards_query_has_series(host, prometheus, base, master_key, phase):
    if phase != "full":
        pytest.skip("runs once, in the full phase")
    # Traffic the gateway and vLLM count: answered requests (shared-model: no rate limit of another test's minute
    # to spend) and one LiteLLM refuses (an unknown model: its failed-requests counter).
    for _ in range(2):
        answer = http(host, "POST", f"{base}/v1/chat/completions", master_key,
                      {"model": "shared-model", "messages": [{"role": "user", "content": "dashboards"}], "max_tokens": 4})
        assert answer["status"] == 200, answer
    refused = http(host, "POST", f"{base}/v1/chat/completions", master_key,
                   {"model": "no-such-model", "messages": [{"role": "user", "content": "dashboards"}]})
    assert 400 <= refused["status"] < 500, refused
    used = _used()
    wanted = set(used)
    assert {name.split("_", 1)[0].split(":", 1)[0] for name in wanted} >= {"vllm", "node", "litellm", "DCGM"}
    deadline = time.monotonic() + 30  # a few scrape intervals (2 s here) after the traffic
    while True:
        served = set(_api(host, prometheus, "label/__name__/values"))
        missing = sorted(wanted - served)
        if not missing or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert not missing, {name: used[name] for name in missing}
