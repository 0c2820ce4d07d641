"""Benchmarks of the CLI's own cost, with targets. Run: .venv/bin/python bench/bench_cli.py

Targets (2-core machine): `solv-provision --help` p50 < 0.5 s (the issue's "well under half a second");
`validate -i inventories/example` p50 < 3 s (loads Ansible's inventory machinery once).
Exit 1 when a target is missed; prints the measured numbers either way.
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CLI = shutil.which("solv-provision", path=str(Path(sys.executable).parent)) or "solv-provision"

CASES = [
    ("help", [CLI, "--help"], 0.5, 10),
    ("validate example", [CLI, "validate", "-i", str(REPO / "inventories" / "example")], 3.0, 5),
]


def measure(cmd: list[str], runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        times.append(time.perf_counter() - t0)
    return times


def main() -> int:
    missed = 0
    for name, cmd, target, runs in CASES:
        times = measure(cmd, runs)
        p50 = statistics.median(times)
        ok = p50 < target
        missed += not ok
        print(f"{name:20s} p50 {p50 * 1000:7.1f} ms  max {max(times) * 1000:7.1f} ms  target < {target * 1000:.0f} ms  "
              f"{'ok' if ok else 'MISSED'}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
