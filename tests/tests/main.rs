//! End-to-end tests against a real broker over real sockets, one module per area. One binary for all
//! of them (`cargo test -p rill-tests --test e2e MODULE::` runs one area): see autotests in Cargo.toml.

mod auto_create_topics;
mod client_metrics_admin;
mod disk_full;
mod groups;
mod groups_admin;
mod health_reflection;
mod idempotent_produce;
mod kafka_acls;
mod kafka_broker_configs;
mod kafka_client_quotas;
mod kafka_cluster_admin;
mod kafka_consumer_protocol;
mod kafka_delete_records;
mod kafka_fetch_sessions;
mod kafka_groups;
mod kafka_idempotence;
mod kafka_leader_epochs;
mod kafka_log_dirs;
mod kafka_protocol;
mod kafka_reauthentication;
mod kafka_share_groups;
mod leader_epochs;
mod limits;
mod metrics;
mod offsets_and_restart;
mod produce_fetch;
mod produce_validation;
mod topics;
mod waiting;
