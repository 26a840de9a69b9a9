#!/usr/bin/env bash
# Builds KEDA's operator and metrics API server from the pinned scratch module tools/cluster/keda
# into $1 (keda-operator, keda-adapter) and writes all of KEDA's CRDs from that module's source
# to $1/../keda/crds.yaml, so the cluster installs the CRDs of the binaries it runs (the
# operator also watches the eventing.keda.sh ones, and exits if they are missing).
set -euo pipefail
out=${1:?usage: build-keda.sh OUT_DIR}
here=$(cd "$(dirname "$0")/keda" && pwd)
cd "$here"
version=$(go list -m -f "{{.Version}}" github.com/kedacore/keda/v2)
src=$(go mod download -json github.com/kedacore/keda/v2 | sed -n 's/^\s*"Dir": "\(.*\)",$/\1/p')
[ -n "$version" ] && [ -d "$src/config/crd/bases" ] || { echo "build-keda: KEDA's module source is not in the module cache" >&2; exit 1; }
# KEDA's own Makefile stamps these; the operator logs them at start.
flags="-s -w -X github.com/kedacore/keda/v2/version.Version=${version#v} -X github.com/kedacore/keda/v2/version.GitCommit=$version"
mkdir -p "$out" "$out/../keda"
for cmd in operator adapter; do
  CGO_ENABLED=0 go build -trimpath -ldflags "$flags" -o "$out/keda-$cmd.tmp" "github.com/kedacore/keda/v2/cmd/$cmd"
  mv "$out/keda-$cmd.tmp" "$out/keda-$cmd"
done
for crd in "$src"/config/crd/bases/*.yaml; do
  echo "---"; cat "$crd"
done >"$out/../keda/crds.yaml.tmp"
mv "$out/../keda/crds.yaml.tmp" "$out/../keda/crds.yaml"
echo "built KEDA $version (keda-operator, keda-adapter) into $out"
