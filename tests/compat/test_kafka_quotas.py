"""Client quotas with librdkafka (confluent-kafka): `rill quota set` gives a client id a produce or a fetch byte
rate; librdkafka's producer and consumer are told the throttle time in the broker's answers (their `throttle_cb`
reports it), every record still arrives once and in order, and the records take at least the time the quota
allows for them. `rill quota set --ip` holds an address to a connection rate (KIP-612): the connections past it are
closed as they are accepted, and a librdkafka producer still delivers everything. `rill quota set
--request-percentage` holds a client id to a share of the broker's time (KIP-124): librdkafka is told to wait, at
most one window each time, and still delivers everything. `rill quota set --controller-mutation-rate` holds a
client id to partitions created or deleted a second (KIP-599): kafka-python's admin client (CreateTopics v7, the
strict mode) gets its first topic however large and waits out the throttle time it is told, another with the
same client id gets THROTTLING_QUOTA_EXCEEDED saying the quota, another client id is not held, and librdkafka's
(CreateTopics v4, the permissive mode) is served. The broker's quota
samples are 100 ms
(`quota_window_ms`), so a client's first burst is 1 s of its quota and the test's waits stay short."""

import os
import subprocess
import tempfile
import time

import pytest

from conftest import running_broker

RILL = os.environ["RILL_BIN"]
confluent_kafka = pytest.importorskip("confluent_kafka")

RATE = 200_000  # bytes a second
RECORD = b"q" * 10_000
RECORDS = 80  # 800 KB: 600 KB past the first burst, at least 3 s at RATE


@pytest.fixture(scope="module")
def broker():
    with tempfile.TemporaryDirectory() as data_dir:
        config = os.path.join(data_dir, "rill.toml")
        with open(config, "w") as f:
            f.write("quota_window_ms = 100\n")
        store = os.path.join(data_dir, "data")
        with running_broker(store, "--admin-listen", "off", "--config", config) as addr:
            yield addr


def rill(addr, *args):
    done = subprocess.run([RILL, *args, "--broker", addr], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_a_librdkafka_producer_past_its_quota_is_throttled_and_every_record_arrives(broker):
    rill(broker, "topic", "create", "quota-produce")
    listed = rill(broker, "quota", "set", "--client-id", "slow-producer", "--producer-byte-rate", str(RATE))
    assert "slow-producer" in listed and str(RATE) in listed, listed
    throttles, delivered, failures = [], [], []

    def on_delivery(err, msg):
        (failures if err is not None else delivered).append(err or msg.offset())

    producer = confluent_kafka.Producer(
        {
            "bootstrap.servers": broker,
            "client.id": "slow-producer",
            "linger.ms": 5,
            "throttle_cb": lambda event: throttles.append(event.throttle_time),
        }
    )
    started = time.monotonic()
    # In rounds of 100 KB, each flushed: a produce past the quota is appended and answered at once, and the
    # client is held before its next one.
    for _ in range(RECORDS // 10):
        for _ in range(10):
            producer.produce("quota-produce", value=RECORD, partition=0, on_delivery=on_delivery)
        assert producer.flush(60) == 0, "every record delivered or failed in time"
    took = time.monotonic() - started
    assert failures == [], failures[:3]
    assert delivered == list(range(RECORDS))
    assert throttles and max(throttles) > 0, f"no throttle reported: {throttles}"
    assert took >= 2.0, f"{RECORDS} records of {len(RECORD)} bytes in {took:.2f} s under a {RATE} B/s quota"
    listing = rill(broker, "quota", "list")
    assert "slow-producer" in listing, listing


def test_a_librdkafka_consumer_past_its_quota_is_throttled_and_reads_every_record_in_order(broker):
    rill(broker, "topic", "create", "quota-fetch")
    producer = confluent_kafka.Producer({"bootstrap.servers": broker, "client.id": "free-producer"})
    # One batch a record: the consumer's fetches (at most 100 KB a partition) then take a few at a time.
    for _ in range(RECORDS):
        producer.produce("quota-fetch", value=RECORD, partition=0)
        assert producer.flush(30) == 0
    rill(broker, "quota", "set", "--client-id", "slow-consumer", "--consumer-byte-rate", str(RATE))
    throttles, offsets = [], []
    consumer = confluent_kafka.Consumer(
        {
            "bootstrap.servers": broker,
            "client.id": "slow-consumer",
            "group.id": "quota-readers",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "max.partition.fetch.bytes": 100_000,
            "throttle_cb": lambda event: throttles.append(event.throttle_time),
        }
    )
    started = time.monotonic()
    try:
        consumer.assign([confluent_kafka.TopicPartition("quota-fetch", 0, 0)])
        deadline = started + 60
        while len(offsets) < RECORDS and time.monotonic() < deadline:
            message = consumer.poll(0.2)
            if message is not None and message.error() is None:
                offsets.append(message.offset())
    finally:
        consumer.close()
    took = time.monotonic() - started
    assert offsets == list(range(RECORDS)), "each record once, in order"
    assert throttles and max(throttles) > 0, f"no throttle reported: {throttles}"
    assert took >= 2.0, f"{RECORDS} records of {len(RECORD)} bytes read in {took:.2f} s under a {RATE} B/s quota"


def test_a_librdkafka_producer_past_its_request_percentage_is_throttled_and_every_record_arrives(broker):
    rill(broker, "topic", "create", "quota-requests")
    listed = rill(broker, "quota", "set", "--client-id", "busy-producer", "--request-percentage", "1")
    assert "busy-producer" in listed, listed
    throttles, delivered, failures = [], [], []

    def on_delivery(err, msg):
        (failures if err is not None else delivered).append(err or msg.offset())

    producer = confluent_kafka.Producer(
        {
            "bootstrap.servers": broker,
            "client.id": "busy-producer",
            "linger.ms": 0,
            "throttle_cb": lambda event: throttles.append(event.throttle_time),
        }
    )
    # A request a record: 1% of a thread (10 ms of handling a second) runs out after some hundreds of them.
    sent, deadline = 0, time.monotonic() + 60
    while not throttles and time.monotonic() < deadline:
        producer.produce("quota-requests", value=b"r", partition=0, on_delivery=on_delivery)
        assert producer.flush(30) == 0, "every record delivered or failed in time"
        sent += 1
    assert throttles, f"no throttle reported after {sent} produce requests"
    for _ in range(20):
        producer.produce("quota-requests", value=b"r", partition=0, on_delivery=on_delivery)
        assert producer.flush(30) == 0
    assert failures == [], failures[:3]
    assert delivered == list(range(sent + 20)), "each record once, in order"
    # librdkafka reports the throttle in seconds; a request quota holds a client at most one window (100 ms).
    assert 0 < max(throttles) <= 0.1, throttles
    rill(broker, "quota", "remove", "--client-id", "busy-producer")


def test_an_addresss_connections_past_its_connection_rate_are_closed_and_librdkafka_reconnects():
    import socket

    with tempfile.TemporaryDirectory() as data_dir, running_broker(data_dir, "--admin-listen", "off") as broker:
        rill(broker, "topic", "create", "quota-connections")
        listed = rill(broker, "quota", "set", "--ip", "127.0.0.1", "--connection-creation-rate", "3")
        assert "127.0.0.1" in listed and "CONNECTIONS/S" in listed, listed
        host, port = broker.rsplit(":", 1)
        # A second's worth (3) stay open; the rest are closed as they are accepted, before a byte is read.
        sockets = [socket.create_connection((host, int(port)), timeout=5) for _ in range(6)]
        closed = []
        for sock in sockets:
            sock.settimeout(1)
            try:
                closed.append(sock.recv(1) == b"")
            except socket.timeout:
                closed.append(False)
            except ConnectionResetError:
                closed.append(True)
        for sock in sockets:
            sock.close()
        assert closed.count(False) == 3 and closed[:3] == [False] * 3, closed
        # A producer from an address held to one connection a second: a connection it opens past that is closed,
        # it reconnects after its backoff, and every record arrives.
        time.sleep(1.5)
        rill(broker, "quota", "set", "--ip", "127.0.0.1", "--connection-creation-rate", "1")
        time.sleep(1.5)
        delivered = []
        producer = confluent_kafka.Producer({"bootstrap.servers": broker, "reconnect.backoff.ms": 200,
                                             "message.timeout.ms": 30000})
        for i in range(20):
            producer.produce("quota-connections", value=f"r{i}".encode(), partition=0,
                             on_delivery=lambda err, msg: delivered.append(err))
        assert producer.flush(60) == 0
        assert delivered == [None] * 20, delivered[:3]
        time.sleep(1.5)
        listing = rill(broker, "quota", "list")
        assert "127.0.0.1" in listing, listing
        time.sleep(1.5)
        rill(broker, "quota", "remove", "--ip", "127.0.0.1")
        # Removed: connections come at any rate again.
        for _ in range(10):
            with socket.create_connection((host, int(port)), timeout=5) as sock:
                sock.settimeout(0.3)
                try:
                    assert sock.recv(1) != b"", "closed though the quota is removed"
                except socket.timeout:
                    pass


def test_admin_clients_past_their_controller_mutation_rate_are_refused_in_strict_versions_only(broker):
    from kafka import KafkaAdminClient
    from kafka.errors import ThrottlingQuotaExceededError
    listed = rill(broker, "quota", "set", "--client-id", "provisioner", "--controller-mutation-rate", "2")
    assert "provisioner" in listed, listed
    first = KafkaAdminClient(bootstrap_servers=broker, client_id="provisioner")
    second = KafkaAdminClient(bootstrap_servers=broker, client_id="provisioner")
    other = KafkaAdminClient(bootstrap_servers=broker, client_id="someone-else")
    try:
        # The first topic goes whatever its size; the client id is then 30 partitions past a rate of 2 a second.
        first.create_topics({"mutations-first": {"num_partitions": 30, "replication_factor": 1}})
        # kafka-python honours the answer's throttle time (it sends nothing on that connection until then), so
        # the refusal is seen by another admin client with the same client id: another worker of the same script.
        with pytest.raises(ThrottlingQuotaExceededError) as refused:
            second.create_topics({"mutations-second": {"num_partitions": 1, "replication_factor": 1}})
        assert "controller_mutation_rate quota of 2 partitions a second" in str(refused.value), refused.value
        other.create_topics({"mutations-other": {"num_partitions": 5, "replication_factor": 1}})
    finally:
        for admin in (first, second, other):
            admin.close()
    # librdkafka asks CreateTopics v4 at most: Kafka's permissive versions, served however far past the rate.
    from confluent_kafka.admin import AdminClient, NewTopic
    admin = AdminClient({"bootstrap.servers": broker, "client.id": "provisioner"})
    futures = admin.create_topics([NewTopic("mutations-permissive", 1, 1)])
    assert futures["mutations-permissive"].result(timeout=30) is None
    topics = rill(broker, "topic", "list")
    assert "mutations-first" in topics and "mutations-permissive" in topics and "mutations-second" not in topics, topics
