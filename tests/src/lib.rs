//! Shared fixtures for the end-to-end tests in `tests/tests/`: an embedded broker on a temporary data dir and
//! 127.0.0.1:0, the generated tonic clients connected to it, and record-batch helpers.
//!
//! Tests talk to the broker only through gRPC, as a user's client would.

use std::time::{Duration, Instant};

use bytes::Bytes;
use rill_broker::{AuthorizationMode, Broker, BrokerConfig, BrokerHandle, SaslMechanism};
use rill_protocol::v1::{
    self, consumer_groups_client::ConsumerGroupsClient, records_client::RecordsClient,
    topic_admin_client::TopicAdminClient, user_admin_client::UserAdminClient, CreateUserRequest,
};
use rill_protocol::{BatchIter, Record, RecordBatchBuilder};
use tonic::transport::Channel;

pub use tempfile::TempDir;

pub mod admin_http;
pub mod group_member;
pub mod kafka_client;

/// Every user [`TestBroker::start_authorizing`] makes has this password.
pub const PASSWORD: &str = "correct horse battery staple";

/// A broker running in-process on its own temporary data dir, with connected clients.
pub struct TestBroker {
    pub handle: Option<BrokerHandle>,
    pub dir: TempDir,
    pub config: BrokerConfig,
    pub admin: TopicAdminClient<Channel>,
    pub records: RecordsClient<Channel>,
    pub groups: ConsumerGroupsClient<Channel>,
}

impl TestBroker {
    pub async fn start() -> TestBroker {
        Self::start_with(|_| {}).await
    }

    /// Starts a broker whose test config `adjust` may change.
    pub async fn start_with(adjust: impl FnOnce(&mut BrokerConfig)) -> TestBroker {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = BrokerConfig::for_tests(dir.path());
        adjust(&mut config);
        Self::start_in(dir, config).await
    }

    /// A broker whose Kafka port takes SASL PLAIN without TLS, with `topics` (name, partitions) and `users`
    /// (password [`PASSWORD`]) made while authorization was off, then restarted with it on and `User:admin` its
    /// super user: the way an operator bootstraps ACLs.
    pub async fn start_authorizing(topics: &[(&str, u32)], users: &[&str]) -> TestBroker {
        let mut broker = Self::start_with(|config| {
            config.auth.kafka_sasl_mechanisms = vec![SaslMechanism::Plain];
            config.auth.sasl_plain_without_tls = true;
        })
        .await;
        for (topic, partitions) in topics {
            broker.create_topic(topic, *partitions).await;
        }
        broker.create_users(users).await;
        broker.config.auth.authorization = AuthorizationMode::On;
        broker.config.auth.super_users = vec!["User:admin".into()];
        broker.restart().await
    }

    /// Creates `users`, each with password [`PASSWORD`].
    pub async fn create_users(&self, users: &[&str]) {
        let url = self.handle.as_ref().expect("running").url();
        let mut admin = UserAdminClient::connect(url).await.expect("connect");
        for name in users {
            let request = CreateUserRequest { name: (*name).into(), password: PASSWORD.into(), ..Default::default() };
            admin.create_user(request).await.expect("user created");
        }
    }

    async fn start_in(dir: TempDir, config: BrokerConfig) -> TestBroker {
        let handle = Broker::start(config.clone()).await.expect("broker starts");
        let channel = Channel::from_shared(handle.url()).expect("url").connect().await.expect("connect");
        TestBroker {
            handle: Some(handle),
            dir,
            config,
            admin: TopicAdminClient::new(channel.clone()),
            records: RecordsClient::new(channel.clone())
                .max_decoding_message_size(64 << 20)
                .max_encoding_message_size(64 << 20),
            groups: ConsumerGroupsClient::new(channel),
        }
    }

    /// Shuts the broker down gracefully and starts a new one on the same data dir and config.
    pub async fn restart(mut self) -> TestBroker {
        if let Some(handle) = self.handle.take() {
            handle.shutdown().await;
        }
        Self::start_in(self.dir, self.config).await
    }

    pub async fn shutdown(mut self) -> TempDir {
        if let Some(handle) = self.handle.take() {
            handle.shutdown().await;
        }
        self.dir
    }

    pub async fn create_topic(&mut self, name: &str, partitions: u32) {
        self.admin
            .create_topic(v1::CreateTopicRequest {
                name: name.into(),
                partition_count: partitions,
                config: None,
                ..Default::default()
            })
            .await
            .expect("create topic");
    }

    /// Produces one pre-encoded batch of `values` to a partition with acks LEADER; returns the base offset.
    pub async fn produce_values(&mut self, topic: &str, partition: u32, values: &[&str]) -> i64 {
        let request = produce_request(topic, Some(partition), batch_of(values, 1_000), v1::Acks::Leader);
        self.records.produce(request).await.expect("produce").into_inner().base_offset
    }

    /// Fetches raw from `offset` without waiting and decodes the values at or after it.
    pub async fn fetch_values(&mut self, topic: &str, partition: u32, offset: i64) -> Vec<(i64, String)> {
        let response =
            self.records.fetch(fetch_request(topic, partition, offset, 0, 0)).await.expect("fetch").into_inner();
        values_of(&response.record_batches).into_iter().filter(|(o, _)| *o >= offset).collect()
    }
}

/// A node that is a cluster of one: a controller quorum of one voter, so the real controller answers. It has
/// topic `orders` (2 partitions), made through the quorum once it formed.
pub async fn cluster_of_one() -> TestBroker {
    cluster_of_one_with(|_| {}).await
}

/// [`cluster_of_one`] with SASL PLAIN and `users` made (password [`PASSWORD`]), restarted with authorization on
/// and `admin` a super user.
pub async fn cluster_of_one_authorizing(users: &[&str]) -> TestBroker {
    let broker = cluster_of_one_with(|config| {
        config.auth.kafka_sasl_mechanisms = vec![SaslMechanism::Plain];
        config.auth.sasl_plain_without_tls = true;
    })
    .await;
    broker.create_users(users).await;
    let mut broker = broker;
    broker.config.auth.authorization = AuthorizationMode::On;
    broker.config.auth.super_users = vec!["User:admin".into()];
    broker.restart().await
}

/// [`cluster_of_one`] with its config changed by `adjust` before it starts.
pub async fn cluster_of_one_with(adjust: impl FnOnce(&mut BrokerConfig)) -> TestBroker {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    let addr = listener.local_addr().expect("local addr");
    drop(listener);
    let mut broker = TestBroker::start_with(|config| {
        config.listen = addr;
        config.node_id = Some(1);
        config.peers = rill_broker::parse_peers(&format!("1@{addr}")).expect("peers");
        adjust(config);
    })
    .await;
    // The quorum forms, then a create goes through it.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let request =
            rill_protocol::v1::CreateTopicRequest { name: "orders".into(), partition_count: 2, ..Default::default() };
        if broker.admin.create_topic(request).await.is_ok() {
            return broker;
        }
        assert!(Instant::now() < deadline, "no controller leader within 30 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

impl TestBroker {
    /// Asserts that the broker still answers a valid request: called after each bad one.
    pub async fn assert_serving(&mut self) {
        self.admin.list_topics(v1::ListTopicsRequest {}).await.expect("the broker still serves after a bad request");
    }

    /// Every value from `offset` to the high watermark, fetching as many times as needed (one fetch stops at
    /// the end of a segment or at max_bytes).
    pub async fn fetch_all_values(&mut self, topic: &str, partition: u32, mut offset: i64) -> Vec<(i64, String)> {
        let mut all = Vec::new();
        loop {
            let response =
                self.records.fetch(fetch_request(topic, partition, offset, 0, 0)).await.expect("fetch").into_inner();
            if response.record_batches.is_empty() {
                return all;
            }
            all.extend(values_of(&response.record_batches).into_iter().filter(|(o, _)| *o >= offset));
            offset = response.next_offset;
        }
    }
}

/// A v2 batch of records with the given values (no keys), timestamps `base_timestamp_ms + i`.
pub fn batch_of(values: &[&str], base_timestamp_ms: i64) -> Bytes {
    let mut builder = RecordBatchBuilder::default();
    for (i, value) in values.iter().enumerate() {
        builder.push(&Record {
            key: None,
            value: Some(value.as_bytes().to_vec()),
            headers: vec![],
            timestamp_ms: base_timestamp_ms + i as i64,
        });
    }
    Bytes::from(builder.build())
}

/// [`batch_of`] from an idempotent producer: `producer_id` at `epoch`, its first record at `sequence`.
pub fn idempotent_batch_of(values: &[&str], producer_id: i64, epoch: i16, sequence: i32) -> Bytes {
    let mut builder = RecordBatchBuilder::default();
    builder.set_producer(rill_protocol::ProducerFields { producer_id, producer_epoch: epoch, base_sequence: sequence });
    for (i, value) in values.iter().enumerate() {
        builder.push(&Record {
            key: None,
            value: Some(value.as_bytes().to_vec()),
            headers: vec![],
            timestamp_ms: 1_000 + i as i64,
        });
    }
    Bytes::from(builder.build())
}

/// A v2 batch of one record with a key.
pub fn keyed_batch(key: &str, value: &str) -> Bytes {
    let mut builder = RecordBatchBuilder::default();
    builder.push(&Record {
        key: Some(key.as_bytes().to_vec()),
        value: Some(value.as_bytes().to_vec()),
        headers: vec![],
        timestamp_ms: 1,
    });
    Bytes::from(builder.build())
}

pub fn produce_request(topic: &str, partition: Option<u32>, batch: Bytes, acks: v1::Acks) -> v1::ProduceRequest {
    v1::ProduceRequest {
        topic: topic.into(),
        partition,
        records: Some(v1::produce_request::Records::RecordBatch(batch)),
        acks: acks as i32,
    }
}

pub fn fetch_request(topic: &str, partition: u32, offset: i64, min_bytes: u32, max_wait_ms: u32) -> v1::FetchRequest {
    v1::FetchRequest {
        topic: topic.into(),
        partition,
        offset,
        max_bytes: 0,
        min_bytes,
        max_wait_ms,
        format: v1::RecordFormat::Raw as i32,
        current_leader_epoch: None,
        isolation: v1::Isolation::Unspecified as i32,
    }
}

/// (offset, value) of every record in concatenated raw batches; control batches (transaction markers) hold none
/// for a reader, as a consumer skips them.
pub fn values_of(batches: &Bytes) -> Vec<(i64, String)> {
    let mut out = Vec::new();
    for batch in BatchIter::new(batches.clone()) {
        let batch = batch.expect("whole batches");
        if batch.header.is_control() {
            continue;
        }
        for record in batch.records().expect("uncompressed") {
            let record = record.expect("record decodes");
            let value = String::from_utf8_lossy(record.value.unwrap_or_default()).into_owned();
            out.push((record.offset, value));
        }
    }
    out
}

/// Asserts a call failed with `code` and a message containing every one of `words`.
#[track_caller]
pub fn assert_status<T: std::fmt::Debug>(result: Result<T, tonic::Status>, code: tonic::Code, words: &[&str]) {
    let status = result.expect_err("the call should fail");
    assert_eq!(status.code(), code, "message: {}", status.message());
    for word in words {
        assert!(status.message().contains(word), "{:?} does not mention {word:?}", status.message());
    }
}
