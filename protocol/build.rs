//! Generates the `rill.v1` gRPC code from `proto/` with `protox` (a pure-Rust protobuf compiler), so building
//! rill never needs a system `protoc`. Also writes the encoded file descriptor set that the broker serves through
//! gRPC server reflection.

use std::path::PathBuf;

use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto_root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../proto");
    let proto_files = [
        proto_root.join("rill/v1/rill.proto"),
        proto_root.join("rill/v1/cluster.proto"),
        proto_root.join("rill/v1/auth.proto"),
        proto_root.join("rill/v1/client_metrics.proto"),
    ];
    let internal_file = proto_root.join("rill/internal/v1/controller.proto");
    for file in proto_files.iter().chain([&internal_file]) {
        println!("cargo:rerun-if-changed={}", file.display());
    }

    let descriptors = protox::compile(&proto_files, [&proto_root])?;
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out_dir.join("rill_v1_descriptor.bin"), descriptors.encode_to_vec())?;

    tonic_prost_build::configure()
        // Record bytes stay `Bytes` from the socket to the log and back: a slice of the receive buffer, not a copy.
        .bytes(".rill.v1")
        // Sizes each message's buffer before encoding: see `src/grpc_codec.rs`.
        .codec_path("crate::grpc_codec::SizedProstCodec")
        .compile_fds(descriptors)?;

    // The node-to-node API is compiled on its own, so that it stays out of the descriptor set served through
    // reflection.
    tonic_prost_build::configure()
        .bytes(".rill.internal.v1")
        .compile_fds(protox::compile([&internal_file], [&proto_root])?)?;
    Ok(())
}
