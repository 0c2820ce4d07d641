"""Ansible filters over solv_provision.monitoring (which host runs Prometheus, which hosts a node exporter, what
Prometheus scrapes)."""

from __future__ import annotations

import sys
from pathlib import Path

try:
    from solv_provision import monitoring
except ImportError:  # plain ansible-playbook from a checkout, package not installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
    from solv_provision import monitoring


def solv_monitoring_groups(hostvars, groups):
    """{{ hostvars | solv_monitoring_groups(groups) }} -> {monitoring: [the Prometheus host] or [],
    solv_monitored: [the hosts that run a node exporter], solv_gpu_monitored: [those that run a DCGM exporter]}"""
    return monitoring.computed_groups(groups, hostvars)


def solv_prometheus_scrape(hostvars, groups):
    """{{ hostvars | solv_prometheus_scrape(groups) }} -> {jobs: scrape_configs, litellm_key_file: where Prometheus
    reads LiteLLM's key ('' when no LiteLLM is scraped), alertmanager: where it sends alerts}"""
    jobs = monitoring.scrape_jobs(groups, hostvars)
    scraped = any(job["job_name"] == "litellm" for job in jobs)
    return {"jobs": jobs, "litellm_key_file": monitoring.LITELLM_KEY_FILE if scraped else "",
            "alertmanager": monitoring.alertmanager_target()}


def solv_grafana_runs(host, hostvars, groups):
    """{{ inventory_hostname | solv_grafana_runs(hostvars, groups) }}: Grafana runs here (the monitoring host,
    grafana_enabled not false)."""
    return monitoring.runs_grafana(host, groups, hostvars)


def solv_grafana_datasource(host, hostvars):
    """{{ inventory_hostname | solv_grafana_datasource(hostvars) }}: Grafana's Prometheus data source."""
    return monitoring.grafana_datasource(host, hostvars)


class FilterModule:
    def filters(self):
        return {
            "solv_grafana_runs": solv_grafana_runs,
            "solv_grafana_datasource": solv_grafana_datasource,
            "solv_monitoring_groups": solv_monitoring_groups,
            "solv_prometheus_scrape": solv_prometheus_scrape,
        }
