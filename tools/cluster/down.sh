#!/usr/bin/env bash
# Stops the cluster that up.sh started and leaves the host as it was: it ends exactly the
# processes the cluster started (by recorded PID, the namespace's PIDs and the pod cgroups'
# PIDs), unmounts what containerd and the kubelet mounted, deletes the network namespaces, puts
# back the host sysctls the kubelet changed, and removes the run folder. Safe to run twice.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=common.sh
source "$here/common.sh"

[ "$(id -u)" = 0 ] || die "needs root; run as root"
if [ ! -d "$RUN" ] && [ ! -e "$NS_PATH" ] && [ ! -d "$HOST_STATE" ]; then
  say "no cluster to stop"
  exit 0
fi

# stop PID...: TERM, then KILL whatever is still there after 10 s.
stop() {
  local pids=() p
  for p in "$@"; do alive "$p" && pids+=("$p"); done
  [ ${#pids[@]} -gt 0 ] || return 0
  kill -TERM "${pids[@]}" 2>/dev/null || true
  for _ in $(seq 40); do
    local left=()
    for p in "${pids[@]}"; do alive "$p" && left+=("$p"); done
    [ ${#left[@]} -gt 0 ] || return 0
    sleep 0.25
  done
  say "still running 10 s after TERM, killed: ${left[*]}"
  kill -KILL "${left[@]}" 2>/dev/null || true
}

# Children of a PID (the per-connection forks of a socat forward).
children() { ps -o pid= --ppid "$1" 2>/dev/null | tr -d ' ' || true; }

# Mount points at or under a path, deepest first.
mounts_under() { findmnt -rn -o TARGET | { grep -F "$1" || true; } | sort -r; }

# PIDs in the pods' cgroups, in every cgroup v1 hierarchy (or the v2 tree).
pod_pids() {
  find /sys/fs/cgroup -path '*/kubepods*' -name cgroup.procs -exec cat {} + 2>/dev/null | sort -u || true
}

# The kubelet and the proxy first, so nothing restarts containers while they stop.
stop "$(pid_of kube-proxy)" "$(pid_of kubelet)" "$(pid_of kube-scheduler)" "$(pid_of kube-controller-manager)"

# Every container and sandbox task, through containerd while it still runs.
if alive "$(pid_of containerd)" && [ -S "$CONTAINERD_SOCK" ]; then
  for task in $(ctr_k8s tasks ls -q 2>/dev/null || true); do
    ctr_k8s tasks kill -s SIGKILL "$task" >/dev/null 2>&1 || true
  done
  sleep 0.5
  for task in $(ctr_k8s tasks ls -q 2>/dev/null || true); do
    ctr_k8s tasks delete -f "$task" >/dev/null 2>&1 || true
  done
fi

host_fwd=$(pid_of api-forward-host)
fwd_children=()
if alive "$host_fwd"; then mapfile -t fwd_children < <(children "$host_fwd"); fi
# The API server before etcd: without etcd it waits out its shutdown timeout.
stop "$host_fwd" "${fwd_children[@]}" "$(pid_of api-forward-ns)" "$(pid_of kube-apiserver)" "$(pid_of containerd)"
stop "$(pid_of etcd)"

# What is left in the namespace (shims, forward children) and in the pod cgroups is the
# cluster's alone: nothing else runs in either.
if [ -e "$NS_PATH" ]; then
  mapfile -t ns_pids < <(ip netns pids "$NS" 2>/dev/null || true)
  stop "${ns_pids[@]}"
fi
mapfile -t leftover < <(pod_pids)
stop "${leftover[@]}"
# Empty pod cgroups, deepest first.
find /sys/fs/cgroup -depth -type d -path '*/kubepods*' -exec rmdir {} + 2>/dev/null || true

# Mounts under the cluster folder (overlay rootfs, shm, the kubelet's volumes and the bind mount
# of its root), deepest first; a busy one is detached lazily.
if [ -d "$CLUSTER_DIR" ]; then
  mounts_under "$CLUSTER_DIR/" | while read -r m; do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
  done
fi

# Pod network namespaces that containerd made (the ones not there before up.sh), then our own.
if [ -f "$HOST_STATE/netns-before" ]; then
  for n in $(ls /run/netns 2>/dev/null); do
    case $n in cni-*) grep -qx "$n" "$HOST_STATE/netns-before" || ip netns del "$n" 2>/dev/null || true ;; esac
  done
fi
[ -e "$NS_PATH" ] && ip netns del "$NS"

if [ -f "$HOST_STATE/sysctls" ]; then
  while IFS='=' read -r key value; do
    [ -n "$key" ] && sysctl -qw "$key=$value"
  done <"$HOST_STATE/sysctls"
fi
if [ -f "$HOST_STATE/created-paths" ]; then
  while read -r p; do
    [ -n "$p" ] || continue
    mounts_under "$p" | while read -r m; do umount -l "$m" 2>/dev/null || true; done
    rm -rf "$p"
  done <"$HOST_STATE/created-paths"
fi

# --one-file-system: a mount that would not go away is left alone, never emptied.
rm -rf --one-file-system "$RUN" "$HOST_STATE"
say "stopped; host sysctls restored, namespace $NS removed"
