#!/usr/bin/env bash
# Starts a Docker engine for image builds and smoke tests when none is running (this machine kind
# has none): no iptables, no bridge, so containers use --network host or none. PID kept in a file.
#   images/dockerd.sh        start one unless a Docker engine answers
#   images/dockerd.sh stop   stop the one started here (by its PID file), and its containerd
set -euo pipefail
state=${CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/taskq}/dockerd
# Whether a PID runs (a zombie, dead but not yet reaped, does not).
alive() { [ -r "/proc/$1/stat" ] && [ "$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -c1)" != Z ]; }
if [ "${1:-}" = stop ]; then
  pid=$(cat "$state/dockerd.pid" 2>/dev/null) || exit 0
  alive "$pid" || exit 0
  # dockerd runs its containerd as a child: note it to check that it went too.
  children=$(ps -o pid= --ppid "$pid" 2>/dev/null | tr -s ' \n' ' ' || true)  # ps fails when there are none
  kill "$pid"
  for _ in $(seq 300); do
    left=""
    for p in $pid $children; do alive "$p" && left+=" $p"; done
    [ -z "$left" ] && { echo "dockerd stopped (pid $pid)"; exit 0; }
    sleep 0.1
  done
  echo "error: dockerd (pid $pid) or its children ($left) still run 30 s after SIGTERM" >&2; exit 1
fi
if docker info >/dev/null 2>&1; then exit 0; fi
command -v dockerd >/dev/null || { echo "dockerd not found: apt-get install docker.io" >&2; exit 1; }
mkdir -p "$state"
nohup dockerd --iptables=false --bridge=none --pidfile "$state/dockerd.pid" >"$state/dockerd.log" 2>&1 &
for _ in $(seq 60); do docker info >/dev/null 2>&1 && { echo "dockerd started (pid $(cat "$state/dockerd.pid"))"; exit 0; }; sleep 1; done
echo "dockerd did not start; see $state/dockerd.log" >&2; exit 1
