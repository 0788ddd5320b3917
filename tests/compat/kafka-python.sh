#!/usr/bin/env bash
# Kafka's own record codec against rill: kafka-python (an encoder and decoder written outside this project)
# builds batches that a real `rill broker` stores and serves byte for byte, decodes what rill's client and CLI
# write, and sends the malformed batches Kafka's broker refuses, which rill must refuse too.
#
# Installs what it needs from PyPI into target/compat/venv (a fresh machine has only Rust and CPython), builds
# the `rill` binary, and runs the pytest suite beside this file. Usage: tests/compat/kafka-python.sh [PYTEST ARGS]
set -euo pipefail
cd "$(dirname "$0")/../.."
source tests/compat/venv.sh
stubs=target/compat/stubs
mkdir -p "$stubs"
"$venv/bin/python" -m grpc_tools.protoc -Iproto --python_out="$stubs" --grpc_python_out="$stubs" proto/rill/v1/rill.proto
cargo build --quiet -p rill-cli
RILL_BIN="$PWD/target/debug/rill" PYTHONPATH="$stubs" "$venv/bin/pytest" -q -p no:cacheprovider -W ignore::DeprecationWarning \
  tests/compat/test_kafka_python.py "$@"
