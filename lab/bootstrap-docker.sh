#!/bin/sh
# Make a Docker engine answer on this machine, for the lab and CI (never the production path).
# Idempotent: if `docker info` answers, do nothing. Otherwise install Debian's docker.io when
# dockerd is missing, start it detached with setsid, and wait (bounded) until it answers.
# Env: SOLV_DOCKERD_LOG (default /var/log/dockerd.log), SOLV_DOCKERD_WAIT seconds (default 60).
set -eu

log=${SOLV_DOCKERD_LOG:-/var/log/dockerd.log}
wait_s=${SOLV_DOCKERD_WAIT:-60}

answers() { docker info >/dev/null 2>&1; }

if command -v docker >/dev/null 2>&1 && answers; then
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "bootstrap-docker: no Docker engine answers and this is not root; start one yourself" >&2
    exit 1
fi

if ! command -v dockerd >/dev/null 2>&1; then
    echo "bootstrap-docker: installing docker.io from Debian" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends docker.io iptables >/dev/null
fi

# A dockerd may be starting already (another caller, or the package's own start): only start
# one when none runs, so two callers do not race for the socket.
if ! pgrep -x dockerd >/dev/null 2>&1; then
    echo "bootstrap-docker: starting dockerd (log: $log)" >&2
    setsid dockerd >>"$log" 2>&1 </dev/null &
fi

i=0
while [ "$i" -lt "$wait_s" ]; do
    if answers; then
        exit 0
    fi
    sleep 1
    i=$((i + 1))
done
echo "bootstrap-docker: dockerd did not answer within ${wait_s}s; see $log" >&2
exit 1
