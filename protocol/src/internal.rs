//! The generated `rill.internal.v1` API: node-to-node calls of a cluster (raft RPCs, heartbeats), see
//! `proto/rill/internal/v1/controller.proto`. Not part of the public API; only brokers speak it.

#![allow(clippy::all, missing_docs)]

tonic::include_proto!("rill.internal.v1");
