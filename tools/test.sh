#!/usr/bin/env bash
# `make test`: setup, lint, the suite (the e2e preparation builds beside it), then the Kubernetes
# e2e; prints each phase's time and share, and leaves no process it started behind, whether the
# run passes, fails or is interrupted (Ctrl-C).
#
# Called by the Makefile with MAKE, PY, CACHE, PYTEST_PARALLEL, COVERAGE, PYTEST_ARGS, E2E exported.
# E2E=0 skips the e2e phase on purpose (it says so); otherwise a machine that cannot host the
# cluster fails the run, because a skipped e2e would let `make test` pass without proving it.
set -uo pipefail
: "${MAKE:=make}" "${PY:=.venv/bin/python}" "${CACHE:?}" "${E2E:=1}"
mk() { "$MAKE" --no-print-directory "$@"; }
# Whether a PID runs (a zombie, dead but not yet reaped, does not).
alive() { [ -r "/proc/$1/stat" ] && [ "$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -c1)" != Z ]; }
mkdir -p "$CACHE"

phases=() secs=()
run_start=$(date +%s)
phase_start=$run_start
phase() {  # closes the running phase under its name
  local now; now=$(date +%s)
  phases+=("$1"); secs+=($((now - phase_start)))
  phase_start=$now
}
report() {
  local total=$(( $(date +%s) - run_start )) i
  echo
  echo "make test: $((total / 60)) min $((total % 60)) s in all"
  for i in "${!phases[@]}"; do
    printf '  %-34s %5d s  %3d %%\n' "${phases[$i]}" "${secs[$i]}" $(( total ? secs[i] * 100 / total : 0 ))
  done
}

dockerd_pid_file=$CACHE/dockerd/dockerd.pid
dockerd_before=""
if [ -f "$dockerd_pid_file" ] && alive "$(cat "$dockerd_pid_file")"; then
  dockerd_before=$(cat "$dockerd_pid_file")
fi
prep_pid=""
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [ -n "$prep_pid" ] && kill -0 "$prep_pid" 2>/dev/null; then
    kill -- "-$prep_pid" 2>/dev/null; wait "$prep_pid" 2>/dev/null
  fi
  # The image builds start a dockerd (and its containerd) when none runs: stop the one this run
  # started, by its PID, and check nothing of it is left.
  local pid
  pid=$(cat "$dockerd_pid_file" 2>/dev/null || true)
  if [ -n "$pid" ] && [ "$pid" != "$dockerd_before" ] && alive "$pid"; then
    images/dockerd.sh stop || rc=1
  fi
  if [ -n "$pid" ] && [ "$pid" != "$dockerd_before" ] && alive "$pid"; then
    echo "error: dockerd (pid $pid) started by this run is still running" >&2; rc=1
  fi
  report
  exit "$rc"
}
trap cleanup EXIT
trap 'echo "make test: interrupted" >&2; exit 130' INT TERM

mk deps venv kafka tools || exit 1
# The e2e preparation (cluster binaries, images) is the longest step on a new machine: it starts as
# soon as what it needs is there, and runs beside the rest of the setup, the lint and the suite.
prep_log=$CACHE/e2e-prep.log
if [ "$E2E" = 0 ]; then
  echo "e2e: skipped because E2E=0 was given"
else
  setsid "$MAKE" --no-print-directory e2e-prep >"$prep_log" 2>&1 &
  prep_pid=$!
fi
mk chromium prometheus || exit 1
phase "setup (packages, venv, jars, tools)"
mk lint || exit 1
phase "lint (ruff, mypy)"
# shellcheck disable=SC2086 # the option strings are word lists
"$PY" -m pytest --ignore=tests/e2e --ignore=tests/images $PYTEST_PARALLEL $COVERAGE $PYTEST_ARGS
rc=$?
phase "suite (e2e preparation beside it)"
if [ $rc -eq 5 ]; then echo "pytest collected no tests: failing"; exit 1; fi
# A failed suite fails the run at once: the preparation is stopped (cleanup), not waited for.
if [ $rc -ne 0 ]; then exit $rc; fi
if [ -n "$prep_pid" ]; then
  wait "$prep_pid"; prep_rc=$?; prep_pid=""
  sed 's/^/e2e-prep | /' "$prep_log"
  phase "e2e preparation (left after the suite)"
  if [ $prep_rc -ne 0 ]; then echo "error: preparing the e2e cluster failed (log above)"; exit 1; fi
  mk test-e2e E2E_PREPARED=1; rc=$?
  phase "e2e (cluster, scenarios, teardown)"
fi
exit $rc
