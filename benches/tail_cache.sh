#!/usr/bin/env bash
# Tail-cache benchmarks: cache off (0) and on (1 GiB), alternated, 3 rounds each; machine limits first.
# Run from the repository root after `cargo build --release -p rill-cli`; figures in docs/benchmarks.md.
set -u
B=${RILL:-target/release/rill}
D=${BENCH_DATA:-/tmp/tailcache-bench-data}; mkdir -p "$D"
OUT=${BENCH_OUT:-/tmp/tailcache-results}; mkdir -p "$OUT"
date -u +"start %H:%M:%S" >> "$OUT/log"
bash /work/shared/bench/limits.sh /tmp/limits-tailcache > "$OUT/limits.txt" 2>&1
rm -rf /tmp/limits-tailcache
date -u +"limits done %H:%M:%S" >> "$OUT/log"
for round in 1 2 3; do
  for cache in 0 1073741824; do
    "$B" bench consume --embedded --data-dir "$D" --workload 8-topics-1-partition-1kb --messages 800000 --replays 16 \
      --tail-cache-bytes "$cache" --quiet --json > "$OUT/replay-$cache-$round.json" 2> "$OUT/replay-$cache-$round.err"
    date -u +"replay $cache $round %H:%M:%S" >> "$OUT/log"
  done
done
for round in 1 2 3; do
  for cache in 0 1073741824; do
    "$B" bench produce --embedded --data-dir "$D" --workload 8-topics-1-partition-1kb --messages 8000000 \
      --tail-cache-bytes "$cache" --quiet --json > "$OUT/produce-$cache-$round.json" 2> "$OUT/produce-$cache-$round.err"
    date -u +"produce $cache $round %H:%M:%S" >> "$OUT/log"
  done
done
for cache in 0 1073741824; do
  "$B" bench consume --embedded --data-dir "$D" --workload 8-topics-1-partition-1kb --messages 4000000 \
    --tail-cache-bytes "$cache" --quiet --json > "$OUT/replay4g-$cache.json" 2> "$OUT/replay4g-$cache.err"
  date -u +"replay4g $cache %H:%M:%S" >> "$OUT/log"
done
rm -rf "$D"
date -u +"end %H:%M:%S" >> "$OUT/log"
