"""Real Kafka clients against rill's Kafka listener: kafka-python's producer and consumer with every codec,
kcat and the `rill` CLI reading each other's records, kafka-python's incremental fetch sessions (KIP-227), lookups by timestamp and of the largest timestamp
(confluent-kafka's list_offsets), and kafka-python's describe_log_dirs. Run by kafka-clients.sh."""

import itertools
import os
import shutil
import subprocess
import tempfile
import time

import pytest
from confluent_kafka import Producer
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from conftest import running_broker

RILL = os.environ["RILL_BIN"]
KCAT = shutil.which("kcat")
topic_names = (f"kafka-clients-{n}" for n in itertools.count())
needs_kcat = pytest.mark.skipif(KCAT is None, reason="kcat is not installed (see kafka-clients.sh)")


@pytest.fixture(scope="module")
def broker(broker_addr):
    return broker_addr


def rill(addr, *args, stdin=None):
    done = subprocess.run(
        [RILL, *args, "--broker", addr], input=stdin, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def new_topic(addr):
    name = next(topic_names)
    rill(addr, "topic", "create", name)
    return name


def consume_all(addr, topic, count, **options):
    """Every record of partition 0 from offset 0, read by kafka-python's consumer (assign and seek, no group)."""
    consumer = KafkaConsumer(bootstrap_servers=addr, enable_auto_commit=False, consumer_timeout_ms=10_000, **options)
    try:
        partition = TopicPartition(topic, 0)
        consumer.assign([partition])
        consumer.seek(partition, 0)
        records = []
        for record in consumer:
            records.append(record)
            if len(records) == count:
                break
        return records
    finally:
        consumer.close()


@pytest.mark.parametrize("codec", [None, "gzip", "snappy", "lz4", "zstd"])
def test_kafka_python_produces_and_consumes_with_every_codec(broker, codec):
    topic = new_topic(broker)
    producer = KafkaProducer(bootstrap_servers=broker, compression_type=codec, acks="all", enable_idempotence=False)
    try:
        futures = [producer.send(topic, key=f"k{i}".encode(), value=f"value {i} {codec}".encode() * 20, partition=0)
                   for i in range(50)]
        producer.flush(timeout=30)
        offsets = [future.get(timeout=30).offset for future in futures]
    finally:
        producer.close(timeout=10)
    assert offsets == list(range(50))
    records = consume_all(broker, topic, 50)
    assert [r.offset for r in records] == list(range(50))
    assert [r.value for r in records] == [f"value {i} {codec}".encode() * 20 for i in range(50)]
    assert records[7].key == b"k7"
    # rill's own CLI reads what the Kafka client wrote.
    assert rill(broker, "consume", topic).splitlines()[3] == f"value 3 {codec}" * 20


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
def test_large_batches_that_inflate_many_times_their_size_are_read_by_every_reader(broker, codec):
    # librdkafka lingers 3000 JSON-like records into batches of hundreds of KB that compress 5 to 10 times: the
    # broker checks each (it inflates it), and rill's CLI (a fresh process, nothing decompressed before) and
    # kafka-python read every record back. gzip batches past 4 times their size were refused by a first
    # inflate into a small buffer once.
    topic = new_topic(broker)
    values = [f'{{"order": {i % 700}, "status": "paid", "amount": {i % 97}}}' for i in range(3000)]
    producer = Producer({"bootstrap.servers": broker, "compression.type": codec, "linger.ms": 200,
                         "batch.size": 1 << 20, "enable.idempotence": True})
    for value in values:
        producer.produce(topic, value=value.encode(), partition=0)
    assert producer.flush(30) == 0
    assert rill(broker, "consume", topic, "--from-beginning", "--max-messages", "3000").splitlines() == values
    assert [r.value.decode() for r in consume_all(broker, topic, 3000)] == values


def test_kafka_python_reads_many_partitions_through_an_incremental_fetch_session(broker):
    # kafka-python (3.x) opens a fetch session (KIP-227) and then sends only what changed: every record of twelve
    # partitions, some produced while it reads, arrives once and in order, with the session still open.
    topic = next(topic_names)
    rill(broker, "topic", "create", topic, "--partitions", "12")
    producer = KafkaProducer(bootstrap_servers=broker, acks="all", enable_idempotence=False)
    consumer = KafkaConsumer(bootstrap_servers=broker, enable_auto_commit=False, fetch_max_wait_ms=100)
    try:
        partitions = [TopicPartition(topic, p) for p in range(12)]
        consumer.assign(partitions)
        consumer.seek_to_beginning()
        expected = {p: [] for p in range(12)}

        def send(round_):
            for p in range(12):
                if round_ == 0 or p % 4 == round_ % 4:
                    value = f"{p}-{round_}".encode()
                    producer.send(topic, value=value, partition=p)
                    expected[p].append(value)
            producer.flush(timeout=30)

        send(0)
        read = {p: [] for p in range(12)}
        for round_ in range(1, 6):
            deadline = time.monotonic() + 30
            while sum(map(len, read.values())) < sum(map(len, expected.values())) and time.monotonic() < deadline:
                for partition, records in consumer.poll(timeout_ms=200).items():
                    read[partition.partition].extend(r.value for r in records)
            # A few idle polls: incremental fetches with nothing to answer.
            for _ in range(3):
                assert consumer.poll(timeout_ms=150) == {}
            send(round_)
        deadline = time.monotonic() + 30
        while sum(map(len, read.values())) < sum(map(len, expected.values())) and time.monotonic() < deadline:
            for partition, records in consumer.poll(timeout_ms=200).items():
                read[partition.partition].extend(r.value for r in records)
        assert read == expected
        # The client's own view of its session with the broker: opened (an id), and moved on by incremental fetches.
        sessions = [handler.next_metadata for handler in consumer._fetcher._session_handlers.values()]
        assert any(meta.session_id != 0 and meta.epoch > 5 for meta in sessions), sessions
    finally:
        consumer.close()
        producer.close(timeout=10)


def test_consumer_finds_records_by_timestamp(broker):
    topic = new_topic(broker)
    producer = KafkaProducer(bootstrap_servers=broker, enable_idempotence=False)
    try:
        for i in range(5):
            producer.send(topic, value=f"at {i}".encode(), partition=0, timestamp_ms=1_700_000_000_000 + 1_000 * i)
        producer.flush(timeout=30)
    finally:
        producer.close(timeout=10)
    consumer = KafkaConsumer(bootstrap_servers=broker, enable_auto_commit=False)
    try:
        partition = TopicPartition(topic, 0)
        found = consumer.offsets_for_times({partition: 1_700_000_002_500})
        assert found[partition].offset == 3
        assert consumer.offsets_for_times({partition: 1_800_000_000_000})[partition] is None
        assert consumer.beginning_offsets([partition]) == {partition: 0}
        assert consumer.end_offsets([partition]) == {partition: 5}
    finally:
        consumer.close()


@needs_kcat
def test_kcat_produces_and_rill_consumes(broker):
    topic = new_topic(broker)
    lines = [f"from kcat {i}" for i in range(20)]
    done = subprocess.run(
        [KCAT, "-b", broker, "-t", topic, "-p", "0", "-P", "-X", "enable.idempotence=false"],
        input="\n".join(lines) + "\n", capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert rill(broker, "consume", topic).splitlines() == lines


@needs_kcat
def test_rill_produces_and_kcat_consumes(broker):
    topic = new_topic(broker)
    lines = [f"from rill {i}" for i in range(20)]
    rill(broker, "produce", topic, stdin="\n".join(lines) + "\n")
    done = subprocess.run(
        [KCAT, "-b", broker, "-t", topic, "-C", "-e", "-q", "-f", "%s\\n"],
        capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == lines


class RestartableBroker:
    """A `rill broker` process on a fixed free port and data dir, so it can be SIGKILLed and started again where
    clients expect it."""

    def __init__(self, data_dir):
        import socket

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.addr = f"127.0.0.1:{probe.getsockname()[1]}"
        self.data_dir = data_dir
        self.process = None
        self.start()

    def start(self):
        import time

        deadline = time.monotonic() + 30
        while True:
            process = subprocess.Popen(
                [RILL, "broker", "--listen", self.addr, "--admin-listen", "127.0.0.1:0", "--data-dir", self.data_dir],
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                env={**os.environ, "RUST_LOG": "error"},
                text=True,
            )
            if process.stdout.readline().startswith("rill broker listening on "):
                self.process = process
                return
            process.kill()
            process.wait(timeout=30)
            # The killed broker's socket may linger a moment.
            assert time.monotonic() < deadline, f"no broker could start on {self.addr}"
            time.sleep(0.05)

    def kill(self):
        self.process.kill()
        self.process.wait(timeout=30)


@pytest.fixture
def restartable_broker():
    import tempfile

    with tempfile.TemporaryDirectory() as data_dir:
        broker = RestartableBroker(data_dir)
        try:
            yield broker
        finally:
            broker.kill()


def assert_each_once_in_order(addr, topic, count):
    values = [int(record.value) for record in consume_all(addr, topic, count + 1)]
    assert values == list(range(count)), f"{len(values)} records: not 0..{count} once each, in order"


def test_kafka_python_idempotent_producer_through_a_broker_kill(restartable_broker):
    """kafka-python's idempotent producer (InitProducerId, sequences) sends while the broker is SIGKILLed and
    restarted: every record is stored once, in order, with no gap."""
    broker = restartable_broker
    topic = new_topic(broker.addr)
    producer = KafkaProducer(
        bootstrap_servers=broker.addr,
        enable_idempotence=True,
        acks="all",
        linger_ms=2,
        request_timeout_ms=5_000,
        retry_backoff_ms=50,
        reconnect_backoff_ms=50,
    )
    futures = [producer.send(topic, value=str(i).encode(), partition=0) for i in range(2_000)]
    producer.flush(timeout=30)
    futures.extend(producer.send(topic, value=str(i).encode(), partition=0) for i in range(2_000, 4_000))
    broker.kill()
    broker.start()
    futures.extend(producer.send(topic, value=str(i).encode(), partition=0) for i in range(4_000, 6_000))
    producer.flush(timeout=60)
    offsets = [future.get(timeout=60).offset for future in futures]
    producer.close()
    assert offsets == list(range(6_000)), "each record acknowledged at its own offset"
    assert_each_once_in_order(broker.addr, topic, 6_000)


def test_confluent_kafka_idempotent_producer_through_a_broker_kill(restartable_broker):
    """librdkafka (confluent-kafka) with enable.idempotence=true, through a SIGKILL and restart of the broker:
    every record delivered and stored once, in order, with no gap."""
    confluent_kafka = pytest.importorskip("confluent_kafka")
    broker = restartable_broker
    topic = new_topic(broker.addr)
    delivered = []
    failures = []

    def on_delivery(err, msg):
        if err is not None:
            failures.append(err)
        else:
            delivered.append(msg.offset())

    producer = confluent_kafka.Producer(
        {
            "bootstrap.servers": broker.addr,
            "enable.idempotence": True,
            "linger.ms": 2,
            "message.timeout.ms": 60_000,
            "retry.backoff.ms": 50,
            "reconnect.backoff.ms": 50,
            "reconnect.backoff.max.ms": 200,
        }
    )

    def send(values):
        for i in values:
            producer.produce(topic, value=str(i).encode(), partition=0, on_delivery=on_delivery)
            producer.poll(0)

    send(range(2_000))
    producer.flush(30)
    send(range(2_000, 4_000))
    broker.kill()
    broker.start()
    send(range(4_000, 6_000))
    assert producer.flush(60) == 0, "every record delivered or failed in time"
    assert failures == [], failures[:3]
    assert sorted(delivered) == list(range(6_000))
    assert_each_once_in_order(broker.addr, topic, 6_000)


def test_kafka_python_admin_creates_describes_grows_and_deletes_topics(broker):
    from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient, NewPartitions, NewTopic
    from kafka.errors import InvalidConfigurationError, TopicAlreadyExistsError

    admin = KafkaAdminClient(bootstrap_servers=broker)
    name = next(topic_names)
    try:
        configs = {"retention.ms": "3600000", "segment.bytes": str(16 << 20)}
        admin.create_topics([NewTopic(name, num_partitions=3, replication_factor=1, topic_configs=configs)])
        assert name in admin.list_topics()
        assert len(admin.describe_topics([name])[0]["partitions"]) == 3
        assert name in rill(broker, "topic", "list"), "rill sees the topic a Kafka client created"
        described = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, name)])
        values = {key: entry["value"] for key, entry in next(iter(described.values()))[name].items()}
        # kafka-python asks for the configs set on the topic (not the broker's defaults): exactly these two.
        assert values == {"retention.ms": "3600000", "segment.bytes": str(16 << 20)}
        with pytest.raises(TopicAlreadyExistsError):
            admin.create_topics([NewTopic(name, num_partitions=1, replication_factor=1)])
        with pytest.raises(InvalidConfigurationError):
            admin.create_topics([NewTopic(next(topic_names), 1, 1, topic_configs={"cleanup.policy": "shrink"})])
        admin.create_partitions({name: NewPartitions(total_count=5)})
        assert len(admin.describe_topics([name])[0]["partitions"]) == 5
        validated = next(topic_names)
        admin.create_topics([NewTopic(validated, num_partitions=2, replication_factor=1)], validate_only=True)
        assert validated not in admin.list_topics(), "validate_only creates nothing"
        admin.delete_topics([name])
        assert name not in admin.list_topics()
    finally:
        admin.close()


def test_kafka_python_describes_topic_partitions_a_page_at_a_time(broker):
    """DescribeTopicPartitions (KIP-966), which Java's AdminClient describes topics with from Kafka 3.8."""
    from kafka.admin import KafkaAdminClient, NewTopic

    admin = KafkaAdminClient(bootstrap_servers=broker)
    names = sorted(next(topic_names) for _ in range(2))
    try:
        admin.create_topics([NewTopic(names[0], 3, 1), NewTopic(names[1], 2, 1)])
        shown = lambda page: [(t["name"], t["error_code"], [p["partition_index"] for p in t["partitions"]])
                              for t in page["topics"]]
        first = admin.describe_topic_partitions(names, response_partition_limit=4)
        assert shown(first) == [(names[0], 0, [0, 1, 2]), (names[1], 0, [0])], first
        assert first["next_cursor"] == {"topic_name": names[1], "partition_index": 1}, first
        rest = admin.describe_topic_partitions(names, cursor=first["next_cursor"])
        assert shown(rest) == [(names[1], 0, [1])] and rest["next_cursor"] is None, rest
        # The same leaders and replicas as Metadata gives (describe_topics), and the topic's id.
        described = {(t["name"], p["partition_index"]): p for t in admin.describe_topics(names) for p in t["partitions"]}
        for topic in first["topics"]:
            for partition in topic["partitions"]:
                metadata = described[(topic["name"], partition["partition_index"])]
                assert partition["leader_id"] == metadata["leader_id"], (partition, metadata)
                assert partition["isr_nodes"] == metadata["isr_nodes"] == [metadata["leader_id"]], partition
            assert topic["topic_id"] is not None and not topic["is_internal"], topic
        missing = admin.describe_topic_partitions([names[0] + "-missing"])
        assert shown(missing) == [(names[0] + "-missing", 3, [])], missing
    finally:
        admin.delete_topics(names)
        admin.close()


def test_confluent_kafka_admin_creates_and_deletes_topics_and_describes_the_cluster(broker):
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": broker})
    name = next(topic_names)
    futures = admin.create_topics([NewTopic(name, num_partitions=2, replication_factor=1,
                                            config={"retention.bytes": "-1"})])
    futures[name].result(timeout=30)
    assert len(admin.list_topics(timeout=30).topics[name].partitions) == 2
    cluster = admin.describe_cluster().result(timeout=30)
    host, port = broker.rsplit(":", 1)
    assert [(node.host, node.port) for node in cluster.nodes] == [(host, int(port))]
    admin.delete_topics([name])[name].result(timeout=30)
    assert name not in admin.list_topics(timeout=30).topics


def topic_setting(addr, topic, name):
    """The value of one setting in `rill topic describe`'s settings table."""
    for line in rill(addr, "topic", "describe", topic).splitlines():
        words = line.split()
        if words and words[0] == name:
            return words[1]
    raise AssertionError(f"{name} missing from rill topic describe {topic}")


def test_confluent_kafka_creates_a_topic_with_segments_smaller_than_the_brokers_largest_batch(broker):
    from confluent_kafka.admin import AdminClient, ConfigResource, ConfigSource, NewTopic, ResourceType

    admin = AdminClient({"bootstrap.servers": broker})
    name = f"small-segments-{os.getpid()}"
    # 1 MiB, Kafka's smallest segment.bytes and a common choice in tests; the broker's max batch is 8 MiB.
    created = admin.create_topics([NewTopic(name, 1, 1, config={"segment.bytes": "1048576"})])
    created[name].result(timeout=30)
    resource = ConfigResource(ResourceType.TOPIC, name)
    configs = admin.describe_configs([resource])[resource].result(timeout=30)
    assert configs["segment.bytes"].value == "1048576"
    assert configs["max.message.bytes"].value == "1048576", "a batch must fit in a segment"
    assert configs["max.message.bytes"].source == ConfigSource.DEFAULT_CONFIG.value, "the topic did not set it"


def test_confluent_kafka_incremental_alter_configs_changes_a_live_topic(broker):
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import (AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, ConfigSource,
                                       ResourceType)

    admin = AdminClient({"bootstrap.servers": broker})
    name = new_topic(broker)

    def alter(*entries, validate_only=False):
        resource = ConfigResource(ResourceType.TOPIC, name, incremental_configs=list(entries))
        return admin.incremental_alter_configs([resource], validate_only=validate_only)[resource].result(timeout=30)

    def described():
        resource = ConfigResource(ResourceType.TOPIC, name)
        return admin.describe_configs([resource])[resource].result(timeout=30)

    alter(ConfigEntry("retention.ms", "3600000", incremental_operation=AlterConfigOpType.SET), validate_only=True)
    assert topic_setting(broker, name, "retention_ms") == "604800000", "validate_only changes nothing"
    alter(ConfigEntry("retention.ms", "3600000", incremental_operation=AlterConfigOpType.SET),
          ConfigEntry("max.message.bytes", "65536", incremental_operation=AlterConfigOpType.SET))
    assert topic_setting(broker, name, "retention_ms") == "3600000", "rill sees what a Kafka client altered"
    configs = described()
    assert configs["retention.ms"].value == "3600000"
    assert configs["retention.ms"].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    assert configs["max.message.bytes"].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    assert configs["segment.bytes"].source == ConfigSource.DEFAULT_CONFIG.value
    # DELETE puts the broker's default back; the other key stays.
    alter(ConfigEntry("retention.ms", None, incremental_operation=AlterConfigOpType.DELETE))
    configs = described()
    assert configs["retention.ms"].source == ConfigSource.DEFAULT_CONFIG.value
    assert configs["max.message.bytes"].value == "65536"
    # A bad value refuses the whole resource with INVALID_CONFIG, naming the key; APPEND of a key that is not a
    # list is refused.
    with pytest.raises(KafkaException) as bad:
        alter(ConfigEntry("retention.bytes", "-5", incremental_operation=AlterConfigOpType.SET),
              ConfigEntry("segment.bytes", "4194304", incremental_operation=AlterConfigOpType.SET))
    assert bad.value.args[0].name() == "INVALID_CONFIG" and "retention.bytes" in bad.value.args[0].str()
    assert topic_setting(broker, name, "segment_bytes") != "4194304", "nothing of a refused change applies"
    with pytest.raises(KafkaException) as appended:
        alter(ConfigEntry("max.message.bytes", "1", incremental_operation=AlterConfigOpType.APPEND))
    assert appended.value.args[0].name() == "INVALID_CONFIG" and "not a list" in appended.value.args[0].str()
    missing = ConfigResource(ResourceType.TOPIC, "no-such-topic", incremental_configs=[
        ConfigEntry("retention.ms", "1", incremental_operation=AlterConfigOpType.SET)])
    with pytest.raises(KafkaException) as unknown:
        admin.incremental_alter_configs([missing])[missing].result(timeout=30)
    assert unknown.value.args[0].name() == "UNKNOWN_TOPIC_OR_PART"


def test_kafka_python_alter_configs_changes_a_topics_settings(broker):
    from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=broker)
    name = new_topic(broker)

    def alter(configs, incremental=None):
        # kafka-python 3 answers {resource type: {name: 'OK' or the error}}, without raising.
        resource = ConfigResource(ConfigResourceType.TOPIC, name, configs=configs)
        return admin.alter_configs([resource], incremental=incremental)["topic"][name]

    try:
        # IncrementalAlterConfigs, which kafka-python picks when the broker offers it.
        assert alter({"segment.bytes": "16777216"}) == "OK"
        assert topic_setting(broker, name, "segment_bytes") == "16777216"
        # AlterConfigs replaces the topic's whole set; kafka-python carries the other altered keys over itself.
        assert alter({"retention.bytes": "1048576"}, incremental=False) == "OK"
        assert topic_setting(broker, name, "retention_bytes") == "1048576"
        assert topic_setting(broker, name, "segment_bytes") == "16777216"
        # A segment below the broker's largest batch takes a max.message.bytes the topic does not set down with
        # it (Kafka takes such segments). One the topic sets stays, and a segment below it is refused, naming
        # both (INVALID_CONFIG).
        assert alter({"segment.bytes": "4194304"}) == "OK"
        assert topic_setting(broker, name, "max_batch_bytes") == "4194304"
        assert alter({"max.message.bytes": "2097152"}) == "OK"
        refused = alter({"segment.bytes": "1048576"})
        assert "Error 40" in refused and "max.message.bytes" in refused, refused
        refused = alter({"min.insync.replicas": "2"})
        assert "Error 40" in refused and "replication factor, 1" in refused, refused
        assert topic_setting(broker, name, "segment_bytes") == "4194304", "nothing of a refused change applies"
    finally:
        admin.close()


def test_confluent_kafka_delete_records_moves_where_earliest_consumers_start(broker):
    from confluent_kafka import Consumer, KafkaException, TopicPartition as Partition
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": broker})
    name = new_topic(broker)
    rill(broker, "produce", name, "--partition", "0", stdin="".join(f"v{i}\n" for i in range(100)))

    deleted = admin.delete_records([Partition(name, 0, 40)], operation_timeout=30, request_timeout=30)
    (result,) = deleted.values()
    assert result.result(timeout=30).low_watermark == 40
    consumer = Consumer({"bootstrap.servers": broker, "group.id": f"{name}-earliest",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    try:
        low, high = consumer.get_watermark_offsets(Partition(name, 0), timeout=30)
        assert (low, high) == (40, 100)
        consumer.assign([Partition(name, 0)])
        first = None
        while first is None:
            message = consumer.poll(10)
            assert message is not None, "no record within 10 s"
            if message.error() is None:
                first = message
        assert (first.offset(), first.value()) == (40, b"v40")
    finally:
        consumer.close()
    # Past the high watermark: OFFSET_OUT_OF_RANGE for that partition, nothing moved.
    beyond = admin.delete_records([Partition(name, 0, 500)], operation_timeout=30, request_timeout=30)
    with pytest.raises(KafkaException) as refused:
        next(iter(beyond.values())).result(timeout=30)
    assert refused.value.args[0].name() == "OFFSET_OUT_OF_RANGE"
    lines = rill(broker, "topic", "describe", name).splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("PARTITION"))
    assert lines[header + 1].split()[:2] == ["0", "40"], "rill describes the start a Kafka client moved"


def test_kafka_python_delete_records_answers_the_low_watermark(broker):
    from kafka import KafkaAdminClient

    name = new_topic(broker)
    rill(broker, "produce", name, "--partition", "0", stdin="".join(f"v{i}\n" for i in range(10)))
    admin = KafkaAdminClient(bootstrap_servers=broker)
    try:
        answered = admin.delete_records({TopicPartition(name, 0): 7})
        assert answered[TopicPartition(name, 0)]["low_watermark"] == 7
    finally:
        admin.close()
    records = consume_all(broker, name, 3, auto_offset_reset="earliest")
    assert [r.offset for r in records] == [7, 8, 9]


def produce_at(addr, topic, timestamps):
    """Records to partition 0 of `topic` with these CreateTime timestamps, in order; their offsets."""
    producer = KafkaProducer(bootstrap_servers=addr, enable_idempotence=False, linger_ms=0)
    try:
        futures = [producer.send(topic, value=f"at {ts}".encode(), partition=0, timestamp_ms=ts) for ts in timestamps]
        producer.flush(timeout=30)
        return [future.get(timeout=30).offset for future in futures]
    finally:
        producer.close(timeout=10)


def test_kafka_python_describes_log_dirs_with_each_partitions_bytes():
    from kafka.admin import KafkaAdminClient

    with tempfile.TemporaryDirectory() as data_dir, running_broker(data_dir) as addr:
        topic = next(topic_names)
        rill(addr, "topic", "create", topic, "--partitions", "2")
        other = new_topic(addr)
        admin = KafkaAdminClient(bootstrap_servers=addr)

        def sizes(asked=None):
            [answer] = admin.describe_log_dirs(asked)
            [log_dir] = answer["log_dirs"]
            assert log_dir["error_code"] == 0, log_dir
            assert log_dir["log_dir"] == os.path.abspath(data_dir), "the data dir, by its absolute path"
            assert 0 <= log_dir["usable_bytes"] <= log_dir["total_bytes"], log_dir
            return {(t["name"], p["partition_index"]): p["partition_size"]
                    for t in log_dir["topics"] for p in t["partitions"]}

        try:
            assert sizes() == {(topic, 0): 0, (topic, 1): 0, (other, 0): 0}
            produce_at(addr, topic, [1_700_000_000_000 + i for i in range(100)])
            first = sizes({topic: [0]})
            assert list(first) == [(topic, 0)], "only the partition asked"
            assert first[(topic, 0)] > 100 * len(b"at 1700000000000"), first
            produce_at(addr, topic, [1_700_000_001_000])
            assert sizes([topic])[(topic, 0)] > first[(topic, 0)], "grows with each produce"
            assert sizes([topic])[(topic, 1)] == 0
        finally:
            admin.close()


def test_confluent_kafka_lists_the_offset_of_the_largest_timestamp(broker):
    from confluent_kafka import TopicPartition as Partition
    from confluent_kafka.admin import AdminClient, OffsetSpec

    topic = new_topic(broker)
    base = 1_700_000_000_000
    # Producers' clocks out of order: the largest timestamp is at offset 2, and again at offset 4.
    assert produce_at(broker, topic, [base + 500, base + 100, base + 900, base + 300, base + 900, base]) == [
        0, 1, 2, 3, 4, 5]
    admin = AdminClient({"bootstrap.servers": broker})
    partition = Partition(topic, 0)

    def listed(spec):
        return admin.list_offsets({partition: spec})[partition].result(timeout=30)

    largest = listed(OffsetSpec.max_timestamp())
    assert (largest.offset, largest.timestamp) == (2, base + 900)
    assert listed(OffsetSpec.earliest()).offset == 0
    assert listed(OffsetSpec.latest()).offset == 6
    assert listed(OffsetSpec.for_timestamp(base + 301)).offset == 0
    assert listed(OffsetSpec.for_timestamp(base + 901)).offset == -1


def test_a_produce_request_over_the_brokers_limit_is_answered_message_too_large(broker):
    """librdkafka set for 20 MB messages sends a 10 MB one: over max_request_bytes (8 MiB and a little), it is
    answered MESSAGE_TOO_LARGE at once, saying why, where the connection used to be closed (and retried into the
    same wall until the delivery timeout); the connection then serves the next request."""
    confluent_kafka = pytest.importorskip("confluent_kafka")
    topic = new_topic(broker)
    outcomes = []
    producer = confluent_kafka.Producer({"bootstrap.servers": broker, "message.max.bytes": 20_000_000,
                                         "message.timeout.ms": 60_000, "enable.idempotence": False})
    producer.produce(topic, value=b"x" * 10_000_000, partition=0, on_delivery=lambda err, msg: outcomes.append(err))
    assert producer.flush(30) == 0
    assert outcomes[0] is not None and outcomes[0].code() == confluent_kafka.KafkaError.MSG_SIZE_TOO_LARGE, outcomes
    producer.produce(topic, value=b"small", partition=0, on_delivery=lambda err, msg: outcomes.append(err))
    assert producer.flush(30) == 0
    assert outcomes[1] is None, outcomes
    assert rill(broker, "consume", topic) == "small\n"
