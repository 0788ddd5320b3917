//! The generated `rill.v1` gRPC API: messages, clients and server traits (see `proto/rill/v1/rill.proto`).
//!
//! `bytes` fields are [`bytes::Bytes`], so a produced batch is a slice of the request buffer and a fetched one
//! a slice of the broker's read buffer: record bytes are never copied to cross this boundary.

#![allow(clippy::all, missing_docs)]

tonic::include_proto!("rill.v1");

/// The encoded `FileDescriptorSet` of `rill.v1`, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/rill_v1_descriptor.bin"));
