"""Fill a Molecule scenario's model store as an operator does, with `solv-provision models fetch`, from a local fake
Hub (tests/fake_hub.py, through HF_ENDPOINT) serving a tiny model under each repository id the inventory stages:
no test reaches the internet, and the store is what `models fetch` makes.

Usage: python fill_model_store.py INVENTORY (the scenario's inventory; the store is its vllm_model_store).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))

from fake_hub import FakeHub, tiny_model  # noqa: E402

from solv_provision import inventory, models  # noqa: E402


def main(inventory_path: str) -> int:
    inv = inventory.load([inventory_path])
    wanted = models.needed({h: inv.hosts[h] for h in inv.in_group("inference")})
    repos: dict[str, dict[str, dict[str, bytes]]] = {}
    for ref in set().union(*wanted.values()):
        repos.setdefault(ref.repo, {})[ref.revision] = tiny_model()
    with FakeHub(repos) as hub:
        env = {**os.environ, "HF_ENDPOINT": hub.url, "HF_HUB_DISABLE_TELEMETRY": "1",
               "HF_HUB_DISABLE_PROGRESS_BARS": "1"}
        cli = Path(sys.executable).with_name("solv-provision")
        return subprocess.run([str(cli), "models", "fetch", "-i", inventory_path], env=env, check=False).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
