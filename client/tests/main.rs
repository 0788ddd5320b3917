//! The client against an embedded broker over real sockets, one module per area. One binary for all
//! of them (`cargo test -p rill-client --test e2e MODULE::` runs one area): see autotests in Cargo.toml.

mod common;

mod admin_and_failures;
mod connection;
mod consumer_between_polls;
mod groups;
mod produce_consume;
mod produce_stream;
mod quotas;
mod share_groups;
mod subscribe;
