#!/usr/bin/env bash
# The broker benchmarks of docs/benchmarks.md: the machine's limits, then every standard workload through
# `rill bench` against an embedded broker on the disk under test, with JSON results and SVG plots.
# Usage: benches/broker.sh [OUT_DIR]   (default target/bench-results; plots also go to docs/plots)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-target/bench-results}
data=${RILL_BENCH_DIR:-$PWD/target/bench-data}
mkdir -p "$out" "$data" docs/plots
cargo build --release -p rill-cli
rill=target/release/rill
echo "== machine limits"
if [ -x ../shared/bench/limits.sh ]; then ../shared/bench/limits.sh "$data" | tee "$out/limits.txt"; fi
run() {
  local name=$1; shift
  echo "== rill bench $*"
  "$rill" bench "$@" --embedded --data-dir "$data" --quiet --json --plot-dir docs/plots >"$out/$name.json"
  python3 - "$out/$name.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
for p in r["phases"]:
    lat = p.get("latency") or {}
    print(f'{p["phase"]:8} {p["messages"]:>10} msgs {p["messages_per_s"]:>12.0f} msg/s {p["mb_per_s"]:>8.1f} MB/s'
          + (f'  p50 {lat["p50_us"]} p99 {lat["p99_us"]} p99.9 {lat["p999_us"]} max {lat["max_us"]} µs' if lat else ''))
PY
}
run produce-1kb      produce --workload 8-topics-1-partition-1kb --durability never --acks leader
run produce-100b     produce --workload 8-topics-1-partition-100b --durability never --acks leader
run produce-never-2m produce --workload 8-topics-1-partition-1kb --durability never --acks leader --messages 2000000
run produce-durable  produce --workload 8-topics-1-partition-1kb --durability always --acks durable --messages 2000000
run consume-1kb      consume --workload 8-topics-1-partition-1kb --messages 4000000
run omb-16p-1kb      consume --workload 1-topic-16-partitions-1kb
run omb-16p-100b     produce --workload 1-topic-16-partitions-100b
run e2e-10k          e2e --workload e2e-10k-msgs-1kb --durability never
