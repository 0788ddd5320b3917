"""Kafka topic configs that frameworks set on the topics they create, through real Kafka clients against a `rill
broker` process: the exact config sets of Kafka Streams' internal topics (every one carries
`message.timestamp.type=CreateTime`), ksqlDB's command topic (`unclean.leader.election.enable=false`) and Kafka
Connect's are accepted and described back; `message.timestamp.type=LogAppendTime` makes librdkafka and kafka-python
read the broker's clock; `message.timestamp.before.max.ms` / `after.max.ms` refuse a record too far from it with
INVALID_TIMESTAMP; `segment.ms` and `max.compaction.lag.ms` get a quiet compacted topic compacted;
`compression.type=zstd` stores what producers send in any codec as zstd, which librdkafka and kafka-python read;
a node started with a default compression gives it to the topics created without their own. Run by
kafka-clients.sh."""

import itertools
import subprocess
import tempfile
import time

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka import TIMESTAMP_LOG_APPEND_TIME
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, ResourceType
from kafka import KafkaConsumer
from kafka import TopicPartition as PyPartition

from conftest import RILL, create_topic, running_broker

topic_names = (f"configs-{n}" for n in itertools.count())

# What each framework asks CreateTopics for (their sources: Kafka Streams' InternalTopicConfig and its subclasses,
# ksqlDB's KsqlInternalTopicUtils, Kafka Connect's KafkaConfigBackingStore / KafkaOffsetBackingStore).
FRAMEWORK_CONFIGS = {
    "streams-changelog": {"cleanup.policy": "compact", "message.timestamp.type": "CreateTime"},
    "streams-windowed-changelog": {"cleanup.policy": "compact,delete", "retention.ms": "86460000",
                                   "message.timestamp.type": "CreateTime"},
    "streams-versioned-changelog": {"cleanup.policy": "compact", "min.compaction.lag.ms": "86460000",
                                    "message.timestamp.type": "CreateTime"},
    "streams-repartition": {"cleanup.policy": "delete", "segment.bytes": "52428800", "retention.ms": "-1",
                            "message.timestamp.type": "CreateTime"},
    "ksql-command": {"retention.ms": "-1", "cleanup.policy": "delete", "unclean.leader.election.enable": "false"},
    "connect-configs": {"cleanup.policy": "compact"},
}


@pytest.fixture(scope="module")
def broker(broker_addr):
    return broker_addr


def described(admin, name):
    (future,) = admin.describe_configs([ConfigResource(ResourceType.TOPIC, name)]).values()
    return future.result(timeout=30)


def alter(admin, name, key, value):
    op = AlterConfigOpType.SET if value is not None else AlterConfigOpType.DELETE
    resource = ConfigResource(ResourceType.TOPIC, name, incremental_configs=[ConfigEntry(key, value,
                                                                                       incremental_operation=op)])
    (future,) = admin.incremental_alter_configs([resource]).values()
    future.result(timeout=30)


def consume(addr, name, end):
    """The messages of partition 0 from the start up to offset `end`, read by librdkafka."""
    consumer = Consumer({"bootstrap.servers": addr, "group.id": f"{name}-{time.monotonic_ns()}",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    try:
        consumer.assign([TopicPartition(name, 0, 0)])
        messages, deadline = [], time.monotonic() + 30
        while consumer.position([TopicPartition(name, 0)])[0].offset < end:
            assert time.monotonic() < deadline, f"did not reach offset {end}: {len(messages)} messages"
            message = consumer.poll(1)
            if message is not None and message.error() is None:
                messages.append(message)
        return messages
    finally:
        consumer.close()


def test_the_topics_kafka_streams_ksqldb_and_connect_create_are_accepted_and_described(broker):
    admin = AdminClient({"bootstrap.servers": broker})
    for framework, config in FRAMEWORK_CONFIGS.items():
        name = f"{next(topic_names)}-{framework}"
        create_topic(admin, name, config)
        shown = described(admin, name)
        for key, value in config.items():
            assert shown[key].value == value, f"{framework}: {key} is {shown[key].value}, asked {value}"
        assert shown["unclean.leader.election.enable"].value == "false"
        assert shown["compression.type"].value == "producer"
        assert shown["segment.ms"].value == "604800000", "Kafka's default"
    # What rill does not do is refused at create, saying why, and nothing is created.
    for key, value, why in [("unclean.leader.election.enable", "true", "not in sync"),
                            ("compression.type", "brotli", "producer, uncompressed, gzip, snappy, lz4 or zstd"),
                            ("message.timestamp.type", "BrokerTime", "CreateTime or LogAppendTime")]:
        name = next(topic_names)
        with pytest.raises(KafkaException) as refused:
            create_topic(admin, name, {key: value})
        error = refused.value.args[0]
        assert error.code() == KafkaError.INVALID_CONFIG and why in error.str(), error
        assert name not in admin.list_topics(timeout=10).topics


def test_log_append_time_topics_carry_the_brokers_clock_to_librdkafka_and_kafka_python(broker):
    admin = AdminClient({"bootstrap.servers": broker})
    name = next(topic_names)
    create_topic(admin, name, {"message.timestamp.type": "LogAppendTime"})
    assert described(admin, name)["message.timestamp.type"].value == "LogAppendTime"
    before = int(time.time() * 1000)
    for codec in ["none", "zstd"]:
        producer = Producer({"bootstrap.servers": broker, "compression.type": codec, "linger.ms": 5,
                             "enable.idempotence": True})
        for i in range(10):
            # A producer's clock far in the past: the broker's replaces it.
            producer.produce(name, key=f"k{i}".encode(), value=f"{codec} {i}".encode(), partition=0,
                             timestamp=1_000_000 + i)
        assert producer.flush(30) == 0
    after = int(time.time() * 1000)
    messages = consume(broker, name, 20)
    assert [m.value() for m in messages] == [f"{c} {i}".encode() for c in ["none", "zstd"] for i in range(10)]
    for message in messages:
        kind, timestamp = message.timestamp()
        assert kind == TIMESTAMP_LOG_APPEND_TIME and before - 5 <= timestamp <= after + 5, (kind, timestamp)
    consumer = KafkaConsumer(bootstrap_servers=broker, auto_offset_reset="earliest", enable_auto_commit=False,
                             consumer_timeout_ms=10000)
    try:
        consumer.assign([PyPartition(name, 0)])
        read = list(itertools.islice(consumer, 20))
        assert len(read) == 20
        assert all(r.timestamp_type == 1 and before - 5 <= r.timestamp <= after + 5 for r in read), read[0]
        # ListOffsets by time finds records by the broker's clock, not the producer's.
        found = consumer.offsets_for_times({PyPartition(name, 0): before - 5})[PyPartition(name, 0)]
        assert found is not None and found.offset == 0
        assert consumer.offsets_for_times({PyPartition(name, 0): after + 60_000})[PyPartition(name, 0)] is None
    finally:
        consumer.close()
    # Back to CreateTime: the next records keep their producer's timestamps.
    alter(admin, name, "message.timestamp.type", None)
    producer = Producer({"bootstrap.servers": broker})
    producer.produce(name, value=b"own clock", partition=0, timestamp=1_234_567)
    assert producer.flush(30) == 0
    last = consume(broker, name, 21)[-1]
    assert last.value() == b"own clock" and last.timestamp()[1] == 1_234_567, last.timestamp()


def test_timestamp_bounds_refuse_records_too_far_from_the_brokers_clock(broker):
    admin = AdminClient({"bootstrap.servers": broker})
    name = next(topic_names)
    create_topic(admin, name, {"message.timestamp.before.max.ms": "3600000", "message.timestamp.after.max.ms": "60000"})
    results = {}

    def report(label):
        return lambda err, msg: results.__setitem__(label, err)

    now = int(time.time() * 1000)
    producer = Producer({"bootstrap.servers": broker, "linger.ms": 0, "retries": 0})
    producer.produce(name, value=b"now", partition=0, timestamp=now, on_delivery=report("now"))
    producer.flush(30)
    producer.produce(name, value=b"two hours ago", partition=0, timestamp=now - 7_200_000,
                     on_delivery=report("old"))
    producer.flush(30)
    producer.produce(name, value=b"in ten minutes", partition=0, timestamp=now + 600_000,
                     on_delivery=report("future"))
    producer.flush(30)
    producer.produce(name, value=b"half an hour ago", partition=0, timestamp=now - 1_800_000,
                     on_delivery=report("within"))
    assert producer.flush(30) == 0
    assert results["now"] is None and results["within"] is None, results
    assert results["old"].code() == KafkaError.INVALID_TIMESTAMP, results["old"]
    assert results["future"].code() == KafkaError.INVALID_TIMESTAMP, results["future"]
    assert [m.value() for m in consume(broker, name, 2)] == [b"now", b"half an hour ago"], "nothing refused stored"
    # Lifted through IncrementalAlterConfigs (Kafka's Long.MAX_VALUE is no bound): the old record goes in.
    alter(admin, name, "message.timestamp.before.max.ms", "9223372036854775807")
    assert described(admin, name)["message.timestamp.before.max.ms"].value == "9223372036854775807"
    producer.produce(name, value=b"two hours ago", partition=0, timestamp=now - 7_200_000,
                     on_delivery=report("old again"))
    assert producer.flush(30) == 0 and results["old again"] is None, results


def trickle(broker, name, first, count):
    """`count` updates to keys k0 and k1 (value `v<n>` to key `k<n % 2>`), each in a segment of its own: segment.ms
    is shorter than the pause between them, so each append rolls the segment before it."""
    producer = Producer({"bootstrap.servers": broker, "linger.ms": 0})
    for i in range(first, first + count):
        producer.produce(name, key=f"k{i % 2}".encode(), value=f"v{i}".encode(), partition=0)
        assert producer.flush(30) == 0
        time.sleep(0.3)


def await_values(broker, name, end, expected):
    deadline = time.monotonic() + 30
    while (values := [m.value() for m in consume(broker, name, end)]) != expected:
        assert time.monotonic() < deadline, f"not compacted to {expected}: {values}"
        time.sleep(0.5)


def test_a_quiet_compacted_topic_is_compacted_by_segment_ms_and_max_compaction_lag(broker):
    """The usual set-up for seeing compaction happen: a short segment.ms. The dirty ratio is 1 here, which only a
    partition's first pass reaches (at its first rolled segment, all of it dirty): after that, only
    max.compaction.lag.ms makes a pass due (without it, nothing here is compacted)."""
    admin = AdminClient({"bootstrap.servers": broker})
    name = next(topic_names)
    create_topic(admin, name, {"cleanup.policy": "compact", "segment.ms": "200", "min.cleanable.dirty.ratio": "1",
                         "max.compaction.lag.ms": "300"})
    trickle(broker, name, 0, 8)
    # The sealed segments (v0..v6) keep each key's newest among them; v7 is in the active segment, never compacted.
    await_values(broker, name, 8, [b"v5", b"v6", b"v7"])
    trickle(broker, name, 8, 2)
    # Two dirty segments (v7, v8) of four: far below the ratio, but past the lag.
    await_values(broker, name, 10, [b"v7", b"v8", b"v9"])
    topic = subprocess.run([RILL, "topic", "describe", name, "--broker", broker], capture_output=True, text=True,
                           timeout=30)
    assert topic.returncode == 0, topic.stderr
    assert "max_compaction_lag_ms" in topic.stdout and "segment_ms" in topic.stdout, topic.stdout


def test_the_rill_cli_creates_and_alters_with_kafkas_config_keys(broker):
    name = next(topic_names)
    created = subprocess.run([RILL, "topic", "create", name, "--config", "message.timestamp.type=LogAppendTime",
                              "--config", "segment.ms=60000", "--broker", broker],
                             capture_output=True, text=True, timeout=30)
    assert created.returncode == 0, created.stderr
    admin = AdminClient({"bootstrap.servers": broker})
    shown = described(admin, name)
    assert shown["message.timestamp.type"].value == "LogAppendTime" and shown["segment.ms"].value == "60000"
    refused = subprocess.run([RILL, "topic", "alter", name, "--config", "message.timestamp.type=Now",
                              "--broker", broker], capture_output=True, text=True, timeout=30)
    assert refused.returncode != 0 and "CreateTime" in refused.stderr and "LogAppendTime" in refused.stderr, refused.stderr
    before = int(time.time() * 1000)
    produced = subprocess.run([RILL, "produce", name, "--broker", broker], input="one\n", capture_output=True,
                              text=True, timeout=30)
    assert produced.returncode == 0, produced.stderr
    (message,) = consume(broker, name, 1)
    assert message.timestamp()[0] == TIMESTAMP_LOG_APPEND_TIME and message.timestamp()[1] >= before - 5


def test_append_and_subtract_change_a_topics_cleanup_policy_from_what_it_runs_with(broker):
    admin = AdminClient({"bootstrap.servers": broker})
    name = next(topic_names)
    create_topic(admin, name, {})

    def change(op, key, value):
        entry = ConfigEntry(key, value, incremental_operation=op)
        (future,) = admin.incremental_alter_configs([ConfigResource(ResourceType.TOPIC, name,
                                                                    incremental_configs=[entry])]).values()
        future.result(timeout=30)

    # From the default, delete: compacted too, then deleted no more.
    change(AlterConfigOpType.APPEND, "cleanup.policy", "compact")
    assert described(admin, name)["cleanup.policy"].value == "compact,delete"
    change(AlterConfigOpType.APPEND, "cleanup.policy", "compact")
    assert described(admin, name)["cleanup.policy"].value == "compact,delete", "appending what is there is nothing"
    change(AlterConfigOpType.SUBTRACT, "cleanup.policy", "delete")
    assert described(admin, name)["cleanup.policy"].value == "compact"
    for op, key, value, why in [(AlterConfigOpType.APPEND, "retention.ms", "1", "not a list"),
                                (AlterConfigOpType.SUBTRACT, "cleanup.policy", "compact", "cleanup.policy")]:
        with pytest.raises(KafkaException) as refused:
            change(op, key, value)
        error = refused.value.args[0]
        assert error.code() == KafkaError.INVALID_CONFIG and why in error.str(), error
    assert described(admin, name)["cleanup.policy"].value == "compact", "a refused change changes nothing"


def partition_bytes(broker, name):
    """Partition 0's bytes on disk, as `rill topic describe` shows them."""
    shown = subprocess.run([RILL, "topic", "describe", name, "--broker", broker], capture_output=True, text=True,
                           timeout=30)
    assert shown.returncode == 0, shown.stderr
    rows = [line.split() for line in shown.stdout.splitlines()]
    header = next(i for i, row in enumerate(rows) if row[:1] == ["PARTITION"])
    return int(rows[header + 1][rows[header].index("BYTES")])


def test_a_topics_compression_type_stores_every_batch_in_its_codec(broker):
    admin = AdminClient({"bootstrap.servers": broker})
    stored, as_sent = next(topic_names), next(topic_names)
    create_topic(admin, stored, {"compression.type": "zstd"})
    create_topic(admin, as_sent, {})
    assert described(admin, stored)["compression.type"].value == "zstd"
    assert described(admin, as_sent)["compression.type"].value == "producer"
    values = [f"record {i} ".encode() * 40 for i in range(400)]
    for name in [stored, as_sent]:
        for codec in ["none", "lz4", "gzip"]:
            producer = Producer({"bootstrap.servers": broker, "compression.type": codec, "linger.ms": 5,
                                 "enable.idempotence": True})
            for i, value in enumerate(values):
                producer.produce(name, key=f"k{i}".encode(), value=value, partition=0)
            assert producer.flush(30) == 0
    # Every producer's records, in order, whatever codec they came in and are stored in.
    assert [m.value() for m in consume(broker, stored, 1200)] == values * 3
    consumer = KafkaConsumer(bootstrap_servers=broker, auto_offset_reset="earliest", enable_auto_commit=False,
                             consumer_timeout_ms=10000)
    try:
        consumer.assign([PyPartition(stored, 0)])
        assert [r.value for r in itertools.islice(consumer, 1200)] == values * 3
    finally:
        consumer.close()
    # The uncompressed third of `as_sent` alone is larger than all of `stored`, every batch of which is zstd.
    assert partition_bytes(broker, stored) * 3 < partition_bytes(broker, as_sent), "stored compressed"
    # Back to `producer`: the next batches are stored as sent.
    alter(admin, stored, "compression.type", None)
    assert described(admin, stored)["compression.type"].value == "producer"


def test_a_topics_compression_levels_decide_how_small_its_batches_are_stored(broker):
    # Kafka's KIP-390 levels through confluent-kafka's AdminClient: set at create and by IncrementalAlterConfigs,
    # described back with their source, refused out of range saying what is allowed; librdkafka's uncompressed
    # batches stored at zstd level 19 take less room than at level 1, and both read back the same.
    admin = AdminClient({"bootstrap.servers": broker})
    fast, small, default = next(topic_names), next(topic_names), next(topic_names)
    create_topic(admin, fast, {"compression.type": "zstd", "compression.zstd.level": "1"})
    create_topic(admin, small, {"compression.type": "zstd", "compression.zstd.level": "19",
                                "compression.gzip.level": "9"})
    create_topic(admin, default, {"compression.type": "lz4"})
    shown = described(admin, small)
    assert shown["compression.zstd.level"].value == "19" and not shown["compression.zstd.level"].is_default
    assert shown["compression.gzip.level"].value == "9"
    shown = described(admin, default)
    assert [shown[f"compression.{codec}.level"].value for codec in ["gzip", "lz4", "zstd"]] == ["-1", "9", "3"]
    assert shown["compression.lz4.level"].is_default
    values = [f'{{"order": {i % 300}, "status": "paid", "note": "{"abc" * (i % 7)}"}}'.encode() for i in range(4000)]
    for name in [fast, small]:
        # All 4000 (about 250 KB) in one batch for both topics, whatever the machine's speed: librdkafka holds them
        # for the linger and flush() sends them at once. Split by a timer instead, a busy host could store the two
        # topics' records in batches of different sizes, and the bytes compare the batching, not the levels.
        producer = Producer({"bootstrap.servers": broker, "compression.type": "none", "linger.ms": 30000,
                             "batch.size": 1000000})
        for value in values:
            producer.produce(name, value=value, partition=0)
        assert producer.flush(30) == 0
    assert [m.value() for m in consume(broker, small, 4000)] == values
    assert [m.value() for m in consume(broker, fast, 4000)] == values
    assert partition_bytes(broker, small) < partition_bytes(broker, fast), "level 19 smaller than level 1"
    alter(admin, fast, "compression.zstd.level", "-3")
    assert described(admin, fast)["compression.zstd.level"].value == "-3"
    alter(admin, fast, "compression.zstd.level", None)
    assert described(admin, fast)["compression.zstd.level"].value == "3"
    for key, value, allowed in [("compression.zstd.level", "23", "from -131072 (fastest) to 22"),
                                ("compression.gzip.level", "0", "from 1 (fastest) to 9"),
                                ("compression.lz4.level", "18", "from 1 to 17")]:
        with pytest.raises(KafkaException) as refused:
            alter(admin, fast, key, value)
        error = refused.value.args[0]
        assert error.code() == KafkaError.INVALID_CONFIG and allowed in error.str(), error
        with pytest.raises(KafkaException) as refused:
            create_topic(admin, next(topic_names), {key: value})
        assert allowed in refused.value.args[0].str()


def test_a_nodes_default_compression_is_what_topics_created_without_their_own_store():
    # Kafka's broker `compression.type` and `compression.zstd.level`, as `rill broker` flags: DescribeConfigs shows
    # them on the broker; a topic librdkafka's AdminClient creates without its own takes them, described as
    # defaults, and librdkafka's uncompressed records are stored as zstd there but as sent on a `producer` topic.
    flags = ["--admin-listen", "127.0.0.1:0", "--default-compression-type", "zstd",
             "--default-compression-zstd-level", "19"]
    with tempfile.TemporaryDirectory() as data_dir, running_broker(data_dir, *flags) as addr:
        admin = AdminClient({"bootstrap.servers": addr})
        (future,) = admin.describe_configs([ConfigResource(ResourceType.BROKER, "0")]).values()
        node = future.result(timeout=30)
        assert (node["compression.type"].value, node["compression.zstd.level"].value) == ("zstd", "19")
        inherits, as_sent = next(topic_names), next(topic_names)
        create_topic(admin, inherits, {})
        create_topic(admin, as_sent, {"compression.type": "producer"})
        shown = described(admin, inherits)
        assert (shown["compression.type"].value, shown["compression.zstd.level"].value) == ("zstd", "19")
        assert shown["compression.type"].is_default and shown["compression.zstd.level"].is_default
        assert not described(admin, as_sent)["compression.type"].is_default
        values = [f'{{"order": {i % 300}, "status": "paid"}}'.encode() for i in range(2000)]
        for name in [inherits, as_sent]:
            producer = Producer({"bootstrap.servers": addr, "compression.type": "none", "linger.ms": 20})
            for value in values:
                producer.produce(name, value=value, partition=0)
            assert producer.flush(30) == 0
            assert [m.value() for m in consume(addr, name, 2000)] == values
        assert partition_bytes(addr, inherits) * 4 < partition_bytes(addr, as_sent), "stored compressed"
