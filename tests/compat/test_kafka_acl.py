"""Kafka clients against ACLs: a `rill broker --authorization on` with SASL (SCRAM-SHA-256 over SASL_PLAINTEXT),
its users made with `rill user create` and their ACLs with `rill acl add` by a super user. librdkafka
(confluent-kafka) produces and consumes where its ACLs allow, and gets TOPIC_AUTHORIZATION_FAILED and
GROUP_AUTHORIZATION_FAILED where they do not; Metadata lists only the topics a principal may describe. Run by
kafka-clients.sh."""

import os
import subprocess
import tempfile

import pytest
from confluent_kafka import Consumer, KafkaError, Producer
from confluent_kafka.admin import AdminClient

from conftest import read_values, running_broker

RILL = os.environ["RILL_BIN"]
PASSWORD = "correct horse battery staple"
SASL = ["--kafka-sasl-mechanisms", "SCRAM-SHA-256", "--admin-listen", "off"]


def rill(addr, *args, token=None, stdin=None):
    prefix = ["--token", token] if token else []
    done = subprocess.run([RILL, *prefix, *args, "--broker", addr], input=stdin, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def acl_broker():
    """The broker's address, after users admin (a super user), app and stranger were made and app was granted
    WRITE and READ on topics `acl-ok*` and READ on groups `acl-app*`."""
    with tempfile.TemporaryDirectory() as data_dir:
        with running_broker(data_dir, *SASL) as addr:
            admin = rill(addr, "user", "create", "admin", "--password-stdin", "--token", stdin=PASSWORD + "\n").strip()
            for user in ["app", "stranger"]:
                rill(addr, "user", "create", user, "--password-stdin", stdin=PASSWORD + "\n")
        with running_broker(data_dir, *SASL, "--authorization", "on", "--super-users", "User:admin") as addr:
            for topic in ["acl-ok", "acl-secret"]:
                rill(addr, "topic", "create", topic, token=admin)
            rill(addr, "acl", "add", "--allow", "--principal", "User:app", "--operation", "write", "--operation",
                 "read", "--topic", "acl-ok", "--prefixed", token=admin)
            rill(addr, "acl", "add", "--allow", "--principal", "User:app", "--operation", "read", "--group",
                 "acl-app", "--prefixed", token=admin)
            yield addr


def settings(addr, user):
    return {"bootstrap.servers": addr, "security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "SCRAM-SHA-256",
            "sasl.username": user, "sasl.password": PASSWORD}


def produce(addr, user, topic, count=3):
    producer = Producer({**settings(addr, user), "acks": "all", "message.timeout.ms": 10000})
    delivered = []
    for i in range(count):
        producer.produce(topic, value=f"{user} {i}".encode(), partition=0,
                         on_delivery=lambda err, msg: delivered.append(err.code() if err else None))
    producer.flush(30)
    return delivered


def test_librdkafka_produces_and_consumes_where_its_acls_allow(acl_broker):
    assert produce(acl_broker, "app", "acl-ok") == [None, None, None]
    consumer = Consumer({**settings(acl_broker, "app"), "group.id": "acl-app-1", "auto.offset.reset": "earliest",
                         "enable.auto.commit": False})
    assert read_values(consumer, "acl-ok", 3) == [b"app 0", b"app 1", b"app 2"]


def test_a_produce_without_write_fails_with_topic_authorization_failed(acl_broker):
    assert produce(acl_broker, "app", "acl-secret", 1) == [KafkaError.TOPIC_AUTHORIZATION_FAILED]
    assert produce(acl_broker, "stranger", "acl-ok", 1) == [KafkaError.TOPIC_AUTHORIZATION_FAILED]


def first_error(consumer, topic, polls=150):
    """Subscribes and returns the code of the first error `consumer` reports; closes it."""
    try:
        consumer.subscribe([topic])
        for _ in range(polls):
            message = consumer.poll(0.1)
            if message is not None and message.error() is not None:
                return message.error().code()
    finally:
        consumer.close()
    return None


def test_a_consumer_without_read_on_its_group_or_topic_is_refused(acl_broker):
    other_group = Consumer({**settings(acl_broker, "app"), "group.id": "elsewhere", "auto.offset.reset": "earliest"})
    assert first_error(other_group, "acl-ok") == KafkaError.GROUP_AUTHORIZATION_FAILED
    secret_topic = Consumer({**settings(acl_broker, "app"), "group.id": "acl-app-2", "auto.offset.reset": "earliest"})
    assert first_error(secret_topic, "acl-secret") == KafkaError.TOPIC_AUTHORIZATION_FAILED


def test_metadata_lists_only_the_topics_a_principal_may_describe(acl_broker):
    seen_by_app = set(AdminClient(settings(acl_broker, "app")).list_topics(timeout=10).topics)
    assert "acl-ok" in seen_by_app and "acl-secret" not in seen_by_app, seen_by_app
    seen_by_admin = set(AdminClient(settings(acl_broker, "admin")).list_topics(timeout=10).topics)
    assert {"acl-ok", "acl-secret"} <= seen_by_admin, seen_by_admin
