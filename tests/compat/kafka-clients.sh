#!/usr/bin/env bash
# Real Kafka clients against rill's Kafka listener (the broker's one port, beside gRPC). test_kafka_clients.py:
# kafka-python's producer and consumer with every codec, kcat against `rill produce`/`rill consume`,
# offsets_for_times, kafka-python's and confluent-kafka's admin clients (describe_log_dirs, list_offsets of the
# largest timestamp among them). test_kafka_groups.py: consumer groups of
# kafka-python, confluent-kafka (range, cooperative-sticky), kcat -G and KafkaJS, commits and resumes; and
# kafka-python's and librdkafka's (confluent-kafka) idempotent producers through a SIGKILL and restart of the
# broker, with every record stored once, in order, without a gap. test_kafka_consumer_protocol.py: KIP-848
# (`group.protocol=consumer`) groups of confluent-kafka, broker-assigned, through a leave, commits and resumes, and
# a static member (`group.instance.id`) restarted within its session getting its own partitions back.
# test_kafka_cluster.py: librdkafka against three nodes: Metadata's brokers and leaders, produce to the leaders,
# FindCoordinator, a KIP-848 group served by a coordinator other than its bootstrap node, a group resuming from its
# commits after its coordinator's SIGKILL. test_kafka_cluster_sasl.py: SCRAM logins on every node of a cluster
# for a user made through one node, refused everywhere once it is deleted through another.
# test_kafka_cluster_admin.py: confluent-kafka's elect_leaders and kafka-python's elect_leaders,
# alter_partition_reassignments (a move, and a cancel) and list_partition_reassignments on a cluster; both admin
# clients' create_topics (RF 3), create_partitions and delete_topics through any node. test_kafka_tls.py: kafka-python and librdkafka over TLS and mutual TLS
# (security_protocol SSL), certificates made by trustme in the test. test_kafka_sasl.py: both with SASL_SSL and
# SCRAM-SHA-256, SCRAM-SHA-512 and PLAIN, a wrong password refused, a request before authentication closed.
# test_kafka_oauthbearer.py: librdkafka getting OIDC tokens from a provider in the test and kafka-python handed
# them, with SASL OAUTHBEARER; expired, foreign and forged tokens refused saying why; a key rotation followed;
# ACLs on the token's principal; `rill --token JWT` and /metrics taking the same tokens.
# test_schema_registry.py: confluent-kafka's SchemaRegistryClient, AvroSerializer and AvroDeserializer against
# `--schema-registry-listen`: Avro records through rill and back, evolution and a refused incompatible version,
# deletes and Confluent's error codes, a restart, HTTP Basic and bearer callers. test_schema_registry_formats.py:
# its ProtobufSerializer and ProtobufDeserializer (imports registered as references, read back by
# format=serialized) and JSONSerializer and JSONDeserializer (a $ref to another subject) through rill and back,
# each kind's evolution rules, 42206 for a referenced schema, and schema id validation reading message indexes.
# test_http_proxy.py: `requests` against `--http-proxy-listen` and `rill http-proxy` (Confluent REST Proxy's API
# v2) beside librdkafka: HTTP records in murmur2's partitions read by librdkafka, librdkafka's read over HTTP by a
# group of consumer instances that commit and hand over, Confluent's error bodies, bearer tokens and ACLs, TLS, and
# avro, protobuf and jsonschema records interchangeable with Confluent's serializers and deserializers.
# test_kafka_acl.py: librdkafka against `--authorization on`: allowed and denied produce, consume and Metadata;
# ACLs created, described and deleted with confluent-kafka's and kafka-python's admin clients deciding what a SASL
# client may do. test_kafka_sarama.py: Sarama 1.22 (Go, Debian's) creates a topic, produces idempotently with
# every codec, consumes, and commits as a group of two; `rill` reads its records and shows its commits.
# test_kafka_quotas.py: confluent-kafka's producer and consumer under quotas `rill quota set` gives their client
# ids: throttled (their `throttle_cb` told), slowed to the quota, every record once and in order.
# test_kafka_transactions.py: confluent-kafka's transactional producer: read_committed consumers get committed
# transactions only and stop at an open one's first offset, read_uncommitted ones get aborted records too, markers
# take offsets; a second init_transactions fences a zombie and aborts its open transaction; the broker aborts a
# transaction past its timeout; consume-transform-produce commits the group's offsets with the transaction and an
# abort moves nothing; a transaction open at a SIGKILL of the broker is aborted by the next init_transactions;
# KafkaJS's transactions (kafkajs_transactions.js) commit, abort and send offsets; kafka-python's admin client lists
# and describes an open transaction and its producer (ListTransactions, DescribeTransactions, DescribeProducers).
# test_kafka_cluster_transactions.py: the same producer against three nodes: FindCoordinator names the controller
# leader; consume-transform-produce over partitions led by different nodes commits output and offsets together;
# the coordinator SIGKILLed with a transaction open, which then commits through the next one, or is aborted by it
# past its timeout when its producer abandons it; a partition leader SIGKILLed before a commit; a rolling restart
# under a producer committing transaction after transaction, each committed one read once; kafka-python's admin.
# test_kafka_compaction.py: a topic created with cleanup.policy=compact by confluent-kafka, compacted by the broker,
# read back by librdkafka and kafka-python (each key's newest value at its offset, a tombstone's key), keyless
# records refused, DescribeConfigs and IncrementalAlterConfigs of the compaction configs, and a transactional
# producer's committed and aborted rounds read_committed; test_kafka_compaction_cluster.py: on three nodes, a
# replica SIGKILLed while the others compact catches up from the compacted leader and, elected, serves it.
# test_kafka_topic_configs.py: the topic configs Kafka Streams, ksqlDB and Kafka Connect create their topics with,
# accepted and described; LogAppendTime topics read by librdkafka and kafka-python at the broker's clock; timestamp
# bounds refusing records with INVALID_TIMESTAMP; segment.ms and max.compaction.lag.ms compacting a quiet topic;
# compression.type=zstd storing what librdkafka sends uncompressed, lz4 and gzip as zstd, read back by both clients.
# test_kafka_topic_defaults.py: the cluster's topic defaults (log.retention.ms, ... on a broker resource) set by
# confluent-kafka and kafka-python: followed by topics that do not set the key, not by one that does, taken by a
# topic created later, cleared by a DELETE, kept through a SIGKILL and restart; on three nodes (in
# test_kafka_cluster_admin.py), set through one node and applied on every one, and a min.insync.replicas default
# refusing librdkafka's acks-all produce NOT_ENOUGH_REPLICAS with a replica down.
# test_kafka_share_groups.py: KIP-932 share groups with confluent-kafka's ShareConsumer (librdkafka 2.15): more
# consumers than partitions, nothing read twice, acknowledgements through a SIGKILL, release/reject/delivery limit,
# a lock running out, a group id of one kind refused to the other. test_kafka_cluster_share_groups.py: the same on
# three nodes: members at the group's coordinator, each partition fetched at its leader; a partition leader and then
# the coordinator SIGKILLed, nothing acknowledged delivered again; a member SIGKILLed, its records released when its
# coordinator times it out.
# test_kafka_client_metrics.py: librdkafka's producer and consumer push their metrics (KIP-714) to a node with
# `--client-metrics`, shown on its /metrics per client (promtool checks the page) and gone when a client closes.
# test_kafka_follower_fetching.py: three nodes in three zones (`--rack`); librdkafka consumers with `client.rack`
# read from the follower in their zone (KIP-392), read_committed too, and from another replica once it is killed.
#
# Installs kafka-python and confluent-kafka from PyPI into target/compat/venv (shared with kafka-python.sh),
# KafkaJS from npm into target/compat/node_modules, kcat (and node), Go and Sarama from Debian's packages when missing
# (without them, their tests are skipped and say so). Builds the `rill` binary and runs the pytest suites beside
# this file. Usage: tests/compat/kafka-clients.sh [PYTEST ARGS]
set -euo pipefail
cd "$(dirname "$0")/../.."
source tests/compat/venv.sh
source tests/compat/tools.sh
need_kcat
need_kafkajs
need_sarama
cargo build --quiet -p rill-cli
RILL_BIN="$PWD/target/debug/rill" "$venv/bin/pytest" -q -p no:cacheprovider -W ignore::DeprecationWarning \
  tests/compat/test_kafka_clients.py tests/compat/test_kafka_groups.py tests/compat/test_kafka_consumer_protocol.py \
  tests/compat/test_kafka_cluster.py tests/compat/test_kafka_cluster_sasl.py tests/compat/test_kafka_cluster_admin.py \
  tests/compat/test_kafka_tls.py \
  tests/compat/test_kafka_sasl.py tests/compat/test_kafka_oauthbearer.py tests/compat/test_kafka_acl.py \
  tests/compat/test_kafka_sarama.py \
  tests/compat/test_kafka_quotas.py tests/compat/test_kafka_transactions.py \
  tests/compat/test_kafka_cluster_transactions.py tests/compat/test_kafka_compaction.py \
  tests/compat/test_kafka_compaction_cluster.py tests/compat/test_kafka_topic_configs.py \
  tests/compat/test_kafka_topic_defaults.py \
  tests/compat/test_kafka_follower_fetching.py tests/compat/test_kafka_client_metrics.py \
  tests/compat/test_schema_registry.py \
  tests/compat/test_schema_registry_formats.py tests/compat/test_http_proxy.py \
  tests/compat/test_kafka_share_groups.py tests/compat/test_kafka_cluster_share_groups.py \
  tests/compat/test_kafka_auto_create.py "$@"
