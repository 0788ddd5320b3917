"""Real Kafka clients' consumer groups against rill's group coordinator: kafka-python and confluent-kafka
(librdkafka, eager and cooperative-sticky) groups share a topic's partitions, hand a leaving member's over and
read every record once; commits resume a new consumer and show in `rill group describe`; kcat's balanced
consumer. Run by kafka-clients.sh, on the broker of conftest.py."""

import itertools
import os
import shutil
import subprocess
import threading
import time

import pytest
from confluent_kafka import Consumer as RdConsumer
from confluent_kafka import TopicPartition as RdTopicPartition
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from conftest import committed_offsets as committed

RILL = os.environ["RILL_BIN"]
KCAT = shutil.which("kcat")
names = (f"kafka-groups-{n}" for n in itertools.count())
DEADLINE_S = 90


def rill(addr, *args):
    done = subprocess.run([RILL, *args, "--broker", addr], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def new_topic(addr, partitions):
    name = next(names)
    rill(addr, "topic", "create", name, "--partitions", str(partitions))
    return name


def produce(addr, topic, partitions, per_partition, start=0):
    """`per_partition` records into each partition, valued "p:i" from `start`."""
    producer = KafkaProducer(bootstrap_servers=addr, acks="all", enable_idempotence=False)
    try:
        for p in range(partitions):
            for i in range(start, start + per_partition):
                producer.send(topic, value=f"{p}:{i}".encode(), partition=p)
        producer.flush(timeout=30)
    finally:
        producer.close(timeout=10)


def wait_for(condition, what, members=()):
    """Waits for `condition`; a member that failed ends the wait at once with its error, and a timeout says what
    each member held."""
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        failed = [m.error for m in members if m.error is not None]
        assert not failed, f"a member failed while waiting for {what}: {failed!r}"
        held = [sorted(m.assigned) for m in members]
        assert time.monotonic() < deadline, f"timed out waiting for {what}; the members held {held}"
        time.sleep(0.05)


class Member(threading.Thread):
    """One group member on its own thread: polls, records what it read, commits after each poll."""

    def __init__(self, make_consumer, topic, seen, lock):
        super().__init__(daemon=True)
        self.make_consumer, self.topic, self.seen, self.lock = make_consumer, topic, seen, lock
        self.stop = threading.Event()
        self.assigned = set()
        self.error = None
        # What this member read, as (partition, offset), to say who read a record twice (`read_twice`).
        self.read = []

    def run(self):
        try:
            self.consume()
        except Exception as err:  # noqa: BLE001 - surfaced by the test through self.error
            self.error = err

    def record(self, partition, offset, value):
        with self.lock:
            self.seen.append((partition, offset, value))
            self.read.append((partition, offset))


def read_twice(members):
    """What was read more than once, and by which member (its index in `members`): the same offset read twice
    is a consumer's doing (a lost commit, or two owners of a partition at once); a value at two offsets was
    written twice (a producer's retry). For the message of a failed exactly-once assertion."""
    readers = {}
    for index, member in enumerate(members):
        for at in member.read:
            readers.setdefault(at, []).append(index)
    twice = {at: who for at, who in sorted(readers.items()) if len(who) > 1}
    if not twice:
        return "no offset was read twice: a record is in the log twice, or was never read"
    return f"(partition, offset): the members that read it, for each read more than once: {twice}"


def subscribe_kafka_python(consumer, topic):
    """Subscribes once the consumer knows every partition of `topic`.

    Works around a kafka-python 3.0.12 bug that stalls a group against any broker: a leader that assigned before
    it had the topic's metadata rejoins when the metadata arrives, and if `poll()` times out during that rejoin,
    the next `poll()` no longer sees a reason to rejoin (the leader's snapshot now matches) and never finishes it:
    the member stays "rebalancing" with its heartbeats off until the coordinator expires it, and never notices.
    Knowing the partitions before the first join keeps the leader from assigning without them."""
    consumer.subscribe([topic])
    deadline = time.monotonic() + DEADLINE_S
    while len(consumer.partitions_for_topic(topic)) == 0:
        assert time.monotonic() < deadline, f"kafka-python never learned the partitions of {topic}"
        time.sleep(0.05)


class KafkaPythonMember(Member):
    def consume(self):
        consumer = self.make_consumer()
        subscribe_kafka_python(consumer, self.topic)
        try:
            while not self.stop.is_set():
                # Long enough for a rejoin to complete within one poll (see subscribe_kafka_python).
                batches = consumer.poll(timeout_ms=1000)
                for tp, records in batches.items():
                    for r in records:
                        self.record(tp.partition, r.offset, r.value)
                if batches:
                    consumer.commit()
                self.assigned = {tp.partition for tp in consumer.assignment()}
        finally:
            consumer.close()


class ConfluentMember(Member):
    def consume(self):
        consumer = self.make_consumer()
        consumer.subscribe([self.topic])
        try:
            while not self.stop.is_set():
                message = consumer.poll(0.1)
                if message is not None and message.error() is None:
                    self.record(message.partition(), message.offset(), message.value())
                    consumer.commit(message=message, asynchronous=False)
                self.assigned = {tp.partition for tp in consumer.assignment()}
        finally:
            consumer.close()


def run_group_scenario(addr, member_class, make_consumer, members=3, partitions=6):
    """`members` members share the partitions; one leaves; the rest take its partitions; every record is read
    exactly once."""
    topic = new_topic(addr, partitions)
    seen, lock = [], threading.Lock()
    group = [member_class(lambda: make_consumer(topic), topic, seen, lock) for _ in range(members)]
    for member in group:
        member.start()
    try:
        wait_for(lambda: all(len(m.assigned) == partitions // members for m in group), "a balanced assignment",
                 group)
        assert set().union(*(m.assigned for m in group)) == set(range(partitions))
        produce(addr, topic, partitions, 20)
        wait_for(lambda: len(seen) >= partitions * 20, "the first records", group)
        everyone = list(group)
        leaving = group.pop()
        leaving.stop.set()
        leaving.join(timeout=30)
        wait_for(lambda: set().union(*(m.assigned for m in group)) == set(range(partitions))
                 and sum(len(m.assigned) for m in group) == partitions, "the leaver's partitions to move", group)
        produce(addr, topic, partitions, 20, start=20)
        wait_for(lambda: len(seen) >= partitions * 40, "the records after the leave", group)
        time.sleep(1)  # anything read twice would show up by now
    finally:
        for member in group:
            member.stop.set()
        for member in group:
            member.join(timeout=30)
    assert [m.error for m in group] == [None] * len(group)
    # A leaver whose last commit failed would show below only as records read twice: say so first.
    assert leaving.error is None, f"the member that left failed: {leaving.error!r}"
    values = sorted(v for _, _, v in seen)
    expected = sorted(f"{p}:{i}".encode() for p in range(partitions) for i in range(40))
    assert values == expected, f"every record read exactly once; {read_twice(everyone)}"
    return topic


def kafka_python_consumer(addr, group, **options):
    return KafkaConsumer(
        bootstrap_servers=addr, group_id=group, enable_auto_commit=False, auto_offset_reset="earliest",
        session_timeout_ms=6000, heartbeat_interval_ms=200, **options,
    )


def confluent_consumer(addr, group, **options):
    return RdConsumer({
        "bootstrap.servers": addr, "group.id": group, "enable.auto.commit": False,
        "auto.offset.reset": "earliest", "session.timeout.ms": 6000, "heartbeat.interval.ms": 200,
        **options,
    })


def test_a_kafka_python_group_of_three_shares_partitions_and_takes_over_from_a_leaver(broker_addr):
    group = next(names)
    topic = run_group_scenario(broker_addr, KafkaPythonMember, lambda t: kafka_python_consumer(broker_addr, group))
    # What kafka-python committed is rill's committed offsets: `rill group describe` shows them.
    assert committed(broker_addr, group, topic) == {p: 40 for p in range(6)}
    assert group in rill(broker_addr, "group", "list").split(), "rill lists the Kafka group"


@pytest.mark.parametrize("strategy", ["range", "cooperative-sticky"])
def test_a_confluent_kafka_group_shares_partitions_and_takes_over_from_a_leaver(broker_addr, strategy):
    group = next(names)
    options = {"partition.assignment.strategy": strategy}
    topic = run_group_scenario(broker_addr, ConfluentMember,
                               lambda t: confluent_consumer(broker_addr, group, **options))
    assert committed(broker_addr, group, topic) == {p: 40 for p in range(6)}


class StaticConfluentMember(ConfluentMember):
    """A librdkafka member with a `group.instance.id`, counting the assignments it is given."""

    def __init__(self, *args):
        super().__init__(*args)
        self.assignments = 0

    def consume(self):
        consumer = self.make_consumer()
        consumer.subscribe([self.topic], on_assign=lambda *_: self.count_assignment())
        try:
            while not self.stop.is_set():
                message = consumer.poll(0.1)
                if message is not None and message.error() is None:
                    self.record(message.partition(), message.offset(), message.value())
                self.assigned = {tp.partition for tp in consumer.assignment()}
        finally:
            consumer.close()  # a static member does not leave the group on close

    def count_assignment(self):
        self.assignments += 1


def test_a_restarted_static_confluent_kafka_member_gets_its_partitions_back_without_a_rebalance(broker_addr):
    """KIP-345: a member's new process with the same group.instance.id takes the old one's place and partitions
    within the session timeout, and the other member is not rebalanced."""
    group, topic = next(names), new_topic(broker_addr, 4)
    seen, lock = [], threading.Lock()

    def member(instance):
        return StaticConfluentMember(
            lambda: confluent_consumer(broker_addr, group, **{"group.instance.id": instance,
                                                              "session.timeout.ms": 10000}),
            topic, seen, lock)

    first, second = member("pod-a"), member("pod-b")
    first.start()
    second.start()
    group_now = [first, second]
    try:
        wait_for(lambda: len(first.assigned) == 2 and len(second.assigned) == 2, "a balanced assignment", group_now)
        held, assignments = set(second.assigned), first.assignments
        second.stop.set()
        second.join(timeout=30)
        restarted = member("pod-b")
        restarted.start()
        group_now = [first, restarted]
        wait_for(lambda: restarted.assigned == held, "the restarted member to get its partitions back", group_now)
        time.sleep(1)  # a rebalance of the first member would show by now
        assert first.assignments == assignments, "the other member was not rebalanced"
        assert len(first.assigned) == 2
        produce(broker_addr, topic, 4, 5)
        wait_for(lambda: len(seen) >= 20, "every record", group_now)
    finally:
        for m in group_now:
            m.stop.set()
        for m in group_now:
            m.join(timeout=30)
    assert [m.error for m in group_now] == [None, None]
    assert sorted(v for _, _, v in seen) == sorted(f"{p}:{i}".encode() for p in range(4) for i in range(5))


def test_kafka_python_commits_and_a_new_member_resumes_after_them(broker_addr):
    group, topic = next(names), new_topic(broker_addr, 1)
    produce(broker_addr, topic, 1, 10)
    first = kafka_python_consumer(broker_addr, group, max_poll_records=4)
    try:
        subscribe_kafka_python(first, topic)
        read = []
        deadline = time.monotonic() + DEADLINE_S
        while not read and time.monotonic() < deadline:
            read = [r.offset for records in first.poll(timeout_ms=200).values() for r in records]
        assert read == [0, 1, 2, 3]
        first.commit()
    finally:
        first.close()
    assert committed(broker_addr, group, topic) == {0: 4}
    second = kafka_python_consumer(broker_addr, group)
    try:
        subscribe_kafka_python(second, topic)
        resumed = []
        while len(resumed) < 6 and time.monotonic() < deadline:
            resumed += [r.offset for records in second.poll(timeout_ms=200).values() for r in records]
        assert resumed == list(range(4, 10))
    finally:
        second.close()


def test_confluent_kafka_commits_and_a_new_member_resumes_after_them(broker_addr):
    group, topic = next(names), new_topic(broker_addr, 2)
    produce(broker_addr, topic, 2, 5)
    consumer = confluent_consumer(broker_addr, group)
    consumer.assign([RdTopicPartition(topic, 0, 0), RdTopicPartition(topic, 1, 0)])
    consumer.commit(offsets=[RdTopicPartition(topic, 0, 3), RdTopicPartition(topic, 1, 5)], asynchronous=False)
    consumer.close()
    assert committed(broker_addr, group, topic) == {0: 3, 1: 5}
    consumer = confluent_consumer(broker_addr, group)
    try:
        consumer.subscribe([topic])
        values = []
        deadline = time.monotonic() + DEADLINE_S
        while len(values) < 2 and time.monotonic() < deadline:
            message = consumer.poll(0.2)
            if message is not None and message.error() is None:
                values.append(message.value())
        assert values == [b"0:3", b"0:4"]
        stored = consumer.committed([RdTopicPartition(topic, 0), RdTopicPartition(topic, 1)], timeout=10)
        assert [tp.offset for tp in stored] == [3, 5]
    finally:
        consumer.close()


@pytest.mark.skipif(KCAT is None, reason="kcat is not installed (see kafka-clients.sh)")
def test_kcat_balanced_consumer_reads_every_partition_and_commits(broker_addr):
    group, topic = next(names), new_topic(broker_addr, 3)
    produce(broker_addr, topic, 3, 5)
    done = subprocess.run(
        [KCAT, "-b", broker_addr, "-G", group, topic, "-e", "-q", "-f", "%s\\n",
         "-X", "auto.offset.reset=earliest"],
        capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert sorted(done.stdout.split()) == sorted(f"{p}:{i}" for p in range(3) for i in range(5))
    assert committed(broker_addr, group, topic) == {p: 5 for p in range(3)}


KAFKAJS = os.path.join(os.getcwd(), "target", "compat", "node_modules", "kafkajs")


@pytest.mark.skipif(shutil.which("node") is None or not os.path.isdir(KAFKAJS),
                    reason="node or kafkajs is not installed (see kafka-clients.sh)")
def test_a_kafkajs_group_reads_every_record_once_through_a_leave_and_commits(broker_addr):
    group, topic = next(names), new_topic(broker_addr, 4)
    script = os.path.join(os.path.dirname(__file__), "kafkajs_group.js")
    done = subprocess.run(
        ["node", script, broker_addr, topic, group, "4"], capture_output=True, text=True, timeout=120,
        env={**os.environ, "NODE_PATH": os.path.dirname(KAFKAJS)},
    )
    assert done.returncode == 0, done.stderr
    import json
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert sorted(r["value"] for r in seen) == sorted(f"{p}:{i}" for p in range(4) for i in range(40))
    assert {r["member"] for r in seen} == {"first", "second"}, "both members read"
    assert committed(broker_addr, group, topic) == {p: 40 for p in range(4)}
