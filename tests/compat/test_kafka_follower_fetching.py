"""KIP-392 (fetching from the closest replica) with librdkafka (confluent-kafka) against three rill nodes, each
started with `--rack zone-N`: a consumer whose `client.rack` is a follower's zone is sent there by the leader and
reads every record from that follower (librdkafka's statistics name the broker it fetches from beside the
leader); a `read_committed` consumer reading from a follower gets a transaction's committed records and none of an
aborted one's (the follower keeps the last stable offset and the aborted transactions from the log it
replicated); and when that follower is SIGKILLed, the consumer goes back to the leader and reads on, every
record once, in order. Run by kafka-clients.sh."""

import json
import tempfile
import time

import pytest

from test_kafka_cluster import CONFIG, Cluster, fully_in_sync, placement, rill, wait_for

confluent_kafka = pytest.importorskip("confluent_kafka")
Consumer, Producer = confluent_kafka.Consumer, confluent_kafka.Producer

RACKS = {1: "zone-1", 2: "zone-2", 3: "zone-3"}


@pytest.fixture
def cluster():
    with tempfile.TemporaryDirectory() as root:
        cluster = Cluster(root, CONFIG, RACKS)
        try:
            yield cluster
        finally:
            cluster.stop()


def new_topic(cluster, name):
    """One partition on all three nodes; its leader and a follower of it."""
    create = ("topic", "create", name, "--partitions", "1", "--replication-factor", "3")
    wait_for(lambda: rill(cluster.any_addr(), *create, check=False).returncode == 0, f"topic {name} created")
    wait_for(lambda: fully_in_sync(cluster.any_addr(), name, 1), f"3 in-sync replicas of {name}")
    leader = placement(cluster.any_addr(), name)[0][0]
    return leader, next(node for node in (1, 2, 3) if node != leader)


def produce(cluster, topic, values):
    producer = Producer({"bootstrap.servers": cluster.bootstrap(), "acks": "all", "enable.idempotence": True})
    for value in values:
        producer.produce(topic, value.encode(), partition=0)
    assert producer.flush(30) == 0


class RackConsumer:
    """A consumer of partition 0 of `topic` in `rack`, keeping librdkafka's view of where it fetches from."""

    def __init__(self, cluster, topic, rack, **settings):
        self.fetching_from, self.leader = None, None
        self.consumer = Consumer({"bootstrap.servers": cluster.bootstrap(), "group.id": f"{topic}-reader",
                                  "client.rack": rack, "auto.offset.reset": "earliest",
                                  "enable.auto.commit": False, "statistics.interval.ms": 200,
                                  "stats_cb": self.on_stats, **settings})
        self.consumer.assign([confluent_kafka.TopicPartition(topic, 0, 0)])
        self.topic = topic

    def on_stats(self, text):
        partition = json.loads(text).get("topics", {}).get(self.topic, {}).get("partitions", {}).get("0")
        if partition:
            self.fetching_from, self.leader = partition.get("broker"), partition.get("leader")

    def read(self, count, seconds=60):
        """Up to `count` values, within `seconds` (at least one poll)."""
        values = []
        deadline = time.monotonic() + seconds
        while True:
            for message in self.consumer.consume(max(count - len(values), 1), 0.1):
                if message.error() is None:
                    values.append(message.value().decode())
            if len(values) >= count or time.monotonic() > deadline:
                return values

    def close(self):
        self.consumer.close()


def test_a_consumer_in_a_followers_zone_reads_from_that_follower(cluster):
    leader, follower = new_topic(cluster, "nearby")
    sent = [f"r{i}" for i in range(2000)]
    produce(cluster, "nearby", sent)
    consumer = RackConsumer(cluster, "nearby", RACKS[follower])
    try:
        assert consumer.read(len(sent)) == sent
        wait_for(lambda: consumer.read(0, seconds=0) == [] and consumer.fetching_from == follower,
                 f"librdkafka fetching from node {follower} (it fetches from {consumer.fetching_from})")
        assert consumer.leader == leader
    finally:
        consumer.close()
    # A consumer in the leader's own zone stays with the leader.
    local = RackConsumer(cluster, "nearby", RACKS[leader])
    try:
        assert local.read(len(sent)) == sent
        wait_for(lambda: local.read(0, seconds=0) == [] and local.fetching_from == leader, f"librdkafka fetching from node {leader}")
    finally:
        local.close()


def test_a_read_committed_consumer_on_a_follower_skips_aborted_transactions(cluster):
    leader, follower = new_topic(cluster, "ledger")
    producer = Producer({"bootstrap.servers": cluster.bootstrap(), "transactional.id": "ledger-writer"})
    producer.init_transactions(60)
    for round_, outcome in enumerate(["commit", "abort", "commit"]):
        producer.begin_transaction()
        for i in range(50):
            producer.produce("ledger", f"{outcome}-{round_}-{i}".encode(), partition=0)
        if outcome == "commit":
            producer.commit_transaction(60)
        else:
            producer.abort_transaction(60)
    committed = [f"commit-{r}-{i}" for r in (0, 2) for i in range(50)]
    consumer = RackConsumer(cluster, "ledger", RACKS[follower], **{"isolation.level": "read_committed"})
    try:
        assert consumer.read(len(committed)) == committed
        assert consumer.read(1, seconds=2) == [], "an aborted or extra record was read"
        wait_for(lambda: consumer.read(0, seconds=0) == [] and consumer.fetching_from == follower,
                 f"librdkafka fetching from node {follower} (it fetches from {consumer.fetching_from})")
    finally:
        consumer.close()


def test_when_the_follower_dies_the_consumer_reads_on_from_another_replica(cluster):
    leader, follower = new_topic(cluster, "failover")
    first = [f"a{i}" for i in range(500)]
    produce(cluster, "failover", first)
    consumer = RackConsumer(cluster, "failover", RACKS[follower], **{"topic.metadata.refresh.interval.ms": 1000})
    try:
        assert consumer.read(len(first)) == first
        wait_for(lambda: consumer.read(0, seconds=0) == [] and consumer.fetching_from == follower,
                 f"librdkafka fetching from node {follower}")
        cluster.kill(follower)
        then = [f"b{i}" for i in range(500)]
        produce(cluster, "failover", then)
        assert consumer.read(len(then)) == then, "records lost or repeated after the follower died"
        # librdkafka's statistics (every 200 ms) name the replica it went to once they next come.
        wait_for(lambda: consumer.read(0, seconds=0) == [] and consumer.fetching_from not in (None, follower),
                 f"librdkafka fetching from another node than {follower}")
    finally:
        consumer.close()
