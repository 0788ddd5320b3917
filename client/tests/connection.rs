//! The client's HTTP/2 connection (src/http2.rs): one connection for many concurrent calls, a silent broker
//! detected by keep-alive PINGs, and reconnection after a restart over TLS.

use crate::common;

use std::time::{Duration, Instant};

use common::group::FreezableProxy;
use common::{consume, create_topic, value_str, TestBroker, DEADLINE};
use rill_broker::{Broker, BrokerConfig, TlsConfig};
use rill_client::{
    Admin, Client, ClientConfig, ClientTls, Consumer, ConsumerConfig, Error, Producer, ProducerConfig, ProducerRecord,
};

#[tokio::test]
async fn concurrent_calls_share_one_connection() {
    let broker = TestBroker::start().await;
    let proxy = FreezableProxy::start(broker.addr()).await;
    let client = Client::connect(proxy.addr.to_string()).await.expect("connects through the proxy");
    create_topic(&client, "shared", 1).await;
    let admin = Admin::new(client.clone());
    let calls = (0..64).map(|_| {
        let admin = admin.clone();
        tokio::spawn(async move { admin.list_topics().await })
    });
    for call in futures_util::future::join_all(calls).await {
        let topics = call.expect("the task ends").expect("listed");
        assert_eq!(topics.len(), 1);
    }
    assert_eq!(proxy.connections(), 1, "64 concurrent calls opened more than one connection");
    broker.shutdown().await;
}

#[tokio::test]
async fn a_broker_that_stops_answering_is_dropped_by_keep_alive_and_the_next_call_reconnects() {
    let broker = TestBroker::start().await;
    let proxy = FreezableProxy::start(broker.addr()).await;
    let config = ClientConfig {
        keep_alive_interval: Duration::from_millis(100),
        connect_timeout: Duration::from_millis(500),
        request_timeout: Duration::from_secs(15),
        ..ClientConfig::default()
    };
    let client = Client::connect_with(proxy.addr.to_string(), config).await.expect("connects");
    let admin = Admin::new(client.clone());
    admin.list_topics().await.expect("answered before the freeze");

    proxy.freeze();
    let started = Instant::now();
    let err = admin.list_topics().await.expect_err("no byte moves through a frozen proxy");
    // Well before the 15 s request timeout: the unanswered PING closed the connection under the call.
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}: {err}", started.elapsed());
    assert!(matches!(err, Error::Unavailable { .. }) && err.is_retriable(), "{err:?}");

    proxy.thaw();
    let topics = tokio::time::timeout(DEADLINE, admin.list_topics()).await.expect("in time");
    assert!(topics.expect("answered over a new connection").is_empty());
    assert_eq!(proxy.connections(), 2, "the broken connection was replaced by exactly one");
    broker.shutdown().await;
}

/// A listener that accepts connections and holds them without reading or writing a byte: a frozen broker
/// (SIGSTOP) as its kernel shows it, accepting TCP and buffering the HTTP/2 preface. Returns its address and
/// the task that holds the sockets (abort it to let them go).
async fn silent_listener() -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    (addr, holder)
}

#[tokio::test]
async fn a_node_that_accepts_but_never_answers_fails_the_connect_within_connect_timeout() {
    let (silent, holder) = silent_listener().await;
    let config = ClientConfig {
        connect_timeout: Duration::from_millis(500),
        request_timeout: Duration::from_secs(30),
        ..ClientConfig::default()
    };
    let started = Instant::now();
    let err = Client::connect_with(silent.to_string(), config.clone()).await.expect_err("nothing answers there");
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(450) && waited < Duration::from_secs(5), "took {waited:?}: {err}");
    let Error::Unavailable { message } = &err else { panic!("{err:?}") };
    assert!(
        message.contains(&silent.to_string())
            && message.contains("accepted the connection but did not answer HTTP/2 within 500 ms"),
        "{message}"
    );
    assert!(err.is_retriable());

    // A lazy client's first call fails the same way, within the connect timeout, not the request timeout.
    let lazy = Client::connect_lazy(silent.to_string(), config).expect("valid address");
    let started = Instant::now();
    let err = Admin::new(lazy).list_topics().await.expect_err("nothing answers there");
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}: {err}", started.elapsed());
    assert!(matches!(err, Error::Unavailable { .. }), "{err:?}");
    holder.abort();
}

#[tokio::test]
async fn bootstrap_moves_past_a_silent_first_node_to_one_that_answers() {
    let broker = TestBroker::start().await;
    let (silent, holder) = silent_listener().await;
    let config = ClientConfig {
        connect_timeout: Duration::from_millis(500),
        request_timeout: Duration::from_secs(30),
        ..ClientConfig::default()
    };
    let started = Instant::now();
    let client =
        Client::connect_with(format!("{silent},{}", broker.addr()), config.clone()).await.expect("the second answers");
    assert_eq!(client.addr(), format!("http://{}", broker.addr()));
    create_topic(&client, "past-the-silent-one", 1).await;
    assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());

    // The metadata call of a lazy client, whose first node is the silent one, moves on by itself.
    let lazy = Client::connect_lazy(format!("{silent},{}", broker.addr()), config).expect("valid addresses");
    let started = Instant::now();
    let described = Admin::new(lazy).describe_topic("past-the-silent-one").await.expect("described by the second");
    assert_eq!(described.partitions.len(), 1);
    assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());
    holder.abort();
    broker.shutdown().await;
}

#[tokio::test]
async fn a_new_producer_asks_the_next_bootstrap_node_for_its_id_when_the_one_it_connected_to_stopped() {
    let (first, second) = (TestBroker::start().await, TestBroker::start().await);
    let client = Client::connect(format!("{},{}", first.addr(), second.addr())).await.expect("the first answers");
    assert_eq!(client.addr(), format!("http://{}", first.addr()));
    create_topic(&Client::connect(second.addr().to_string()).await.expect("connects"), "ids", 1).await;
    // Stopped after the client connected to it: its connection ends, and its port refuses.
    first.shutdown().await;
    let config = ProducerConfig { delivery_timeout: Duration::from_secs(5), ..ProducerConfig::default() };
    let producer = Producer::new(client, config).expect("producer");
    let stored = producer.send("ids", ProducerRecord::new("v")).await.expect("enqueued").await;
    assert!(stored.is_ok(), "the id and the record went to the second node: {stored:?}");
    second.shutdown().await;
}

/// A certificate for 127.0.0.1 and its key, written to `dir`; the certificate's PEM is also its CA.
fn self_signed(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf, Vec<u8>) {
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .expect("params")
        .self_signed(&key)
        .expect("certificate");
    let (cert_path, key_path) = (dir.join("broker.pem"), dir.join("broker.key"));
    std::fs::write(&cert_path, cert.pem()).expect("write certificate");
    std::fs::write(&key_path, key.serialize_pem()).expect("write key");
    (cert_path, key_path, cert.pem().into_bytes())
}

#[tokio::test]
async fn a_client_reconnects_over_tls_after_the_broker_restarts() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (cert, key, ca_pem) = self_signed(dir.path());
    let data = dir.path().join("data");
    let tls_config =
        |listen| BrokerConfig { listen, tls: Some(TlsConfig::new(&cert, &key)), ..BrokerConfig::for_tests(&data) };
    let broker = Broker::start(tls_config("127.0.0.1:0".parse().expect("address"))).await.expect("starts");
    let addr = broker.addr();
    let tls = ClientTls { ca_pem: Some(ca_pem), ..ClientTls::default() };
    let config = ClientConfig { tls: Some(tls), ..ClientConfig::default() };
    let client = Client::connect_with(addr.to_string(), config).await.expect("connects over TLS");
    assert!(client.addr().starts_with("https://"), "{}", client.addr());
    create_topic(&client, "secure", 1).await;
    let producer = Producer::new(
        client.clone(),
        ProducerConfig { retry_backoff_max: Duration::from_millis(100), ..ProducerConfig::default() },
    )
    .expect("producer");
    producer.send("secure", ProducerRecord::new("before")).await.expect("enqueued").await.expect("stored");

    broker.shutdown().await;
    let broker = Broker::start(tls_config(addr)).await.expect("restarts on its old address");
    let after = producer.send("secure", ProducerRecord::new("after")).await.expect("enqueued");
    let stored = tokio::time::timeout(DEADLINE, after).await.expect("in time").expect("stored after the restart");
    assert_eq!(stored.offset, 1);

    let mut consumer = Consumer::new(client, ConsumerConfig::default()).expect("consumer");
    consumer.assign("secure", &[0]).await.expect("assign");
    let values: Vec<String> = consume(&mut consumer, 2).await.iter().map(|r| value_str(r).to_owned()).collect();
    assert_eq!(values, vec!["before", "after"]);
    broker.shutdown().await;
}
