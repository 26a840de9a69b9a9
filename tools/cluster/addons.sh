#!/usr/bin/env bash
# Installs an autoscaling add-on into the running cluster, from binaries built here (no registry):
# an image made of the static binary (mkimage.py), imported into containerd, the manifests of
# manifests/, then waits until its APIService answers. Removing it leaves the cluster as before.
#   addons.sh keda             KEDA operator + metrics API server (binaries of build-keda.sh)
#   addons.sh metrics-server   metrics-server (the kubelet's /metrics/resource -> metrics.k8s.io)
#   addons.sh traefik          Traefik, the ingress controller (IngressClass traefik; build-traefik.sh)
#   addons.sh netpol           kube-router's NetworkPolicy controller (iptables + ipset), so policies are enforced
#   addons.sh remove keda|metrics-server|traefik|netpol
# KEDA_VERSION, METRICS_SERVER_VERSION and TRAEFIK_VERSION name the builds (cluster.mk sets them).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=common.sh
source "$here/common.sh"
DEADLINE=${TASKQ_ADDON_DEADLINE:-180}

[ -S "$CONTAINERD_SOCK" ] && [ -f "$KUBECONFIG_FILE" ] || die "no cluster running: run make cluster first"

# image NAME TAG BINARY: a one-file image of BINARY at /NAME, imported into the cluster.
image() {
  local name=$1 tag=$2 bin=$3
  [ -x "$bin" ] || die "$bin missing: run make cluster-autoscalers-bin (KEDA, metrics-server) or cluster-bin"
  local tar=$IMAGES/$name.tar
  if [ ! -s "$tar" ] || [ "$bin" -nt "$tar" ]; then
    python3 "$here/mkimage.py" --tag "$name:$tag" --out "$tar" --entrypoint "/$name" --user 10001 --add "$bin:/$name"
  fi
  ctr_k8s images import "$tar" >/dev/null || die "importing $tar into the cluster failed"
}

# wait_for WHAT COMMAND...: polls COMMAND until it succeeds or DEADLINE passes.
wait_for() {
  local what=$1; shift
  local end=$(($(date +%s) + DEADLINE))
  until "$@" >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$end" ] || die "$what not ready after ${DEADLINE}s"
    sleep 1
  done
}

api_available() {
  [ "$(kubectl_c get apiservice "$1" -o jsonpath='{.status.conditions[?(@.type=="Available")].status}')" = True ]
}

keda() {
  local v=${KEDA_VERSION:?KEDA_VERSION must be set (cluster.mk reads it from tools/cluster/keda/go.mod)}
  [ -s "$CLUSTER_DIR/keda/crds.yaml" ] || die "$CLUSTER_DIR/keda/crds.yaml missing: run make cluster-autoscalers-bin"
  image keda-operator "$v" "$BIN/keda-operator"
  image keda-adapter "$v" "$BIN/keda-adapter"
  # Server-side: the ScaledJob CRD is too large for the last-applied annotation of a client-side apply.
  kubectl_c apply --server-side --force-conflicts -f "$CLUSTER_DIR/keda/crds.yaml" >/dev/null
  kubectl_c wait --for=condition=Established --timeout="${DEADLINE}s" \
    crd/scaledobjects.keda.sh crd/triggerauthentications.keda.sh >/dev/null
  sed -e "s|@KEDA_VERSION@|$v|" -e "s|@OPERATOR_IMAGE@|keda-operator:$v|" -e "s|@ADAPTER_IMAGE@|keda-adapter:$v|" \
    "$here/manifests/keda.yaml" | kubectl_c apply -f - >/dev/null
  kubectl_c -n keda rollout status deployment/keda-operator --timeout="${DEADLINE}s" >/dev/null ||
    die "keda-operator not ready: $(kubectl_c -n keda logs deployment/keda-operator --tail=3 2>&1)"
  kubectl_c -n keda rollout status deployment/keda-metrics-apiserver --timeout="${DEADLINE}s" >/dev/null ||
    die "keda-metrics-apiserver not ready: $(kubectl_c -n keda logs deployment/keda-metrics-apiserver --tail=3 2>&1)"
  wait_for "APIService v1beta1.external.metrics.k8s.io" api_available v1beta1.external.metrics.k8s.io
  say "KEDA $v ready (namespace keda; external.metrics.k8s.io served by keda-metrics-apiserver)"
}

node_metrics() { kubectl_c get --raw /apis/metrics.k8s.io/v1beta1/nodes/localhost | grep -q '"cpu"'; }

metrics_server() {
  local v=${METRICS_SERVER_VERSION:?METRICS_SERVER_VERSION must be set (cluster.mk sets it)}
  image metrics-server "$v" "$BIN/metrics-server"
  sed -e "s|@METRICS_SERVER_VERSION@|$v|" -e "s|@METRICS_SERVER_IMAGE@|metrics-server:$v|" \
    "$here/manifests/metrics-server.yaml" | kubectl_c apply -f - >/dev/null
  kubectl_c -n kube-system rollout status deployment/metrics-server --timeout="${DEADLINE}s" >/dev/null ||
    die "metrics-server not ready: $(kubectl_c -n kube-system logs deployment/metrics-server --tail=3 2>&1)"
  wait_for "APIService v1beta1.metrics.k8s.io" api_available v1beta1.metrics.k8s.io
  # The first node sample needs two scrapes of the kubelet (a rate), one resolution apart.
  wait_for "node metrics from the kubelet" node_metrics
  say "metrics-server $v ready (metrics.k8s.io; kubectl top works)"
}

traefik() {
  local v=${TRAEFIK_VERSION:?TRAEFIK_VERSION must be set (cluster.mk sets it)}
  image traefik "$v" "$BIN/traefik"
  sed -e "s|@TRAEFIK_VERSION@|$v|" -e "s|@TRAEFIK_IMAGE@|traefik:$v|" "$here/manifests/traefik.yaml" |
    kubectl_c apply -f - >/dev/null
  kubectl_c -n traefik rollout status deployment/traefik --timeout="${DEADLINE}s" >/dev/null ||
    die "traefik not ready: $(kubectl_c -n traefik logs deployment/traefik --tail=3 2>&1)"
  say "Traefik $v ready (IngressClass traefik; Service traefik/traefik, ports 80 and 443)"
}

netpol_healthy() { in_ns curl -fs --max-time 2 http://127.0.0.1:20244/healthz; }

# kube-router with only its firewall (network policy controller): the bridge CNI keeps the pod
# network and kube-proxy the Services. It runs beside the other components, a process in the
# cluster's network namespace (down.sh stops it with them), and reads the API as the node does.
netpol() {
  [ -x "$BIN/kube-router" ] || die "$BIN/kube-router missing: run make cluster-bin"
  command -v ipset >/dev/null || die "ipset missing: run make cluster-deps"
  if ! alive "$(pid_of kube-router)"; then
    setsid nsenter --net="$NS_PATH" -- "$BIN/kube-router" --kubeconfig="$KUBECONFIG_FILE" \
      --hostname-override=localhost --run-firewall=true --run-router=false --run-service-proxy=false \
      --enable-cni=false --enable-ipv6=false --health-port=20244 --metrics-port=0 \
      </dev/null >"$LOGS/kube-router.log" 2>&1 &
    echo $! >"$PIDS/kube-router"
  fi
  wait_for "kube-router (log: $LOGS/kube-router.log)" netpol_healthy
  # It prints "Running <path> version v2.1.0, built on ..." (to stderr).
  say "kube-router $("$BIN/kube-router" --version 2>&1 | sed -n 's/.* version \([^,]*\),.*/\1/p') enforces NetworkPolicy"
}

remove() {
  case $1 in
    keda)
      kubectl_c delete apiservice v1beta1.external.metrics.k8s.io --ignore-not-found >/dev/null
      kubectl_c delete namespace keda --ignore-not-found --wait=true --timeout="${DEADLINE}s" >/dev/null
      kubectl_c delete clusterrolebinding keda-operator --ignore-not-found >/dev/null
      [ ! -s "$CLUSTER_DIR/keda/crds.yaml" ] || kubectl_c delete -f "$CLUSTER_DIR/keda/crds.yaml" --ignore-not-found >/dev/null
      ;;
    metrics-server)
      kubectl_c delete apiservice v1beta1.metrics.k8s.io --ignore-not-found >/dev/null
      kubectl_c -n kube-system delete deployment/metrics-server service/metrics-server serviceaccount/metrics-server \
        --ignore-not-found --wait=true --timeout="${DEADLINE}s" >/dev/null
      kubectl_c delete clusterrolebinding metrics-server --ignore-not-found >/dev/null
      ;;
    traefik)
      kubectl_c delete namespace traefik --ignore-not-found --wait=true --timeout="${DEADLINE}s" >/dev/null
      kubectl_c delete clusterrolebinding traefik --ignore-not-found >/dev/null
      kubectl_c delete clusterrole traefik --ignore-not-found >/dev/null
      kubectl_c delete ingressclass traefik --ignore-not-found >/dev/null
      ;;
    netpol)
      local pid; pid=$(pid_of kube-router)
      if alive "$pid"; then kill -TERM "$pid"; for _ in $(seq 50); do alive "$pid" || break; sleep 0.1; done; fi
      rm -f "$PIDS/kube-router"
      in_ns "$BIN/kube-router" --cleanup-config >/dev/null 2>&1 || true
      ;;
    *) die "usage: addons.sh remove keda|metrics-server|traefik|netpol" ;;
  esac
  say "removed $1"
}

case ${1:-} in
  keda) keda ;;
  metrics-server) metrics_server ;;
  traefik) traefik ;;
  netpol) netpol ;;
  remove) remove "${2:-}" ;;
  *) die "usage: addons.sh keda|metrics-server|traefik|netpol|remove NAME" ;;
esac
