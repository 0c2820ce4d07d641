"""The benchmark suite, one command (README "Benchmarks"):

    .venv/bin/python bench/run.py                      # the controller benchmarks (no host needed)
    .venv/bin/python bench/run.py --lab inventories/lab  # also, on a converged lab: a no-op re-run of `apply`,
                                                         # the gateway (bench_gateway.py on the gateway host) and
                                                         # what monitoring costs (bench_monitoring.py)
    .venv/bin/python bench/run.py --converge             # also, fresh and no-op converge of labs of 1, 2 and 4
                                                         # hosts, and fresh through a site registry
                                                         # (bench_converge.py; ~35 minutes)

Each case runs --repeat times (default 3) and writes bench/results/<case>.json (samples, min/median/max, target);
then the table between the markers in bench/RESULTS.md is rewritten and, with matplotlib installed
(`pip install -e .[bench]`), bench/results/scale.png plots validate/render time against inventory size.
Inventories of 10, 100 and 1,000 inference hosts x 4 vLLM instances come from bench/inventory_gen.py.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import bench_converge
import bench_monitoring
import inventory_gen
import yaml

import solv_provision
from solv_provision import lab_hosts, paths

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"
TABLE = BENCH / "RESULTS.md"
CLI = shutil.which("solv-provision", path=str(Path(sys.executable).parent)) or "solv-provision"
SIZES = (10, 100, 1000)
CONVERGE_SIZES = (1, 2, 4)


@dataclass
class Case:
    name: str
    what: str
    argv: list[str]
    target_s: float | None  # the target for the median; None: measured, no target
    size: int | None = None  # inference hosts, for the scale plot


def cases(inventories: dict[int, Path], lab: str | None) -> list[Case]:
    out = [Case("help", "`solv-provision --help`", [CLI, "--help"], 0.3)]
    for n, inv in inventories.items():
        big = n == 1000
        out += [
            Case(f"validate-{n}", f"`validate`, {n} hosts x 4 instances", [CLI, "validate", "-i", str(inv)],
                 2.0 if big else None, n),
            Case(f"render-litellm-{n}", f"`render litellm`, {n} hosts x 4 instances",
                 [CLI, "render", "litellm", "-i", str(inv), "--file", "config.yaml"], 3.0 if big else None, n),
        ]
        if big:
            out.append(Case(f"render-host-{n}", f"`render all --host gpu-0000`, {n} hosts",
                            [CLI, "render", "all", "-i", str(inv), "--host", "gpu-0000"], 2.0))
    if lab:
        out.append(Case("noop-apply", f"no-op `apply -i {lab}` (converged)", [CLI, "apply", "-i", lab], 8.0))
    return out


def timed(argv: list[str]) -> tuple[float, int, int, str]:
    """Run once -> (seconds, exit status, max RSS in MiB of the largest process of the run, output tail)."""
    with tempfile.TemporaryFile() as out:
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)  # rusage of the run, its own children included
        seconds = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait for it again
        out.seek(0)
        return seconds, proc.returncode, usage.ru_maxrss // 1024, out.read()[-4000:].decode(errors="replace")


def run_case(case: Case, repeat: int) -> dict:
    samples, rss = [], []
    for _ in range(repeat):
        seconds, code, mib, tail = timed(case.argv)
        if code != 0:
            raise SystemExit(f"{case.name}: exit {code}\n{tail}")
        samples.append(round(seconds, 3))
        rss.append(mib)
    med = statistics.median(samples)
    return {"case": case.name, "what": case.what, "samples_s": samples, "min_s": min(samples), "median_s": med,
            "max_s": max(samples), "max_rss_mib": max(rss), "target_s": case.target_s, "size": case.size,
            "met": None if case.target_s is None else med <= case.target_s,
            "when": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), "machine": f"{platform.node()}, {os.cpu_count()} cores"}


# The targets for what LiteLLM adds to a chat completion, on 2 cores, with the settings the roles ship.
GATEWAY_TARGETS = {"added_p50_ms": 10.0, "added_p95_ms": 13.0, "rps": 100.0}


def _ssh(lab: Path, host: lab_hosts.LabHost, command: str, stdin: bytes | None = None) -> str:
    r = subprocess.run(lab_hosts.ssh_argv(host, lab_hosts.key_path(lab), command), input=stdin,
                       capture_output=True, check=False)
    if r.returncode != 0:
        raise SystemExit(f"ssh {host.address} {command!r}: exit {r.returncode}\n{r.stderr.decode(errors='replace')}")
    return r.stdout.decode()


def gateway(lab: Path, repeat: int, root: str = "/opt/solv") -> dict:
    """bench_gateway.py on the lab's gateway host: the first vLLM instance of LiteLLM's config straight, through
    LiteLLM's container, and through the HTTPS entry point; `repeat` rounds, each endpoint in turn."""
    gw = next(iter(yaml.safe_load((lab / "hosts.yml").read_text())["all"]["children"]["gateway"]["hosts"]))
    host = next(h for h in lab_hosts.read_hosts(lab) if h.name == gw)
    # The first chat model (an embedding model answers no chat completion).
    config = yaml.safe_load(_ssh(lab, host, f"cat {root}/litellm/config.yaml"))
    first = next(m for m in config["model_list"] if "mode" not in (m.get("model_info") or {}))
    # Monitoring (off by default) adds LiteLLM's prometheus callback and Prometheus's scrapes on the same cores.
    monitored = "prometheus" in ((config.get("litellm_settings") or {}).get("callbacks") or [])
    model, direct = first["model_name"], first["litellm_params"]["api_base"].removesuffix("/v1")
    litellm_ip = _ssh(lab, host, "docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "
                                    "solv-litellm").strip()
    script = (BENCH / "bench_gateway.py").read_bytes()
    master = f"{root}/secrets/litellm_master_key"
    argv = ["python3", "-", "--model", model, "--ca", f"{root}/secrets/caddy_ca_certificate",
            f"{direct}={root}/secrets/vllm_api_key", f"http://{litellm_ip}:4000={master}", f"https://{host.address}={master}"]
    rounds = [json.loads(_ssh(lab, host, " ".join(argv), script)) for _ in range(repeat)]
    names = ("vllm", "litellm", "entrypoint")
    per = {name: [r["endpoints"][i] for r in rounds] for i, name in enumerate(names)}

    def med(name: str, key: str) -> float:
        return round(statistics.median(e[key] for e in per[name]), 2)

    out = {"case": "gateway", "model": model, "rounds": repeat, "monitoring": monitored,
           "added_p50_ms": round(med("litellm", "p50_ms") - med("vllm", "p50_ms"), 2),
           "added_p95_ms": round(med("litellm", "p95_ms") - med("vllm", "p95_ms"), 2),
           "entrypoint_added_p50_ms": round(med("entrypoint", "p50_ms") - med("litellm", "p50_ms"), 2),
           "rps": round(statistics.median(e["concurrent"]["rps"] for e in per["litellm"]), 1),
           "errors": sum(e["concurrent"]["errors"] for e in per["litellm"] + per["entrypoint"]),
           "endpoints": per,
           "when": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), "machine": f"{platform.node()}, {os.cpu_count()} cores"}
    out["met"] = (out["added_p50_ms"] <= GATEWAY_TARGETS["added_p50_ms"] and out["added_p95_ms"] <= GATEWAY_TARGETS["added_p95_ms"]
                  and out["rps"] >= GATEWAY_TARGETS["rps"] and out["errors"] == 0)
    return out


def monitoring(lab: Path) -> dict | None:
    """What monitoring costs the lab (bench_monitoring.py against its Prometheus); None when monitoring is off."""
    from solv_provision import inventory as inventory_mod
    from solv_provision import monitoring as monitoring_mod
    from solv_provision.addresses import host_address

    inv = inventory_mod.load([lab])
    hosts = inv.in_group(monitoring_mod.GROUP)
    if not hosts:
        return None
    hv = inv.hosts[hosts[0]]
    port = hv.get("prometheus_port") or 9090
    out = bench_monitoring.measure(f"http://{host_address(hv, hosts[0])}:{port}", "2m")
    return {"case": "monitoring", "when": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": f"{platform.node()}, {os.cpu_count()} cores", **out}


def monitoring_table(m: dict) -> str:
    rows = ["| job | targets | samples per scrape | scrape duration (avg) |", "|---|---|---|---|"]
    for job, j in m["jobs"].items():
        rows.append(f"| `{job}` | {j['targets']} | {j['samples_per_scrape']:g} | {j['scrape_seconds_avg'] * 1000:.1f} ms |")
    rows += ["", f"Samples ingested: {m['samples_per_second']:g}/s (rate over {m['window']}).", "",
             "| process | host | CPU (share of one core) | resident memory |", "|---|---|---|---|"]
    for job, hosts in m["processes"].items():
        for host, p in hosts.items():
            rows.append(f"| {job} | {host} | {p['cpu_cores'] * 100:.2f} % | {p['rss_mib']:g} MiB |")
    return "\n".join(rows)


def gateway_table(g: dict) -> str:
    lat = {n: f"{statistics.median(e['p50_ms'] for e in g['endpoints'][n]):.1f} / "
              f"{statistics.median(e['p95_ms'] for e in g['endpoints'][n]):.1f} ms" for n in g["endpoints"]}
    return "\n".join([
        "| gateway (model " + g["model"] + f", {g['rounds']} rounds, monitoring "
        + ("on: LiteLLM's prometheus callback" if g.get("monitoring") else "off, the roles' default")
        + ") | target | measured | met |", "|---|---|---|---|",
        f"| added by LiteLLM, p50 / p95 (direct {lat['vllm']}, through LiteLLM {lat['litellm']}) | ≤ 10 / ≤ 13 ms | "
        f"{g['added_p50_ms']:.1f} / {g['added_p95_ms']:.1f} ms | "
        f"{'yes' if g['added_p50_ms'] <= 10 and g['added_p95_ms'] <= 13 else '**no**'} |",
        f"| through LiteLLM, 32 clients | ≥ 100 req/s, 0 errors | {g['rps']:.0f} req/s, {g['errors']} errors | "
        f"{'yes' if g['rps'] >= 100 and g['errors'] == 0 else '**no**'} |",
        f"| added by the HTTPS entry point (Caddy), p50 (through it {lat['entrypoint']}) | - | "
        f"{g['entrypoint_added_p50_ms']:.1f} ms | - |"])


def table(results: list[dict]) -> str:
    rows = ["| case | target (median) | min / median / max | max RSS | met |", "|---|---|---|---|---|"]
    for r in results:
        target = f"≤ {r['target_s']:g} s" if r["target_s"] is not None else "-"
        met = {True: "yes", False: "**no**", None: "-"}[r["met"]]
        rows.append(f"| {r['what']} | {target} | {r['min_s']:.2f} / {r['median_s']:.2f} / {r['max_s']:.2f} s | "
                    f"{r['max_rss_mib']} MiB | {met} |")
    return "\n".join(rows)


def write_block(name: str, body: str) -> None:
    """Rewrite the block between <!-- name:start --> and <!-- name:end --> in RESULTS.md (appended if new)."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    text = TABLE.read_text()
    block = f"{start}\n{body}\n{end}"
    if start in text:
        head, rest = text.split(start, 1)
        text = head + block + rest.split(end, 1)[1]
    else:
        text = text.rstrip() + f"\n\n{block}\n"
    TABLE.write_text(text)


def write_table(results: list[dict]) -> None:
    write_block("bench", f"Written by `bench/run.py` ({results[0]['when']}, {results[0]['machine']}; "
                         f"{len(results[0]['samples_s'])} runs each):\n\n{table(results)}")


def _axes():
    """A figure's axes, or None without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no plot (pip install -e .[bench])")
        return None
    return plt.subplots(figsize=(6, 4))[1]


def _save(ax, folder: Path, name: str, xscale: str = "log", **labels) -> Path:
    ax.set(xscale=xscale, **labels)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    path = folder / name
    ax.figure.tight_layout()
    ax.figure.savefig(path, dpi=100)
    return path


def plot(results: list[dict], folder: Path) -> Path | None:
    if (ax := _axes()) is None:
        return None
    for prefix, label in (("validate-", "validate"), ("render-litellm-", "render litellm")):
        points = sorted((r["size"], r["median_s"]) for r in results if r["case"].startswith(prefix) and r["size"])
        if points:
            ax.plot(*zip(*points, strict=True), marker="o", label=label)
    return _save(ax, folder, "scale.png", xlabel="inference hosts (4 vLLM instances each)",
                 ylabel="seconds (median)", title="Controller time against inventory size")


def plot_converge(results: list[dict], folder: Path) -> Path | None:
    if (ax := _axes()) is None:
        return None
    for kind, label in (("fresh", "fresh converge (archives on a shared path)"),
                        ("fresh-registry", "fresh converge (through the site registry)"), ("noop", "no-op re-run")):
        points = sorted((r["size"], r["median_s"]) for r in results if r["case"] == f"converge-{kind}-{r['size']}")
        if points:
            ax.plot(*zip(*points, strict=True), marker="o", label=label)
    return _save(ax, folder, "converge.png", xscale="linear", xticks=list(CONVERGE_SIZES),
                 xlabel="lab hosts (the first also the gateway)",
                 ylabel="seconds (median)", title="Converge time against number of hosts")


def plot_gateway(g: dict, folder: Path) -> Path | None:
    if (ax := _axes()) is None:
        return None
    for name, label in (("vllm", "vLLM (stand-in) direct"), ("litellm", "through LiteLLM"),
                        ("entrypoint", "through HTTPS entry point")):
        ms = sorted(t for e in g["endpoints"][name] for t in e["samples_ms"])
        ax.plot(ms, [i / len(ms) for i in range(1, len(ms) + 1)], label=label)
    return _save(ax, folder, "gateway.png", xlabel="ms per chat completion (sequential, kept-alive)",
                 ylabel="fraction of requests", title="Gateway latency distribution")


def compile_content() -> None:
    """The package's, the roles' and the plugins' modules compiled, as the first run of any command leaves them on a
    controller where Python caches bytecode. Where PYTHONDONTWRITEBYTECODE is set (this machine, many container
    images), nothing writes them, and each ansible-playbook worker compiles the plugins it loads again: 0.35-0.65 s
    of a lab's no-op run (RESULTS.md). The cases measure the tool as it runs once it has run."""
    root = paths.content_root()
    for folder in (root / "roles", root / "plugins", Path(solv_provision.__file__).parent):
        compileall.compile_dir(folder, quiet=1)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--only", action="append", default=[],
                    help="run only this case (validate-100), or a family of them (validate)")
    ap.add_argument("--lab", metavar="INVENTORY", help="a converged lab inventory: adds the no-op apply and the gateway")
    ap.add_argument("--converge", action="store_true",
                    help="also converge labs of 1, 2 and 4 hosts, fresh and no-op, and fresh through a site registry "
                         "(needs the lab images)")
    ap.add_argument("--results", type=Path, default=RESULTS, help="where the JSON files go (default bench/results)")
    args = ap.parse_args()
    args.results.mkdir(exist_ok=True)
    compile_content()
    with tempfile.TemporaryDirectory(prefix="solv-bench-") as tmp:
        inventories = {n: inventory_gen.write(Path(tmp) / f"hosts-{n}", n) for n in SIZES}
        results = []
        for case in cases(inventories, args.lab):
            if args.only and not any(case.name == o or case.name.startswith(f"{o}-") for o in args.only):
                continue
            r = run_case(case, args.repeat)
            (args.results / f"{case.name}.json").write_text(json.dumps(r, indent=2) + "\n")
            print(f"{case.name:22s} median {r['median_s']:7.2f} s  (min {r['min_s']:.2f}, max {r['max_s']:.2f}; "
                  f"{r['max_rss_mib']} MiB)  {'' if r['met'] is None else 'ok' if r['met'] else 'MISSED'}")
            results.append(r)
        if args.converge:
            stamp = {"when": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
                     "machine": f"{platform.node()}, {os.cpu_count()} cores"}
            converged = bench_converge.converge(CLI, Path(tmp) / "converge", CONVERGE_SIZES, args.repeat, timed, stamp)
            for r in converged:
                (args.results / f"{r['case']}.json").write_text(json.dumps(r, indent=2) + "\n")
                print(f"{r['case']:22s} median {r['median_s']:7.2f} s  {'' if r['met'] is None else 'ok' if r['met'] else 'MISSED'}")
            write_block("converge", f"Written by `bench/run.py --converge` ({stamp['when']}, {stamp['machine']}):\n\n"
                                    f"{table(converged)}")
            plot_converge(converged, args.results)
            results += converged
    if not args.only:  # a partial run leaves the table as it is
        write_table([r for r in results if not r["case"].startswith("converge-")])
        plot(results, args.results)
    gateway_met = True
    if args.lab and (not args.only or "gateway" in args.only):
        g = gateway(Path(args.lab), args.repeat)
        (args.results / "gateway.json").write_text(json.dumps(g, indent=2) + "\n")
        print(f"gateway: LiteLLM adds p50 {g['added_p50_ms']:.1f} ms, p95 {g['added_p95_ms']:.1f} ms; "
              f"{g['rps']:.0f} req/s with 32 clients, {g['errors']} errors  {'ok' if g['met'] else 'MISSED'}")
        write_block("gateway", f"Written by `bench/run.py --lab` ({g['when']}, {g['machine']}):\n\n{gateway_table(g)}")
        plot_gateway(g, args.results)
        gateway_met = g["met"]
    if args.lab and (not args.only or "monitoring" in args.only):
        m = monitoring(Path(args.lab))
        if m:
            (args.results / "monitoring.json").write_text(json.dumps(m, indent=2) + "\n")
            print(f"monitoring: {m['samples_per_second']:g} samples/s; Prometheus "
                  f"{sum(p['cpu_cores'] or 0 for p in m['processes']['prometheus'].values()) * 100:.2f} % of a core")
            write_block("monitoring", f"Written by `bench/run.py --lab` ({m['when']}, {m['machine']}):\n\n"
                                      f"{monitoring_table(m)}")
    return 1 if any(r["met"] is False for r in results) or not gateway_met else 0


if __name__ == "__main__":
    sys.exit(main())
