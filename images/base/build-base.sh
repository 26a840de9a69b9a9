#!/usr/bin/env bash
# Builds the local base image (Debian bookworm minbase + python3 + venv + tini) with debootstrap and
# `docker import`, for machines that cannot pull from an image registry. Cached as a tarball.
#   images/base/build-base.sh [image-name]
set -euo pipefail
name=${1:-taskq-base:bookworm}
cache=${CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/taskq}/base
tarball=$cache/bookworm-python3.tar
mirror=${DEBIAN_MIRROR:-$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -1)}
[ -n "$mirror" ] || { echo "error: no Debian mirror in /etc/apt/sources.list.d/debian.sources: set DEBIAN_MIRROR" >&2; exit 1; }
if docker image inspect "$name" >/dev/null 2>&1; then echo "$name exists"; exit 0; fi
mkdir -p "$cache"
if [ ! -s "$tarball" ]; then
  root=$(mktemp -d "$cache/rootfs.XXXXXX")
  trap 'rm -rf "$root"' EXIT
  echo "debootstrap bookworm into $root (from $mirror)"
  debootstrap --variant=minbase --include=python3,python3-venv,tini,ca-certificates bookworm "$root" "$mirror" >/dev/null
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
  tar -C "$root" -cf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"
fi
docker import --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' "$tarball" "$name" >/dev/null
echo "built $name"
