"""Kafka clients over TLS and mutual TLS: kafka-python (security_protocol="SSL") and librdkafka through
confluent-kafka (security.protocol=SSL) against a `rill broker` started with --tls-cert, --tls-key and
--tls-client-ca, its certificates made by trustme in the test. The `rill` CLI reads what they wrote over gRPC
with TLS, on the same port. Run by kafka-clients.sh."""

import itertools
import os
import socket
import ssl
import struct
import subprocess
import tempfile

import pytest
import trustme
from confluent_kafka import Consumer, Producer
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from conftest import read_values, running_broker

RILL = os.environ["RILL_BIN"]
topic_names = (f"kafka-tls-{n}" for n in itertools.count())


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A CA, the broker's certificate (localhost, 127.0.0.1) and a client's, as PEM files."""
    directory = tmp_path_factory.mktemp("pki")
    ca = trustme.CA()
    server = ca.issue_cert("localhost", "127.0.0.1")
    client = ca.issue_cert("client.rill.test")
    files = {name: str(directory / name) for name in
             ["ca.pem", "server.pem", "server.key", "client.pem", "client.key"]}
    ca.cert_pem.write_to_path(files["ca.pem"])
    server.cert_chain_pems[0].write_to_path(files["server.pem"])
    server.private_key_pem.write_to_path(files["server.key"])
    client.cert_chain_pems[0].write_to_path(files["client.pem"])
    client.private_key_pem.write_to_path(files["client.key"])
    return files


@pytest.fixture(scope="module")
def tls_broker(pki):
    """A `rill broker` requiring client certificates from the test CA; its address."""
    with tempfile.TemporaryDirectory() as data_dir:
        flags = ["--admin-listen", "off", "--tls-cert", pki["server.pem"], "--tls-key", pki["server.key"],
                 "--tls-client-ca", pki["ca.pem"]]
        with running_broker(data_dir, *flags) as addr:
            yield addr


def rill(pki, addr, *args, stdin=None):
    done = subprocess.run(
        [RILL, *args, "--broker", f"https://{addr}", "--tls-ca", pki["ca.pem"],
         "--tls-cert", pki["client.pem"], "--tls-key", pki["client.key"]],
        input=stdin, capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def new_topic(pki, addr):
    name = next(topic_names)
    rill(pki, addr, "topic", "create", name)
    return name


def kafka_python_ssl(pki):
    return {"security_protocol": "SSL", "ssl_cafile": pki["ca.pem"], "ssl_certfile": pki["client.pem"],
            "ssl_keyfile": pki["client.key"]}


def librdkafka_ssl(pki):
    return {"security.protocol": "SSL", "ssl.ca.location": pki["ca.pem"],
            "ssl.certificate.location": pki["client.pem"], "ssl.key.location": pki["client.key"]}


def test_kafka_python_produces_and_consumes_over_mutual_tls(pki, tls_broker):
    topic = new_topic(pki, tls_broker)
    producer = KafkaProducer(bootstrap_servers=tls_broker, acks="all", enable_idempotence=False,
                             **kafka_python_ssl(pki))
    try:
        futures = [producer.send(topic, value=f"secret {i}".encode(), partition=0) for i in range(20)]
        producer.flush(timeout=30)
        assert [f.get(timeout=30).offset for f in futures] == list(range(20))
    finally:
        producer.close(timeout=10)
    consumer = KafkaConsumer(bootstrap_servers=tls_broker, enable_auto_commit=False, consumer_timeout_ms=10_000,
                             **kafka_python_ssl(pki))
    try:
        partition = TopicPartition(topic, 0)
        consumer.assign([partition])
        consumer.seek(partition, 0)
        values = [record.value for _, record in zip(range(20), consumer)]
    finally:
        consumer.close()
    assert values == [f"secret {i}".encode() for i in range(20)]
    # The same records over gRPC with TLS, on the same port.
    assert rill(pki, tls_broker, "consume", topic).splitlines() == [f"secret {i}" for i in range(20)]


def test_librdkafka_produces_and_consumes_over_mutual_tls(pki, tls_broker):
    topic = new_topic(pki, tls_broker)
    producer = Producer({"bootstrap.servers": tls_broker, "acks": "all", **librdkafka_ssl(pki)})
    delivered = []
    for i in range(20):
        producer.produce(topic, value=f"rd {i}".encode(), partition=0,
                         on_delivery=lambda err, msg: delivered.append((err, msg.offset())))
    assert producer.flush(30) == 0
    assert [err for err, _ in delivered] == [None] * 20
    assert sorted(offset for _, offset in delivered) == list(range(20))
    consumer = Consumer({"bootstrap.servers": tls_broker, "group.id": f"{topic}-reader", "auto.offset.reset": "earliest",
                         "enable.auto.commit": False, **librdkafka_ssl(pki)})
    values = read_values(consumer, topic, 20)
    assert values == [f"rd {i}".encode() for i in range(20)]


def test_a_kafka_connection_without_a_client_certificate_is_closed(pki, tls_broker):
    """A TLS client without a certificate: its handshake fails on the broker's side, so its first request
    (ApiVersions v0, as every Kafka client sends first) gets no answer but the connection's end."""
    host, port = tls_broker.rsplit(":", 1)
    context = ssl.create_default_context(cafile=pki["ca.pem"])
    api_versions_v0 = struct.pack(">hhih", 18, 0, 1, 4) + b"test"
    with socket.create_connection((host, int(port)), timeout=10) as raw:
        with pytest.raises((ssl.SSLError, ConnectionError)):
            with context.wrap_socket(raw, server_hostname=host) as tls:
                tls.sendall(struct.pack(">i", len(api_versions_v0)) + api_versions_v0)
                if tls.recv(4) == b"":
                    raise ConnectionError("closed by the broker")
