#!/usr/bin/env bash
# Runs every fuzz target for SECONDS (default 600) on the stable toolchain, one after another, and prints
# each target's executions and crashes. Needs cargo-fuzz: cargo install cargo-fuzz.
# Usage: fuzz/run.sh [SECONDS]
set -uo pipefail
cd "$(dirname "$0")"
seconds=${1:-600}
for target in batch_decode request_decode segment_recovery index_load; do
  work=$(mktemp -d)
  touch "$work.start"   # crash artifacts newer than this are this run's
  # Storage targets create a directory per input: keep them in memory.
  TMPDIR=/dev/shm cargo fuzz run -s none "$target" "$work" "corpus/$target" -- -max_total_time="$seconds" \
    >"$work.log" 2>&1
  status=$?
  runs=$(grep -oE 'Done [0-9]+ runs' "$work.log" | grep -oE '[0-9]+')
  crashes=$(find artifacts/"$target" -name 'crash-*' -newer "$work.start" 2>/dev/null | wc -l)
  echo "$target: exit=$status runs=${runs:-?} seconds=$seconds crash_artifacts=$crashes log=$work.log"
done
