#!/usr/bin/env bash
# The main job on the built-in local lab: setup, Docker engine, lab images, lab hosts (systemd containers
# reached over SSH), `solv-provision apply -i inventories/lab`, then the URLs and a chat completion answered
# through the gateway. Re-running it is safe: a second apply changes nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash lab/bootstrap-docker.sh
export PATH="$PWD/.venv/bin:$PATH"
inv=inventories/lab

solv-provision lab images
solv-provision lab up -i "$inv"
solv-provision apply -i "$inv"
python3 scripts/lab_demo.py "$inv"
