#!/usr/bin/env bash
# The tools the compatibility scripts run, installed when missing (a fresh machine has only Rust and CPython):
# Debian's chromium and chromium-driver, prometheus, kcat, node and npm; the Python clients (venv.sh); selenium
# (target/compat/console-venv); KafkaJS from npm (target/compat/node_modules). Each script sources this file and
# calls what it needs. Run on its own it installs all of them: .ci/run starts it while cargo builds, so the
# downloads and unpacking overlap the compile instead of following it.
# Usage: tests/compat/tools.sh   (from any directory)

# Installs Debian packages, refreshing the package lists once if the first try fails (a fresh machine has none).
debian_install() {
  if ! command -v apt-get >/dev/null; then
    echo "tools.sh: no apt-get to install Debian's $*" >&2
    return 1
  fi
  (DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null 2>&1 \
    || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"; }) \
    >/dev/null
}

need_chromium() {
  command -v chromium >/dev/null && command -v chromedriver >/dev/null || debian_install chromium chromium-driver
}

need_prometheus() {
  command -v promtool >/dev/null && command -v prometheus >/dev/null || debian_install prometheus
}

# kcat and KafkaJS are optional: without them their tests are skipped and say so.
need_kcat() {
  command -v kcat >/dev/null || debian_install kcat || echo "tools.sh: could not install kcat; its tests are skipped" >&2
}

need_kafkajs() {
  if ! command -v npm >/dev/null; then
    debian_install nodejs npm || echo "tools.sh: could not install node; the KafkaJS test is skipped" >&2
  fi
  if command -v npm >/dev/null && [[ ! -d target/compat/node_modules/kafkajs ]]; then
    mkdir -p target/compat
    (cd target/compat && npm install --silent --no-audit --no-fund kafkajs@2.2.4) \
      || echo "tools.sh: could not install kafkajs; its test is skipped" >&2
  fi
}

# Sarama (a Go client of its own, not librdkafka) from Debian's packages with the Go it builds with, and
# target/compat/sarama-check built from tests/compat/sarama (GOPATH mode: Debian's packages are the sources,
# nothing is downloaded). Optional: without it, test_kafka_sarama.py is skipped and says so.
need_sarama() {
  if [[ ! -d /usr/share/gocode/src/github.com/Shopify/sarama ]] || ! command -v go >/dev/null; then
    debian_install golang-go golang-github-shopify-sarama-dev \
      || { echo "tools.sh: could not install Go and Sarama; their test is skipped" >&2; return 0; }
  fi
  mkdir -p target/compat
  (cd tests/compat/sarama && GO111MODULE=off GOPATH=/usr/share/gocode CGO_CFLAGS=-Wno-deprecated-declarations \
    go build -o ../../../target/compat/sarama-check .) \
    || echo "tools.sh: could not build sarama-check; its test is skipped" >&2
}

# Sets $console_venv: selenium for console.sh's browser test.
need_selenium() {
  console_venv=target/compat/console-venv
  if ! "$console_venv/bin/python" -c 'import selenium' 2>/dev/null; then
    python3 -m venv --clear "$console_venv"
    "$console_venv/bin/pip" install --quiet --disable-pip-version-check 'selenium==4.*'
  fi
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  set -euo pipefail
  cd "$(dirname "$0")/../.."
  mkdir -p target/compat
  # One after another: apt-get holds dpkg's lock, and the Python and npm installs are quick next to it.
  need_chromium
  need_prometheus
  need_kcat
  need_kafkajs
  need_sarama
  need_selenium
  source tests/compat/venv.sh
fi
