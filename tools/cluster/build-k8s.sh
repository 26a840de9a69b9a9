#!/usr/bin/env bash
# Builds the hyperkube-style binary of tools/cluster/k8s (Kubernetes, etcd, kubectl) into
# $1/k8s and links each component name to it. The -X flags give the servers their real version:
# without them they report v0.0.0 and a chart's kubeVersion constraint fails.
set -euo pipefail
out=${1:?usage: build-k8s.sh OUT_DIR}
here=$(cd "$(dirname "$0")/k8s" && pwd)
version=$(cd "$here" && go list -m -f "{{.Version}}" k8s.io/kubernetes)
[ -n "$version" ] || { echo "build-k8s: no k8s.io/kubernetes version in $here/go.mod" >&2; exit 1; }
major=${version#v}; major=${major%%.*}
minor=${version#v$major.}; minor=${minor%%.*}
flags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  flags+=" -X $pkg.gitVersion=$version -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
  flags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done
mkdir -p "$out"
(cd "$here" && CGO_ENABLED=0 go build -trimpath -ldflags "$flags" -o "$out/k8s.tmp" .)
mv "$out/k8s.tmp" "$out/k8s"
for c in etcd kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl; do
  ln -sf k8s "$out/$c"
done
echo "built Kubernetes $version into $out"
