//! `rill http-proxy`: Confluent REST Proxy's API v2 served beside a broker (or a cluster), as its client. The
//! same proxy `rill broker --http-proxy-listen` runs inside a broker; this one reaches any broker, over TLS too.

use std::future::Future;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use rill_broker::{TlsAcceptorHandle, TlsConfig, TlsListener};
use rill_client::BearerToken;
use rill_http_proxy::{HttpProxy, ListenerTls, ProxyConfig};
use tokio_rustls::server::TlsStream;

use crate::connect::BrokerFlag;

const EXAMPLES: &str = "Examples:
  rill http-proxy --broker 127.0.0.1:9092 --listen 127.0.0.1:8082
  curl -X POST -H 'Content-Type: application/vnd.kafka.json.v2+json' \\
       --data '{\"records\":[{\"key\":\"k\",\"value\":{\"n\":1}}]}' http://127.0.0.1:8082/topics/orders

Requests carrying `Authorization: Bearer TOKEN` reach the broker with that token; those without one with
--token (RILL_TOKEN), or none. docs/http-proxy.md lists the endpoints.";

#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct HttpProxyArgs {
    #[command(flatten)]
    broker: BrokerFlag,
    /// Address to serve the API on; port 0 picks a free port.
    #[arg(long, env = "RILL_HTTP_PROXY_LISTEN", value_name = "ADDR", default_value = "127.0.0.1:8082")]
    listen: SocketAddr,
    /// Serve the API over TLS with this certificate chain (PEM; reloaded when the file changes); needs
    /// --listen-tls-key. Callers' bearer tokens then cross the network encrypted.
    #[arg(long, value_name = "FILE", requires = "listen_tls_key")]
    listen_tls_cert: Option<PathBuf>,
    /// Private key (PEM) of --listen-tls-cert.
    #[arg(long, value_name = "FILE", requires = "listen_tls_cert")]
    listen_tls_key: Option<PathBuf>,
    /// Consumer instances held at once; creating one more is refused (429).
    #[arg(long, value_name = "N", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    max_consumer_instances: u64,
    /// The schema registry the avro format registers and reads schemas in (Confluent's API: a broker's
    /// --schema-registry-listen or Confluent's own), plain http://HOST:PORT. [default: none; avro refused]
    #[arg(long, env = "RILL_SCHEMA_REGISTRY", value_name = "URL")]
    schema_registry: Option<String>,
    /// A consumer instance unused this long is closed (Confluent's consumer.instance.timeout.ms).
    #[arg(long, value_name = "SECONDS", default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    consumer_instance_timeout_secs: u64,
}

pub fn run(args: HttpProxyArgs) -> anyhow::Result<()> {
    let client = args.broker.tls.client_config()?;
    let token = crate::connect::token();
    // Checked here, so a token no header can carry is refused at start rather than at the first request.
    token.map(BearerToken::new).transpose().context("--token (RILL_TOKEN)")?;
    let config = ProxyConfig {
        broker: args.broker.addr.clone(),
        client,
        token: token.map(str::to_owned),
        schema_registry: args.schema_registry,
        max_consumer_instances: usize::try_from(args.max_consumer_instances).unwrap_or(usize::MAX),
        consumer_instance_timeout: Duration::from_secs(args.consumer_instance_timeout_secs),
        tls: None,
        body_read_timeout: Duration::from_secs(60),
    };
    let runtime = crate::runtime::multi_thread(0)?;
    runtime.block_on(async {
        let (stop_watching, watching) = tokio::sync::watch::channel(false);
        let acceptor = match (&args.listen_tls_cert, &args.listen_tls_key) {
            (Some(cert), Some(key)) => {
                let acceptor = TlsAcceptorHandle::load_for(TlsConfig::new(cert, key), TlsListener::Admin)
                    .context("--listen-tls-cert/--listen-tls-key")?;
                tokio::spawn(rill_broker::watch_tls_files(Arc::clone(&acceptor), watching));
                Some(acceptor)
            }
            _ => None,
        };
        let scheme = if acceptor.is_some() { "https" } else { "http" };
        let tls = acceptor.map(|acceptor| Arc::new(BrokerAcceptor(acceptor)) as Arc<dyn ListenerTls>);
        let config = ProxyConfig { tls, ..config };
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("--listen {}: cannot listen there", args.listen))?;
        let proxy = HttpProxy::start(listener, config)?;
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(stdout, "rill http proxy listening on {scheme}://{}", proxy.local_addr())
            .and_then(|()| stdout.flush());
        drop(stdout);
        let waited = crate::broker::wait_for_signal().await;
        proxy.shutdown();
        let _ = stop_watching.send(true);
        waited
    })
}

/// The broker's own TLS acceptor (HTTP/1.1 only, no client certificate asked for, its files reloaded when they
/// change) as the proxy's listener TLS.
struct BrokerAcceptor(Arc<TlsAcceptorHandle>);

impl ListenerTls for BrokerAcceptor {
    fn accept(
        &self,
        stream: tokio::net::TcpStream,
    ) -> Pin<Box<dyn Future<Output = std::io::Result<TlsStream<tokio::net::TcpStream>>> + Send + '_>> {
        Box::pin(self.0.accept(stream))
    }
}
