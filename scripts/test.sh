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
# and the Python side do, and the tests that need Docker or the images wait for it. Open WebUI's images (minutes of
# pip downloads on a cold cache), which only the `default` scenario runs, build last, while `multi-node` runs.
images=(--only host:debian12 --only vllm-standin --only searxng-standin --only litellm --only caddy --only registry
        --only redis --only prometheus --only node-exporter --only alertmanager --only blackbox-exporter
        --only dcgm-exporter-standin)
images_log=$(mktemp)
images_ready=$(mktemp -u)
( solv-provision lab images "${images[@]}" && touch "$images_ready" && solv-provision lab images --only open-webui ) \
    > "$images_log" 2>&1 &
images_pid=$!
unit_pid=
trap '{ pkill -P "$images_pid"; kill "$images_pid" $unit_pid; } 2> /dev/null || true' EXIT
images_failed() {
    tail -n 50 "$images_log"
    echo "test.sh: the lab images failed to build (log above)" >&2
    return 1
}
images_ready() {  # every image but Open WebUI's
    while [ ! -e "$images_ready" ]; do
        if ! kill -0 "$images_pid" 2> /dev/null && [ ! -e "$images_ready" ]; then
            images_failed
            return 1
        fi
        sleep 2
    done
}
images_built() {  # all of them
    echo "== lab images"
    wait "$images_pid" || images_failed
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
    # time (each takes the machine's cores, and they share the lab's images): `multi-node` while Open WebUI's images
    # build, then `default`.
    unit_log=$(mktemp)
    nice -n 19 pytest -ra --durations=15 -p no:cacheprovider --basetemp="$(mktemp -d)/unit" \
        -m "not molecule and not docker" -n auto --dist loadfile > "$unit_log" 2>&1 &
    unit_pid=$!
    images_ready
    pytest -ra --durations=15 -m "docker and not molecule" -n auto --dist loadfile
    molecule_rc=0
    pytest -ra --durations=15 "tests/test_molecule.py::test_scenario[multi-node]" || molecule_rc=$?
    images_built
    pytest -ra --durations=15 "tests/test_molecule.py::test_scenario[default]" || molecule_rc=$?
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
