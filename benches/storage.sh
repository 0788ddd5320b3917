#!/usr/bin/env bash
# Storage benchmarks beside the machine's own limits, measured in the same session on the same disk.
# Usage: benches/storage.sh            (data under target/bench-data; RILL_BENCH_DIR overrides)
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${RILL_BENCH_DIR:-$PWD/target/bench-data}
mkdir -p "$dir"
limits=../shared/bench/limits.sh
echo "== machine limits ($limits $dir)"
if [ -x "$limits" ]; then "$limits" "$dir"; else echo "limits.sh not found"; fi
echo "== rill storage benchmarks"
RILL_BENCH_DIR="$dir" cargo bench -p rill-benches --bench storage -- "$@"
