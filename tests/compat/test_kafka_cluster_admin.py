"""Kafka admin clients changing a three-node rill cluster through the Kafka port: confluent-kafka's (librdkafka)
AdminClient.elect_leaders hands a restarted preferred leader its leadership back (a second election is not
needed), and kafka-python's KafkaAdminClient moves a partition with alter_partition_reassignments, watches it
with list_partition_reassignments until it is done, and elects its new preferred replica; and it cancels a move
under way with a None replica list (its new node SIGSTOPped so the move cannot finish first), the partition
back on its original replica. And both admin clients create, grow and delete replicated topics through any node:
every node then shows them with 3 in-sync replicas per partition, and a replication factor above the alive nodes
is refused with INVALID_REPLICATION_FACTOR naming their count. A client metrics subscription set through one node
(kafka-python) is described and listed through every node, altered and deleted through others. kafka-python's
describe_metadata_quorum (Kafka's DescribeQuorum, as `kafka-metadata-quorum.sh` asks it) shows the controller
quorum through every node: the same leader and epoch, the three voters each at the leader's log end, their
endpoints. The replication throttle is set and cleared as kafka-reassign-partitions.sh --throttle does it (both
rates on every broker by id, the topic's throttled-replica lists) by kafka-python, and through one broker and
cleared through another by confluent-kafka; every node describes it. A `min.insync.replicas` default set through a
broker by confluent-kafka reaches a topic that does not set its own (DescribeConfigs' DYNAMIC_DEFAULT_BROKER_CONFIG)
and refuses librdkafka's acks-all produce NOT_ENOUGH_REPLICAS with one of its 3 replicas down. Run by
kafka-clients.sh."""

import os
import signal
import tempfile

import pytest
from confluent_kafka import ElectionType, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import (AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, ConfigSource,
                                   NewPartitions, NewTopic, ResourceType)
from kafka import KafkaAdminClient
from kafka.admin import NewTopic as KafkaPythonNewTopic
from kafka import TopicPartition as KafkaPythonTopicPartition
from kafka.errors import NoReassignmentInProgressError

from test_kafka_cluster import CONFIG, Cluster, rill, wait_for

UNKNOWN_TOPIC_OR_PARTITION = 3
ELECTION_NOT_NEEDED = 84


@pytest.fixture(scope="module")
def cluster():
    with tempfile.TemporaryDirectory() as root:
        cluster = Cluster(root, CONFIG + "auto_leader_rebalance_enable = false\n")
        try:
            for topic, partitions, replicas in (("orders", "3", "3"), ("moves", "1", "2"), ("cancels", "1", "1")):
                create = ("topic", "create", topic, "--partitions", partitions, "--replication-factor", replicas)
                wait_for(lambda: rill(cluster.addrs[0], *create, check=False).returncode == 0, f"{topic} created")
            yield cluster
        finally:
            cluster.stop()


def rows(cluster, topic, addr=None):
    """{partition: (leader, replicas, isr)} from `rill topic describe` asked of `addr` (default: every node), leader
    None while it has none."""
    found = {}
    for line in rill(addr or cluster.bootstrap(), "topic", "describe", topic, check=False).stdout.splitlines():
        fields = line.split()
        if len(fields) >= 5 and fields[0].isdigit():
            leader = int(fields[1]) if fields[1].isdigit() else None
            ids = lambda cell: [int(n) for n in cell.split(",") if n.isdigit()]
            found[int(fields[0])] = (leader, ids(fields[3]), ids(fields[4]))
    return found


def in_sync(cluster, topic, partitions, replicas):
    found = rows(cluster, topic)
    return len(found) == partitions and all(len(isr) == replicas for _, _, isr in found.values()) and found


def test_confluent_kafka_elect_leaders_hands_a_restarted_preferred_leader_its_leadership_back(cluster):
    placed = wait_for(lambda: in_sync(cluster, "orders", 3, 3), "orders in sync")
    preferred = placed[0][1][0]
    wait_for(lambda: rows(cluster, "orders")[0][0] == preferred, "partition 0 led by its preferred replica")
    cluster.kill(preferred)
    wait_for(lambda: rows(cluster, "orders").get(0, (preferred,))[0] not in (preferred, None), "a failover")
    cluster.processes[preferred] = cluster.start(preferred)
    wait_for(lambda: in_sync(cluster, "orders", 3, 3), "the restarted node back in sync")
    assert rows(cluster, "orders")[0][0] != preferred, "with the automatic rebalance off it stays away"

    admin = AdminClient({"bootstrap.servers": cluster.bootstrap()})
    partition = TopicPartition("orders", 0)
    result = admin.elect_leaders(ElectionType.PREFERRED, [partition]).result(timeout=30)
    assert list(result.values()) == [None], result
    wait_for(lambda: rows(cluster, "orders")[0][0] == preferred, "the leadership back on the preferred replica")

    again = admin.elect_leaders(ElectionType.PREFERRED, [partition]).result(timeout=30)
    (error,) = again.values()  # a KafkaError per partition that was not elected
    assert error.code() == ELECTION_NOT_NEEDED and "leads it already" in error.str(), again
    unknown = admin.elect_leaders(ElectionType.PREFERRED, [TopicPartition("orders", 9)]).result(timeout=30)
    (error,) = unknown.values()
    assert error.code() == UNKNOWN_TOPIC_OR_PARTITION and "partitions 0 to 2" in error.str(), unknown


def test_kafka_python_reassigns_a_partition_lists_it_and_elects_its_new_preferred_replica(cluster):
    placed = wait_for(lambda: in_sync(cluster, "moves", 1, 2), "moves in sync")
    _, (a, b), _ = placed[0]
    c = next(node for node in (1, 2, 3) if node not in (a, b))
    admin = KafkaAdminClient(bootstrap_servers=cluster.bootstrap())
    try:
        admin.elect_leaders(0, {"moves": [0]})  # ELECTION_NOT_NEEDED is not raised
        wait_for(lambda: rows(cluster, "moves")[0][0] == a, "moves led by its first replica")
        partition = KafkaPythonTopicPartition("moves", 0)
        assert admin.alter_partition_reassignments({partition: [c, a]}) == {partition: None}

        def done():
            listed = admin.list_partition_reassignments()
            for moving in listed.values():
                assert moving == {"replicas": [c, a, b], "adding_replicas": [c], "removing_replicas": [b]}, listed
            return not listed

        wait_for(done, "the move done")
        wait_for(lambda: (row := rows(cluster, "moves")[0])[1] == [c, a] and sorted(row[2]) == sorted([c, a]),
                 "moves on c and a, both in sync")
        admin.elect_leaders(0, {"moves": [0]})
        wait_for(lambda: rows(cluster, "moves")[0][0] == c, "the new preferred replica leading")
    finally:
        admin.close()


def test_kafka_python_cancels_a_move_under_way_with_a_null_replica_list(cluster):
    placed = wait_for(lambda: in_sync(cluster, "cancels", 1, 1), "cancels in sync")
    _, (x,), _ = placed[0]
    admin = KafkaAdminClient(bootstrap_servers=cluster.bootstrap())
    try:
        described = rill(cluster.bootstrap(), "cluster", "describe").stdout
        (controller,) = [int(line.split()[-1]) for line in described.splitlines() if line.startswith("controller leader:")]
        partition = KafkaPythonTopicPartition("cancels", 0)
        nothing = admin.alter_partition_reassignments({partition: None})
        assert nothing == {partition: NoReassignmentInProgressError}, nothing
        # The move's new node is stopped (and is not the controller, which must answer): it stays under way.
        y = next(node for node in (1, 2, 3) if node not in (x, controller))
        os.kill(cluster.processes[y].pid, signal.SIGSTOP)
        try:
            assert admin.alter_partition_reassignments({partition: [y]}) == {partition: None}
            listed = admin.list_partition_reassignments()
            assert listed == {partition: {"replicas": [y, x], "adding_replicas": [y], "removing_replicas": [x]}}, listed
            assert admin.alter_partition_reassignments({partition: None}) == {partition: None}
            assert admin.list_partition_reassignments() == {}
            # Asked of x: the stopped node may come first in the bootstrap list, and it accepts but never answers.
            original = cluster.addrs[x - 1]
            wait_for(lambda: rows(cluster, "cancels", original).get(0, (None, [], []))[1] == [x], "cancels back on its original replica")
        finally:
            os.kill(cluster.processes[y].pid, signal.SIGCONT)
    finally:
        admin.close()


class Observed:
    """What a wait_for condition saw last, shown in its message if it gives up."""

    def __init__(self, what):
        self.what, self.last = what, None

    def __str__(self):
        return f"{self.what} (last seen: {self.last})"


def move_throttle(addr):
    """What `rill cluster describe` asked of `addr` says of the replication throttle."""
    described = rill(addr, "cluster", "describe").stdout
    (line,) = [line for line in described.splitlines() if line.startswith("move throttle:")]
    return line.split(":", 1)[1].strip()


def test_kafka_python_sets_and_clears_the_replication_throttle_as_kafka_reassign_partitions_does(cluster):
    from kafka.admin import ConfigResource as KafkaPythonConfigResource
    admin = KafkaAdminClient(bootstrap_servers=cluster.bootstrap())
    keys = ("leader.replication.throttled.rate", "follower.replication.throttled.rate")
    broker = lambda node, configs=None: KafkaPythonConfigResource("BROKER", str(node), configs=configs)  # noqa: E731
    try:
        # Both keys on every broker, each sent to that broker by id (kafka-python, as Kafka's tools).
        altered = admin.alter_configs([broker(node, {key: "10485760" for key in keys}) for node in (1, 2, 3)])
        assert altered == {"broker": {"1": "OK", "2": "OK", "3": "OK"}}, altered

        seen = Observed("throttle described on every broker")

        def described_everywhere(value, source):
            described = admin.describe_configs([broker(node) for node in (1, 2, 3)], config_filter="all")["broker"]
            seen.last = {node: {key: described[node][key] for key in keys} for node in described}
            return all(described[str(node)][key]["value"] == value and described[str(node)][key]["config_source"] == source
                       for node in (1, 2, 3) for key in keys)
        wait_for(lambda: described_everywhere("10485760", "DYNAMIC_DEFAULT_BROKER_CONFIG"), seen)
        assert all(move_throttle(addr).startswith("10485760 bytes/s") for addr in cluster.addrs)
        # And the topic's lists of the replicas it applies to, as the tool sets them beside the rates.
        lists = {"leader.replication.throttled.replicas": "0:1,0:2", "follower.replication.throttled.replicas": "0:3"}
        topic = lambda configs=None: KafkaPythonConfigResource("TOPIC", "orders", configs=configs)  # noqa: E731
        assert admin.alter_configs([topic(lists)]) == {"topic": {"orders": "OK"}}

        listed = Observed("the topic's lists")

        def topic_lists():
            # Any node answers; one may apply the change a moment after the node that took it.
            described = admin.describe_configs([topic()], config_filter="all")["topic"]["orders"]
            listed.last = {key: described[key]["value"] for key in lists}
            return listed.last
        wait_for(lambda: topic_lists() == lists, listed)
        assert admin.reset_configs([topic(list(lists))]) == {"topic": {"orders": "OK"}}
        wait_for(lambda: all(value == "" for value in topic_lists().values()), listed)

        # A static key is refused, saying which keys are not.
        refused = admin.alter_configs([broker(1, {"num.partitions": "3"})], raise_on_unknown=False)
        assert "cannot be changed while the broker runs" in refused["broker"]["1"], refused

        # The clean-up after the move (--verify): a DELETE of both keys, and of the log dirs' throttle, on every
        # broker.
        clean_up = keys + ("replica.alter.log.dirs.io.max.bytes.per.second",)
        cleared = admin.reset_configs([broker(node, {key: None for key in clean_up}) for node in (1, 2, 3)])
        assert cleared == {"broker": {"1": "OK", "2": "OK", "3": "OK"}}, cleared
        wait_for(lambda: described_everywhere("9223372036854775807", "DEFAULT_CONFIG"), seen)
        assert all(move_throttle(addr).startswith("none") for addr in cluster.addrs)
    finally:
        admin.close()


def test_confluent_kafka_sets_the_replication_throttle_through_one_broker_and_clears_it_through_another(cluster):
    # librdkafka refuses a broker resource without a name (the cluster's default), so by id: sent to that broker.
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap()})
    entry = ConfigEntry("leader.replication.throttled.rate", "1048576", incremental_operation=AlterConfigOpType.SET)
    resource = ConfigResource(ResourceType.BROKER, "2", incremental_configs=[entry])
    admin.incremental_alter_configs([resource])[resource].result(timeout=30)
    shown = Observed("the throttle on every node")

    def throttles():
        shown.last = [move_throttle(addr) for addr in cluster.addrs]
        return shown.last
    wait_for(lambda: all(throttle.startswith("1048576 bytes/s") for throttle in throttles()), shown)
    described = ConfigResource(ResourceType.BROKER, "3")
    rate = admin.describe_configs([described])[described].result(timeout=30)["follower.replication.throttled.rate"]
    assert (rate.value, rate.source, rate.is_read_only) == ("1048576", ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG.value, False)
    cleared = ConfigEntry("follower.replication.throttled.rate", None, incremental_operation=AlterConfigOpType.DELETE)
    resource = ConfigResource(ResourceType.BROKER, "3", incremental_configs=[cleared])
    admin.incremental_alter_configs([resource])[resource].result(timeout=30)
    wait_for(lambda: all(throttle.startswith("none") for throttle in throttles()), shown)


def group_config(admin, group):
    resource = ConfigResource(ResourceType.GROUP, group)
    return admin.describe_configs([resource])[resource].result(timeout=30)


def alter_group_config(admin, group, name, value):
    entry = ConfigEntry(name, value, incremental_operation=AlterConfigOpType.SET)
    resource = ConfigResource(ResourceType.GROUP, group, incremental_configs=[entry])
    admin.incremental_alter_configs([resource])[resource].result(timeout=30)


def test_confluent_kafka_alters_a_groups_config_through_one_node_and_every_node_serves_it(cluster):
    group = "billing-compat"
    admins = [AdminClient({"bootstrap.servers": addr}) for addr in cluster.addrs]
    before = group_config(admins[0], group)
    assert {"consumer.session.timeout.ms", "share.auto.offset.reset"} <= set(before), sorted(before)
    assert before["consumer.session.timeout.ms"].source == ConfigSource.DEFAULT_CONFIG.value
    alter_group_config(admins[1], group, "consumer.session.timeout.ms", "20000")

    def everywhere():
        seen = [group_config(admin, group)["consumer.session.timeout.ms"] for admin in admins]
        return all(entry.value == "20000" and entry.source == ConfigSource.GROUP_CONFIG.value for entry in seen)
    wait_for(everywhere, "the group's session timeout described through every node")
    # A share group's key is the cluster's too.
    alter_group_config(admins[2], group, "share.record.lock.duration.ms", "60000")
    wait_for(lambda: group_config(admins[0], group)["share.record.lock.duration.ms"].value == "60000",
             "a share group's key described through another node")
    # A heartbeat not below the session: refused with what is allowed, nothing changed.
    with pytest.raises(KafkaException) as refused:
        alter_group_config(admins[2], group, "consumer.heartbeat.interval.ms", "20000")
    error = refused.value.args[0]
    assert error.code() == KafkaError.INVALID_CONFIG and "below consumer.session.timeout.ms" in error.str(), error
    assert group_config(admins[2], group)["consumer.heartbeat.interval.ms"].source == ConfigSource.DEFAULT_CONFIG.value


def test_kafka_python_sets_a_client_metrics_subscription_through_one_node_and_every_node_serves_it(cluster):
    from kafka.admin import ConfigResource as KafkaPythonConfigResource
    admins = [KafkaAdminClient(bootstrap_servers=addr) for addr in cluster.addrs]
    try:
        subscription = lambda configs: KafkaPythonConfigResource("CLIENT_METRICS", "cluster-wide", configs=configs)
        created = admins[1].alter_configs([subscription({"metrics": "org.apache.kafka.producer.",
                                                          "interval.ms": "5000"})])
        assert created == {"client_metrics": {"cluster-wide": "OK"}}, created

        def everywhere(interval):
            described = [admin.describe_configs([subscription(None)])["client_metrics"]["cluster-wide"]
                         for admin in admins]
            listed = [admin.list_config_resources(["CLIENT_METRICS"]) for admin in admins]
            return (all(d.get("interval.ms", {}).get("value") == interval for d in described)
                    and all(entry == {"client_metrics": ["cluster-wide"]} for entry in listed))
        wait_for(lambda: everywhere("5000"), "the subscription described and listed through every node")
        altered = admins[2].alter_configs([subscription({"interval.ms": "2000"})])
        assert altered == {"client_metrics": {"cluster-wide": "OK"}}, altered
        wait_for(lambda: everywhere("2000"), "the altered interval through every node")
        admins[0].reset_configs([subscription({})])
        wait_for(lambda: all(admin.list_config_resources(["CLIENT_METRICS"]) == {} for admin in admins),
                 "the deleted subscription gone from every node")
    finally:
        for admin in admins:
            admin.close()


def test_kafka_python_describes_the_controller_quorum_through_every_node(cluster):
    admins = [KafkaAdminClient(bootstrap_servers=addr) for addr in cluster.addrs]
    ports = sorted(int(addr.rsplit(":", 1)[1]) for addr in cluster.addrs)
    try:
        def quorum(admin):
            answer = admin.describe_metadata_quorum()
            [topic] = answer["topics"]
            [log] = topic["partitions"]
            assert (topic["topic_name"], log["partition_index"], log["error"]) == ("__cluster_metadata", 0, None), log
            return answer, log

        def caught_up():
            logs = [quorum(admin)[1] for admin in admins]
            ends = {voter["log_end_offset"] for log in logs for voter in log["current_voters"]}
            return len(ends) == 1 and logs

        logs = wait_for(caught_up, "every voter at the leader's log end, as every node describes it")
        for log in logs:
            assert (log["leader_id"], log["leader_epoch"]) == (logs[0]["leader_id"], logs[0]["leader_epoch"]), log
            assert log["leader_epoch"] >= 1 and log["observers"] == [], log
            assert sorted(voter["replica_id"] for voter in log["current_voters"]) == [1, 2, 3], log
            end = log["current_voters"][0]["log_end_offset"]
            assert 0 < end and 0 < log["high_watermark"] <= end, log
            leader = [v for v in log["current_voters"] if v["replica_id"] == log["leader_id"]]
            assert leader and leader[0]["last_fetch_timestamp"] == -1, log
            assert leader[0]["last_caught_up_timestamp"] > 0, log
        answer, _ = quorum(admins[1])
        endpoints = sorted(listener["port"] for node in answer["nodes"] for listener in node["listeners"])
        assert endpoints == ports, answer["nodes"]
    finally:
        for admin in admins:
            admin.close()


def alive_nodes(cluster):
    described = rill(cluster.addrs[0], "cluster", "describe", check=False).stdout.splitlines()
    return sum(1 for line in described if line.split()[2:3] == ["alive"])


def listed_topics(addr):
    return {line.split()[0] for line in rill(addr, "topic", "list").stdout.splitlines() if line.strip()}


def test_admin_clients_create_grow_and_delete_replicated_topics_through_any_node():
    with tempfile.TemporaryDirectory() as root:
        cluster = Cluster(root, CONFIG)
        try:
            wait_for(lambda: alive_nodes(cluster) == 3, "every node alive")
            admin = AdminClient({"bootstrap.servers": cluster.addrs[1]})
            ledger = NewTopic("ledger", num_partitions=4, replication_factor=3, config={"min.insync.replicas": "2"})
            admin.create_topics([ledger], operation_timeout=10)["ledger"].result(timeout=30)
            for addr in cluster.addrs:
                wait_for(lambda: in_sync_at(addr, "ledger", 4), f"ledger in sync on {addr}")

            wide = admin.create_topics([NewTopic("wide", num_partitions=1, replication_factor=4)])["wide"]
            with pytest.raises(KafkaException) as refused:
                wide.result(timeout=30)
            error = refused.value.args[0]
            assert error.code() == KafkaError.INVALID_REPLICATION_FACTOR, error
            assert "3 alive node(s)" in error.str(), error.str()

            admin.create_partitions([NewPartitions("ledger", 6)], operation_timeout=10)["ledger"].result(timeout=30)
            for addr in cluster.addrs:
                wait_for(lambda: in_sync_at(addr, "ledger", 6), f"ledger grown to 6 partitions on {addr}")

            kafka_python = KafkaAdminClient(bootstrap_servers=cluster.addrs[2])
            try:
                kafka_python.create_topics([KafkaPythonNewTopic("audit", num_partitions=2, replication_factor=3)])
                for addr in cluster.addrs:
                    wait_for(lambda: in_sync_at(addr, "audit", 2), f"audit in sync on {addr}")
                kafka_python.delete_topics(["audit"])
            finally:
                kafka_python.close()
            admin.delete_topics(["ledger"], operation_timeout=10)["ledger"].result(timeout=30)
            for addr in cluster.addrs:
                wait_for(lambda: not {"ledger", "audit"} & listed_topics(addr), f"both topics gone from {addr}")
        finally:
            cluster.stop()


def in_sync_at(addr, topic, partitions):
    """Whether node `addr` describes `topic` with `partitions` partitions, each on 3 replicas all in sync."""
    found = rows(None, topic, addr)
    return len(found) == partitions and all(len(replicas) == 3 and len(isr) == 3 for _, replicas, isr in found.values())


def test_topic_defaults_set_through_one_broker_reach_every_nodes_replicas(cluster):
    # confluent-kafka names a broker by id; rill keeps one set of topic defaults for the cluster.
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap()})

    def alter(node, *entries):
        resource = ConfigResource(ResourceType.BROKER, node, incremental_configs=list(entries))
        admin.incremental_alter_configs([resource])[resource].result(timeout=30)

    retention = lambda value: ConfigEntry("log.retention.ms", value, incremental_operation=(  # noqa: E731
        AlterConfigOpType.DELETE if value is None else AlterConfigOpType.SET))
    alter("2", retention("3600000"))
    try:
        seen = Observed("orders' retention on every node")

        def retention_everywhere(value):
            # Each node's `rill topic describe` of its own view: the replicated metadata every replica follows.
            seen.last = [topic_setting_of(addr, "orders", "retention_ms") for addr in cluster.addrs]
            return all(found == value for found in seen.last)
        wait_for(lambda: retention_everywhere("3600000"), seen)
        resource = ConfigResource(ResourceType.TOPIC, "orders")
        described = admin.describe_configs([resource])[resource].result(timeout=30)["retention.ms"]
        assert (described.value, described.source) == ("3600000", ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG.value)
        broker = ConfigResource(ResourceType.BROKER, "3")
        shown = admin.describe_configs([broker])[broker].result(timeout=30)["log.retention.ms"]
        assert (shown.value, shown.source) == ("3600000", ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG.value)
    finally:
        alter("3", retention(None))
    wait_for(lambda: retention_everywhere("604800000"), seen)


def topic_setting_of(addr, topic, name):
    """One setting from `rill topic describe` asked of `addr`."""
    for line in rill(addr, "topic", "describe", topic).stdout.splitlines():
        words = line.split()
        if words and words[0] == name:
            return words[1]
    return None


def test_a_min_insync_replicas_default_set_as_kafka_configs_does_decides_what_acks_all_needs(cluster):
    # kafka-configs.sh --entity-type brokers --entity-default --add-config min.insync.replicas=3, as librdkafka
    # must say it (by a broker's id): a topic that does not set its own then needs all 3 replicas in sync for
    # acks all, and librdkafka's producer is refused NOT_ENOUGH_REPLICAS with one of them down.
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap()})
    admin.create_topics([NewTopic("guarded", 1, 3)])["guarded"].result(timeout=30)
    placed = wait_for(lambda: (found := in_sync(cluster, "guarded", 1, 3)) and found[0][0] and found, "guarded led")

    def alter(node, value):
        op = AlterConfigOpType.DELETE if value is None else AlterConfigOpType.SET
        entry = ConfigEntry("min.insync.replicas", value, incremental_operation=op)
        resource = ConfigResource(ResourceType.BROKER, node, incremental_configs=[entry])
        admin.incremental_alter_configs([resource])[resource].result(timeout=30)

    def described(resource):
        return admin.describe_configs([resource])[resource].result(timeout=30)["min.insync.replicas"]

    topic, broker = ConfigResource(ResourceType.TOPIC, "guarded"), ConfigResource(ResourceType.BROKER, "2")
    assert (described(topic).value, described(topic).source) == ("2", ConfigSource.DEFAULT_CONFIG.value)
    leader = placed[0][0]
    alter("1", "3")
    try:
        dynamic = ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG.value
        assert (described(broker).value, described(broker).source) == ("3", dynamic)
        wait_for(lambda: described(topic).value == "3", "guarded takes the default")
        assert described(topic).source == dynamic
        with pytest.raises(KafkaException) as refused:
            alter("1", "0")
        assert "min.insync.replicas" in refused.value.args[0].str() and "from 1" in refused.value.args[0].str()

        follower = next(node for node in placed[0][1] if node != leader)
        cluster.kill(follower)
        try:
            isr = lambda: rows(cluster, "guarded", cluster.addrs[leader - 1]).get(0, (None, [], placed[0][1]))[2]
            wait_for(lambda: len(isr()) == 2, "the ISR shrunk")
            errors = []
            producer = Producer({"bootstrap.servers": cluster.bootstrap(), "acks": "all", "retries": 0,
                                 "message.timeout.ms": 10000})
            producer.produce("guarded", value=b"needs three", partition=0, on_delivery=lambda err, _: errors.append(err))
            assert producer.flush(30) == 0
            assert [err.code() for err in errors] == [KafkaError.NOT_ENOUGH_REPLICAS], errors
        finally:
            cluster.restart(follower)
    finally:
        alter(str(leader), None)
    wait_for(lambda: described(topic).value == "2", "guarded back to its replication factor's default")
    assert described(topic).source == ConfigSource.DEFAULT_CONFIG.value
    wait_for(lambda: in_sync(cluster, "guarded", 1, 3), "the restarted node back in sync")
