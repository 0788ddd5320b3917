//! `rill`, the command line: a thin layer that parses flags, calls the libraries, prints, and maps errors to
//! one line on stderr and an exit status.
//!
//! `rill broker` runs a node in the foreground (`rill_broker`). The client subcommands (`topic`, `produce`,
//! `consume`, `group`, `cluster`, `user`, `token`) are thin calls to `rill_client`, one module each, and `rill bench` measures a broker
//! (`bench/`); `rill top` watches one through its admin listener's `/metrics` (`top.rs`). The client subcommands share `connect.rs` (the `--broker` flag, the runtime, error hints),
//! `output.rs` (stdout that a closed pipe ends quietly) and `table.rs`; `allocator.rs` sets up mimalloc;
//! `telemetry.rs` installs the log subscriber and, with `--otlp-endpoint`, the OTLP span exporter.
//!
//! Exit status: 0 on success (and when stdout is closed early, e.g. by `| head`), 1 when a command fails, 2 for
//! bad flags (clap's own). Nothing prints a backtrace.

mod acl;
mod allocator;
mod bench;
mod broker;
mod client_metrics;
mod cluster;
mod connect;
mod consume;
mod consume_share;
mod group;
mod http_proxy;
mod output;
mod produce;
mod quota;
mod runtime;
mod schema;
mod table;
mod telemetry;
mod time_arg;
mod top;
mod topic;
mod topic_alter;
mod topic_defaults;
mod topic_delete_records;
mod user;

use clap::{Parser, Subcommand};

const EXAMPLES: &str = "\
Examples:
  rill broker --data-dir rill-data                 # run a node (another terminal for the rest)
  rill topic create greetings --partitions 3
  printf 'hello\\nworld\\n' | rill produce greetings
  rill consume greetings --from-beginning
  rill consume greetings --group demo --follow     # resume where the group left off, tail, commit

Client subcommands talk to --broker ADDR (env RILL_BROKER, default 127.0.0.1:9092).";

#[derive(Debug, Parser)]
#[command(name = "rill", version, about = "rill: an append-only log broker (Kafka-style, gRPC API)")]
#[command(after_help = EXAMPLES)]
struct Cli {
    /// Bearer token for a broker that requires authentication (`rill token create USER` issues one), sent by
    /// every client subcommand as `authorization: Bearer TOKEN`. Prefer RILL_TOKEN: a flag shows in `ps`.
    #[arg(long, env = "RILL_TOKEN", hide_env_values = true, value_name = "TOKEN")]
    token: Option<String>,
    /// Client id every client subcommand names itself with (Kafka's client.id): client quotas set for it apply
    /// (`rill quota set --client-id ID`).
    #[arg(long, env = "RILL_CLIENT_ID", value_name = "ID")]
    client_id: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a broker node in the foreground until SIGINT or SIGTERM.
    Broker(Box<broker::BrokerArgs>),
    /// Create, list, describe, delete topics and add partitions.
    Topic(topic::TopicArgs),
    /// Send records to a topic: lines of stdin, or one --value.
    Produce(produce::ProduceArgs),
    /// Print a topic's records: to the end offsets current at start, or --follow.
    Consume(consume::ConsumeArgs),
    /// Consumer groups: committed offsets, lag, reset.
    Group(group::GroupArgs),
    /// The cluster: nodes, their states, the controller leader.
    Cluster(cluster::ClusterArgs),
    /// Measure a broker's throughput and latency (produce, consume, end to end).
    Bench(Box<bench::BenchArgs>),
    /// Live per-topic rates and group lag from a broker's /metrics, refreshed every second.
    Top(top::TopArgs),
    /// Users Kafka clients log in as (SASL) and gRPC clients name with tokens: create, delete, list.
    User(user::UserArgs),
    /// Bearer tokens for gRPC clients: create.
    Token(user::TokenArgs),
    /// ACLs: what each principal may do with authorization on (Kafka's model): add, remove, list.
    Acl(acl::AclArgs),
    /// Client quotas: the byte rates users and client ids may produce and fetch at: set, remove, list.
    Quota(quota::QuotaArgs),
    /// Kafka clients' metrics subscriptions (KIP-714): which metrics clients push to the broker: set, remove, list.
    ClientMetrics(client_metrics::ClientMetricsArgs),
    /// The broker's schema registry (--schema-registry-listen): subjects, register, check, delete, compatibility.
    Schema(schema::SchemaArgs),
    /// Serve Confluent REST Proxy's API v2 (produce and consume over HTTP) as a client of a broker.
    HttpProxy(http_proxy::HttpProxyArgs),
}

/// With `RUST_LOG` set, a client command logs to stderr what its client does (`RUST_LOG=rill_client=debug`: each
/// produce retry, its backoff and where it goes next); without it, nothing, so scripts reading stderr see only
/// the command's own messages. The broker sets up its own logging (`telemetry.rs`).
fn log_client_if_asked() {
    if let Ok(filter) = tracing_subscriber::EnvFilter::try_from_default_env() {
        let is_terminal = std::io::IsTerminal::is_terminal(&std::io::stderr());
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .with_ansi(is_terminal)
            .try_init();
    }
}

fn main() -> std::process::ExitCode {
    if let Err(refused) = allocator::tune() {
        eprintln!("error: {refused}");
        return std::process::ExitCode::FAILURE;
    }
    let cli = Cli::parse();
    connect::set_token(cli.token);
    connect::set_client_id(cli.client_id);
    if !matches!(cli.command, Command::Broker(_)) {
        log_client_if_asked();
    }
    let outcome = match cli.command {
        Command::Broker(args) => broker::run(*args),
        Command::Topic(args) => topic::run(args),
        Command::Produce(args) => produce::run(args),
        Command::Consume(args) => consume::run(args),
        Command::Group(args) => group::run(args),
        Command::Bench(args) => bench::run(*args),
        Command::Cluster(args) => cluster::run(args),
        Command::Top(args) => top::run(args),
        Command::User(args) => user::run(args),
        Command::Token(args) => user::run_token(args),
        Command::Acl(args) => acl::run(args),
        Command::Quota(args) => quota::run(args),
        Command::ClientMetrics(args) => client_metrics::run(args),
        Command::Schema(args) => schema::run(args),
        Command::HttpProxy(args) => http_proxy::run(args),
    };
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        // The reader went away (`rill topic list | head -1`): what it wanted was printed.
        Err(err) if output::is_broken_pipe(&err) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            // One line a user can act on; never a backtrace.
            eprintln!("error: {}", one_line(&err));
            std::process::ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line, each said once: many of our errors already name their source in their
/// own message (`cannot listen on ADDR: Address already in use`), which `{:#}` would repeat.
fn one_line(err: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if line.is_empty() {
            line = text;
        } else if !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
    }
    line
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_error_line_says_each_cause_once() {
        #[derive(Debug)]
        struct Listen(std::io::Error);
        impl std::fmt::Display for Listen {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "cannot listen on 127.0.0.1:9092: {}", self.0)
            }
        }
        impl std::error::Error for Listen {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let io = std::io::Error::from(std::io::ErrorKind::AddrInUse);
        let err = anyhow::Error::new(Listen(io)).context("broker stopped");
        assert_eq!(super::one_line(&err), "broker stopped: cannot listen on 127.0.0.1:9092: address in use");
        let plain = anyhow::anyhow!("no such topic").context("cannot consume");
        assert_eq!(super::one_line(&plain), "cannot consume: no such topic");
    }

    /// clap checks a command's definition only when that subcommand is parsed: a clash between a shared flag
    /// (`--tls-key`) and one subcommand's own (`--key`) would otherwise surface as a panic in that subcommand.
    #[test]
    fn every_subcommands_flags_are_consistent() {
        <super::Cli as clap::CommandFactory>::command().debug_assert();
    }
}
