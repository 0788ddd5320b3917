"""rill's schema registry with Protobuf and JSON Schema, against Confluent's own client code: confluent-kafka's
ProtobufSerializer and ProtobufDeserializer (the `[protobuf]` extra, Google's `protobuf` runtime) and its
JSONSerializer and JSONDeserializer (the `[json]` extra, `jsonschema`) produce records through librdkafka to a
`rill broker` and read them back by schema id. The Protobuf serializer registers the file's imports as references
(under the subject named after the import) and the file as a base64 descriptor; its deserializer asks for the
writer's schema `format=serialized` and resolves the references itself. Evolution follows each kind's rules
(Confluent's 409 for what a reader cannot read), referenced schemas cannot be deleted (42206), and a topic's schema
id validation reads Protobuf message indexes for RecordNameStrategy. Run by kafka-clients.sh."""

import base64
import contextlib
import json
import subprocess
import tempfile

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic
from confluent_kafka.schema_registry import Schema, SchemaReference, SchemaRegistryClient
from confluent_kafka.schema_registry import record_subject_name_strategy
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.schema_registry.json_schema import JSONDeserializer, JSONSerializer
from confluent_kafka.schema_registry.protobuf import ProtobufDeserializer, ProtobufSerializer
from confluent_kafka.serialization import MessageField, SerializationContext
from google.protobuf import descriptor_pb2, descriptor_pool, timestamp_pb2
from google.protobuf.message_factory import GetMessageClass

from test_schema_registry import RILL, broker_with_registry, call

F = descriptor_pb2.FieldDescriptorProto


def field(name, number, kind, type_name=None, label=F.LABEL_OPTIONAL):
    made = F(name=name, number=number, type=kind, label=label)
    if type_name:
        made.type_name = type_name
    return made


def message_classes():
    """shop.Order (importing crm/customer.proto and google/protobuf/timestamp.proto, with a nested Line) and
    crm.Customer, built as protoc would have generated them, in a pool of their own."""
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(timestamp_pb2.DESCRIPTOR.serialized_pb)
    customer = descriptor_pb2.FileDescriptorProto(name="crm/customer.proto", package="crm", syntax="proto3")
    customer.message_type.add(name="Customer", field=[field("name", 1, F.TYPE_STRING)])
    pool.Add(customer)
    order = descriptor_pb2.FileDescriptorProto(
        name="shop/order.proto", package="shop", syntax="proto3",
        dependency=["crm/customer.proto", "google/protobuf/timestamp.proto"])
    order_message = order.message_type.add(name="Order", field=[
        field("id", 1, F.TYPE_INT64),
        field("customer", 2, F.TYPE_MESSAGE, ".crm.Customer"),
        field("at", 3, F.TYPE_MESSAGE, ".google.protobuf.Timestamp"),
        field("lines", 4, F.TYPE_MESSAGE, ".shop.Order.Line", F.LABEL_REPEATED),
    ])
    order_message.nested_type.add(name="Line", field=[field("sku", 1, F.TYPE_STRING), field("count", 2, F.TYPE_INT32)])
    pool.Add(order)
    return (GetMessageClass(pool.FindMessageTypeByName("shop.Order")),
            GetMessageClass(pool.FindMessageTypeByName("shop.Order.Line")))


@pytest.fixture(scope="module")
def registry():
    with tempfile.TemporaryDirectory() as data_dir, broker_with_registry(data_dir) as (addr, url):
        yield {"addr": addr, "url": url}


def produce_and_read(addr, topic, values):
    """Produces `values` (bytes) to partition 0 of a new topic and reads them back in order."""
    subprocess.run([RILL, "topic", "create", topic, "--broker", addr], check=True, capture_output=True)
    producer = Producer({"bootstrap.servers": addr, "acks": "all"})
    for value in values:
        producer.produce(topic, value=value, partition=0)
    assert producer.flush(30) == 0
    consumer = Consumer({"bootstrap.servers": addr, "group.id": f"{topic}-reader", "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    read = []
    for _ in range(300):
        message = consumer.poll(0.1)
        if message is not None and message.error() is None:
            read.append(message.value())
        if len(read) == len(values):
            break
    consumer.close()
    return read


def test_protobuf_records_round_trip_with_their_imports_registered_as_references(registry):
    Order, _ = message_classes()
    client = SchemaRegistryClient({"url": registry["url"]})
    serialize = ProtobufSerializer(Order, client)
    context = SerializationContext("orders-proto", MessageField.VALUE)
    orders = []
    for i in range(10):
        order = Order(id=i)
        order.customer.name = f"customer {i}"
        order.at.seconds = 1_700_000_000 + i
        order.lines.add(sku=f"sku-{i}", count=i + 1)
        orders.append(order)
    values = [serialize(order, context) for order in orders]
    assert values[0][0] == 0 and values[0][5] == 0, "magic 0, an id, then message index [0] as a single 0"

    # Read back by a deserializer that knows only the id: it asks for the schema (format=serialized) and its
    # references, builds the descriptors from rill's answers, and parses the records with them.
    deserialize = ProtobufDeserializer(Order, {}, SchemaRegistryClient({"url": registry["url"]}))
    read = [deserialize(value, context) for value in produce_and_read(registry["addr"], "orders-proto", values)]
    assert read == orders

    assert sorted(client.get_subjects()) == ["crm/customer.proto", "orders-proto-value"]
    latest = client.get_latest_version("orders-proto-value")
    assert latest.schema.schema_type == "PROTOBUF"
    assert [(r.name, r.subject, r.version) for r in latest.schema.references] == [
        ("crm/customer.proto", "crm/customer.proto", 1)], "the well-known timestamp.proto is built in"
    status, serialized = call(f"{registry['url']}/schemas/ids/{latest.schema_id}?format=serialized")
    assert status == 200 and serialized["schemaType"] == "PROTOBUF"
    file = descriptor_pb2.FileDescriptorProto.FromString(base64.b64decode(serialized["schema"]))
    assert (file.package, [m.name for m in file.message_type]) == ("shop", ["Order"])
    assert list(file.dependency) == ["crm/customer.proto", "google/protobuf/timestamp.proto"]
    # Without format=serialized the descriptor Python registered is answered as .proto text, as Confluent's
    # registry answers it: what `rill schema show` and the console show.
    status, as_text = call(f"{registry['url']}/schemas/ids/{latest.schema_id}")
    assert status == 200 and 'import "crm/customer.proto";' in as_text["schema"], as_text
    assert "repeated .shop.Order.Line lines = 4;" in as_text["schema"], as_text["schema"]

    customer_version = client.get_latest_version("crm/customer.proto")
    status, referenced_by = call(f"{registry['url']}/subjects/crm%2Fcustomer.proto/versions/1/referencedby")
    assert (status, referenced_by) == (200, [latest.schema_id])
    with pytest.raises(SchemaRegistryError) as refused:
        client.delete_subject("crm/customer.proto")
    assert refused.value.error_code == 42206, refused.value.error_message

    # The same file as .proto text, the way the Java tools and `rill schema` register it, is the same schema.
    text = 'syntax = "proto3";\npackage crm;\nmessage Customer {\n  string name = 1;\n}\n'
    assert client.register_schema("customers-text", Schema(text, "PROTOBUF")) == customer_version.schema_id


def test_a_proto_file_registered_as_text_is_read_by_pythons_deserializer(registry):
    """The Java tools and `rill schema register` send .proto text; Python's deserializer asks for the writer's
    schema `format=serialized` and can read only a descriptor: rill compiles the text and answers one."""
    text = ('syntax = "proto3";\npackage notes;\nimport "google/protobuf/timestamp.proto";\n'
            'message Note {\n  string text = 1;\n  google.protobuf.Timestamp at = 2;\n}\n')
    status, answer = call(f"{registry['url']}/subjects/notes-value/versions", "POST",
                          {"schema": text, "schemaType": "PROTOBUF"})
    assert status == 200, answer
    schema_id = answer["id"]
    status, as_text = call(f"{registry['url']}/schemas/ids/{schema_id}")
    assert (status, as_text["schema"], as_text["schemaType"]) == (200, text, "PROTOBUF"), "as registered"

    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(timestamp_pb2.DESCRIPTOR.serialized_pb)
    note_file = descriptor_pb2.FileDescriptorProto(name="notes.proto", package="notes", syntax="proto3",
                                                   dependency=["google/protobuf/timestamp.proto"])
    note_file.message_type.add(name="Note", field=[
        field("text", 1, F.TYPE_STRING), field("at", 2, F.TYPE_MESSAGE, ".google.protobuf.Timestamp")])
    pool.Add(note_file)
    Note = GetMessageClass(pool.FindMessageTypeByName("notes.Note"))
    note = Note(text="hello")
    note.at.seconds = 1_700_000_000
    # Written as any Confluent serializer writes it: magic 0, the id, message index [0], the message.
    value = b"\x00" + schema_id.to_bytes(4, "big") + b"\x00" + note.SerializeToString()
    [stored] = produce_and_read(registry["addr"], "notes", [value])
    deserialize = ProtobufDeserializer(Note, {}, SchemaRegistryClient({"url": registry["url"]}))
    assert deserialize(stored, SerializationContext("notes", MessageField.VALUE)) == note

    status, serialized = call(f"{registry['url']}/subjects/notes-value/versions/1?format=serialized")
    file = descriptor_pb2.FileDescriptorProto.FromString(base64.b64decode(serialized["schema"]))
    assert [f.name for f in file.message_type[0].field] == ["text", "at"]
    assert file.message_type[0].field[1].type_name == ".google.protobuf.Timestamp"


def test_protobuf_evolution_follows_the_wire_format(registry):
    client = SchemaRegistryClient({"url": registry["url"]})
    subject = "evolving-proto"
    v1 = 'syntax = "proto3"; package shop; message Order { int64 id = 1; string item = 2; }'
    client.register_schema(subject, Schema(v1, "PROTOBUF"))
    added = v1.replace("string item = 2;", "string item = 2; int32 quantity = 3;")
    assert client.test_compatibility(subject, Schema(added, "PROTOBUF")) is True
    client.register_schema(subject, Schema(added, "PROTOBUF"))
    widened = added.replace("int32 quantity", "int64 quantity")
    assert client.test_compatibility(subject, Schema(widened, "PROTOBUF")) is True, "varints read as each other"
    retyped = added.replace("string item", "double item")
    assert client.test_compatibility(subject, Schema(retyped, "PROTOBUF")) is False
    with pytest.raises(SchemaRegistryError) as refused:
        client.register_schema(subject, Schema(retyped, "PROTOBUF"))
    assert refused.value.http_status_code == 409
    assert "shop.Order.item (2) changed type from string to double" in refused.value.error_message
    status, verbose = call(f"{registry['url']}/compatibility/subjects/{subject}/versions?verbose=true", "POST",
                           {"schema": retyped, "schemaType": "PROTOBUF"})
    assert status == 200 and verbose["is_compatible"] is False and "changed type" in verbose["messages"][0]
    with pytest.raises(SchemaRegistryError) as invalid:
        client.register_schema("broken-proto", Schema("message {", "PROTOBUF"))
    assert invalid.value.error_code == 42201
    status, types = call(f"{registry['url']}/schemas/types")
    assert sorted(types) == ["AVRO", "JSON", "PROTOBUF"]


def test_schema_id_validation_reads_protobuf_message_indexes(registry):
    _, Line = message_classes()
    client = SchemaRegistryClient({"url": registry["url"]})
    admin = AdminClient({"bootstrap.servers": registry["addr"]})
    topic = NewTopic("lines", num_partitions=1, config={
        "confluent.value.schema.validation": "true",
        "confluent.value.subject.name.strategy": "io.confluent.kafka.serializers.subject.RecordNameStrategy"})
    admin.create_topics([topic])["lines"].result(30)
    serialize = ProtobufSerializer(Line, client, {"subject.name.strategy": record_subject_name_strategy})
    context = SerializationContext("lines", MessageField.VALUE)
    line = serialize(Line(sku="a", count=1), context)
    assert line[5:8] == b"\x04\x00\x00", "message indexes [0, 0]: zigzag count 2, then 0, 0"
    assert "shop.Order.Line" in client.get_subjects()
    # The same bytes naming message [0] (shop.Order, a subject never registered) are refused.
    as_order = line[:5] + b"\x00" + line[8:]
    reports = []
    producer = Producer({"bootstrap.servers": registry["addr"], "acks": "all"})
    for value in (line, as_order):
        producer.produce("lines", value=value, partition=0, on_delivery=lambda err, _: reports.append(err))
        producer.flush(30)
    assert reports[0] is None, reports
    assert reports[1] is not None and reports[1].name() == "INVALID_RECORD", reports


ADDRESS = json.dumps({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]})
PAYMENT_V1 = {"$schema": "http://json-schema.org/draft-07/schema#", "title": "shop.Payment", "type": "object",
              "properties": {"id": {"type": "integer"}, "address": {"$ref": "address.json"}},
              "required": ["id"], "additionalProperties": False}


def test_json_schema_records_round_trip_and_evolve_by_what_documents_they_allow(registry):
    client = SchemaRegistryClient({"url": registry["url"]})
    address_version = client.register_schema_full_response("address-json", Schema(ADDRESS, "JSON"))
    references = [SchemaReference("address.json", "address-json", 1)]
    payment = Schema(json.dumps(PAYMENT_V1), "JSON", references)
    serialize = JSONSerializer(payment, client)
    context = SerializationContext("payments", MessageField.VALUE)
    payments = [{"id": i, "address": {"city": f"city {i}"}} for i in range(10)]
    values = [serialize(p, context) for p in payments]
    with pytest.raises(Exception):
        serialize({"id": "not a number"}, context)  # the serializer validates against what rill gave back

    deserialize = JSONDeserializer(None, schema_registry_client=SchemaRegistryClient({"url": registry["url"]}))
    read = [deserialize(value, context) for value in produce_and_read(registry["addr"], "payments", values)]
    assert read == payments
    latest = client.get_latest_version("payments-value")
    assert latest.schema.schema_type == "JSON" and json.loads(latest.schema.schema_str) == PAYMENT_V1
    assert [r.name for r in latest.schema.references] == ["address.json"]
    assert address_version.schema_id != latest.schema_id

    # A closed content model (additionalProperties false) takes a new optional property...
    v2 = dict(PAYMENT_V1, properties=dict(PAYMENT_V1["properties"], note={"type": "string"}))
    assert client.test_compatibility("payments-value", Schema(json.dumps(v2), "JSON", references)) is True
    client.register_schema("payments-value", Schema(json.dumps(v2), "JSON", references))
    # ...but not a new required one, nor a narrower type.
    v3 = dict(v2, required=["id", "note"])
    with pytest.raises(SchemaRegistryError) as refused:
        client.register_schema("payments-value", Schema(json.dumps(v3), "JSON", references))
    assert refused.value.http_status_code == 409 and '"note" is required now' in refused.value.error_message
    narrower = dict(v2, properties=dict(v2["properties"], id={"type": "integer", "minimum": 0}))
    assert client.test_compatibility("payments-value", Schema(json.dumps(narrower), "JSON", references)) is False
    # In an open content model, the same new property is a constraint on data the old schema let through.
    open_v1 = {"type": "object", "properties": {"id": {"type": "integer"}}}
    client.register_schema("open-json", Schema(json.dumps(open_v1), "JSON"))
    open_v2 = {"type": "object", "properties": {"id": {"type": "integer"}, "note": {"type": "string"}}}
    assert client.test_compatibility("open-json", Schema(json.dumps(open_v2), "JSON")) is False
    with pytest.raises(SchemaRegistryError) as unresolved:
        client.register_schema("dangling-json", Schema(json.dumps(PAYMENT_V1), "JSON"))
    assert unresolved.value.error_code == 42201 and "address.json" in unresolved.value.error_message
