#!/usr/bin/env bash
# Leader failover on three real `rill broker` processes (debug build, loopback): CYCLES SIGKILLs of an RF 3
# partition's leader under acks-all produces (cli/tests/replication.rs), each printing the time from the kill to
# the first acks-all acknowledgement after it; then every acknowledged record is checked, read once and in order.
# Usage: benches/failover.sh [CYCLES=20]
set -euo pipefail
cd "$(dirname "$0")/.."
RILL_FAILOVER_CYCLES="${1:-20}" cargo test -p rill-cli --test replication acks_all_records_survive -- --nocapture 2>&1 \
  | grep -E '^cycle|test result'
