//! The `rill` binary and broker processes, started for real, one module per area. One binary for all
//! of them (`cargo test -p rill-cli --test e2e MODULE::` runs one area): see autotests in Cargo.toml.

mod common;

mod acl;
mod bench;
mod broker_process;
mod cli_delete_records;
mod cli_group;
mod cli_produce_consume;
mod cli_stops;
mod cli_topic;
mod cluster;
mod cluster_auth;
mod cluster_console;
mod cluster_console_secret;
mod cluster_console_sessions;
mod cluster_delete_records;
mod cluster_deleted_topics;
mod cluster_dropped_replicas;
mod cluster_frozen_bootstrap;
mod cluster_groups;
mod cluster_kafka_admin;
mod cluster_kafka_topics;
mod cluster_leader_epochs;
mod cluster_leaders;
mod cluster_list_offsets;
mod cluster_log_dirs;
mod cluster_members;
mod cluster_metrics;
mod cluster_throttle;
mod console;
mod console_auth;
mod crash_loop;
mod high_watermark;
mod hostile_clients;
mod kafka_rdkafka;
mod open_file_limit;
mod otlp;
mod quickstart;
mod replication;
mod subscribe_failover;
mod tail_cache;
mod tls;
mod top;
mod users;
mod worker_threads;
