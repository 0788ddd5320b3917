#!/usr/bin/env bash
# Where the time of a librdkafka produce and replay goes: the broker's CPU and the client's, each per gigabyte,
# and the requests the clients sent (docs/benchmarks.md, "Kafka clients"). Each round starts a fresh
# `rill broker` (durability `never`), creates 8 single-partition topics, then runs `kafka_rdkafka produce` and
# `kafka_rdkafka consume` (8 producers, 8 consumers, 1000-byte records) against it, reading the broker's
# utime+stime from /proc/PID/stat around each phase, the client's from /usr/bin/time, and the broker's Kafka
# request counts from its /metrics. With two brokers given, rounds alternate A B A B, the same client for both.
# Usage: benches/kafka_cpu.sh RILL_A [RILL_B]   env: ROUNDS (default 3), MESSAGES (default 1000000),
#   KAFKA_BENCH (default target/release/examples/kafka_rdkafka; KAFKA_BENCH_B, if set, for RILL_B's rounds), DATA (default target/bench-data/kafka-cpu),
#   KAFKA_BENCH_ARGS (extra flags for both kafka_rdkafka phases), BROKER_ARGS (extra `rill broker` flags),
#   WARMUP_MESSAGES (default 0: records produced to other topics first, unmeasured; 1100000 fills the broker's
#   default 1 GiB tail cache, so the measured phases see its steady state instead of its first fill, in which
#   every cached byte lands on a page the kernel must zero first)
set -euo pipefail
cd "$(dirname "$0")/.."
brokers=("$@")
[ ${#brokers[@]} -ge 1 ] || { echo "usage: $0 RILL_A [RILL_B]" >&2; exit 2; }
rounds=${ROUNDS:-3}
messages=${MESSAGES:-1000000}
bench=${KAFKA_BENCH:-target/release/examples/kafka_rdkafka}
data=${DATA:-$PWD/target/bench-data/kafka-cpu}
ticks=$(getconf CLK_TCK)
mkdir -p "$data"

# The broker's count of Produce (for the produce phase) or Fetch requests, from its /metrics.
kafka_requests() {
  local api=Fetch
  [ "$2" = produce ] && api=Produce
  curl -s "http://$1/metrics" | awk -v api="$api" '$1 ~ "^rill_kafka_requests(_total)?\\{api=\"" api "\"\\}" { n = $2 } END { print n + 0 }'
}

# utime and stime of a process, in seconds
cpu_seconds() { awk -v t="$ticks" '{ printf "%.2f %.2f", $14 / t, $15 / t }' "/proc/$1/stat"; }

one_round() {
  local label=$1 rill=$2 bench=$3 dir="$data/broker-$1"
  rm -rf "$dir"
  # shellcheck disable=SC2086
  "$rill" broker --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 --data-dir "$dir" --default-durability never \
    ${BROKER_ARGS:-} >"$data/broker-$label.log" 2>&1 &
  local pid=$! addr="" admin=""
  for _ in $(seq 1 100); do
    addr=$(sed -n 's/^rill broker listening on //p' "$data/broker-$label.log" | head -1)
    admin=$(sed -n 's|^rill admin listening on http://||p' "$data/broker-$label.log" | head -1)
    [ -n "$addr" ] && [ -n "$admin" ] && break
    sleep 0.1
  done
  [ -n "$addr" ] || { echo "broker $label did not start: $(cat "$data/broker-$label.log")"; kill "$pid"; return 1; }
  local prefix="cpu-$(date +%s%N)"
  for n in 0 1 2 3 4 5 6 7; do "$rill" topic create "$prefix-$n" --broker "$addr" >/dev/null; done
  if [ "${WARMUP_MESSAGES:-0}" -gt 0 ]; then
    for n in 0 1 2 3 4 5 6 7; do "$rill" topic create "warmup-$prefix-$n" --broker "$addr" >/dev/null; done
    "$bench" produce "$addr" "warmup-$prefix" --topics 8 --messages "$WARMUP_MESSAGES" --message-bytes 1000 >/dev/null
  fi
  for phase in produce consume; do
    local before after requests_before
    before=$(cpu_seconds "$pid")
    requests_before=$(kafka_requests "$admin" "$phase")
    # shellcheck disable=SC2086
    /usr/bin/time -f "client_user_s=%U client_system_s=%S" -o "$data/time-$label" \
      "$bench" "$phase" "$addr" "$prefix" --topics 8 --messages "$messages" --message-bytes 1000 ${KAFKA_BENCH_ARGS:-} \
      >"$data/out-$label" 2>&1 || { cat "$data/out-$label"; kill "$pid"; return 1; }
    after=$(cpu_seconds "$pid")
    local gb mbps client
    gb=$(awk -v m="$messages" 'BEGIN { printf "%.3f", m * 1000 / 1e9 }')
    mbps=$(sed -n 's/.*MB_per_s=\([0-9.]*\).*/\1/p' "$data/out-$label")
    client=$(awk -F'[= ]' -v g="$gb" '/client_user_s/ { printf "client_cpu_s_per_GB=%.3f (user %.3f, system %.3f)", \
      ($2 + $4) / g, $2 / g, $4 / g }' "$data/time-$label")
    local requests
    requests=$(awk -v a="$requests_before" -v b="$(kafka_requests "$admin" "$phase")" 'BEGIN { print b - a }')
    echo "$label $phase MB_per_s=$mbps $(echo "$before $after" | awk -v g="$gb" '{ printf \
      "broker_cpu_s_per_GB=%.3f (user %.3f, system %.3f)", ($3 + $4 - $1 - $2) / g, ($3 - $1) / g, ($4 - $2) / g }') \
      $client gb=$gb requests=${requests:-?}"
  done
  kill "$pid"
  wait "$pid" 2>/dev/null || true
  rm -rf "$dir"
}

for round in $(seq 1 "$rounds"); do
  for i in "${!brokers[@]}"; do
    client=$bench
    [ "$i" = 1 ] && client=${KAFKA_BENCH_B:-$bench}
    one_round "$(printf "\\x$(printf %x $((65 + i)))")$round" "${brokers[$i]}" "$client"
  done
done
