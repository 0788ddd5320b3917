#!/usr/bin/env bash
# Cluster benchmarks (issue 14) on this machine, every process on the same cores, beside a single node in the same
# run: three release `rill broker` nodes on loopback, and one node without peers.
#   1. produce, 1 KB records, 8 producers (workload 8-topics-1-partition-1kb) for SECONDS: the single node with
#      acks leader, then the cluster with RF 3 and acks all (target: >= 30% of the single node's figure);
#   2. end to end at 10k msg/s (workload e2e-10k-msgs-1kb, 100,000 messages): the single node with acks leader, then
#      the cluster with RF 3 and acks all (target p99 < 5 ms);
#   3. a topic of 1,000 partitions, RF 3, at rest: each node's CPU over IDLE_SECONDS from /proc/PID/stat
#      (target < 5% of a core per node).
# Needs target/release/rill (cargo build --release -p rill-cli). Prints the `rill bench` reports and the CPU lines.
# Usage: benches/cluster.sh [SECONDS=10] [IDLE_SECONDS=30] [DATA_DIR=a temp dir]; ONLY=produce, e2e or idle runs
# that step alone. E2E_MESSAGES (100000) sets the e2e run's length,
# E2E_FLAGS adds `rill bench e2e` flags, e.g. `--timeline FILE`; RILL_LOG sets the nodes'
# RUST_LOG, e.g. `warn,rill_broker::replication=debug` for the replication hops, with timestamps, in node*.log);
# NODE_FLAGS adds `rill broker` flags to the three cluster nodes (e.g. `--write-mode buffered`); ROUNDS (1) repeats
# the produce step, single node then cluster, deleting each round's topics; WARM_SECONDS (8; 0 for none) first runs
# one unmeasured produce of that length on each, so the measured rounds meet warm processes (below); BROKER_ENV
# adds environment variables to the four brokers and not to `rill bench`, e.g. `RILL_WORKER_THREADS=1`
# (TOKIO_WORKER_THREADS=1 for builds before --worker-threads). PRODUCE_FLAGS adds `rill bench produce` flags to both produce steps (e.g. `--max-in-flight 2`).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-10}
idle_seconds=${2:-30}
rill=${RILL_BIN:-$PWD/target/release/rill} # RILL_BIN: another build, e.g. to try the script on a debug one
[ -x "$rill" ] || { echo "no $rill: cargo build --release -p rill-cli" >&2; exit 1; }
dir=${3:-$(mktemp -d -t rill-cluster-bench.XXXXXX)}
mkdir -p "$dir"
# The nodes' data dirs (tens of GB after the produce runs) are removed on exit; their logs stay in $dir.
export RILL_ADMIN_LISTEN=127.0.0.1:0 # four nodes on one machine: never the fixed admin port

free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
addrs=() peers=""
for id in 1 2 3; do
  addrs+=("127.0.0.1:$(free_port)")
  peers+="${peers:+,}$id@${addrs[$((id - 1))]}"
done
single="127.0.0.1:$(free_port)"
cluster=$(IFS=,; echo "${addrs[*]}")

pids=()
stop() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$dir"/d1 "$dir"/d2 "$dir"/d3 "$dir"/single
}
trap stop EXIT
for id in 1 2 3; do
  # shellcheck disable=SC2086 # NODE_FLAGS is a list of flags, BROKER_ENV of NAME=VALUE
  env ${BROKER_ENV:-} RUST_LOG=${RILL_LOG:-warn} "$rill" broker --node-id "$id" --listen "${addrs[$((id - 1))]}" \
    --data-dir "$dir/d$id" --peers "$peers" ${NODE_FLAGS:-} >"$dir/node$id.out" 2>"$dir/node$id.log" &
  pids+=($!)
done
# shellcheck disable=SC2086 # BROKER_ENV is a list of NAME=VALUE
env ${BROKER_ENV:-} RUST_LOG=warn "$rill" broker --listen "$single" --data-dir "$dir/single" >"$dir/single.out" \
  2>"$dir/single.log" &
pids+=($!)

# The cluster is ready once the controller leader lists three alive nodes.
for _ in $(seq 1 300); do
  alive=$("$rill" cluster describe --broker "$cluster" 2>/dev/null | grep -cE '^[0-9]+ .* alive ' || true)
  [ "$alive" = 3 ] && break
  sleep 0.2
done
[ "$alive" = 3 ] || { echo "the cluster did not form; logs in $dir" >&2; exit 1; }
echo "cluster $cluster (node pids ${pids[*]:0:3}), single node $single, data in $dir"
# The controller's raft term at the start and at the end: a term that moved means an election under load (raft's
# lease is an eighth of the node session, 750 ms by default; a spurious election costs a controller leader change).
raft_term() { "$rill" cluster describe --broker "$cluster" 2>/dev/null | awk '/^raft term:/ { print $3 }'; }
term_at_start=$(raft_term)
report_term() { echo; echo "raft term: $term_at_start at the start, $(raft_term) at the end"; }

bench() { "$rill" bench --quiet "$@"; }
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)
if [ "${ONLY:-}" = "" ] || [ "${ONLY:-}" = produce ]; then
  # ROUNDS alternates single node and cluster; each round's topics are deleted after it, so the disk holds one
  # round. A fresh process fills its tail cache (up to 1 GiB, on a cluster node from the partitions it leads)
  # with memory the VM has never handed out, which costs ~3 CPU-s per GB here; once filled and freed, the
  # allocator keeps it, as in a broker that has run for a while. The single node fills its cache in its first
  # second, a cluster node leading a third of the partitions only after ~3 GB acknowledged: more than one round
  # at its rate. So the warm-up, reported but not counted, runs before the measured rounds.
  warm=${WARM_SECONDS:-8}
  if [ "$warm" != 0 ]; then
    echo; echo "== warm-up (not counted): produce for $warm s on the single node, then on the cluster"
    bench produce --broker "$single" --workload 8-topics-1-partition-1kb --duration "$warm" --acks leader \
      --topic-prefix bench-single-warm | grep 'msgs in'
    bench produce --broker "$cluster" --workload 8-topics-1-partition-1kb --duration "$warm" --acks all \
      --replication-factor 3 --topic-prefix bench-rf3-warm | grep 'msgs in'
    for i in $(seq 0 7); do
      "$rill" topic delete "bench-single-warm-$i" --broker "$single" >/dev/null
      "$rill" topic delete "bench-rf3-warm-$i" --broker "$cluster" >/dev/null
    done
  fi
  summary=()
  for round in $(seq 1 "${ROUNDS:-1}"); do
    echo; echo "== round $round: produce, single node, acks leader, 8 producers, 1 KB"
    single_before=$(ticks "${pids[3]}")
    # shellcheck disable=SC2086 # PRODUCE_FLAGS is a list of flags
    bench produce --broker "$single" --workload 8-topics-1-partition-1kb --duration "$seconds" --acks leader \
      --topic-prefix "bench-single-r$round" ${PRODUCE_FLAGS:-} | tee "$dir/produce-single.out"
    gb=$(awk '/msgs in/ { print $2 * 1000 / 1e9; exit }' "$dir/produce-single.out") # the workload's 1,000-byte values
    awk -v t="$(( $(ticks "${pids[3]}") - single_before ))" -v hz="$hz" -v gb="$gb" \
      'BEGIN { printf "single node: %.2f CPU-seconds, %.1f per GB acknowledged\n", t / hz, t / hz / gb }'
    single_mbs=$(awk '/MB\/s/ { for (i = 1; i < NF; i++) if ($(i + 1) == "MB/s") { print $i; exit } }' \
      "$dir/produce-single.out")
    for i in $(seq 0 7); do "$rill" topic delete "bench-single-r$round-$i" --broker "$single" >/dev/null; done
    echo; echo "== round $round: produce, 3 nodes, RF 3, acks all, 8 producers, 1 KB"
    before=(); for pid in "${pids[@]:0:3}"; do before+=("$(ticks "$pid")"); done
    # shellcheck disable=SC2086 # PRODUCE_FLAGS is a list of flags
    bench produce --broker "$cluster" --workload 8-topics-1-partition-1kb --duration "$seconds" --acks all \
      --replication-factor 3 --topic-prefix "bench-rf3-r$round" ${PRODUCE_FLAGS:-} | tee "$dir/produce-rf3.out"
    # Each node's CPU over the step (utime+stime from /proc/PID/stat), per GB the producers got acknowledged.
    gb=$(awk '/msgs in/ { print $2 * 1000 / 1e9; exit }' "$dir/produce-rf3.out")
    for i in 0 1 2; do
      used=$(( $(ticks "${pids[$i]}") - ${before[$i]} ))
      awk -v t="$used" -v hz="$hz" -v gb="$gb" -v n=$((i + 1)) \
        'BEGIN { printf "node %d: %.2f CPU-seconds, %.1f per GB acknowledged\n", n, t / hz, t / hz / gb }'
    done
    rf3_mbs=$(awk '/MB\/s/ { for (i = 1; i < NF; i++) if ($(i + 1) == "MB/s") { print $i; exit } }' \
      "$dir/produce-rf3.out")
    leaders=$(for i in $(seq 0 7); do
      "$rill" topic describe "bench-rf3-r$round-$i" --broker "$cluster" 2>/dev/null | awk '$1 == "0" { print $2 }'
    done | sort | uniq -c | awk '{ printf "%s%s leads %s", sep, "node " $2, $1; sep = ", " }')
    for i in $(seq 0 7); do "$rill" topic delete "bench-rf3-r$round-$i" --broker "$cluster" >/dev/null; done
    summary+=("round $round: single $single_mbs MB/s, RF 3 acks all $rf3_mbs MB/s ($leaders)")
  done
  echo; echo "== produce summary (after a warm-up of ${warm} s)"
  printf '%s\n' "${summary[@]}"
  printf '%s\n' "${summary[@]}" | awk '{ s = $4; r = $10; printf "  %s RF 3 / single = %.1f%%\n", $1 " " $2, 100 * r / s }'
  printf '%s\n' "${summary[@]}" | awk '{ print 100 * $10 / $4 }' | sort -n |
    awk '{ v[NR] = $1 } END { m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; printf "  median RF 3 / single over %d rounds = %.1f%% (target >= 30%%)\n", NR, m }'
fi
if [ "${ONLY:-}" = "" ] || [ "${ONLY:-}" = e2e ]; then
  # The same run on the single node first: its tail is the machine's (scheduling, the shared disk), not replication's.
  echo; echo "== e2e, single node, acks leader, 10k msg/s, 1 KB"
  bench e2e --broker "$single" --workload e2e-10k-msgs-1kb --messages "${E2E_MESSAGES:-100000}" --acks leader
  echo; echo "== e2e, 3 nodes, RF 3, acks all, 10k msg/s, 1 KB"
  # shellcheck disable=SC2086 # E2E_FLAGS is a list of flags
  bench e2e --broker "$cluster" --workload e2e-10k-msgs-1kb --messages "${E2E_MESSAGES:-100000}" --acks all \
    --replication-factor 3 ${E2E_FLAGS:-}
fi
[ "${ONLY:-}" = "" ] || [ "${ONLY:-}" = idle ] || { report_term; exit 0; }

echo; echo "== 1,000 partitions, RF 3, at rest"
"$rill" topic create idle --partitions 1000 --replication-factor 3 --broker "$cluster" >/dev/null
for _ in $(seq 1 600); do
  in_sync=$("$rill" topic describe idle --broker "$cluster" 2>/dev/null | awk '$1 ~ /^[0-9]+$/ && split($5, r, ",") == 3' | wc -l)
  [ "$in_sync" = 1000 ] && break
  sleep 1
done
echo "partitions with 3 in-sync replicas: $in_sync"
sleep 15 # the creates' fsyncs, the new epochs and the first fetches settle (5 s was not enough: see docs/benchmarks.md)
before=(); for pid in "${pids[@]:0:3}"; do before+=("$(ticks "$pid")"); done
sleep "$idle_seconds"
for i in 0 1 2; do
  used=$(( $(ticks "${pids[$i]}") - ${before[$i]} ))
  awk -v t="$used" -v hz="$hz" -v s="$idle_seconds" -v n=$((i + 1)) \
    'BEGIN { printf "node %d: %.2f%% of a core at rest over %d s\n", n, 100 * t / hz / s, s }'
done
report_term
