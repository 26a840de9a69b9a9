#!/usr/bin/env bash
# Starts a single-node Kubernetes cluster inside the network namespace taskq-k8s: containerd,
# etcd, the control plane, a kubelet with a bridge pod network, kube-proxy and CoreDNS. The host
# reaches the API server on 127.0.0.1:$API_PORT through a socket forward; the kubeconfig path is
# printed as an `export KUBECONFIG=...` line. A running, healthy cluster is reused.
#   tools/cluster/up.sh        (binaries from `make cluster`, i.e. build-k8s.sh, in $CLUSTER_DIR/bin)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=common.sh
source "$here/common.sh"

# Deadlines in seconds; each wait fails with the component's last log line, never hangs.
API_DEADLINE=${TASKQ_CLUSTER_API_DEADLINE:-60}
NODE_DEADLINE=${TASKQ_CLUSTER_NODE_DEADLINE:-90}
DNS_DEADLINE=${TASKQ_CLUSTER_DNS_DEADLINE:-90}

started=$(date +%s)

# --- preflight: each failure is one line ------------------------------------------------------
[ "$(id -u)" = 0 ] || die "needs root (network namespace, containerd, cgroups); run as root"
[ -d /sys/fs/cgroup/memory ] || [ -f /sys/fs/cgroup/cgroup.controllers ] ||
  die "no cgroup memory controller under /sys/fs/cgroup; the kubelet cannot run here"
for tool in containerd containerd-shim-runc-v2 runc ctr iptables conntrack socat openssl ip nsenter; do
  command -v "$tool" >/dev/null || die "$tool not found: apt-get install containerd runc containernetworking-plugins iptables conntrack socat openssl iproute2"
done
for plugin in bridge host-local portmap loopback; do
  [ -x "/usr/lib/cni/$plugin" ] || die "CNI plugin /usr/lib/cni/$plugin missing: apt-get install containernetworking-plugins"
done
for b in k8s coredns; do
  [ -x "$BIN/$b" ] || die "$BIN/$b missing: run make cluster (it builds the binaries first)"
done
[ -w /sys/fs/cgroup/memory ] || [ -w /sys/fs/cgroup ] || die "cgroups are read-only here; the kubelet cannot create pod cgroups"
modprobe br_netfilter 2>/dev/null || true
modprobe overlay 2>/dev/null || true
grep -qw overlay /proc/filesystems || die "the kernel has no overlay filesystem; containerd's overlayfs snapshotter needs it"

api_ok() { "$BIN/kubectl" --kubeconfig "$KUBECONFIG_FILE" --request-timeout=2s get --raw /readyz >/dev/null 2>&1; }

if [ -e "$NS_PATH" ] || [ -d "$RUN" ] || [ -d "$HOST_STATE" ]; then
  if alive "$(pid_of kubelet)" && alive "$(pid_of kube-apiserver)" && [ -f "$KUBECONFIG_FILE" ] && api_ok; then
    say "reusing the running cluster"
    echo "export KUBECONFIG=$KUBECONFIG_FILE"
    exit 0
  fi
  die "a previous cluster is half up ($RUN or netns $NS exists); run make cluster-down first"
fi
if (exec 3<>"/dev/tcp/127.0.0.1/$API_PORT") 2>/dev/null; then
  die "127.0.0.1:$API_PORT is taken on the host; set TASKQ_CLUSTER_API_PORT to a free port"
fi

# From here on a failure tears down whatever was started, so a retry starts clean.
cleanup_on_error() {
  local rc=$?
  if [ "$rc" != 0 ]; then
    echo "cluster: start failed; logs were in $LOGS (copied to $CLUSTER_DIR/last-failure)" >&2
    rm -rf "$CLUSTER_DIR/last-failure" && cp -r "$LOGS" "$CLUSTER_DIR/last-failure" 2>/dev/null || true
    # TASKQ_CLUSTER_KEEP_FAILED=1 leaves a failed start in place to look at (then make cluster-down).
    [ -n "${TASKQ_CLUSTER_KEEP_FAILED:-}" ] || "$here/down.sh" >/dev/null 2>&1 || true
  fi
}
trap cleanup_on_error EXIT

# --- record the host as it is, for down.sh --------------------------------------------------
mkdir -p "$HOST_STATE" "$PIDS" "$LOGS"
for s in "${HOST_SYSCTLS[@]}"; do echo "$s=$(sysctl -n "$s")"; done >"$HOST_STATE/sysctls"
for p in "${HOST_PATHS[@]}"; do [ -e "$p" ] || echo "$p"; done >"$HOST_STATE/created-paths"
ls /run/netns 2>/dev/null >"$HOST_STATE/netns-before" || : >"$HOST_STATE/netns-before"

# --- certificates and credentials ------------------------------------------------------------
pki=$RUN/pki
mkdir -p "$pki"
(
  cd "$pki"
  openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=taskq-cluster-ca" \
    -keyout ca.key -out ca.crt 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=kube-apiserver" -keyout apiserver.key -out apiserver.csr 2>/dev/null
  printf 'subjectAltName=%s\n' "IP:127.0.0.1,IP:$NODE_IP,IP:$KUBERNETES_SVC_IP,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local" >san.ext
  openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 30 \
    -extfile san.ext -out apiserver.crt 2>/dev/null
  openssl genrsa -out sa.key 2048 2>/dev/null
  openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
)
token=$(openssl rand -hex 24)
echo "$token,taskq-admin,taskq-admin,system:masters" >"$pki/tokens.csv"
cat >"$KUBECONFIG_FILE" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: taskq
  cluster:
    server: https://127.0.0.1:$API_PORT
    certificate-authority-data: $(base64 -w0 "$pki/ca.crt")
users:
- name: taskq-admin
  user:
    token: $token
contexts:
- name: taskq
  context: {cluster: taskq, user: taskq-admin}
current-context: taskq
EOF
chmod 600 "$KUBECONFIG_FILE"

# --- network namespace -------------------------------------------------------------------------
ip netns add "$NS"
ip -n "$NS" link set lo up
# A bridge without ports is the node's interface: it carries the node address and the default
# route that the kubelet and kube-proxy look for, and nothing leaves through it.
ip -n "$NS" link add "$NODE_IF" type bridge
ip -n "$NS" addr add "$NODE_IP/24" dev "$NODE_IF"
ip -n "$NS" link set "$NODE_IF" up
ip -n "$NS" route add default dev "$NODE_IF"
# Both are per-namespace: Service traffic between pods on the cni0 bridge goes through iptables.
in_ns sysctl -qw net.ipv4.ip_forward=1
# Without br_netfilter, replies between two pods on cni0 skip iptables and never lose their
# Service DNAT; kube-proxy then masquerades all Service traffic so replies route back through it.
masquerade_all=false
in_ns sysctl -qw net.bridge.bridge-nf-call-iptables=1 2>/dev/null || masquerade_all=true

# Starts a component in the namespace (host's mount namespace, so the kubelet's mounts are the ones
# containerd sees), detached from the caller's session, and records its PID.
start() {
  local name=$1; shift
  setsid nsenter --net="$NS_PATH" -- "$@" </dev/null >"$LOGS/$name.log" 2>&1 &
  echo $! >"$PIDS/$name"
}

# wait_until NAME DEADLINE COMMAND...: polls COMMAND; fails if NAME's process died or time ran out.
wait_until() {
  local name=$1 deadline=$2; shift 2
  local end=$(($(date +%s) + deadline))
  until "$@" >/dev/null 2>&1; do
    if ! alive "$(pid_of "$name")"; then
      die "$name exited: $(grep -v '^\s*$' "$LOGS/$name.log" | tail -1)"
    fi
    [ "$(date +%s)" -lt "$end" ] || die "$name not ready after ${deadline}s: $(tail -1 "$LOGS/$name.log")"
    sleep 0.5
  done
}

# --- containerd --------------------------------------------------------------------------------
mkdir -p "$RUN/containerd" "$RUN/cni/net.d" "$RUN/cni/ipam"
cat >"$RUN/containerd/config.toml" <<EOF
version = 2
root = "$RUN/containerd/root"
state = "$RUN/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]
[grpc]
  address = "$CONTAINERD_SOCK"
[ttrpc]
  address = "$RUN/containerd/containerd-ttrpc.sock"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "$RUN/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  # The sandbox lacks CAP_SYS_RESOURCE: runc cannot lower oom_score_adj below the current value.
  restrict_oom_score_adj = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$RUN/cni/net.d"
EOF
cat >"$RUN/cni/net.d/10-taskq.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "taskq",
  "plugins": [
    {
      "type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": true, "hairpinMode": true,
      "ipam": {"type": "host-local", "dataDir": "$RUN/cni/ipam",
               "ranges": [[{"subnet": "$POD_CIDR"}]], "routes": [{"dst": "0.0.0.0/0"}]}
    },
    {"type": "portmap", "capabilities": {"portMappings": true}},
    {"type": "loopback"}
  ]
}
EOF
start containerd containerd --config "$RUN/containerd/config.toml"
wait_until containerd 30 ctr_k8s version

# The pause and CoreDNS images are made from static binaries, plus whatever `make cluster-images`
# left in the image cache from an earlier run.
mkdir -p "$IMAGES"
"$here/images.sh" system
# The large app images unpack while the control plane and CoreDNS start; up.sh waits for them last.
import_apps() {
  local tar
  for tar in "$IMAGES"/taskq-*.tar; do
    [ -e "$tar" ] || continue
    ctr_k8s images import "$tar" >/dev/null || { echo "importing $tar failed"; return 1; }
  done
}
import_apps >"$LOGS/import.log" 2>&1 &
import_pid=$!

# --- etcd and the control plane ----------------------------------------------------------------
start etcd "$BIN/etcd" --name taskq --data-dir "$RUN/etcd" \
  --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
  --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
  --initial-cluster taskq=http://127.0.0.1:2380 --unsafe-no-fsync --log-level warn
wait_until etcd 30 in_ns curl -fs --max-time 2 http://127.0.0.1:2379/health

start kube-apiserver "$BIN/kube-apiserver" \
  --etcd-servers=http://127.0.0.1:2379 \
  --bind-address=0.0.0.0 --secure-port="$API_PORT" --advertise-address="$NODE_IP" \
  --tls-cert-file="$pki/apiserver.crt" --tls-private-key-file="$pki/apiserver.key" \
  --client-ca-file="$pki/ca.crt" --token-auth-file="$pki/tokens.csv" \
  --authorization-mode=AlwaysAllow --allow-privileged=true \
  --service-account-issuer=https://kubernetes.default.svc.cluster.local \
  --service-account-key-file="$pki/sa.pub" --service-account-signing-key-file="$pki/sa.key" \
  --service-cluster-ip-range="$SERVICE_CIDR" \
  --kubelet-preferred-address-types=Hostname \
  --cert-dir="$RUN/apiserver" --profiling=false --v=1

# The host's end of the API forward: a socket file joins the namespace's loopback to the host's.
start api-forward-ns socat "UNIX-LISTEN:$RUN/apiserver.sock,fork,unlink-early" "TCP:127.0.0.1:$API_PORT"
setsid socat "TCP-LISTEN:$API_PORT,bind=127.0.0.1,fork,reuseaddr" "UNIX-CONNECT:$RUN/apiserver.sock" \
  </dev/null >"$LOGS/api-forward-host.log" 2>&1 &
echo $! >"$PIDS/api-forward-host"
wait_until kube-apiserver "$API_DEADLINE" api_ok

start kube-controller-manager "$BIN/kube-controller-manager" \
  --kubeconfig="$KUBECONFIG_FILE" --leader-elect=false \
  --service-account-private-key-file="$pki/sa.key" --root-ca-file="$pki/ca.crt" \
  --use-service-account-credentials=false --bind-address=127.0.0.1 --v=1
start kube-scheduler "$BIN/kube-scheduler" \
  --kubeconfig="$KUBECONFIG_FILE" --leader-elect=false --bind-address=127.0.0.1 --v=1

# --- node --------------------------------------------------------------------------------------
echo "nameserver 127.0.0.1" >"$RUN/resolv.conf"
cat >"$RUN/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# The host has cgroup v1 only; 1.37 still runs on it when told to.
failCgroupV1: false
cgroupDriver: cgroupfs
containerRuntimeEndpoint: unix://$CONTAINERD_SOCK
address: 127.0.0.1
readOnlyPort: 0
podLogsDir: $RUN/pod-logs
failSwapOn: false
authentication:
  anonymous: {enabled: true}
  webhook: {enabled: false}
authorization: {mode: AlwaysAllow}
clusterDNS: [$DNS_SVC_IP]
clusterDomain: cluster.local
resolvConf: $RUN/resolv.conf
# A test node on a shared disk: no evictions for disk, and imported images are never collected.
evictionHard: {memory.available: 100Mi, nodefs.available: 1%, imagefs.available: 1%, nodefs.inodesFree: 1%}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
maxPods: 110
EOF
start kubelet "$BIN/kubelet" --config="$RUN/kubelet.yaml" --kubeconfig="$KUBECONFIG_FILE" \
  --root-dir="$RUN/kubelet" --hostname-override=localhost --node-ip="$NODE_IP" --v=1

cat >"$RUN/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: $KUBECONFIG_FILE}
mode: iptables
hostnameOverride: localhost
clusterCIDR: $POD_CIDR
bindAddress: 127.0.0.1
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
# Zeros leave the conntrack sysctls alone: they are the host's, not the namespace's.
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
iptables: {masqueradeAll: $masquerade_all}
EOF
start kube-proxy "$BIN/kube-proxy" --config="$RUN/kube-proxy.yaml" --v=1

node_ready() {
  [ "$(kubectl_c get node localhost -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" = True ]
}
wait_until kubelet "$NODE_DEADLINE" node_ready

# --- cluster DNS -------------------------------------------------------------------------------
sed -e "s|@DNS_SVC_IP@|$DNS_SVC_IP|" -e "s|@COREDNS_IMAGE@|$COREDNS_IMAGE|" "$here/manifests/coredns.yaml" |
  kubectl_c apply -f - >/dev/null
dns_ready() {
  [ "$(kubectl_c -n kube-system get deploy coredns -o jsonpath='{.status.readyReplicas}')" = 1 ]
}
end=$(($(date +%s) + DNS_DEADLINE))
until dns_ready; do
  if [ "$(date +%s)" -ge "$end" ]; then
    die "CoreDNS not ready after ${DNS_DEADLINE}s: $(kubectl_c -n kube-system get pods -l k8s-app=kube-dns --no-headers 2>&1 | head -1)"
  fi
  sleep 0.5
done

wait "$import_pid" || die "$(tail -1 "$LOGS/import.log")"

trap - EXIT
say "up in $(($(date +%s) - started))s: node localhost Ready, CoreDNS Ready at $DNS_SVC_IP; API at https://127.0.0.1:$API_PORT"
echo "export KUBECONFIG=$KUBECONFIG_FILE"
