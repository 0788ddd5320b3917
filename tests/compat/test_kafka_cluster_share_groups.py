"""Share groups (KIP-932) on a three-node rill cluster, with confluent-kafka's ShareConsumer (librdkafka 2.15):
the members heartbeat to the group's coordinator (the leader of its `__consumer_offsets` partition) and fetch
each partition from its leader, which keeps the partition's window of records in flight and stores it at the
coordinator, and starts it where the group's own config (replicated) says; a reset through any node reaches the
leaders' windows. Two members split a topic whose partitions are led by different nodes, each record once; a
partition leader SIGKILLed hands its partitions to in-sync replicas, whose windows load what the coordinator
stored, so nothing acknowledged before the kill is delivered again; the coordinator SIGKILLed, the members rejoin
at the next one, which holds every acknowledgement (the first node killed is back by then, so the controller
keeps its majority); a member SIGKILLed while it holds records, with locks of an hour: its coordinator times it
out and tells every leader, which releases them at once. A group's dead letters (KIP-1191) reach a dead-letter
partition led by another node than the records' partitions. Run by kafka-clients.sh."""

import subprocess
import sys
import tempfile
import threading
import time
import uuid

import pytest
from confluent_kafka import AcknowledgeType, Consumer, Producer, ShareConsumer

from test_kafka_cluster import CONFIG, DEADLINE_S, OFFSETS_PARTITIONS, Cluster, fully_in_sync, java_hash_partition
from test_kafka_cluster import rill, wait_for



def new_name(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture()
def cluster():
    with tempfile.TemporaryDirectory() as root:
        cluster = Cluster(root, config=CONFIG)
        try:
            yield cluster
        finally:
            cluster.stop()


def create_topic(cluster, topic):
    create = ("topic", "create", topic, "--partitions", "3", "--replication-factor", "3")
    wait_for(lambda: rill(cluster.any_addr(), *create, check=False).returncode == 0, f"{topic} created")
    return wait_for(lambda: fully_in_sync(cluster.any_addr(), topic, 3), f"3 in-sync replicas of {topic}")


def offsets_topic_in_sync(cluster, group):
    """Waits for `__consumer_offsets` (the first group request creates it); {partition: (leader, isr)}."""
    def in_sync():
        rill(cluster.any_addr(), "group", "describe", group, check=False)
        return fully_in_sync(cluster.any_addr(), "__consumer_offsets", OFFSETS_PARTITIONS)
    return wait_for(in_sync, "3 in-sync replicas of __consumer_offsets")


def start_at_the_beginning(cluster, group):
    """The group's `share.auto.offset.reset=earliest` (a group config, in the replicated metadata), set through
    one node and waited for on every node: each partition's leader starts the group's window with it, so records
    produced before a member's first fetch are read."""
    rill(cluster.addrs[0], "group", "config", group, "--config", "share.auto.offset.reset=earliest")
    def everywhere():
        shown = [rill(addr, "group", "config", group, check=False).stdout for addr in cluster.addrs]
        return all(any(line.split()[:3] == ["share.auto.offset.reset", "earliest", "group"]
                       for line in text.splitlines()) for text in shown)
    wait_for(everywhere, f"{group}'s config on every node")


def produce(cluster, topic, values):
    producer = Producer({"bootstrap.servers": cluster.bootstrap(), "acks": "all"})
    for i, value in enumerate(values):
        producer.produce(topic, value.encode(), partition=i % 3)
    assert producer.flush(DEADLINE_S) == 0, "every record acknowledged"


def share_consumer(cluster, group):
    return ShareConsumer({"bootstrap.servers": cluster.bootstrap(), "group.id": group})


def drain(consumer, wanted, seen, lock):
    """Polls until `seen` holds `wanted` records or the deadline passes; implicit acknowledgement (each poll
    accepts what the one before returned)."""
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        with lock:
            if len(seen) >= wanted:
                return
        for message in consumer.poll(0.5):
            assert message.error() is None, message.error()
            with lock:
                seen.append((message.value().decode(), message.delivery_count()))


def read_alone(cluster, group, topic, wanted):
    """One new member reads `wanted` records (or until the deadline), accepts them and leaves; (value, delivery
    count) of each."""
    seen = []
    member = share_consumer(cluster, group)
    member.subscribe([topic])
    drain(member, wanted, seen, threading.Lock())
    member.commit_sync(30)
    member.close()
    return seen


def test_two_members_split_partitions_led_by_three_nodes_and_nothing_is_read_twice(cluster):
    topic, group = new_name("jobs"), new_name("workers")
    placement = create_topic(cluster, topic)
    assert len({leader for leader, _ in placement.values()}) >= 2, f"leaders spread over nodes: {placement}"
    offsets_topic_in_sync(cluster, group)
    start_at_the_beginning(cluster, group)
    values = [f"job-{i}" for i in range(300)]
    produce(cluster, topic, values)
    members = [share_consumer(cluster, group) for _ in range(2)]
    seen, lock = [], threading.Lock()
    counts = []

    def work(consumer):
        consumer.subscribe([topic])
        before = len(seen)
        drain(consumer, len(values), seen, lock)
        counts.append(len(seen) - before)
        consumer.commit_sync(30)
        consumer.close()

    threads = [threading.Thread(target=work, args=(member,)) for member in members]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(DEADLINE_S + 40)
    read = sorted(value for value, _ in seen)
    assert read == sorted(values), f"{len(read)} read for {len(values)}, {len(set(read))} distinct"
    assert all(count == 1 for _, count in seen), "each record delivered once"
    # The group's coordinator describes where it is: every partition done with up to its end (100 records each),
    # as the leaders stored it there.
    def done_everywhere():
        described = rill(cluster.addrs[2], "group", "describe", group, check=False).stdout
        rows = [line.split() for line in described.splitlines() if line.startswith(topic)]
        return len(rows) == 3 and all(row[2] == row[3] == "100" and row[5] == "0" for row in rows) and described
    described = wait_for(done_everywhere, f"{group} done with every partition")
    assert described.startswith(f"share group {group} "), described

    # Moved back to the start through another node: each leader drops its window and loads the reset one, so a
    # new member reads every record again, each once, as a first delivery.
    rill(cluster.addrs[1], "group", "reset-offsets", group, "--topic", topic, "--to-earliest")
    again = read_alone(cluster, group, topic, len(values))
    assert sorted(value for value, _ in again) == sorted(values), f"{len(again)} read again"
    assert all(count == 1 for _, count in again), "the reset forgot the deliveries before it"


def test_a_killed_partition_leader_and_a_killed_coordinator_lose_no_acknowledgement(cluster):
    topic, group = new_name("tasks"), new_name("crew")
    placement = create_topic(cluster, topic)
    offsets = offsets_topic_in_sync(cluster, group)
    coordinator, _ = offsets[java_hash_partition(group, OFFSETS_PARTITIONS)]
    start_at_the_beginning(cluster, group)
    first = [f"first-{i}" for i in range(150)]
    produce(cluster, topic, first)
    seen, lock = [], threading.Lock()
    member = share_consumer(cluster, group)
    member.subscribe([topic])
    drain(member, len(first), seen, lock)
    # What the last poll returned is accepted by the commit, stored at the coordinator once replicated.
    member.commit_sync(30)
    assert sorted(value for value, _ in seen) == sorted(first)

    # A leader of the topic that is not the coordinator, then the coordinator.
    leader = next(leader for leader, _ in placement.values() if leader != coordinator)
    cluster.kill(leader)
    second = [f"second-{i}" for i in range(150)]
    produce(cluster, topic, second)
    drain(member, len(first) + len(second), seen, lock)
    member.commit_sync(30)

    # Back in, so the controller keeps a majority when the coordinator goes too.
    cluster.restart(leader)
    wait_for(lambda: fully_in_sync(cluster.any_addr(), topic, 3), f"{topic} in sync again")
    wait_for(lambda: fully_in_sync(cluster.any_addr(), "__consumer_offsets", OFFSETS_PARTITIONS), "offsets in sync")
    cluster.kill(coordinator)
    third = [f"third-{i}" for i in range(150)]
    produce(cluster, topic, third)
    drain(member, len(first) + len(second) + len(third), seen, lock)
    member.commit_sync(30)
    member.close()

    read = [value for value, _ in seen]
    assert sorted(read) == sorted(first + second + third), (
        f"{len(read)} read for {len(first + second + third)}, {len(set(read))} distinct"
    )


# A member that holds records, then dies without a word: a separate process, SIGKILLed.
HOLDER = """
import sys, time
from confluent_kafka import ShareConsumer
consumer = ShareConsumer({"bootstrap.servers": sys.argv[1], "group.id": sys.argv[2]})
consumer.subscribe([sys.argv[3]])
while True:
    messages = consumer.poll(0.5)
    if messages:
        print(len(messages), flush=True)
        time.sleep(3600)
"""


def test_a_killed_members_records_come_back_when_its_coordinator_times_it_out(cluster):
    # Locks of an hour: what the dead member held comes back only because its coordinator, timing it out, tells
    # every partition's leader to release it.
    topic, group = new_name("chores"), new_name("crew")
    create_topic(cluster, topic)
    offsets_topic_in_sync(cluster, group)
    settings = ["share.auto.offset.reset=earliest", "share.record.lock.duration.ms=3600000",
                "share.session.timeout.ms=3000", "share.heartbeat.interval.ms=500"]
    rill(cluster.addrs[0], "group", "config", group, *[arg for s in settings for arg in ("--config", s)])
    wait_for(lambda: all("3600000" in rill(addr, "group", "config", group, check=False).stdout
                         for addr in cluster.addrs), "the group's config on every node")
    values = [f"chore-{i}" for i in range(150)]
    produce(cluster, topic, values)
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, cluster.bootstrap(), group, topic],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        held = int(holder.stdout.readline())
        assert held > 0
        holder.kill()
        holder.wait(timeout=30)
        seen = read_alone(cluster, group, topic, len(values))
    finally:
        if holder.poll() is None:
            holder.kill()
    read = {value for value, _ in seen}
    assert read == set(values), f"{len(values) - len(read)} records never came back (the dead member held {held})"
    assert any(count == 2 for _, count in seen), "what the dead member held came again, a second delivery"


@pytest.fixture()
def auto_creating_cluster():
    """A cluster whose nodes create a share group's missing dead-letter topic at its first dead letter."""
    with tempfile.TemporaryDirectory() as root:
        cluster = Cluster(root, config=CONFIG + "dead_letter_auto_create_topics = true\n")
        try:
            yield cluster
        finally:
            cluster.stop()


def reject_all(cluster, group, topic, count):
    """One explicit-mode member rejects `count` records of `topic`; {value: (partition, offset)}."""
    member = ShareConsumer({"bootstrap.servers": cluster.bootstrap(), "group.id": group,
                            "share.acknowledgement.mode": "explicit"})
    member.subscribe([topic])
    rejected = {}
    deadline = time.monotonic() + DEADLINE_S
    while len(rejected) < count and time.monotonic() < deadline:
        for message in member.poll(0.5):
            assert message.error() is None, message.error()
            rejected[message.value().decode()] = (message.partition(), message.offset())
            member.acknowledge(message, AcknowledgeType.REJECT)
        member.commit_sync(30)
    member.close()
    return rejected


def dead_letters_in(cluster, dead, count):
    """{value: headers} of the first `count` records of `dead` (or what came by the deadline)."""
    reader = Consumer({"bootstrap.servers": cluster.bootstrap(), "group.id": new_name("inspect"),
                       "auto.offset.reset": "earliest"})
    reader.subscribe([dead])
    letters = {}
    deadline = time.monotonic() + DEADLINE_S
    while len(letters) < count and time.monotonic() < deadline:
        message = reader.poll(0.5)
        if message is None or message.error() is not None:
            continue
        letters[message.value().decode()] = {key: value.decode() for key, value in message.headers() or []}
    reader.close()
    return letters


def test_rejected_records_reach_a_dead_letter_partition_another_node_leads(auto_creating_cluster):
    """Each partition's leader writes the dead letters of the records rejected there: to the dead-letter
    partition itself where it leads that too, else through the partition's leader (the nodes' internal call).
    With the records' 3 partitions led by 3 nodes and one dead-letter partition, two of them take that way. A
    second group's dead-letter topic does not exist: its first dead letter creates it (3 replicas, opted in)."""
    cluster = auto_creating_cluster
    topic, group = new_name("payments"), new_name("settlers")
    dead = f"dlq.{topic}"
    placement = create_topic(cluster, topic)
    assert len({leader for leader, _ in placement.values()}) == 3, f"each partition led by its own node: {placement}"
    create = ("topic", "create", dead, "--partitions", "1", "--replication-factor", "3",
              "--config", "errors.deadletterqueue.group.enable=true")
    wait_for(lambda: rill(cluster.any_addr(), *create, check=False).returncode == 0, f"{dead} created")
    wait_for(lambda: fully_in_sync(cluster.any_addr(), dead, 1), f"3 in-sync replicas of {dead}")
    offsets_topic_in_sync(cluster, group)
    rill(cluster.addrs[1], "group", "config", group, "--config", f"errors.deadletterqueue.topic.name={dead}",
         "--config", "errors.deadletterqueue.copy.record.enable=true")
    start_at_the_beginning(cluster, group)
    values = [f"payment-{i}" for i in range(9)]
    produce(cluster, topic, values)
    rejected = reject_all(cluster, group, topic, len(values))
    assert sorted(rejected) == sorted(values), f"{len(rejected)} of {len(values)} delivered"
    letters = dead_letters_in(cluster, dead, len(values))
    assert sorted(letters) == sorted(values), f"{len(letters)} dead letters for {len(values)} rejected records"
    for value, headers in letters.items():
        partition, offset = rejected[value]
        assert (headers["__dlq.errors.topic"], headers["__dlq.errors.group"]) == (topic, group)
        assert (headers["__dlq.errors.partition"], headers["__dlq.errors.offset"]) == (str(partition), str(offset))
        assert headers["__dlq.errors.delivery.count"] == "1"

    other, created = new_name("auditors"), f"dlq.{topic}-auto"
    offsets_topic_in_sync(cluster, other)
    rill(cluster.addrs[2], "group", "config", other, "--config", f"errors.deadletterqueue.topic.name={created}",
         "--config", "errors.deadletterqueue.copy.record.enable=true")
    start_at_the_beginning(cluster, other)
    assert sorted(reject_all(cluster, other, topic, len(values))) == sorted(values)
    letters = dead_letters_in(cluster, created, len(values))
    assert sorted(letters) == sorted(values), f"{len(letters)} dead letters in the topic the first one created"
    assert all(headers["__dlq.errors.group"] == other for headers in letters.values())
    wait_for(lambda: fully_in_sync(cluster.any_addr(), created, 1), f"3 in-sync replicas of {created}")
    described = rill(cluster.any_addr(), "topic", "describe", created).stdout
    assert "dead_letter_group_enable" in described, described
