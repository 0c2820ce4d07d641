"""The benchmark suite, one command (README "Benchmarks"):

    .venv/bin/python bench/run.py                      # the controller benchmarks (no host needed)
    .venv/bin/python bench/run.py --lab inventories/lab  # also a no-op re-run of `apply` on a converged lab

Each case runs --repeat times (default 3) and writes bench/results/<case>.json (samples, min/median/max, target);
then the table between the markers in bench/RESULTS.md is rewritten and, with matplotlib installed
(`pip install -e .[bench]`), bench/results/scale.png plots validate/render time against inventory size.
Inventories of 10, 100 and 1,000 inference hosts x 4 vLLM instances come from bench/inventory_gen.py.
"""

from __future__ import annotations

import argparse
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

import inventory_gen

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"
TABLE = BENCH / "RESULTS.md"
START, END = "<!-- bench:start -->", "<!-- bench:end -->"
CLI = shutil.which("solv-provision", path=str(Path(sys.executable).parent)) or "solv-provision"
SIZES = (10, 100, 1000)


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


def table(results: list[dict]) -> str:
    rows = ["| case | target (median) | min / median / max | max RSS | met |", "|---|---|---|---|---|"]
    for r in results:
        target = f"≤ {r['target_s']:g} s" if r["target_s"] is not None else "-"
        met = {True: "yes", False: "**no**", None: "-"}[r["met"]]
        rows.append(f"| {r['what']} | {target} | {r['min_s']:.2f} / {r['median_s']:.2f} / {r['max_s']:.2f} s | "
                    f"{r['max_rss_mib']} MiB | {met} |")
    return "\n".join(rows)


def write_table(results: list[dict]) -> None:
    text = TABLE.read_text()
    block = f"{START}\nWritten by `bench/run.py` ({results[0]['when']}, {results[0]['machine']}; "\
            f"{len(results[0]['samples_s'])} runs each):\n\n{table(results)}\n{END}"
    if START in text:
        head, rest = text.split(START, 1)
        text = head + block + rest.split(END, 1)[1]
    else:
        text = text.rstrip() + "\n\n## Suite (`bench/run.py`)\n\n" + block + "\n"
    TABLE.write_text(text)


def plot(results: list[dict], folder: Path) -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no plot (pip install -e .[bench])")
        return None
    fig, ax = plt.subplots(figsize=(6, 4))
    for prefix, label in (("validate-", "validate"), ("render-litellm-", "render litellm")):
        points = sorted((r["size"], r["median_s"]) for r in results if r["case"].startswith(prefix) and r["size"])
        if points:
            ax.plot(*zip(*points, strict=True), marker="o", label=label)
    ax.set(xscale="log", xlabel="inference hosts (4 vLLM instances each)", ylabel="seconds (median)",
           title="Controller time against inventory size")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    path = folder / "scale.png"
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--only", action="append", default=[],
                    help="run only this case (validate-100), or a family of them (validate)")
    ap.add_argument("--lab", metavar="INVENTORY", help="a converged lab inventory: adds the no-op apply")
    ap.add_argument("--results", type=Path, default=RESULTS, help="where the JSON files go (default bench/results)")
    args = ap.parse_args()
    args.results.mkdir(exist_ok=True)
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
    if not args.only:  # a partial run leaves the table as it is
        write_table(results)
        plot(results, args.results)
    return 1 if any(r["met"] is False for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
