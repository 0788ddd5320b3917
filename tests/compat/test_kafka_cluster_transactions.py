"""Kafka transactions with librdkafka (confluent-kafka) against a three-node rill cluster, whose transaction
coordinator is the controller leader: FindCoordinator of key type 1 names it; markers go to each partition's
leader wherever it is; a transaction's group offsets go to the group's coordinator (TxnOffsetCommit, sent there,
is forwarded to the transaction coordinator).

What the tests hold the cluster to, each Kafka's documented semantics:
- consume-transform-produce over partitions led by different nodes: a committed round's output is read by
  `read_committed` consumers and its input offsets are the group's; an aborted round's output is not, and its
  offsets are not committed;
- a SIGKILL of the coordinator with a transaction open: the producer's commit goes to the next coordinator,
  which has the transaction (its state is replicated), and the records become readable at `read_committed`;
- a SIGKILL of a partition's leader (not the coordinator) with a transaction open: the commit's marker goes to
  the partition's next leader, and `read_committed` consumers read every record of it;
- a SIGKILL of the coordinator with a transaction open that its producer abandons: the next coordinator aborts
  it past its timeout, so `read_committed` consumers move on past it;
- a rolling restart (each node stopped with SIGTERM, restarted, caught up) under a producer committing
  transaction after transaction: each committed one is read once, in order, and none that failed is read;
- kafka-python's admin client (what `kafka-transactions.sh` does) lists an open transaction once, though it asks
  every node, and describes it through the coordinator; `rill topic describe` shows it open in each partition.

Every wait is a poll with a deadline. Run by kafka-clients.sh."""

import itertools
import os
import socket
import struct
import tempfile
import time

import pytest

from test_kafka_cluster import CONFIG, Cluster, fully_in_sync, placement, rill, wait_for

confluent_kafka = pytest.importorskip("confluent_kafka")
Consumer, Producer, TopicPartition = confluent_kafka.Consumer, confluent_kafka.Producer, confluent_kafka.TopicPartition
KafkaException = confluent_kafka.KafkaException

names = (f"cluster-txn-{n}" for n in itertools.count())
DEADLINE_S = 60
TXN_CALL_S = 60
PARTITIONS = 3
ABANDONED_TXN_TIMEOUT_MS = 3000


@pytest.fixture(scope="module")
def cluster():
    with tempfile.TemporaryDirectory() as root:
        cluster = Cluster(root, CONFIG)
        try:
            yield cluster
        finally:
            cluster.stop()


def new_topic(cluster):
    name = next(names)
    create = ("topic", "create", name, "--partitions", str(PARTITIONS), "--replication-factor", "3")
    wait_for(lambda: rill(cluster.any_addr(), *create, check=False).returncode == 0, f"topic {name} created")
    wait_for(lambda: fully_in_sync(cluster.any_addr(), name, PARTITIONS), f"3 in-sync replicas of {name}")
    return name


def find_transaction_coordinator(addr, transactional_id):
    """FindCoordinator v1 with key type 1 (a transactional id), as every Kafka client sends it: the node id."""
    host, port = addr.rsplit(":", 1)
    key = transactional_id.encode()
    body = struct.pack(">hhih", 10, 1, 7, -1) + struct.pack(">h", len(key)) + key + struct.pack(">b", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(struct.pack(">i", len(body)) + body)
            size = struct.unpack(">i", recv_exactly(sock, 4))[0]
            answer = recv_exactly(sock, size)
    except OSError:
        return None  # not started yet, or killed
    _correlation, _throttle, error = struct.unpack(">iih", answer[:10])
    message_len = struct.unpack(">h", answer[10:12])[0]
    rest = answer[12 + max(message_len, 0):]
    node_id = struct.unpack(">i", rest[:4])[0]
    return node_id if error == 0 else None


def recv_exactly(sock, count):
    data = b""
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        assert chunk, "the broker closed the connection"
        data += chunk
    return data


def transactional_producer(cluster, transactional_id, settings=None):
    producer = Producer({"bootstrap.servers": cluster.bootstrap(), "transactional.id": transactional_id,
                         "linger.ms": 5, **(settings or {})})
    producer.init_transactions(TXN_CALL_S)
    return producer


def produce_plain(cluster, topic, values_by_partition):
    failures = []
    producer = Producer({"bootstrap.servers": cluster.bootstrap(), "acks": "all"})
    for partition, values in values_by_partition.items():
        for value in values:
            producer.produce(topic, value=value, partition=partition,
                             on_delivery=lambda err, _m: err is not None and failures.append(err))
    assert producer.flush(DEADLINE_S) == 0
    assert failures == [], failures


def read_all(cluster, topic, isolation, expected_count, quiet_s=1.0):
    """Every record of `topic` from the start at `isolation`, as {partition: [values]}: read until
    `expected_count` records came and then `quiet_s` passed with nothing more."""
    consumer = Consumer({"bootstrap.servers": cluster.bootstrap(), "group.id": next(names),
                         "enable.auto.commit": False, "isolation.level": isolation, "fetch.wait.max.ms": 100})
    consumer.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
    read = {p: [] for p in range(PARTITIONS)}
    count, deadline, quiet_until = 0, time.monotonic() + DEADLINE_S, None
    try:
        while True:
            message = consumer.poll(0.1)
            if message is not None and message.error() is None:
                read[message.partition()].append(message.value())
                count += 1
                quiet_until = None
            if count >= expected_count:
                quiet_until = quiet_until or time.monotonic() + quiet_s
                if time.monotonic() >= quiet_until:
                    return read
            assert time.monotonic() < deadline, f"{count} of {expected_count} records of {topic} at {isolation}: {read}"
    finally:
        consumer.close()


def open_in_every_partition(producer, topic, prefix):
    """Begins a transaction with three records `PREFIX-P-I` in each partition P, every one acknowledged by every
    in-sync replica (a transactional producer's acks are all)."""
    producer.begin_transaction()
    for p in range(PARTITIONS):
        for i in range(3):
            producer.produce(topic, value=f"{prefix}-{p}-{i}".encode(), partition=p)
    assert producer.flush(TXN_CALL_S) == 0


def assert_read_committed(cluster, topic, prefix):
    """A read_committed consumer reads every record `open_in_every_partition` wrote, and nothing else."""
    read = read_all(cluster, topic, "read_committed", 3 * PARTITIONS)
    assert {p: sorted(v) for p, v in read.items()} == {
        p: [f"{prefix}-{p}-{i}".encode() for i in range(3)] for p in range(PARTITIONS)}


def coordinator_of(cluster, transactional_id):
    return wait_for(lambda: find_transaction_coordinator(cluster.any_addr(), transactional_id),
                    f"the transaction coordinator of {transactional_id}")


def test_find_coordinator_names_the_controller_leader_on_every_node(cluster):
    transactional_id = next(names)

    def named():
        found = {find_transaction_coordinator(addr, transactional_id) for addr in cluster.addrs}
        return found if len(found) == 1 and None not in found else None
    assert wait_for(named, "one transaction coordinator named by every node")


def test_consume_transform_produce_across_nodes_commits_output_and_offsets_together(cluster):
    source, sink, group = new_topic(cluster), new_topic(cluster), next(names)
    produce_plain(cluster, source, {p: [f"in-{p}-{i}".encode() for i in range(4)] for p in range(PARTITIONS)})
    producer = transactional_producer(cluster, next(names))
    consumer = Consumer({"bootstrap.servers": cluster.bootstrap(), "group.id": group,
                         "isolation.level": "read_committed", "enable.auto.commit": False,
                         "auto.offset.reset": "earliest", "session.timeout.ms": 6000})
    consumer.subscribe([source])

    def round_of(count, commit):
        taken, deadline = [], time.monotonic() + DEADLINE_S
        while len(taken) < count:
            assert time.monotonic() < deadline, f"{len(taken)} of {count} input records"
            message = consumer.poll(0.1)
            if message is not None and message.error() is None:
                taken.append(message)
        producer.begin_transaction()
        for message in taken:
            # Each output partition: a transaction that spans the partitions' leaders on every node.
            producer.produce(sink, value=message.value().upper(), partition=message.partition())
        # Positions of partitions read from only: one not read yet has none to commit.
        positions = [tp for tp in consumer.position(consumer.assignment()) if tp.offset >= 0]
        producer.send_offsets_to_transaction(positions, consumer.consumer_group_metadata(), TXN_CALL_S)
        if commit:
            producer.commit_transaction(TXN_CALL_S)
        else:
            assert producer.flush(TXN_CALL_S) == 0
            producer.abort_transaction(TXN_CALL_S)
        return taken

    try:
        committed = round_of(6, commit=True)
        aborted = round_of(6, commit=False)
    finally:
        consumer.close()

    expected = sorted(m.value().upper() for m in committed)
    read = read_all(cluster, sink, "read_committed", len(expected))
    assert sorted(v for values in read.values() for v in values) == expected
    uncommitted = read_all(cluster, sink, "read_uncommitted", 12)
    assert sorted(v for values in uncommitted.values() for v in values) == sorted(
        m.value().upper() for m in committed + aborted)

    # The group's offsets are the committed round's positions: the aborted round's input is read again.
    def group_offsets():
        checker = Consumer({"bootstrap.servers": cluster.bootstrap(), "group.id": group,
                            "isolation.level": "read_committed", "enable.auto.commit": False})
        try:
            found = checker.committed([TopicPartition(source, p) for p in range(PARTITIONS)], timeout=10)
            return {tp.partition: tp.offset for tp in found if tp.error is None}
        except KafkaException:
            return None
        finally:
            checker.close()

    expected_offsets = {p: 0 for p in range(PARTITIONS)}
    for message in committed:
        expected_offsets[message.partition()] = max(expected_offsets[message.partition()], message.offset() + 1)
    expected_offsets = {p: (o if o > 0 else -1001) for p, o in expected_offsets.items()}
    assert wait_for(lambda: group_offsets() == expected_offsets or None, "the committed round's offsets")


def test_a_transaction_open_when_its_coordinator_is_killed_commits_through_the_next_one(cluster):
    topic, transactional_id = new_topic(cluster), next(names)
    producer = transactional_producer(cluster, transactional_id)
    old = coordinator_of(cluster, transactional_id)
    open_in_every_partition(producer, topic, "kept")
    cluster.kill(old)
    try:
        producer.commit_transaction(TXN_CALL_S)
        new = coordinator_of(cluster, transactional_id)
        assert new != old, "the next controller leader coordinates"
        assert_read_committed(cluster, topic, "kept")
    finally:
        cluster.restart(old)


def test_a_commit_whose_partition_leader_is_killed_writes_its_marker_at_the_next_leader(cluster):
    topic, transactional_id = new_topic(cluster), next(names)
    producer = transactional_producer(cluster, transactional_id)
    coordinator = coordinator_of(cluster, transactional_id)
    leaders = {leader for leader, _ in placement(cluster.any_addr(), topic).values()}
    victim = next(iter(leaders - {coordinator}), None)
    if victim is None:
        pytest.skip(f"every partition of {topic} is led by the coordinator, node {coordinator}")
    open_in_every_partition(producer, topic, "moved")
    cluster.kill(victim)
    try:
        # The coordinator retries the marker until the partition has a new leader, an in-sync replica that
        # holds the transaction's records.
        producer.commit_transaction(TXN_CALL_S)
        assert_read_committed(cluster, topic, "moved")
    finally:
        cluster.restart(victim)


def test_a_transaction_abandoned_when_its_coordinator_is_killed_is_aborted_by_the_next_one(cluster):
    topic, transactional_id = new_topic(cluster), next(names)
    producer = transactional_producer(cluster, transactional_id,
                                      {"transaction.timeout.ms": ABANDONED_TXN_TIMEOUT_MS})
    old = coordinator_of(cluster, transactional_id)
    producer.begin_transaction()
    for p in range(PARTITIONS):
        producer.produce(topic, value=f"abandoned-{p}".encode(), partition=p)
    assert producer.flush(TXN_CALL_S) == 0
    cluster.kill(old)
    try:
        # After the open transaction, on every partition: a read_committed consumer gets these only once the
        # transaction before them has ended.
        produce_plain(cluster, topic, {p: [f"after-{p}".encode()] for p in range(PARTITIONS)})
        read = read_all(cluster, topic, "read_committed", PARTITIONS)
        assert read == {p: [f"after-{p}".encode()] for p in range(PARTITIONS)}
    finally:
        cluster.restart(old)


def test_kafka_pythons_admin_lists_each_open_transaction_once_and_describes_it_through_the_coordinator(cluster):
    """What `kafka-transactions.sh list/describe` shows on a cluster: ListTransactions goes to every node and only
    the coordinator answers with ids; DescribeTransactions goes to the coordinator FindCoordinator names."""
    kafka = pytest.importorskip("kafka")
    topic, transactional_id = new_topic(cluster), next(names)
    producer = transactional_producer(cluster, transactional_id)
    producer.begin_transaction()
    for p in range(PARTITIONS):
        producer.produce(topic, b"pending", partition=p)
    assert producer.flush(TXN_CALL_S) == 0
    described = rill(cluster.any_addr(), "topic", "describe", topic).stdout
    assert described.count("1 open transaction(s)") == PARTITIONS, described
    admin = kafka.KafkaAdminClient(bootstrap_servers=cluster.bootstrap())
    try:
        listed = [t for listings in admin.list_transactions(state_filters=["Ongoing"]).values() for t in listings]
        assert [(t.transactional_id, t.state.value) for t in listed] == [(transactional_id, "Ongoing")], listed
        described = admin.describe_transactions([transactional_id])[transactional_id]
        assert described.state.value == "Ongoing", described
        assert described.topic_partitions == {kafka.TopicPartition(topic, p) for p in range(PARTITIONS)}, described
        producer.commit_transaction(TXN_CALL_S)
        described = admin.describe_transactions([transactional_id])[transactional_id]
        assert (described.state.value, described.topic_partitions) == ("CompleteCommit", set()), described
    finally:
        admin.close()


def test_transactions_go_on_through_a_rolling_restart_and_each_committed_one_is_read_once(cluster):
    """A transactional producer commits one transaction after the other while each node in turn is stopped
    (SIGTERM), restarted and caught up, as an upgrade does: every transaction it was told committed is read at
    `read_committed` exactly once and in order; any that failed is aborted (by its producer, or by the
    coordinator) and never read."""
    topic, transactional_id = new_topic(cluster), next(names)
    producer = transactional_producer(cluster, transactional_id)
    committed, number = [], 0

    def one_transaction():
        nonlocal number
        values = [f"t{number}-{p}".encode() for p in range(PARTITIONS)]
        number += 1
        try:
            producer.begin_transaction()
            for p, value in enumerate(values):
                producer.produce(topic, value=value, partition=p)
            producer.commit_transaction(TXN_CALL_S)
            committed.extend(values)
        except KafkaException as err:
            error = err.args[0]
            assert error.txn_requires_abort() or error.retriable(), f"a fatal error in a restart: {error}"
            producer.abort_transaction(TXN_CALL_S)

    for node_id in (1, 2, 3):
        for _ in range(5):
            one_transaction()
        cluster.stop_gracefully(node_id)
        for _ in range(5):
            one_transaction()
        cluster.restart(node_id)
        wait_for(lambda: fully_in_sync(cluster.any_addr(), topic, PARTITIONS), "every replica back in sync")
    for _ in range(5):
        one_transaction()
    assert len(committed) >= 20 * PARTITIONS, f"most transactions commit through the restarts: {len(committed)}"
    read = read_all(cluster, topic, "read_committed", len(committed))
    for p in range(PARTITIONS):
        expected = [v for v in committed if v.decode().endswith(f"-{p}")]
        assert read[p] == expected, f"partition {p}: read {read[p]}, committed {expected}"
