#!/usr/bin/env bash
# Starts a Docker engine for image builds and smoke tests when none is running (this machine kind
# has none): no iptables, no bridge, so containers use --network host or none. PID kept in a file.
set -euo pipefail
if docker info >/dev/null 2>&1; then exit 0; fi
command -v dockerd >/dev/null || { echo "dockerd not found: apt-get install docker.io" >&2; exit 1; }
state=${CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/taskq}/dockerd
mkdir -p "$state"
nohup dockerd --iptables=false --bridge=none --pidfile "$state/dockerd.pid" >"$state/dockerd.log" 2>&1 &
for _ in $(seq 60); do docker info >/dev/null 2>&1 && { echo "dockerd started (pid $(cat "$state/dockerd.pid"))"; exit 0; }; sleep 1; done
echo "dockerd did not start; see $state/dockerd.log" >&2; exit 1
