//! What every client subcommand shares: the `--broker` flag, the runtime it runs on, and the wording of errors
//! that a user can act on (which broker was unreachable, and how to point at another).

use std::future::Future;

use anyhow::Context;
use rill_client::{Client, Error};

/// The broker's own default listen address (`BrokerConfig::default().listen`; a test keeps them equal).
pub const DEFAULT_BROKER: &str = "127.0.0.1:9092";

/// The `--broker ADDR` flag of every client subcommand.
#[derive(Debug, Clone, clap::Args)]
pub struct BrokerFlag {
    /// Broker address, host:port; for a cluster, any of its nodes, or several comma-separated (the first that
    /// answers is used, and produce and fetch then go to each partition's leader).
    #[arg(long = "broker", env = "RILL_BROKER", hide_env_values = true, default_value = DEFAULT_BROKER, value_name = "ADDR")]
    pub addr: String,
}

impl BrokerFlag {
    pub async fn connect(&self) -> anyhow::Result<Client> {
        Client::connect(&self.addr).await.map_err(|err| self.explain(err))
    }

    /// Turns a client error into the one line the user sees: an unreachable broker names the address and the
    /// way to change it; a broker that answered (a full disk, a refusal) is reported as what it said, never as
    /// unreachable; every other error says what went wrong with the request, as the client words it. A record
    /// that failed behind an earlier one is explained by that earlier failure.
    pub fn explain(&self, err: Error) -> anyhow::Error {
        match err.root() {
            Error::Unavailable { message } => {
                // The client's message is a chain ("cannot connect to ...: transport error: tcp connect error:
                // Connection refused"); its last link is the cause a user recognises.
                let cause = message.rsplit(": ").next().unwrap_or_default();
                anyhow::anyhow!(
                    "cannot reach the broker at {} ({cause}): is `rill broker` running? --broker or RILL_BROKER \
                     sets the address",
                    self.addr
                )
            }
            Error::DiskFull { message } => anyhow::anyhow!(
                "the broker at {} cannot store records: its disk is full ({message}); free space on the broker's \
                 data directory",
                self.addr
            ),
            root => anyhow::Error::new(root.clone()),
        }
    }
}

/// Runs one subcommand's future to completion on a fresh runtime.
///
/// The runtime is dropped without waiting for blocking tasks: a read of stdin that will never finish (an
/// interactive terminal, after the command failed) must not keep the process alive.
pub fn block_on<F>(future: F) -> anyhow::Result<()>
where
    F: Future<Output = anyhow::Result<()>>,
{
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    let outcome = runtime.block_on(future);
    runtime.shutdown_background();
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flag() -> BrokerFlag {
        BrokerFlag { addr: "127.0.0.1:9".into() }
    }

    #[test]
    fn a_full_disk_is_reported_as_the_brokers_disk_being_full_not_as_an_unreachable_broker() {
        let full =
            Error::DiskFull { message: "i/o error on /data/t-0/0.log: No space left on device (os error 28)".into() };
        let text = format!("{:#}", flag().explain(full.clone()));
        assert!(text.contains("disk is full") && text.contains("127.0.0.1:9"), "{text}");
        assert!(!text.contains("cannot reach") && !text.contains("is `rill broker` running"), "{text}");
        // A record that failed behind the full disk's batch says the same.
        let behind = Error::EarlierBatchFailed { topic: "t".into(), partition: 0, cause: Box::new(full) };
        assert_eq!(format!("{:#}", flag().explain(behind)), text);
    }

    #[test]
    fn only_an_unreachable_broker_is_worded_as_one() {
        let refused = Error::Unavailable { message: "transport error: tcp connect error: Connection refused".into() };
        let text = format!("{:#}", flag().explain(refused));
        assert!(text.starts_with("cannot reach the broker at 127.0.0.1:9 (Connection refused)"), "{text}");
        let large = Error::BatchTooLarge { message: "record batch of 9 bytes exceeds the limit of 8 bytes".into() };
        assert!(!format!("{:#}", flag().explain(large)).contains("cannot reach"));
        // A node that answered that its cluster's controller is away was reached: it says what it said.
        let message = "the cluster's controller is unavailable: controller leader 3: tcp connect error";
        let text = format!("{:#}", flag().explain(Error::ControllerUnavailable { message: message.into() }));
        assert_eq!(text, message);
    }

    #[test]
    fn the_default_broker_is_where_a_default_broker_listens() {
        assert_eq!(DEFAULT_BROKER, rill_broker::BrokerConfig::default().listen.to_string());
    }
}
