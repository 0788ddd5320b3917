# Sourced by the compatibility scripts: the Python clients they use, installed once from PyPI into
# target/compat/venv (a fresh machine has only Rust and CPython). Sets $venv. confluent-kafka's wheel bundles
# librdkafka (with TLS), so no system package is needed for it, and its [avro], [json] and [protobuf] extras
# bring Confluent's schema registry client with fastavro, jsonschema and protobuf (test_schema_registry*.py);
# trustme makes the TLS tests' certificates; requests is the HTTP client of test_http_proxy.py.
venv=target/compat/venv
# A venv moved from elsewhere (a copied target dir) keeps scripts whose first line names the old path: check one.
if ! "$venv/bin/python" -c 'import confluent_kafka.schema_registry.avro, confluent_kafka.schema_registry.protobuf
import confluent_kafka.schema_registry.json_schema, kafka, grpc_tools, pytest, requests, trustme' 2>/dev/null \
  || ! "$venv/bin/pytest" --version >/dev/null 2>&1; then
  "$venv/bin/pytest" --version >/dev/null 2>&1 || python3 -m venv --clear "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check \
    'kafka-python==3.0.12' 'confluent-kafka[avro,json,protobuf]==2.16.*' 'grpcio==1.85.*' 'grpcio-tools==1.85.*' \
    'lz4==4.*' 'zstandard==0.25.*' 'python-snappy==0.7.*' 'cramjam==2.*' 'pytest==8.*' 'requests==2.*' 'trustme==1.*'
fi
