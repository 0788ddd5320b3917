"""Automatic topic creation (`rill broker --auto-create-topics`, Kafka's auto.create.topics.enable) with real
clients: kcat's producer (librdkafka), kafka-python's producer and the `rill` CLI's producer each create the topic
they send to with the broker's --default-partitions; a librdkafka consumer, whose Metadata requests do not allow
it, creates nothing; a broker without the switch creates nothing for any of them. On three nodes a librdkafka producer bootstrapped from one node creates a
topic with --default-replication-factor replicas on every node. Run by kafka-clients.sh."""

import os
import shutil
import subprocess
import tempfile
import time

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient
from kafka import KafkaConsumer, KafkaProducer

from conftest import running_broker
from test_kafka_cluster import CONFIG, Cluster, wait_for

RILL = os.environ["RILL_BIN"]
KCAT = shutil.which("kcat")
needs_kcat = pytest.mark.skipif(KCAT is None, reason="kcat is not installed (see kafka-clients.sh)")
DEFAULT_PARTITIONS = 3


@pytest.fixture(scope="module")
def broker():
    with tempfile.TemporaryDirectory() as data_dir, running_broker(
        data_dir, "--admin-listen", "off", "--auto-create-topics", "--default-partitions", str(DEFAULT_PARTITIONS)
    ) as addr:
        yield addr


@pytest.fixture(scope="module")
def plain_broker():
    with tempfile.TemporaryDirectory() as data_dir, running_broker(data_dir, "--admin-listen", "off") as addr:
        yield addr


def partitions_of(addr, topic):
    """The topic's partition count as a Metadata request for every topic tells it (naming the topic could create
    it: librdkafka's admin client allows that, and kafka-python 3.0's clients always do, whatever
    allow_auto_create_topics says); None when it does not exist."""
    found = AdminClient({"bootstrap.servers": addr}).list_topics(timeout=10).topics.get(topic)
    return None if found is None else len(found.partitions)


def kcat_all(addr, topic, count):
    """The values of the topic's first `count` records over every partition, as kcat reads them."""
    done = subprocess.run([KCAT, "-b", addr, "-t", topic, "-C", "-e", "-q", "-c", str(count), "-f", "%s\\n"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return sorted(done.stdout.splitlines())


@needs_kcat
def test_kcat_creates_the_topic_it_produces_to(broker):
    lines = [f"kcat {i}" for i in range(30)]
    done = subprocess.run([KCAT, "-b", broker, "-t", "kcat-made", "-P", "-K", ":"],
                          input="".join(f"k{i}:{line}\n" for i, line in enumerate(lines)), capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert partitions_of(broker, "kcat-made") == DEFAULT_PARTITIONS
    assert kcat_all(broker, "kcat-made", len(lines)) == sorted(lines)


def test_kafka_python_producer_creates_the_topic_it_sends_to(broker):
    producer = KafkaProducer(bootstrap_servers=broker)
    try:
        for i in range(10):
            producer.send("kafka-python-made", f"kp {i}".encode()).get(timeout=30)
    finally:
        producer.close()
    assert partitions_of(broker, "kafka-python-made") == DEFAULT_PARTITIONS
    consumer = KafkaConsumer("kafka-python-made", bootstrap_servers=broker, auto_offset_reset="earliest",
                             consumer_timeout_ms=10_000)
    try:
        values = sorted(record.value.decode() for _, record in zip(range(10), consumer))
    finally:
        consumer.close()
    assert values == sorted(f"kp {i}" for i in range(10))


def test_a_librdkafka_consumer_creates_nothing(broker):
    """librdkafka's consumers send Metadata with allow_auto_topic_creation false for their subscriptions (2.0 even
    with allow.auto.create.topics=true, as strace shows): the broker honours it."""
    consumer = Consumer({"bootstrap.servers": broker, "group.id": "subscriber", "auto.offset.reset": "earliest"})
    try:
        consumer.subscribe(["never-made"])
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            consumer.poll(0.2)
    finally:
        consumer.close()
    assert partitions_of(broker, "never-made") is None


def test_the_rill_cli_producer_creates_the_topic_it_produces_to(broker):
    lines = [f"rill {i}" for i in range(5)]
    done = subprocess.run([RILL, "produce", "cli-made", "--broker", broker], input="\n".join(lines) + "\n",
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert partitions_of(broker, "cli-made") == DEFAULT_PARTITIONS


@needs_kcat
def test_without_the_switch_no_client_creates_a_topic(plain_broker):
    done = subprocess.run([KCAT, "-b", plain_broker, "-t", "not-made", "-P", "-X", "message.timeout.ms=3000"],
                          input="x\n", capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "Delivery failed" in done.stderr, done.stderr
    done = subprocess.run([RILL, "produce", "not-made", "--broker", plain_broker], input="x\n",
                          capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "not-made" in done.stderr, done.stderr
    assert partitions_of(plain_broker, "not-made") is None


def brokers_listed(admin):
    """The brokers a Metadata answer lists; none while librdkafka still calls the answer partial (a node of the
    cluster just started, not yet registered), which is a reason to ask again, not a failure."""
    try:
        return len(admin.list_topics(timeout=10).brokers)
    except KafkaException as error:
        if error.args[0].code() != KafkaError._PARTIAL:
            raise
        return 0


def test_a_cluster_node_creates_the_topic_with_the_default_replication_factor():
    config = CONFIG + "auto_create_topics = true\ndefault_partitions = 2\ndefault_replication_factor = 3\n"
    with tempfile.TemporaryDirectory() as root:
        cluster = Cluster(root, config=config)
        try:
            admin = AdminClient({"bootstrap.servers": cluster.addrs[1]})
            wait_for(lambda: brokers_listed(admin) == 3, "three brokers in Metadata")
            producer = Producer({"bootstrap.servers": cluster.addrs[1], "acks": "all"})
            failures = []
            for i in range(20):
                producer.produce("cluster-made", key=f"k{i}".encode(), value=f"v{i}".encode(),
                                 on_delivery=lambda err, msg: err and failures.append(err))
            assert producer.flush(60) == 0 and not failures, failures
            for addr in cluster.addrs:
                topic = AdminClient({"bootstrap.servers": addr}).list_topics(timeout=10).topics["cluster-made"]
                assert topic.error is None and len(topic.partitions) == 2, (addr, topic.error)
                assert all(sorted(p.replicas) == [1, 2, 3] for p in topic.partitions.values())
            consumer = Consumer({"bootstrap.servers": cluster.addrs[0], "group.id": "cluster-made-reader",
                                 "auto.offset.reset": "earliest"})
            values = []
            try:
                consumer.subscribe(["cluster-made"])
                deadline = time.monotonic() + 60
                while len(values) < 20 and time.monotonic() < deadline:
                    message = consumer.poll(0.2)
                    if message is not None and message.error() is None:
                        values.append(message.value().decode())
            finally:
                consumer.close()
            assert sorted(values) == sorted(f"v{i}" for i in range(20))
        finally:
            cluster.stop()
