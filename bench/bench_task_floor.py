"""What stock ansible-playbook costs per task on this machine, with no remote call and no role: the floor under
a no-op run of N tasks (RESULTS.md, "Where the no-op run's time goes").

    .venv/bin/python bench/bench_task_floor.py [--tasks 180] [--repeat 3]

Runs three playbooks against localhost (connection local, no facts): N `set_fact` tasks, N skipped tasks, and
none (start-up alone), and prints the median seconds of each and the cost per task.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PLAYBOOK = "ansible-playbook"


def playbook(tasks: int, kind: str) -> list[dict]:
    body = []
    for i in range(tasks):
        if kind == "set_fact":
            body.append({"name": f"fact {i}", "ansible.builtin.set_fact": {f"floor_{i % 10}": "{{ " + str(i) + " + 1 }}"}})
        else:
            body.append({"name": f"skipped {i}", "ansible.builtin.debug": {"msg": "never"}, "when": "false"})
    return [{"name": "floor", "hosts": "localhost", "connection": "local", "gather_facts": False, "tasks": body}]


def run(path: Path) -> float:
    cli = str(Path(sys.executable).parent / PLAYBOOK)
    t0 = time.perf_counter()
    subprocess.run([cli, "-i", "localhost,", str(path)], check=True, capture_output=True)
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=180)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="solv-floor-") as tmp:
        medians = {}
        for kind, n in (("none", 0), ("set_fact", args.tasks), ("skipped", args.tasks)):
            path = Path(tmp) / f"{kind}.yml"
            path.write_text(json.dumps(playbook(n, kind)))
            medians[kind] = statistics.median(run(path) for _ in range(args.repeat))
    start = medians["none"]
    print(json.dumps({"tasks": args.tasks, "startup_s": round(start, 2),
                      "set_fact_s": round(medians["set_fact"], 2), "skipped_s": round(medians["skipped"], 2),
                      "per_set_fact_ms": round((medians["set_fact"] - start) / args.tasks * 1000, 1),
                      "per_skipped_ms": round((medians["skipped"] - start) / args.tasks * 1000, 1)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
