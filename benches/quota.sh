#!/usr/bin/env bash
# What metering client quotas costs (docs/benchmarks.md, "Client quotas: what metering costs"): the same release
# build, a broker process on a fresh data dir each run, with no quota against one with a default-user produce
# quota far above what it can reach (1 TB/s: every request metered, none throttled), then `rill bench produce`
# of 1 KB records from 8 producers. ROUNDS rounds, the order swapped each round. The machine's limits
# (../shared/bench/limits.sh) are printed first.
# Usage: benches/quota.sh [ROUNDS=3] [MESSAGES=5000000]
#        data under a temporary dir in RILL_BENCH_DIR (default /tmp), removed at the end; NO_BUILD=1 skips the
#        build.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
messages=${2:-5000000}
work=$(mktemp -d "${RILL_BENCH_DIR:-/tmp}/quota-bench.XXXXXX")
broker_pid=
cleanup() {
  if [ -n "$broker_pid" ]; then kill "$broker_pid" 2>/dev/null || true; wait "$broker_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
limits=${LIMITS_SCRIPT:-../shared/bench/limits.sh}
echo "== machine limits ($limits)"
if [ -f "$limits" ]; then bash "$limits" "$work/limits"; rm -rf "$work/limits"; else echo "limits.sh not found"; fi
if [ -z "${NO_BUILD:-}" ]; then cargo build --release --quiet -p rill-cli; fi
rill=target/release/rill
for round in $(seq "$rounds"); do
  if [ $((round % 2)) -eq 1 ]; then order="none quota"; else order="quota none"; fi
  for mode in $order; do
    rm -rf "$work/data"
    "$rill" broker --data-dir "$work/data" --listen 127.0.0.1:0 --admin-listen off > "$work/listening" 2> "$work/broker.log" &
    broker_pid=$!
    for _ in $(seq 100); do grep -q "listening on" "$work/listening" && break; sleep 0.1; done
    addr=$(sed -n 's/^rill broker listening on //p' "$work/listening")
    if [ "$mode" = quota ]; then
      "$rill" quota set --broker "$addr" --default-user --producer-byte-rate 1000000000000 > /dev/null
    fi
    result=$("$rill" bench produce --broker "$addr" --workload 8-topics-1-partition-1kb --messages "$messages" 2>&1 \
      | grep -E "^produce|latency|cpu" | tr -s ' ' | tr '\n' ' ')
    echo "round $round, $mode: $result"
    kill "$broker_pid"; wait "$broker_pid" 2>/dev/null || true
    broker_pid=
  done
done
