//! What every client subcommand shares: the `--broker` flag, the runtime it runs on, and the wording of errors
//! that a user can act on (which broker was unreachable, and how to point at another).

use std::future::Future;
use std::path::PathBuf;

use anyhow::Context;
use rill_client::{BearerToken, Client, ClientConfig, ClientId, ClientTls, Error};

/// The broker's own default listen address (`BrokerConfig::default().listen`; a test keeps them equal).
pub const DEFAULT_BROKER: &str = "127.0.0.1:9092";

/// How rustls words a server certificate it could not verify, in the client's error chain.
const UNVERIFIED_SERVER: &str = "invalid peer certificate";

/// The `--broker ADDR` flag of every client subcommand.
#[derive(Debug, Clone, clap::Args)]
pub struct BrokerFlag {
    /// Broker address, host:port; for a cluster, any of its nodes, or several comma-separated (the first that
    /// answers is used, and produce and fetch then go to each partition's leader).
    /// `https://HOST:PORT` connects with TLS (docs/security.md).
    #[arg(long = "broker", env = "RILL_BROKER", hide_env_values = true, default_value = DEFAULT_BROKER, value_name = "ADDR")]
    pub addr: String,
    #[command(flatten)]
    pub tls: TlsFlags,
}

/// `rill --token TOKEN` (env `RILL_TOKEN`): one per process, given before the subcommand, and sent by every
/// client subcommand's connection. Set once by `main`.
static TOKEN: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// The `--token` the process was given, if any (also sent by `rill top` to the admin listener's `/metrics`).
pub fn token() -> Option<&'static str> {
    TOKEN.get().map(String::as_str)
}

/// Records the `--token` the process was given, for [`BrokerFlag::connect`].
pub fn set_token(token: Option<String>) {
    if let Some(token) = token {
        let _ = TOKEN.set(token);
    }
}

/// `rill --client-id ID` (env `RILL_CLIENT_ID`): one per process, given before the subcommand, like `--token`.
static CLIENT_ID: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Records the `--client-id` the process was given, for [`TlsFlags::client_config`].
pub fn set_client_id(client_id: Option<String>) {
    if let Some(client_id) = client_id {
        let _ = CLIENT_ID.set(client_id);
    }
}

/// `--tls-ca`, `--tls-cert`, `--tls-key`: what a client trusts and presents over TLS.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TlsFlags {
    /// CA certificate (PEM) to trust besides the public roots; implies TLS for an address without a scheme.
    #[arg(long = "tls-ca", env = "RILL_CLIENT_TLS_CA", value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,
    /// Client certificate (PEM) for a broker that asks for one (mutual TLS); needs --tls-key.
    #[arg(long = "tls-cert", env = "RILL_CLIENT_TLS_CERT", value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// Private key (PEM) of --tls-cert.
    #[arg(long = "tls-key", env = "RILL_CLIENT_TLS_KEY", value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
}

impl TlsFlags {
    /// The client settings these flags make: TLS settings when any flag is given (an `https://` address turns
    /// TLS on by itself), and the process's `--client-id`.
    pub fn client_config(&self) -> anyhow::Result<ClientConfig> {
        let tls = if self.tls_ca.is_some() || self.tls_cert.is_some() {
            Some(ClientTls::from_files(self.tls_ca.as_deref(), self.tls_cert.as_deref(), self.tls_key.as_deref())?)
        } else {
            None
        };
        let client_id =
            CLIENT_ID.get().map(|id| ClientId::new(id)).transpose().context("--client-id (RILL_CLIENT_ID)")?;
        Ok(ClientConfig { tls, client_id, ..ClientConfig::default() })
    }
}

impl BrokerFlag {
    pub async fn connect(&self) -> anyhow::Result<Client> {
        let mut config = self.tls.client_config()?;
        config.token = TOKEN.get().map(|t| BearerToken::new(t)).transpose().context("--token (RILL_TOKEN)")?;
        Client::connect_with(&self.addr, config).await.map_err(|err| self.explain(err))
    }

    fn is_tls(&self) -> bool {
        self.addr.contains("https://") || self.tls.tls_ca.is_some() || self.tls.tls_cert.is_some()
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
                if let Some(at) = message.find(UNVERIFIED_SERVER) {
                    // rustls's reason follows ("...: UnknownIssuer", "...: Expired", "...: NotValidForName").
                    let reason = message[at + UNVERIFIED_SERVER.len()..].split(": ").nth(1).unwrap_or_default();
                    return anyhow::anyhow!(
                        "the broker at {}'s TLS certificate is not accepted ({reason}): it must be current, issued \
                         by a CA the client trusts (the public ones, or --tls-ca FILE), and hold the name connected to",
                        self.addr
                    );
                }
                // A TLS listener closes a plaintext connection at its first byte, a plaintext one a TLS handshake,
                // and one that requires a client certificate the handshake of a client without a good one: the
                // client only sees the connection end, so the hint names what can cause it.
                let transport = if self.is_tls() {
                    "; if the broker listens without TLS, use its plain HOST:PORT; if it asks for a client \
                     certificate, give one its CA issued with --tls-cert and --tls-key"
                } else {
                    "; if the broker listens with TLS, use https://HOST:PORT (and --tls-ca)"
                };
                anyhow::anyhow!(
                    "cannot reach the broker at {} ({cause}): is `rill broker` running? --broker or RILL_BROKER \
                     sets the address{transport}",
                    self.addr
                )
            }
            Error::DiskFull { message } => anyhow::anyhow!(
                "the broker at {} cannot store records: its disk is full ({message}); free space on the broker's \
                 data directory",
                self.addr
            ),
            Error::Unauthenticated { message } => anyhow::anyhow!(
                "the broker at {} requires authentication: {message}; pass a token with `rill --token TOKEN ...` or RILL_TOKEN \
                 (`rill user create NAME --token` issues one)",
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
        BrokerFlag { addr: "127.0.0.1:9".into(), tls: TlsFlags::default() }
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
    fn an_untrusted_broker_certificate_is_worded_as_one_with_rustls_reason() {
        let untrusted = Error::Unavailable {
            message: "cannot connect to https://127.0.0.1:9: transport error: invalid peer certificate: \
                      UnknownIssuer: invalid peer certificate: UnknownIssuer"
                .into(),
        };
        let text = format!("{:#}", flag().explain(untrusted));
        assert!(
            text.contains("TLS certificate is not accepted (UnknownIssuer)") && text.contains("--tls-ca"),
            "{text}"
        );
        let closed = Error::Unavailable { message: "transport error: connection closed".into() };
        let text = format!("{:#}", flag().explain(closed));
        assert!(text.contains("use https://HOST:PORT"), "a plaintext address is told about TLS: {text}");
    }

    #[test]
    fn the_default_broker_is_where_a_default_broker_listens() {
        assert_eq!(DEFAULT_BROKER, rill_broker::BrokerConfig::default().listen.to_string());
    }
}
