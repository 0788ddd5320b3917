#!/usr/bin/env bash
# Leader failover on three real `rill broker` processes (debug build, loopback): CYCLES SIGKILLs of the leader of
# one of an RF 3 topic's three partitions under acks-all produces (cli/tests/replication.rs), each printing the
# time from the kill to the first acks-all acknowledgement after it; then every acknowledged record is checked,
# read once and in order. KIND picks the node killed: `controller` (the controller leader, through a partition it
# leads), `partition` (a partition leader that is not the controller leader) or `alternate` (the default).
# Usage: benches/failover.sh [CYCLES=20] [KIND=alternate]; NODE_CONFIG sets lines of the nodes' TOML (`;` between
# them, each replacing the test's own for its key), e.g. NODE_CONFIG='node_liveness_probe = false' for a failover
# that waits out the dead node's session, or the default heartbeat and session
# NODE_CONFIG='node_heartbeat_interval_ms = 1000; node_session_timeout_ms = 6000'. STOP=graceful stops each leader
# with SIGINT (a rolling restart: it hands its leaderships over first) instead of SIGKILL.
set -euo pipefail
cd "$(dirname "$0")/.."
RILL_FAILOVER_CYCLES="${1:-20}" RILL_FAILOVER_KILL="${2:-alternate}" RILL_FAILOVER_CONFIG="${NODE_CONFIG:-}" \
  RILL_FAILOVER_STOP="${STOP:-kill}" \
  cargo test -p rill-cli --test e2e replication::acks_all_records_survive -- --nocapture 2>&1 \
  | grep -E '^cycle|test result'
