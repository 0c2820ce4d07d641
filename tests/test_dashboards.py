"""The dashboards the grafana role ships (roles/grafana/files/dashboards) and what the role renders for Grafana.

Grafana itself cannot run here (no package ships it), so this is what checks it: every query names only metrics
the stack's exporters produce (DCGM fields from the dcgm_exporter role's counters file, vLLM's as the lab's
stand-in serves them, the node exporter's, LiteLLM's and Prometheus's own from tests/fixtures/metric-names), every
panel reads the provisioned Prometheus by its uid, nothing names a host, and the rendered data source, dashboard
provider and admin password file are what Grafana reads (the password only in its file). Molecule multi-node
checks the same names against a live Prometheus (molecule/multi-node/tests/test_dashboard_metrics.py).
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
import yaml

from conftest import REPO
from solv_provision import inventory, monitoring, promql_names

DASHBOARDS = sorted((REPO / "roles" / "grafana" / "files" / "dashboards").glob("*.json"))
METRIC_NAMES = REPO / "tests" / "fixtures" / "metric-names"
COUNTERS = REPO / "roles" / "dcgm_exporter" / "files" / "counters.csv"
EXAMPLE = REPO / "inventories" / "example"
VAULT = EXAMPLE / "vault-password.txt"
PLACEHOLDER = "<secret:grafana_admin_password>"


def _load(path):
    return json.loads(path.read_text())


def _listed(name: str) -> set[str]:
    lines = (METRIC_NAMES / f"{name}.txt").read_text().splitlines()
    return {line.strip() for line in lines if line.strip() and not line.startswith("#")}


def _dcgm_fields() -> set[str]:
    """The fields the dcgm_exporter role enables (DCGM exporter's counters-file format; a `label` field is none)."""
    fields = set()
    for line in COUNTERS.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            field, kind = (part.strip() for part in line.split(",")[:2])
            if kind != "label":
                fields.add(field)
    return fields


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def vllm_served() -> set[str]:
    """Every sample name the lab's vLLM stand-in serves on /metrics: the pinned vLLM's v1 names as served
    (a histogram's _bucket, _sum and _count; counters as named)."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VLLM_", "SOLV_STANDIN_"))}
    proc = subprocess.Popen([sys.executable, "-m", "vllm_standin", "--model", "x/m", "--served-model-name", "m",
                             "--host", "127.0.0.1", "--port", str(port)],
                            env={**env, "PYTHONPATH": str(REPO / "lab" / "doubles")},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as answer:
                    text = answer.read().decode()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.1)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    return {re.split(r"[{ ]", line, maxsplit=1)[0] for line in text.splitlines() if line and not line.startswith("#")}


# What each dashboard reads from: (description for the message, the names it produces).
SOURCES = {
    "solv-gpu": [("the dcgm_exporter role's counters file", _dcgm_fields)],
    "solv-vllm": [("the vLLM stand-in's /metrics (lab/doubles/vllm_standin)", None)],
    "solv-gateway": [("LiteLLM's (tests/fixtures/metric-names/litellm.txt)", lambda: _listed("litellm"))],
    "solv-hosts": [("the node exporter's (tests/fixtures/metric-names/node.txt)", lambda: _listed("node")),
                   ("Prometheus's own (tests/fixtures/metric-names/prometheus.txt)", lambda: _listed("prometheus"))],
}
# What README's Monitoring section says each dashboard shows: these metrics must be on it.
SHOWS = {
    "solv-gpu": {"DCGM_FI_DEV_GPU_UTIL", "DCGM_FI_DEV_MEM_COPY_UTIL", "DCGM_FI_DEV_FB_USED", "DCGM_FI_DEV_FB_FREE",
                 "DCGM_FI_DEV_GPU_TEMP", "DCGM_FI_DEV_POWER_USAGE", "DCGM_FI_DEV_SM_CLOCK", "DCGM_FI_DEV_XID_ERRORS"},
    "solv-vllm": {"vllm:num_requests_running", "vllm:num_requests_waiting", "vllm:request_success_total",
                  "vllm:time_to_first_token_seconds_bucket", "vllm:e2e_request_latency_seconds_bucket",
                  "vllm:prompt_tokens_total", "vllm:generation_tokens_total", "vllm:kv_cache_usage_perc"},
    "solv-gateway": {"litellm_proxy_total_requests_metric_total", "litellm_proxy_failed_requests_metric_total",
                     "litellm_request_total_latency_metric_bucket", "litellm_spend_metric_total"},
    "solv-hosts": {"node_cpu_seconds_total", "node_memory_MemAvailable_bytes", "node_memory_MemTotal_bytes",
                   "node_filesystem_avail_bytes", "node_filesystem_size_bytes", "node_disk_read_bytes_total",
                   "node_disk_written_bytes_total", "node_network_receive_bytes_total",
                   "node_network_transmit_bytes_total", "node_load1", "node_load5", "node_load15"},
}
# The template variables each dashboard filters by.
VARIABLES = {"solv-gpu": {"host", "gpu"}, "solv-vllm": {"host", "model"}, "solv-gateway": {"host", "team"},
             "solv-hosts": {"host"}}
# Grafana's own variables (not defined by a dashboard).
BUILTIN = {"__rate_interval", "__range", "__interval"}


def test_the_role_ships_the_four_dashboards_with_unique_uids_and_titles():
    dashboards = [_load(p) for p in DASHBOARDS]
    assert sorted(d["uid"] for d in dashboards) == sorted(SOURCES)
    assert [d["uid"] for d in dashboards] == [f"solv-{p.stem}" for p in DASHBOARDS]  # the file names the uid
    assert len({d["title"] for d in dashboards}) == len(dashboards)


@pytest.mark.parametrize("path", DASHBOARDS, ids=[p.stem for p in DASHBOARDS])
def test_every_query_names_only_metrics_its_exporter_produces(path, vllm_served):
    dashboard = _load(path)
    sources = [(what, names() if names else vllm_served) for what, names in SOURCES[dashboard["uid"]]]
    produced = set().union(*(names for _, names in sources))
    used = promql_names.dashboard_metric_names(dashboard)
    unknown = {name: where for name, where in used.items() if name not in produced}
    assert not unknown, f"{path.name}: not produced by {' or '.join(w for w, _ in sources)}: {unknown}"
    missing = SHOWS[dashboard["uid"]] - set(used)
    assert not missing, f"{path.name} does not show {sorted(missing)}"


@pytest.mark.parametrize("path", DASHBOARDS, ids=[p.stem for p in DASHBOARDS])
def test_every_panel_reads_the_provisioned_prometheus_by_its_uid(path):
    dashboard = _load(path)
    assert dashboard["schemaVersion"] >= 39
    panels = list(promql_names.panels(dashboard))
    assert len({p["id"] for p in panels}) == len(panels), "panel ids repeat"
    uid = monitoring.GRAFANA_DATASOURCE_UID
    for panel in (p for p in panels if p["type"] != "row"):
        assert panel["datasource"] == {"type": "prometheus", "uid": uid}, panel["title"]
        assert panel["targets"] and all(t["expr"] for t in panel["targets"]), f"{panel['title']}: a query is empty"
        assert all(t["datasource"]["uid"] == uid for t in panel["targets"]), panel["title"]
        assert panel.get("description"), f"{panel['title']}: README and the panel say how to read it"
    for variable in dashboard["templating"]["list"]:
        assert variable["datasource"]["uid"] == uid, variable["name"]


@pytest.mark.parametrize("path", DASHBOARDS, ids=[p.stem for p in DASHBOARDS])
def test_the_template_variables_filter_every_query_and_no_query_names_a_host(path):
    dashboard = _load(path)
    defined = {v["name"] for v in dashboard["templating"]["list"]}
    assert defined == VARIABLES[dashboard["uid"]]
    queries = [text for _, _, text in promql_names.queries(dashboard)]
    used = {name for text in queries for name in re.findall(r"\$\{?(\w+)", text)}
    assert used - BUILTIN == defined, "a variable is defined but never used, or used but not defined"
    for where, kind, text in promql_names.queries(dashboard):
        # Every host matcher is the variable (a panel query filters by it; a host's name is in no dashboard).
        assert all(value == "$host" for value in re.findall(r'\bhost\s*[=!]~?\s*"([^"]*)"', text)), (where, text)
        if kind == "expr":
            assert '=~"$host"' in text, f"{where} ignores the host variable: {text}"
    text = path.read_text()
    for inv in (inventory.load([EXAMPLE], vault_password_file=str(VAULT)), inventory.load([REPO / "inventories" / "lab"])):
        named = [h for h in inv.hosts if re.search(rf"\b{re.escape(h)}\b", text)]
        assert not named, f"{path.name} names hosts {named}"


# --- what the role renders ---------------------------------------------------------------------------------


def _render(*args):
    from click.testing import CliRunner

    from solv_provision.cli import main

    result = CliRunner().invoke(main, ["render", *map(str, args)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def _files(root):
    return {str(p.relative_to(root)): p.read_text() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def example_grafana(tmp_path_factory):
    out = tmp_path_factory.mktemp("render")
    _render("grafana", "-i", EXAMPLE, "--vault-password-file", VAULT, "-o", out)
    return _files(out / "gw-1")


def _volumes(unit: str) -> dict[str, str]:
    """Container path -> host path of the unit's read-only file mounts."""
    mounts = re.findall(r"--volume (\S+):(\S+):ro", unit)
    return {inside: host for host, inside in mounts}


def test_grafana_reads_prometheus_next_to_it_and_the_shipped_dashboards_read_only(example_grafana):
    files = example_grafana
    unit = files["etc/systemd/system/solv-grafana.service"]
    mounted = _volumes(unit)
    datasources = yaml.safe_load(files["opt/solv/grafana/datasources.yml"])["datasources"]
    assert [(d["uid"], d["type"], d["url"]) for d in datasources] == [
        (monitoring.GRAFANA_DATASOURCE_UID, "prometheus", "http://solv-prometheus:9090")]
    assert mounted["/etc/grafana/provisioning/datasources/solv.yml"] == "/opt/solv/grafana/datasources.yml"
    [provider] = yaml.safe_load(files["opt/solv/grafana/dashboards.yml"])["providers"]
    assert (provider["type"], provider["allowUiUpdates"], provider["disableDeletion"]) == ("file", False, True)
    assert mounted["/etc/grafana/provisioning/dashboards/solv.yml"] == "/opt/solv/grafana/dashboards.yml"
    # Exactly the role's dashboards, as shipped, in the folder the provider reads.
    shipped = {f"{provider['options']['path']}/{p.name}": _load(p) for p in DASHBOARDS}
    served = {inside: json.loads(files[host.lstrip("/")]) for inside, host in mounted.items()
              if inside.startswith(provider["options"]["path"] + "/")}
    assert served == shipped
    assert "--publish 10.20.0.10:3000:3000" in unit  # the internal address, never every interface
    env = files["opt/solv/grafana/env"]
    for setting in ("GF_ANALYTICS_REPORTING_ENABLED='false'", "GF_ANALYTICS_CHECK_FOR_UPDATES='false'",
                    "GF_NEWS_NEWS_FEED_ENABLED='false'", "GF_PLUGINS_PREINSTALL_DISABLED='true'",
                    "GF_USERS_ALLOW_SIGN_UP='false'", "GF_AUTH_ANONYMOUS_ENABLED='false'",
                    "GF_PATHS_PROVISIONING='/etc/grafana/provisioning'"):
        assert setting in env.splitlines(), setting


def _password_only_in_its_file(files: dict[str, str], secret: str):
    secret_file = "opt/solv/grafana/admin_password"
    assert files[secret_file] == PLACEHOLDER
    elsewhere = [name for name, text in files.items() if name != secret_file and (PLACEHOLDER in text or secret in text)]
    assert not elsewhere, f"the admin password is in {elsewhere}"
    env, unit = files["opt/solv/grafana/env"], files["etc/systemd/system/solv-grafana.service"]
    assert "GF_SECURITY_ADMIN_PASSWORD__FILE='/etc/grafana/secrets/admin_password'" in env.splitlines()
    assert "GF_SECURITY_ADMIN_PASSWORD=" not in env + unit
    assert _volumes(unit)["/etc/grafana/secrets/admin_password"] == "/opt/solv/grafana/admin_password"


def test_the_generated_admin_password_reaches_grafana_only_as_its_file(example_grafana):
    _password_only_in_its_file(example_grafana, PLACEHOLDER)


def _inventory(tmp_path, **variables):
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump({"all": {"vars": {"solv_monitoring": True, **variables},
                                                                 "children": {
        "inference": {"hosts": {"aio": {"ansible_host": "192.0.2.20", "vllm_models": [
            {"name": "a", "model": "x/a", "gpus": [0], "port": 8001}]}}},
        "gateway": {"hosts": {"aio": None}}}}}))
    return tmp_path


def test_a_password_from_the_inventory_reaches_grafana_only_as_its_file(tmp_path):
    secret = "pw-from-the-inventory"
    out = tmp_path / "out"
    _render("grafana", "-i", _inventory(tmp_path, grafana_admin_password=secret), "-o", out)
    _password_only_in_its_file(_files(out / "aio"), secret)


def test_grafana_off_renders_nothing_and_is_not_expected(tmp_path):
    inv_dir = _inventory(tmp_path, grafana_enabled=False)
    out = tmp_path / "out"
    _render("grafana", "-i", inv_dir, "-o", out)
    assert not [p for p in out.rglob("*") if p.is_file() and "grafana" in p.name]
    from solv_provision.status import expected_units

    assert monitoring.GRAFANA not in expected_units(inventory.load([inv_dir]), "aio")
    assert monitoring.GRAFANA in expected_units(inventory.load([_inventory(tmp_path)]), "aio")
