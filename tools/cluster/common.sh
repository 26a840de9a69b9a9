# Shared settings and helpers of up.sh, down.sh and images.sh (sourced, not run).
#
# Everything the cluster writes lives under $CLUSTER_DIR: bin/ and images/ are caches kept across
# runs; run/ (state, logs, pid files, kubeconfig) and host/ (what the host looked like before)
# exist only while a cluster does.

CLUSTER_DIR=${TASKQ_CLUSTER_DIR:-${CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/taskq}/cluster}
BIN=$CLUSTER_DIR/bin
IMAGES=$CLUSTER_DIR/images
RUN=$CLUSTER_DIR/run
HOST_STATE=$CLUSTER_DIR/host
PIDS=$RUN/pids
LOGS=$RUN/log
KUBECONFIG_FILE=$RUN/kubeconfig

# The network namespace holds containerd and every component, so the host's interfaces, routes
# and iptables stay untouched; its only link to the host is the API server's socket forward.
NS=taskq-k8s
NS_PATH=/run/netns/$NS
NODE_IF=k8snode0
NODE_IP=10.200.0.1
POD_CIDR=10.244.0.0/24
SERVICE_CIDR=10.96.0.0/24
KUBERNETES_SVC_IP=10.96.0.1
DNS_SVC_IP=10.96.0.10
# The API server listens on this port inside the namespace and the forward offers the same port
# on the host's loopback, so one kubeconfig serves both sides.
API_PORT=${TASKQ_CLUSTER_API_PORT:-16443}
CONTAINERD_SOCK=$RUN/containerd/containerd.sock
PAUSE_IMAGE=registry.k8s.io/pause:3.6
COREDNS_IMAGE=taskq-coredns:v1.15.0

# Host sysctls the kubelet sets on start; down.sh puts back the recorded values.
HOST_SYSCTLS=(vm.overcommit_memory kernel.panic kernel.panic_on_oops)
# Host paths the kubelet creates whatever its --root-dir; down.sh removes those it created.
HOST_PATHS=(/var/lib/kubelet /var/log/containers /var/log/pods)

die() { echo "cluster: $*" >&2; exit 1; }
say() { echo "cluster: $*"; }

in_ns() { nsenter --net="$NS_PATH" -- "$@"; }

ctr_k8s() { ctr --address "$CONTAINERD_SOCK" -n k8s.io "$@"; }

kubectl_c() { "$BIN/kubectl" --kubeconfig "$KUBECONFIG_FILE" "$@"; }

alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null; }

pid_of() { cat "$PIDS/$1" 2>/dev/null || true; }
