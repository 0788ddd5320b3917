"""SASL/SCRAM on a three-node rill cluster: a user made through node 1 is in the replicated cluster metadata, so
librdkafka (confluent-kafka) bootstrapped from node 2 alone authenticates on every node it reaches (Metadata
sends it to each partition's leader), produces and consumes; a wrong password is refused on every node, and a
user deleted through node 3 can no longer authenticate anywhere. ACLs made with Kafka's CreateAcls through one
node are listed by DescribeAcls on every node and deleted through another. SCRAM credentials made with Kafka's
AlterUserScramCredentials through one node log in on every node, are described by another, and deleted through a
third log in nowhere. Run by kafka-clients.sh."""

import tempfile

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import (AclBinding, AclBindingFilter, AclOperation, AclPermissionType, AdminClient,
                                  ResourcePatternType, ResourceType, ScramCredentialInfo, ScramMechanism,
                                  UserScramCredentialDeletion, UserScramCredentialUpsertion)

from test_kafka_cluster import CONFIG, Cluster, rill, wait_for

PASSWORD = "correct horse battery staple"
SASL_CONFIG = CONFIG + '[auth]\nkafka_sasl_mechanisms = ["SCRAM-SHA-256", "SCRAM-SHA-512"]\n'


@pytest.fixture(scope="module")
def cluster():
    with tempfile.TemporaryDirectory() as root:
        cluster = Cluster(root, SASL_CONFIG)
        try:
            create = ("topic", "create", "scram", "--partitions", "3", "--replication-factor", "3")
            wait_for(lambda: rill(cluster.addrs[0], *create, check=False).returncode == 0, "topic create")
            user = ("user", "create", "app", "--password", PASSWORD)
            wait_for(lambda: rill(cluster.addrs[0], *user, check=False).returncode == 0, "user create")
            yield cluster
        finally:
            cluster.stop()


def settings(addr, mechanism, password, user="app"):
    return {"bootstrap.servers": addr, "security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": mechanism,
            "sasl.username": user, "sasl.password": password}


def login_error(addr, mechanism, password, user="app"):
    """The error librdkafka bootstrapped from `addr` alone reports when its login is refused; None if it logs in."""
    errors = []
    producer = Producer({**settings(addr, mechanism, password, user), "error_cb": errors.append})
    try:
        producer.list_topics(timeout=5)
    except KafkaException as refused:
        producer.poll(0.5)
        return errors[0] if errors else refused.args[0]
    return None


def refused_login(addr, mechanism, password, user="app"):
    """Waits until a login on `addr` is refused (a change made elsewhere reaches a node a round trip later)."""
    def refused():
        error = login_error(addr, mechanism, password, user)
        return error if error is not None and error.code() == KafkaError._AUTHENTICATION else None
    return wait_for(refused, f"a refused {mechanism} login on {addr}")


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_a_user_made_on_one_node_logs_in_on_every_node(cluster, mechanism):
    # Bootstrapped from node 2 only: Metadata then sends the client to each partition's leader, on any node.
    config = settings(cluster.addrs[1], mechanism, PASSWORD)
    metadata = Producer(config).list_topics(timeout=10)
    assert sorted(metadata.brokers) == [1, 2, 3]
    leaders = {p.leader for p in metadata.topics["scram"].partitions.values()}
    producer = Producer({**config, "acks": "all"})
    failures = []
    for index in range(3):
        producer.produce("scram", value=f"{mechanism}:{index}".encode(), partition=index,
                         on_delivery=lambda err, msg: err and failures.append(err))
    assert producer.flush(30) == 0 and not failures, failures
    consumer = Consumer({**config, "group.id": f"scram-{mechanism}", "enable.auto.commit": False})
    consumer.assign([TopicPartition("scram", index, 0) for index in range(3)])
    values = set()

    def read_all():
        message = consumer.poll(0.5)
        if message is not None and message.error() is None:
            values.add(message.value().decode())
        return {f"{mechanism}:{index}" for index in range(3)} <= values

    wait_for(read_all, f"the {mechanism} records, from leaders {sorted(leaders)}")
    consumer.close()
    for addr in cluster.addrs:
        error = refused_login(addr, mechanism, "not-the-password-7f3a")
        assert "not-the-password-7f3a" not in error.str() and PASSWORD not in error.str(), error


def test_acls_made_through_kafka_on_one_node_hold_on_every_node(cluster):
    # One client per node, kept alive while its futures are awaited.
    admins = {addr: AdminClient(settings(addr, "SCRAM-SHA-256", PASSWORD)) for addr in cluster.addrs}
    admin = admins.__getitem__
    binding = AclBinding(ResourceType.TOPIC, "scram", ResourcePatternType.LITERAL, "User:app", "*",
                         AclOperation.READ, AclPermissionType.ALLOW)
    for future in admin(cluster.addrs[0]).create_acls([binding]).values():
        future.result(timeout=10)
    everything = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, None, None, AclOperation.ANY,
                                  AclPermissionType.ANY)
    for addr in cluster.addrs:
        wait_for(lambda: admin(addr).describe_acls(everything).result(timeout=10) == [binding],
                 f"the binding listed by {addr}")
    deleted = admin(cluster.addrs[2]).delete_acls([everything])
    assert [result.result(timeout=10) for result in deleted.values()] == [[binding]]
    for addr in cluster.addrs:
        wait_for(lambda: admin(addr).describe_acls(everything).result(timeout=10) == [], f"no binding on {addr}")
    assert "User:app" not in rill(cluster.addrs[1], "acl", "list").stdout


def test_scram_credentials_made_through_kafka_on_one_node_log_in_on_every_node(cluster):
    admins = {addr: AdminClient(settings(addr, "SCRAM-SHA-256", PASSWORD)) for addr in cluster.addrs}
    upsert = UserScramCredentialUpsertion("ops", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 8192), b"0ps-pw")
    for future in admins[cluster.addrs[0]].alter_user_scram_credentials([upsert]).values():
        future.result(timeout=30)
    for addr in cluster.addrs:
        wait_for(lambda: login_error(addr, "SCRAM-SHA-512", "0ps-pw", "ops") is None, f"ops logging in on {addr}")
    described = admins[cluster.addrs[2]].describe_user_scram_credentials(["ops"])["ops"].result(timeout=30)
    assert [(i.mechanism, i.iterations) for i in described.scram_credential_infos] == \
        [(ScramMechanism.SCRAM_SHA_512, 8192)]
    assert "ops" in rill(cluster.addrs[1], "user", "list").stdout
    deletion = UserScramCredentialDeletion("ops", ScramMechanism.SCRAM_SHA_512)
    for future in admins[cluster.addrs[1]].alter_user_scram_credentials([deletion]).values():
        future.result(timeout=30)
    for addr in cluster.addrs:
        refused_login(addr, "SCRAM-SHA-512", "0ps-pw", "ops")


def test_a_user_deleted_through_another_node_logs_in_nowhere(cluster):
    for addr in cluster.addrs:
        assert login_error(addr, "SCRAM-SHA-256", PASSWORD) is None, addr
    rill(cluster.addrs[2], "user", "delete", "app")
    for addr in cluster.addrs:
        refused_login(addr, "SCRAM-SHA-256", PASSWORD)
