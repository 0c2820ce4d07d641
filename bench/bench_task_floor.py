"""What stock ansible-playbook costs per task on this machine, with no remote call and no role: the floor under
a no-op run of N tasks (RESULTS.md, "Where the no-op run's time goes").

    .venv/bin/python bench/bench_task_floor.py [--tasks 180] [--repeat 3]
    .venv/bin/python bench/bench_task_floor.py --shape 93:80:4 -i inventories/lab   # a converged lab

Runs three playbooks against localhost (connection local, no facts): N `set_fact` tasks, N skipped tasks, and
none (start-up alone), and prints the median seconds of each and the cost per task. `--shape OK:SKIPPED:REMOTE`
also times one play shaped like a no-op run (OK tasks that run, REMOTE of them module calls on the host: the
`min` facts once, then `ping`; SKIPPED skipped tasks) against `-i`'s hosts over their own connection: what stock
Ansible costs for that many tasks and remote calls before any role templates anything.
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


def set_fact(i: int) -> dict:
    return {"name": f"fact {i}", "ansible.builtin.set_fact": {f"floor_{i % 10}": "{{ " + str(i) + " + 1 }}"}}


def skipped(i: int) -> dict:
    return {"name": f"skipped {i}", "ansible.builtin.debug": {"msg": "never"}, "when": "false"}


def playbook(tasks: int, kind: str) -> list[dict]:
    body = [set_fact(i) if kind == "set_fact" else skipped(i) for i in range(tasks)]
    return [{"name": "floor", "hosts": "localhost", "connection": "local", "gather_facts": False, "tasks": body}]


def shaped_playbook(ok: int, skip: int, remote: int) -> list[dict]:
    """One play over every host: REMOTE module calls (facts, then ping), OK - REMOTE set_facts, SKIP skipped tasks,
    interleaved as a role's run interleaves them."""
    calls = [{"name": "facts", "ansible.builtin.setup": {"gather_subset": ["min"]}}]
    calls += [{"name": f"ping {i}", "ansible.builtin.ping": {}} for i in range(remote - 1)]
    local = [set_fact(i) for i in range(ok - remote)]
    skips = [skipped(i) for i in range(skip)]
    body = calls[:1]
    rest = calls[1:] + local
    for i, task in enumerate(rest):
        body.append(task)
        body.extend(skips[i * skip // len(rest):(i + 1) * skip // len(rest)])
    if not rest:  # one task that runs: the skipped ones after it
        body += skips
    return [{"name": "shape", "hosts": "all", "gather_facts": False, "tasks": body}]


def run(path: Path, inventory: str = "localhost,") -> float:
    cli = str(Path(sys.executable).parent / PLAYBOOK)
    t0 = time.perf_counter()
    subprocess.run([cli, "-i", inventory, str(path)], check=True, capture_output=True)
    return time.perf_counter() - t0


def shape(text: str) -> tuple[int, int, int]:
    ok, skip, remote = (int(n) for n in text.split(":"))
    if not 1 <= remote <= ok:
        raise argparse.ArgumentTypeError("OK:SKIPPED:REMOTE with 1 <= REMOTE <= OK")
    return ok, skip, remote


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=180)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--shape", type=shape, help="OK:SKIPPED:REMOTE, e.g. 93:80:4 (needs -i)")
    ap.add_argument("-i", "--inventory", help="the hosts the --shape play runs on (a converged lab)")
    args = ap.parse_args()
    if args.shape and not args.inventory:
        ap.error("--shape needs -i")
    with tempfile.TemporaryDirectory(prefix="solv-floor-") as tmp:
        medians = {}
        for kind, n in (("none", 0), ("set_fact", args.tasks), ("skipped", args.tasks)):
            path = Path(tmp) / f"{kind}.yml"
            path.write_text(json.dumps(playbook(n, kind)))
            medians[kind] = statistics.median(run(path) for _ in range(args.repeat))
        if args.shape:
            path = Path(tmp) / "shape.yml"
            path.write_text(json.dumps(shaped_playbook(*args.shape)))
            medians["shape"] = statistics.median(run(path, args.inventory) for _ in range(args.repeat))
    start = medians["none"]
    result = {"tasks": args.tasks, "startup_s": round(start, 2),
              "set_fact_s": round(medians["set_fact"], 2), "skipped_s": round(medians["skipped"], 2),
              "per_set_fact_ms": round((medians["set_fact"] - start) / args.tasks * 1000, 1),
              "per_skipped_ms": round((medians["skipped"] - start) / args.tasks * 1000, 1)}
    if args.shape:
        result.update(shape="%d:%d:%d" % args.shape, shape_s=round(medians["shape"], 2))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
