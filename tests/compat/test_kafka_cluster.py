"""Real Kafka clients against a three-node rill cluster: librdkafka (confluent-kafka) sees every node in Metadata
with each partition's leader, replicas and ISR, produces to the leaders, finds each group's coordinator (the
leader of its `__consumer_offsets` partition, by Kafka's hash rule), and a consumer group resumes from its
committed offsets, with nothing committed read again, after its coordinator is SIGKILLed. Run by
kafka-clients.sh."""

import os
import shutil
import socket
import subprocess
import tempfile
import time

import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

RILL = os.environ["RILL_BIN"]
DEADLINE_S = 60
OFFSETS_PARTITIONS = 5
CONFIG = (
    "node_heartbeat_interval_ms = 100\nnode_session_timeout_ms = 1500\n"
    f"replica_lag_time_max_ms = 1500\noffsets_topic_partitions = {OFFSETS_PARTITIONS}\n"
)


def free_address():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"


def rill(addr, *args, check=True):
    done = subprocess.run([RILL, *args, "--broker", addr], capture_output=True, text=True, timeout=60)
    if check:
        assert done.returncode == 0, done.stderr
    return done


def wait_for(condition, what):
    deadline = time.monotonic() + DEADLINE_S
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"no {what} within {DEADLINE_S} s"
        time.sleep(0.2)


def java_hash_partition(group, partitions):
    """Kafka's coordinator partition: abs(groupId.hashCode()) % partitions, Java's hash over UTF-16 units."""
    h = 0
    units = group.encode("utf-16-le")
    for i in range(0, len(units), 2):
        h = (h * 31 + (units[i] | units[i + 1] << 8)) & 0xFFFFFFFF
    h = h - (1 << 32) if h >= 1 << 31 else h
    return (0 if h == -(1 << 31) else abs(h)) % partitions


class Cluster:
    def __init__(self, root, config=CONFIG, racks=None):
        """`racks`: {node id: its `--rack`}, for the nodes that have one."""
        self.root = root
        self.racks = racks or {}
        with open(os.path.join(root, "rill.toml"), "w") as file:
            file.write(config)
        # The ports are picked free, released, then bound by the nodes: another process may take one in between,
        # and that node exits at once and the cluster never forms. Each node prints a line once it listens; a
        # start that a node did not survive is tried again on other ports.
        for _ in range(5):
            self.addrs = [free_address() for _ in range(3)]
            self.peers = ",".join(f"{i + 1}@{a}" for i, a in enumerate(self.addrs))
            self.processes = {node_id: self.start(node_id) for node_id in (1, 2, 3)}
            if all(process.stdout.readline().startswith("rill broker listening on ")
                   for process in self.processes.values()):
                return
            self.stop()
            # A node that did bind set its data dir up with these peers and would refuse the next ones.
            for node_id in (1, 2, 3):
                shutil.rmtree(os.path.join(root, f"d{node_id}"), ignore_errors=True)
        raise AssertionError("three nodes could not bind their ports in 5 attempts")

    def start(self, node_id):
        args = [RILL, "broker", "--node-id", str(node_id), "--listen", self.addrs[node_id - 1],
                "--admin-listen", "127.0.0.1:0", "--data-dir", os.path.join(self.root, f"d{node_id}"), "--peers", self.peers,
                "--config", os.path.join(self.root, "rill.toml")]
        if node_id in self.racks:
            args += ["--rack", self.racks[node_id]]
        return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                                env={**os.environ, "RUST_LOG": "error"})

    def kill(self, node_id):
        process = self.processes.pop(node_id)
        process.kill()
        process.wait(timeout=30)

    def stop_gracefully(self, node_id):
        """SIGTERM, as a rolling restart stops a node: it hands its leaderships over first."""
        process = self.processes.pop(node_id)
        process.terminate()
        process.wait(timeout=60)

    def restart(self, node_id):
        self.processes[node_id] = self.start(node_id)

    def any_addr(self):
        """The address of a running node."""
        return self.addrs[min(self.processes) - 1]

    def bootstrap(self):
        return ",".join(self.addrs[node_id - 1] for node_id in sorted(self.processes))

    def stop(self):
        for node_id in list(self.processes):
            self.kill(node_id)


@pytest.fixture(scope="module")
def cluster():
    with tempfile.TemporaryDirectory() as root:
        cluster = Cluster(root)
        try:
            create = ("topic", "create", "orders", "--partitions", "3", "--replication-factor", "3")
            wait_for(lambda: rill(cluster.addrs[0], *create, check=False).returncode == 0, "topic create")
            yield cluster
        finally:
            cluster.stop()


def placement(addr, topic):
    """{partition: (leader, isr)} from `rill topic describe`."""
    rows = {}
    done = rill(addr, "topic", "describe", topic, check=False)
    for line in done.stdout.splitlines():
        fields = line.split()
        if len(fields) >= 5 and fields[0].isdigit() and fields[1].isdigit():
            rows[int(fields[0])] = (int(fields[1]), sorted(int(n) for n in fields[4].split(",")))
    return rows


def fully_in_sync(addr, topic, partitions):
    rows = placement(addr, topic)
    return len(rows) == partitions and all(len(isr) == 3 for _, isr in rows.values()) and rows


def test_metadata_lists_every_node_and_each_partition_leader_and_producers_reach_the_leaders(cluster):
    placed = wait_for(lambda: fully_in_sync(cluster.addrs[0], "orders", 3), "3 in-sync replicas of orders")
    # Bootstrapped from node 1 only: the other nodes come from Metadata.
    admin = AdminClient({"bootstrap.servers": cluster.addrs[0]})
    metadata = admin.list_topics(timeout=10)
    assert sorted(metadata.brokers) == [1, 2, 3]
    assert {f"{b.host}:{b.port}" for b in metadata.brokers.values()} == set(cluster.addrs)
    orders = metadata.topics["orders"]
    for index, (leader, isr) in placed.items():
        partition = orders.partitions[index]
        assert partition.leader == leader, (index, partition.leader, leader)
        assert sorted(partition.replicas) == [1, 2, 3] and sorted(partition.isrs) == isr
    producer = Producer({"bootstrap.servers": cluster.addrs[0], "acks": "all"})
    failures = []
    for index in range(3):
        for i in range(20):
            producer.produce("orders", value=f"{index}:{i}".encode(), partition=index,
                             on_delivery=lambda err, msg: err and failures.append(err))
    assert producer.flush(30) == 0 and not failures, failures
    for index in range(3):
        # A follower's end offset may lag its leader's by a replication round trip (docs/cluster.md): retry.
        expected = [f"{index}:{i}" for i in range(20)]
        args = ("consume", "orders", "--partition", str(index))
        wait_for(lambda: rill(cluster.bootstrap(), *args).stdout.split() == expected, f"partition {index}'s records")


def test_a_kip848_group_is_served_by_its_coordinator_on_another_node(cluster):
    """Two `group.protocol=consumer` members bootstrapped from a node that does not coordinate their group: they
    find the coordinator (the leader of the group's `__consumer_offsets` partition). The first takes all 3
    partitions and reads the first test's 60 records; when the second joins, the first revokes a partition
    (committing its position, as librdkafka's auto-commit does on revocation) before the second gets it, so the
    second resumes from that commit and no record is read twice. The coordinator's `rill group describe` shows
    both members."""
    group = "kip848-cluster-group"
    def offsets_in_sync():
        rill(cluster.addrs[0], "group", "describe", group, check=False)
        return fully_in_sync(cluster.addrs[0], "__consumer_offsets", OFFSETS_PARTITIONS)
    offsets = wait_for(offsets_in_sync, "3 in-sync replicas of __consumer_offsets")
    coordinator, _ = offsets[java_hash_partition(group, OFFSETS_PARTITIONS)]
    elsewhere = next(addr for node_id, addr in enumerate(cluster.addrs, 1) if node_id != coordinator)
    members = [Consumer({"bootstrap.servers": elsewhere, "group.id": group, "group.protocol": "consumer",
                         "enable.auto.commit": True, "auto.offset.reset": "earliest"}) for _ in range(2)]
    seen = []
    def poll(active):
        for member in active:
            message = member.poll(0.1)
            if message is not None and not message.error():
                seen.append(message.value().decode())
    try:
        first, second = members
        first.subscribe(["orders"])
        def first_read_everything():
            poll([first])
            return len(first.assignment()) == 3 and len(seen) >= 60
        wait_for(first_read_everything, "the first member holding every partition and every record")
        second.subscribe(["orders"])
        def shared():
            poll(members)
            return sorted(len(member.assignment()) for member in members) == [1, 2]
        wait_for(shared, "a shared assignment")
        # The new owner has fetched from its resumed position by now if it was going to read anything again.
        quiet_until = time.monotonic() + 2
        while time.monotonic() < quiet_until:
            poll(members)
        described = rill(cluster.addrs[coordinator - 1], "group", "describe", group).stdout
        assert "2 members" in described, described
    finally:
        for member in members:
            member.close()
    assert sorted(seen) == sorted(f"{p}:{i}" for p in range(3) for i in range(20)), "each record once"


def test_a_group_resumes_from_its_commits_after_its_coordinator_is_killed(cluster):
    group = "kafka-cluster-group"
    def offsets_in_sync():
        # The first group request creates `__consumer_offsets` (FindCoordinator says not available meanwhile).
        rill(cluster.addrs[0], "group", "describe", group, check=False)
        return fully_in_sync(cluster.addrs[0], "__consumer_offsets", OFFSETS_PARTITIONS)
    offsets = wait_for(offsets_in_sync, "3 in-sync replicas of __consumer_offsets")
    coordinator, _ = offsets[java_hash_partition(group, OFFSETS_PARTITIONS)]
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap()})
    described = admin.describe_consumer_groups([group])[group].result(timeout=10)
    assert described.coordinator.id == coordinator, "FindCoordinator names the offsets partition's leader"

    def consumer():
        return Consumer({"bootstrap.servers": cluster.bootstrap(), "group.id": group, "enable.auto.commit": False,
                         "auto.offset.reset": "earliest", "session.timeout.ms": 6000})

    first = consumer()
    first.subscribe(["orders"])
    seen = []
    deadline = time.monotonic() + DEADLINE_S
    while len(seen) < 30 and time.monotonic() < deadline:
        message = first.poll(0.5)
        if message is not None and not message.error():
            seen.append(message.value().decode())
    assert len(seen) == 30
    first.commit(asynchronous=False)
    committed = {tp.partition: tp.offset for tp in first.committed([TopicPartition("orders", p) for p in range(3)])}
    first.close()
    assert sum(max(offset, 0) for offset in committed.values()) == 30

    cluster.kill(coordinator)
    # Committed offsets read back exactly from the new coordinator.
    def committed_now():
        probe = consumer()
        try:
            found = probe.committed([TopicPartition("orders", p) for p in range(3)], timeout=5)
            return {tp.partition: tp.offset for tp in found}
        except KafkaException:
            return None
        finally:
            probe.close()
    assert wait_for(committed_now, "committed offsets from the new coordinator") == committed

    second = consumer()
    second.subscribe(["orders"])
    rest = []
    deadline = time.monotonic() + DEADLINE_S
    while len(rest) < 30 and time.monotonic() < deadline:
        message = second.poll(0.5)
        if message is not None and not message.error():
            rest.append(message.value().decode())
    second.close()
    assert sorted(seen + rest) == sorted(f"{p}:{i}" for p in range(3) for i in range(20)), "each record once"
