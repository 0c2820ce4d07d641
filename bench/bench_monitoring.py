"""What monitoring costs a converged lab: Prometheus's own figures about its scrapes and itself, from its API.

    python3 bench/bench_monitoring.py http://10.213.47.10:9090 [--window 2m]

Prints one JSON object: per job the targets, samples per scrape and scrape duration; samples ingested per second;
CPU (share of one core, averaged over the window) and resident memory of Prometheus, Alertmanager and each node
exporter. Standard library only. (Disk: `du -s /opt/solv/data/prometheus` on the monitoring host; Prometheus 2.42
exports no WAL size and persists its first block after two hours.)
"""

from __future__ import annotations

import argparse
import json
import urllib.parse
import urllib.request


def query(base: str, expr: str) -> list[dict]:
    url = f"{base}/api/v1/query?query={urllib.parse.quote(expr)}"
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=30) as answer:
        data = json.loads(answer.read())
    if data.get("status") != "success":
        raise SystemExit(f"{expr}: {data}")
    return data["data"]["result"]


def by(base: str, expr: str, label: str) -> dict[str, float]:
    return {r["metric"].get(label, ""): round(float(r["value"][1]), 4) for r in query(base, expr)}


def measure(base: str, window: str) -> dict:
    jobs = by(base, "count by (job) (up)", "job")
    per_job = {
        job: {"targets": int(count),
              "samples_per_scrape": by(base, "sum by (job) (scrape_samples_scraped)", "job").get(job),
              "scrape_seconds_avg": by(base, f"avg by (job) (avg_over_time(scrape_duration_seconds[{window}]))",
                                       "job").get(job)}
        for job, count in jobs.items()
    }
    processes = {}
    for job in ("prometheus", "alertmanager", "node"):
        cpu = by(base, f'rate(process_cpu_seconds_total{{job="{job}"}}[{window}])', "host")
        rss = by(base, f'process_resident_memory_bytes{{job="{job}"}}', "host")
        processes[job] = {host: {"cpu_cores": cpu.get(host), "rss_mib": round(rss[host] / 2**20, 1)} for host in rss}
    ingest = query(base, f"rate(prometheus_tsdb_head_samples_appended_total[{window}])")
    return {
        "window": window,
        "jobs": per_job,
        "samples_per_second": round(float(ingest[0]["value"][1]), 1) if ingest else None,
        "processes": processes,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("prometheus", help="Prometheus's base URL, e.g. http://10.213.47.10:9090")
    ap.add_argument("--window", default="2m", help="the rate window (a Prometheus duration)")
    args = ap.parse_args()
    print(json.dumps(measure(args.prometheus.rstrip("/"), args.window), indent=2))


if __name__ == "__main__":
    main()
