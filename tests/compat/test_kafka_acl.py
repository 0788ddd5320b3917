"""Kafka clients against ACLs: a `rill broker --authorization on` with SASL (SCRAM-SHA-256 over SASL_PLAINTEXT),
its users made with `rill user create` and their ACLs with `rill acl add` by a super user. librdkafka
(confluent-kafka) produces and consumes where its ACLs allow, and gets TOPIC_AUTHORIZATION_FAILED and
GROUP_AUTHORIZATION_FAILED where they do not; Metadata lists only the topics a principal may describe. ACLs made,
listed and deleted with confluent-kafka's AdminClient (Kafka's CreateAcls, DescribeAcls, DeleteAcls) are the ones
`rill acl` sees, and decide what a SASL client may do; only ALTER (DESCRIBE) on the cluster may change (list)
them. Run by kafka-clients.sh."""

import os
import subprocess
import tempfile

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka.admin import (AclBinding, AclBindingFilter, AclOperation, AclPermissionType, AdminClient,
                                   ResourcePatternType, ResourceType)

from conftest import read_values, running_broker

RILL = os.environ["RILL_BIN"]
PASSWORD = "correct horse battery staple"
SASL = ["--kafka-sasl-mechanisms", "SCRAM-SHA-256", "--admin-listen", "off"]
# The super user's bearer token, for `rill` as admin, once the fixture made it.
TOKENS = {}


def rill(addr, *args, token=None, stdin=None):
    prefix = ["--token", token] if token else []
    done = subprocess.run([RILL, *prefix, *args, "--broker", addr], input=stdin, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def acl_broker():
    """The broker's address, after users admin (a super user), app and stranger were made and app was granted
    WRITE and READ on topics `acl-ok*` and READ on groups `acl-app*`."""
    with tempfile.TemporaryDirectory() as data_dir:
        with running_broker(data_dir, *SASL) as addr:
            admin = rill(addr, "user", "create", "admin", "--password-stdin", "--token", stdin=PASSWORD + "\n").strip()
            TOKENS["admin"] = admin
            for user in ["app", "stranger"]:
                rill(addr, "user", "create", user, "--password-stdin", stdin=PASSWORD + "\n")
        with running_broker(data_dir, *SASL, "--authorization", "on", "--super-users", "User:admin") as addr:
            for topic in ["acl-ok", "acl-secret"]:
                rill(addr, "topic", "create", topic, token=admin)
            rill(addr, "acl", "add", "--allow", "--principal", "User:app", "--operation", "write", "--operation",
                 "read", "--topic", "acl-ok", "--prefixed", token=admin)
            rill(addr, "acl", "add", "--allow", "--principal", "User:app", "--operation", "read", "--group",
                 "acl-app", "--prefixed", token=admin)
            yield addr


def settings(addr, user):
    return {"bootstrap.servers": addr, "security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "SCRAM-SHA-256",
            "sasl.username": user, "sasl.password": PASSWORD}


def produce(addr, user, topic, count=3):
    producer = Producer({**settings(addr, user), "acks": "all", "message.timeout.ms": 10000})
    delivered = []
    for i in range(count):
        producer.produce(topic, value=f"{user} {i}".encode(), partition=0,
                         on_delivery=lambda err, msg: delivered.append(err.code() if err else None))
    producer.flush(30)
    return delivered


def test_librdkafka_produces_and_consumes_where_its_acls_allow(acl_broker):
    assert produce(acl_broker, "app", "acl-ok") == [None, None, None]
    consumer = Consumer({**settings(acl_broker, "app"), "group.id": "acl-app-1", "auto.offset.reset": "earliest",
                         "enable.auto.commit": False})
    assert read_values(consumer, "acl-ok", 3) == [b"app 0", b"app 1", b"app 2"]


def test_a_produce_without_write_fails_with_topic_authorization_failed(acl_broker):
    assert produce(acl_broker, "app", "acl-secret", 1) == [KafkaError.TOPIC_AUTHORIZATION_FAILED]
    assert produce(acl_broker, "stranger", "acl-ok", 1) == [KafkaError.TOPIC_AUTHORIZATION_FAILED]


def first_error(consumer, topic, polls=150):
    """Subscribes and returns the first error `consumer` reports (a KafkaError); closes it."""
    try:
        consumer.subscribe([topic])
        for _ in range(polls):
            message = consumer.poll(0.1)
            if message is not None and message.error() is not None:
                return message.error()
    finally:
        consumer.close()
    return None


def test_a_consumer_without_read_on_its_group_or_topic_is_refused(acl_broker):
    other_group = Consumer({**settings(acl_broker, "app"), "group.id": "elsewhere", "auto.offset.reset": "earliest"})
    refused = first_error(other_group, "acl-ok")
    assert refused.code() == KafkaError.GROUP_AUTHORIZATION_FAILED, refused
    # FindCoordinator's answer says who was refused what, which librdkafka shows (it was empty).
    assert "User:app" in refused.str() and '"elsewhere"' in refused.str(), refused.str()
    secret_topic = Consumer({**settings(acl_broker, "app"), "group.id": "acl-app-2", "auto.offset.reset": "earliest"})
    assert first_error(secret_topic, "acl-secret").code() == KafkaError.TOPIC_AUTHORIZATION_FAILED


def test_metadata_lists_only_the_topics_a_principal_may_describe(acl_broker):
    seen_by_app = set(AdminClient(settings(acl_broker, "app")).list_topics(timeout=10).topics)
    assert "acl-ok" in seen_by_app and "acl-secret" not in seen_by_app, seen_by_app
    seen_by_admin = set(AdminClient(settings(acl_broker, "admin")).list_topics(timeout=10).topics)
    assert {"acl-ok", "acl-secret"} <= seen_by_admin, seen_by_admin


def binding(name, operation, principal="User:stranger", restype=ResourceType.TOPIC, host="*"):
    return AclBinding(restype, name, ResourcePatternType.LITERAL, principal, host, operation, AclPermissionType.ALLOW)


def error_code_of(future):
    """The Kafka error code a failed admin future raises with, and its message."""
    with pytest.raises(KafkaException) as raised:
        future.result(timeout=30)
    error = raised.value.args[0]
    return error.code(), error.str()


def test_acls_made_through_kafkas_admin_client_decide_what_a_sasl_client_may_do(acl_broker):
    rill(acl_broker, "topic", "create", "acl-kafka", token=TOKENS["admin"])
    assert produce(acl_broker, "stranger", "acl-kafka", 1) == [KafkaError.TOPIC_AUTHORIZATION_FAILED]

    admin = AdminClient(settings(acl_broker, "admin"))
    grants = [binding("acl-kafka", AclOperation.WRITE), binding("acl-kafka", AclOperation.READ),
              binding("acl-kafka-group", AclOperation.READ, restype=ResourceType.GROUP)]
    elsewhere = binding("acl-kafka", AclOperation.WRITE, host="10.0.0.1")
    created = admin.create_acls([*grants, elsewhere])
    for grant in grants:
        assert created[grant].result(timeout=30) is None
    code, message = error_code_of(created[elsewhere])
    assert code == KafkaError.INVALID_REQUEST and "only * (every host)" in message, message

    assert produce(acl_broker, "stranger", "acl-kafka") == [None, None, None]
    consumer = Consumer({**settings(acl_broker, "stranger"), "group.id": "acl-kafka-group",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    assert read_values(consumer, "acl-kafka", 3) == [b"stranger 0", b"stranger 1", b"stranger 2"]

    # MATCH: every binding that applies to topic acl-kafka; none of the `acl-ok` prefix's.
    applying = admin.describe_acls(AclBindingFilter(ResourceType.TOPIC, "acl-kafka", ResourcePatternType.MATCH, None,
                                                    None, AclOperation.ANY, AclPermissionType.ANY)).result(timeout=30)
    assert sorted(applying) == sorted(grants[:2]), applying
    everything = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, None, None, AclOperation.ANY,
                                  AclPermissionType.ANY)
    assert set(grants) <= set(admin.describe_acls(everything).result(timeout=30))
    # The same store as `rill acl`: it lists what Kafka's API made.
    listed = rill(acl_broker, "acl", "list", "--principal", "User:stranger", token=TOKENS["admin"])
    assert listed.count("acl-kafka") == 3 and "User:stranger" in listed, listed

    writes = AclBindingFilter(ResourceType.TOPIC, "acl-kafka", ResourcePatternType.LITERAL, "User:stranger", None,
                              AclOperation.WRITE, AclPermissionType.ANY)
    deleted = admin.delete_acls([writes])[writes].result(timeout=30)
    assert deleted == [grants[0]], deleted
    assert produce(acl_broker, "stranger", "acl-kafka", 1) == [KafkaError.TOPIC_AUTHORIZATION_FAILED]
    assert set(admin.describe_acls(everything).result(timeout=30)) >= set(grants[1:])


def test_only_a_principal_with_describe_or_alter_on_the_cluster_may_list_or_change_acls(acl_broker):
    app = AdminClient(settings(acl_broker, "app"))
    everything = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, None, None, AclOperation.ANY,
                                  AclPermissionType.ANY)
    # librdkafka (2.16, the one tested) reads DescribeAcls's error code and drops it: a refusal arrives as an empty
    # listing. tests/tests/kafka_acls.rs checks the CLUSTER_AUTHORIZATION_FAILED on the wire.
    assert app.describe_acls(everything).result(timeout=30) == []
    grant = binding("acl-ok", AclOperation.ALL, principal="User:app")
    code, message = error_code_of(app.create_acls([grant])[grant])
    assert code == KafkaError.CLUSTER_AUTHORIZATION_FAILED and "alter the cluster" in message, message
    code, _ = error_code_of(app.delete_acls([everything])[everything])
    assert code == KafkaError.CLUSTER_AUTHORIZATION_FAILED
    assert len(AdminClient(settings(acl_broker, "admin")).describe_acls(everything).result(timeout=30)) >= 2


def kafka_python_admin(addr, user):
    from kafka.admin import KafkaAdminClient
    return KafkaAdminClient(bootstrap_servers=addr, security_protocol="SASL_PLAINTEXT", sasl_mechanism="SCRAM-SHA-256",
                            sasl_plain_username=user, sasl_plain_password=PASSWORD, request_timeout_ms=10000)


def test_kafka_pythons_admin_client_manages_acls_and_reads_every_refusal(acl_broker):
    """A second client, built from Kafka's message schemas like the Java one: a USER resource (which needs v3) is
    refused alone, and, unlike librdkafka, it raises DescribeAcls's CLUSTER_AUTHORIZATION_FAILED."""
    from kafka.admin import (ACL, ACLFilter, ACLOperation, ACLPermissionType, ACLResourcePatternType,
                             ResourcePattern, ResourcePatternFilter, ResourceType as Type)
    import kafka.errors as errors

    admin = kafka_python_admin(acl_broker, "admin")
    group = ResourcePattern(Type.GROUP, "kp-", ACLResourcePatternType.PREFIXED)
    grant = ACL("User:stranger", "*", ACLOperation.READ, ACLPermissionType.ALLOW, group)
    on_a_user = ACL("User:stranger", "*", ACLOperation.ALTER, ACLPermissionType.ALLOW,
                    ResourcePattern(Type.USER, "app"))
    created = admin.create_acls([grant])
    assert created["succeeded"] == [grant] and created["failed"] == [], created
    refused = admin.create_acls([on_a_user])
    assert refused["failed"] == [errors.InvalidRequestError], refused

    applying = ACLFilter(None, None, ACLOperation.ANY, ACLPermissionType.ANY,
                         ResourcePatternFilter(Type.GROUP, "kp-orders", ACLResourcePatternType.MATCH))
    acls, error = admin.describe_acls(applying)
    assert error is errors.NoError and acls == [grant], acls

    app = kafka_python_admin(acl_broker, "app")
    with pytest.raises(errors.ClusterAuthorizationFailedError, match="User:app"):
        app.describe_acls(applying)
    [(_, matched, error)] = app.delete_acls([applying])
    assert error is errors.ClusterAuthorizationFailedError and matched == []

    [(_, matched, error)] = admin.delete_acls([applying])
    assert error is errors.NoError and matched == [grant], matched
    assert admin.describe_acls(applying)[0] == []
    app.close()
    admin.close()
