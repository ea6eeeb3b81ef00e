#!/usr/bin/env bash
# Starts the Docker engine in the background when `docker info` does not answer, and waits
# (up to DOCKERD_TIMEOUT seconds, default 60) until it does. Safe to run again.
set -euo pipefail

log=${DOCKERD_LOG:-/tmp/dockerd.log}
timeout=${DOCKERD_TIMEOUT:-60}

if docker info >/dev/null 2>&1; then
  exit 0
fi

if ! command -v dockerd >/dev/null 2>&1; then
  echo "start-dockerd: dockerd not found; run .ci/install-host-tools.sh first" >&2
  exit 1
fi

# Another dockerd may be starting already (a parallel run of this script): only start one.
if ! pgrep -x dockerd >/dev/null 2>&1; then
  echo "start-dockerd: starting dockerd in the background (log: $log)" >&2
  setsid nohup dockerd >"$log" 2>&1 </dev/null &
fi

for ((i = 0; i < timeout; i++)); do
  if docker info >/dev/null 2>&1; then
    exit 0
  fi
  sleep 1
done

echo "start-dockerd: docker engine did not answer within ${timeout}s; last lines of $log:" >&2
tail -n 20 "$log" >&2 || true
exit 1
