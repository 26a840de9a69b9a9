#!/usr/bin/env bash
# Installs the Debian packages behind missing commands, or says in one line what to do instead.
#   tools/need.sh [--no-recommends] COMMAND:PACKAGE [COMMAND:PACKAGE ...]
# COMMAND may be a /path the package installs.
# A fresh machine lacks them; a machine without root or apt gets an actionable line and exit 1,
# never a half-finished Make run.
set -uo pipefail
recommends=()
if [ "${1:-}" = --no-recommends ]; then recommends=(--no-install-recommends); shift; fi
have() { case $1 in /*) [ -e "$1" ] ;; *) command -v "$1" >/dev/null 2>&1 ;; esac; }
missing=()
for pair in "$@"; do
  cmd=${pair%%:*}; pkg=${pair#*:}
  have "$cmd" || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0

say() { echo "error: $*" >&2; exit 1; }
if [ "$(id -u)" = 0 ]; then apt=(apt-get)
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then apt=(sudo -n apt-get)
else say "missing ${missing[*]}: install them (apt-get install ${missing[*]}) or run make as root"
fi
command -v apt-get >/dev/null 2>&1 || say "missing ${missing[*]} and no apt-get here: install them with your package manager"

echo "installing: ${missing[*]}"
# Another apt run (unattended upgrades, a parallel setup) holds the lock for a while: wait for it.
opts=(-o DPkg::Lock::Timeout=600 -y -qq)
log=$(mktemp)
trap 'rm -f "$log"' EXIT
# The package lists are empty on a fresh image, and stale lists 404: update once, then install.
if ! DEBIAN_FRONTEND=noninteractive "${apt[@]}" "${opts[@]}" update >"$log" 2>&1; then
  say "apt-get update failed ($(grep -m1 -E '^(E|W):' "$log" || tail -n1 "$log")); check the network and /etc/apt/sources.list"
fi
if ! DEBIAN_FRONTEND=noninteractive "${apt[@]}" "${opts[@]}" install "${recommends[@]}" "${missing[@]}" >"$log" 2>&1; then
  reason=$(grep -m1 -E '^E:' "$log" || tail -n1 "$log")
  case $reason in
    *"No space left"*) say "no disk space to install ${missing[*]}: free some and run make again" ;;
    *) say "could not install ${missing[*]}: $reason" ;;
  esac
fi
for pair in "$@"; do
  cmd=${pair%%:*}
  have "$cmd" || say "installed packages but '$cmd' is still not there"
done
