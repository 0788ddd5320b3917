//! What the HTTP proxy carries: an embedded broker (serving a schema registry) and the proxy in one process,
//! `connections` keep-alive HTTP/1.1 connections each POSTing requests of `records` records of `value_bytes` for
//! `seconds` in `format`, then one consumer instance of that format reading them all back through `records`
//! answers of up to 16 MiB. Prints requests/s, records/s, MB/s of record values and the request latency's p50/p99
//! (produce), and records/s and MB/s (read). Runs on mimalloc, as the `rill` binary does. Not a suite: figures for
//! docs/benchmarks.md.
//!
//! Formats: `binary` (the value's bytes, base64), `json`, `avro`, `protobuf` and `jsonschema` (each value an
//! object with one string field of `value_bytes` characters, under a schema registered by the first request).
//!
//! `cargo run --release -p rill-http-proxy --example http_load [connections] [records] [value_bytes] [seconds]
//! [format]`

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
    let format = args.next().unwrap_or_else(|| "binary".to_owned());
    let text = "x".repeat(value_bytes);
    let (value, schema) = match format.as_str() {
        "binary" => (serde_json::json!(base64::engine::general_purpose::STANDARD.encode(&text)), None),
        "json" => (serde_json::json!({ "note": text }), None),
        "avro" => (
            serde_json::json!({ "note": text }),
            Some(r#"{"type":"record","name":"Load","fields":[{"name":"note","type":"string"}]}"#),
        ),
        "protobuf" => {
            (serde_json::json!({ "note": text }), Some(r#"syntax = "proto3"; message Load { string note = 1; }"#))
        }
        "jsonschema" => (
            serde_json::json!({ "note": text }),
            Some(r#"{"type":"object","properties":{"note":{"type":"string"}},"required":["note"]}"#),
        ),
        other => return Err(format!("format {other:?}: binary, json, avro, protobuf or jsonschema").into()),
    };
    let content_type = format!("application/vnd.kafka.{format}.v2+json");

    let dir = tempfile::tempdir()?;
    let mut config = BrokerConfig::for_tests(dir.path());
    config.schema_registry_listen = Some(std::net::SocketAddr::from(([127, 0, 0, 1], 0)));
    let broker = Broker::start(config).await?;
    let client = Client::connect(broker.addr().to_string()).await?;
    Admin::new(client).create_topic("load", 4, TopicConfig::default()).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let config =
        ProxyConfig { schema_registry: broker.schema_registry_url(), ..ProxyConfig::new(broker.addr().to_string()) };
    let proxy = HttpProxy::start(listener, config)?;
    let addr = proxy.local_addr();

    // Keys are binary (base64) only in the binary format; the others carry none (the load is the value's).
    let body: Vec<serde_json::Value> = (0..records)
        .map(|n| match format.as_str() {
            "binary" => serde_json::json!({"key": base64::engine::general_purpose::STANDARD.encode(format!("k{n}")), "value": value}),
            _ => serde_json::json!({ "value": value }),
        })
        .collect();
    let mut body = serde_json::json!({ "records": body });
    if let Some(schema) = schema {
        // Registered once, then named by id, as a client that keeps its schema's id does.
        let registration = serde_json::json!({"value_schema": schema, "records": [{ "value": value }]});
        let first = post(addr, &content_type, registration).await?;
        body["value_schema_id"] = first["value_schema_id"].clone();
    }
    let body = Bytes::from(body.to_string());
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut producers = tokio::task::JoinSet::new();
    for _ in 0..connections {
        let body = body.clone();
        let content_type = content_type.clone();
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
                    .header("content-type", &content_type)
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
        "produce {format}: {connections} connections x {records} records of {value_bytes} B: {:.0} requests/s, {:.0} records/s, \
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
            .header("accept", &content_type)
            .body(Full::new(Bytes::from(body.to_owned())))?;
        Ok(sender.send_request(request).await?.into_body().collect().await?.to_bytes())
    };
    let create = serde_json::json!({"name": "r", "format": format, "auto.offset.reset": "earliest", "auto.commit.enable": "false"});
    call("POST", "/consumers/load", &create.to_string()).await?;
    let partitions = r#"{"partitions": [{"topic": "load", "partition": 0}, {"topic": "load", "partition": 1},
        {"topic": "load", "partition": 2}, {"topic": "load", "partition": 3}]}"#;
    call("POST", "/consumers/load/instances/r/assignments", partitions).await?;
    let started = Instant::now();
    let mut read = 0usize;
    while read < produced {
        let answer = call("GET", "/consumers/load/instances/r/records?timeout=1000", "").await?;
        let records: Vec<serde_json::Value> = serde_json::from_slice(&answer)
            .map_err(|err| format!("{err}: {}", String::from_utf8_lossy(&answer[..answer.len().min(300)])))?;
        if records.is_empty() && started.elapsed() > Duration::from_secs(60) {
            return Err(format!("read {read} of {produced} records").into());
        }
        read += records.len();
    }
    let took = started.elapsed().as_secs_f64();
    println!(
        "read {format}: one instance, {read} records: {:.0} records/s, {:.1} MB/s of values",
        read as f64 / took,
        (read * value_bytes) as f64 / took / 1e6
    );
    proxy.shutdown();
    broker.shutdown().await;
    Ok(())
}

/// One produce on its own connection, its answer as JSON.
async fn post(
    addr: std::net::SocketAddr,
    content_type: &str,
    body: serde_json::Value,
) -> Result<serde_json::Value, Failure> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    let request = Request::post("/topics/load")
        .header("host", addr.to_string())
        .header("content-type", content_type)
        .body(Full::new(Bytes::from(body.to_string())))?;
    let answer = sender.send_request(request).await?;
    let status = answer.status();
    let answer = answer.into_body().collect().await?.to_bytes();
    if !status.is_success() {
        return Err(format!("registering the schema: {status}: {}", String::from_utf8_lossy(&answer)).into());
    }
    Ok(serde_json::from_slice(&answer)?)
}
