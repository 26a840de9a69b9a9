#!/usr/bin/env bash
# Builds Prometheus (cmd/prometheus) from the Go module proxy into $1/prometheus with file and
# Kubernetes service discovery only: Debian's prometheus 2.42 has no kubernetes_sd_configs, and
# the other discoveries (cloud SDKs) would triple the build. Prometheus publishes 3.x.y as the Go
# module version v0.3xx.y (v0.316.0 is 3.16.0); its go.mod has no replace directive, so
# `go install` takes it as it is. No web UI assets are embedded: the tests use the HTTP API.
set -euo pipefail
out=${1:?usage: build-prometheus.sh OUT_DIR}
module=${PROMETHEUS_MODULE_VERSION:?set PROMETHEUS_MODULE_VERSION, e.g. v0.316.0}
rest=${module#v0.3}
version=3.$((10#${rest%%.*})).${module##*.}
# Prometheus' own Makefile stamps these; `prometheus --version` prints them.
v=github.com/prometheus/common/version
flags="-s -w -X $v.Version=$version -X $v.Revision=$module -X $v.Branch=HEAD -X $v.BuildUser=taskq -X $v.BuildDate=19700101-00:00:00"
mkdir -p "$out"
tmp=$(mktemp -d "$out/.prometheus.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
GOBIN=$tmp CGO_ENABLED=0 go install -trimpath -tags remove_all_sd,enable_kubernetes_sd -ldflags "$flags" \
  "github.com/prometheus/prometheus/cmd/prometheus@$module"
mv "$tmp/prometheus" "$out/prometheus"
echo "built Prometheus $version ($module) into $out"
