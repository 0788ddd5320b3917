#!/usr/bin/env bash
# The broker's /metrics against Prometheus itself, from Debian's `prometheus` package (installed when missing):
# `promtool check metrics` on the endpoint's output (both before and after load), then a real Prometheus server
# scraping a real `rill broker` every second while `rill produce` writes a known number of records, and PromQL
# queries over the scraped series that must agree with what was produced and consumed. The broker also serves its
# HTTP proxy (--http-proxy-listen): its own /metrics passes promtool and is scraped, and the records curl produces
# through it are counted.
# Usage: tests/compat/prometheus.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
source tests/compat/tools.sh
need_prometheus
cargo build --quiet -p rill-cli
rill="$PWD/target/debug/rill"
work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

# Polls `$1` (a command) every 0.2 s for up to $2 seconds; fails naming what it waited for ($3).
wait_for() {
  local deadline=$((SECONDS + $2))
  until eval "$1" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then echo "prometheus.sh: timed out waiting for $3" >&2; exit 1; fi
    sleep 0.2
  done
}

RUST_LOG=warn "$rill" broker --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 --data-dir "$work/data" \
  --http-proxy-listen 127.0.0.1:0 >"$work/broker.out" 2>"$work/broker.err" &
pids+=($!)
wait_for "grep -q '^rill http proxy listening on' '$work/broker.out'" 30 "the broker to start"
broker=$(sed -n 's/^rill broker listening on //p' "$work/broker.out")
admin=$(sed -n 's|^rill admin listening on http://||p' "$work/broker.out")
proxy=$(sed -n 's|^rill http proxy listening on http://||p' "$work/broker.out")
export RILL_BROKER="$broker"

curl -fsS "http://$admin/metrics" | promtool check metrics
curl -fsS "http://$proxy/metrics" | promtool check metrics
"$rill" topic create load --partitions 3 >/dev/null

# Prometheus: scrape the admin listener every second, on a free port, data in $work.
prom_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat >"$work/prometheus.yml" <<YAML
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: rill
    static_configs:
      - targets: ["$admin"]
  - job_name: rill-http-proxy
    static_configs:
      - targets: ["$proxy"]
YAML
promtool check config "$work/prometheus.yml" >/dev/null
prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/tsdb" \
  --web.listen-address="127.0.0.1:$prom_port" >"$work/prometheus.log" 2>&1 &
pids+=($!)
prom="http://127.0.0.1:$prom_port"
# The value of an instant PromQL query (the first series' value), or nothing.
query() {
  curl -fsS "$prom/api/v1/query" --data-urlencode "query=$1" \
    | python3 -c 'import json,sys; r=json.load(sys.stdin)["data"]["result"]; print(r[0]["value"][1] if r else "")'
}
wait_for "[[ \$(query 'up{job=\"rill\"}') == 1 ]]" 60 "Prometheus to scrape the broker"
wait_for "[[ \$(query 'up{job=\"rill-http-proxy\"}') == 1 ]]" 60 "Prometheus to scrape the HTTP proxy"

# Load: 20,000 records of 100 bytes in 20 produce runs, spread over the three partitions by key.
records=${RECORDS:-20000}
value=$(printf 'x%.0s' $(seq 1 100))
for run in $(seq 1 20); do
  for i in $(seq 1 $((records / 20))); do echo "k$run-$i:$value"; done | "$rill" produce load --key-separator : >/dev/null
done
"$rill" consume load --group promql --from-beginning --max-messages "$records" >/dev/null

curl -fsS "http://$admin/metrics" | promtool check metrics
# 10 requests of 5 JSON records through the HTTP proxy, to a topic of their own.
"$rill" topic create over-http >/dev/null
for run in $(seq 1 10); do
  curl -fsS -X POST -H 'Content-Type: application/vnd.kafka.json.v2+json' \
    --data '{"records":[{"value":1},{"value":2},{"value":3},{"value":4},{"value":5}]}' \
    "http://$proxy/topics/over-http" >/dev/null
done
curl -fsS "http://$proxy/metrics" | promtool check metrics
wait_for "[[ \$(query 'sum(rill_http_proxy_records_produced_total{format=\"json\"})') == 50 ]]" 30 \
  "Prometheus to see the HTTP proxy's 50 records"
wait_for "[[ \$(query 'sum(rill_http_proxy_requests_total{endpoint=\"produce\",status=\"200\"})') == 10 ]]" 30 \
  "Prometheus to see the HTTP proxy's 10 produce requests"
wait_for "[[ \$(query 'sum(rill_partition_produced_records_total{topic=\"over-http\"})') == 50 ]]" 30 \
  "the broker to count the HTTP proxy's 50 records"
produced='sum(rill_partition_produced_records_total{topic="load"})'
wait_for "[[ \$(query '$produced') == $records ]]" 30 "Prometheus to see all $records records produced"
end=$(query 'sum(rill_partition_log_end_offset{topic="load"})')
[[ "$end" == "$records" ]] || { echo "prometheus.sh: log end offsets sum to $end, not $records" >&2; exit 1; }
# The rate of records in: over a window covering the whole load, increase() must find every record, within the
# extrapolation PromQL adds at the window's ends (under 1/30 once each series has 30 samples, a scrape a second).
wait_for "[[ \$(query 'min(count_over_time(rill_partition_produced_records_total{topic=\"load\"}[10m])) >= bool 30') == 1 ]]" \
  60 "30 scrapes of every partition"
increase=$(query "sum(increase(rill_partition_produced_records_total{topic=\"load\"}[10m]))")
python3 -c "import sys; v=float('$increase'); sys.exit(0 if abs(v - $records) <= 0.1 * $records else 1)" \
  || {
    echo "prometheus.sh: increase() over the load is $increase, not about $records" >&2
    curl -fsS "$prom/api/v1/query" --data-urlencode 'query=rill_partition_produced_records_total{topic="load"}[10m]' >&2
    exit 1
  }
wait_for "[[ \$(query 'sum(rill_group_lag_records{group=\"promql\",topic=\"load\"})') == 0 ]]" 30 \
  "the group's lag to reach 0 after consuming everything"
requests=$(query 'sum(rill_grpc_requests_total{method="rill.v1.Records/Produce"})')
python3 -c "import sys; sys.exit(0 if float('$requests') >= 20 else 1)" \
  || { echo "prometheus.sh: $requests produce requests counted, expected at least 20" >&2; exit 1; }
# The Grafana dashboard: every panel's query is valid PromQL that Prometheus evaluates over these series (its
# template variables as "All"), and the throughput and lag panels find data.
python3 - "$prom" docs/grafana/rill.json <<'PY'
import json, sys, urllib.parse, urllib.request
prom, path = sys.argv[1], sys.argv[2]
dashboard = json.load(open(path))
empty = []
for panel in dashboard["panels"]:
    for target in panel["targets"]:
        expr = target["expr"]
        for var in ("$instance", "$topic", "$group", "$job"):
            expr = expr.replace(var, ".*")
        url = prom + "/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        answer = json.load(urllib.request.urlopen(url))
        assert answer["status"] == "success", (panel["title"], expr, answer)
        if not answer["data"]["result"]:
            empty.append(panel["title"])
for needed in ("Records in / out per second, by topic", "Consumer lag by group", "Produce latency (gRPC)",
               "Disk: free space against the reserve"):
    assert needed not in empty, f"dashboard panel {needed!r} found no data"
print(f"prometheus.sh: the dashboard's {sum(len(p['targets']) for p in dashboard['panels'])} queries evaluate")
PY
echo "prometheus.sh: promtool accepts /metrics; Prometheus saw $records records produced (increase() $increase), lag 0;" \
  "the HTTP proxy's 50 records counted"
