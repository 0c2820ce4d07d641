"""Monitoring: which host runs Prometheus, what it scrapes (solv_provision.monitoring), what the roles render from
it, and the shipped alert rules under promtool."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
import yaml

from conftest import REPO
from solv_provision import inventory, lab_images, monitoring

EXAMPLE = REPO / "inventories" / "example"
VAULT = EXAMPLE / "vault-password.txt"


def _groups(**groups):
    return {"all": [h for members in groups.values() for h in members], **groups}


# --- who runs what -----------------------------------------------------------------------------------------


def test_monitoring_is_off_unless_a_host_or_the_switch_says_so():
    groups = _groups(inference=["gpu-1"], gateway=["gw-1"])
    assert monitoring.prometheus_host(groups, {"gpu-1": {}, "gw-1": {}}) is None
    assert monitoring.monitored_hosts(groups, {"gpu-1": {}, "gw-1": {}}) == []
    # The switch is read on the first gateway host only (validate refuses hosts that disagree).
    assert monitoring.prometheus_host(groups, {"gpu-1": {"solv_monitoring": True}, "gw-1": {}}) is None


def test_the_switch_puts_prometheus_on_the_first_gateway_host():
    groups = _groups(inference=["gpu-1"], gateway=["gw-2", "gw-1"])
    hostvars = {"gpu-1": {}, "gw-1": {"solv_monitoring": True}, "gw-2": {"solv_monitoring": True}}
    assert monitoring.prometheus_host(groups, hostvars) == "gw-2"


def test_a_monitoring_host_wins_and_every_service_host_runs_a_node_exporter_once():
    groups = _groups(registry=["gw-1"], inference=["gpu-1", "gw-1"], gateway=["gw-1"], monitoring=["mon-1"])
    hostvars = {h: {} for h in ("gw-1", "gpu-1", "mon-1")}
    assert monitoring.prometheus_host(groups, hostvars) == "mon-1"
    assert monitoring.monitored_hosts(groups, hostvars) == ["gw-1", "gpu-1", "mon-1"]
    both = monitoring.groups_with_monitoring(groups, hostvars)
    assert (both["monitoring"], both["solv_monitored"]) == (["mon-1"], ["gw-1", "gpu-1", "mon-1"])


def test_the_inventory_loader_adds_the_groups_the_playbooks_compute():
    inv = inventory.load([EXAMPLE], vault_password_file=str(VAULT))
    assert inv.in_group("monitoring") == ["gw-1"]
    assert inv.in_group("solv_monitored") == ["gpu-a", "gpu-b", "gw-1"]
    assert inv.in_group("solv_gpu_monitored") == ["gpu-a", "gpu-b"]  # their models list GPUs


_GPU = {"vllm_models": [{"name": "m", "model": "org/m", "gpus": [0]}]}


@pytest.mark.parametrize("groups, hostvars", [
    (_groups(inference=["gpu-1"], gateway=["gw-1"]), {"gpu-1": _GPU, "gw-1": {}}),
    (_groups(inference=["gpu-1", "gpu-2"], gateway=["gw-1", "gw-2"]),
     {"gpu-1": _GPU, "gpu-2": {"dcgm_exporter_when": "never", **_GPU}, "gw-1": {"solv_monitoring": True}, "gw-2": {}}),
    (_groups(registry=["gw-1"], inference=["gpu-1", "gw-1"], gateway=["gw-1"], monitoring=["mon-1"]),
     {"gw-1": {}, "gpu-1": {"dcgm_exporter_when": "always"}, "mon-1": {}}),
], ids=["off", "on-the-first-gateway", "a-monitoring-host"])
def test_each_host_is_told_the_computed_groups_it_is_in_as_computed_for_all(groups, hostvars):
    """What a host's roles ask of themselves alone (bundle.host_archives) agrees with the groups of the whole run."""
    computed = monitoring.computed_groups(groups, hostvars)
    for host in hostvars:
        assert sorted(monitoring.computed_groups_of(host, groups, hostvars)) == sorted(
            group for group, members in computed.items() if host in members), host


def test_the_example_inventory_s_hosts_are_told_their_computed_groups():
    inv = inventory.load([EXAMPLE], vault_password_file=str(VAULT))
    for host in inv.hosts:
        assert sorted(monitoring.computed_groups_of(host, inv.ansible_groups, inv.hosts)) == sorted(
            group for group in monitoring.computed_groups({}, {}) if host in inv.in_group(group)), host


@pytest.mark.parametrize("group", ["solv_monitored", "solv_gpu_monitored"])
def test_an_inventory_group_named_like_a_computed_one_is_refused(tmp_path, group):
    (tmp_path / "hosts.yml").write_text(f"all:\n  children:\n    {group}:\n      hosts:\n        a:\n")
    with pytest.raises(inventory.InventoryError, match=f"group '{group}' is the stack's own"):
        inventory.load([tmp_path])


# --- what Prometheus scrapes -------------------------------------------------------------------------------


def _site():
    groups = _groups(inference=["gpu-1", "gpu-2"], gateway=["gw-1", "gw-2"])
    hostvars = {
        "gpu-1": {"ansible_host": "10.0.0.11", "node_exporter_port": 9200,
                  "vllm_models": [{"name": "qwen", "model": "Qwen/Qwen2.5-7B", "port": 8001},
                                  {"name": "coder", "model": "Qwen/Coder", "served_model_name": "coder", "port": 8002}]},
        "gpu-2": {"solv_internal_address": "fd00::12", "ansible_host": "gpu-2.example", "node_exporter_bind_address": "::",
                  "vllm_models": [{"name": "qwen", "model": "Qwen/Qwen2.5-7B", "port": 8001}]},
        "gw-1": {"ansible_host": "10.0.0.10", "solv_monitoring": True, "litellm_instances": 2},
        "gw-2": {"ansible_host": "10.0.0.20", "litellm_publish": True, "litellm_instances": 2, "litellm_port": 4100,
                 "node_exporter_bind_address": "10.9.0.20"},
    }
    return groups, hostvars


def _targets(job):
    return [(c["targets"][0], c["labels"]) for c in job["static_configs"]]


def test_every_target_the_inventory_implies_with_host_and_service_labels():
    jobs = {j["job_name"]: j for j in monitoring.scrape_jobs(*_site())}
    assert list(jobs) == ["prometheus", "alertmanager", "node", "vllm", "litellm", "probe"]
    assert _targets(jobs["prometheus"]) == [("localhost:9090", {"host": "gw-1", "service": "prometheus"})]
    assert _targets(jobs["alertmanager"]) == [("solv-alertmanager:9093", {"host": "gw-1", "service": "alertmanager"})]
    # Inventory order, each host once, its own node_exporter_port and bind address (a wildcard: the host's
    # address), IPv6 in brackets.
    assert _targets(jobs["node"]) == [
        ("10.0.0.11:9200", {"host": "gpu-1", "service": "node"}),
        ("[fd00::12]:9100", {"host": "gpu-2", "service": "node"}),
        ("10.0.0.10:9100", {"host": "gw-1", "service": "node"}),
        ("10.9.0.20:9100", {"host": "gw-2", "service": "node"}),
    ]
    # Every vLLM instance where LiteLLM reaches it, labelled with its served name.
    assert _targets(jobs["vllm"]) == [
        ("10.0.0.11:8002", {"host": "gpu-1", "service": "vllm", "model": "coder", "instance_name": "coder"}),
        ("10.0.0.11:8001", {"host": "gpu-1", "service": "vllm", "model": "qwen", "instance_name": "qwen"}),
        ("[fd00::12]:8001", {"host": "gpu-2", "service": "vllm", "model": "qwen", "instance_name": "qwen"}),
    ]
    assert "authorization" not in jobs["vllm"]  # vLLM serves /metrics without its key


def test_litellm_is_scraped_on_its_docker_network_here_and_on_published_ports_elsewhere():
    job = next(j for j in monitoring.scrape_jobs(*_site()) if j["job_name"] == "litellm")
    assert job["authorization"] == {"credentials_file": monitoring.LITELLM_KEY_FILE}
    assert _targets(job) == [
        ("solv-litellm:4000", {"host": "gw-1", "service": "litellm", "instance_name": "solv-litellm"}),
        ("solv-litellm-2:4000", {"host": "gw-1", "service": "litellm", "instance_name": "solv-litellm-2"}),
        ("10.0.0.20:4100", {"host": "gw-2", "service": "litellm", "instance_name": "solv-litellm"}),
        ("10.0.0.20:4101", {"host": "gw-2", "service": "litellm", "instance_name": "solv-litellm-2"}),
    ]


def test_the_gpu_hosts_run_a_dcgm_exporter_which_prometheus_scrapes():
    """auto: the inference hosts whose models list GPUs; always and never override; only while monitoring is on."""
    groups, hostvars = _site()
    hostvars["gpu-1"]["vllm_models"][1]["gpus"] = [0]
    assert monitoring.gpu_hosts(groups, hostvars) == ["gpu-1"]
    hostvars["gpu-2"].update(dcgm_exporter_when="always", dcgm_exporter_port=9500)
    hostvars["gw-1"]["dcgm_exporter_when"] = "always"  # not an inference host: no GPUs of its own to watch
    job = next(j for j in monitoring.scrape_jobs(groups, hostvars) if j["job_name"] == "dcgm")
    assert _targets(job) == [("10.0.0.11:9400", {"host": "gpu-1", "service": "dcgm"}),
                             ("[fd00::12]:9500", {"host": "gpu-2", "service": "dcgm"})]
    hostvars["gpu-1"]["dcgm_exporter_when"] = "never"
    assert monitoring.computed_groups(groups, hostvars)[monitoring.GPU_MONITORED] == ["gpu-2"]
    hostvars["gw-1"]["solv_monitoring"] = False
    assert monitoring.gpu_hosts(groups, hostvars) == []


def test_each_gateway_host_s_blackbox_exporter_checks_searxng_and_open_webui():
    """Job `probe`: per gateway host and service, the health URL as the target parameter, the host's exporter on
    the Docker network where Prometheus runs and on its published port elsewhere."""
    groups, hostvars = _site()
    hostvars["gw-2"]["blackbox_exporter_port"] = 9215
    job = next(j for j in monitoring.scrape_jobs(groups, hostvars) if j["job_name"] == "probe")
    assert (job["metrics_path"], job["params"]) == ("/probe", {"module": ["http_2xx"]})
    targets = _targets(job)
    assert [(t, labels["host"], labels["service"], labels["__param_target"]) for t, labels in targets] == [
        ("solv-blackbox-exporter:9115", "gw-1", "searxng", "http://solv-searxng:8080/healthz"),
        ("solv-blackbox-exporter:9115", "gw-1", "openwebui", "http://solv-openwebui:8080/health"),
        ("10.0.0.20:9215", "gw-2", "searxng", "http://solv-searxng:8080/healthz"),
        ("10.0.0.20:9215", "gw-2", "openwebui", "http://solv-openwebui:8080/health"),
    ]
    assert monitoring.computed_groups(groups, hostvars)[monitoring.PROBING] == ["gw-1", "gw-2"]


@pytest.mark.parametrize("service", sorted(monitoring.PROBES))
def test_each_health_check_asks_what_the_service_s_own_health_gate_asks(service, tmp_path):
    """The URL the blackbox exporter checks is the one `apply` waits on (the service's recorded gate), by name."""
    from urllib.parse import urlsplit

    _render(service, "-i", EXAMPLE, "--vault-password-file", VAULT, "--host", "gw-1", "-o", tmp_path)
    gate = json.loads((tmp_path / "gw-1" / "opt" / "solv" / "gates" / f"solv-{service}.json").read_text())
    url = urlsplit(gate["checks"][0]["url"])
    probe = urlsplit(monitoring.PROBES[service])
    assert (probe.hostname, probe.port, probe.path) == (f"solv-{service}", url.port, url.path)


def test_the_blackbox_exporter_s_module_is_the_one_prometheus_asks_for():
    config = yaml.safe_load(_render("blackbox_exporter", "-i", EXAMPLE, "--vault-password-file", VAULT, "--host", "gw-1",
                                    "--file", "config.yml"))
    assert config["modules"] == {monitoring.PROBE_MODULE: {"prober": "http", "timeout": "5s", "http": {
        "method": "GET", "valid_status_codes": [], "follow_redirects": False, "preferred_ip_protocol": "ip4"}}}


def test_the_dcgm_exporter_gets_every_gpu_and_the_role_s_counters(tmp_path):
    unit = _render("dcgm_exporter", "-i", EXAMPLE, "--vault-password-file", VAULT, "--host", "gpu-a",
                   "--file", "solv-dcgm-exporter.service")
    for arg in ("--network host", "--device nvidia.com/gpu=all", "--cap-drop ALL",
                "--volume /opt/solv/dcgm-exporter/counters.csv:/etc/dcgm-exporter/solv-counters.csv:ro",
                "-f /etc/dcgm-exporter/solv-counters.csv \\\n    -a 10.20.0.11:9400 \\\n    -c 10000",
                "nvcr.io/nvidia/k8s/dcgm-exporter:4.6.0-4.8.3-ubuntu22.04"):
        assert arg in unit, arg
    counters = _render("dcgm_exporter", "-i", EXAMPLE, "--vault-password-file", VAULT, "--host", "gpu-a",
                       "--file", "counters.csv")
    assert counters.strip() == (REPO / "roles" / "dcgm_exporter" / "files" / "counters.csv").read_text().strip()
    # gpus mode (the toolkit's fallback without CDI): Docker's --gpus.
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump({"all": {"vars": {"solv_monitoring": True}, "children": {
        "inference": {"hosts": {"gpu-1": {"ansible_host": "192.0.2.11", "dcgm_exporter_gpu_mode": "gpus",
                                          "vllm_models": [{"name": "a", "model": "x/a", "gpus": [0], "port": 8001}]}}},
        "gateway": {"hosts": {"gw-1": {"ansible_host": "192.0.2.10"}}}}}}))
    unit = _render("dcgm_exporter", "-i", tmp_path, "--host", "gpu-1", "--file", "solv-dcgm-exporter.service")
    assert "--gpus all" in unit and "nvidia.com/gpu" not in unit


def test_a_gateway_whose_litellm_publishes_nothing_is_named():
    groups, hostvars = _site()
    hostvars["gw-2"]["litellm_publish"] = False
    assert monitoring.unscrapable_gateways(groups, hostvars) == ["gw-2"]
    assert monitoring.scrape_jobs(groups, {h: {} for h in hostvars}) == []  # monitoring off: nothing


# --- what the roles render ---------------------------------------------------------------------------------


def _render(*args):
    from click.testing import CliRunner

    from solv_provision.cli import main

    result = CliRunner().invoke(main, ["render", *map(str, args)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def example_prometheus(tmp_path_factory):
    out = tmp_path_factory.mktemp("render")
    _render("prometheus", "-i", EXAMPLE, "--vault-password-file", VAULT, "-o", out)
    return out / "gw-1" / "opt" / "solv" / "prometheus"


def test_the_rendered_scrape_config_is_the_monitoring_module_s(example_prometheus):
    config = yaml.safe_load((example_prometheus / "prometheus.yml").read_text())
    inv = inventory.load([EXAMPLE], vault_password_file=str(VAULT))
    assert config["scrape_configs"] == monitoring.scrape_jobs(inv.ordered_groups, inv.hosts)
    assert config["rule_files"] == ["/etc/prometheus/alerts.yml"]
    # LiteLLM's key reaches Prometheus as a file of its own (a placeholder in render), never on a command line.
    assert (example_prometheus / "litellm_key").read_text() == "<secret:litellm_master_key>"


def test_litellm_serves_metrics_only_while_monitoring_is_on():
    on = yaml.safe_load(_render("litellm", "-i", EXAMPLE, "--vault-password-file", VAULT, "--file", "config.yaml"))
    assert on["litellm_settings"]["callbacks"] == ["prometheus"]
    off = yaml.safe_load(_render("litellm", "-i", REPO / "tests" / "inventories" / "good", "--file", "config.yaml"))
    assert off["litellm_settings"]["callbacks"] == []


def test_the_node_exporter_sees_the_host_not_its_container():
    unit = _render("node_exporter", "-i", EXAMPLE, "--vault-password-file", VAULT, "--host", "gpu-a",
                   "--file", "solv-node-exporter.service")
    for arg in ("--network host", "--pid=host", "--volume /:/host:ro,rslave", "--path.rootfs=/host",
                "--web.listen-address=10.20.0.11:9100", "--user 65534:65534", "--cap-drop ALL"):
        assert arg in unit, arg


# --- the alert rules under promtool (the lab's Prometheus image) -------------------------------------------


def _promtool(tmp_path, *args):
    image = f"{lab_images.REPO}/prometheus:{lab_images.versions()['prometheus']}"
    if not shutil.which("docker") or subprocess.run(["docker", "image", "inspect", image],
                                                    capture_output=True).returncode != 0:
        pytest.fail(f"needs the lab image {image}: solv-provision lab images --only prometheus")
    # As root: the test's folder is private to root (the image runs as nobody).
    return subprocess.run(["docker", "run", "--rm", "--network", "none", "--user", "0:0", "-v", f"{tmp_path}:/etc/prometheus:ro",
                           "--entrypoint", "promtool", image, *args], capture_output=True, text=True)


@pytest.mark.docker
def test_the_alert_rules_fire_where_they_should(example_prometheus, tmp_path):
    shutil.copy(example_prometheus / "alerts.yml", tmp_path / "alerts.yml")
    shutil.copy(REPO / "tests" / "promtool" / "alerts_test.yml", tmp_path / "alerts_test.yml")
    result = _promtool(tmp_path, "test", "rules", "/etc/prometheus/alerts_test.yml")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.docker
def test_prometheus_accepts_the_rendered_configuration(example_prometheus, tmp_path):
    for name in ("prometheus.yml", "alerts.yml"):
        shutil.copy(example_prometheus / name, tmp_path / name)
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "litellm_master_key").write_text("sk-test")
    result = _promtool(tmp_path, "check", "config", "/etc/prometheus/prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    rules = [r for g in yaml.safe_load((tmp_path / "alerts.yml").read_text())["groups"] for r in g["rules"]]
    assert f"SUCCESS: {len(rules)} rules found" in result.stdout + result.stderr


def test_every_shipped_alert_is_tested(example_prometheus):
    shipped = {r["alert"] for g in yaml.safe_load((example_prometheus / "alerts.yml").read_text())["groups"]
               for r in g["rules"]}
    tests = yaml.safe_load((REPO / "tests" / "promtool" / "alerts_test.yml").read_text())["tests"]
    tested = {t["alertname"] for case in tests for t in case["alert_rule_test"] if t["exp_alerts"]}
    assert tested == shipped


def test_with_the_firewall_only_the_monitoring_host_reaches_the_exporters_and_vllm_s_metrics(tmp_path):
    """solv_firewall: the node and DCGM exporters' ports answer the monitoring host only; vLLM's ports answer the gateway
    hosts and the monitoring host (Prometheus scrapes their /metrics)."""
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump({"all": {"vars": {"solv_firewall": True}, "children": {
        "inference": {"hosts": {"gpu-1": {"ansible_host": "192.0.2.11", "vllm_models": [
            {"name": "a", "model": "x/a", "gpus": [0], "port": 8001}]}}},
        "gateway": {"hosts": {"gw-1": {"ansible_host": "192.0.2.10", "litellm_publish": True}}},
        "monitoring": {"hosts": {"mon-1": {"ansible_host": "192.0.2.30"}}}}}}))
    table = _render("node_exporter", "-i", tmp_path, "--host", "gpu-1", "--file", "node-exporter/firewall.nft")
    assert "table inet solv_node_exporter {" in table
    assert "elements = { 192.0.2.30 }" in table and "tcp dport { 9100 } drop" in table
    unit = _render("node_exporter", "-i", tmp_path, "--host", "gpu-1", "--file", "solv-firewall-node-exporter.service")
    assert "ExecStart=/usr/sbin/nft -f /opt/solv/node-exporter/firewall.nft" in unit
    assert "ExecStop=/usr/sbin/nft delete table inet solv_node_exporter" in unit
    dcgm = _render("dcgm_exporter", "-i", tmp_path, "--host", "gpu-1", "--file", "dcgm-exporter/firewall.nft")
    assert "elements = { 192.0.2.30 }" in dcgm and "tcp dport { 9400 } drop" in dcgm
    vllm = _render("vllm", "-i", tmp_path, "--host", "gpu-1", "--file", "vllm/firewall.nft")
    assert "elements = { 192.0.2.10, 192.0.2.30 }" in vllm


# --- Alertmanager ------------------------------------------------------------------------------------------


def test_prometheus_sends_its_alerts_to_the_alertmanager_next_to_it(example_prometheus):
    config = yaml.safe_load((example_prometheus / "prometheus.yml").read_text())
    assert config["alerting"] == {"alertmanagers": [{"static_configs": [{"targets": ["solv-alertmanager:9093"]}]}]}


def _alertmanager_config(tmp_path, **variables):
    tmp_path.mkdir(exist_ok=True)
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump({"all": {"vars": {"solv_monitoring": True, **variables},
                                                                 "children": {
        "inference": {"hosts": {"aio": {"ansible_host": "192.0.2.20", "vllm_models": [
            {"name": "a", "model": "x/a", "gpus": [0], "port": 8001}]}}},
        "gateway": {"hosts": {"aio": None}}}}}))
    return _render("alertmanager", "-i", tmp_path, "--file", "alertmanager.yml")


def test_without_receivers_alerts_are_shown_and_sent_nowhere(tmp_path):
    config = yaml.safe_load(_alertmanager_config(tmp_path))
    assert config["receivers"] == [{"name": "none"}]
    assert config["route"] == {"receiver": "none", "group_by": ["alertname", "host"], "group_wait": "30s",
                               "group_interval": "5m", "repeat_interval": "4h"}


@pytest.mark.docker
def test_alertmanager_accepts_the_inventory_s_receivers_and_routes(tmp_path):
    receivers = [{"name": "chat", "webhook_configs": [{"url": "https://chat.example.com/hooks/solv"}]},
                 {"name": "ops", "email_configs": [{"to": "ops@example.com", "from": "alerts@example.com",
                                                    "smarthost": "smtp.example.com:587"}]}]
    route = {"routes": [{"matchers": ['severity="critical"'], "receiver": "ops"}]}
    text = _alertmanager_config(tmp_path / "inv", alertmanager_receivers=receivers, alertmanager_route=route)
    config = yaml.safe_load(text)
    assert config["receivers"] == receivers
    assert config["route"]["receiver"] == "chat" and config["route"]["routes"] == route["routes"]
    (tmp_path / "alertmanager.yml").write_text(text)
    image = f"{lab_images.REPO}/alertmanager:{lab_images.versions()['alertmanager']}"
    result = subprocess.run(["docker", "run", "--rm", "--network", "none", "--user", "0:0", "-v",
                             f"{tmp_path}:/etc/alertmanager:ro", "--entrypoint", "amtool", image, "check-config",
                             "/etc/alertmanager/alertmanager.yml"], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert " - 2 receivers" in result.stdout, result.stdout
