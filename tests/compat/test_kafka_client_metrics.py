"""KIP-714 client metrics with librdkafka against a `rill broker` process started with `--client-metrics`: a
producer and a consumer learn the node's subscription (GetTelemetrySubscriptions), push their metrics
(PushTelemetry), and the node's /metrics shows them per client, in a text promtool accepts; a closed client's
last push takes its series away. Subscriptions in the node's file match clients by the software name their
ApiVersions gave. With `--otlp-endpoint`, every push is sent on to an OTLP/gRPC receiver (grpcio's,
here) marked with the client it came from. Subscriptions are also Kafka's CLIENT_METRICS config resources:
kafka-python's admin client creates, describes, lists, alters and deletes them while librdkafka clients run, which
push what is asked now. A node without a subscription asks for nothing, and librdkafka does not push. Run by
kafka-clients.sh."""

import os
import re
import shutil
import subprocess
import tempfile
import time
import urllib.request
from concurrent import futures

import grpc

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient
from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient

from conftest import create_topic, free_port, running_broker


def scrape(admin):
    with urllib.request.urlopen(f"http://{admin}/metrics", timeout=10) as answer:
        return answer.read().decode()


def client_lines(text, client_id):
    return [line for line in text.splitlines()
            if line.startswith("kafka_client_") and f'client_id="{client_id}"' in line]


def test_librdkafka_pushes_the_metrics_the_node_subscribes_to_and_metrics_shows_them():
    admin = f"127.0.0.1:{free_port()}"
    flags = ["--admin-listen", admin, "--client-metrics", "org.apache.kafka.producer.,org.apache.kafka.consumer.",
             "--client-metrics-interval-ms", "1000"]
    with tempfile.TemporaryDirectory() as data_dir, running_broker(data_dir, *flags) as addr:
        create_topic(AdminClient({"bootstrap.servers": addr}), "pushed", {})
        producer = Producer({"bootstrap.servers": addr, "client.id": "metrics-producer", "linger.ms": 5})
        for i in range(200):
            producer.produce("pushed", value=f"record {i}".encode())
        assert producer.flush(30) == 0
        consumer = Consumer({"bootstrap.servers": addr, "client.id": "metrics-consumer", "group.id": "metrics",
                             "auto.offset.reset": "earliest"})
        consumer.subscribe(["pushed"])
        read, deadline = 0, time.monotonic() + 60
        while True:
            assert time.monotonic() < deadline, f"metrics not pushed: {read} records read, /metrics:\n{scrape(admin)}"
            message = consumer.poll(0.2)
            read += message is not None and message.error() is None
            producer.poll(0)
            text = scrape(admin)
            produced, consumed = client_lines(text, "metrics-producer"), client_lines(text, "metrics-consumer")
            if read == 200 and produced and consumed:
                break
        assert all(line.startswith("kafka_client_producer_") for line in produced), produced
        assert any(line.startswith("kafka_client_producer_node_request_latency") for line in produced), produced
        assert all(line.startswith("kafka_client_consumer_") for line in consumed), consumed
        # The producer, the consumer, and the admin client that created the topic unless its last push took it.
        instances = re.search(r"^rill_client_telemetry_instances (\S+)$", text, re.MULTILINE)
        assert instances and float(instances.group(1)) in (2, 3), instances
        # The console's client list: who they are as their ApiVersions said, and what they were asked for.
        with urllib.request.urlopen(f"http://{admin}/clients", timeout=10) as answer:
            page = answer.read().decode()
        for shown in ["metrics-producer", "metrics-consumer", "confluent-kafka-python",
                      "org.apache.kafka.consumer., org.apache.kafka.producer."]:
            assert shown in page, shown
        if shutil.which("promtool"):
            checked = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True,
                                     timeout=30)
            assert checked.returncode == 0, checked.stdout + checked.stderr
        # Closing sends a last, terminating push: the consumer's series go with it.
        consumer.close()
        deadline = time.monotonic() + 30
        while client_lines(scrape(admin), "metrics-consumer"):
            assert time.monotonic() < deadline, "the closed consumer's series stayed"
            time.sleep(0.2)
        assert client_lines(scrape(admin), "metrics-producer"), "the producer's stay"


def test_without_a_subscription_nothing_is_asked_and_nothing_is_pushed():
    admin = f"127.0.0.1:{free_port()}"
    with tempfile.TemporaryDirectory() as data_dir, running_broker(data_dir, "--admin-listen", admin) as addr:
        create_topic(AdminClient({"bootstrap.servers": addr}), "quiet", {})
        producer = Producer({"bootstrap.servers": addr, "client.id": "quiet-producer"})
        producer.produce("quiet", value=b"one")
        assert producer.flush(30) == 0
        time.sleep(2)
        text = scrape(admin)
        assert "kafka_client_" not in text
        instances = re.search(r"^rill_client_telemetry_instances 0(\.0)?$", text, re.MULTILINE)
        assert instances, "a client asked for nothing is not kept"


def test_pushed_metrics_are_sent_on_to_the_otlp_endpoint_marked_with_their_client():
    # A bare OTLP/gRPC metrics receiver: MetricsService/Export taking the request's bytes as they come.
    received = []
    export = grpc.unary_unary_rpc_method_handler(lambda request, context: received.append(request) or b"")
    service = grpc.method_handlers_generic_handler("opentelemetry.proto.collector.metrics.v1.MetricsService",
                                                   {"Export": export})
    receiver = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    receiver.add_generic_rpc_handlers((service,))
    port = receiver.add_insecure_port("127.0.0.1:0")
    receiver.start()
    admin = f"127.0.0.1:{free_port()}"
    flags = ["--admin-listen", admin, "--otlp-endpoint", f"http://127.0.0.1:{port}",
             "--client-metrics", "org.apache.kafka.producer.", "--client-metrics-interval-ms", "1000"]
    try:
        with tempfile.TemporaryDirectory() as data_dir, running_broker(data_dir, *flags) as addr:
            create_topic(AdminClient({"bootstrap.servers": addr}), "exported", {})
            producer = Producer({"bootstrap.servers": addr, "client.id": "otlp-producer"})
            for i in range(100):
                producer.produce("exported", value=f"record {i}".encode())
            assert producer.flush(30) == 0
            deadline = time.monotonic() + 60
            while not any(b"otlp-producer" in r and b"org.apache.kafka.producer.record.queue.time.avg" in r
                          for r in list(received)):
                assert time.monotonic() < deadline, f"nothing exported: {len(received)} requests"
                producer.poll(0.2)
            export = next(r for r in list(received) if b"otlp-producer" in r)
            # The resource's attributes as the broker marked them: who pushed, and from where.
            for key in [b"client_instance_id", b"client_id", b"client_software_name", b"client_software_version",
                        b"client_source_address", b"client_source_port"]:
                assert key in export, key
            assert b"127.0.0.1" in export and b"confluent-kafka-python" in export
            exported = re.search(r'rill_client_telemetry_exports_total\{outcome="exported"\} (\S+)', scrape(admin))
            assert exported and float(exported.group(1)) >= 1
    finally:
        receiver.stop(None)


def test_a_subscription_in_the_nodes_file_matches_clients_by_their_software_name():
    # confluent-kafka says `confluent-kafka-python` in its ApiVersions: the subscription for it asks for producer
    # metrics, the one for Java's clients asks this consumer for nothing.
    subscriptions = """
[[client_metrics]]
name = "python"
metrics = ["org.apache.kafka.producer."]
interval_ms = 1000
[client_metrics.match]
client_software_name = "confluent-kafka-python"

[[client_metrics]]
name = "java"
metrics = ["org.apache.kafka.consumer."]
interval_ms = 1000
[client_metrics.match]
client_software_name = "apache-kafka-java"
"""
    admin = f"127.0.0.1:{free_port()}"
    with tempfile.TemporaryDirectory() as directory:
        config = os.path.join(directory, "rill.toml")
        with open(config, "w") as file:
            file.write(subscriptions)
        data_dir = os.path.join(directory, "data")
        with running_broker(data_dir, "--config", config, "--admin-listen", admin) as addr:
            create_topic(AdminClient({"bootstrap.servers": addr}), "matched", {})
            producer = Producer({"bootstrap.servers": addr, "client.id": "python-producer"})
            producer.produce("matched", value=b"one")
            assert producer.flush(30) == 0
            consumer = Consumer({"bootstrap.servers": addr, "client.id": "python-consumer", "group.id": "matched",
                                 "auto.offset.reset": "earliest"})
            consumer.subscribe(["matched"])
            deadline = time.monotonic() + 60
            while not client_lines(scrape(admin), "python-producer"):
                assert time.monotonic() < deadline, "the producer's metrics never came"
                producer.poll(0.1)
                consumer.poll(0.1)
            # Three more push intervals: the consumer, asked for consumer metrics by no subscription, sends none.
            until = time.monotonic() + 3
            while time.monotonic() < until:
                producer.poll(0.1)
                consumer.poll(0.1)
            assert not client_lines(scrape(admin), "python-consumer")
            consumer.close()


def test_a_subscription_set_through_the_admin_api_reaches_running_clients():
    admin = f"127.0.0.1:{free_port()}"
    with tempfile.TemporaryDirectory() as data_dir, running_broker(data_dir, "--admin-listen", admin) as addr:
        create_topic(AdminClient({"bootstrap.servers": addr}), "dynamic", {})
        kafka_admin = KafkaAdminClient(bootstrap_servers=addr)
        try:
            subscription = lambda configs: ConfigResource(ConfigResourceType.CLIENT_METRICS, "dyn", configs=configs)
            created = kafka_admin.alter_configs([subscription({
                "metrics": "org.apache.kafka.producer.record.", "interval.ms": "1000", "match": "client_id=dyn-.*"})])
            assert created == {"client_metrics": {"dyn": "OK"}}, created
            described = kafka_admin.describe_configs([subscription(None)])["client_metrics"]["dyn"]
            assert described["interval.ms"]["value"] == "1000", described
            assert described["match"]["config_source"] == "DYNAMIC_CLIENT_METRICS_CONFIG", described
            assert kafka_admin.list_config_resources(["CLIENT_METRICS"]) == {"client_metrics": ["dyn"]}
            refused = kafka_admin.alter_configs([subscription({"interval.ms": "5"})])["client_metrics"]["dyn"]
            assert "InvalidConfig" in refused and "100 to 3600000" in refused, refused

            producer = Producer({"bootstrap.servers": addr, "client.id": "dyn-producer", "linger.ms": 5})

            def pushed_lines(prefix, deadline_s=60):
                """The producer's lines once it pushes those under `prefix` alone."""
                deadline = time.monotonic() + deadline_s
                while True:
                    lines = client_lines(scrape(admin), "dyn-producer")
                    if lines and all(line.startswith(prefix) for line in lines):
                        return lines
                    assert time.monotonic() < deadline, f"not only {prefix}: {lines}"
                    producer.produce("dynamic", value=b"event")
                    producer.poll(0.2)

            pushed_lines("kafka_client_producer_record_")
            with urllib.request.urlopen(f"http://{admin}/clients", timeout=10) as answer:
                page = answer.read().decode()
            for shown in ["dyn", "client_id=dyn-.*", "the Kafka API", "dyn-producer"]:
                assert shown in page, shown
            # Altered while the producer runs: its next push is refused, it asks again, and pushes the new metrics.
            # APPEND and SUBTRACT of the list key, as kafka-python sends them: node.* in, record.* out.
            altered = kafka_admin.alter_configs([subscription({"metrics": ("APPEND", "org.apache.kafka.producer.node.")})])
            assert altered == {"client_metrics": {"dyn": "OK"}}, altered
            altered = kafka_admin.alter_configs([subscription({"metrics": ("SUBTRACT", "org.apache.kafka.producer.record.")})])
            assert altered == {"client_metrics": {"dyn": "OK"}}, altered
            described = kafka_admin.describe_configs([subscription(None)])["client_metrics"]["dyn"]
            assert described["metrics"]["value"] == "org.apache.kafka.producer.node.", described
            lines = pushed_lines("kafka_client_producer_node_")
            assert any("request_latency" in line for line in lines), lines
            # Deleted (every key reset): the producer is asked for nothing, and its series go.
            kafka_admin.reset_configs([subscription({})])
            assert kafka_admin.list_config_resources(["CLIENT_METRICS"]) == {}
            deadline = time.monotonic() + 60
            while client_lines(scrape(admin), "dyn-producer"):
                assert time.monotonic() < deadline, "the deleted subscription's series stayed"
                producer.produce("dynamic", value=b"event")
                producer.poll(0.2)
            assert producer.flush(30) == 0
        finally:
            kafka_admin.close()
