#!/usr/bin/env bash
# Two `rill` builds against each other on the same workloads (docs/benchmarks.md, "Transactions: what the
# non-transactional path pays"): each round starts a broker of build A on a fresh data dir and runs `rill bench
# produce` with that build, then the same with build B, the order swapped each round. The machine's limits
# (../shared/bench/limits.sh) are printed first.
# Usage: benches/ab.sh A_RILL B_RILL [ROUNDS=3]
#        WORKLOADS (default "8-topics-1-partition-1kb:5000000 8-topics-1-partition-100b:8000000", each
#        WORKLOAD:MESSAGES); data under a temporary dir in RILL_BENCH_DIR (default /tmp), removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
a=${1:?usage: benches/ab.sh A_RILL B_RILL [ROUNDS]}
b=${2:?usage: benches/ab.sh A_RILL B_RILL [ROUNDS]}
rounds=${3:-3}
workloads=${WORKLOADS:-"8-topics-1-partition-1kb:5000000 8-topics-1-partition-100b:8000000"}
work=$(mktemp -d "${RILL_BENCH_DIR:-/tmp}/ab-bench.XXXXXX")
broker_pid=
cleanup() {
  if [ -n "$broker_pid" ]; then kill "$broker_pid" 2>/dev/null || true; wait "$broker_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
limits=${LIMITS_SCRIPT:-../shared/bench/limits.sh}
echo "== machine limits ($limits)"
if [ -f "$limits" ]; then bash "$limits" "$work/limits"; rm -rf "$work/limits"; else echo "limits.sh not found"; fi
for round in $(seq "$rounds"); do
  if [ $((round % 2)) -eq 1 ]; then order="A B"; else order="B A"; fi
  for spec in $workloads; do
    workload=${spec%%:*}
    messages=${spec##*:}
    for side in $order; do
      if [ "$side" = A ]; then rill=$a; else rill=$b; fi
      rm -rf "$work/data"
      "$rill" broker --data-dir "$work/data" --listen 127.0.0.1:0 --admin-listen off > "$work/listening" 2> "$work/broker.log" &
      broker_pid=$!
      for _ in $(seq 100); do grep -q "listening on" "$work/listening" && break; sleep 0.1; done
      addr=$(sed -n 's/^rill broker listening on //p' "$work/listening")
      result=$("$rill" bench produce --broker "$addr" --workload "$workload" --messages "$messages" 2>&1 \
        | grep -E "^produce|latency|cpu" | tr -s ' ' | tr '\n' ' ')
      echo "round $round, $workload, $side: $result"
      kill "$broker_pid"; wait "$broker_pid" 2>/dev/null || true
      broker_pid=
    done
  done
done
