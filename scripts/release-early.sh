#!/usr/bin/env bash
# Starts the release build that `make package` needs in the background, at
# idle priority (SCHED_IDLE, and nice 19 where that is refused), so that it
# takes only the CPU the tests leave idle and slows none of them: `make
# test`'s single-threaded steps (the fuzzers, schemathesis, the WebDriver
# tests' waits) leave a core idle for minutes. `make package` then finds
# the build done, or waits for it on cargo's lock and finishes it at full
# speed. Cargo locks each profile's directory on its own, so the tests'
# debug builds are not held up. A build at normal priority beside those
# steps gained nothing: they slowed by as much as it gained.
#
#   scripts/release-early.sh OWNER_PID LOG
#
# The build ends with the make (OWNER_PID) that started it: a watcher stops
# the build's process group if that make exits first (a failed step).
set -euo pipefail
cd "$(dirname "$0")/.."
owner=$1
log=$2
idle=(chrt --idle 0)
"${idle[@]}" true 2>/dev/null || idle=()
# Its own process group (job control), so that the watcher can stop all of
# it, but not its own session: with autogroups (Linux's
# sched_autogroup_enabled), a new session is a new group, which the
# scheduler gives an equal share of the CPU whatever its priority. Started
# with setsid, the build took half the CPU from the tests' debug build.
set -m
nice -n 19 "${idle[@]}" scripts/package.sh --build > "$log" 2>&1 < /dev/null &
build=$!
set +m
echo "release-early: the release build runs in the background at idle priority (pid $build), log in $log"
(
    while kill -0 "$owner" 2>/dev/null && kill -0 "$build" 2>/dev/null; do sleep 5; done
    # Job control made the build the leader of its own process group.
    kill -- -"$build" 2>/dev/null || true
) > /dev/null 2>&1 < /dev/null &
