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

# The lab images the scenarios use (host:debian13 is for the lab only: `solv-provision lab images` builds every image).
# Cached, rebuilt only when a recipe changed; a cold build (minutes: debootstrap, pip, docker) runs while the linters
# and the Python side do, and the tests that need Docker or the images wait for it.
images=(--only host:debian12 --only vllm-standin --only searxng-standin --only litellm --only open-webui --only caddy
        --only registry --only redis --only prometheus --only node-exporter --only alertmanager
        --only blackbox-exporter --only dcgm-exporter-standin)
images_log=$(mktemp)
solv-provision lab images "${images[@]}" > "$images_log" 2>&1 &
images_pid=$!
unit_pid=
trap 'kill $images_pid $unit_pid 2> /dev/null || true' EXIT
images_built() {
    echo "== lab images"
    if ! wait "$images_pid"; then
        tail -n 50 "$images_log"
        echo "test.sh: the lab images failed to build (log above)" >&2
        return 1
    fi
    cat "$images_log"
}

echo "== yamllint + ansible-lint (production profile)"
yamllint -s .
ansible-lint --offline -q

echo "== pytest"
if [ $# -gt 0 ]; then
    images_built
    pytest -ra --durations=15 "$@"
else
    # The Python side (on every core; a test file stays on one worker: its fixtures are shared) at the lowest CPU
    # priority, beside everything after it: it takes the CPU the image builds and the scenarios leave (they mostly
    # wait for services to start), and they keep theirs. Then what needs Docker, and the Molecule scenarios one at a
    # time (each takes the machine's cores, and they share the lab's images).
    unit_log=$(mktemp)
    nice -n 19 pytest -ra --durations=15 -p no:cacheprovider --basetemp="$(mktemp -d)/unit" \
        -m "not molecule and not docker" -n auto --dist loadfile > "$unit_log" 2>&1 &
    unit_pid=$!
    images_built
    pytest -ra --durations=15 -m "docker and not molecule" -n auto --dist loadfile
    molecule_rc=0
    pytest -ra --durations=15 -m molecule || molecule_rc=$?
    echo "== pytest: the Python side (ran beside the above)"
    unit_rc=0
    wait "$unit_pid" || unit_rc=$?
    unit_pid=
    cat "$unit_log"
    if [ "$unit_rc" -ne 0 ] || [ "$molecule_rc" -ne 0 ]; then
        echo "test.sh: failed (the Python side: exit $unit_rc, the Molecule scenarios: exit $molecule_rc)" >&2
        exit 1
    fi
fi
echo "test.sh: done in $((SECONDS - t0)) s"
