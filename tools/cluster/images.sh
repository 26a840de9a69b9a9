#!/usr/bin/env bash
# Makes the cluster's images as docker-archive tars in $CLUSTER_DIR/images and imports them into
# the running cluster's containerd (up.sh imports the same tars on every start).
#   images.sh system   the pause sandbox and CoreDNS, from static binaries (no Docker)
#   images.sh app      taskq-api:e2e and taskq-worker:e2e (already built by `make images
#                      IMAGE_TAG=e2e`), taskq-kafka:e2e and taskq-redis:e2e (built here with Docker)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=common.sh
source "$here/common.sh"
mkdir -p "$IMAGES"

import() {
  [ -S "$CONTAINERD_SOCK" ] || return 0
  ctr_k8s images import "$1" >/dev/null || die "importing $1 into the cluster failed"
}

system_images() {
  if [ ! -s "$IMAGES/pause.tar" ]; then
    command -v gcc >/dev/null || die "gcc not found (it builds the pause program): apt-get install gcc libc6-dev"
    local tmp
    tmp=$(mktemp -d)
    gcc -static -O2 -o "$tmp/pause" "$here/images/pause/pause.c" || die "compiling pause.c failed (apt-get install libc6-dev)"
    python3 "$here/mkimage.py" --tag "$PAUSE_IMAGE" --out "$IMAGES/pause.tar" \
      --entrypoint /pause --user 65535 --add "$tmp/pause:/pause"
    rm -rf "$tmp"
  fi
  if [ ! -s "$IMAGES/coredns.tar" ] || [ "$BIN/coredns" -nt "$IMAGES/coredns.tar" ]; then
    python3 "$here/mkimage.py" --tag "$COREDNS_IMAGE" --out "$IMAGES/coredns.tar" \
      --entrypoint /coredns --user 0 --add "$BIN/coredns:/coredns"
  fi
}

app_images() {
  local jars=${KAFKA_JARS:?KAFKA_JARS must name the folder of Kafka jars (make kafka fetches them)}
  local base=${BASE_IMAGE:-taskq-base:bookworm}
  [ -d "$jars" ] || die "no Kafka jars in $jars: run make kafka"
  docker info >/dev/null 2>&1 || die "no Docker engine: run images/dockerd.sh (make images starts it)"
  for name in taskq-api:e2e taskq-worker:e2e; do
    docker image inspect "$name" >/dev/null 2>&1 || die "$name not built: run make images IMAGE_TAG=e2e"
  done
  local ctx
  ctx=$(mktemp -d "$CLUSTER_DIR/kafka-context.XXXXXX")
  trap 'rm -rf "$ctx"' RETURN
  cp -rl "$jars" "$ctx/jars" 2>/dev/null || cp -r "$jars" "$ctx/jars"
  cp "$here/images/kafka/"* "$ctx/"
  DOCKER_BUILDKIT=0 docker build -q --network host --build-arg BASE_IMAGE="$base" -t taskq-kafka:e2e "$ctx" >/dev/null
  DOCKER_BUILDKIT=0 docker build -q --network host --build-arg BASE_IMAGE="$base" -t taskq-redis:e2e "$here/images/redis" >/dev/null
  for name in taskq-api taskq-worker taskq-kafka taskq-redis; do
    docker save "$name:e2e" -o "$IMAGES/$name.tar.tmp"
    mv "$IMAGES/$name.tar.tmp" "$IMAGES/$name.tar"
  done
}

case ${1:-} in
  system) system_images; for t in pause coredns; do import "$IMAGES/$t.tar"; done ;;
  app)
    app_images
    if [ ! -S "$CONTAINERD_SOCK" ]; then
      say "no cluster running: the images are cached in $IMAGES and the next make cluster imports them"
      exit 0
    fi
    for t in taskq-api taskq-worker taskq-kafka taskq-redis; do import "$IMAGES/$t.tar"; done
    say "imported taskq-api:e2e taskq-worker:e2e taskq-kafka:e2e taskq-redis:e2e into the cluster"
    ;;
  *) die "usage: images.sh system|app" ;;
esac
