"""rill's HTTP proxy (Confluent REST Proxy's API v2: `rill broker --http-proxy-listen`, `rill http-proxy`) driven
with `requests`, the HTTP client Python services use, beside librdkafka (confluent-kafka) on the same topics:
records produced over HTTP land in the partitions Kafka's murmur2 partitioner gives their keys and are read by
librdkafka; librdkafka's records are read over HTTP in a group of consumer instances that split the partitions,
commit, and hand over to a new member; Confluent's error bodies; bearer tokens passed on to a broker that
requires authentication, ACLs deciding; `rill http-proxy` beside a broker reached over TLS; the avro format
against the broker's schema registry, interchangeable with Confluent's AvroSerializer and AvroDeserializer, and
the protobuf and jsonschema formats with its Protobuf and JSON serializers and deserializers; API
v3's records with headers and timestamps read by librdkafka. Run by kafka-clients.sh."""

import base64
import contextlib
import json
import os
import subprocess
import tempfile
import time

import pytest
import requests
import trustme
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient

from conftest import create_topic, free_port, running_broker

RILL = os.environ["RILL_BIN"]
PASSWORD = "correct horse battery staple"
BINARY = "application/vnd.kafka.binary.v2+json"
JSON = "application/vnd.kafka.json.v2+json"
V2 = "application/vnd.kafka.v2+json"



@contextlib.contextmanager
def broker_with_proxy(data_dir, *flags):
    """A broker serving the HTTP proxy on a free port: (its Kafka address, the proxy's URL)."""
    port = free_port()
    with running_broker(data_dir, "--admin-listen", "off", "--http-proxy-listen", f"127.0.0.1:{port}",
                        *flags) as addr:
        url = f"http://127.0.0.1:{port}"
        wait_until_serving(url)
        yield addr, url


def wait_until_serving(url):
    """The proxy line follows the broker's in one write; still, the port must answer before the test talks."""
    deadline = time.monotonic() + 20
    while True:
        try:
            requests.get(url, timeout=5)
            return
        except requests.ConnectionError:
            assert time.monotonic() < deadline, f"{url} never answered"
            time.sleep(0.05)


@pytest.fixture(scope="module")
def proxy():
    with tempfile.TemporaryDirectory() as data_dir, broker_with_proxy(data_dir) as (addr, url):
        yield {"addr": addr, "url": url}


def b64(data):
    return base64.b64encode(data).decode()


def read_all(session, url, base, count, accept=BINARY, timeout=30):
    """Records of a consumer instance until `count` came."""
    records = []
    deadline = time.monotonic() + timeout
    while len(records) < count:
        assert time.monotonic() < deadline, f"{len(records)} of {count} records within {timeout} s"
        answer = session.get(f"{url}{base}/records", params={"timeout": 500}, headers={"Accept": accept}, timeout=30)
        assert answer.status_code == 200, answer.text
        records.extend(answer.json())
    return records


def test_records_produced_over_http_land_where_librdkafka_puts_their_keys_and_read_back(proxy):
    url, addr = proxy["url"], proxy["addr"]
    create_topic(AdminClient({"bootstrap.servers": addr}), "orders", {}, partitions=4)
    keys = [f"customer-{n}".encode() for n in range(12)]
    body = {"records": [{"key": b64(key), "value": b64(b"http " + key)} for key in keys]}
    answer = requests.post(f"{url}/topics/orders", json=body, headers={"Content-Type": BINARY}, timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.headers["Content-Type"] == V2
    offsets = answer.json()["offsets"]
    assert all(o["error_code"] is None for o in offsets), offsets

    # librdkafka with Kafka's (Java's) murmur2 partitioner puts each key in the partition the proxy did.
    delivered = {}
    producer = Producer({"bootstrap.servers": addr, "partitioner": "murmur2_random", "acks": "all"})
    for key in keys:
        producer.produce("orders", key=key, value=b"kafka " + key,
                         on_delivery=lambda err, msg: delivered.__setitem__(msg.key(), (err, msg.partition())))
    assert producer.flush(30) == 0
    for key, offset in zip(keys, offsets):
        assert delivered[key] == (None, offset["partition"]), key

    # librdkafka reads the HTTP records at the offsets the proxy answered.
    consumer = Consumer({"bootstrap.servers": addr, "group.id": "check", "auto.offset.reset": "earliest"})
    consumer.subscribe(["orders"])
    seen = {}
    deadline = time.monotonic() + 30
    while len(seen) < 2 * len(keys) and time.monotonic() < deadline:
        message = consumer.poll(0.2)
        if message is not None and message.error() is None:
            seen[message.value()] = (message.partition(), message.offset())
    consumer.close()
    for key, offset in zip(keys, offsets):
        assert seen[b"http " + key] == (offset["partition"], offset["offset"])


def test_librdkafkas_records_are_read_over_http_by_a_group_that_commits_and_hands_over(proxy):
    url, addr = proxy["url"], proxy["addr"]
    create_topic(AdminClient({"bootstrap.servers": addr}), "events", {}, partitions=2)
    producer = Producer({"bootstrap.servers": addr})
    for n in range(40):
        producer.produce("events", value=json.dumps({"n": n}).encode(), partition=n % 2)
    assert producer.flush(30) == 0

    session = requests.Session()
    settings = {"format": "json", "auto.offset.reset": "earliest", "auto.commit.enable": "false"}
    bases = []
    for name in ("w1", "w2"):
        created = session.post(f"{url}/consumers/workers", json={"name": name, **settings},
                               headers={"Content-Type": V2}, timeout=30)
        assert created.status_code == 200, created.text
        assert created.json()["base_uri"].endswith(f"/consumers/workers/instances/{name}")
        base = f"/consumers/workers/instances/{name}"
        subscribed = session.post(f"{url}{base}/subscription", json={"topics": ["events"]},
                                  headers={"Content-Type": V2}, timeout=30)
        assert subscribed.status_code == 204, subscribed.text
        bases.append(base)

    # The two members split the partitions: each partition is read by one of them, every record once.
    owners, values = {}, []
    deadline = time.monotonic() + 30
    while len(values) < 40:
        assert time.monotonic() < deadline, f"{len(values)} of 40 records"
        for base in bases:
            answer = session.get(f"{url}{base}/records", params={"timeout": 300}, headers={"Accept": JSON}, timeout=30)
            assert answer.status_code == 200, answer.text
            for record in answer.json():
                assert owners.setdefault(record["partition"], base) == base
                values.append(record["value"]["n"])
    assert sorted(values) == list(range(40))
    assert len(set(owners.values())) == 2, owners

    # Each member commits its partition up to the 10th record; librdkafka then sees the commits.
    for partition, base in owners.items():
        commit = {"offsets": [{"topic": "events", "partition": partition, "offset": 9}]}
        assert session.post(f"{url}{base}/offsets", json=commit, headers={"Content-Type": V2}, timeout=30).status_code == 204
        asked = session.get(f"{url}{base}/offsets", json={"partitions": [{"topic": "events", "partition": partition}]},
                            headers={"Content-Type": V2}, timeout=30)
        assert asked.json()["offsets"][0]["offset"] == 10, asked.text
    from confluent_kafka import TopicPartition
    check = Consumer({"bootstrap.servers": addr, "group.id": "workers"})
    committed = check.committed([TopicPartition("events", 0), TopicPartition("events", 1)], timeout=30)
    assert [c.offset for c in committed] == [10, 10]
    check.close()

    # Both leave; a new member resumes every partition from the commits.
    for base in bases:
        assert session.delete(f"{url}{base}", timeout=30).status_code == 204
    gone = session.get(f"{url}{bases[0]}/subscription", timeout=30)
    assert (gone.status_code, gone.json()["error_code"]) == (404, 40403)
    session.post(f"{url}/consumers/workers", json={"name": "w3", **settings}, headers={"Content-Type": V2}, timeout=30)
    session.post(f"{url}/consumers/workers/instances/w3/subscription", json={"topics": ["events"]},
                 headers={"Content-Type": V2}, timeout=30)
    resumed = read_all(session, url, "/consumers/workers/instances/w3", 20, accept=JSON)
    assert min(r["offset"] for r in resumed) == 10
    assert sorted(r["value"]["n"] for r in resumed) == list(range(20, 40))


def test_bad_requests_get_confluents_error_bodies(proxy):
    url = proxy["url"]
    cases = [
        ("post", "/topics/nope", BINARY, {"records": [{"value": b64(b"x")}]}, 404, 40401),
        ("post", "/topics/orders", BINARY, {"records": [{"value": "***"}]}, 422, 422),
        ("post", "/topics/orders", "application/vnd.kafka.protobuf.v2+json", {"records": [{"value": 1}]}, 415, 415),
        ("post", "/topics/orders/partitions/99", BINARY, {"records": [{"value": b64(b"x")}]}, 404, 40402),
        ("post", "/consumers/g", V2, {"format": "jsonschema"}, 422, 42204),
        ("get", "/consumers/g/instances/ghost/records", V2, None, 404, 40403),
        ("get", "/no/such/thing", V2, None, 404, 404),
    ]
    for method, path, content_type, body, status, code in cases:
        answer = requests.request(method, f"{url}{path}", json=body, headers={"Content-Type": content_type},
                                  timeout=30)
        assert (answer.status_code, answer.json()["error_code"]) == (status, code), (path, answer.text)
        assert answer.json()["message"]


def test_callers_tokens_reach_a_broker_that_requires_authentication_and_acls_decide():
    with tempfile.TemporaryDirectory() as data_dir:
        tokens = {}
        with running_broker(data_dir, "--admin-listen", "off") as addr:
            for user in ("admin", "app"):
                created = subprocess.run([RILL, "user", "create", user, "--password-stdin", "--token", "--broker", addr],
                                         input=PASSWORD + "\n", capture_output=True, text=True, check=True)
                tokens[user] = created.stdout.strip()
            subprocess.run([RILL, "topic", "create", "secured", "--broker", addr], check=True, capture_output=True)
        flags = ("--require-auth", "--authorization", "on", "--super-users", "User:admin")
        with broker_with_proxy(data_dir, *flags) as (_, url):
            anonymous = requests.get(f"{url}/topics", timeout=30)
            assert (anonymous.status_code, anonymous.json()["error_code"]) == (401, 40101), anonymous.text
            basic = requests.get(f"{url}/topics", auth=("app", PASSWORD), timeout=30)
            assert basic.status_code == 401 and "Bearer" in basic.json()["message"]
            forged = requests.get(f"{url}/topics", headers={"Authorization": "Bearer rill_forged"}, timeout=30)
            assert forged.status_code == 401

            def as_user(user):
                return {"Authorization": f"Bearer {tokens[user]}", "Content-Type": JSON}

            body = {"records": [{"value": {"n": 1}}]}
            denied = requests.post(f"{url}/topics/secured", json=body, headers=as_user("app"), timeout=30)
            assert (denied.status_code, denied.json()["error_code"]) == (403, 40301), denied.text
            allowed = requests.post(f"{url}/topics/secured", json=body, headers=as_user("admin"), timeout=30)
            assert allowed.status_code == 200 and allowed.json()["offsets"][0]["offset"] == 0, allowed.text

            # An instance answers only the token that made it.
            created = requests.post(f"{url}/consumers/ops", json={"name": "mine"}, headers=as_user("admin"),
                                    timeout=30)
            assert created.status_code == 200, created.text
            other = requests.get(f"{url}/consumers/ops/instances/mine/subscription", headers=as_user("app"),
                                 timeout=30)
            assert (other.status_code, other.json()["error_code"]) == (404, 40403)


def test_rill_http_proxy_beside_a_tls_broker_serving_tls_itself(tmp_path):
    ca = trustme.CA()
    server = ca.issue_cert("localhost", "127.0.0.1")
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    server.cert_chain_pems[0].write_to_path(str(tmp_path / "server.pem"))
    server.private_key_pem.write_to_path(str(tmp_path / "server.key"))
    tls = ("--tls-cert", str(tmp_path / "server.pem"), "--tls-key", str(tmp_path / "server.key"))
    with tempfile.TemporaryDirectory() as data_dir:
        # Inside a TLS broker the proxy would reach its port in plain text: refused, saying what to run instead.
        refused = subprocess.run([RILL, "broker", "--listen", "127.0.0.1:0", "--data-dir", data_dir, "--admin-listen",
                                  "off", "--http-proxy-listen", "127.0.0.1:0", *tls],
                                 capture_output=True, text=True, timeout=60)
        assert refused.returncode != 0 and "rill http-proxy" in refused.stderr, refused.stderr
        with running_broker(data_dir, "--admin-listen", "off", *tls) as addr:
            # TLS both ways: to the broker (trusting the test CA), and on the proxy's own listener.
            proxy = subprocess.Popen([RILL, "http-proxy", "--broker", f"https://{addr}", "--tls-ca",
                                      str(tmp_path / "ca.pem"), "--listen", "127.0.0.1:0",
                                      "--listen-tls-cert", str(tmp_path / "server.pem"),
                                      "--listen-tls-key", str(tmp_path / "server.key")],
                                     stdout=subprocess.PIPE, text=True)
            try:
                line = proxy.stdout.readline().strip()
                assert line.startswith("rill http proxy listening on https://"), line
                url = line.removeprefix("rill http proxy listening on ")
                subprocess.run([RILL, "topic", "create", "over-tls", "--broker", f"https://{addr}", "--tls-ca",
                                str(tmp_path / "ca.pem")], check=True, capture_output=True)
                ca = str(tmp_path / "ca.pem")
                sent = requests.post(f"{url}/topics/over-tls", json={"records": [{"value": "tls"}]},
                                     headers={"Content-Type": JSON}, timeout=30, verify=ca)
                assert sent.status_code == 200 and sent.json()["offsets"][0]["offset"] == 0, sent.text
                topic = requests.get(f"{url}/topics/over-tls/partitions/0/offsets", timeout=30, verify=ca)
                assert topic.json() == {"beginning_offset": 0, "end_offset": 1}
                # Plain HTTP to the TLS listener gets no answer; a client not trusting the CA refuses it.
                with pytest.raises(requests.ConnectionError):
                    requests.get(url.replace("https://", "http://") + "/topics", timeout=30)
                with pytest.raises(requests.exceptions.SSLError):
                    requests.get(f"{url}/topics", timeout=30)
            finally:
                proxy.terminate()
                assert proxy.wait(timeout=30) == 0


ORDER = json.dumps({"type": "record", "name": "Order", "namespace": "shop", "fields": [
    {"name": "id", "type": "long"}, {"name": "item", "type": "string"},
    {"name": "note", "type": ["null", "string"], "default": None},
    {"name": "status", "type": {"type": "enum", "name": "Status", "symbols": ["NEW", "PAID"]}}]})
AVRO = "application/vnd.kafka.avro.v2+json"


def test_avro_over_http_is_what_confluents_serializers_write_and_read():
    """The avro format against the broker's own registry: records produced over HTTP are read by Confluent's
    AvroDeserializer, and records its AvroSerializer wrote are read over HTTP."""
    from confluent_kafka.schema_registry import SchemaRegistryClient
    from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
    from confluent_kafka.serialization import MessageField, SerializationContext

    registry_port = free_port()
    with tempfile.TemporaryDirectory() as data_dir, \
            broker_with_proxy(data_dir, "--schema-registry-listen", f"127.0.0.1:{registry_port}") as (addr, url):
        registry = SchemaRegistryClient({"url": f"http://127.0.0.1:{registry_port}"})
        create_topic(AdminClient({"bootstrap.servers": addr}), "shop", {}, partitions=1)
        body = {"value_schema": ORDER, "records": [
            {"value": {"id": 1, "item": "book", "note": {"string": "gift"}, "status": "PAID"}},
            {"value": {"id": 2, "item": "pen", "note": None, "status": "NEW"}}]}
        sent = requests.post(f"{url}/topics/shop", json=body, headers={"Content-Type": AVRO}, timeout=30)
        assert sent.status_code == 200, sent.text
        schema_id = sent.json()["value_schema_id"]
        assert registry.get_latest_version("shop-value").schema_id == schema_id

        # Confluent's AvroSerializer writes a third order under the same subject.
        serialize = AvroSerializer(registry, ORDER)
        producer = Producer({"bootstrap.servers": addr})
        producer.produce("shop", value=serialize({"id": 3, "item": "ink", "note": "fast", "status": "NEW"},
                                                  SerializationContext("shop", MessageField.VALUE)))
        assert producer.flush(30) == 0

        # Confluent's AvroDeserializer reads all three.
        deserialize = AvroDeserializer(registry)
        consumer = Consumer({"bootstrap.servers": addr, "group.id": "avro-check", "auto.offset.reset": "earliest"})
        consumer.subscribe(["shop"])
        orders = []
        deadline = time.monotonic() + 30
        while len(orders) < 3 and time.monotonic() < deadline:
            message = consumer.poll(0.2)
            if message is not None and message.error() is None:
                orders.append(deserialize(message.value(), SerializationContext("shop", MessageField.VALUE)))
        consumer.close()
        assert [o["item"] for o in orders] == ["book", "pen", "ink"]
        assert orders[0]["note"] == "gift" and orders[1]["note"] is None and orders[0]["status"] == "PAID"

        # An avro consumer instance reads them all in Avro's JSON encoding (a union's branch named).
        session = requests.Session()
        created = session.post(f"{url}/consumers/avro", json={"name": "a", "format": "avro",
                                                               "auto.offset.reset": "earliest"},
                               headers={"Content-Type": V2}, timeout=30)
        assert created.status_code == 200, created.text
        base = "/consumers/avro/instances/a"
        session.post(f"{url}{base}/subscription", json={"topics": ["shop"]}, headers={"Content-Type": V2},
                     timeout=30)
        read = read_all(session, url, base, 3, accept=AVRO)
        assert [r["value"]["note"] for r in read] == [{"string": "gift"}, None, {"string": "fast"}]
        assert read[2]["value"] == {"id": 3, "item": "ink", "note": {"string": "fast"}, "status": "NEW"}

        # A record that does not fit the schema is refused naming the field.
        wrong = requests.post(f"{url}/topics/shop", json={"value_schema_id": schema_id, "records": [
            {"value": {"id": 4, "item": "x", "status": "LOST"}}]}, headers={"Content-Type": AVRO}, timeout=30)
        assert (wrong.status_code, wrong.json()["error_code"]) == (422, 42203), wrong.text
        assert "LOST" in wrong.json()["message"]


PROTOBUF = "application/vnd.kafka.protobuf.v2+json"
JSONSCHEMA = "application/vnd.kafka.jsonschema.v2+json"
ORDER_PROTO = 'syntax = "proto3";\npackage shop;\nmessage Order {\n  int64 id = 1;\n  string item = 2;\n  repeated string tags = 3;\n}\n'
PAYMENT_JSON = json.dumps({"type": "object", "properties": {"id": {"type": "integer"}, "amount": {"type": "number"}},
                           "required": ["id"], "additionalProperties": False})


def read_with_librdkafka(addr, topic, count, deserialize):
    from confluent_kafka.serialization import MessageField, SerializationContext
    consumer = Consumer({"bootstrap.servers": addr, "group.id": f"{topic}-check", "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    read = []
    deadline = time.monotonic() + 30
    while len(read) < count and time.monotonic() < deadline:
        message = consumer.poll(0.2)
        if message is not None and message.error() is None:
            read.append(deserialize(message.value(), SerializationContext(topic, MessageField.VALUE)))
    consumer.close()
    return read


def instance_reading(url, group, fmt, topic):
    session = requests.Session()
    created = session.post(f"{url}/consumers/{group}", json={"name": "a", "format": fmt,
                                                             "auto.offset.reset": "earliest"},
                           headers={"Content-Type": V2}, timeout=30)
    assert created.status_code == 200, created.text
    base = f"/consumers/{group}/instances/a"
    subscribed = session.post(f"{url}{base}/subscription", json={"topics": [topic]}, headers={"Content-Type": V2},
                              timeout=30)
    assert subscribed.status_code == 204, subscribed.text
    return session, base


def test_protobuf_and_jsonschema_over_http_are_what_confluents_serializers_write_and_read():
    """The protobuf and jsonschema formats against the broker's own registry: records produced over HTTP are read
    by confluent-kafka's ProtobufDeserializer and JSONDeserializer, and records their serializers wrote are read
    over HTTP, in Protobuf's JSON mapping and as JSON."""
    from confluent_kafka.schema_registry import SchemaRegistryClient
    from confluent_kafka.schema_registry.json_schema import JSONDeserializer, JSONSerializer
    from confluent_kafka.schema_registry.protobuf import ProtobufDeserializer, ProtobufSerializer
    from confluent_kafka.serialization import MessageField, SerializationContext
    from google.protobuf import descriptor_pb2, descriptor_pool
    from google.protobuf.message_factory import GetMessageClass

    F = descriptor_pb2.FieldDescriptorProto
    file = descriptor_pb2.FileDescriptorProto(name="shop/order.proto", package="shop", syntax="proto3")
    file.message_type.add(name="Order", field=[
        F(name="id", number=1, type=F.TYPE_INT64, label=F.LABEL_OPTIONAL),
        F(name="item", number=2, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL),
        F(name="tags", number=3, type=F.TYPE_STRING, label=F.LABEL_REPEATED)])
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    Order = GetMessageClass(pool.FindMessageTypeByName("shop.Order"))

    registry_port = free_port()
    with tempfile.TemporaryDirectory() as data_dir, \
            broker_with_proxy(data_dir, "--schema-registry-listen", f"127.0.0.1:{registry_port}") as (addr, url):
        registry = SchemaRegistryClient({"url": f"http://127.0.0.1:{registry_port}"})
        admin = AdminClient({"bootstrap.servers": addr})
        create_topic(admin, "orders-pb", {}, partitions=1)
        create_topic(admin, "payments-js", {}, partitions=1)

        # Protobuf: .proto text registered by the proxy, records in Protobuf's JSON mapping.
        body = {"value_schema": ORDER_PROTO, "records": [
            {"value": {"id": 1, "item": "book", "tags": ["gift"]}}, {"value": {"id": "2", "item": "pen"}}]}
        sent = requests.post(f"{url}/topics/orders-pb", json=body, headers={"Content-Type": PROTOBUF}, timeout=30)
        assert sent.status_code == 200, sent.text
        schema_id = sent.json()["value_schema_id"]
        latest = registry.get_latest_version("orders-pb-value")
        assert (latest.schema_id, latest.schema.schema_type) == (schema_id, "PROTOBUF")
        serialize = ProtobufSerializer(Order, registry)
        producer = Producer({"bootstrap.servers": addr})
        producer.produce("orders-pb", value=serialize(Order(id=3, item="ink", tags=["a", "b"]),
                                                      SerializationContext("orders-pb", MessageField.VALUE)))
        assert producer.flush(30) == 0
        read = read_with_librdkafka(addr, "orders-pb", 3, ProtobufDeserializer(Order, {}, registry))
        assert read == [Order(id=1, item="book", tags=["gift"]), Order(id=2, item="pen"),
                        Order(id=3, item="ink", tags=["a", "b"])]
        session, base = instance_reading(url, "pb", "protobuf", "orders-pb")
        shown = [r["value"] for r in read_all(session, url, base, 3, accept=PROTOBUF)]
        assert shown == [{"id": "1", "item": "book", "tags": ["gift"]}, {"id": "2", "item": "pen", "tags": []},
                         {"id": "3", "item": "ink", "tags": ["a", "b"]}], "int64 as a string, as proto3's JSON has it"
        wrong = requests.post(f"{url}/topics/orders-pb", json={"value_schema_id": schema_id, "records": [
            {"value": {"id": 4, "colour": "red"}}]}, headers={"Content-Type": PROTOBUF}, timeout=30)
        assert (wrong.status_code, wrong.json()["error_code"]) == (422, 42203), wrong.text
        assert "colour" in wrong.json()["message"]

        # JSON Schema: records validated against the schema before they are stored.
        body = {"value_schema": PAYMENT_JSON, "records": [{"value": {"id": 1, "amount": 9.5}}, {"value": {"id": 2}}]}
        sent = requests.post(f"{url}/topics/payments-js", json=body, headers={"Content-Type": JSONSCHEMA}, timeout=30)
        assert sent.status_code == 200, sent.text
        json_id = sent.json()["value_schema_id"]
        assert registry.get_latest_version("payments-js-value").schema.schema_type == "JSON"
        serialize = JSONSerializer(PAYMENT_JSON, registry)
        producer.produce("payments-js", value=serialize({"id": 3, "amount": 1.25},
                                                        SerializationContext("payments-js", MessageField.VALUE)))
        assert producer.flush(30) == 0
        read = read_with_librdkafka(addr, "payments-js", 3, JSONDeserializer(None, schema_registry_client=registry))
        assert read == [{"id": 1, "amount": 9.5}, {"id": 2}, {"id": 3, "amount": 1.25}]
        session, base = instance_reading(url, "js", "jsonschema", "payments-js")
        assert [r["value"] for r in read_all(session, url, base, 3, accept=JSONSCHEMA)] == read
        wrong = requests.post(f"{url}/topics/payments-js", json={"value_schema_id": json_id, "records": [
            {"value": {"id": "three"}}]}, headers={"Content-Type": JSONSCHEMA}, timeout=30)
        assert (wrong.status_code, wrong.json()["error_code"]) == (422, 42203), wrong.text
        assert wrong.json()["message"].startswith("records[0].value: $.id"), wrong.text
        mismatched = requests.post(f"{url}/topics/payments-js", json={"value_schema_id": schema_id, "records": [
            {"value": {"id": 5}}]}, headers={"Content-Type": JSONSCHEMA}, timeout=30)
        assert mismatched.status_code == 422 and "protobuf schema" in mismatched.json()["message"], mismatched.text


def test_api_v3_records_carry_headers_and_timestamps_librdkafka_reads(proxy):
    """API v3's produce (what Confluent Cloud documents): typed keys and values, headers and a timestamp, which
    librdkafka reads back as produced."""
    from confluent_kafka import TopicPartition
    url, addr = proxy["url"], proxy["addr"]
    create_topic(AdminClient({"bootstrap.servers": addr}), "audited", {}, partitions=1)
    clusters = requests.get(f"{url}/v3/clusters", timeout=30).json()
    cluster = clusters["data"][0]["cluster_id"]
    record = {"headers": [{"name": "source", "value": b64(b"billing")}],
              "key": {"type": "STRING", "data": "invoice-9"},
              "value": {"type": "JSON", "data": {"amount": 12}},
              "timestamp": "2026-12-05T21:00:00.250Z"}
    sent = requests.post(f"{url}/v3/clusters/{cluster}/topics/audited/records", json=record, timeout=30)
    assert sent.status_code == 200, sent.text
    report = sent.json()
    assert (report["error_code"], report["offset"], report["timestamp"]) == (200, 0, "2026-12-05T21:00:00.250Z")

    consumer = Consumer({"bootstrap.servers": addr, "group.id": "v3-check"})
    consumer.assign([TopicPartition("audited", 0, 0)])
    message = None
    deadline = time.monotonic() + 30
    while message is None and time.monotonic() < deadline:
        polled = consumer.poll(0.2)
        if polled is not None and polled.error() is None:
            message = polled
    consumer.close()
    assert message is not None, "librdkafka read nothing"
    assert message.key() == b"invoice-9" and json.loads(message.value()) == {"amount": 12}
    assert message.headers() == [("source", b"billing")]
    assert message.timestamp()[1] == 1796504400250
