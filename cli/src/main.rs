//! `rill`, the command line: a thin layer that parses flags, builds a config, and calls the libraries.
//!
//! Today it has one subcommand, `rill broker`, which runs a node in the foreground. The client subcommands
//! (topic, produce, consume, group) arrive with the client crate.

mod allocator;
mod bench;
mod broker;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "rill", version, about = "rill: an append-only log broker (Kafka-style, gRPC API)")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a broker node in the foreground until SIGINT or SIGTERM.
    Broker(broker::BrokerArgs),
    /// Measure a broker's throughput and latency (produce, consume, end to end).
    Bench(bench::BenchArgs),
}

fn main() -> std::process::ExitCode {
    allocator::tune();
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Broker(args) => broker::run(args),
        Command::Bench(args) => bench::run(args),
    };
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            // One line a user can act on; never a backtrace.
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
