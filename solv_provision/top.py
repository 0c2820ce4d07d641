"""`solv-provision top`: a live view of the site from Prometheus (per model, per GPU, per team).

Everything comes from Prometheus's HTTP API on the monitoring host (instant queries, read-only): the metric names
are vLLM's, NVIDIA's DCGM exporter's and LiteLLM's, as the scrape config labels them (`model` and `host` on vLLM's
series, `host` on every target).
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from solv_provision import addresses, monitoring, specs
from solv_provision.inventory import Inventory

WINDOW = "1m"  # the rates' window: at least four scrapes at the default 15 s interval

_TTFT_BUCKET_RATES = f"sum by (le, model) (rate(vllm:time_to_first_token_seconds_bucket[{WINDOW}]))"
# Per model (the served name), summed over its instances.
MODEL_QUERIES = {
    "requests": "sum by (model) (vllm:request_success_total)",
    "requests_per_s": f"sum by (model) (rate(vllm:request_success_total[{WINDOW}]))",
    "running": "sum by (model) (vllm:num_requests_running)",
    "waiting": "sum by (model) (vllm:num_requests_waiting)",
    "ttft_p50": f"histogram_quantile(0.5, {_TTFT_BUCKET_RATES})",
    "ttft_p95": f"histogram_quantile(0.95, {_TTFT_BUCKET_RATES})",
    "tokens_per_s": f"sum by (model) (rate(vllm:generation_tokens_total[{WINDOW}]))",
}
# Per GPU (DCGM exporter: framebuffer in MiB, utilisation in percent).
GPU_QUERIES = {
    "memory_used_mib": "max by (host, gpu) (DCGM_FI_DEV_FB_USED)",
    "memory_free_mib": "max by (host, gpu) (DCGM_FI_DEV_FB_FREE)",
    "utilisation": "max by (host, gpu) (DCGM_FI_DEV_GPU_UTIL)",
}
# Per team (LiteLLM's proxy metrics; requests without a team are under "").
TEAM_QUERIES = {
    "requests": "sum by (team_alias) (litellm_proxy_total_requests_metric_total)",
    "requests_per_s": f"sum by (team_alias) (rate(litellm_proxy_total_requests_metric_total[{WINDOW}]))",
    "spend": "sum by (team_alias) (litellm_spend_metric_total)",
}


class TopError(Exception):
    """Prometheus cannot be asked (no monitoring host, unreachable, an error answer): the message says which."""


@dataclass
class Snapshot:
    models: dict[str, dict[str, float]] = field(default_factory=dict)
    gpus: dict[tuple[str, str], dict[str, float]] = field(default_factory=dict)
    teams: dict[str, dict[str, float]] = field(default_factory=dict)
    taken: float = 0.0


def prometheus_url(inv: Inventory) -> str:
    """Prometheus's API on the monitoring host, where the inventory publishes it."""
    hosts = inv.in_group(monitoring.GROUP)
    if not hosts:
        raise TopError("monitoring is off in this inventory: no host runs Prometheus (add a `monitoring` group or set "
                       "solv_monitoring: true on the first gateway host)")
    host = hosts[0]
    hv = inv.hosts[host]
    bind = str(hv.get("prometheus_bind_address") or specs.default("prometheus_bind_address") or "")
    address = addresses.host_address(hv, host) if bind in ("", *addresses.WILDCARDS) else bind
    port = hv.get("prometheus_port", specs.default("prometheus_port"))
    return f"http://{addresses.bracketed(address)}:{port}"


Fetch = Callable[[str], Mapping[str, Any]]


def http_fetch(timeout: float = 5.0) -> Fetch:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def fetch(url: str) -> Mapping[str, Any]:
        with opener.open(url, timeout=timeout) as r:
            return json.loads(r.read())

    return fetch


def query(base: str, promql: str, fetch: Fetch) -> list[tuple[dict[str, str], float]]:
    """An instant query: [(labels, value)], NaN results (a quantile of no requests) left out."""
    url = f"{base.rstrip('/')}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    try:
        doc = fetch(url)
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace")[:300]
        raise TopError(f"Prometheus at {base} refused {promql!r}: HTTP {exc.code} {detail}") from exc
    except (OSError, ValueError) as exc:
        raise TopError(f"cannot reach Prometheus at {base} ({exc}); from another network, tunnel to it (ssh -L "
                       f"9090:<address>:<port> <monitoring host>) and pass --url http://127.0.0.1:9090") from exc
    if doc.get("status") != "success":
        raise TopError(f"Prometheus at {base} answered {promql!r} with {doc.get('error') or doc}")
    out = []
    for sample in doc["data"]["result"]:
        value = float(sample["value"][1])
        if value == value:  # not NaN
            out.append((sample["metric"], value))
    return out


def snapshot(base: str, fetch: Fetch) -> Snapshot:
    snap = Snapshot(taken=time.time())
    for column, promql in MODEL_QUERIES.items():
        for labels, value in query(base, promql, fetch):
            snap.models.setdefault(labels.get("model", ""), {})[column] = value
    for column, promql in GPU_QUERIES.items():
        for labels, value in query(base, promql, fetch):
            snap.gpus.setdefault((labels.get("host", ""), labels.get("gpu", "")), {})[column] = value
    for column, promql in TEAM_QUERIES.items():
        for labels, value in query(base, promql, fetch):
            snap.teams.setdefault(labels.get("team_alias", ""), {})[column] = value
    return snap


def _num(row: Mapping[str, float], key: str, fmt: str = "{:.1f}") -> str:
    return fmt.format(row[key]) if key in row else "-"


def _ms(row: Mapping[str, float], key: str) -> str:
    return f"{row[key] * 1000:.0f} ms" if key in row else "-"


def tables(snap: Snapshot):
    """The three rich tables of a snapshot."""
    from rich.table import Table

    models = Table(title="Models (vLLM)", title_justify="left")
    for col in ("model", "requests", "req/s", "running", "waiting", "TTFT p50", "TTFT p95", "tokens/s"):
        models.add_column(col, justify="left" if col == "model" else "right")
    for name in sorted(snap.models):
        r = snap.models[name]
        models.add_row(name, _num(r, "requests", "{:.0f}"), _num(r, "requests_per_s", "{:.2f}"),
                       _num(r, "running", "{:.0f}"), _num(r, "waiting", "{:.0f}"), _ms(r, "ttft_p50"),
                       _ms(r, "ttft_p95"), _num(r, "tokens_per_s"))

    gpus = Table(title="GPUs (DCGM)", title_justify="left")
    for col in ("host", "gpu", "memory used", "memory", "utilisation"):
        gpus.add_column(col, justify="left" if col in ("host", "gpu") else "right")
    for (host, gpu) in sorted(snap.gpus):
        r = snap.gpus[(host, gpu)]
        used, free = r.get("memory_used_mib"), r.get("memory_free_mib")
        total = f"{(used + free) / 1024:.0f} GiB" if used is not None and free is not None else "-"
        share = f"{used / (used + free) * 100:.0f} %" if used is not None and free else "-"
        gpus.add_row(host, gpu, share, total, _num(r, "utilisation", "{:.0f} %"))

    teams = Table(title="Teams (LiteLLM)", title_justify="left")
    for col in ("team", "requests", "req/s", "spend"):
        teams.add_column(col, justify="left" if col == "team" else "right")
    for name in sorted(snap.teams):
        r = snap.teams[name]
        teams.add_row(name or "(no team)", _num(r, "requests", "{:.0f}"), _num(r, "requests_per_s", "{:.2f}"),
                      _num(r, "spend", "${:.4f}"))
    return models, gpus, teams


def main(inv: Inventory, *, url: str | None, once: bool, interval: float, console, fetch: Fetch | None = None) -> int:
    """Print the view once (--once) or refresh it every `interval` s until Ctrl-C. Exit 0, 1 when Prometheus
    cannot be asked."""
    from rich.console import Group
    from rich.live import Live

    base = url or prometheus_url(inv)
    fetch = fetch or http_fetch()
    if once:
        console.print(Group(*tables(snapshot(base, fetch))))
        return 0
    with Live(console=console, refresh_per_second=4, screen=False) as live:
        try:
            while True:
                live.update(Group(*tables(snapshot(base, fetch)), f"{base}  every {interval:g} s  Ctrl-C to quit"))
                time.sleep(interval)
        except KeyboardInterrupt:
            pass
    return 0
