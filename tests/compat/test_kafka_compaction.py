"""Compacted topics (`cleanup.policy=compact`) through real Kafka clients: confluent-kafka (librdkafka) creates one
with Kafka's topic configs and produces keyed records compressed and idempotent; a `rill broker` process compacts
it in its maintenance pass; librdkafka and kafka-python then read from the start every key's newest value at its
offset, past the empty batches compaction leaves, and a tombstone's key goes. A record without a key is refused
with INVALID_RECORD, and DescribeConfigs and IncrementalAlterConfigs show and change the settings. Run by
kafka-clients.sh."""

import itertools
import os
import time

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, ResourceType

from conftest import create_topic
from test_kafka_clients import consume_all

topic_names = (f"compaction-{n}" for n in itertools.count())
KEYS = 20
ROUNDS = 30


@pytest.fixture(scope="module")
def broker(broker_addr):
    return broker_addr


def read_all_librdkafka(addr, name, end):
    """(offset, key, value) of every record of partition 0 from the start up to offset `end`, read by librdkafka."""
    consumer = Consumer({"bootstrap.servers": addr, "group.id": f"{name}-reader-{time.monotonic_ns()}",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    try:
        consumer.assign([TopicPartition(name, 0, 0)])
        records = []
        deadline = time.monotonic() + 30
        while consumer.position([TopicPartition(name, 0)])[0].offset < end:
            assert time.monotonic() < deadline, f"did not reach offset {end}: {records[-3:]}"
            message = consumer.poll(1)
            if message is not None and message.error() is None:
                records.append((message.offset(), message.key(), message.value()))
        return records
    finally:
        consumer.close()


def produce_keyed(producer, name, rounds, keys):
    """`rounds` values of each of `keys` keys to partition 0, each round flushed (small batches over many small
    segments): each key's newest value."""
    newest = {}
    for round_ in range(rounds):
        for key in range(keys):
            value = f"round {round_} of k{key}".encode()
            producer.produce(name, key=f"k{key}".encode(), value=value, partition=0)
            newest[f"k{key}".encode()] = value
        assert producer.flush(30) == 0
    return newest


def produce_rounds(addr, name):
    """ROUNDS values of each of KEYS keys, then a tombstone of key k0: what each key's newest value is, and the
    log end."""
    producer = Producer({"bootstrap.servers": addr, "compression.type": "lz4", "linger.ms": 0})
    newest = produce_keyed(producer, name, ROUNDS, KEYS)
    producer.produce(name, key=b"k0", value=None, partition=0)
    newest[b"k0"] = None
    assert producer.flush(30) == 0
    return newest, ROUNDS * KEYS + 1


def test_a_compacted_topic_keeps_each_keys_newest_value_for_librdkafka_and_kafka_python(broker):
    admin = AdminClient({"bootstrap.servers": broker})
    name = next(topic_names)
    create_topic(admin, name, {"cleanup.policy": "compact", "segment.bytes": "1024", "min.cleanable.dirty.ratio": "0.01",
                         "delete.retention.ms": "3600000"})
    newest, end = produce_rounds(broker, name)

    # The maintenance pass runs every 100 ms: wait until most of what was written is gone and compaction has
    # settled (two reads half a second apart agree), so the second client reads the same log, not one compacted
    # further in between (a CI run once caught that: 130 records fewer for kafka-python than for librdkafka).
    deadline = time.monotonic() + 30
    previous = None
    while True:
        records = read_all_librdkafka(broker, name, end)
        if len(records) < end // 3 and records == previous:
            break
        assert time.monotonic() < deadline, f"still {len(records)} of {end} records after 30 s, or still changing"
        previous = records
        time.sleep(0.5)

    offsets = [offset for offset, _, _ in records]
    assert offsets == sorted(set(offsets)), "offsets only increase"
    last = {}
    for offset, key, value in records:
        last[key] = value
    assert last == newest, "every key ends with its newest value (k0 with its tombstone)"
    assert records[-1][0] == end - 1, "the tombstone keeps its offset"
    low, high = Consumer({"bootstrap.servers": broker, "group.id": f"{name}-marks"}).get_watermark_offsets(
        TopicPartition(name, 0), timeout=30)
    assert (low, high) == (0, end), "compaction moves no offset"

    # kafka-python reads the same records, past the empty batches left where whole batches went.
    seen = [(record.offset, record.key, record.value) for record in consume_all(broker, name, len(records))]
    assert seen == records, f"kafka-python read {seen[-3:]}"
    assert {key: value for _, key, value in seen} == newest


def test_a_compacted_topic_refuses_a_record_without_a_key(broker):
    admin = AdminClient({"bootstrap.servers": broker})
    name = next(topic_names)
    create_topic(admin, name, {"cleanup.policy": "compact"})
    errors = []
    producer = Producer({"bootstrap.servers": broker, "enable.idempotence": False, "retries": 0})
    # Flushed apart: a batch holding a keyless record is refused whole, as Kafka refuses it.
    producer.produce(name, value=b"no key", partition=0, on_delivery=lambda err, _msg: errors.append(err))
    producer.flush(30)
    producer.produce(name, key=b"k", value=b"keyed", partition=0, on_delivery=lambda err, _msg: errors.append(err))
    producer.flush(30)
    assert len(errors) == 2
    assert errors[0] is not None and errors[0].code() == KafkaError.INVALID_RECORD, errors[0]
    assert errors[1] is None, "a keyed record is taken"


def test_describe_and_alter_the_compaction_configs(broker):
    admin = AdminClient({"bootstrap.servers": broker})
    name = next(topic_names)
    create_topic(admin, name, {})
    resource = ConfigResource(ResourceType.TOPIC, name)

    def described():
        (future,) = admin.describe_configs([resource]).values()
        return {key: entry.value for key, entry in future.result(timeout=30).items()}

    assert described()["cleanup.policy"] == "delete"
    change = ConfigResource(ResourceType.TOPIC, name, incremental_configs=[
        ConfigEntry("cleanup.policy", "compact,delete", incremental_operation=AlterConfigOpType.SET),
        ConfigEntry("min.compaction.lag.ms", "60000", incremental_operation=AlterConfigOpType.SET),
    ])
    (future,) = admin.incremental_alter_configs([change]).values()
    future.result(timeout=30)
    configs = described()
    assert (configs["cleanup.policy"], configs["min.compaction.lag.ms"]) == ("compact,delete", "60000")
    assert (configs["delete.retention.ms"], configs["min.cleanable.dirty.ratio"]) == ("86400000", "0.5")
    bad = ConfigResource(ResourceType.TOPIC, name, incremental_configs=[
        ConfigEntry("min.cleanable.dirty.ratio", "2", incremental_operation=AlterConfigOpType.SET)])
    (future,) = admin.incremental_alter_configs([bad]).values()
    with pytest.raises(Exception) as refused:
        future.result(timeout=30)
    assert "from 0 to 1" in str(refused.value)


def test_transactions_on_a_compacted_topic_read_committed(broker):
    """A Kafka Streams changelog under exactly-once: committed transactions are compacted like any records, an
    aborted one's records all go, and a read_committed consumer gets each key's newest committed value."""
    admin = AdminClient({"bootstrap.servers": broker})
    name = next(topic_names)
    create_topic(admin, name, {"cleanup.policy": "compact", "segment.bytes": "1024", "min.cleanable.dirty.ratio": "0.01"})
    producer = Producer({"bootstrap.servers": broker, "transactional.id": f"{name}-txn", "linger.ms": 0})
    producer.init_transactions(30)
    newest = {}
    for round_ in range(ROUNDS):
        producer.begin_transaction()
        for key in range(5):
            producer.produce(name, key=f"k{key}".encode(), value=f"round {round_}".encode(), partition=0)
        assert producer.flush(30) == 0, "the records reach the log before the transaction ends"
        aborted = round_ % 3 == 2
        if aborted:
            producer.abort_transaction(30)
        else:
            producer.commit_transaction(30)
            newest.update({f"k{key}".encode(): f"round {round_}".encode() for key in range(5)})
    _, end = Consumer({"bootstrap.servers": broker, "group.id": f"{name}-marks"}).get_watermark_offsets(
        TopicPartition(name, 0), timeout=30)

    def read_committed():
        consumer = Consumer({"bootstrap.servers": broker, "group.id": f"{name}-{time.monotonic_ns()}",
                             "enable.auto.commit": False, "isolation.level": "read_committed",
                             "auto.offset.reset": "earliest", "enable.partition.eof": True})
        try:
            consumer.assign([TopicPartition(name, 0, 0)])
            records = []
            deadline = time.monotonic() + 30
            while True:
                assert time.monotonic() < deadline, f"no end of partition within 30 s: {records[-3:]}"
                message = consumer.poll(1)
                if message is None:
                    continue
                if message.error() is not None:
                    assert message.error().code() == KafkaError._PARTITION_EOF, message.error()
                    return records
                records.append((message.key(), message.value()))
        finally:
            consumer.close()

    deadline = time.monotonic() + 30
    while True:
        records = read_committed()
        if len(records) < ROUNDS * 5 // 3:
            break
        assert time.monotonic() < deadline, f"still {len(records)} records after 30 s"
        time.sleep(0.5)
    assert dict(records) == newest, "each key's newest committed value, never an aborted one"
    assert all(value != b"round 29" for _, value in records), "round 29 was aborted"
    assert end == ROUNDS * 5 + ROUNDS, "every record and marker keeps its offset"


def test_the_rill_cli_creates_a_compacted_topic_and_produce_refuses_a_keyless_line(broker):
    """The same topic through gRPC: `rill topic create --cleanup-policy compact`, `rill topic describe` showing the
    policy and its settings, `rill produce` of keyed lines taken and of a keyless one refused with a non-zero exit
    naming the rule, and `rill consume` reading each key's newest value once compacted."""
    import subprocess

    from test_kafka_clients import rill

    name = next(topic_names)
    rill(broker, "topic", "create", name, "--cleanup-policy", "compact", "--segment-bytes", "1024")
    rill(broker, "topic", "alter", name, "--config", "min.cleanable.dirty.ratio=0.01")
    described = rill(broker, "topic", "describe", name)
    rows = dict(line.split(None, 1) for line in described.splitlines() if line.startswith(("cleanup", "min_clean")))
    assert (rows["cleanup_policy"].strip(), rows["min_cleanable_dirty_ratio"].strip()) == ("compact", "0.01")
    lines = "".join(f"k{n % 4}:v{n}\n" for n in range(200))
    rill(broker, "produce", name, "--partition", "0", "--key-separator", ":", stdin=lines)
    refused = subprocess.run([os.environ["RILL_BIN"], "produce", name, "--partition", "0", "--broker", broker],
                             input="no key\n", capture_output=True, text=True, timeout=60)
    assert refused.returncode != 0
    assert "no key" in refused.stderr and "compact" in refused.stderr, refused.stderr

    deadline = time.monotonic() + 30
    while True:
        out = rill(broker, "consume", name, "--partition", "0", "--from-beginning")
        values = out.split()
        if len(values) < 100:
            break
        assert time.monotonic() < deadline, f"still {len(values)} records after 30 s"
        time.sleep(0.5)
    assert values[-4:] == ["v196", "v197", "v198", "v199"], values[-4:]
