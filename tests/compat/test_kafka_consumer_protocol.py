"""KIP-848's consumer group protocol (`group.protocol=consumer`, ConsumerGroupHeartbeat) with a real client:
confluent-kafka (librdkafka 2.12) members whose assignment the broker computes. A group of three shares a
6-partition topic, one leaves, the others take its partitions over, every record is read exactly once;
`rill group describe` shows the members and what each owns; commits resume a new member; a member killed with
SIGKILL loses its partitions to the survivor once its session expires; a static member (`group.instance.id`)
closed and restarted within its session gets its own partitions back and nobody else's move. Run by
kafka-clients.sh, against its own broker with short KIP-848 sessions (a member that dies is noticed in seconds)."""

import os
import re
import subprocess
import sys
import tempfile
import threading
import time

import pytest
from confluent_kafka import Consumer as RdConsumer
from confluent_kafka import ConsumerGroupState, ConsumerGroupType, KafkaException
from confluent_kafka.admin import AdminClient

from conftest import running_broker
from test_kafka_groups import DEADLINE_S, ConfluentMember, committed, new_topic, produce, read_twice, rill, wait_for

RILL = os.environ["RILL_BIN"]
group_names = (f"kip848-{n}" for n in range(1_000_000))


@pytest.fixture(scope="module")
def broker_addr():
    """A `rill broker` process on a free port whose KIP-848 members heartbeat every 500 ms and expire after 6 s."""
    with tempfile.TemporaryDirectory() as data_dir:
        config = os.path.join(data_dir, "rill.toml")
        with open(config, "w") as out:
            out.write("group_consumer_session_timeout_ms = 6000\ngroup_consumer_heartbeat_interval_ms = 500\n")
        flags = ["--config", config, "--admin-listen", "127.0.0.1:0"]
        with running_broker(os.path.join(data_dir, "data"), *flags) as addr:
            yield addr


def consumer_protocol_consumer(addr, group, **options):
    # session.timeout.ms and heartbeat.interval.ms are the broker's under KIP-848: librdkafka refuses them here.
    return RdConsumer({
        "bootstrap.servers": addr, "group.id": group, "group.protocol": "consumer",
        "enable.auto.commit": False, "auto.offset.reset": "earliest", **options,
    })


def owned_in_describe(addr, group, topic):
    """Each member's partitions of `topic`, as `rill group describe` prints them."""
    owned = []
    for line in rill(addr, "group", "describe", group).splitlines():
        match = re.search(re.escape(topic) + r":([\d,]+)", line)
        if match:
            owned.append({int(p) for p in match.group(1).split(",")})
    return owned


def check_admin_describe(addr, group, topic, assignor, held):
    """librdkafka's describe_consumer_groups (ConsumerGroupDescribe, KIP-848's describe) shows a stable
    consumer-protocol group with its assignor, and each member with the partitions it holds as its assignment
    and its target."""
    admin = AdminClient({"bootstrap.servers": addr})
    found = []
    def stable():
        found.append(admin.describe_consumer_groups([group])[group].result(timeout=10))
        return found[-1].state == ConsumerGroupState.STABLE
    wait_for(stable, "the group described as stable")
    described = found[-1]
    assert described.type == ConsumerGroupType.CONSUMER
    assert described.partition_assignor == assignor
    assert not described.is_simple_consumer_group
    assert len(described.members) == len(held)
    shown = []
    for member in described.members:
        assert member.client_id and member.host, vars(member)
        owned = {tp.partition for tp in member.assignment.topic_partitions if tp.topic == topic}
        target = {tp.partition for tp in member.target_assignment.topic_partitions if tp.topic == topic}
        assert owned == target, vars(member)
        shown.append(owned)
    assert sorted(map(sorted, shown)) == sorted(map(sorted, held))


@pytest.mark.parametrize("assignor", ["uniform", "range"])
def test_a_consumer_protocol_group_of_three_shares_partitions_and_takes_over_from_a_leaver(broker_addr, assignor):
    group, partitions = next(group_names), 6
    topic = new_topic(broker_addr, partitions)
    seen, lock = [], threading.Lock()
    make = lambda: consumer_protocol_consumer(broker_addr, group, **{"group.remote.assignor": assignor})  # noqa: E731
    members = [ConfluentMember(make, topic, seen, lock) for _ in range(3)]
    everyone = list(members)
    for member in members:
        member.start()
    try:
        wait_for(lambda: all(len(m.assigned) == 2 for m in members), "a balanced assignment", members)
        assert set().union(*(m.assigned for m in members)) == set(range(partitions))
        wait_for(lambda: sorted(map(len, owned_in_describe(broker_addr, group, topic))) == [2, 2, 2],
                 "rill group describe to show three members with two partitions each", members)
        described = owned_in_describe(broker_addr, group, topic)
        assert set().union(*described) == set(range(partitions)), described
        check_admin_describe(broker_addr, group, topic, assignor, [m.assigned for m in members])
        produce(broker_addr, topic, partitions, 20)
        wait_for(lambda: len(seen) >= partitions * 20, "the first records", members)
        leaving = members.pop()
        leaving.stop.set()
        leaving.join(timeout=30)
        wait_for(lambda: set().union(*(m.assigned for m in members)) == set(range(partitions))
                 and sum(len(m.assigned) for m in members) == partitions, "the leaver's partitions to move", members)
        produce(broker_addr, topic, partitions, 20, start=20)
        wait_for(lambda: len(seen) >= partitions * 40, "the records after the leave", members)
        time.sleep(1)  # anything read twice would show up by now
    finally:
        for member in members:
            member.stop.set()
        for member in members:
            member.join(timeout=30)
    assert [m.error for m in members] == [None] * len(members)
    # A leaver whose last commit failed would show below only as records read twice: say so first.
    assert leaving.error is None, f"the member that left failed: {leaving.error!r}"
    values = sorted(v for _, _, v in seen)
    assert values == sorted(f"{p}:{i}".encode() for p in range(partitions) for i in range(40)), \
        f"every record read exactly once; {read_twice(everyone)}"
    assert committed(broker_addr, group, topic) == {p: 40 for p in range(partitions)}


def test_a_consumer_protocol_member_commits_and_a_new_member_resumes_after_them(broker_addr):
    group, topic = next(group_names), new_topic(broker_addr, 1)
    produce(broker_addr, topic, 1, 10)
    first = consumer_protocol_consumer(broker_addr, group)
    try:
        first.subscribe([topic])
        read = []
        deadline = time.monotonic() + DEADLINE_S
        while len(read) < 4 and time.monotonic() < deadline:
            message = first.poll(0.2)
            if message is not None and message.error() is None:
                read.append(message)
        assert [m.offset() for m in read] == [0, 1, 2, 3]
        first.commit(message=read[-1], asynchronous=False)
    finally:
        first.close()
    assert committed(broker_addr, group, topic) == {0: 4}
    second = consumer_protocol_consumer(broker_addr, group)
    try:
        second.subscribe([topic])
        resumed = []
        while len(resumed) < 6 and time.monotonic() < deadline:
            message = second.poll(0.2)
            if message is not None and message.error() is None:
                resumed.append(message.offset())
        assert resumed == list(range(4, 10))
    finally:
        second.close()


def first_error(consumer, subscription):
    """Subscribes and polls until the consumer reports an error (raised or as a message); its text, or None."""
    try:
        consumer.subscribe(subscription)
        deadline = time.monotonic() + DEADLINE_S
        while time.monotonic() < deadline:
            try:
                message = consumer.poll(0.2)
            except KafkaException as err:
                return str(err)
            if message is not None and message.error() is not None:
                return str(message.error())
        return None
    finally:
        consumer.close()


def test_an_unknown_server_assignor_is_refused_with_its_name(broker_addr):
    group, topic = next(group_names), new_topic(broker_addr, 1)
    consumer = consumer_protocol_consumer(broker_addr, group, **{"group.remote.assignor": "no-such-assignor"})
    error = first_error(consumer, [topic])
    assert error and "assignor" in error.lower(), error


def test_a_regex_subscription_takes_in_topics_created_after_it(broker_addr):
    """A `^prefix.*` subscription (librdkafka sends it as KIP-848's SubscribedTopicRegex) is resolved by the
    broker: the member gets the matching topics' partitions, not others', and a matching topic created later
    within a few heartbeats; it reads what is produced to each."""
    group = next(group_names)
    prefix = group.replace("-", "_") + "_rx"
    rill(broker_addr, "topic", "create", f"{prefix}_a", "--partitions", "2")
    rill(broker_addr, "topic", "create", f"{prefix}_b", "--partitions", "1")
    other = new_topic(broker_addr, 1)
    consumer = consumer_protocol_consumer(broker_addr, group)
    seen = []
    def read_until(condition):
        def polled():
            message = consumer.poll(0.1)
            if message is not None and message.error() is None:
                seen.append((message.topic(), message.value()))
            return condition()
        return polled
    def held():
        return {(tp.topic, tp.partition) for tp in consumer.assignment()}
    try:
        consumer.subscribe([f"^{prefix}_.*"])
        first = {(f"{prefix}_a", 0), (f"{prefix}_a", 1), (f"{prefix}_b", 0)}
        wait_for(read_until(lambda: held() == first), "the matching topics' partitions")
        rill(broker_addr, "topic", "create", f"{prefix}_c", "--partitions", "1")
        wait_for(read_until(lambda: held() == first | {(f"{prefix}_c", 0)}), "the topic created later")
        for topic in (f"{prefix}_a", f"{prefix}_c", other):
            produce(broker_addr, topic, 1, 1)
        wait_for(read_until(lambda: len(seen) >= 2), "the records of the matching topics")
        time.sleep(0.5)
        read_until(lambda: True)()
    finally:
        consumer.close()
    assert sorted(seen) == [(f"{prefix}_a", b"0:0"), (f"{prefix}_c", b"0:0")], seen


def test_an_invalid_subscription_regex_is_refused_saying_why(broker_addr):
    consumer = consumer_protocol_consumer(broker_addr, next(group_names))
    # A back-reference: librdkafka accepts it, RE2 does not.
    error = first_error(consumer, ["^orders_(a)\\1"])
    # librdkafka reports the code (INVALID_REGULAR_EXPRESSION), not the broker's message, and stops the consumer.
    assert error and "The regular expression is not valid" in error, error


KILLED_MEMBER = """
import sys, time
from confluent_kafka import Consumer
consumer = Consumer({"bootstrap.servers": sys.argv[1], "group.id": sys.argv[2], "group.protocol": "consumer",
                     "enable.auto.commit": False, "auto.offset.reset": "earliest"})
consumer.subscribe([sys.argv[3]])
while True:
    consumer.poll(0.1)
    if consumer.assignment():
        print("assigned", flush=True)
"""


def test_a_killed_members_partitions_move_when_its_session_expires(broker_addr):
    """A member that dies without leaving (SIGKILL) keeps its partitions until the broker's session timeout
    (6 s here) passes without a heartbeat; then the survivor gets every partition."""
    group, partitions = next(group_names), 4
    topic = new_topic(broker_addr, partitions)
    doomed = subprocess.Popen([sys.executable, "-c", KILLED_MEMBER, broker_addr, group, topic],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert doomed.stdout.readline().strip() == "assigned"
        seen, lock = [], threading.Lock()
        survivor = ConfluentMember(lambda: consumer_protocol_consumer(broker_addr, group), topic, seen, lock)
        survivor.start()
        try:
            wait_for(lambda: len(survivor.assigned) == partitions // 2, "the survivor's half", [survivor])
            doomed.kill()
            doomed.wait(timeout=30)
            killed_at = time.monotonic()
            wait_for(lambda: len(survivor.assigned) == partitions, "the dead member's partitions", [survivor])
            waited = time.monotonic() - killed_at
            assert waited >= 3, f"moved after {waited:.1f} s: before the session could have expired"
            produce(broker_addr, topic, partitions, 5)
            wait_for(lambda: len(seen) >= partitions * 5, "records from every partition", [survivor])
        finally:
            survivor.stop.set()
            survivor.join(timeout=30)
        assert survivor.error is None
        assert sorted(v for _, _, v in seen) == sorted(f"{p}:{i}".encode() for p in range(partitions) for i in range(5))
    finally:
        doomed.kill()
        doomed.wait(timeout=30)


def test_a_static_member_restarted_within_its_session_gets_its_partitions_back(broker_addr):
    """librdkafka's `group.instance.id` under `group.protocol=consumer`: closing a static member sends a leave
    with epoch -2, so its partitions are not given to the other member; a new consumer with the same instance id
    (a restarted process) gets exactly them back and reads on from the commits: every record read once."""
    group, partitions = next(group_names), 4
    topic = new_topic(broker_addr, partitions)
    seen, lock = [], threading.Lock()
    static = lambda: consumer_protocol_consumer(broker_addr, group, **{"group.instance.id": "pod-1"})  # noqa: E731
    first = ConfluentMember(static, topic, seen, lock)
    other = ConfluentMember(lambda: consumer_protocol_consumer(broker_addr, group), topic, seen, lock)
    members = [first, other]
    for member in members:
        member.start()
    try:
        wait_for(lambda: len(first.assigned) == 2 and len(other.assigned) == 2, "two partitions each", members)
        held_by_static, held_by_other = set(first.assigned), set(other.assigned)
        produce(broker_addr, topic, partitions, 10)
        wait_for(lambda: len(seen) >= partitions * 10, "the first records", members)
        first.stop.set()
        first.join(timeout=30)
        assert first.error is None, first.error
        # Well inside the 6 s session: the other member is given none of the static member's partitions.
        watch_until = time.monotonic() + 2
        while time.monotonic() < watch_until:
            assert other.assigned == held_by_other, f"moved to the other member: {other.assigned}"
            time.sleep(0.1)
        produce(broker_addr, topic, partitions, 10, start=10)
        second = ConfluentMember(static, topic, seen, lock)
        members.append(second)
        second.start()
        wait_for(lambda: second.assigned == held_by_static, "the restarted member's partitions", members)
        assert other.assigned == held_by_other
        wait_for(lambda: len(seen) >= partitions * 20, "the records produced while it was away", members)
        time.sleep(1)  # anything read twice would show up by now
    finally:
        for member in members:
            member.stop.set()
        for member in members:
            member.join(timeout=30)
    assert [m.error for m in members] == [None] * len(members)
    assert sorted(v for _, _, v in seen) == sorted(f"{p}:{i}".encode() for p in range(partitions) for i in range(20)), \
        "every record read exactly once"
