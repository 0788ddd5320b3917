"""A compacted topic on three real `rill broker` processes: each replica compacts its own copy; a replica that was
SIGKILLed while the others wrote and compacted catches up from the compacted leader (its empty batches and
batches with records left out), compacts too, and once elected (preferred election) serves librdkafka every key's
newest value at its offset. Run by kafka-clients.sh."""

import tempfile
import time

import pytest
from confluent_kafka import Consumer, ElectionType, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from test_kafka_cluster import CONFIG, Cluster, wait_for
from test_kafka_cluster_admin import in_sync, rows
from test_kafka_compaction import produce_keyed, read_all_librdkafka

KEYS = 20
ROUNDS = 40


@pytest.fixture(scope="module")
def cluster():
    with tempfile.TemporaryDirectory() as root:
        cluster = Cluster(root, CONFIG + "auto_leader_rebalance_enable = false\n")
        try:
            yield cluster
        finally:
            cluster.stop()


def test_a_replica_catches_up_from_a_compacted_leader_and_serves_the_newest_values(cluster):
    name = "compacted"
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap()})

    def created():
        futures = admin.create_topics([NewTopic(name, num_partitions=1, replication_factor=3, config={
            "cleanup.policy": "compact", "segment.bytes": "1024", "min.cleanable.dirty.ratio": "0.01"})])
        try:
            futures[name].result(timeout=30)
            return True
        except Exception as e:  # the cluster may still be electing its controller
            return "TOPIC_ALREADY_EXISTS" in str(e)

    wait_for(created, "the topic created")
    placed = wait_for(lambda: in_sync(cluster, name, 1, 3), "three in-sync replicas")
    preferred = placed[0][1][0]
    wait_for(lambda: rows(cluster, name)[0][0] == preferred, "the preferred replica leading")
    cluster.kill(preferred)
    wait_for(lambda: rows(cluster, name).get(0, (preferred,))[0] not in (preferred, None), "a failover")

    producer = Producer({"bootstrap.servers": cluster.bootstrap(), "acks": "all", "linger.ms": 0,
                         "compression.type": "zstd"})
    newest = produce_keyed(producer, name, ROUNDS, KEYS)
    end = ROUNDS * KEYS

    def compacted():
        return len(read_all_librdkafka(cluster.bootstrap(), name, end)) < end // 3

    wait_for(compacted, "the leader's copy compacted")
    cluster.restart(preferred)
    wait_for(lambda: in_sync(cluster, name, 1, 3), "the restarted replica back in sync")
    result = admin.elect_leaders(ElectionType.PREFERRED, [TopicPartition(name, 0)]).result(timeout=30)
    assert list(result.values()) == [None], result
    wait_for(lambda: rows(cluster, name)[0][0] == preferred, "the caught-up replica leading")

    deadline = time.monotonic() + 60
    while True:
        records = read_all_librdkafka(cluster.bootstrap(), name, end)
        if len(records) < end // 3:
            break
        assert time.monotonic() < deadline, f"the new leader still holds {len(records)} of {end} records"
        time.sleep(0.5)
    offsets = [offset for offset, _, _ in records]
    assert offsets == sorted(set(offsets)) and offsets[-1] == end - 1, offsets[-5:]
    assert {key: value for _, key, value in records} == newest
    low, high = Consumer({"bootstrap.servers": cluster.bootstrap(), "group.id": "marks"}).get_watermark_offsets(
        TopicPartition(name, 0), timeout=30)
    assert (low, high) == (0, end)
