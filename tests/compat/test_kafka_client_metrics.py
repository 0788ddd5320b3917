"""KIP-714 client metrics with librdkafka against a `rill broker` process started with `--client-metrics`: a
producer and a consumer learn the node's subscription (GetTelemetrySubscriptions), push their metrics
(PushTelemetry), and the node's /metrics shows them per client, in a text promtool accepts; a closed client's
last push takes its series away. A node without a subscription does not offer the APIs, and librdkafka does not
push. Run by kafka-clients.sh."""

import shutil
import subprocess
import tempfile
import time
import urllib.request

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient

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
        assert "rill_client_telemetry_instances 2" in text
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


def test_without_a_subscription_the_apis_are_not_offered_and_nothing_is_pushed():
    admin = f"127.0.0.1:{free_port()}"
    with tempfile.TemporaryDirectory() as data_dir, running_broker(data_dir, "--admin-listen", admin) as addr:
        create_topic(AdminClient({"bootstrap.servers": addr}), "quiet", {})
        producer = Producer({"bootstrap.servers": addr, "client.id": "quiet-producer"})
        producer.produce("quiet", value=b"one")
        assert producer.flush(30) == 0
        time.sleep(2)
        text = scrape(admin)
        assert "kafka_client_" not in text and "rill_client_telemetry_instances" not in text
