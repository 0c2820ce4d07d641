#!/usr/bin/env bash
# The test suite, as CI runs it: setup, Docker engine, lab images (cached), linters, pytest (the Python side,
# check-mode matrices and every Molecule scenario against real systemd test hosts).
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -m "not molecule"` for the fast part only.
set -euo pipefail
cd "$(dirname "$0")/.."
t0=$SECONDS
bash scripts/setup.sh
bash lab/bootstrap-docker.sh
export PATH="$PWD/.venv/bin:$PATH"

echo "== lab images the tests use (cached; rebuilt only when a recipe changed)"
# host:debian13 is for the lab only (no scenario runs on it): `solv-provision lab images` builds every image.
solv-provision lab images --only host:debian12 --only vllm-standin --only searxng-standin --only litellm \
    --only open-webui --only caddy --only registry --only redis --only prometheus --only node-exporter \
    --only alertmanager --only blackbox-exporter --only dcgm-exporter-standin

echo "== yamllint + ansible-lint (production profile)"
yamllint -s .
ansible-lint --offline -q

echo "== pytest"
if [ $# -gt 0 ]; then
    pytest -ra --durations=15 "$@"
else
    # The Python side on every core (a test file stays on one worker: its fixtures are shared), then the Molecule
    # scenarios one at a time (each takes the machine's cores, and they share the lab's images).
    pytest -ra --durations=15 -m "not molecule" -n auto --dist loadfile
    pytest -ra --durations=15 -m molecule
fi
echo "test.sh: done in $((SECONDS - t0)) s"
