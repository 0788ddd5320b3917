//! The rill client library: produce to, consume from and administer a rill broker, async on tokio.
//!
//! Main types:
//! - [`Client`]: one connection (a tonic HTTP/2 channel) to a broker, shared by everything built from it;
//!   cheap to clone, reconnects by itself.
//! - [`Producer`]: `send(topic, record)` enqueues a [`ProducerRecord`] into its partition's batch and returns
//!   a [`DeliveryFuture`] that resolves to the record's [`RecordMetadata`] once the broker acknowledges the
//!   batch; `send_batch(topic, &records)` does the same for a slice of records at the cost of one call
//!   (a [`BatchDelivery`] resolves to where each run of them was stored). Batches are Kafka RecordBatch v2,
//!   encoded client-side, optionally compressed (gzip, snappy, lz4, zstd), sent by one task per partition with retries on
//!   transient failures.
//! - [`Consumer`]: reads assigned partitions from positions it keeps (seek to an offset, the ends, or a
//!   timestamp), as `poll` batches or a `Stream` of [`ConsumedRecord`]s, prefetching each partition's next
//!   fetch; commits positions to a group manually or on an interval. Or, with
//!   [`Consumer::subscribe`], a member of a consumer group: the broker assigns its partitions and `poll`
//!   follows the assignment, reporting each change as a [`RebalanceEvent`].
//! - [`ShareConsumer`]: a member of a share group (Kafka's KIP-932 queues): `poll` returns records locked to it,
//!   each acknowledged on its own (accept, release for another delivery, reject; what is not is accepted, unless
//!   [`AcknowledgementMode::Explicit`] requires each), and the group's members share its partitions record by
//!   record, with Kafka's share consumers too.
//! - [`TraceParent`]: W3C trace context carried in a record's `traceparent` header, set by
//!   [`ProducerRecord::with_trace_parent`] and read back by [`ConsumedRecord::trace_parent`] (docs/observability.md).
//! - [`Admin`]: topics, offsets, committed offsets and consumer groups.
//! - [`ClientTls`]: TLS to the broker, used for an `https://` address (or any address when set in
//!   [`ClientConfig::tls`]): a CA to trust besides the public roots, a client certificate for mutual TLS.
//! - [`UserAdmin`]: the users Kafka clients log in as and their bearer tokens; [`ClientConfig::token`] sends one.
//! - [`Error`]: one error type for everything, in terms of the caller's request.
//!
//! ```no_run
//! # async fn demo() -> rill_client::Result<()> {
//! use rill_client::{Client, Consumer, ConsumerConfig, Producer, ProducerConfig, ProducerRecord, SeekTo};
//! let client = Client::connect("127.0.0.1:9092").await?;
//! let producer = Producer::new(client.clone(), ProducerConfig::default())?;
//! let delivery = producer.send("orders", ProducerRecord::new("hello").with_key("customer-7")).await?;
//! let stored = delivery.await?; // partition, offset, timestamp
//! let mut consumer = Consumer::new(client, ConsumerConfig::default())?;
//! consumer.assign("orders", &[stored.partition]).await?;
//! consumer.seek("orders", stored.partition, SeekTo::Offset(stored.offset)).await?;
//! let records = consumer.poll().await?;
//! # let _ = records; Ok(()) }
//! ```
//!
//! Invariants:
//! - Records sent to one partition by one producer are stored in the order `send` was called (with
//!   `max_in_flight_per_partition` = 1, the default), retries included: a partition has one sender task and
//!   one produce call in flight, and a call's batches (those that waited for the one before) are appended by
//!   the broker in order at consecutive offsets.
//! - With `enable_idempotence` (the default) each record is stored once per send: every batch carries the
//!   producer's id and per-partition sequence, stamped when it is sealed, and the broker answers a batch sent
//!   again with the offsets it got the first time.
//! - Memory is bounded: the producer holds at most `max_buffered_bytes` of unacknowledged records (`send`
//!   waits for room); the consumer holds at most one fetch per assigned partition plus the records not yet
//!   handed out.
//! - No lock is held across an `.await`; the producer's one lock covers partition choice and encoding.
//! - Record bytes are encoded straight into the batch buffer (no per-record allocation in the producer), and
//!   consumed keys and values are `Bytes` slices of the fetched (or decompressed) buffer.
//! - On a cluster, produce and fetch go to each partition's leader and group calls to each group's coordinator,
//!   learned from the broker's typed `not-leader` and `not-coordinator` refusals, never from message text.
//! - A consumer commits only positions past records it has handed to the application (at-least-once); a
//!   subscribed consumer commits a partition's position before it acknowledges giving the partition up.
//! - No gap in one producer's records in a partition: a batch that failed for good (the broker refused it, or
//!   it was not acknowledged within `delivery_timeout`) fails every later batch of its partition, unsent.
//! - Requests the broker rejected as wrong (INVALID_ARGUMENT, NOT_FOUND, OUT_OF_RANGE, size and count limits)
//!   are never retried; gRPC statuses become [`Error`]s in one place (`error.rs`), by code and by the broker's
//!   machine-readable reason, never by message text.
//! - A client that reached its broker over TLS reaches every node it learns of (leaders, coordinators) over TLS.
//! - This crate knows nothing of the broker's internals: it speaks `rill_protocol::v1` and the batch codec.

mod accumulator;
mod acl_admin;
mod admin;
#[cfg(test)]
mod alloc_count;
mod client_metrics_admin;
mod cluster_admin;
mod compression;
mod connection;
mod consumer;
mod coordinators;
mod decode;
mod delete_records;
mod delivery;
mod error;
mod http2;
mod leaders;
mod membership;
mod partition_wait;
mod produce_stream;
mod producer;
mod quota_admin;
mod record;
mod records_call;
mod sender;
mod share_consumer;
mod subscription;
mod tls;
mod user_admin;

pub use acl_admin::{Acl, AclAdmin, AclFilter};
pub use admin::{
    Admin, AlterTopicConfigRequest, AlterTopicDefaultsRequest, AlterTopicDefaultsResponse, CommittedOffset,
    DeleteRecordsResult, DurabilityPolicy, GroupConfigEntry, GroupDescription, GroupKind, GroupState, GroupSummary,
    MemberDescription, OffsetSpec, PartitionInfo, PartitionLag, PartitionOffset, TopicConfig, TopicDefault,
    TopicDescription, TopicInfo, TopicReplication,
};
pub use client_metrics_admin::{AlterClientMetricsRequest, ClientMetricsAdmin, ClientMetricsSubscription};
pub use cluster_admin::{
    ClusterAdmin, ClusterDescription, ClusterNode, ClusterNodeState, LeaderElected, LeaderNotElected, LeadersElected,
    NodeAdded, NodeRemoved, PartitionReassigned, PartitionReassignment, ReplicaMove, ReplicasRebalanced, ThrottleSet,
};
pub use compression::Compression;
pub use connection::{BearerToken, Client, ClientConfig, ClientId, TokenSource};
pub use consumer::{Consumer, ConsumerConfig, Isolation, OffsetReset, RebalanceEvent, SeekTo};
pub use delivery::{BatchDelivery, DeliveredRun, DeliveryFuture};
pub use error::{Error, Result};
pub use membership::GroupAssignor;
pub use producer::{Acks, Producer, ProducerConfig, ProducerMetrics, MAX_IDEMPOTENT_IN_FLIGHT};
pub use quota_admin::{AlterQuotasRequest, ClientQuota, QuotaAdmin, QuotaEntity};
pub use record::{ConsumedRecord, Header, ProducerRecord, RecordMetadata};
pub use rill_protocol::trace_context::{TraceParent, TraceParentError};
pub use share_consumer::{
    AcknowledgeFailure, AcknowledgeType, AcknowledgementMode, ShareConsumer, ShareConsumerConfig, ShareRecord,
};
pub use tls::{ClientIdentity, ClientTls};
pub use user_admin::{UserAdmin, UserInfo};
