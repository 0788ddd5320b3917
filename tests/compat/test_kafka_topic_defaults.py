"""The cluster's topic defaults set as Kafka's dynamic broker configs (`kafka-configs.sh --entity-type brokers
--entity-default --add-config log.retention.ms=...`) by real admin clients against one `rill broker`:
confluent-kafka (librdkafka, which names the broker by its id) sets `log.retention.ms` and `compression.type`; a
topic that does not set them follows (DescribeConfigs' DYNAMIC_DEFAULT_BROKER_CONFIG, and `rill topic describe`
shows the logs run with it), one that does keeps its own, a topic created afterwards takes them, a DELETE gives
the broker's static default back, a bad value is INVALID_CONFIG naming the key. kafka-python's alter_configs of
the broker resource does the same, and its reset_configs (a DELETE per key) clears them. The defaults last a
SIGKILL and restart. Run by kafka-clients.sh."""

import os
import tempfile

import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import (AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, ConfigSource,
                                   NewTopic, ResourceType)
from kafka import KafkaAdminClient
from kafka.admin import ConfigResource as KafkaPythonConfigResource

from conftest import running_broker
from test_kafka_clients import topic_setting

HOUR = "3600000"
WEEK = "604800000"


@pytest.fixture
def data_dir():
    with tempfile.TemporaryDirectory() as root:
        yield root


def topic_configs(admin, topic):
    resource = ConfigResource(ResourceType.TOPIC, topic)
    return admin.describe_configs([resource])[resource].result(timeout=30)


def shown(configs, key):
    return configs[key].value, configs[key].source


def create(admin, topic, config=None):
    admin.create_topics([NewTopic(topic, 1, 1, config=config or {})])[topic].result(timeout=30)


def test_confluent_kafka_sets_the_topic_defaults_through_the_brokers_id(data_dir):
    with running_broker(data_dir, "--admin-listen", "127.0.0.1:0") as addr:
        admin = AdminClient({"bootstrap.servers": addr})
        node = str(admin.describe_cluster().result(timeout=30).nodes[0].id)

        def alter(*entries):
            resource = ConfigResource(ResourceType.BROKER, node, incremental_configs=list(entries))
            return admin.incremental_alter_configs([resource])[resource].result(timeout=30)

        create(admin, "plain")
        create(admin, "owning", {"retention.ms": WEEK})
        alter(ConfigEntry("log.retention.ms", HOUR, incremental_operation=AlterConfigOpType.SET),
              ConfigEntry("compression.type", "zstd", incremental_operation=AlterConfigOpType.SET))
        dynamic = ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG.value
        plain = topic_configs(admin, "plain")
        assert shown(plain, "retention.ms") == (HOUR, dynamic)
        assert shown(plain, "compression.type") == ("zstd", dynamic)
        assert topic_setting(addr, "plain", "retention_ms") == HOUR, "the topic's logs run with it"
        assert shown(topic_configs(admin, "owning"), "retention.ms") == (WEEK, ConfigSource.DYNAMIC_TOPIC_CONFIG.value)
        create(admin, "later")
        assert shown(topic_configs(admin, "later"), "retention.ms") == (HOUR, dynamic)
        broker = ConfigResource(ResourceType.BROKER, node)
        retention = admin.describe_configs([broker])[broker].result(timeout=30)["log.retention.ms"]
        assert (retention.value, retention.source, retention.is_read_only) == (HOUR, dynamic, False)

        with pytest.raises(KafkaException) as bad:
            alter(ConfigEntry("log.segment.bytes", "tiny", incremental_operation=AlterConfigOpType.SET))
        assert bad.value.args[0].name() == "INVALID_CONFIG" and "log.segment.bytes" in bad.value.args[0].str()

        alter(ConfigEntry("log.retention.ms", None, incremental_operation=AlterConfigOpType.DELETE))
        assert shown(topic_configs(admin, "plain"), "retention.ms") == (WEEK, ConfigSource.DEFAULT_CONFIG.value)
        assert topic_setting(addr, "later", "retention_ms") == WEEK
        assert shown(topic_configs(admin, "plain"), "compression.type") == ("zstd", dynamic), "the other stays"


def test_kafka_python_alters_and_resets_the_topic_defaults_and_they_last_a_restart(data_dir):
    with running_broker(data_dir, "--admin-listen", "127.0.0.1:0") as addr:
        admin = KafkaAdminClient(bootstrap_servers=addr)
        confluent = AdminClient({"bootstrap.servers": addr})
        try:
            node = str(confluent.describe_cluster().result(timeout=30).nodes[0].id)
            create(confluent, "plain")
            broker = KafkaPythonConfigResource("BROKER", node, configs={"log.retention.ms": HOUR, "log.roll.ms": "60000"})
            assert admin.alter_configs([broker]) == {"broker": {node: "OK"}}
            assert topic_setting(addr, "plain", "retention_ms") == HOUR
            assert topic_setting(addr, "plain", "segment_ms") == "60000"
        finally:
            admin.close()
    # SIGKILLed (running_broker kills it) and started again on the same data dir.
    with running_broker(data_dir, "--admin-listen", "127.0.0.1:0") as addr:
        admin = KafkaAdminClient(bootstrap_servers=addr)
        try:
            described = admin.describe_configs([KafkaPythonConfigResource("BROKER", node)], config_filter="all")
            retention = described["broker"][node]["log.retention.ms"]
            assert (retention["value"], retention["config_source"]) == (HOUR, "DYNAMIC_DEFAULT_BROKER_CONFIG")
            create(AdminClient({"bootstrap.servers": addr}), "after-restart")
            assert topic_setting(addr, "after-restart", "retention_ms") == HOUR
            # reset_configs: a DELETE of each key named.
            reset = admin.reset_configs([KafkaPythonConfigResource("BROKER", node, configs=["log.retention.ms", "log.roll.ms"])])
            assert reset == {"broker": {node: "OK"}}, reset
            assert topic_setting(addr, "plain", "retention_ms") == WEEK
            assert topic_setting(addr, "after-restart", "segment_ms") == WEEK
        finally:
            admin.close()
