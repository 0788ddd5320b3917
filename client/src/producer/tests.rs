//! The producer's unit tests: against a broker address that refuses connections, so no broker is needed.

use super::*;
use crate::connection::ClientConfig;
use futures_util::FutureExt;

/// A client whose broker address refuses connections: every produce fails at once as unavailable.
fn unreachable_client() -> Client {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    let addr = listener.local_addr().expect("local addr");
    drop(listener);
    Client::connect_lazy(addr.to_string(), ClientConfig::default()).expect("valid address")
}

/// The defaults with idempotence off: these tests are about batching and failure against a broker that is not
/// there, where an idempotent producer would wait for its producer id first (see the test below).
fn not_idempotent() -> ProducerConfig {
    ProducerConfig { enable_idempotence: false, ..ProducerConfig::default() }
}

#[tokio::test]
async fn an_idempotent_producer_without_a_broker_fails_its_send_within_the_delivery_timeout() {
    let config = ProducerConfig {
        delivery_timeout: Duration::from_millis(300),
        linger: Duration::ZERO,
        ..ProducerConfig::default()
    };
    let producer = Producer::new(unreachable_client(), config).expect("valid config");
    let send = tokio::time::timeout(Duration::from_secs(20), producer.send("t", ProducerRecord::new("v")));
    let refused = send.await.expect("gives up in time").map(|_| ()).expect_err("no producer id");
    assert!(matches!(refused.root(), Error::Unavailable { .. }), "{refused:?}");
    let pipelined = ProducerConfig { max_in_flight_per_partition: 6, ..ProducerConfig::default() };
    let refused = Producer::new(unreachable_client(), pipelined).map(|_| ()).expect_err("idempotence needs one");
    assert!(refused.to_string().contains("enable_idempotence"), "{refused}");
}

impl Producer {
    /// Seeds the partition-count cache, as a DescribeTopic answer would.
    fn assume_topic(&self, topic: &str, partition_count: u32) {
        lock(&self.inner.topics).insert(
            topic.to_owned(),
            TopicEntry {
                batches: TopicBatches::new(partition_count, self.inner.config.batch_bytes),
                senders: Vec::new(),
                described_at_ms: now_ms(),
                sealed: Vec::new(),
            },
        );
    }
}

#[tokio::test]
async fn a_full_buffer_makes_send_wait_and_sends_open_batches_without_their_linger() {
    let producer = lingering_producer(64 << 10, 64 << 10, 1);
    let record = ProducerRecord::new(vec![0u8; 10 << 10]);
    let mut deliveries = Vec::new();
    for _ in 0..6 {
        deliveries.push(producer.send("t", record.clone()).await.expect("room in the buffer"));
    }
    assert_eq!(producer.buffered_bytes(), 6 * record.buffered_bytes());
    tokio::task::yield_now().await;
    assert!(!deliveries[0].is_answered(), "the open batch waits for its linger");

    let blocked = producer.send("t", record.clone());
    tokio::pin!(blocked);
    assert!(blocked.as_mut().now_or_never().is_none(), "a 7th record does not fit and must wait");
    // Waiting expired the open batch's hour-long linger: it is sent (and fails: no broker), which frees its
    // bytes, and the 7th record gets in. No flush is needed.
    let seventh = tokio::time::timeout(Duration::from_secs(20), blocked)
        .await
        .expect("the full buffer drained without waiting out the linger")
        .expect("resumed once the buffer had room");
    for delivery in deliveries {
        assert!(matches!(delivery.await.map_err(|e| e.root().clone()), Err(Error::Unavailable { .. })));
    }
    producer.flush().await;
    assert!(matches!(seventh.await.map_err(|e| e.root().clone()), Err(Error::Unavailable { .. })));
    assert_eq!(producer.buffered_bytes(), 0, "every reserved byte came back");
}

/// A producer whose batches wait an hour for their linger, on a topic of `partitions` partitions: what it
/// enqueues stays in its batches until a full buffer or a flush sends them (to a broker that refuses).
fn lingering_producer(batch_bytes: usize, max_buffered_bytes: usize, partitions: u32) -> Producer {
    let config = ProducerConfig {
        batch_bytes,
        max_buffered_bytes,
        linger: Duration::from_secs(3600),
        delivery_timeout: Duration::from_secs(7200),
        retries: 0,
        ..not_idempotent()
    };
    let producer = Producer::new(unreachable_client(), config).expect("valid config");
    producer.assume_topic("t", partitions);
    producer
}

fn roomy_lingering_producer(partitions: u32) -> Producer {
    lingering_producer(not_idempotent().batch_bytes, 256 << 20, partitions)
}

#[tokio::test]
async fn sending_allocates_per_batch_not_per_record() {
    let producer = roomy_lingering_producer(4);
    let payload = bytes::Bytes::from(vec![b'x'; 100]);
    let record =
        |i: u32| ProducerRecord { value: Some(payload.clone()), partition: Some(i % 4), ..ProducerRecord::default() };
    // Warm up: the first record of each partition starts its sender task and first batch.
    for i in 0..4 {
        drop(producer.send("t", record(i)).await.expect("enqueued"));
    }
    const RECORDS: u32 = 40_000;
    let (_, allocations) = crate::alloc_count::count_allocations(|| {
        for i in 0..RECORDS {
            // With room in the buffer and fresh metadata, `send` completes on its first poll.
            let delivery = producer.send("t", record(i)).now_or_never().expect("no wait").expect("enqueued");
            drop(delivery);
        }
    });
    // 4 MB of records in 1 MiB batches: a handful of batch buffers, acknowledgements and channel blocks.
    assert!(allocations < 100, "{allocations} allocations for {RECORDS} records");
    producer.flush().await;
}

#[tokio::test]
async fn send_batch_allocates_per_call_and_batch_not_per_record() {
    let producer = roomy_lingering_producer(4);
    let records: Vec<ProducerRecord> = (0..1000).map(|_| ProducerRecord::new(vec![b'x'; 100])).collect();
    drop(producer.send_batch("t", &records).now_or_never().expect("no wait").expect("enqueued"));
    const CALLS: usize = 40;
    let (_, allocations) = crate::alloc_count::count_allocations(|| {
        for _ in 0..CALLS {
            let delivery = producer.send_batch("t", &records).now_or_never().expect("no wait").expect("enqueued");
            assert_eq!(delivery.record_count(), records.len());
            drop(delivery);
        }
    });
    // 40,000 records in 1 MiB batches: a run list per call, and a handful of batch buffers, acks and
    // channel blocks.
    assert!(allocations < CALLS as u64 + 100, "{allocations} allocations for {} records", CALLS * records.len());
    producer.flush().await;
}

#[tokio::test]
async fn send_batch_refuses_an_unknown_partition_and_enqueues_nothing() {
    let producer = Producer::new(unreachable_client(), not_idempotent()).expect("valid config");
    producer.assume_topic("t", 2);
    let records = [ProducerRecord::new("a"), ProducerRecord::new("b").with_partition(5), ProducerRecord::new("c")];
    let err = producer.send_batch("t", &records).await.err().expect("no partition 5");
    assert_eq!(err, Error::UnknownPartition { topic: "t".into(), partition: 5 });
    assert_eq!(producer.buffered_bytes(), 0);
    assert_eq!(lock(&producer.inner.topics)["t"].batches.open_partitions().count(), 0, "nothing enqueued");
    let too_large = [ProducerRecord::new("a"), ProducerRecord::new(vec![0u8; 128 << 20])];
    let err = producer.send_batch("t", &too_large).await.err().expect("larger than the buffer");
    assert!(matches!(err, Error::RecordTooLarge { .. }), "{err:?}");
    assert_eq!(lock(&producer.inner.topics)["t"].batches.open_partitions().count(), 0, "nothing enqueued");
}

#[tokio::test]
async fn a_send_batch_larger_than_the_buffer_goes_in_parts() {
    let producer = lingering_producer(16 << 10, 64 << 10, 1);
    // 200 KB of records through a 64 KB buffer: each part waits for the previous one's batches to be answered
    // (here: refused, no broker) and their bytes given back.
    let records: Vec<ProducerRecord> = (0..100).map(|_| ProducerRecord::new(vec![0u8; 2000])).collect();
    let delivery = tokio::time::timeout(Duration::from_secs(20), producer.send_batch("t", &records))
        .await
        .expect("every part found room")
        .expect("enqueued");
    assert_eq!(delivery.record_count(), 100);
    producer.flush().await;
    assert!(matches!(delivery.await.map_err(|e| e.root().clone()), Err(Error::Unavailable { .. })));
    assert_eq!(producer.buffered_bytes(), 0, "every reserved byte came back");
}

#[tokio::test]
async fn a_send_dropped_while_fetching_metadata_gives_its_bytes_back() {
    let producer = Producer::new(unreachable_client(), not_idempotent()).expect("valid config");
    // No cached metadata: the send reserves its bytes, then waits on DescribeTopic (retrying a refused
    // connection with backoff) when it is dropped.
    let mut send = Box::pin(producer.send("t", ProducerRecord::new(vec![0u8; 1000])));
    assert!(send.as_mut().now_or_never().is_none());
    assert!(producer.buffered_bytes() > 0);
    drop(send);
    assert_eq!(producer.buffered_bytes(), 0);
}

#[tokio::test]
async fn records_larger_than_the_buffer_fail_at_once() {
    let config = ProducerConfig { batch_bytes: 1024, max_buffered_bytes: 4096, ..not_idempotent() };
    let producer = Producer::new(unreachable_client(), config).expect("valid config");
    producer.assume_topic("t", 1);
    let err = producer.send("t", ProducerRecord::new(vec![0u8; 5000])).await.err().expect("too large");
    assert!(matches!(err, Error::RecordTooLarge { limit: 4096, setting: "max_buffered_bytes", .. }), "{err:?}");
    assert_eq!(producer.buffered_bytes(), 0);
}

#[tokio::test]
async fn an_unknown_partition_is_refused_and_its_bytes_returned() {
    let producer = Producer::new(unreachable_client(), not_idempotent()).expect("valid config");
    producer.assume_topic("t", 2);
    let err = producer.send("t", ProducerRecord::new("v").with_partition(2)).await.err().expect("no partition 2");
    assert_eq!(err, Error::UnknownPartition { topic: "t".into(), partition: 2 });
    assert_eq!(producer.buffered_bytes(), 0);
}

#[tokio::test]
async fn a_batch_that_fails_for_good_fails_every_later_batch_of_its_partition_unsent() {
    // One batch per record, no retries, a broker that refuses connections: the first batch of each
    // partition fails as unavailable, and everything behind it fails without a call.
    let config = ProducerConfig { batch_bytes: 1024, linger: Duration::ZERO, retries: 0, ..not_idempotent() };
    let producer = Producer::new(unreachable_client(), config).expect("valid config");
    producer.assume_topic("t", 2);
    let mut deliveries = Vec::new();
    for i in 0..6u32 {
        deliveries.push(producer.send("t", ProducerRecord::new(vec![0u8; 1000]).with_partition(i % 2)).await);
    }
    producer.flush().await;
    let mut outcomes = Vec::new();
    for delivery in deliveries {
        outcomes.push(delivery.expect("enqueued").await.expect_err("no broker"));
    }
    for partition in 0..2 {
        let mine: Vec<&Error> = outcomes.iter().skip(partition).step_by(2).collect();
        assert!(matches!(mine[0], Error::Unavailable { .. }), "{:?}", mine[0]);
        for behind in &mine[1..] {
            assert!(
                matches!(behind, Error::EarlierBatchFailed { partition: p, cause, .. }
                    if *p == partition as u32 && matches!(**cause, Error::Unavailable { .. })),
                "{behind:?}"
            );
        }
    }
    // Records sent after the failure was reported fail too: the partition's stream has no gap.
    let late = producer.send("t", ProducerRecord::new("late").with_partition(0)).await.expect("enqueued");
    producer.flush().await;
    assert!(matches!(late.await, Err(Error::EarlierBatchFailed { partition: 0, .. })));
    let metrics = producer.metrics();
    assert_eq!((metrics.batches_failed, metrics.produce_calls), (7, 2), "one call per partition");
    assert_eq!(producer.buffered_bytes(), 0, "every reserved byte came back");
}

#[tokio::test]
async fn a_batch_not_acknowledged_within_its_delivery_timeout_fails_with_the_last_error_it_saw() {
    // Unlimited retries against a broker that is gone: only the delivery timeout ends them.
    let config = ProducerConfig {
        linger: Duration::ZERO,
        retry_backoff: Duration::from_millis(10),
        retry_backoff_max: Duration::from_millis(50),
        delivery_timeout: Duration::from_millis(300),
        ..not_idempotent()
    };
    let producer = Producer::new(unreachable_client(), config).expect("valid config");
    producer.assume_topic("t", 1);
    let first = producer.send("t", ProducerRecord::new("a")).await.expect("enqueued");
    let outcome = tokio::time::timeout(Duration::from_secs(20), first).await.expect("ended by the delivery timeout");
    assert!(matches!(outcome, Err(Error::Unavailable { .. })), "{outcome:?}");
    assert!(producer.metrics().retries > 0, "retried until the timeout");
}

#[tokio::test]
async fn impossible_configs_are_refused() {
    let client = unreachable_client();
    let small = ProducerConfig { batch_bytes: 10, ..not_idempotent() };
    assert!(matches!(Producer::new(client.clone(), small), Err(Error::InvalidUse { .. })));
    let tight = ProducerConfig { max_buffered_bytes: 1024, ..not_idempotent() };
    assert!(matches!(Producer::new(client.clone(), tight), Err(Error::InvalidUse { .. })));
    let gzip = ProducerConfig { compression: Compression::Gzip { level: 12 }, ..not_idempotent() };
    assert!(
        matches!(Producer::new(client.clone(), gzip), Err(Error::InvalidUse { message }) if message.contains("gzip level 12"))
    );
    let no_window = ProducerConfig { max_in_flight_per_partition: 0, ..not_idempotent() };
    assert!(matches!(Producer::new(client.clone(), no_window), Err(Error::InvalidUse { .. })));
    let hasty =
        ProducerConfig { linger: Duration::from_secs(2), delivery_timeout: Duration::from_secs(1), ..not_idempotent() };
    assert!(
        matches!(Producer::new(client, hasty), Err(Error::InvalidUse { message }) if message.contains("delivery_timeout"))
    );
}

/// What a fake broker does with a produce call; [`FakeBroker`] refuses every other call of the `Records`
/// service, and gives out producer id 0.
#[tonic::async_trait]
trait ProduceHandler: Send + Sync + 'static {
    async fn produce(
        &self,
        request: tonic::Request<rill_protocol::v1::ProduceRequest>,
    ) -> std::result::Result<tonic::Response<rill_protocol::v1::ProduceResponse>, tonic::Status>;
}

struct FakeBroker<H>(Arc<H>);

#[tonic::async_trait]
impl<H: ProduceHandler> rill_protocol::v1::records_server::Records for FakeBroker<H> {
    async fn produce(
        &self,
        request: tonic::Request<rill_protocol::v1::ProduceRequest>,
    ) -> std::result::Result<tonic::Response<rill_protocol::v1::ProduceResponse>, tonic::Status> {
        self.0.produce(request).await
    }
    /// A broker without the method, as an older node: the producer falls back to unary calls.
    type ProduceStreamStream =
        tokio_stream::Empty<std::result::Result<rill_protocol::v1::ProduceStreamResponse, tonic::Status>>;
    async fn produce_stream(
        &self,
        _: tonic::Request<tonic::Streaming<rill_protocol::v1::ProduceStreamRequest>>,
    ) -> std::result::Result<tonic::Response<Self::ProduceStreamStream>, tonic::Status> {
        Err(tonic::Status::unimplemented("fake"))
    }
    async fn fetch(
        &self,
        _: tonic::Request<rill_protocol::v1::FetchRequest>,
    ) -> std::result::Result<tonic::Response<rill_protocol::v1::FetchResponse>, tonic::Status> {
        Err(tonic::Status::unimplemented("fake"))
    }
    type SubscribeStream =
        tokio_stream::Empty<std::result::Result<rill_protocol::v1::SubscribeResponse, tonic::Status>>;
    async fn subscribe(
        &self,
        _: tonic::Request<rill_protocol::v1::SubscribeRequest>,
    ) -> std::result::Result<tonic::Response<Self::SubscribeStream>, tonic::Status> {
        Err(tonic::Status::unimplemented("fake"))
    }
    async fn list_offsets(
        &self,
        _: tonic::Request<rill_protocol::v1::ListOffsetsRequest>,
    ) -> std::result::Result<tonic::Response<rill_protocol::v1::ListOffsetsResponse>, tonic::Status> {
        Err(tonic::Status::unimplemented("fake"))
    }
    async fn init_producer_id(
        &self,
        _: tonic::Request<rill_protocol::v1::InitProducerIdRequest>,
    ) -> std::result::Result<tonic::Response<rill_protocol::v1::InitProducerIdResponse>, tonic::Status> {
        Ok(tonic::Response::new(rill_protocol::v1::InitProducerIdResponse { producer_id: 0, producer_epoch: 0 }))
    }
}

/// Serves `handler` as a broker's `Records` service on a free port; its address, and the server task.
async fn serve_fake<H: ProduceHandler>(handler: Arc<H>) -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = tokio::spawn(async move {
        let _ = tonic::transport::Server::builder()
            .add_service(rill_protocol::v1::records_server::RecordsServer::new(FakeBroker(handler)))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
            .await;
    });
    (addr, server)
}

/// A broker that appends every produce call it has read, even one whose caller stopped waiting (as rill's does
/// once a call is in its partition's queue): the first call is appended only after `first_append_delay` (stuck
/// behind a slow disk, say), later ones at once. Remembers the values of the records it appended, in order.
struct LateAppendingBroker {
    first_append_delay: Duration,
    calls: std::sync::atomic::AtomicUsize,
    appended: Arc<Mutex<Vec<String>>>,
}

#[tonic::async_trait]
impl ProduceHandler for LateAppendingBroker {
    async fn produce(
        &self,
        request: tonic::Request<rill_protocol::v1::ProduceRequest>,
    ) -> std::result::Result<tonic::Response<rill_protocol::v1::ProduceResponse>, tonic::Status> {
        use rill_protocol::v1::produce_request::Records;
        let Some(Records::RecordBatch(batch)) = request.into_inner().records else {
            return Err(tonic::Status::invalid_argument("one batch per call in this test"));
        };
        let batch =
            rill_protocol::RecordBatch::new(batch).map_err(|e| tonic::Status::invalid_argument(e.to_string()))?;
        let values: Vec<String> = batch
            .records()
            .map_err(|e| tonic::Status::invalid_argument(e.to_string()))?
            .map(|r| r.map(|r| String::from_utf8_lossy(r.value.unwrap_or_default()).into_owned()))
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| tonic::Status::invalid_argument(e.to_string()))?;
        let is_first = self.calls.fetch_add(1, Ordering::SeqCst) == 0;
        let delay = if is_first { self.first_append_delay } else { Duration::ZERO };
        let appended = Arc::clone(&self.appended);
        // Detached: the append happens whether or not the caller still waits for the answer.
        let append = tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let mut appended = appended.lock().expect("appended");
            let base_offset = appended.len() as i64;
            appended.extend(values);
            base_offset
        });
        let base_offset = append.await.map_err(|e| tonic::Status::internal(e.to_string()))?;
        let answer = rill_protocol::v1::ProduceResponse {
            partition: 0,
            base_offset,
            last_offset: base_offset,
            append_time_ms: 0,
        };
        Ok(tonic::Response::new(answer))
    }
}

#[tokio::test]
async fn a_batch_given_up_on_is_never_overtaken_by_later_ones_even_if_the_broker_appends_it_late() {
    let appended = Arc::new(Mutex::new(Vec::new()));
    let broker = LateAppendingBroker {
        first_append_delay: Duration::from_millis(500),
        calls: Default::default(),
        appended: Arc::clone(&appended),
    };
    let (addr, server) = serve_fake(Arc::new(broker)).await;
    // The first call's answer comes after the request timeout: the producer gives the batch up (no retries).
    let config = ProducerConfig {
        linger: Duration::ZERO,
        request_timeout: Duration::from_millis(100),
        retries: 0,
        ..ProducerConfig::default()
    };
    let client = Client::connect_lazy(addr.to_string(), ClientConfig::default()).expect("valid address");
    let producer = Producer::new(client, config).expect("valid config");
    producer.assume_topic("t", 1);
    let early = producer.send("t", ProducerRecord::new("early")).await.expect("enqueued");
    assert!(matches!(early.await, Err(Error::TimedOut { .. })), "given up after the request timeout");
    let later = producer.send("t", ProducerRecord::new("later")).await.expect("enqueued");
    let later = tokio::time::timeout(Duration::from_secs(20), later).await.expect("answered");
    assert!(matches!(later, Err(Error::EarlierBatchFailed { .. })), "{later:?}");
    // The broker appends the given-up batch after all; nothing sent after it can be ahead of it.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while appended.lock().expect("appended").is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "the late append never happened");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(*appended.lock().expect("appended"), vec!["early".to_owned()]);
    server.abort();
}

/// A record that does not fit its partition's open batch seals that batch and opens the next. The sealed batch
/// must reach the sender before the new batch's linger: a sender with room seals a lingered batch and queues it
/// at once, so the other order sent the younger batch first, and an idempotent producer's broker refused it for
/// the gap in sequences (what `rill bench e2e` hit at 10,000 records/s).
#[tokio::test]
async fn a_batch_sealed_for_being_full_reaches_its_sender_before_the_linger_of_the_next() {
    let config = ProducerConfig {
        batch_bytes: 4 << 10,
        linger: Duration::ZERO,
        enable_idempotence: false,
        ..ProducerConfig::default()
    };
    let producer = Producer::new(unreachable_client(), config).expect("valid config");
    producer.assume_topic("t", 1);
    let (tx, mut commands) = mpsc::unbounded_channel();
    {
        let mut topics = lock(&producer.inner.topics);
        let entry = topics.get_mut("t").expect("assumed");
        entry.batches.set_producer(7, 0);
        entry.senders = vec![Some(tx)];
    }
    for _ in 0..40 {
        drop(producer.send("t", ProducerRecord::new(vec![0u8; 1000])).await.expect("enqueued"));
    }
    let (mut sent, mut lingers, mut next_sequence) = (0u64, 0, 0);
    while let Ok(command) = commands.try_recv() {
        match command {
            Command::Send(batch) => {
                let stamped = rill_protocol::RecordBatch::new(bytes::Bytes::from(batch.bytes)).expect("a valid batch");
                assert_eq!(stamped.header.base_sequence, next_sequence, "batches reach the sender in sequence order");
                next_sequence += batch.record_count as i32;
                sent += 1;
            }
            Command::Linger { id, .. } => {
                assert_eq!(id, sent, "batch {id}'s linger came before every batch sealed ahead of it");
                lingers += 1;
            }
            Command::Flush(_) => {}
        }
    }
    assert!(sent >= 8 && lingers > sent, "the records filled several batches: {sent} sealed, {lingers} lingers");
}

/// A broker that keeps an idempotent producer's sequences as rill's does: a batch is appended only if it starts
/// at the next expected sequence, a batch at or below what is stored is a duplicate (answered with its original
/// offset), anything else is refused as out of order. Each answer comes after `delay`, so calls pile up in
/// flight; the second call's first attempt is refused as unavailable (and not appended), so the calls sent
/// after it reach the broker ahead of its retry.
/// The values appended, in order, and each stored batch's (first sequence, base offset).
type SequencedLog = (Vec<String>, Vec<(i32, i64)>);

struct SequencedBroker {
    delay: Duration,
    calls: std::sync::atomic::AtomicUsize,
    appended: Arc<Mutex<SequencedLog>>,
    out_of_order: std::sync::atomic::AtomicUsize,
}

#[tonic::async_trait]
impl ProduceHandler for SequencedBroker {
    async fn produce(
        &self,
        request: tonic::Request<rill_protocol::v1::ProduceRequest>,
    ) -> std::result::Result<tonic::Response<rill_protocol::v1::ProduceResponse>, tonic::Status> {
        use rill_protocol::v1::produce_request::Records;
        let batches = match request.into_inner().records {
            Some(Records::RecordBatch(batch)) => vec![batch],
            Some(Records::RecordBatches(batches)) => batches.batches,
            _ => return Err(tonic::Status::invalid_argument("record batches only in this test")),
        };
        let call = self.calls.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(self.delay).await;
        if call == 1 {
            return Err(rill_protocol::reason::Reason::ShuttingDown.status("the partition is closing"));
        }
        let mut appended = self.appended.lock().expect("appended");
        let mut first_offset = None;
        // Checked whole before any is stored, as the broker plans a call's batches.
        let mut next = appended.0.len() as i32;
        let mut plan = Vec::new();
        for bytes in &batches {
            let batch = rill_protocol::RecordBatch::new(bytes.clone())
                .map_err(|e| tonic::Status::invalid_argument(e.to_string()))?;
            let sequence = batch.header.base_sequence;
            if let Some((_, offset)) = appended.1.iter().find(|(first, _)| *first == sequence) {
                first_offset.get_or_insert(*offset);
                continue;
            }
            if sequence != next {
                self.out_of_order.fetch_add(1, Ordering::SeqCst);
                return Err(rill_protocol::reason::Reason::OutOfOrderSequence
                    .status(format!("batch starts at sequence {sequence}, the partition expected {next}")));
            }
            let values: Vec<String> = batch
                .records()
                .map_err(|e| tonic::Status::invalid_argument(e.to_string()))?
                .map(|r| r.map(|r| String::from_utf8_lossy(r.value.unwrap_or_default()).into_owned()))
                .collect::<std::result::Result<_, _>>()
                .map_err(|e| tonic::Status::invalid_argument(e.to_string()))?;
            next += values.len() as i32;
            plan.push((sequence, values));
        }
        for (sequence, values) in plan {
            let offset = appended.0.len() as i64;
            first_offset.get_or_insert(offset);
            appended.1.push((sequence, offset));
            appended.0.extend(values);
        }
        let base_offset = first_offset.unwrap_or(0);
        Ok(tonic::Response::new(rill_protocol::v1::ProduceResponse {
            partition: 0,
            base_offset,
            last_offset: base_offset,
            append_time_ms: 0,
        }))
    }
}

#[tokio::test]
async fn pipelined_idempotent_calls_behind_a_retried_one_go_again_after_it_and_keep_the_order() {
    let appended = Arc::new(Mutex::new((Vec::new(), Vec::new())));
    let broker = Arc::new(SequencedBroker {
        delay: Duration::from_millis(30),
        calls: Default::default(),
        appended: Arc::clone(&appended),
        out_of_order: Default::default(),
    });
    let (addr, server) = serve_fake(Arc::clone(&broker)).await;
    let config = ProducerConfig {
        linger: Duration::ZERO,
        max_in_flight_per_partition: MAX_IDEMPOTENT_IN_FLIGHT,
        max_request_bytes: 1,
        retry_backoff: Duration::from_millis(100),
        ..ProducerConfig::default()
    };
    let client = Client::connect_lazy(addr.to_string(), ClientConfig::default()).expect("valid address");
    let producer = Producer::new(client, config).expect("five in flight are allowed with idempotence");
    producer.assume_topic("t", 1);
    // As a DescribeTopic answer would after the producer id: the topic's batches are stamped with it.
    let (producer_id, epoch) = producer.ensure_identity().await.expect("a producer id").expect("idempotent");
    lock(&producer.inner.topics).get_mut("t").expect("assumed").batches.set_producer(producer_id, epoch);
    let mut deliveries = Vec::new();
    for i in 0..40 {
        deliveries.push(producer.send("t", ProducerRecord::new(format!("v{i}"))).await.expect("enqueued"));
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let mut offsets = Vec::new();
    for delivery in deliveries {
        let delivered = tokio::time::timeout(Duration::from_secs(20), delivery).await.expect("answered in time");
        offsets.push(delivered.expect("every record acknowledged").offset);
    }
    let (values, _) = appended.lock().expect("appended").clone();
    let expected: Vec<String> = (0..40).map(|i| format!("v{i}")).collect();
    assert_eq!(values, expected, "stored once each, in the order sent");
    assert_eq!(offsets, (0..40).collect::<Vec<i64>>(), "each record's offset is where it was stored");
    assert!(broker.out_of_order.load(Ordering::SeqCst) > 0, "calls overtook the retried one and were refused");
    assert!(producer.metrics().produce_calls > 2, "the calls were pipelined");
    server.abort();
}
