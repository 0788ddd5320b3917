# Sourced by the compatibility scripts: the Python clients they use, installed once from PyPI into
# target/compat/venv (a fresh machine has only Rust and CPython). Sets $venv.
venv=target/compat/venv
if [[ ! -x $venv/bin/pytest ]] || ! "$venv/bin/python" -c 'import confluent_kafka' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check \
    'kafka-python==3.0.12' 'grpcio==1.85.*' 'grpcio-tools==1.85.*' 'lz4==4.*' 'zstandard==0.25.*' \
    'python-snappy==0.7.*' 'cramjam==2.*' 'pytest==8.*' 'confluent-kafka==2.16.*'
fi
