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
from test_multinode import (GW, INF1, INF2, ROOT, _connects, base, hostvars, http, master_key,  # noqa: F401
                            other, phase, wanted)

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
    # Prometheus, Alertmanager, 3 node exporters, 2 DCGM exporters, the vLLM instances, 2 LiteLLM instances, the
    # gateway's 2 health checks (SearXNG, Open WebUI).
    assert len(expected) == 2 + 3 + 2 + sum(len(wanted[h]["vllm_models"]) for h in (INF1, INF2)) + 2 + 2
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
    models = ["big-model", "limited-model", "shared-model", "solo-model"]
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


def test_each_gpu_of_the_inference_hosts_is_in_prometheus_and_in_top(host, prometheus):
    """The DCGM exporter (the lab's stand-in: 2 GPUs per host, DCGM's names and labels) on both inference hosts,
    scraped with the host's label; `top --once` has a row per GPU with its memory and utilisation."""
    used = _query(host, prometheus, "DCGM_FI_DEV_FB_USED")
    assert sorted((r["metric"]["host"], r["metric"]["gpu"]) for r in used) == [
        (INF1, "0"), (INF1, "1"), (INF2, "0"), (INF2, "1")]
    assert {r["metric"]["service"] for r in used} == {"dcgm"} and all(r["metric"]["modelName"] for r in used)
    rc, _, output = _top_rows()
    assert rc == 0, output
    # host | gpu | memory used | memory | utilisation: the stand-in's fixed figures (73,424 of 81,559 MiB, 37 %).
    gpus = sorted(cells for cells in ([c.strip() for c in line.split("│")[1:-1]] for line in output.splitlines())
                  if cells and cells[0] in (INF1, INF2))
    assert gpus == [[h, g, "90 %", "80 GiB", "37 %"] for h in sorted((INF1, INF2)) for g in "01"], output


def test_the_dcgm_exporter_answers_the_monitoring_host_only(host, hostvars):
    """solv_firewall: its port answers Prometheus's host (the gateway), not the other inference host."""
    address = hostvars[INF1]["solv_internal_address"]
    assert _connects(host, address, [9400]) == {9400: True}
    assert _connects(other(INF2), address, [9400]) == {9400: False}
    assert other(INF1).service("solv-firewall-dcgm-exporter").is_enabled


def test_prometheus_keeps_the_key_in_a_file_of_its_own(host, master_key):
    key = host.file(f"{ROOT}/prometheus/litellm_key")
    assert (key.user, key.mode, key.content_string) == ("nobody", 0o600, master_key)
    assert master_key not in host.check_output("docker inspect solv-prometheus")
    assert host.file(f"{ROOT}/data/prometheus").user == "nobody"


def _probes(host, prometheus):
    return {r["metric"]["service"]: r["value"][1] for r in _query(host, prometheus, 'probe_success{job="probe"}')
            if r["metric"]["host"] == GW}


def _probe_alerts(host, prometheus, service):
    return [a for a in _api(host, prometheus, "alerts")["alerts"] if a["labels"].get("alertname") == "SolvProbeFailed"
            and a["labels"].get("service") == service and a["state"] == "firing"]


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


def test_a_stopped_vllm_unit_and_a_stopped_searxng_fire_their_alerts_and_alertmanager_notifies(
        host, prometheus, hostvars, phase):
    """The rule's `for` (10 s here) plus a scrape and an evaluation interval (2 s each) after the stop, the
    alert fires and Alertmanager posts it to the inventory's webhook; started again, it resolves (and says so).
    SearXNG, stopped at the same moment (one wait for both), fails its health check: its alert fires as fast."""
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

    assert firing() == [] and _probe_alerts(host, prometheus, "searxng") == []
    inf2.check_output("systemctl stop solv-vllm-%s", name)
    host.check_output("systemctl stop solv-searxng")
    stopped = time.monotonic()
    try:
        while not (firing() and _probe_alerts(host, prometheus, "searxng")) and time.monotonic() - stopped < 40:
            time.sleep(0.5)
        elapsed = time.monotonic() - stopped
        alerts = firing()
        assert alerts, f"no alert {elapsed:.0f} s after the stop"
        assert alerts[0]["labels"]["host"] == INF2 and alerts[0]["labels"]["model"] == "limited-model"
        assert _probe_alerts(host, prometheus, "searxng"), f"no SolvProbeFailed {elapsed:.0f} s after the stop"
        # for 10 s + one scrape + one evaluation + the polling and the rule's own pending step.
        assert elapsed <= 10 + 3 * 2 + 4, f"fired {elapsed:.1f} s after the stop"
        print(json.dumps({"alerts_fired_after_s": round(elapsed, 1)}))
        deadline = time.monotonic() + 20
        while not _notified(host, name, "firing") and time.monotonic() < deadline:
            time.sleep(0.5)
        assert _notified(host, name, "firing"), _notifications(host)
    finally:
        inf2.check_output("systemctl start solv-vllm-%s", name)
        host.check_output("systemctl start solv-searxng")
    try:
        health = f"http://{hostvars[INF2]['solv_internal_address']}:8003/health"
        deadline = time.monotonic() + 60
        while (http(host, "GET", health)["status"] != 200 or firing() or not _notified(host, name, "resolved")
               or _probes(host, prometheus).get("searxng") != "1" or _probe_alerts(host, prometheus, "searxng")) \
                and time.monotonic() < deadline:
            time.sleep(1)
        assert http(host, "GET", health)["status"] == 200
        assert firing() == [] and _probe_alerts(host, prometheus, "searxng") == []
        assert _probes(host, prometheus)["searxng"] == "1"
        assert _notified(host, name, "resolved"), _notifications(host)
    finally:
        host.run("systemctl stop solv-test-hook")


def test_the_blackbox_exporter_finds_searxng_healthy_and_no_open_webui(host, prometheus):
    """SearXNG answers its /healthz; Open WebUI is not deployed in this scenario: its check fails, as it must."""
    deadline = time.monotonic() + 30
    while _probes(host, prometheus) != {"searxng": "1", "openwebui": "0"} and time.monotonic() < deadline:
        time.sleep(1)
    assert _probes(host, prometheus) == {"searxng": "1", "openwebui": "0"}


def _cli(verb, *args):
    cli = Path(sys.executable).parent / "solv-provision"
    inventory = Path(os.environ["MOLECULE_INVENTORY_FILE"]).parent
    run = subprocess.run([str(cli), verb, "-i", str(inventory), *map(str, args)], capture_output=True, text=True,
                         timeout=600, check=False)
    return run, f"{verb} -> {run.returncode}\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}"


def _scrapes_of_itself(host, prometheus):
    """The timestamps of Prometheus's samples of its own `up` over the last 10 minutes."""
    result = _query(host, prometheus, 'up{job="prometheus"}[10m]')
    return [float(t) for t, _ in result[0]["values"]] if result else []


def test_backup_keeps_prometheus_s_data_and_restore_brings_that_moment_back(host, prometheus, phase, tmp_path):
    """`backup` copies the running Prometheus's data; `restore` puts it back: the samples from before the backup
    are there again, those scraped between the backup and the restore are gone (they were not in it)."""
    if phase != "full":
        pytest.skip("once is enough")
    started = time.time()
    run, out = _cli("backup", "-o", tmp_path)
    assert run.returncode == 0, out
    backed_up = time.time()
    [folder] = (tmp_path / GW).iterdir()
    part = json.loads((folder / "manifest.json").read_text())["parts"]["prometheus"]
    # A young Prometheus (under 2 h) has no block yet: its write-ahead log (and head chunks) hold everything.
    assert part["files"] >= 1 and part["source"] == f"{ROOT}/data/prometheus", part
    time.sleep(8)  # four scrapes at 2 s that the backup does not hold
    before_restore = time.time()
    run, out = _cli("restore", "--from", tmp_path / GW)
    assert run.returncode == 0, out
    deadline = time.monotonic() + 60
    while http(host, "GET", f"{prometheus}/-/ready")["status"] != 200 and time.monotonic() < deadline:
        time.sleep(1)
    samples = _scrapes_of_itself(host, prometheus)
    assert [t for t in samples if t < started], "no sample from before the backup"
    assert [t for t in samples if backed_up + 1 < t < before_restore - 1] == [], "samples the backup did not hold"
    assert "solv-prometheus healthy after" in run.stdout, out
    assert host.file(f"{ROOT}/data/prometheus").user == "nobody"

