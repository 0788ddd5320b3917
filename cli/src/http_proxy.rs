//! `rill http-proxy`: Confluent REST Proxy's API v2 served beside a broker (or a cluster), as its client. The
//! same proxy `rill broker --http-proxy-listen` runs inside a broker; this one reaches any broker, over TLS too.

use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use rill_client::BearerToken;
use rill_http_proxy::{HttpProxy, ProxyConfig};

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
    };
    let runtime = crate::runtime::multi_thread(0)?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("--listen {}: cannot listen there", args.listen))?;
        let proxy = HttpProxy::start(listener, config)?;
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(stdout, "rill http proxy listening on http://{}", proxy.local_addr())
            .and_then(|()| stdout.flush());
        drop(stdout);
        let waited = crate::broker::wait_for_signal().await;
        proxy.shutdown();
        waited
    })
}
