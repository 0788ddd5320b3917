//! What the HTTP proxy carries: an embedded broker and the proxy in one process, `connections` keep-alive HTTP/1.1
//! connections each POSTing requests of `records` binary records of `value_bytes` for `seconds`, then one
//! consumer instance reading them all back through `records` answers of up to 16 MiB. Prints requests/s,
//! records/s, MB/s of record values and the request latency's p50/p99 (produce), and records/s and MB/s (read).
//! Runs on mimalloc, as the `rill` binary does. Not a suite: figures for docs/benchmarks.md.
//!
//! `cargo run --release -p rill-http-proxy --example http_load [connections] [records] [value_bytes] [seconds]`

use std::time::{Duration, Instant};

use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use rill_broker::{Broker, BrokerConfig};
use rill_client::{Admin, Client, TopicConfig};
use rill_http_proxy::{HttpProxy, ProxyConfig};

type Failure = Box<dyn std::error::Error + Send + Sync>;

// The `rill` binary's allocator (cli/src/allocator.rs), so the figures are those of `rill broker --http-proxy-listen`.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> Result<(), Failure> {
    let mut args = std::env::args().skip(1);
    let connections: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(4);
    let records: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(100);
    let value_bytes: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(1000);
    let seconds: u64 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(5);

    let dir = tempfile::tempdir()?;
    let broker = Broker::start(BrokerConfig::for_tests(dir.path())).await?;
    let client = Client::connect(broker.addr().to_string()).await?;
    Admin::new(client).create_topic("load", 4, TopicConfig::default()).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let proxy = HttpProxy::start(listener, ProxyConfig::new(broker.addr().to_string()))?;
    let addr = proxy.local_addr();

    let value = base64::engine::general_purpose::STANDARD.encode(vec![b'x'; value_bytes]);
    let body: Vec<serde_json::Value> = (0..records).map(|n| serde_json::json!({"key": base64::engine::general_purpose::STANDARD.encode(format!("k{n}")), "value": value})).collect();
    let body = Bytes::from(serde_json::json!({ "records": body }).to_string());
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut producers = tokio::task::JoinSet::new();
    for _ in 0..connections {
        let body = body.clone();
        producers.spawn(async move {
            let stream = tokio::net::TcpStream::connect(addr).await?;
            stream.set_nodelay(true)?;
            let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
            tokio::spawn(connection);
            let mut latencies = Vec::new();
            while Instant::now() < deadline {
                sender.ready().await?;
                let request = Request::post("/topics/load")
                    .header("host", addr.to_string())
                    .header("content-type", "application/vnd.kafka.binary.v2+json")
                    .body(Full::new(body.clone()))?;
                let sent = Instant::now();
                let answer = sender.send_request(request).await?;
                let status = answer.status();
                let answer = answer.into_body().collect().await?.to_bytes();
                if !status.is_success() {
                    return Err(format!("{status}: {}", String::from_utf8_lossy(&answer)).into());
                }
                latencies.push(sent.elapsed());
            }
            Ok::<_, Failure>(latencies)
        });
    }
    let mut latencies = Vec::new();
    while let Some(done) = producers.join_next().await {
        latencies.extend(done??);
    }
    let took = started.elapsed().as_secs_f64();
    latencies.sort();
    let requests = latencies.len();
    let produced = requests * records;
    let at = |q: f64| latencies[((requests as f64 * q) as usize).min(requests - 1)].as_secs_f64() * 1e3;
    println!(
        "produce: {connections} connections x {records} records of {value_bytes} B: {:.0} requests/s, {:.0} records/s, \
         {:.1} MB/s of values; request p50 {:.2} ms, p99 {:.2} ms",
        requests as f64 / took,
        produced as f64 / took,
        (produced * value_bytes) as f64 / took / 1e6,
        at(0.50),
        at(0.99),
    );

    // Read everything back through one consumer instance.
    let stream = tokio::net::TcpStream::connect(addr).await?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    let mut call = async |method: &str, path: &str, body: &str| -> Result<Bytes, Failure> {
        sender.ready().await?;
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header("host", addr.to_string())
            .header("content-type", "application/vnd.kafka.v2+json")
            .header("accept", "application/vnd.kafka.binary.v2+json")
            .body(Full::new(Bytes::from(body.to_owned())))?;
        Ok(sender.send_request(request).await?.into_body().collect().await?.to_bytes())
    };
    call("POST", "/consumers/load", r#"{"name": "r", "auto.offset.reset": "earliest", "auto.commit.enable": "false"}"#)
        .await?;
    let partitions = r#"{"partitions": [{"topic": "load", "partition": 0}, {"topic": "load", "partition": 1},
        {"topic": "load", "partition": 2}, {"topic": "load", "partition": 3}]}"#;
    call("POST", "/consumers/load/instances/r/assignments", partitions).await?;
    let started = Instant::now();
    let mut read = 0usize;
    while read < produced {
        let answer = call("GET", "/consumers/load/instances/r/records?timeout=1000", "").await?;
        let records: Vec<serde_json::Value> = serde_json::from_slice(&answer)?;
        if records.is_empty() && started.elapsed() > Duration::from_secs(60) {
            return Err(format!("read {read} of {produced} records").into());
        }
        read += records.len();
    }
    let took = started.elapsed().as_secs_f64();
    println!(
        "read: one instance, {read} records: {:.0} records/s, {:.1} MB/s of values",
        read as f64 / took,
        (read * value_bytes) as f64 / took / 1e6
    );
    proxy.shutdown();
    broker.shutdown().await;
    Ok(())
}
