"""Kafka transactions with librdkafka (confluent-kafka) against a real rill broker: a `transactional.id`
producer's init_transactions, begin_transaction, produce, send_offsets_to_transaction, commit_transaction and
abort_transaction (InitProducerId with the id, FindCoordinator of key type 1, AddPartitionsToTxn,
AddOffsetsToTxn, TxnOffsetCommit, EndTxn), read by consumers at both isolation levels.

What the tests hold the broker to, each Kafka's documented semantics:
- a `read_committed` consumer gets the records of committed transactions only, in order, and a
  `read_uncommitted` one gets aborted records too; neither gets the transaction markers, which still take an
  offset each (the offsets of what they read have gaps where the markers are);
- a `read_committed` consumer stops at the last stable offset: nothing at or past the first record of an open
  transaction reaches it, not even a non-transactional record written after it, until that transaction ends;
- a second producer's init_transactions with the same transactional id fences the first (its commit fails
  with a fatal error, its next record is refused) and aborts the transaction the first left open;
- the broker aborts a transaction left open past the producer's `transaction.timeout.ms`, which moves the last
  stable offset on, and the abandoned producer's commit then fails;
- consume-transform-produce: the input group's offsets, sent with send_offsets_to_transaction, are committed
  with the transaction and not by an aborted one, so a restarted consumer resumes where the last committed
  transaction ended and the output holds each result once;
- KafkaJS (its own implementation of the protocol) commits, aborts and sends offsets the same way;
- kafka-python's admin client (what `kafka-transactions.sh` does) lists and describes an open transaction and its
  producer's open transaction start in the partition, and finds nothing hanging; its abort (WriteTxnMarkers) is
  refused for a transaction the coordinator holds, and ends one left hanging in the log when the coordinator's
  state of it was lost;
- across a SIGKILL and restart of the broker, committed transactions stay committed and a transaction open at
  the kill stays invisible to `read_committed` consumers, and is aborted by the next init_transactions with its
  transactional id.

Every wait is a poll with a deadline; the only fixed waits are the short windows in which a `read_committed`
consumer must get nothing. Run by kafka-clients.sh."""

import itertools
import json
import os
import shutil
import subprocess
import tempfile
import time

import pytest

from conftest import committed_offsets, running_broker

RILL = os.environ["RILL_BIN"]
confluent_kafka = pytest.importorskip("confluent_kafka")
Consumer, Producer, TopicPartition = confluent_kafka.Consumer, confluent_kafka.Producer, confluent_kafka.TopicPartition
KafkaError, KafkaException = confluent_kafka.KafkaError, confluent_kafka.KafkaException

names = (f"kafka-txn-{n}" for n in itertools.count())
# How long a consumer may take to reach a record, and a transactional call (init, commit, abort, offsets) to
# finish. Generous for a debug build on a busy machine; a test that passes takes a fraction of it.
DEADLINE_S = 30
TXN_CALL_S = 30
# How long a `read_committed` consumer must get nothing while a transaction is open: several fetches (each
# waits at most `fetch.wait.max.ms`, 100 ms below) come back past the last stable offset with nothing.
QUIET_S = 2.0
# The abandoned transaction's timeout: short, so the broker's abort comes within the test's deadline.
ABANDONED_TXN_TIMEOUT_MS = 2000
# What librdkafka reports when a newer producer with the same transactional id fenced this one (it folds
# INVALID_PRODUCER_EPOCH and PRODUCER_FENCED into _FENCED); _FATAL when a call finds the producer already fenced.
FENCED = {KafkaError._FENCED, KafkaError.PRODUCER_FENCED, KafkaError.INVALID_PRODUCER_EPOCH, KafkaError._FATAL}


@pytest.fixture(scope="module")
def broker():
    with tempfile.TemporaryDirectory() as data_dir, running_broker(data_dir, "--admin-listen", "off") as addr:
        yield addr


def rill(addr, *args):
    done = subprocess.run([RILL, *args, "--broker", addr], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def new_topic(addr):
    """A topic of one partition: every record of a test in one log, so offsets and order can be asserted."""
    name = next(names)
    rill(addr, "topic", "create", name, "--partitions", "1")
    return name


def transactional_producer(addr, transactional_id, settings=None):
    """A librdkafka producer with `transactional_id`, its transactions initialised (InitProducerId with the id:
    this fences any earlier producer with the same id and ends what it left open)."""
    producer = Producer({"bootstrap.servers": addr, "transactional.id": transactional_id, "linger.ms": 5,
                         **(settings or {})})
    producer.init_transactions(TXN_CALL_S)
    return producer


def open_transaction(producer, topic, values):
    """Begins a transaction and writes `values` to partition 0 of `topic` in it, each delivered: in the log,
    neither committed nor aborted. The flush matters for an abort: abort_transaction drops records still queued
    in the client, and a test that says "aborted records are in the log" needs them sent first."""
    producer.begin_transaction()
    for value in values:
        producer.produce(topic, value=value, partition=0)
    assert producer.flush(TXN_CALL_S) == 0, "every record of the transaction delivered in time"


def produce_plain(addr, topic, values):
    """Non-transactional records on partition 0: a `read_committed` consumer gets them once the last stable
    offset passes them, which makes them markers of how far it got."""
    failures = []

    def on_delivery(err, _msg):
        if err is not None:
            failures.append(err)

    producer = Producer({"bootstrap.servers": addr, "enable.idempotence": False})
    for value in values:
        producer.produce(topic, value=value, partition=0, on_delivery=on_delivery)
    assert producer.flush(DEADLINE_S) == 0, "every record delivered or failed in time"
    assert failures == [], failures


class Reader:
    """A librdkafka consumer of partition 0 of `topic` from offset 0 at an isolation level, assigned (no group
    membership); it hands back what it reads as (offset, value)."""

    def __init__(self, addr, topic, isolation):
        self.isolation = isolation
        self.consumer = Consumer({
            "bootstrap.servers": addr, "group.id": next(names), "enable.auto.commit": False,
            "isolation.level": isolation, "fetch.wait.max.ms": 100,
        })
        self.consumer.assign([TopicPartition(topic, 0, 0)])

    def __enter__(self):
        return self

    def __exit__(self, *_):
        self.consumer.close()

    def until(self, last):
        """The records read up to and including the first valued `last`."""
        read = []
        deadline = time.monotonic() + DEADLINE_S
        while not read or read[-1][1] != last:
            assert time.monotonic() < deadline, (
                f"a {self.isolation} consumer read {read} but no {last!r} within {DEADLINE_S} s")
            read += self.poll()
        return read

    def during(self, seconds):
        """The records read in the next `seconds`."""
        read = []
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            read += self.poll()
        return read

    def poll(self):
        message = self.consumer.poll(0.1)
        if message is None or message.error() is not None:
            return []
        return [(message.offset(), message.value())]


def read(addr, topic, isolation, last):
    """What a new consumer at `isolation` reads of partition 0 of `topic`, from offset 0 up to and including
    the first record valued `last`, as (offset, value)."""
    with Reader(addr, topic, isolation) as reader:
        return reader.until(last)


def values(records):
    return [value for _, value in records]


def test_read_committed_gets_committed_transactions_only_and_read_uncommitted_gets_aborted_ones_too(broker):
    topic = new_topic(broker)
    producer = transactional_producer(broker, next(names))
    open_transaction(producer, topic, [b"c0", b"c1", b"c2"])
    producer.commit_transaction(TXN_CALL_S)
    open_transaction(producer, topic, [b"a0", b"a1"])
    producer.abort_transaction(TXN_CALL_S)
    open_transaction(producer, topic, [b"c3", b"c4"])
    producer.commit_transaction(TXN_CALL_S)

    committed = read(broker, topic, "read_committed", b"c4")
    assert values(committed) == [b"c0", b"c1", b"c2", b"c3", b"c4"], "committed records only, in order"
    uncommitted = read(broker, topic, "read_uncommitted", b"c4")
    assert values(uncommitted) == [b"c0", b"c1", b"c2", b"a0", b"a1", b"c3", b"c4"], "aborted ones too, in order"
    # The commit marker at 3 and the abort marker at 6 are never handed to the application, but take offsets.
    assert [offset for offset, _ in committed] == [0, 1, 2, 7, 8]
    assert [offset for offset, _ in uncommitted] == [0, 1, 2, 4, 5, 7, 8]


def test_an_open_transaction_holds_read_committed_consumers_at_its_first_offset_until_it_commits(broker):
    topic = new_topic(broker)
    producer = transactional_producer(broker, next(names))
    open_transaction(producer, topic, [b"c0"])
    producer.commit_transaction(TXN_CALL_S)
    open_transaction(producer, topic, [b"o0", b"o1"])
    # Not transactional, but past the open transaction's first offset: held back with it.
    produce_plain(broker, topic, [b"after"])
    # Offset 1 is the first transaction's commit marker.
    assert read(broker, topic, "read_uncommitted", b"after") == [(0, b"c0"), (2, b"o0"), (3, b"o1"), (4, b"after")]

    with Reader(broker, topic, "read_committed") as committed:
        assert committed.until(b"c0") == [(0, b"c0")]
        assert committed.during(QUIET_S) == [], "nothing at or past the last stable offset (2) while it is open"
        producer.commit_transaction(TXN_CALL_S)
        assert committed.until(b"after") == [(2, b"o0"), (3, b"o1"), (4, b"after")], "all of it once committed"


def test_a_second_init_transactions_fences_the_first_producer_and_aborts_its_open_transaction(broker):
    topic, transactional_id = new_topic(broker), next(names)
    zombie = transactional_producer(broker, transactional_id)
    open_transaction(zombie, topic, [b"z0", b"z1"])
    # The zombie's replacement (a restarted instance of the same application): its init_transactions bumps the
    # id's epoch and aborts what the zombie left open.
    successor = transactional_producer(broker, transactional_id)
    open_transaction(successor, topic, [b"s0", b"s1"])
    successor.commit_transaction(TXN_CALL_S)

    # The zombie does not know yet: its next record goes out with the old epoch and is refused, and its commit
    # (EndTxn with the old epoch) could not succeed either. (Should it know already, produce() itself fails.)
    with pytest.raises(KafkaException) as failed:
        zombie.produce(topic, value=b"z2", partition=0)
        zombie.commit_transaction(TXN_CALL_S)
    error = failed.value.args[0]
    assert error.fatal() or error.code() in FENCED, f"the fenced producer's commit failed with {error!r}"

    # The successor goes on; its next commit is also the end of what the consumers below must read.
    open_transaction(successor, topic, [b"s2"])
    successor.commit_transaction(TXN_CALL_S)
    assert values(read(broker, topic, "read_committed", b"s2")) == [b"s0", b"s1", b"s2"], "the zombie's aborted"
    # z2 was never stored: the refused record is not in the log at any isolation level.
    assert values(read(broker, topic, "read_uncommitted", b"s2")) == [b"z0", b"z1", b"s0", b"s1", b"s2"]


def test_the_broker_aborts_a_transaction_left_open_past_its_timeout(broker):
    topic = new_topic(broker)
    abandoned = transactional_producer(broker, next(names), {"transaction.timeout.ms": ABANDONED_TXN_TIMEOUT_MS})
    open_transaction(abandoned, topic, [b"x0", b"x1"])
    # Past the abandoned transaction: a `read_committed` consumer gets it only once the transaction has ended,
    # and nothing but the broker's timeout ends it.
    produce_plain(broker, topic, [b"after"])
    assert values(read(broker, topic, "read_uncommitted", b"after")) == [b"x0", b"x1", b"after"]

    # Offsets 0 and 1 are the aborted records, 3 the abort marker.
    assert read(broker, topic, "read_committed", b"after") == [(2, b"after")], (
        "the last stable offset moved past the timed-out transaction, and its records were aborted")
    with pytest.raises(KafkaException) as failed:
        abandoned.commit_transaction(TXN_CALL_S)
    error = failed.value.args[0]
    # Not a retriable error (a timeout, say): the client must know the transaction is gone, not wait for it.
    assert error.fatal() or error.txn_requires_abort(), f"the timed-out transaction's commit failed with {error!r}"


def group_consumer(addr, group, topic):
    """A member of `group` reading `topic` as an exactly-once application does: only committed input, and no
    commits of its own (its offsets go with the producer's transactions)."""
    consumer = Consumer({
        "bootstrap.servers": addr, "group.id": group, "isolation.level": "read_committed",
        "enable.auto.commit": False, "auto.offset.reset": "earliest",
        "session.timeout.ms": 6000, "heartbeat.interval.ms": 200,
    })
    consumer.subscribe([topic])
    return consumer


def take(consumer, count):
    """The next `count` records `consumer` hands over."""
    messages = []
    deadline = time.monotonic() + DEADLINE_S
    while len(messages) < count:
        assert time.monotonic() < deadline, f"{len(messages)} of {count} input records within {DEADLINE_S} s"
        message = consumer.poll(0.1)
        if message is not None and message.error() is None:
            messages.append(message)
    return messages


def transform_round(consumer, producer, sink, count, commit):
    """One consume-transform-produce round: `count` input records read, each written upper-cased to `sink`, the
    consumer's position sent as the group's offsets within the transaction, which is then committed or
    aborted. Returns the input values read."""
    messages = take(consumer, count)
    producer.begin_transaction()
    for message in messages:
        producer.produce(sink, value=message.value().upper(), partition=0)
    producer.send_offsets_to_transaction(consumer.position(consumer.assignment()),
                                         consumer.consumer_group_metadata(), TXN_CALL_S)
    if commit:
        producer.commit_transaction(TXN_CALL_S)
    else:
        # Delivered first, so the aborted output is in the log for the read_uncommitted check.
        assert producer.flush(TXN_CALL_S) == 0
        producer.abort_transaction(TXN_CALL_S)
    return [message.value() for message in messages]


def fetched_offset(addr, group, topic):
    """The group's committed offset of partition 0 as librdkafka fetches it (OffsetFetch asking for stable
    offsets, as a `read_committed` consumer does), or the error it got instead."""
    checker = Consumer({"bootstrap.servers": addr, "group.id": group, "isolation.level": "read_committed",
                        "enable.auto.commit": False})
    try:
        [fetched] = checker.committed([TopicPartition(topic, 0)], timeout=10)
        return fetched.offset if fetched.error is None else fetched.error
    except KafkaException as err:
        return err.args[0]
    finally:
        checker.close()


def assert_group_offset(addr, group, topic, expected):
    """The group's committed offset of partition 0 is, or soon becomes, `expected`, both as librdkafka fetches
    it and as `rill group describe` shows it. Waited for: in Kafka the offsets of a committed transaction are
    written after EndTxn is answered, with its markers. (An aborted round's offsets that moved late would still
    show: the restarted consumer would not read that round's input again.)"""
    deadline = time.monotonic() + DEADLINE_S
    while True:
        seen = fetched_offset(addr, group, topic), committed_offsets(addr, group, topic)
        if seen == (expected, {0: expected}):
            return
        assert time.monotonic() < deadline, (
            f"(OffsetFetch, rill group describe) of {group} gave {seen}, not {expected} within {DEADLINE_S} s")
        time.sleep(0.1)


def test_consume_transform_produce_commits_the_group_offsets_with_the_transaction_and_not_with_an_abort(broker):
    source, sink, group = new_topic(broker), new_topic(broker), next(names)
    produce_plain(broker, source, [f"in-{i}".encode() for i in range(6)])
    producer = transactional_producer(broker, next(names))

    consumer = group_consumer(broker, group, source)
    try:
        assert transform_round(consumer, producer, sink, 3, commit=True) == [b"in-0", b"in-1", b"in-2"]
        assert_group_offset(broker, group, source, 3)
        # A failed round: its output and its offsets are dropped together.
        assert transform_round(consumer, producer, sink, 3, commit=False) == [b"in-3", b"in-4", b"in-5"]
        assert_group_offset(broker, group, source, 3)
    finally:
        consumer.close()

    # The application restarted: it resumes where the last committed transaction left the group, and does the
    # failed round again.
    consumer = group_consumer(broker, group, source)
    try:
        assert transform_round(consumer, producer, sink, 3, commit=True) == [b"in-3", b"in-4", b"in-5"]
    finally:
        consumer.close()
    assert_group_offset(broker, group, source, 6)

    produce_plain(broker, sink, [b"end"])
    expected = [b"IN-0", b"IN-1", b"IN-2", b"IN-3", b"IN-4", b"IN-5", b"end"]
    assert values(read(broker, sink, "read_committed", b"end")) == expected, "each result once, in order"
    assert values(read(broker, sink, "read_uncommitted", b"end")) == expected[:3] + expected[3:6] * 2 + [b"end"], (
        "the aborted round's output is in the log, dropped by read_committed only")


def test_a_transaction_open_at_a_broker_sigkill_is_aborted_by_the_next_init_transactions_after_restart():
    transactional_id = next(names)
    with tempfile.TemporaryDirectory() as data_dir:
        # running_broker ends its broker with SIGKILL: no shutdown, whatever is on disk is what the next one finds.
        with running_broker(data_dir, "--admin-listen", "off") as addr:
            topic = new_topic(addr)
            # Its own 60 s timeout (librdkafka's default, said here) is far off: only init_transactions can end
            # the open transaction within this test.
            before = transactional_producer(addr, transactional_id, {"transaction.timeout.ms": 60_000})
            open_transaction(before, topic, [b"c0", b"c1"])
            before.commit_transaction(TXN_CALL_S)
            open_transaction(before, topic, [b"o0", b"o1"])

        # `before` is left as it is, connected to the dead broker; the restarted one has another address.
        with running_broker(data_dir, "--admin-listen", "off") as addr:
            with Reader(addr, topic, "read_committed") as committed:
                assert committed.until(b"c1") == [(0, b"c0"), (1, b"c1")], "the commit survived the kill"
                assert committed.during(QUIET_S) == [], "the transaction open at the kill was not taken as committed"
                after = transactional_producer(addr, transactional_id)
                open_transaction(after, topic, [b"c2"])
                after.commit_transaction(TXN_CALL_S)
                # Offsets 3 and 4 are o0 and o1, 5 the abort marker init_transactions wrote, 7 c2's commit marker.
                assert committed.until(b"c2") == [(6, b"c2")], "the open transaction was aborted, then c2 committed"
            assert values(read(addr, topic, "read_committed", b"c2")) == [b"c0", b"c1", b"c2"]
            assert values(read(addr, topic, "read_uncommitted", b"c2")) == [b"c0", b"c1", b"o0", b"o1", b"c2"]


KAFKAJS = os.path.join(os.getcwd(), "target", "compat", "node_modules", "kafkajs")


@pytest.mark.skipif(shutil.which("node") is None or not os.path.isdir(KAFKAJS),
                    reason="node or kafkajs is not installed (see kafka-clients.sh)")
def test_kafkajs_transactions_commit_abort_and_send_offsets(broker):
    """A second implementation of the protocol: KafkaJS speaks Kafka's transactional APIs itself."""
    topic, group = new_topic(broker), next(names)
    script = os.path.join(os.path.dirname(__file__), "kafkajs_transactions.js")
    done = subprocess.run(
        ["node", script, broker, topic, group], capture_output=True, text=True, timeout=180,
        env={**os.environ, "NODE_PATH": os.path.dirname(KAFKAJS)},
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["committed"] == ["c0", "c1", "c2"], "read_committed: the committed transactions, in order"
    assert seen["uncommitted"] == ["c0", "c1", "a0", "c2"], "read_uncommitted: the aborted record too"
    offsets = {int(p["partition"]): int(p["offset"]) for t in seen["offsets"] for p in t["partitions"]}
    assert offsets == {0: 5}, "the committed transaction's offset, not the aborted one's"


def test_kafka_pythons_admin_lists_and_describes_an_open_transaction_and_its_producer(broker):
    """What `kafka-transactions.sh list/describe/describe-producers` shows, through kafka-python's admin client:
    an open transaction, its partition, and where it starts in the log; then, committed, no longer open."""
    kafka = pytest.importorskip("kafka")
    topic = new_topic(broker)
    producer = transactional_producer(broker, "admin-view")
    producer.begin_transaction()
    producer.produce(topic, b"pending", partition=0)
    producer.flush(TXN_CALL_S)
    admin = kafka.KafkaAdminClient(bootstrap_servers=broker)
    try:
        # The module's broker holds the other tests' ids too, none of them open by now.
        listed = [t for listings in admin.list_transactions(state_filters=["Ongoing"]).values() for t in listings]
        assert [(t.transactional_id, t.state.value) for t in listed] == [("admin-view", "Ongoing")], listed
        described = admin.describe_transactions(["admin-view"])["admin-view"]
        assert (described.state.value, described.producer_epoch) == ("Ongoing", 0), described
        assert described.topic_partitions == {kafka.TopicPartition(topic, 0)}, described
        assert described.transaction_start_time_ms > 0 and described.transaction_timeout_ms == 60000, described
        partition = kafka.TopicPartition(topic, 0)
        active = admin.describe_producers([partition])[partition].active_producers
        assert [(p.producer_id, p.current_transaction_start_offset) for p in active] == \
            [(described.producer_id, 0)], active
        assert admin.find_hanging_transactions() == [], "open for less than its timeout: not hanging"
        producer.commit_transaction(TXN_CALL_S)
        described = admin.describe_transactions(["admin-view"])["admin-view"]
        assert (described.state.value, described.topic_partitions) == ("CompleteCommit", set()), described
        active = admin.describe_producers([partition])[partition].active_producers
        assert [p.current_transaction_start_offset for p in active] == [-1], active
    finally:
        admin.close()


def test_kafka_pythons_admin_aborts_a_transaction_its_coordinator_lost_and_not_one_it_holds():
    """`kafka-transactions.sh abort`, through kafka-python's admin client (WriteTxnMarkers to the partition's
    leader): refused for a transaction its coordinator still has open; for one left open in the log after the
    coordinator's state of it was lost (its file deleted while the broker was down: a hanging transaction),
    DescribeProducers shows where it starts, the abort ends it, and read_committed consumers move past it."""
    kafka = pytest.importorskip("kafka")
    transactional_id = next(names)
    with tempfile.TemporaryDirectory() as data_dir:
        with running_broker(data_dir, "--admin-listen", "off") as addr:
            topic = new_topic(addr)
            producer = transactional_producer(addr, transactional_id, {"transaction.timeout.ms": 900_000})
            open_transaction(producer, topic, [b"h0", b"h1"])
            partition = kafka.TopicPartition(topic, 0)
            admin = kafka.KafkaAdminClient(bootstrap_servers=addr)
            try:
                [open_one] = admin.describe_producers([partition])[partition].active_producers
                spec = kafka.admin.AbortTransactionSpec(partition, open_one.producer_id, open_one.producer_epoch)
                with pytest.raises(kafka.errors.InvalidTxnStateError):
                    admin.abort_transaction(spec)
            finally:
                admin.close()
        shutil.rmtree(os.path.join(data_dir, "__transactions"))

        with running_broker(data_dir, "--admin-listen", "off") as addr:
            produce_plain(addr, topic, [b"after"])
            with Reader(addr, topic, "read_committed") as committed:
                assert committed.during(QUIET_S) == [], "the hanging transaction holds read_committed readers"
                admin = kafka.KafkaAdminClient(bootstrap_servers=addr)
                try:
                    [hanging] = admin.describe_producers([partition])[partition].active_producers
                    assert hanging.current_transaction_start_offset == 0, hanging
                    stale = kafka.admin.AbortTransactionSpec(partition, hanging.producer_id, hanging.producer_epoch - 1)
                    with pytest.raises(kafka.errors.InvalidProducerEpochError):
                        admin.abort_transaction(stale)
                    admin.abort_transaction(
                        kafka.admin.AbortTransactionSpec(partition, hanging.producer_id, hanging.producer_epoch))
                    [ended] = admin.describe_producers([partition])[partition].active_producers
                    assert ended.current_transaction_start_offset == -1, ended
                finally:
                    admin.close()
                assert committed.until(b"after") == [(2, b"after")], "the abort moved the last stable offset on"
            assert values(read(addr, topic, "read_uncommitted", b"after")) == [b"h0", b"h1", b"after"]
