#!/usr/bin/env bash
# Real Kafka clients against rill's Kafka listener (the broker's one port, beside gRPC): kafka-python's
# KafkaProducer and KafkaConsumer (versions auto-detected by ApiVersions) send and read records with every codec,
# kcat produces what `rill consume` reads and reads what `rill produce` writes, and offsets_for_times finds
# records by timestamp.
#
# Installs kafka-python from PyPI into target/compat/venv (shared with kafka-python.sh) and kcat from Debian's
# packages when it is missing (without apt, the kcat tests are skipped and say so). Builds the `rill` binary and
# runs the pytest suite beside this file. Usage: tests/compat/kafka-clients.sh [PYTEST ARGS]
set -euo pipefail
cd "$(dirname "$0")/../.."
source tests/compat/venv.sh
if ! command -v kcat >/dev/null; then
  if command -v apt-get >/dev/null; then
    (apt-get install -y -qq kcat >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq kcat; }) >/dev/null \
      || echo "kafka-clients.sh: could not install kcat; its tests are skipped" >&2
  else
    echo "kafka-clients.sh: no apt-get to install kcat; its tests are skipped" >&2
  fi
fi
cargo build --quiet -p rill-cli
RILL_BIN="$PWD/target/debug/rill" "$venv/bin/pytest" -q -p no:cacheprovider -W ignore::DeprecationWarning \
  tests/compat/test_kafka_clients.py tests/compat/test_kafka_groups.py "$@"
