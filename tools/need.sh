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
find_missing() {
  missing=()
  for pair in "$@"; do
    cmd=${pair%%:*}; pkg=${pair#*:}
    have "$cmd" || missing+=("$pkg")
  done
}
find_missing "$@"
[ ${#missing[@]} -eq 0 ] && exit 0

say() { echo "error: $*" >&2; exit 1; }
if [ "$(id -u)" = 0 ]; then apt=(apt-get)
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then apt=(sudo -n apt-get)
else say "missing ${missing[*]}: install them (apt-get install ${missing[*]}) or run make as root"
fi
command -v apt-get >/dev/null 2>&1 || say "missing ${missing[*]} and no apt-get here: install them with your package manager"

# make test installs beside itself (the e2e's packages while the suite's are still going in):
# one need.sh at a time, and what the one before installed is not installed again.
lock=${TMPDIR:-/tmp}/taskq-need.lock
exec 9>>"$lock"
flock -w 1800 9 || say "another tools/need.sh held $lock for 30 min: is an apt-get stuck?"
find_missing "$@"
[ ${#missing[@]} -eq 0 ] && exit 0

echo "installing: ${missing[*]}"
opts=(-o DPkg::Lock::Timeout=600 -y -qq)
log=$(mktemp)
trap 'rm -f "$log"' EXIT
# Another apt run (unattended upgrades, an admin) holds a lock for a while: dpkg's lock is waited
# for by DPkg::Lock::Timeout, but `apt-get update` gives up at once on the lists lock, so it is
# tried again for as long.
apt_run() {
  local deadline=$(( $(date +%s) + 600 ))
  while true; do
    DEBIAN_FRONTEND=noninteractive "${apt[@]}" "${opts[@]}" "$@" >"$log" 2>&1 && return 0
    grep -q "Could not get lock" "$log" && [ "$(date +%s)" -lt "$deadline" ] || return 1
    sleep 2
  done
}
# The package lists are empty on a fresh image, and stale lists 404: update once, then install.
if ! apt_run update; then
  say "apt-get update failed ($(grep -m1 -E '^(E|W):' "$log" || tail -n1 "$log")); check the network and /etc/apt/sources.list"
fi
if ! apt_run install "${recommends[@]}" "${missing[@]}"; then
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
