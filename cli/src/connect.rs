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
    /// Broker address, host:port.
    #[arg(long = "broker", env = "RILL_BROKER", hide_env_values = true, default_value = DEFAULT_BROKER, value_name = "ADDR")]
    pub addr: String,
}

impl BrokerFlag {
    pub async fn connect(&self) -> anyhow::Result<Client> {
        Client::connect(&self.addr).await.map_err(|err| self.explain(err))
    }

    /// Turns a client error into the one line the user sees: an unreachable broker names the address and the
    /// way to change it; every other error says what went wrong with the request, as the client words it.
    pub fn explain(&self, err: Error) -> anyhow::Error {
        match err {
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
            err => anyhow::Error::new(err),
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

    #[test]
    fn the_default_broker_is_where_a_default_broker_listens() {
        assert_eq!(DEFAULT_BROKER, rill_broker::BrokerConfig::default().listen.to_string());
    }
}
