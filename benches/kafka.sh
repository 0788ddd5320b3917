#!/usr/bin/env bash
# librdkafka against rill's Kafka port, beside `rill bench`'s gRPC figures against the same broker process in the
# same run (docs/benchmarks.md, "Kafka clients"): produce and replay of 1 KB records by 8 producers on 8
# single-partition topics (the 8-topics-1-partition-1kb shape), then send-to-consume latency at 10k msg/s.
# Usage: benches/kafka.sh [OUT_DIR]   env: RILL_BENCH_MESSAGES (default 1000000), RILL_BENCH_RUNS (default 2),
# RILL_BIN, KAFKA_BENCH_BIN, RILL_BENCH_SKIP_LIMITS (below), RILL_BENCH_DIR (the disk under test; default
# target/bench-data), RILL_BENCH_SKIP_BUILD,
# RILL_BENCH_WARMUP_MESSAGES (default 1100000: 1 KB records produced first to topics of their own, unmeasured, so
# the broker's tail cache (1 GiB by default) is full and both protocols are measured in its steady state; else
# whichever runs first pays for the cache's first fill, every byte of it on a page the kernel zeroes first)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-target/bench-results}
data=${RILL_BENCH_DIR:-$PWD/target/bench-data}/kafka
messages=${RILL_BENCH_MESSAGES:-1000000}
runs=${RILL_BENCH_RUNS:-2}
mkdir -p "$out" "$data"
# RILL_BENCH_SKIP_BUILD=1: the release binaries are already built (on a shared machine, under its build lock).
if [ -z "${RILL_BENCH_SKIP_BUILD:-}" ]; then
  cargo build --release -p rill-cli
  cargo build --release -p rill-benches --example kafka_rdkafka
fi
# RILL_BIN, KAFKA_BENCH_BIN: other builds to measure (an A/B against an older commit's binaries).
rill=${RILL_BIN:-target/release/rill}
kafka=${KAFKA_BENCH_BIN:-target/release/examples/kafka_rdkafka}

echo "== machine limits"
# RILL_BENCH_SKIP_LIMITS=1: measured already in this session (a second run right after the first).
if [ -z "${RILL_BENCH_SKIP_LIMITS:-}" ] && [ -x ../shared/bench/limits.sh ]; then timeout 300 ../shared/bench/limits.sh "$data" | tee "$out/kafka-limits.txt" || true; fi

# One broker process for both protocols, topics never fsynced (what `rill bench --durability never` measures).
rm -rf "$data/broker"
"$rill" broker --listen 127.0.0.1:0 --data-dir "$data/broker" --default-durability never >"$out/kafka-broker.log" 2>&1 &
broker_pid=$!
trap 'kill "$broker_pid" 2>/dev/null || true; wait "$broker_pid" 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  addr=$(sed -n 's/^rill broker listening on //p' "$out/kafka-broker.log" | head -1)
  [ -n "$addr" ] && break
  sleep 0.1
done
[ -n "${addr:-}" ] || { echo "the broker did not start: $(cat "$out/kafka-broker.log")"; exit 1; }
echo "== broker at $addr"

warmup=${RILL_BENCH_WARMUP_MESSAGES:-1100000}
if [ "$warmup" -gt 0 ]; then
  for n in 0 1 2 3 4 5 6 7; do "$rill" topic create "warmup-$n" --broker "$addr" >/dev/null; done
  echo "== warm-up: $warmup records through librdkafka (unmeasured)"
  "$kafka" produce "$addr" warmup --topics 8 --messages "$warmup" --message-bytes 1000 >/dev/null
fi

for round in $(seq 1 "$runs"); do
  prefix="kafka-$round-$(date +%s)"
  for n in 0 1 2 3 4 5 6 7; do "$rill" topic create "$prefix-$n" --broker "$addr" >/dev/null; done
  echo "== [$round/$runs] grpc: rill bench produce/consume --workload 8-topics-1-partition-1kb --messages $messages"
  "$rill" bench produce --broker "$addr" --workload 8-topics-1-partition-1kb --messages "$messages" --acks leader \
    --no-idempotence --quiet | grep -E "msg/s|p99" | head -3
  "$rill" bench consume --broker "$addr" --workload 8-topics-1-partition-1kb --messages "$messages" --quiet \
    | grep -E "msg/s|p99" | head -3
  echo "== [$round/$runs] kafka (librdkafka): produce, consume"
  "$kafka" produce "$addr" "$prefix" --topics 8 --messages "$messages" --message-bytes 1000
  "$kafka" consume "$addr" "$prefix" --topics 8 --messages "$messages" --message-bytes 1000
done
for round in $(seq 1 "$runs"); do
  prefix="kafka-e2e-$round-$(date +%s)"
  "$rill" topic create "$prefix-0" --broker "$addr" >/dev/null
  # Both clients against the same broker process. (Until 2026-12-03 the gRPC run used an embedded broker: a run
  # against a broker process had lost sends to client timeouts, which the producer's batch-order fix of
  # 2026-12-01 ended; docs/benchmarks.md, "Kafka clients".)
  echo "== [$round/$runs] grpc: rill bench e2e --workload e2e-10k-msgs-1kb --messages 100000"
  "$rill" bench e2e --broker "$addr" --workload e2e-10k-msgs-1kb --messages 100000 \
    --quiet | grep -E "msg/s|p99" | head -4  # send→ack, then send→consume
  echo "== [$round/$runs] kafka (librdkafka): e2e at 10k msg/s"
  "$kafka" e2e "$addr" "$prefix" --messages 100000 --message-bytes 1024 --rate 10000
done
