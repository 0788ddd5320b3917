"""rill's schema registry (`--schema-registry-listen`) against Confluent's own client code: confluent-kafka's
SchemaRegistryClient and its AvroSerializer and AvroDeserializer (from PyPI, `confluent-kafka[avro]`) produce
Avro records through librdkafka to a `rill broker` and read them back, the schema registered and looked up by
id in rill's registry; schema evolution under BACKWARD, an incompatible change refused with Confluent's 409,
compatibility levels set per subject, soft and permanent deletes, Confluent's error codes for what does not exist,
what survives a restart, and authentication (HTTP Basic with a rill user, a bearer token) when the broker
requires it. Run by kafka-clients.sh."""

import base64
import contextlib
import json
import os
import subprocess
import tempfile
import urllib.error
import urllib.request

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.serialization import MessageField, SerializationContext

from conftest import free_port, running_broker

RILL = os.environ["RILL_BIN"]
PASSWORD = "correct horse battery staple"

ORDER_V1 = json.dumps({"type": "record", "name": "Order", "namespace": "shop", "fields": [
    {"name": "id", "type": "long"}, {"name": "item", "type": "string"}]})
# Adds a field with a default: BACKWARD-compatible (a v2 reader fills it in for v1 data).
ORDER_V2 = json.dumps({"type": "record", "name": "Order", "namespace": "shop", "fields": [
    {"name": "id", "type": "long"}, {"name": "item", "type": "string"},
    {"name": "quantity", "type": "int", "default": 1}]})
# Adds a field without a default: a v3 reader cannot read v2 data.
ORDER_BAD = json.dumps({"type": "record", "name": "Order", "namespace": "shop", "fields": [
    {"name": "id", "type": "long"}, {"name": "item", "type": "string"},
    {"name": "quantity", "type": "int", "default": 1}, {"name": "coupon", "type": "string"}]})



@contextlib.contextmanager
def broker_with_registry(data_dir, *flags, admin="off"):
    """A broker serving the registry on a free port: (its Kafka address, the registry's URL)."""
    port = free_port()
    with running_broker(data_dir, "--admin-listen", admin, "--schema-registry-listen", f"127.0.0.1:{port}",
                        *flags) as addr:
        yield addr, f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def registry():
    admin = f"127.0.0.1:{free_port()}"
    with tempfile.TemporaryDirectory() as data_dir, broker_with_registry(data_dir, admin=admin) as (addr, url):
        yield {"addr": addr, "url": url, "data_dir": data_dir, "admin": admin}


def metric(admin, name):
    """The value of an unlabelled metric on the broker's /metrics."""
    with urllib.request.urlopen(f"http://{admin}/metrics", timeout=10) as answer:
        for line in answer.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[-1])
    return None


def call(url, method="GET", body=None, headers=None):
    """(status, JSON answer) of a raw registry call."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers={
        "Content-Type": "application/vnd.schemaregistry.v1+json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, json.loads(answer.read() or b"null")
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"null")


def test_confluents_avro_serializer_round_trips_records_through_rill(registry):
    subprocess.run([RILL, "topic", "create", "orders", "--broker", registry["addr"]], check=True, capture_output=True)
    client = SchemaRegistryClient({"url": registry["url"]})
    serialize = AvroSerializer(client, ORDER_V1)
    producer = Producer({"bootstrap.servers": registry["addr"], "acks": "all"})
    orders = [{"id": i, "item": f"book {i}"} for i in range(10)]
    for order in orders:
        value = serialize(order, SerializationContext("orders", MessageField.VALUE))
        assert value[0] == 0 and int.from_bytes(value[1:5], "big") == 1, "Confluent's framing: magic 0, id 1"
        producer.produce("orders", value=value, partition=0)
    producer.flush(30)

    # The consumer knows no schema: it reads each record's id and asks the registry.
    deserialize = AvroDeserializer(SchemaRegistryClient({"url": registry["url"]}))
    consumer = Consumer({"bootstrap.servers": registry["addr"], "group.id": "orders-avro",
                         "auto.offset.reset": "earliest"})
    consumer.subscribe(["orders"])
    read = []
    for _ in range(300):
        message = consumer.poll(0.1)
        if message is not None and message.error() is None:
            read.append(deserialize(message.value(), SerializationContext("orders", MessageField.VALUE)))
        if len(read) == len(orders):
            break
    consumer.close()
    assert read == orders
    assert client.get_subjects() == ["orders-value"]
    latest = client.get_latest_version("orders-value")
    assert (latest.schema_id, latest.version, json.loads(latest.schema.schema_str)) == (1, 1, json.loads(ORDER_V1))


def test_a_schema_evolves_under_backward_and_an_incompatible_one_is_refused(registry):
    client = SchemaRegistryClient({"url": registry["url"]})
    subject = "evolving-value"
    first = client.register_schema(subject, Schema(ORDER_V1, "AVRO"))
    assert client.register_schema(subject, Schema(ORDER_V1, "AVRO")) == first, "the same schema, the same id"
    assert client.test_compatibility(subject, Schema(ORDER_V2, "AVRO")) is True
    second = client.register_schema(subject, Schema(ORDER_V2, "AVRO"))
    assert second != first
    assert client.test_compatibility(subject, Schema(ORDER_BAD, "AVRO")) is False
    with pytest.raises(SchemaRegistryError) as refused:
        client.register_schema(subject, Schema(ORDER_BAD, "AVRO"))
    assert refused.value.http_status_code == 409 and refused.value.error_code == 409
    assert "BACKWARD" in refused.value.error_message, refused.value.error_message
    assert client.get_versions(subject) == [1, 2]
    registered = client.lookup_schema(subject, Schema(ORDER_V2, "AVRO"))
    assert (registered.schema_id, registered.version) == (second, 2)
    # A v2 deserializer reads v1 records, filling in the default: what BACKWARD promises.
    v1_bytes = AvroSerializer(client, ORDER_V1)({"id": 7, "item": "pen"}, SerializationContext("evolving",
                                                                                              MessageField.VALUE))
    read = AvroDeserializer(client, ORDER_V2)(v1_bytes, SerializationContext("evolving", MessageField.VALUE))
    assert read == {"id": 7, "item": "pen", "quantity": 1}

    # NONE for this subject lets it through; the global level stays BACKWARD.
    assert client.set_compatibility(subject, "NONE") == {"compatibility": "NONE"}
    assert client.get_compatibility(subject) == "NONE"
    client.register_schema(subject, Schema(ORDER_BAD, "AVRO"))
    assert client.get_compatibility() == "BACKWARD"


def test_deletes_and_confluents_error_codes(registry):
    client = SchemaRegistryClient({"url": registry["url"]})
    subject = "doomed-value"
    client.register_schema(subject, Schema(ORDER_V1, "AVRO"))
    client.register_schema(subject, Schema(ORDER_V2, "AVRO"))
    with pytest.raises(SchemaRegistryError) as not_soft:
        client.delete_subject(subject, permanent=True)
    assert not_soft.value.error_code == 40405
    assert client.delete_version(subject, 2) == 2
    assert client.get_versions(subject) == [1]
    assert sorted(client.delete_subject(subject)) == [1]
    assert subject not in client.get_subjects()
    status, answer = call(f"{registry['url']}/subjects/{subject}/versions")
    assert (status, answer["error_code"]) == (404, 40401)
    status, answer = call(f"{registry['url']}/subjects?deleted=true")
    assert subject in answer
    assert sorted(client.delete_subject(subject, permanent=True)) == [1, 2]
    status, answer = call(f"{registry['url']}/schemas/ids/999")
    assert (status, answer["error_code"]) == (404, 40403)
    status, answer = call(f"{registry['url']}/subjects/orders-value/versions/0")
    assert (status, answer["error_code"]) == (422, 42202)
    status, answer = call(f"{registry['url']}/subjects/x-value/versions", "POST", {"schema": "{\"type\": \"nope\"}"})
    assert (status, answer["error_code"]) == (422, 42201)
    status, answer = call(f"{registry['url']}/subjects/x-value/versions", "POST",
                          {"schema": "<order/>", "schemaType": "XML"})
    assert (status, answer["error_code"]) == (422, 42201) and "AVRO, JSON or PROTOBUF" in answer["message"]
    status, answer = call(f"{registry['url']}/config", "PUT", {"compatibility": "SIDEWAYS"})
    assert (status, answer["error_code"]) == (422, 42203)
    assert call(f"{registry['url']}/schemas/types") == (200, ["AVRO", "JSON", "PROTOBUF"])


def test_schemas_and_their_ids_survive_a_restart(registry):
    client = SchemaRegistryClient({"url": registry["url"]})
    kept = client.register_schema("kept-value", Schema(ORDER_V2, "AVRO"))
    with tempfile.TemporaryDirectory() as data_dir:
        with broker_with_registry(data_dir) as (_, url):
            first = SchemaRegistryClient({"url": url}).register_schema("a-value", Schema(ORDER_V1, "AVRO"))
        with broker_with_registry(data_dir) as (_, url):
            again = SchemaRegistryClient({"url": url})
            assert json.loads(again.get_schema(first).schema_str) == json.loads(ORDER_V1)
            assert again.register_schema("b-value", Schema(ORDER_V2, "AVRO")) == first + 1, "ids go on"
    assert kept > 0


def test_with_authentication_required_callers_log_in(registry):
    with tempfile.TemporaryDirectory() as data_dir:
        with running_broker(data_dir, "--admin-listen", "off") as addr:
            created = subprocess.run([RILL, "user", "create", "app", "--password-stdin", "--token", "--broker", addr],
                                     input=PASSWORD + "\n", capture_output=True, text=True, check=True)
            token = created.stdout.strip()
        with broker_with_registry(data_dir, "--require-auth") as (_, url):
            status, answer = call(f"{url}/subjects")
            assert (status, answer["error_code"]) == (401, 401)
            basic = SchemaRegistryClient({"url": url, "basic.auth.user.info": f"app:{PASSWORD}"})
            schema_id = basic.register_schema("secure-value", Schema(ORDER_V1, "AVRO"))
            wrong = SchemaRegistryClient({"url": url, "basic.auth.user.info": "app:wrong"})
            with pytest.raises(SchemaRegistryError) as refused:
                wrong.get_subjects()
            assert refused.value.http_status_code == 401
            status, answer = call(f"{url}/schemas/ids/{schema_id}", headers={"Authorization": f"Bearer {token}"})
            assert status == 200 and json.loads(answer["schema"]) == json.loads(ORDER_V1)
            encoded = base64.b64encode(f"app:{PASSWORD}".encode()).decode()
            assert call(f"{url}/subjects", headers={"Authorization": f"Basic {encoded}"}) == (200, ["secure-value"])
        with broker_with_registry(data_dir, "--require-auth", "--authorization", "on") as (_, url):
            # With ACLs on, app (no ALTER on the cluster) reads but may not change the registry.
            basic = SchemaRegistryClient({"url": url, "basic.auth.user.info": f"app:{PASSWORD}"})
            assert basic.get_subjects() == ["secure-value"]
            with pytest.raises(SchemaRegistryError) as denied:
                basic.register_schema("other-value", Schema(ORDER_V1, "AVRO"))
            assert (denied.value.http_status_code, denied.value.error_code) == (403, 40301)
            assert "ALTER" in denied.value.error_message.upper(), denied.value.error_message


def test_a_topic_with_schema_id_validation_takes_only_records_with_a_registered_id(registry):
    """Confluent's broker-side schema id validation, set and read with Kafka's admin client."""
    from confluent_kafka import KafkaError
    from confluent_kafka.admin import (AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, NewTopic,
                                       ResourceType)
    admin = AdminClient({"bootstrap.servers": registry["addr"]})
    created = admin.create_topics([NewTopic("validated", 1, 1, config={
        "confluent.value.schema.validation": "true"})])
    created["validated"].result(30)
    client = SchemaRegistryClient({"url": registry["url"]})
    serialize = AvroSerializer(client, ORDER_V1)
    other_id = client.register_schema("not-this-topic-value", Schema(json.dumps({"type": "string"}), "AVRO"))

    def produce(value):
        producer = Producer({"bootstrap.servers": registry["addr"], "acks": "all", "message.timeout.ms": 10000,
                             "retries": 0})
        results = []
        producer.produce("validated", value=value, partition=0,
                         on_delivery=lambda err, msg: results.append(err))
        producer.flush(30)
        return results[0]

    good = serialize({"id": 1, "item": "kept"}, SerializationContext("validated", MessageField.VALUE))
    assert produce(good) is None
    assert produce(None) is None, "a tombstone carries no data: it passes"
    refusals_before = metric(registry["admin"], "rill_schema_id_refusals_total")
    for bad in [b'{"id": 1}', b"\x00" + other_id.to_bytes(4, "big") + b"\x02", b"\x00\x00\x00\x03\xe7\x02"]:
        err = produce(bad)
        assert err is not None and err.code() == KafkaError.INVALID_RECORD, err
    assert metric(registry["admin"], "rill_schema_id_refusals_total") == refusals_before + 3
    assert metric(registry["admin"], "rill_schema_registry_schemas") >= 2

    resource = ConfigResource(ResourceType.TOPIC, "validated")
    described = admin.describe_configs([resource])[resource].result(30)
    assert described["confluent.value.schema.validation"].value == "true"
    assert described["confluent.value.subject.name.strategy"].value.endswith("TopicNameStrategy")
    off = ConfigResource(ResourceType.TOPIC, "validated", incremental_configs=[
        ConfigEntry("confluent.value.schema.validation", "false", incremental_operation=AlterConfigOpType.SET)])
    admin.incremental_alter_configs([off])[off].result(30)
    assert produce(b'{"id": 2}') is None, "validation off: any value"
    bad_strategy = ConfigResource(ResourceType.TOPIC, "validated", incremental_configs=[
        ConfigEntry("confluent.value.subject.name.strategy", "SubjectPerDay",
                    incremental_operation=AlterConfigOpType.SET)])
    with pytest.raises(Exception) as refused:
        admin.incremental_alter_configs([bad_strategy])[bad_strategy].result(30)
    assert "TopicNameStrategy" in str(refused.value), refused.value


def test_schemas_imported_with_their_ids_read_records_written_against_another_registry():
    """A move from another registry (Confluent's, Redpanda's): IMPORT mode takes each schema with the id and version
    it had there, so records already in topics, which carry those ids, read back through rill's registry."""
    import io

    import fastavro
    with tempfile.TemporaryDirectory() as data_dir, broker_with_registry(data_dir) as (addr, url):
        # A record written by a producer of the old registry, where ORDER_V1 had id 100.
        encoded = io.BytesIO()
        fastavro.schemaless_writer(encoded, fastavro.parse_schema(json.loads(ORDER_V1)), {"id": 9, "item": "old"})
        old_record = b"\x00" + (100).to_bytes(4, "big") + encoded.getvalue()

        assert call(f"{url}/mode", "PUT", {"mode": "IMPORT"}) == (200, {"mode": "IMPORT"})
        status, answer = call(f"{url}/subjects/orders-value/versions", "POST", {"schema": ORDER_V1})
        assert (status, answer["error_code"]) == (422, 42205), "an import names its id"
        assert call(f"{url}/subjects/orders-value/versions", "POST",
                    {"schema": ORDER_V1, "id": 100, "version": 4}) == (200, {"id": 100})
        client = SchemaRegistryClient({"url": url})
        read = AvroDeserializer(client)(old_record, SerializationContext("orders", MessageField.VALUE))
        assert read == {"id": 9, "item": "old"}
        assert client.get_latest_version("orders-value").version == 4

        assert call(f"{url}/mode", "PUT", {"mode": "READWRITE"}) == (200, {"mode": "READWRITE"})
        assert client.register_schema("orders-value", Schema(ORDER_V2, "AVRO")) == 101, "ids go on after 100"
        assert call(f"{url}/mode/orders-value", "PUT", {"mode": "READONLY"}) == (200, {"mode": "READONLY"})
        with pytest.raises(SchemaRegistryError) as refused:
            client.register_schema("orders-value", Schema(ORDER_BAD, "AVRO"))
        assert refused.value.error_code == 42205 and "read-only" in refused.value.error_message
        status, answer = call(f"{url}/mode", "PUT", {"mode": "IMPORT"})
        assert (status, answer["error_code"]) == (422, 42205), "IMPORT needs an empty registry (or force=true)"
        assert call(f"{url}/mode/orders-value?defaultToGlobal=true") == (200, {"mode": "READONLY"})
