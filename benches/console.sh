#!/usr/bin/env bash
# The web console's server time per page on a broker holding 10,000 topics and one partition of 10 M records
# (the speed goal of docs/console.md: every page under 300 ms). Each page is fetched RUNS times; the time is the
# console's own `Server-Timing` header (request parsed to response built, no network), reported as median and
# max in ms, with curl's total beside it. The machine's limits (../shared/bench/limits.sh) are printed first.
# Usage: benches/console.sh [TOPICS=10000] [RECORDS=10000000] [RUNS=5]
#        PROFILE=debug uses target/debug (default: a release build); data under a temporary dir in
#        RILL_BENCH_DIR (default /tmp), removed at the end; NO_BUILD=1 skips the build.
set -euo pipefail
cd "$(dirname "$0")/.."
topics=${1:-10000}
records=${2:-10000000}
runs=${3:-5}
profile=${PROFILE:-release}
work=$(mktemp -d "${RILL_BENCH_DIR:-/tmp}/console-bench.XXXXXX")
limits=${LIMITS_SCRIPT:-../shared/bench/limits.sh}
limits_dir=${LIMITS_DIR:-/tmp/limits-console}
echo "== machine limits ($limits $limits_dir)"
if [ -f "$limits" ]; then bash "$limits" "$limits_dir"; rm -rf "$limits_dir"; else echo "limits.sh not found"; fi
# NO_BUILD=1: the binary is already built (e.g. under a shared build lock), and no cargo runs here.
if [ -z "${NO_BUILD:-}" ]; then
  if [ "$profile" = release ]; then cargo build --quiet --release -p rill-cli --bin rill; else cargo build --quiet -p rill-cli --bin rill; fi
fi
rill="$PWD/target/$profile/rill"
pid=
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

"$rill" broker --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 --data-dir "$work/data" --write-mode buffered \
  --max-topics $((topics + 10)) >"$work/broker.out" 2>"$work/broker.err" &
pid=$!
deadline=$((SECONDS + 60))
until grep -q '^rill admin listening on' "$work/broker.out" 2>/dev/null; do
  if ((SECONDS >= deadline)); then echo "console.sh: the broker did not start" >&2; cat "$work/broker.err" >&2; exit 1; fi
  sleep 0.2
done
export RILL_BROKER=$(sed -n 's/^rill broker listening on //p' "$work/broker.out")
admin=$(sed -n 's|^rill admin listening on ||p' "$work/broker.out")

start=$SECONDS
seq -f 't-%05.0f' 1 $((topics - 1)) | xargs -P 8 -n 1 "$rill" topic create >/dev/null
"$rill" topic create big >/dev/null
echo "== created $topics topics in $((SECONDS - start)) s"
start=$SECONDS
first_ms=$(date +%s%3N)
seq -f 'record-%.0f' 1 "$records" | "$rill" produce big --partition 0 >/dev/null
last_ms=$(date +%s%3N)
echo "== produced $records records to big/0 in $((SECONDS - start)) s"
"$rill" group reset-offsets bench-group --topic big --to-earliest >/dev/null
held=$(curl -s "$admin/topics/big/messages?limit=1" | grep -o 'Partition 0 holds offsets [0-9,]* to [0-9,]*')
echo "== $held; $(curl -s "$admin/" | grep -o '<b>[0-9,]*</b>topics')"
[[ "$held" == *" to $(python3 -c "print(f'{$records - 1:,}')")" ]] || { echo "console.sh: big/0 does not hold $records records" >&2; exit 1; }
middle_ms=$(((first_ms + last_ms) / 2))

pages=(
  "/"
  "/topics"
  "/topics?page=50"
  "/topics?q=t-0999"
  "/topics/t-05000"
  "/topics/big"
  "/topics/big/messages"
  "/topics/big/messages?from=earliest"
  "/topics/big/messages?from=offset&offset=$((records / 2))"
  "/topics/big/messages?from=timestamp&timestamp=$middle_ms"
  "/topics/big/messages?from=offset&offset=$((records / 2))&limit=500"
  "/topics/big/messages?from=earliest&contains=matches-nothing"
  "/topics/big/messages.json?from=offset&offset=$((records / 2))&limit=500"
  "/groups"
  "/groups/bench-group"
  "/topics/big/produce"
)
echo "== server time per page over $runs runs (ms; Server-Timing median / max; curl total median)"
printf '%-72s %8s %8s %8s %6s\n' page median max curl status
for page in "${pages[@]}"; do
  server=() total=() status=
  for _ in $(seq 1 "$runs"); do
    out=$(curl -s -o /dev/null -D - -w 'total=%{time_total} status=%{http_code}\n' "$admin$page")
    server+=("$(sed -n 's/^server-timing: console;dur=\([0-9.]*\).*/\1/p' <<<"$out")")
    total+=("$(sed -n 's/^total=\([0-9.]*\).*/\1/p' <<<"$out")")
    status=$(sed -n 's/.*status=\([0-9]*\).*/\1/p' <<<"$out")
  done
  python3 - "$page" "$status" "${server[*]}" "${total[*]}" <<'PY'
import statistics, sys
page, status, server, total = sys.argv[1], sys.argv[2], [float(x) for x in sys.argv[3].split()], [float(x) * 1e3 for x in sys.argv[4].split()]
print(f"{page:<72} {statistics.median(server):8.1f} {max(server):8.1f} {statistics.median(total):8.1f} {status:>6}")
PY
done
echo "== broker RSS $(ps -o rss= -p "$pid") KiB"
