"""Share groups (KIP-932, "queues for Kafka") with a real client: confluent-kafka's ShareConsumer (librdkafka 2.15's
share consumer). More consumers than partitions share a topic record by record, none read twice; what they
acknowledged stays done across a SIGKILL and restart of the broker; a released record comes back with its delivery
count raised, a rejected one never does, and one released as often as the delivery count limit is given up; a
record whose lock runs out while its consumer sits on it goes to another consumer; a share group's id is refused to a
consumer group and the other way round; a rill member (`rill consume --share-group`) and a librdkafka member
split one group's records; a group's own configs (IncrementalAlterConfigs and DescribeConfigs of
resource type GROUP) decide where it starts and last across a restart; a group's dead-letter topic (KIP-1191,
created with AdminClient and its opt-in config) gets each record the group rejects or gives up on, with Kafka's
headers. Run by kafka-clients.sh."""

import json
import os
import signal
import subprocess
import tempfile
import threading
import time
import uuid

import pytest
from confluent_kafka import AcknowledgeType, ConsumerGroupType, KafkaException, ShareConsumer
from confluent_kafka import Consumer as RdConsumer
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, ConfigSource, ResourceType

from conftest import running_broker
from test_kafka_groups import DEADLINE_S, RILL, rill

# Broker settings for these tests: an admin port of its own, groups start at the log's start, a record is given up
# after 3 deliveries. Locks keep the default 30 s: with implicit acknowledgement a consumer's records are accepted
# only by its next poll, and on a loaded machine polls can be more than a second apart, so a short lock would hand
# records to another member (at-least-once, as designed) and break the tests that count deliveries exactly.
SHARE_FLAGS = ["--admin-listen", "127.0.0.1:0", "--share-auto-offset-reset", "earliest", "--share-delivery-count-limit", "3"]
# Locks run out after 1 s (Kafka's shortest), for the one test about a lock running out.
SHORT_LOCK_FLAGS = [*SHARE_FLAGS, "--share-record-lock-ms", "1000"]


def new_name(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def produce(addr, topic, values, partitions):
    producer = Producer({"bootstrap.servers": addr, "acks": "all"})
    for i, value in enumerate(values):
        producer.produce(topic, value=value.encode(), partition=i % partitions)
    assert producer.flush(30) == 0, "records left undelivered"


def share_consumer(addr, group, **options):
    return ShareConsumer({"bootstrap.servers": addr, "group.id": group, **options})


def drain(consumer, wanted, seconds=DEADLINE_S, acknowledge=None):
    """Polls until `wanted` records came (or the deadline): the list of (value, delivery count, message). With
    `acknowledge`, each message is acknowledged with the type it returns (explicit mode)."""
    got = []
    deadline = time.monotonic() + seconds
    while len(got) < wanted and time.monotonic() < deadline:
        for message in consumer.poll(0.5):
            assert message.error() is None, message.error()
            got.append((message.value().decode(), message.delivery_count(), message))
            if acknowledge is not None:
                consumer.acknowledge(message, acknowledge(message))
    return got


def started_broker(flags):
    with tempfile.TemporaryDirectory() as data_dir:
        data = os.path.join(data_dir, "data")
        with running_broker(data, *flags) as addr:
            yield addr, data


@pytest.fixture()
def broker():
    """A `rill broker` process with SHARE_FLAGS; its address and data directory."""
    yield from started_broker(SHARE_FLAGS)


@pytest.fixture()
def short_lock_broker():
    """A `rill broker` process whose share locks run out after 1 s."""
    yield from started_broker(SHORT_LOCK_FLAGS)


def test_more_consumers_than_partitions_share_a_topic_and_nothing_is_read_twice(broker):
    addr, _ = broker
    topic, group = new_name("jobs"), new_name("workers")
    rill(addr, "topic", "create", topic, "--partitions", "2")
    values = [f"job-{i}" for i in range(300)]
    produce(addr, topic, values, 2)
    consumers = [share_consumer(addr, group) for _ in range(3)]
    seen, lock = [], threading.Lock()
    stop = threading.Event()

    def work(consumer):
        # Implicit acknowledgement: what one poll returned is accepted by the next poll.
        consumer.subscribe([topic])
        while not stop.is_set():
            for message in consumer.poll(0.2):
                assert message.error() is None, message.error()
                with lock:
                    seen.append(message.value().decode())
                time.sleep(0.001)
        consumer.commit_sync(30)
        consumer.close()

    threads = [threading.Thread(target=work, args=(c,)) for c in consumers]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        with lock:
            if len(seen) >= len(values):
                break
        time.sleep(0.1)
    # While the members are in: `rill group list` and `describe` show a share group, who reads what, and where
    # it is in each partition.
    listed = [line.split() for line in rill(addr, "group", "list").splitlines()]
    assert [group, "share", "stable", "3"] in [row[:4] for row in listed], listed
    described = rill(addr, "group", "describe", group)
    assert described.startswith(f"share group {group} (stable, epoch "), described
    assert "START" in described and "IN-FLIGHT" in described, described
    stop.set()
    for thread in threads:
        thread.join(60)
    assert sorted(seen) == sorted(values), f"{len(seen)} records read for {len(values)}"
    # Every record accepted: each partition's start offset is at its end, nothing in flight, no lag.
    rows = [line.split() for line in rill(addr, "group", "describe", group).splitlines() if line.startswith(topic)]
    assert [row[2:6] for row in rows] == [["150", "150", "0", "0"]] * 2, rows
    # A consumer-group listing (ListGroups v5 with its type filter) does not mistake it for a consumer group.
    admin = AdminClient({"bootstrap.servers": addr})
    for types in [None, {ConsumerGroupType.CONSUMER, ConsumerGroupType.CLASSIC}]:
        listed = admin.list_consumer_groups(**({"types": types} if types else {})).result()
        assert group not in [g.group_id for g in listed.valid], listed.valid


def test_acknowledged_records_stay_done_across_a_broker_kill_and_restart():
    with tempfile.TemporaryDirectory() as data_dir:
        data = os.path.join(data_dir, "data")
        topic, group = new_name("orders"), new_name("billing")
        with running_broker(data, *SHARE_FLAGS) as addr:
            rill(addr, "topic", "create", topic, "--partitions", "1")
            produce(addr, topic, [f"a{i}" for i in range(50)], 1)
            consumer = share_consumer(addr, group, **{"share.acknowledgement.mode": "explicit"})
            consumer.subscribe([topic])
            # The first 30 accepted, the rest left acquired when the broker dies.
            got = drain(consumer, 50, acknowledge=lambda m: AcknowledgeType.ACCEPT
                        if int(m.value()[1:]) < 30 else AcknowledgeType.RELEASE)
            assert len(got) >= 30
            consumer.commit_sync(30)
        # The broker is killed (SIGKILL) by `running_broker`; the consumer's connection died with it.
        with running_broker(data, *SHARE_FLAGS) as addr:
            consumer = share_consumer(addr, new_name("unused"))
            consumer.close()
            reader = share_consumer(addr, group)
            reader.subscribe([topic])
            rest = drain(reader, 20)
            values = sorted(int(v[1:]) for v, _, _ in rest)
            assert values == list(range(30, 50)), values
            # Delivered before the restart (and released), then again now.
            assert all(count >= 2 for _, count, _ in rest), [c for _, c, _ in rest]
            assert drain(reader, 1, seconds=3) == [], "an accepted record came back"
            reader.commit_sync(30)
            reader.close()


def test_a_rill_member_and_a_librdkafka_member_share_one_group_and_nothing_is_read_twice(broker):
    # `rill consume --share-group` (rill's ShareConsume stream) and confluent-kafka's ShareConsumer (ShareFetch)
    # are members of one group: the group splits the topic's records between them, each record once.
    addr, _ = broker
    topic, group = new_name("mixed"), new_name("crew")
    rill(addr, "topic", "create", topic, "--partitions", "2")
    # librdkafka hears a changed assignment at its next heartbeat, and until then fetches the partitions it had
    # (the broker hands any member's fetch what it asks for, as Kafka's does): heartbeats every second keep that
    # short.
    rill(addr, "group", "config", group, "--config", "share.heartbeat.interval.ms=1000")
    rill_member = subprocess.Popen([RILL, "consume", topic, "--share-group", group, "--follow", "--format", "json",
                                    "--broker", addr], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen, lock = [], threading.Lock()

    def read_rill():
        for line in rill_member.stdout:
            record = json.loads(line)
            with lock:
                seen.append(("rill", record["value"], record["delivery_count"]))

    reader = threading.Thread(target=read_rill)
    reader.start()
    kafka_member = share_consumer(addr, group)
    kafka_member.subscribe([topic])
    stop = threading.Event()

    def read_kafka():
        while not stop.is_set():
            for message in kafka_member.poll(0.2):
                assert message.error() is None, message.error()
                with lock:
                    seen.append(("kafka", message.value().decode(), message.delivery_count()))
        kafka_member.commit_sync(30)
        kafka_member.close()

    kafka_thread = threading.Thread(target=read_kafka)
    kafka_thread.start()
    try:
        # Both members in before the records come, so the group has split the partitions between them.
        # Until the first member's join lands the group does not exist, and `describe` says so.
        deadline = time.monotonic() + DEADLINE_S
        split = False
        while not split and time.monotonic() < deadline:
            done = subprocess.run([RILL, "group", "describe", group, "--broker", addr], capture_output=True, text=True,
                                  timeout=60)
            if done.returncode != 0:
                assert "unknown group" in done.stderr, done.stderr
            rows = [row.split() for row in done.stdout.splitlines() if row.startswith(topic)]
            split = len(rows) == 2 and all(row[-1] != "-" for row in rows) and len({row[-1] for row in rows}) == 2
            if not split:
                time.sleep(0.2)
        assert split, f"the group never split {topic}'s partitions between its two members: {done.stdout}"
        # Rounds of records until each member has read some: a librdkafka member that has not heard of the split
        # yet may take a round's every record, which is no fault (each is still read once).
        values = []
        while time.monotonic() < deadline:
            batch = [f"job-{len(values) + i}" for i in range(100)]
            values += batch
            produce(addr, topic, batch, 2)
            while time.monotonic() < deadline:
                with lock:
                    if len(seen) >= len(values):
                        break
                time.sleep(0.1)
            with lock:
                if {who for who, _, _ in seen} == {"rill", "kafka"}:
                    break
        time.sleep(1)  # anything read twice would show now
    finally:
        stop.set()
        kafka_thread.join(30)
        rill_member.send_signal(signal.SIGINT)
        _, stderr = rill_member.communicate(timeout=30)
        reader.join(30)
    assert rill_member.returncode == 0, stderr
    read = [value for _, value, _ in seen]
    assert sorted(read) == sorted(values), f"{len(read)} read for {len(values)}"
    by = {who: sum(1 for w, _, _ in seen if w == who) for who in ("rill", "kafka")}
    assert by["rill"] > 0 and by["kafka"] > 0, by
    assert all(count == 1 for _, _, count in seen), "each record delivered once"


def test_released_records_return_rejected_ones_do_not_and_the_delivery_limit_gives_up(broker):
    addr, _ = broker
    topic, group = new_name("tasks"), new_name("crunchers")
    rill(addr, "topic", "create", topic, "--partitions", "1")
    produce(addr, topic, ["ok", "retry", "poison", "flaky"], 1)
    consumer = share_consumer(addr, group, **{"share.acknowledgement.mode": "explicit"})
    consumer.subscribe([topic])
    kinds = {"ok": AcknowledgeType.ACCEPT, "retry": AcknowledgeType.RELEASE, "poison": AcknowledgeType.REJECT,
             "flaky": AcknowledgeType.RELEASE}
    deliveries = {}
    retried = False
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        for message in consumer.poll(0.5):
            assert message.error() is None, message.error()
            value = message.value().decode()
            deliveries.setdefault(value, []).append(message.delivery_count())
            kind = kinds[value]
            if value == "retry" and retried:
                kind = AcknowledgeType.ACCEPT
            retried |= value == "retry"
            consumer.acknowledge(message, kind)
        consumer.commit_sync(30)
        if len(deliveries.get("flaky", [])) >= 3 and len(deliveries.get("retry", [])) >= 2:
            break
    # Look a little longer: nothing more may come.
    for _ in range(4):
        for message in consumer.poll(0.5):
            deliveries.setdefault(message.value().decode(), []).append(message.delivery_count())
            consumer.acknowledge(message, AcknowledgeType.ACCEPT)
    consumer.commit_sync(30)
    consumer.close()
    assert deliveries["ok"] == [1]
    assert deliveries["poison"] == [1], "a rejected record is never delivered again"
    assert deliveries["retry"] == [1, 2], "released once, then accepted"
    assert deliveries["flaky"] == [1, 2, 3], "given up after the delivery count limit (3)"


def test_a_record_whose_lock_runs_out_goes_to_another_consumer(short_lock_broker):
    addr, _ = short_lock_broker
    topic, group = new_name("emails"), new_name("senders")
    rill(addr, "topic", "create", topic, "--partitions", "1")
    produce(addr, topic, [f"mail-{i}" for i in range(5)], 1)
    stuck = share_consumer(addr, group, **{"share.acknowledgement.mode": "explicit"})
    stuck.subscribe([topic])
    held = drain(stuck, 5)
    assert sorted(v for v, _, _ in held) == [f"mail-{i}" for i in range(5)]
    # `stuck` keeps heartbeating (librdkafka's background thread) but never acknowledges: after the 1 s lock the
    # records go back to the group, and the other member gets them, delivered a second time.
    other = share_consumer(addr, group)
    other.subscribe([topic])
    again = drain(other, 5)
    assert sorted(v for v, _, _ in again) == [f"mail-{i}" for i in range(5)]
    assert all(count == 2 for _, count, _ in again), [c for _, c, _ in again]
    other.commit_sync(30)
    other.close()
    stuck.close()


def test_a_group_id_is_either_a_share_group_or_a_consumer_group(broker):
    addr, _ = broker
    topic, group = new_name("mixed"), new_name("one-kind")
    rill(addr, "topic", "create", topic, "--partitions", "1")
    produce(addr, topic, ["x"], 1)
    share = share_consumer(addr, group)
    share.subscribe([topic])
    assert len(drain(share, 1)) == 1
    consumer = RdConsumer({"bootstrap.servers": addr, "group.id": group, "group.protocol": "consumer",
                           "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    error = None
    deadline = time.monotonic() + 20
    while error is None and time.monotonic() < deadline:
        try:
            message = consumer.poll(0.5)
        except KafkaException as err:
            error = err.args[0]
            break
        if message is not None and message.error() is not None:
            error = message.error()
    assert error is not None, "a consumer group member was admitted to a share group"
    # librdkafka shows the code (GROUP_ID_NOT_FOUND), not the broker's message ("... is a share group").
    assert "group id does not exist" in error.str(), error.str()
    consumer.close()
    share.commit_sync(30)
    share.close()

    # The other way round: a consumer group's id refused to a share consumer.
    taken = new_name("consumers")
    member = RdConsumer({"bootstrap.servers": addr, "group.id": taken, "auto.offset.reset": "earliest"})
    member.subscribe([topic])
    deadline = time.monotonic() + 20
    while not member.assignment() and time.monotonic() < deadline:
        member.poll(0.2)
    assert member.assignment(), "the consumer group member got no partition"
    refused = share_consumer(addr, taken)
    refused.subscribe([topic])
    errors = []
    deadline = time.monotonic() + 20
    while not errors and time.monotonic() < deadline:
        try:
            errors.extend(m.error() for m in refused.poll(0.5) if m.error() is not None)
        except KafkaException as err:
            errors.append(err.args[0])
    assert errors, "a share consumer was admitted to a consumer group"
    assert "protocol" in errors[0].str().lower(), errors[0].str()
    refused.close()
    member.close()


def group_configs(admin, group):
    resource = ConfigResource(ResourceType.GROUP, group)
    return admin.describe_configs([resource])[resource].result()


def alter_group_configs(admin, group, **settings):
    entries = [ConfigEntry(name.replace("_", "."), value, incremental_operation=AlterConfigOpType.SET)
               for name, value in settings.items()]
    resource = ConfigResource(ResourceType.GROUP, group, incremental_configs=entries)
    admin.incremental_alter_configs([resource])[resource].result()


def test_a_groups_own_configs_decide_where_it_starts_and_outlive_a_restart():
    # A broker with Kafka's default start (latest): only the group's own config makes it read what is there.
    flags = ["--admin-listen", "127.0.0.1:0"]
    with tempfile.TemporaryDirectory() as data_dir:
        data = os.path.join(data_dir, "data")
        topic, group, other = new_name("backlog"), new_name("catch-up"), new_name("from-now")
        with running_broker(data, *flags) as addr:
            rill(addr, "topic", "create", topic, "--partitions", "1")
            produce(addr, topic, [f"old-{i}" for i in range(10)], 1)
            admin = AdminClient({"bootstrap.servers": addr})
            before = group_configs(admin, group)
            assert before["share.auto.offset.reset"].value == "latest"
            assert before["share.auto.offset.reset"].source == ConfigSource.DEFAULT_CONFIG.value
            assert before["share.record.lock.duration.ms"].value == "30000"
            alter_group_configs(admin, group, share_auto_offset_reset="earliest",
                                share_record_lock_duration_ms="15000")
            # Refusals name the key and what is allowed.
            for bad, allowed in [({"share_delivery_count_limit": "1"}, "2..=10"),
                                 ({"share_auto_offset_reset": "by_duration:1H"}, "ISO-8601")]:
                with pytest.raises(KafkaException) as refused:
                    alter_group_configs(admin, group, **bad)
                assert allowed in str(refused.value), refused.value
            with pytest.raises(KafkaException) as refused:
                alter_group_configs(admin, group, **{"no_such_key": "1"})
            assert "share.auto.offset.reset" in str(refused.value), refused.value
        # Killed (SIGKILL) and started again: the configs were stored before the alter was answered.
        with running_broker(data, *flags) as addr:
            admin = AdminClient({"bootstrap.servers": addr})
            after = group_configs(admin, group)
            assert after["share.auto.offset.reset"].value == "earliest"
            assert after["share.auto.offset.reset"].source == ConfigSource.GROUP_CONFIG.value
            assert after["share.record.lock.duration.ms"].value == "15000"
            assert group_configs(admin, other)["share.auto.offset.reset"].value == "latest", "one group's alone"
            reader = share_consumer(addr, group)
            reader.subscribe([topic])
            got = drain(reader, 10)
            assert sorted(v for v, _, _ in got) == sorted(f"old-{i}" for i in range(10)), "read from the start"
            reader.commit_sync(30)
            reader.close()
            # A group on the broker's setting starts at the end: it sees only what comes after it joined.
            late = share_consumer(addr, other)
            late.subscribe([topic])
            assert drain(late, 1, seconds=5) == []
            produce(addr, topic, ["new"], 1)
            assert [v for v, _, _ in drain(late, 1)] == ["new"]
            late.commit_sync(30)
            late.close()


def test_a_read_committed_share_group_gets_committed_records_only_once_their_transaction_ends():
    with tempfile.TemporaryDirectory() as data_dir:
        data = os.path.join(data_dir, "data")
        with running_broker(data, *SHARE_FLAGS) as addr:
            topic, committed_group, uncommitted_group = new_name("payments"), new_name("settle"), new_name("peek")
            rill(addr, "topic", "create", topic, "--partitions", "1")
            rill(addr, "group", "config", committed_group, "--config", "share.isolation.level=read_committed")
            producer = Producer({"bootstrap.servers": addr, "transactional.id": new_name("payer")})
            producer.init_transactions(30)

            def transaction(values, end):
                producer.begin_transaction()
                for value in values:
                    producer.produce(topic, value=value.encode(), partition=0)
                assert producer.flush(30) == 0
                if end is not None:
                    end(30)

            transaction([f"kept-{i}" for i in range(3)], producer.commit_transaction)
            transaction([f"dropped-{i}" for i in range(3)], producer.abort_transaction)
            transaction([f"later-{i}" for i in range(2)], None)  # left open
            settle = share_consumer(addr, committed_group)
            settle.subscribe([topic])
            got = drain(settle, 3)
            assert sorted(v for v, _, _ in got) == [f"kept-{i}" for i in range(3)], got
            assert drain(settle, 1, seconds=3) == [], "nothing of the aborted or the open transaction"
            # read_uncommitted (the default) sees every record, the aborted and the open ones too.
            peek = share_consumer(addr, uncommitted_group)
            peek.subscribe([topic])
            seen = sorted(v for v, _, _ in drain(peek, 8))
            assert seen == sorted([f"kept-{i}" for i in range(3)] + [f"dropped-{i}" for i in range(3)]
                                  + [f"later-{i}" for i in range(2)]), seen
            producer.commit_transaction(30)
            assert sorted(v for v, _, _ in drain(settle, 2)) == ["later-0", "later-1"], "once committed"
            for consumer in (settle, peek):
                consumer.commit_sync(30)
                consumer.close()


def test_a_group_started_by_duration_reads_the_records_that_young(broker):
    addr, _ = broker
    topic, group = new_name("events"), new_name("last-hour")
    rill(addr, "topic", "create", topic, "--partitions", "1")
    producer = Producer({"bootstrap.servers": addr, "acks": "all"})
    two_hours_ago = int(time.time() * 1000) - 2 * 3600 * 1000
    for i in range(5):
        producer.produce(topic, value=f"old-{i}".encode(), partition=0, timestamp=two_hours_ago + i)
    for i in range(5):
        producer.produce(topic, value=f"new-{i}".encode(), partition=0)
    assert producer.flush(30) == 0
    admin = AdminClient({"bootstrap.servers": addr})
    alter_group_configs(admin, group, share_auto_offset_reset="by_duration:PT1H")
    assert group_configs(admin, group)["share.auto.offset.reset"].value == "by_duration:PT1H"
    reader = share_consumer(addr, group)
    reader.subscribe([topic])
    got = drain(reader, 5)
    assert sorted(v for v, _, _ in got) == [f"new-{i}" for i in range(5)], got
    assert drain(reader, 1, seconds=3) == [], "nothing older than an hour"
    reader.commit_sync(30)
    reader.close()


def read_all(addr, topic, wanted, seconds=DEADLINE_S):
    """Every record of `topic` from its start, read by a plain consumer until `wanted` came or the deadline."""
    reader = RdConsumer({"bootstrap.servers": addr, "group.id": new_name("inspect"), "auto.offset.reset": "earliest",
                         "enable.auto.commit": False})
    reader.subscribe([topic])
    got = []
    deadline = time.monotonic() + seconds
    while len(got) < wanted and time.monotonic() < deadline:
        message = reader.poll(0.5)
        if message is not None and message.error() is None:
            got.append(message)
    reader.close()
    return got


def dead_letter_headers(message):
    return {key: value.decode() for key, value in message.headers() or []}


def test_a_groups_dead_letter_topic_gets_what_it_rejects_and_gives_up_on(broker):
    """KIP-1191: a share group naming a dead-letter topic has each record it rejects, and each it gives up on at the
    delivery count limit (3 here), written there with headers saying where it was and why; its key and value too
    when the group asks. The topic must opt in (errors.deadletterqueue.group.enable) and carry the broker's prefix
    (dlq.); a group naming one that did not opt in gets nothing written, and its records are archived all the
    same."""
    addr, _ = broker
    from conftest import create_topic
    admin = AdminClient({"bootstrap.servers": addr})
    topic, group, plain_group, closed_group = new_name("orders"), new_name("billing"), new_name("audit"), new_name("late")
    dead, closed = f"dlq.{topic}", f"dlq.{topic}-closed"
    rill(addr, "topic", "create", topic, "--partitions", "2")
    create_topic(admin, dead, {"errors.deadletterqueue.group.enable": "true"})
    create_topic(admin, closed, {})
    topic_config = admin.describe_configs([ConfigResource(ResourceType.TOPIC, dead)])
    (described,) = topic_config.values()
    assert described.result()["errors.deadletterqueue.group.enable"].value == "true"

    alter_group_configs(admin, group, errors_deadletterqueue_topic_name=dead,
                        errors_deadletterqueue_copy_record_enable="true")
    alter_group_configs(admin, plain_group, errors_deadletterqueue_topic_name=dead)
    alter_group_configs(admin, closed_group, errors_deadletterqueue_topic_name=closed)
    configs = group_configs(admin, group)
    assert configs["errors.deadletterqueue.topic.name"].value == dead
    assert configs["errors.deadletterqueue.copy.record.enable"].value == "true"
    assert group_configs(admin, new_name("other"))["errors.deadletterqueue.topic.name"].value == ""
    with pytest.raises(KafkaException) as refused:
        alter_group_configs(admin, group, errors_deadletterqueue_topic_name="__consumer_offsets")
    assert "__" in str(refused.value), refused.value

    produce(addr, topic, ["ok", "poison", "flaky", "fine"], 2)
    kinds = {"ok": AcknowledgeType.ACCEPT, "fine": AcknowledgeType.ACCEPT, "poison": AcknowledgeType.REJECT,
             "flaky": AcknowledgeType.RELEASE}
    consumer = share_consumer(addr, group, **{"share.acknowledgement.mode": "explicit"})
    consumer.subscribe([topic])
    deliveries = {}
    positions = {}
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline and len(deliveries.get("flaky", [])) < 3:
        for message in consumer.poll(0.5):
            assert message.error() is None, message.error()
            value = message.value().decode()
            deliveries.setdefault(value, []).append(message.delivery_count())
            positions[value] = (message.partition(), message.offset())
            consumer.acknowledge(message, kinds[value])
        consumer.commit_sync(30)
    consumer.close()
    assert deliveries["flaky"] == [1, 2, 3] and deliveries["poison"] == [1], deliveries

    letters = read_all(addr, dead, 2)
    assert len(letters) == 2, [dead_letter_headers(m) for m in letters]
    by_value = {m.value().decode(): m for m in letters}
    assert set(by_value) == {"poison", "flaky"}, "copied: the records' values"
    for value, count, why in [("poison", "1", "rejected"), ("flaky", "3", "delivered 3 times")]:
        headers = dead_letter_headers(by_value[value])
        partition, offset = positions[value]
        assert headers["__dlq.errors.topic"] == topic
        assert headers["__dlq.errors.partition"] == str(partition)
        assert headers["__dlq.errors.offset"] == str(offset)
        assert headers["__dlq.errors.group"] == group
        assert headers["__dlq.errors.delivery.count"] == count
        assert why in headers["__dlq.errors.message"], headers

    # Without copy.record.enable: the headers alone. A topic that did not opt in gets nothing.
    for name in (plain_group, closed_group):
        rejecter = share_consumer(addr, name, **{"share.acknowledgement.mode": "explicit"})
        rejecter.subscribe([topic])
        got = drain(rejecter, 4, acknowledge=lambda m: AcknowledgeType.REJECT
                    if m.value() == b"poison" else AcknowledgeType.ACCEPT)
        assert sorted(v for v, _, _ in got) == ["fine", "flaky", "ok", "poison"], got
        rejecter.commit_sync(30)
        assert drain(rejecter, 1, seconds=2) == [], "a rejected record never comes back"
        rejecter.close()
    letters = read_all(addr, dead, 3)
    assert len(letters) == 3
    headerless = [m for m in letters if dead_letter_headers(m)["__dlq.errors.group"] == plain_group]
    assert len(headerless) == 1 and headerless[0].value() is None and headerless[0].key() is None
    assert dead_letter_headers(headerless[0])["__dlq.errors.offset"] == str(positions["poison"][1])
    assert read_all(addr, closed, 1, seconds=3) == [], "not opted in: nothing written"


def test_a_missing_dead_letter_topic_is_created_only_where_the_broker_says_so():
    """Kafka's errors.deadletterqueue.auto.create.topics.enable, rill's --dead-letter-auto-create-topics: off by
    default (the dead letter is not written, the topic not made); on, the first dead letter creates the topic, opted
    in, and lands there."""
    for flags, creates in [(SHARE_FLAGS, False), ([*SHARE_FLAGS, "--dead-letter-auto-create-topics"], True)]:
        for addr, _ in started_broker(flags):
            topic, group = new_name("refunds"), new_name("refunders")
            dead = f"dlq.{topic}"
            rill(addr, "topic", "create", topic, "--partitions", "1")
            rill(addr, "group", "config", group, "--config", f"errors.deadletterqueue.topic.name={dead}")
            produce(addr, topic, ["bad"], 1)
            consumer = share_consumer(addr, group, **{"share.acknowledgement.mode": "explicit"})
            consumer.subscribe([topic])
            got = drain(consumer, 1, acknowledge=lambda m: AcknowledgeType.REJECT)
            assert [v for v, _, _ in got] == ["bad"], got
            consumer.commit_sync(30)
            consumer.close()
            described = subprocess.run([RILL, "topic", "describe", dead, "--broker", addr], capture_output=True,
                                       text=True, timeout=30)
            if not creates:
                assert described.returncode != 0 and dead in described.stderr, described
                continue
            assert described.returncode == 0 and "dead_letter_group_enable" in described.stdout, described
            letters = read_all(addr, dead, 1)
            assert len(letters) == 1 and dead_letter_headers(letters[0])["__dlq.errors.topic"] == topic
