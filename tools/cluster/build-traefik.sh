#!/usr/bin/env bash
# Builds Traefik (the e2e cluster's ingress controller) from the Go module proxy into $1/traefik.
# `go install github.com/traefik/traefik/v3/cmd/traefik@...` is refused (its go.mod has replace
# directives), so the build runs inside a writable copy of the module's source from the module
# cache. v3.7.x does not build here (the proxy refuses some of its dependencies); v3.6.12 does,
# in about 11 minutes on 2 cores with a cold Go build cache.
set -euo pipefail
out=${1:?usage: build-traefik.sh OUT_DIR}
version=${TRAEFIK_VERSION:?set TRAEFIK_VERSION, e.g. v3.6.12}
src=$(go mod download -json "github.com/traefik/traefik/v3@$version" | sed -n 's/^\s*"Dir": "\(.*\)",$/\1/p')
[ -n "$src" ] && [ -d "$src/cmd/traefik" ] || { echo "build-traefik: Traefik $version's source is not in the module cache" >&2; exit 1; }
mkdir -p "$out"
tmp=$(mktemp -d "$out/.traefik.XXXXXX")
trap 'chmod -R u+w "$tmp" 2>/dev/null; rm -rf "$tmp"' EXIT
cp -r "$src" "$tmp/src"
chmod -R u+w "$tmp/src"
# Traefik's own Makefile stamps these; `traefik version` prints them.
v=github.com/traefik/traefik/v3/pkg/version
flags="-s -w -X $v.Version=$version -X $v.Codename=taskq-e2e -X $v.BuildDate=1970-01-01T00:00:00Z"
(cd "$tmp/src" && CGO_ENABLED=0 go build -trimpath -ldflags "$flags" -o "$tmp/traefik" ./cmd/traefik)
mv "$tmp/traefik" "$out/traefik"
echo "built Traefik $version into $out"
