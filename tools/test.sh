#!/usr/bin/env bash
# `make test`: setup, lint and the suite, with the Kubernetes e2e (its preparation, then its
# scenarios) running beside them; prints each phase's time and share, and leaves no process it
# started behind, whether the run passes, fails or is interrupted (Ctrl-C).
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
e2e_pid=""
e2e_started=""
netns=/run/netns/taskq-k8s
netns_before=""; [ -e "$netns" ] && netns_before=1
# Stops the e2e job (preparation, then the scenarios) if it still runs: SIGINT, as a Ctrl-C would,
# so pytest tears its cluster down; then waits until nothing of its process group is left.
stop_e2e() {
  [ -n "$e2e_pid" ] || return 0
  # The job starts with SIGINT ignored until its shell runs (see below): a SIGINT sent before then is
  # lost and the job runs on. Wait (at most 5 s) until it says it runs.
  local i
  for i in $(seq 50); do
    { [ -e "$e2e_started" ] || ! kill -0 -- "-$e2e_pid" 2>/dev/null; } && break
    sleep 0.1
  done
  if kill -0 -- "-$e2e_pid" 2>/dev/null; then
    echo "make test: stopping the e2e (its cluster is torn down)" >&2
    kill -INT -- "-$e2e_pid" 2>/dev/null
    # The dockerd the preparation started runs in the background of its group, where SIGINT is
    # ignored: stopped here, or the wait below lasted its whole 240 s whenever the suite failed
    # while images were being built.
    local pid
    pid=$(cat "$CACHE/dockerd/dockerd.pid" 2>/dev/null || true)
    if [ -n "$pid" ] && [ "$pid" != "$dockerd_before" ]; then images/dockerd.sh stop >&2 || true; fi
    for i in $(seq 2400); do kill -0 -- "-$e2e_pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 -- "-$e2e_pid" 2>/dev/null; then
      echo "make test: the e2e did not stop within 240 s of SIGINT: killing it" >&2
      kill -KILL -- "-$e2e_pid" 2>/dev/null
    fi
  fi
  wait "$e2e_pid" 2>/dev/null
  e2e_pid=""
  # A cluster this run started and the e2e could not take down itself.
  if [ -z "$netns_before" ] && [ -e "$netns" ]; then mk cluster-down >&2 || true; fi
}
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  stop_e2e
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
  if [ -z "$netns_before" ] && [ -e "$netns" ]; then
    echo "error: the e2e cluster started by this run is still running (make cluster-down)" >&2; rc=1
  fi
  report
  exit "$rc"
}
trap cleanup EXIT
trap 'echo "make test: interrupted" >&2; exit 130' INT TERM

mk deps venv kafka tools || exit 1
# The e2e (cluster binaries and images, then the cluster and its scenarios) is mostly waiting on
# pods and sleeping tasks, and the suite mostly on the CPU: it starts as soon as what it needs is
# there and runs beside the rest of the setup, the lint and the suite, in a process group of its
# own; the dockerd the image builds needed is stopped once they are done. Its log is shown after
# the suite, then followed live.
e2e_log=$CACHE/e2e.log
if [ "$E2E" = 0 ]; then
  echo "e2e: skipped because E2E=0 was given"
else
  e2e_started=$CACHE/e2e.started
  rm -f "$e2e_started"
  export MAKE DOCKERD_BEFORE=$dockerd_before E2E_STARTED=$e2e_started
  # A background job of a script starts with SIGINT ignored, and Python then never turns it into
  # KeyboardInterrupt: env gives it back its default, so stop_e2e's SIGINT lets pytest tear down.
  # shellcheck disable=SC2016 # expanded by the job's own shell
  setsid env --default-signal=INT bash -c '
    : > "$E2E_STARTED"  # from here a SIGINT reaches the job (stop_e2e waits for this)
    "$MAKE" --no-print-directory e2e-prep || { echo "error: preparing the e2e cluster failed (above)"; exit 1; }
    pid=$(cat "$CACHE/dockerd/dockerd.pid" 2>/dev/null || true)
    if [ -n "$pid" ] && [ "$pid" != "$DOCKERD_BEFORE" ]; then images/dockerd.sh stop; fi
    echo "e2e preparation done after $(( $(date +%s) - $0 )) s; the scenarios start"
    exec "$MAKE" --no-print-directory test-e2e E2E_PREPARED=1' "$run_start" >"$e2e_log" 2>&1 </dev/null &
  e2e_pid=$!
fi
mk chromium prometheus || exit 1
phase "setup (packages, venv, jars, tools)"
mk lint || exit 1
phase "lint (ruff, mypy)"
# shellcheck disable=SC2086 # the option strings are word lists
"$PY" -m pytest --ignore=tests/e2e --ignore=tests/images $PYTEST_PARALLEL $COVERAGE $PYTEST_ARGS
rc=$?
phase "suite (the e2e beside it)"
if [ $rc -eq 5 ]; then echo "pytest collected no tests: failing"; exit 1; fi
# A failed suite fails the run at once: the e2e is stopped, not waited for, and what it logged
# (all of it, when it had already finished) is shown.
if [ $rc -ne 0 ]; then
  if [ -n "$e2e_pid" ]; then
    stop_e2e
    echo
    echo "e2e (beside the suite; stopped or ended when the suite failed):"
    sed 's/^/e2e | /' "$e2e_log"
  fi
  exit $rc
fi
if [ -n "$e2e_pid" ]; then
  echo
  echo "e2e (beside the suite until now; its log so far, then live):"
  tail -n +1 -f --pid="$e2e_pid" "$e2e_log" | sed -u 's/^/e2e | /'
  wait "$e2e_pid"; rc=$?; e2e_pid=""
  phase "e2e (left after the suite)"
fi
exit $rc
