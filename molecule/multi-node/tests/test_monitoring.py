"""Monitoring on three hosts: Prometheus on the gateway host (solv_monitoring, no `monitoring` group) scrapes every
target the inventory implies, each `up`; LiteLLM's metrics want the key and count requests; the node exporters see
their hosts; a stopped vLLM unit fires its alert within the rule's `for` and a few scrape intervals, and
Alertmanager posts it to the inventory's webhook; `solv-provision top --once`, run on the controller as operators
do, prints a row per model with the requests it served.

Runs in both verify phases (the side effect removes the instance `solo`: Prometheus must stop scraping it)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import pytest
# The scenario's helpers and fixtures (hostvars, wanted: the inventory as this phase expects it).
from test_multinode import GW, INF1, INF2, ROOT, base, hostvars, http, master_key, other, phase, wanted  # noqa: F401

from solv_provision import monitoring

testinfra_hosts = ["ansible://molecule-stack-gw"]

GROUPS = {"registry": [GW], "inference": [INF1, INF2], "gateway": [GW]}


@pytest.fixture(scope="module")
def prometheus(hostvars):
    return f"http://{hostvars[GW]['solv_internal_address']}:{hostvars[GW].get('prometheus_port', 9090)}"


def _api(host, prometheus, path):
    answer = http(host, "GET", f"{prometheus}/api/v1/{path}")
    assert answer["status"] == 200, answer
    return answer["json"]["data"]


def _query(host, prometheus, expr):
    return _api(host, prometheus, f"query?query={quote(expr)}")["result"]


def _scraped(targets):
    return sorted((t["labels"]["job"], t["labels"]["instance"]) for t in targets)


def test_prometheus_scrapes_every_target_the_inventory_implies(host, prometheus, hostvars, wanted):
    inventory = {GW: hostvars[GW], **wanted}
    jobs = monitoring.scrape_jobs(GROUPS, inventory)
    expected = sorted((job["job_name"], c["targets"][0]) for job in jobs for c in job["static_configs"])
    # Prometheus, Alertmanager, 3 node exporters, the vLLM instances, 2 LiteLLM instances.
    assert len(expected) == 2 + 3 + sum(len(wanted[h]["vllm_models"]) for h in (INF1, INF2)) + 2
    deadline = time.monotonic() + 30
    while True:
        active = _api(host, prometheus, "targets?state=active")["activeTargets"]
        down = [(t["labels"]["instance"], t["health"], t["lastError"]) for t in active if t["health"] != "up"]
        if (not down and _scraped(active) == expected) or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert _scraped(active) == expected
    assert down == []


def test_litellm_metrics_want_the_key_and_count_requests(host, prometheus, base, master_key):
    assert http(host, "GET", f"{base}/metrics")["status"] == 401
    before = _query(host, prometheus, "sum(litellm_proxy_total_requests_metric_total)")
    count = float(before[0]["value"][1]) if before else 0.0
    answer = http(host, "POST", f"{base}/v1/chat/completions", master_key,
                  {"model": "shared-model", "messages": [{"role": "user", "content": "count me"}], "max_tokens": 4})
    assert answer["status"] == 200, answer
    for _ in range(20):
        now = _query(host, prometheus, "sum(litellm_proxy_total_requests_metric_total)")
        if now and float(now[0]["value"][1]) > count:
            break
        time.sleep(1)
    assert now and float(now[0]["value"][1]) > count


def _top_rows():
    """`solv-provision top --once` against this scenario's inventory: (exit code, {first cell: other cells}, output)."""
    cli = Path(sys.executable).parent / "solv-provision"
    inventory = Path(os.environ["MOLECULE_INVENTORY_FILE"]).parent
    run = subprocess.run([str(cli), "top", "-i", str(inventory), "--once"], capture_output=True, text=True,
                         timeout=120, check=False, env={**os.environ, "COLUMNS": "160"})
    rows = {cells[0]: cells[1:] for cells in ([c.strip() for c in line.split("│")[1:-1]]
                                              for line in run.stdout.splitlines() if line.startswith("│"))}
    return run.returncode, rows, run.stdout + run.stderr


def test_top_once_prints_a_row_per_model_with_the_requests_it_served(host, base, master_key, phase):
    """After two requests for each model through LiteLLM, each model's row counts them and has a time to first
    token (from vLLM's histogram, scraped every 2 s here)."""
    if phase != "full":
        pytest.skip("runs once: a request for limited-model would count against the limit test's minute")
    models = ["limited-model", "shared-model", "solo-model"]
    for model in models:
        for _ in range(2):
            answer = http(host, "POST", f"{base}/v1/chat/completions", master_key,
                          {"model": model, "messages": [{"role": "user", "content": "top"}], "max_tokens": 4})
            assert answer["status"] == 200, answer
    deadline = time.monotonic() + 30
    while True:
        rc, rows, output = _top_rows()
        # model | requests | req/s | running | waiting | TTFT p50 | TTFT p95 | tokens/s
        ready = rc == 0 and all(m in rows and rows[m][0] not in ("-", "0") and rows[m][4].endswith("ms")
                                for m in models)
        if ready or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert ready, output
    assert sorted(m for m in rows if m.endswith("-model")) == models, output


def test_the_node_exporters_see_their_hosts_network_and_disk(host, prometheus, hostvars):
    # The host's network namespace: each host's Docker bridge (docker0), which no container's namespace has.
    nics = _query(host, prometheus, 'node_network_receive_bytes_total{device="docker0"}')
    assert sorted(r["metric"]["host"] for r in nics) == sorted((INF1, INF2, GW))
    # The host's mounts through /host (a test host's / is an overlay, which the exporter leaves out by default; its
    # Docker volume is a real filesystem).
    disks = _query(host, prometheus, 'node_filesystem_avail_bytes{mountpoint="/var/lib/docker"} > 0')
    assert sorted(r["metric"]["host"] for r in disks) == sorted((INF1, INF2, GW))


def test_prometheus_keeps_the_key_in_a_file_of_its_own(host, master_key):
    key = host.file(f"{ROOT}/prometheus/litellm_key")
    assert (key.user, key.mode, key.content_string) == ("nobody", 0o600, master_key)
    assert master_key not in host.check_output("docker inspect solv-prometheus")
    assert host.file(f"{ROOT}/data/prometheus").user == "nobody"


# The scenario's webhook receiver (alertmanager_receivers): every notification Alertmanager POSTs, one JSON per line.
_HOOK = (
    "import http.server\n"
    "class H(http.server.BaseHTTPRequestHandler):\n"
    "    def do_POST(self):\n"
    "        body = self.rfile.read(int(self.headers['Content-Length']))\n"
    "        with open('/tmp/solv-test-hook.jsonl', 'ab') as f:\n"
    "            f.write(body.replace(b'\\n', b' ') + b'\\n')\n"
    "        self.send_response(200)\n"
    "        self.end_headers()\n"
    "http.server.HTTPServer(('10.213.62.20', 9999), H).serve_forever()\n"
)


def _notifications(host):
    log = host.file("/tmp/solv-test-hook.jsonl")
    return [json.loads(line) for line in log.content_string.splitlines()] if log.exists else []


def _notified(host, name, status):
    return [n for n in _notifications(host) if n["status"] == status
            and any(a["labels"].get("alertname") == "SolvVllmInstanceNotReady"
                    and a["labels"].get("instance_name") == name for a in n["alerts"])]


def test_a_stopped_vllm_unit_fires_its_alert_and_alertmanager_notifies(host, prometheus, hostvars, phase):
    """The rule's `for` (10 s here) plus a scrape and an evaluation interval (2 s each) after the stop, the
    alert fires and Alertmanager posts it to the inventory's webhook; started again, it resolves (and says so)."""
    if phase != "full":
        pytest.skip("once is enough")
    inf2 = other(INF2)
    name = "limited"
    host.check_output("rm -f /tmp/solv-test-hook.jsonl")
    host.check_output("systemd-run --unit=solv-test-hook --collect python3 -c %s", _HOOK)

    def firing():
        return [a for a in _api(host, prometheus, "alerts")["alerts"]
                if a["labels"].get("alertname") == "SolvVllmInstanceNotReady"
                and a["labels"].get("instance_name") == name and a["state"] == "firing"]

    assert firing() == []
    inf2.check_output("systemctl stop solv-vllm-%s", name)
    stopped = time.monotonic()
    try:
        while not firing() and time.monotonic() - stopped < 40:
            time.sleep(0.5)
        elapsed = time.monotonic() - stopped
        alerts = firing()
        assert alerts, f"no alert {elapsed:.0f} s after the stop"
        assert alerts[0]["labels"]["host"] == INF2 and alerts[0]["labels"]["model"] == "limited-model"
        # for 10 s + one scrape + one evaluation + the polling and the rule's own pending step.
        assert elapsed <= 10 + 3 * 2 + 4, f"fired {elapsed:.1f} s after the stop"
        print(json.dumps({"alert_fired_after_s": round(elapsed, 1)}))
        deadline = time.monotonic() + 20
        while not _notified(host, name, "firing") and time.monotonic() < deadline:
            time.sleep(0.5)
        assert _notified(host, name, "firing"), _notifications(host)
    finally:
        inf2.check_output("systemctl start solv-vllm-%s", name)
    try:
        health = f"http://{hostvars[INF2]['solv_internal_address']}:8003/health"
        deadline = time.monotonic() + 60
        while (http(host, "GET", health)["status"] != 200 or firing() or not _notified(host, name, "resolved")) \
                and time.monotonic() < deadline:
            time.sleep(1)
        assert http(host, "GET", health)["status"] == 200
        assert firing() == []
        assert _notified(host, name, "resolved"), _notifications(host)
    finally:
        host.run("systemctl stop solv-test-hook")
