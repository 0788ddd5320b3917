#!/usr/bin/env bash
# Many idle partitions on the real `rill broker` (release build), beside the machine's own limits measured in the
# same session on the same disk: create time, start time, SIGTERM shutdown time, RSS and descriptors per idle
# partition (benches/examples/many_partitions.rs).
# Usage: benches/many_partitions.sh [TOPICS=10000] [direct|buffered] [OPEN_FILE_LIMIT=0 (keep)]
#        (data under target/bench-data; RILL_BENCH_DIR overrides)
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${RILL_BENCH_DIR:-$PWD/target/bench-data}
mkdir -p "$dir"
limits=../shared/bench/limits.sh
echo "== machine limits ($limits $dir)"
if [ -x "$limits" ]; then "$limits" "$dir"; else echo "limits.sh not found"; fi
echo "open_files_soft=$(ulimit -Sn) open_files_hard=$(ulimit -Hn)"
cargo build --release -p rill-cli --bin rill
cargo build --release -p rill-benches --example many_partitions
echo "== many idle partitions"
target/release/examples/many_partitions target/release/rill "${1:-10000}" "${2:-direct}" "${3:-0}" "$dir"
