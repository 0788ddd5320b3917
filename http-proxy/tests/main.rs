//! The HTTP proxy against an embedded broker over real sockets: HTTP requests in, rill's client underneath,
//! and rill's own producer and consumer on the other side checking what the proxy did.

use std::net::SocketAddr;
use std::time::Duration;

use rill_broker::{Broker, BrokerConfig, BrokerHandle};
use rill_client::{Admin, Client, Consumer, ConsumerConfig, Producer, ProducerConfig, ProducerRecord, TopicConfig};
use rill_http_proxy::{HttpProxy, ProxyConfig};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How long a test waits for something that should happen well within it.
const DEADLINE: Duration = Duration::from_secs(20);
const BINARY: &str = "application/vnd.kafka.binary.v2+json";
const JSON: &str = "application/vnd.kafka.json.v2+json";
const V2: &str = "application/vnd.kafka.v2+json";

struct Setup {
    broker: BrokerHandle,
    proxy: HttpProxy,
    client: Client,
    _dir: tempfile::TempDir,
}

impl Setup {
    async fn start() -> Self {
        Self::start_with(false).await
    }

    /// With `with_registry`, the broker serves its schema registry and the proxy uses it for `avro`.
    async fn start_with(with_registry: bool) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = BrokerConfig::for_tests(dir.path());
        if with_registry {
            config.schema_registry_listen = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
        }
        let broker = Broker::start(config).await.expect("broker starts");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let config = ProxyConfig {
            schema_registry: broker.schema_registry_url(),
            body_read_timeout: Duration::from_secs(1),
            ..ProxyConfig::new(broker.addr().to_string())
        };
        let proxy = HttpProxy::start(listener, config).expect("proxy starts");
        let client = Client::connect(broker.addr().to_string()).await.expect("client connects");
        Self { broker, proxy, client, _dir: dir }
    }

    async fn topic(&self, name: &str, partitions: u32) {
        let admin = Admin::new(self.client.clone());
        admin.create_topic(name, partitions, TopicConfig::default()).await.expect("topic created");
    }

    fn addr(&self) -> SocketAddr {
        self.proxy.local_addr()
    }

    async fn stop(self) {
        self.proxy.shutdown();
        self.broker.shutdown().await;
    }
}

/// One HTTP/1.1 request on its own connection: (status, body as JSON, or Null when empty).
async fn http(addr: SocketAddr, method: &str, path: &str, content_type: &str, body: Option<&Value>) -> (u16, Value) {
    http_with(addr, method, path, &[("content-type", content_type)], body).await
}

async fn http_with(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&Value>,
) -> (u16, Value) {
    let body = body.map(Value::to_string).unwrap_or_default();
    let mut head =
        format!("{method} {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\ncontent-length: {}\r\n", body.len());
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await.expect("proxy reachable");
        stream.write_all(head.as_bytes()).await.expect("request head");
        stream.write_all(body.as_bytes()).await.expect("request body");
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await.expect("answer");
        answer
    };
    let answer = tokio::time::timeout(DEADLINE, exchange).await.expect("answered in time");
    let text = String::from_utf8(answer).expect("UTF-8 answer");
    let (head, body) = text.split_once("\r\n\r\n").expect("a head and a body");
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("a status");
    let body = if body.is_empty() { Value::Null } else { serde_json::from_str(body).expect("a JSON body") };
    (status, body)
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[tokio::test]
async fn records_produced_over_http_land_where_rills_producer_puts_them_and_read_back() {
    let setup = Setup::start().await;
    setup.topic("orders", 4).await;
    let addr = setup.addr();

    let body = json!({"records": [
        {"key": b64(b"customer-7"), "value": b64(b"first")},
        {"key": b64(b"customer-7"), "value": b64(b"second")},
        {"value": b64(b"to partition 3"), "partition": 3},
        {"key": b64(b"customer-9"), "value": null},
    ]});
    let (status, answer) = http(addr, "POST", "/topics/orders", BINARY, Some(&body)).await;
    assert_eq!(status, 200, "{answer}");
    let offsets = answer["offsets"].as_array().expect("offsets");
    assert_eq!(offsets.len(), 4);
    assert!(offsets.iter().all(|o| o["error_code"].is_null()), "{answer}");
    assert_eq!(offsets[0]["partition"], offsets[1]["partition"], "one key, one partition");
    assert_eq!(offsets[1]["offset"].as_i64(), offsets[0]["offset"].as_i64().map(|o| o + 1));
    assert_eq!(offsets[2]["partition"], 3);

    // rill's own producer puts the same key in the same partition (the proxy adds no partitioner of its own).
    let producer = Producer::new(setup.client.clone(), ProducerConfig::default()).expect("producer");
    let delivery = producer.send("orders", ProducerRecord::new("third").with_key("customer-7")).await.expect("send");
    let stored = delivery.await.expect("stored");
    assert_eq!(json!(stored.partition), offsets[0]["partition"]);

    // A consumer instance assigned that partition by hand reads all three records, base64 as produced.
    let create = json!({"name": "reader", "format": "binary", "auto.offset.reset": "earliest"});
    let (status, created) = http(addr, "POST", "/consumers/readers", BINARY, Some(&create)).await;
    assert_eq!(status, 200, "{created}");
    assert_eq!(created["instance_id"], "reader");
    assert!(created["base_uri"].as_str().is_some_and(|u| u.ends_with("/consumers/readers/instances/reader")));
    let base = "/consumers/readers/instances/reader";
    let assignment = json!({"partitions": [{"topic": "orders", "partition": stored.partition}]});
    let (status, _) = http(addr, "POST", &format!("{base}/assignments"), BINARY, Some(&assignment)).await;
    assert_eq!(status, 204);
    // customer-9's tombstone may share the partition: it reads back as a null value.
    let shares = offsets[3]["partition"] == offsets[0]["partition"];
    let records = read_records(addr, base, BINARY, if shares { 4 } else { 3 }).await;
    let of_7: Vec<&Value> = records.iter().filter(|r| r["key"] == b64(b"customer-7")).collect();
    let values: Vec<&str> = of_7.iter().map(|r| r["value"].as_str().expect("a value")).collect();
    assert_eq!(values, [b64(b"first"), b64(b"second"), b64(b"third")]);
    assert!(records.iter().all(|r| r["topic"] == "orders"));
    if shares {
        let tombstone = records.iter().find(|r| r["key"] == b64(b"customer-9")).expect("the tombstone");
        assert!(tombstone["value"].is_null());
    }

    // The partition's offsets, and its description.
    let path = format!("/topics/orders/partitions/{}/offsets", stored.partition);
    let (status, ends) = http(addr, "GET", &path, BINARY, None).await;
    assert_eq!(
        (status, ends["beginning_offset"].as_i64(), ends["end_offset"].as_i64()),
        (200, Some(0), Some(stored.offset + 1))
    );
    let (_, topics) = http(addr, "GET", "/topics", BINARY, None).await;
    assert_eq!(topics, json!(["orders"]));
    let (_, topic) = http(addr, "GET", "/topics/orders", BINARY, None).await;
    assert_eq!(topic["partitions"].as_array().map(Vec::len), Some(4));
    assert_eq!(topic["configs"]["cleanup.policy"], "delete");
    let (_, brokers) = http(addr, "GET", "/brokers", BINARY, None).await;
    assert_eq!(brokers, json!({"brokers": [0]}));

    // The proxy's own /metrics counted what it did.
    let page = metrics_page(addr).await;
    let consumed = format!("rill_http_proxy_records_consumed_total{{format=\"binary\"}} {}", records.len());
    for line in [
        "rill_http_proxy_requests_total{endpoint=\"produce\",status=\"200\"} 1",
        "rill_http_proxy_records_produced_total{format=\"binary\"} 4",
        &consumed,
        "rill_http_proxy_consumer_instances 1",
    ] {
        assert!(page.lines().any(|l| l == line), "{line} missing from\n{page}");
    }
    setup.stop().await;
}

/// Creates a consumer instance of `group` with `settings` and assigns it `partition` of `topic` by hand; its base
/// path.
async fn instance_on(addr: SocketAddr, group: &str, settings: Value, topic: &str, partition: u32) -> String {
    let (status, created) = http(addr, "POST", &format!("/consumers/{group}"), V2, Some(&settings)).await;
    assert_eq!(status, 200, "{created}");
    let name = created["instance_id"].as_str().expect("an instance id");
    let base = format!("/consumers/{group}/instances/{name}");
    let assignment = json!({"partitions": [{"topic": topic, "partition": partition}]});
    let (status, answer) = http(addr, "POST", &format!("{base}/assignments"), V2, Some(&assignment)).await;
    assert_eq!(status, 204, "{answer}");
    base
}

/// Moves an instance's position in `partition` of `topic` to `offset`.
async fn seek(addr: SocketAddr, base: &str, topic: &str, partition: u32, offset: i64) {
    let offsets = json!({"offsets": [{"topic": topic, "partition": partition, "offset": offset}]});
    let (status, answer) = http(addr, "POST", &format!("{base}/positions"), V2, Some(&offsets)).await;
    assert_eq!(status, 204, "{answer}");
}

/// Asks an instance for records until an answer is an error, failing at the deadline: that error's status and
/// body. `check` sees every answer before it.
async fn first_refusal(addr: SocketAddr, base: &str, accept: &str, check: impl Fn(&Value)) -> (u16, Value) {
    let ask = async {
        loop {
            let path = format!("{base}/records?timeout=500");
            let (status, answer) = http_with(addr, "GET", &path, &[("accept", accept)], None).await;
            if status != 200 {
                return (status, answer);
            }
            check(&answer);
        }
    };
    tokio::time::timeout(DEADLINE, ask).await.expect("a refusal within the deadline")
}

/// The proxy's `/metrics` page.
async fn metrics_page(addr: SocketAddr) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream.write_all(b"GET /metrics HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").await.expect("request");
    let mut answer = String::new();
    tokio::time::timeout(DEADLINE, stream.read_to_string(&mut answer)).await.expect("answered").expect("read");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    answer.split_once("\r\n\r\n").map(|(_, body)| body.to_owned()).expect("a body")
}

/// Reads from a consumer instance until `n` records came, failing at the deadline.
async fn read_records(addr: SocketAddr, base: &str, accept: &str, n: usize) -> Vec<Value> {
    let mut records = Vec::new();
    let read = async {
        while records.len() < n {
            let path = format!("{base}/records?timeout=500");
            let (status, answer) = http_with(addr, "GET", &path, &[("accept", accept)], None).await;
            assert_eq!(status, 200, "{answer}");
            records.extend(answer.as_array().expect("an array").iter().cloned());
        }
    };
    if tokio::time::timeout(DEADLINE, read).await.is_err() {
        panic!("only {} of {n} records arrived within {DEADLINE:?}", records.len());
    }
    records
}

#[tokio::test]
async fn a_group_of_instances_splits_a_topic_commits_and_a_new_member_resumes() {
    let setup = Setup::start().await;
    setup.topic("events", 2).await;
    let addr = setup.addr();
    let records: Vec<Value> = (0..20).map(|n| json!({"value": {"n": n}, "partition": n % 2})).collect();
    let (status, answer) = http(addr, "POST", "/topics/events", JSON, Some(&json!({"records": records}))).await;
    assert_eq!(status, 200, "{answer}");

    let create = |name: &str| json!({"name": name, "format": "json", "auto.offset.reset": "earliest", "auto.commit.enable": "false"});
    for name in ["a", "b"] {
        let (status, created) = http(addr, "POST", "/consumers/workers", JSON, Some(&create(name))).await;
        assert_eq!(status, 200, "{created}");
        let path = format!("/consumers/workers/instances/{name}/subscription");
        let (status, _) = http(addr, "POST", &path, JSON, Some(&json!({"topics": ["events"]}))).await;
        assert_eq!(status, 204);
    }
    let (_, subscription) = http(addr, "GET", "/consumers/workers/instances/a/subscription", JSON, None).await;
    assert_eq!(subscription, json!({"topics": ["events"]}));

    // Both members read until the group's twenty records are all seen; each partition goes to one of them.
    let mut seen: Vec<(String, i64)> = Vec::new();
    let mut owner_of = std::collections::HashMap::new();
    let read = async {
        while seen.len() < 20 {
            for name in ["a", "b"] {
                let path = format!("/consumers/workers/instances/{name}/records?timeout=200");
                let (status, answer) = http_with(addr, "GET", &path, &[("accept", JSON)], None).await;
                assert_eq!(status, 200, "{answer}");
                for record in answer.as_array().expect("records") {
                    let partition = record["partition"].as_i64().expect("partition");
                    assert_eq!(*owner_of.entry(partition).or_insert(name), name, "a partition read by one member");
                    assert_eq!(record["value"]["n"].as_i64().map(|n| n % 2), Some(partition));
                    seen.push((name.to_owned(), record["offset"].as_i64().expect("offset")));
                }
            }
        }
    };
    tokio::time::timeout(DEADLINE, read).await.expect("the group reads all twenty records");
    assert_eq!(owner_of.len(), 2);

    // Member "a" commits the last record it processed of one partition as Confluent's proxy does (offset of
    // that record; the group stores the next one), then the whole group leaves.
    let (a_partition, _) = owner_of.iter().find(|(_, name)| **name == "a").map(|(p, n)| (*p, *n)).expect("a read");
    let commit = json!({"offsets": [{"topic": "events", "partition": a_partition, "offset": 4}]});
    let (status, answer) = http(addr, "POST", "/consumers/workers/instances/a/offsets", JSON, Some(&commit)).await;
    assert_eq!(status, 204, "{answer}");
    let asked = json!({"partitions": [{"topic": "events", "partition": a_partition}]});
    let (status, committed) = http(addr, "GET", "/consumers/workers/instances/a/offsets", JSON, Some(&asked)).await;
    assert_eq!(status, 200);
    assert_eq!(committed["offsets"][0]["offset"], 5, "{committed}");
    for name in ["a", "b"] {
        let (status, _) = http(addr, "DELETE", &format!("/consumers/workers/instances/{name}"), JSON, None).await;
        assert_eq!(status, 204);
    }
    let (status, gone) = http(addr, "GET", "/consumers/workers/instances/a/subscription", JSON, None).await;
    assert_eq!((status, gone["error_code"].as_u64()), (404, Some(40403)));

    // A new member of the group resumes that partition at offset 5; the other partition, never committed with
    // auto-commit off, starts over.
    let (status, _) = http(addr, "POST", "/consumers/workers", JSON, Some(&create("c"))).await;
    assert_eq!(status, 200);
    let path = "/consumers/workers/instances/c/subscription";
    http(addr, "POST", path, JSON, Some(&json!({"topics": ["events"]}))).await;
    let again = read_records(addr, "/consumers/workers/instances/c", JSON, 15).await;
    let first_of = |p: i64| again.iter().filter(|r| r["partition"] == p).map(|r| r["offset"].as_i64()).min().flatten();
    assert_eq!(first_of(a_partition), Some(5));
    assert_eq!(first_of(1 - a_partition), Some(0));
    setup.stop().await;
}

#[tokio::test]
async fn an_answer_is_bounded_by_max_bytes_and_a_commit_covers_only_what_was_answered() {
    let setup = Setup::start().await;
    setup.topic("bulk", 1).await;
    let addr = setup.addr();
    let producer = Producer::new(setup.client.clone(), ProducerConfig::default()).expect("producer");
    for n in 0..10 {
        let delivery = producer.send("bulk", ProducerRecord::new(vec![b'x'; 1000]).with_key(format!("k{n}"))).await;
        delivery.expect("send").await.expect("stored");
    }
    let create = json!({"name": "small", "auto.offset.reset": "earliest", "auto.commit.enable": false});
    let base = &instance_on(addr, "bounded", create, "bulk", 0).await;
    // Up to 2 500 bytes: two records of 1 002 bytes (key and value); wait for the fetch to have them all.
    let mut first = Vec::new();
    let read = async {
        while first.is_empty() {
            let path = format!("{base}/records?timeout=500&max_bytes=2500");
            let (status, answer) = http_with(addr, "GET", &path, &[("accept", BINARY)], None).await;
            assert_eq!(status, 200, "{answer}");
            first = answer.as_array().expect("records").clone();
        }
    };
    tokio::time::timeout(DEADLINE, read).await.expect("records arrive");
    assert!(first.len() <= 2, "{} records in 2 500 bytes", first.len());
    // An empty commit stores the position after what was answered, not after what the consumer holds.
    let (status, _) = http(addr, "POST", &format!("{base}/offsets"), BINARY, None).await;
    assert_eq!(status, 204);
    let (_, committed) = http(addr, "GET", &format!("{base}/offsets"), BINARY, None).await;
    assert_eq!(committed["offsets"][0]["offset"].as_u64(), Some(first.len() as u64), "{committed}");
    let rest = read_records(addr, base, BINARY, 10 - first.len()).await;
    assert_eq!(rest[0]["offset"].as_u64(), Some(first.len() as u64), "the next answer starts where the last ended");
    setup.stop().await;
}

#[tokio::test]
async fn a_json_consumer_meeting_bytes_that_are_not_json_says_where_and_loses_nothing() {
    let setup = Setup::start().await;
    setup.topic("mixed", 1).await;
    let addr = setup.addr();
    let producer = Producer::new(setup.client.clone(), ProducerConfig::default()).expect("producer");
    for value in [&b"{\"ok\": 1}"[..], b"\xff\xfe not json", b"{\"ok\": 3}"] {
        producer.send("mixed", ProducerRecord::new(value.to_vec())).await.expect("send").await.expect("stored");
    }
    let settings = json!({"name": "j", "format": "json", "auto.offset.reset": "earliest"});
    let base = &instance_on(addr, "strict", settings, "mixed", 0).await;
    // A binary Accept on a json instance is refused, saying which format it reads.
    let (status, mismatch) = http_with(addr, "GET", &format!("{base}/records"), &[("accept", BINARY)], None).await;
    assert_eq!((status, mismatch["error_code"].as_u64()), (406, Some(40601)));
    let only_the_first = |answer: &Value| {
        assert!(answer.as_array().is_some_and(|records| records.iter().all(|r| r["offset"] == 0)), "{answer}");
    };
    let (status, error) = first_refusal(addr, base, JSON, only_the_first).await;
    assert_eq!(status, 500);
    let message = error["message"].as_str().expect("a message");
    assert!(message.contains("offset 1") && message.contains("not JSON"), "{message}");
    // The failed answer's records were put back: asking again meets the same record, nothing skipped.
    let (status, again) =
        http_with(addr, "GET", &format!("{base}/records?timeout=2000"), &[("accept", JSON)], None).await;
    assert_eq!(status, 500, "{again}");
    assert_eq!(again["message"], error["message"]);
    // Moved past the bad record, the instance reads the one after.
    seek(addr, base, "mixed", 0, 2).await;
    let after = read_records(addr, base, JSON, 1).await;
    assert_eq!((after[0]["offset"].as_i64(), &after[0]["value"]), (Some(2), &json!({"ok": 3})));
    setup.stop().await;
}

#[tokio::test]
async fn bad_requests_get_confluents_error_bodies() {
    let setup = Setup::start().await;
    setup.topic("t", 2).await;
    let addr = setup.addr();
    let produce = |v: Value| json!({"records": [{"value": v}]});
    /// Method, path, content type, body; the status and error code expected.
    type Case = (&'static str, &'static str, &'static str, Option<Value>, u16, u64);
    let cases: Vec<Case> = vec![
        ("POST", "/topics/missing", BINARY, Some(produce(json!("aGk="))), 404, 40401),
        ("POST", "/topics/t/partitions/7", BINARY, Some(produce(json!("aGk="))), 404, 40402),
        ("POST", "/topics/t", BINARY, Some(produce(json!("not base64!"))), 422, 422),
        ("POST", "/topics/t", "application/vnd.kafka.protobuf.v2+json", Some(produce(json!("x"))), 415, 415),
        ("POST", "/topics/t", BINARY, Some(json!({"records": []})), 422, 422),
        ("GET", "/topics/missing", BINARY, None, 404, 40401),
        ("POST", "/consumers/g", BINARY, Some(json!({"format": "jsonschema"})), 422, 42204),
        ("GET", "/consumers/g/instances/nobody/records", BINARY, None, 404, 40403),
        ("PUT", "/topics", BINARY, None, 405, 405),
    ];
    for (method, path, content_type, body, status, code) in cases {
        let (got, answer) = http(addr, method, path, content_type, body.as_ref()).await;
        assert_eq!((got, answer["error_code"].as_u64()), (status, Some(code)), "{method} {path}: {answer}");
        assert!(answer["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    // A body that does not arrive in time is answered 408 (the test's proxy waits 1 s).
    let head = "POST /topics/t HTTP/1.1\r\nhost: x\r\nconnection: close\r\ncontent-length: 100\r\n\r\n{\"rec";
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream.write_all(head.as_bytes()).await.expect("head");
    let mut answer = String::new();
    tokio::time::timeout(DEADLINE, stream.read_to_string(&mut answer)).await.expect("answered").expect("read");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    // A body past the limit is refused before it is read.
    let big = rill_http_proxy::MAX_REQUEST_BODY_BYTES + 1;
    let head = format!("POST /topics/t HTTP/1.1\r\nhost: x\r\nconnection: close\r\ncontent-length: {big}\r\n\r\n");
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream.write_all(head.as_bytes()).await.expect("head");
    let mut answer = String::new();
    tokio::time::timeout(DEADLINE, stream.read_to_string(&mut answer)).await.expect("answered").expect("read");
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    setup.stop().await;
}

#[tokio::test]
async fn records_from_rills_client_read_over_http_and_http_records_read_by_rills_consumer() {
    let setup = Setup::start().await;
    setup.topic("both", 1).await;
    let addr = setup.addr();
    let body = json!({"records": [{"key": "k", "value": {"from": "http", "list": [1, 2]}}]});
    let (status, answer) = http(addr, "POST", "/topics/both/partitions/0", JSON, Some(&body)).await;
    assert_eq!((status, &answer["offsets"][0]["offset"]), (200, &json!(0)), "{answer}");
    let mut consumer = Consumer::new(setup.client.clone(), ConsumerConfig::default()).expect("consumer");
    consumer.assign("both", &[0]).await.expect("assign");
    let read = tokio::time::timeout(DEADLINE, consumer.poll()).await.expect("in time").expect("poll");
    assert_eq!(read[0].key.as_deref(), Some(&b"\"k\""[..]), "a json key is stored as JSON text");
    let stored: Value = serde_json::from_slice(read[0].value.as_deref().expect("value")).expect("JSON");
    assert_eq!(stored, json!({"from": "http", "list": [1, 2]}));
    setup.stop().await;
}

const AVRO: &str = "application/vnd.kafka.avro.v2+json";
const ORDER_V1: &str = r#"{"type": "record", "name": "Order", "namespace": "shop", "fields": [
    {"name": "id", "type": "long"}, {"name": "note", "type": ["null", "string"], "default": null}]}"#;

#[tokio::test]
async fn avro_records_are_registered_framed_as_confluents_serializer_does_and_read_back() {
    let setup = Setup::start_with(true).await;
    setup.topic("orders", 1).await;
    let addr = setup.addr();
    let body = json!({
        "value_schema": ORDER_V1,
        "records": [{"value": {"id": 1, "note": {"string": "gift"}}}, {"value": {"id": 2, "note": null}}],
    });
    let (status, answer) = http(addr, "POST", "/topics/orders", AVRO, Some(&body)).await;
    assert_eq!(status, 200, "{answer}");
    let id = answer["value_schema_id"].as_u64().expect("the registered schema's id");
    assert!(answer["key_schema_id"].is_null());

    // Stored as Confluent's serializers store it: magic 0, the id, the Avro datum (id 1: long 1 zigzag, union
    // branch 1, string "gift").
    let mut consumer = Consumer::new(setup.client.clone(), ConsumerConfig::default()).expect("consumer");
    consumer.assign("orders", &[0]).await.expect("assign");
    let stored = tokio::time::timeout(DEADLINE, consumer.poll()).await.expect("in time").expect("poll");
    let mut expected = vec![0];
    expected.extend_from_slice(&(id as u32).to_be_bytes());
    expected.extend_from_slice(&[2, 2, 8, b'g', b'i', b'f', b't']);
    assert_eq!(stored[0].value.as_deref(), Some(&expected[..]));

    // The next produce names the schema by id; an avro instance reads all three back in Avro's JSON encoding.
    let by_id = json!({"value_schema_id": id, "records": [{"value": {"id": 3}}]});
    let (status, answer) = http(addr, "POST", "/topics/orders", AVRO, Some(&by_id)).await;
    assert_eq!((status, answer["value_schema_id"].as_u64()), (200, Some(id)), "{answer}");
    let create = json!({"name": "a", "format": "avro", "auto.offset.reset": "earliest"});
    let base = &instance_on(addr, "avro-readers", create, "orders", 0).await;
    let records = read_records(addr, base, AVRO, 3).await;
    let values: Vec<&Value> = records.iter().map(|r| &r["value"]).collect();
    assert_eq!(
        values,
        [
            &json!({"id": 1, "note": {"string": "gift"}}),
            &json!({"id": 2, "note": null}),
            &json!({"id": 3, "note": null})
        ]
    );
    setup.stop().await;
}

#[tokio::test]
async fn protobuf_and_jsonschema_records_are_framed_as_confluents_serializers_do_and_read_back() {
    const PROTOBUF: &str = "application/vnd.kafka.protobuf.v2+json";
    const JSONSCHEMA: &str = "application/vnd.kafka.jsonschema.v2+json";
    let setup = Setup::start_with(true).await;
    setup.topic("orders", 1).await;
    setup.topic("payments", 1).await;
    let addr = setup.addr();
    let proto = "syntax = \"proto3\"; package shop; message Order { int64 id = 1; string note = 2; }";
    let body = json!({"value_schema": proto, "records": [{"value": {"id": 1, "note": "gift"}}]});
    let (status, answer) = http(addr, "POST", "/topics/orders", PROTOBUF, Some(&body)).await;
    assert_eq!(status, 200, "{answer}");
    let id = answer["value_schema_id"].as_u64().expect("the registered schema's id") as u32;
    // Magic 0, the id, message indexes [0] as one 0, then the message: field 1 varint 1, field 2 "gift".
    let mut consumer = Consumer::new(setup.client.clone(), ConsumerConfig::default()).expect("consumer");
    consumer.assign("orders", &[0]).await.expect("assign");
    let stored = tokio::time::timeout(DEADLINE, consumer.poll()).await.expect("in time").expect("poll");
    let mut expected = vec![0];
    expected.extend_from_slice(&id.to_be_bytes());
    expected.extend_from_slice(&[0, 0x08, 1, 0x12, 4, b'g', b'i', b'f', b't']);
    assert_eq!(stored[0].value.as_deref(), Some(&expected[..]));
    let by_id = json!({"value_schema_id": id, "records": [{"value": {"id": "2"}}]});
    assert_eq!(http(addr, "POST", "/topics/orders", PROTOBUF, Some(&by_id)).await.0, 200);
    let create = json!({"name": "p", "format": "protobuf", "auto.offset.reset": "earliest"});
    let base = &instance_on(addr, "protobuf-readers", create, "orders", 0).await;
    let values: Vec<Value> =
        read_records(addr, base, PROTOBUF, 2).await.into_iter().map(|r| r["value"].clone()).collect();
    assert_eq!(values, [json!({"id": "1", "note": "gift"}), json!({"id": "2", "note": ""})]);

    let schema = r#"{"type":"object","properties":{"amount":{"type":"number"}},"required":["amount"]}"#;
    let body = json!({"value_schema": schema, "records": [{"value": {"amount": 2.5}}]});
    let (status, answer) = http(addr, "POST", "/topics/payments", JSONSCHEMA, Some(&body)).await;
    assert_eq!(status, 200, "{answer}");
    let json_id = answer["value_schema_id"].as_u64().expect("id");
    let invalid = json!({"value_schema_id": json_id, "records": [{"value": {"amount": "a lot"}}]});
    let (status, answer) = http(addr, "POST", "/topics/payments", JSONSCHEMA, Some(&invalid)).await;
    assert_eq!((status, answer["error_code"].as_u64()), (422, Some(42203)), "{answer}");
    let other_kind = json!({"value_schema_id": id, "records": [{"value": {"amount": 1}}]});
    let (status, answer) = http(addr, "POST", "/topics/payments", JSONSCHEMA, Some(&other_kind)).await;
    assert_eq!((status, answer["error_code"].as_u64()), (422, Some(42205)), "{answer}");
    let create = json!({"name": "j", "format": "jsonschema", "auto.offset.reset": "earliest"});
    let base = &instance_on(addr, "json-readers", create, "payments", 0).await;
    assert_eq!(read_records(addr, base, JSONSCHEMA, 1).await[0]["value"], json!({"amount": 2.5}));
    setup.stop().await;
}

#[tokio::test]
async fn avro_produces_that_cannot_be_encoded_are_refused_saying_why() {
    let setup = Setup::start_with(true).await;
    setup.topic("orders", 1).await;
    let addr = setup.addr();
    let refused = |body: Value| async move { http(addr, "POST", "/topics/orders", AVRO, Some(&body)).await };
    let (status, answer) =
        refused(json!({"value_schema": ORDER_V1, "records": [{"key": "k", "value": {"id": 1}}]})).await;
    assert_eq!((status, answer["error_code"].as_u64()), (422, Some(42201)), "{answer}");
    let (status, answer) = refused(json!({"records": [{"value": {"id": 1}}]})).await;
    assert_eq!((status, answer["error_code"].as_u64()), (422, Some(42202)), "{answer}");
    let (status, answer) = refused(json!({"value_schema": ORDER_V1, "records": [{"value": {"id": "one"}}]})).await;
    assert_eq!((status, answer["error_code"].as_u64()), (422, Some(42203)), "{answer}");
    assert!(answer["message"].as_str().is_some_and(|m| m.contains("$.id")), "{answer}");
    let (status, answer) = refused(json!({"value_schema": "{\"type\": \"nope\"}", "records": [{"value": 1}]})).await;
    assert_eq!((status, answer["error_code"].as_u64()), (422, Some(42205)), "{answer}");
    let (status, answer) = refused(json!({"value_schema_id": 999, "records": [{"value": {"id": 1}}]})).await;
    assert_eq!((status, answer["error_code"].as_u64()), (422, Some(42205)), "{answer}");
    // A change the subject's BACKWARD level refuses is the registry's 409, answered as an invalid schema.
    let (status, _) = refused(json!({"value_schema": ORDER_V1, "records": [{"value": {"id": 1}}]})).await;
    assert_eq!(status, 200);
    let incompatible = r#"{"type": "record", "name": "Order", "namespace": "shop", "fields": [
        {"name": "id", "type": "long"}, {"name": "coupon", "type": "string"}]}"#;
    let (status, answer) =
        refused(json!({"value_schema": incompatible, "records": [{"value": {"id": 1, "coupon": "x"}}]})).await;
    assert_eq!((status, answer["error_code"].as_u64()), (422, Some(42205)), "{answer}");
    assert!(answer["message"].as_str().is_some_and(|m| m.contains("orders-value") && m.contains("409")), "{answer}");
    // An avro instance meeting a record without Confluent's framing says where, as a json one does.
    let producer = Producer::new(setup.client.clone(), ProducerConfig::default()).expect("producer");
    producer.send("orders", ProducerRecord::new("plain text")).await.expect("send").await.expect("stored");
    let settings = json!({"name": "a", "format": "avro", "auto.offset.reset": "earliest"});
    let base = &instance_on(addr, "strict", settings, "orders", 0).await;
    seek(addr, base, "orders", 0, 1).await;
    let (_, error) = first_refusal(addr, base, AVRO, |_| {}).await;
    assert!(
        error["message"].as_str().is_some_and(|m| m.contains("offset 1") && m.contains("no Confluent framing")),
        "{error}"
    );
    setup.stop().await;
}

#[tokio::test]
async fn without_a_registry_avro_is_refused_naming_what_to_run() {
    let setup = Setup::start().await;
    setup.topic("orders", 1).await;
    let addr = setup.addr();
    let (status, answer) = http(
        addr,
        "POST",
        "/topics/orders",
        AVRO,
        Some(&json!({"value_schema": ORDER_V1, "records": [{"value": {"id": 1}}]})),
    )
    .await;
    assert_eq!(status, 415, "{answer}");
    assert!(answer["message"].as_str().is_some_and(|m| m.contains("--schema-registry-listen")));
    let (status, answer) = http(addr, "POST", "/consumers/g", V2, Some(&json!({"format": "avro"}))).await;
    assert_eq!((status, answer["error_code"].as_u64()), (422, Some(42204)), "{answer}");
    setup.stop().await;
}

#[tokio::test]
async fn api_v3_produces_records_with_headers_and_timestamps_one_report_each() {
    let setup = Setup::start().await;
    setup.topic("events", 2).await;
    let addr = setup.addr();
    let (status, clusters) = http(addr, "GET", "/v3/clusters", "application/json", None).await;
    assert_eq!((status, &clusters["data"][0]["cluster_id"]), (200, &json!("rill")), "{clusters}");

    let one = json!({
        "partition_id": 1,
        "headers": [{"name": "trace", "value": "dHJhY2U="}],
        "key": {"type": "STRING", "data": "customer-7"},
        "value": {"type": "JSON", "data": {"paid": true}},
        "timestamp": "2026-12-05T21:00:00.250Z",
    });
    let (status, report) =
        http(addr, "POST", "/v3/clusters/rill/topics/events/records", "application/json", Some(&one)).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(
        (&report["error_code"], &report["partition_id"], &report["offset"], &report["timestamp"]),
        (&json!(200), &json!(1), &json!(0), &json!("2026-12-05T21:00:00.250Z"))
    );
    assert_eq!(report["key"], json!({"type": "STRING", "size": 10}));

    // Several records in one body (Confluent's streaming mode): a report each, in order, the bad one's own.
    let stream = [
        json!({"partition_id": 1, "value": {"type": "BINARY", "data": "aGk="}}),
        json!({"partition_id": 1, "value": {"type": "BINARY", "data": "not base64!"}}),
        json!({"partition_id": 9, "value": {"type": "STRING", "data": "x"}}),
    ]
    .iter()
    .map(Value::to_string)
    .collect::<Vec<_>>()
    .join("\n");
    let head = format!(
        "POST /v3/clusters/rill/topics/events/records HTTP/1.1\r\nhost: x\r\nconnection: close\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        stream.len()
    );
    let mut connection = tokio::net::TcpStream::connect(addr).await.expect("connect");
    connection.write_all(head.as_bytes()).await.expect("head");
    connection.write_all(stream.as_bytes()).await.expect("body");
    let mut answer = String::new();
    tokio::time::timeout(DEADLINE, connection.read_to_string(&mut answer)).await.expect("answered").expect("read");
    let body = answer.split_once("\r\n\r\n").map(|(_, b)| b).expect("a body");
    let reports: Vec<Value> = body.lines().map(|l| serde_json::from_str(l).expect("a report")).collect();
    assert_eq!(reports.len(), 3, "{body}");
    assert_eq!((&reports[0]["error_code"], &reports[0]["offset"]), (&json!(200), &json!(1)));
    assert_eq!(reports[1]["error_code"], 400);
    assert!(reports[1]["message"].as_str().is_some_and(|m| m.starts_with("value.data: not base64")));
    assert_eq!(reports[2]["error_code"], 404, "{}", reports[2]);

    // rill's consumer sees the first record's key, header, timestamp.
    let mut consumer = Consumer::new(setup.client.clone(), ConsumerConfig::default()).expect("consumer");
    consumer.assign("events", &[1]).await.expect("assign");
    let read = tokio::time::timeout(DEADLINE, consumer.poll()).await.expect("in time").expect("poll");
    assert_eq!(read[0].key.as_deref(), Some(&b"customer-7"[..]));
    assert_eq!(read[0].value.as_deref(), Some(&br#"{"paid":true}"#[..]));
    assert_eq!((read[0].headers[0].key.as_str(), read[0].headers[0].value.as_deref()), ("trace", Some(&b"trace"[..])));
    assert_eq!(read[0].timestamp_ms, 1_796_504_400_250);

    // One record refused: the answer is the refusal's status.
    let missing = json!({"value": {"type": "STRING", "data": "x"}});
    let (status, refused) =
        http(addr, "POST", "/v3/clusters/rill/topics/nope/records", "application/json", Some(&missing)).await;
    assert_eq!((status, refused["error_code"].as_u64()), (404, Some(40401)), "{refused}");
    setup.stop().await;
}

#[tokio::test]
async fn a_topic_pattern_subscription_reads_the_matching_topics_and_follows_a_new_one() {
    let setup = Setup::start().await;
    for topic in ["orders-eu", "orders-us", "invoices"] {
        setup.topic(topic, 1).await;
    }
    let addr = setup.addr();
    let producer = Producer::new(setup.client.clone(), ProducerConfig::default()).expect("producer");
    let send = |topic: &'static str| {
        let producer = producer.clone();
        async move { producer.send(topic, ProducerRecord::new(topic)).await.expect("send").await.expect("stored") }
    };
    for topic in ["orders-eu", "orders-us", "invoices"] {
        send(topic).await;
    }
    let settings = json!({"name": "p", "auto.offset.reset": "earliest", "metadata.max.age.ms": 200});
    let (status, _) = http(addr, "POST", "/consumers/patterns", V2, Some(&settings)).await;
    assert_eq!(status, 200);
    let base = "/consumers/patterns/instances/p";
    let (status, answer) =
        http(addr, "POST", &format!("{base}/subscription"), V2, Some(&json!({"topic_pattern": "orders-.*"}))).await;
    assert_eq!(status, 204, "{answer}");
    let (_, subscription) = http(addr, "GET", &format!("{base}/subscription"), V2, None).await;
    assert_eq!(subscription, json!({"topics": ["orders-eu", "orders-us"], "topic_pattern": "orders-.*"}));
    let topics_of = |records: &[Value]| {
        let mut topics: Vec<String> =
            records.iter().map(|r| r["topic"].as_str().expect("a topic").to_owned()).collect();
        topics.sort();
        topics
    };
    assert_eq!(topics_of(&read_records(addr, base, BINARY, 2).await), ["orders-eu", "orders-us"]);

    // A topic created later that matches is joined; one that does not is not.
    setup.topic("orders-asia", 1).await;
    setup.topic("refunds", 1).await;
    send("orders-asia").await;
    send("refunds").await;
    let later = read_records(addr, base, BINARY, 1).await;
    assert_eq!(topics_of(&later), ["orders-asia"]);
    let (_, subscription) = http(addr, "GET", &format!("{base}/subscription"), V2, None).await;
    assert_eq!(subscription["topics"], json!(["orders-asia", "orders-eu", "orders-us"]));

    let (status, refused) =
        http(addr, "POST", &format!("{base}/subscription"), V2, Some(&json!({"topic_pattern": "orders-("}))).await;
    assert_eq!((status, refused["error_code"].as_u64()), (422, Some(422)), "{refused}");
    setup.stop().await;
}
