#!/usr/bin/env bash
# Prepare this machine for solv-provision from a checkout: OS packages (as root, apt) and a virtualenv in
# .venv with the package and its test tools. Idempotent and quick when nothing changed.
# Used by scripts/lab.sh, scripts/test.sh and .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."

need_root() { if [ "$(id -u)" -ne 0 ]; then sudo "$@"; else "$@"; fi; }

# OS packages: the Docker engine (for the lab and tests), debootstrap (lab images), ssh client (transport),
# Debian's Docker distribution registry (serves an offline bundle's images from this machine: `apply --bundle`).
packages=(docker.io debootstrap openssh-client git ca-certificates curl docker-registry)
missing=()
for p in "${packages[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done

# A Python >= 3.11 (ansible-core 2.19 needs it): the newest one on PATH, else Debian/Ubuntu's python3.11.
pick_python() {
    for py in python3.13 python3.12 python3.11 python3; do
        if command -v "$py" >/dev/null 2>&1 && "$py" -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
            command -v "$py"; return 0
        fi
    done
    return 1
}
if ! PY=$(pick_python); then
    missing+=(python3-venv python3.11-venv)
fi

if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    need_root apt-get update -qq
    need_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    PY=$(pick_python)
fi

# The virtualenv; reinstalled only when pyproject.toml changed.
stamp=.venv/.solv-setup-$(sha256sum pyproject.toml | cut -c1-16)
if [ ! -f "$stamp" ]; then
    echo "setup: creating .venv with $PY ($("$PY" --version))" >&2
    "$PY" -m venv .venv
    .venv/bin/pip install -q --upgrade pip
    .venv/bin/pip install -q -e '.[test]'
    rm -f .venv/.solv-setup-*
    touch "$stamp"
fi
echo "setup: ready (.venv/bin/solv-provision)" >&2
