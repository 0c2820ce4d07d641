"""Every Molecule scenario, run for real (create -> converge -> idempotence -> verify -> destroy).

Each needs the lab images (`solv-provision lab images`; scripts/test.sh builds them before) and a Docker
engine; without one they are skipped with the reason. Output is kept and shown when a scenario fails.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO

# The one-host stack (with the GPU base's checks) before the three hosts.
SCENARIOS = ["default", "multi-node"]
TIMEOUT_S = 1800


def _docker_answers() -> bool:
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def test_every_scenario_is_run():
    assert sorted(SCENARIOS) == sorted(p.name for p in (REPO / "molecule").iterdir() if (p / "molecule.yml").is_file())


@pytest.mark.molecule
@pytest.mark.docker
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_scenario(scenario, tmp_path):
    if not _docker_answers():
        pytest.skip("no Docker engine answers (run lab/bootstrap-docker.sh)")
    bindir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}", "PY_COLORS": "0",
           "ANSIBLE_FORCE_COLOR": "0"}
    log = tmp_path / f"molecule-{scenario}.log"
    t0 = time.monotonic()
    with log.open("w") as out:
        r = subprocess.run([str(bindir / "molecule"), "test", "-s", scenario], cwd=REPO, env=env,
                           stdout=out, stderr=subprocess.STDOUT, timeout=TIMEOUT_S, check=False)
    text = log.read_text(errors="replace")
    print(f"molecule {scenario}: rc={r.returncode} in {time.monotonic() - t0:.0f} s")
    assert r.returncode == 0, f"molecule test -s {scenario} failed; last output:\n{text[-8000:]}"
