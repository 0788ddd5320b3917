//! [`ShareConsumer`]: a member of a share group (Kafka's KIP-932 queues) over rill's `ShareConsume` stream
//! (`proto/rill/v1/rill.proto`, "Share groups"). The group's members read its topics together, record by record:
//! each record `poll` returns is locked to this member until it is acknowledged, or its lock runs out, or the
//! member leaves; then it goes to any member again, with its delivery count raised.
//!
//! Acknowledgement: a record is acknowledged [`AcknowledgeType::Accept`] (done), `Release` (deliver it again)
//! or `Reject` (never again) with [`ShareConsumer::acknowledge`]; every record `poll` returned and not
//! acknowledged otherwise is accepted by the next `poll`, [`ShareConsumer::commit`] or
//! [`ShareConsumer::close`] (Kafka's implicit acknowledgement). With [`AcknowledgementMode::Explicit`] (Kafka's
//! `share.acknowledgement.mode=explicit`) nothing is accepted for the application: `poll` refuses to run while a
//! record the last one returned is not acknowledged, `commit` sends only what was acknowledged, and `close` leaves
//! the group with the rest, which goes back to the group (delivered again). Acknowledgements travel with the next fetch, or
//! alone with `commit`; the broker stores them (fsynced) before it answers. Dropping the consumer without `close`
//! leaves the group at once and releases what it holds, unacknowledged: those records are delivered again
//! (at-least-once).
//!
//! The stream is the membership: the broker keeps the member while it is open, so a slow `poll` loop does not
//! lose it (a record held past its lock does go back). A stream that breaks (a broker restart) is joined again
//! by the next `poll`, as a new member; what the old one held comes back to the group.
//!
//! On a cluster the stream is opened at the group's coordinator (a node that is not refuses it `not-coordinator`,
//! naming the coordinator, which the consumer follows), and the coordinator reads each partition at its leader
//! for the member. One `poll` may then return up to `max_records` from each node leading some of the member's
//! partitions: a read still waiting at one when another delivered is not cancelled, and its records come with
//! the next `poll`.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use rill_protocol::v1::{self, share_request, share_response};
use tokio::sync::mpsc;

use crate::connection::Client;
use crate::coordinators::call_coordinator;
use crate::decode::{decode_batches, DecodeLimits};
use crate::error::{Error, RequestContext, Result};
use crate::record::ConsumedRecord;

/// How a record is acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcknowledgeType {
    /// Processed: never delivered again.
    Accept,
    /// Delivered again, to any member of the group.
    Release,
    /// Unprocessable: never delivered again.
    Reject,
}

impl AcknowledgeType {
    fn to_wire(self) -> v1::AcknowledgeType {
        match self {
            AcknowledgeType::Accept => v1::AcknowledgeType::Accept,
            AcknowledgeType::Release => v1::AcknowledgeType::Release,
            AcknowledgeType::Reject => v1::AcknowledgeType::Reject,
        }
    }
}

/// A record a share group handed this member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareRecord {
    pub record: ConsumedRecord,
    /// 1 on its first delivery; more when a member released it, or held it past its lock, or left with it.
    pub delivery_count: u32,
}

/// Whether records `poll` returned and the application did not acknowledge are accepted for it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum AcknowledgementMode {
    /// Accepted by the next `poll`, `commit` or `close` (Kafka's default).
    #[default]
    Implicit,
    /// Never: each must be acknowledged before the next `poll` (Kafka's `share.acknowledgement.mode=explicit`), so
    /// a record the application forgot is never taken as processed.
    Explicit,
}

#[derive(Debug, Clone)]
pub struct ShareConsumerConfig {
    /// Whether unacknowledged records are accepted for the application.
    pub acknowledgement_mode: AcknowledgementMode,
    /// Records one `poll` returns at most (Kafka's `max.poll.records`).
    pub max_records: u32,
    /// Bytes of batches one fetch returns at most; 0: the broker's default.
    pub max_bytes: u32,
    /// Longest a `poll` waits for a record.
    pub max_wait: Duration,
    /// Check each fetched batch's CRC before decoding it.
    pub check_crcs: bool,
    /// Largest size a compressed batch may decompress to.
    pub max_decompressed_bytes: usize,
    /// Wait before joining again after the stream broke.
    pub retry_backoff: Duration,
}

impl Default for ShareConsumerConfig {
    fn default() -> Self {
        Self {
            acknowledgement_mode: AcknowledgementMode::Implicit,
            max_records: 500,
            max_bytes: 0,
            max_wait: Duration::from_millis(500),
            check_crcs: true,
            max_decompressed_bytes: 64 << 20,
            retry_backoff: Duration::from_millis(100),
        }
    }
}

/// An acknowledgement the broker did not apply: the records it named are delivered again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcknowledgeFailure {
    pub topic: String,
    pub partition: u32,
    /// Why (the record's lock ran out, so it is no longer this member's; or it was not stored).
    pub message: String,
}

type Key = (Arc<str>, u32);

/// A partition's records delivered and not acknowledged yet.
#[derive(Default)]
struct Outstanding {
    /// The acquired ranges, first and last offset.
    ranges: Vec<(i64, i64)>,
    /// Offsets of the ranges that held a record (the others are gaps: control batches, compacted records).
    delivered: BTreeSet<i64>,
    /// Acknowledgements the application made; the rest of `delivered` is accepted.
    chosen: BTreeMap<i64, AcknowledgeType>,
}

/// The open stream of one membership.
struct Membership {
    member_id: String,
    requests: mpsc::Sender<v1::ShareRequest>,
    responses: tonic::Streaming<v1::ShareResponse>,
}

pub struct ShareConsumer {
    client: Client,
    group: String,
    topics: Vec<String>,
    config: ShareConsumerConfig,
    membership: Option<Membership>,
    outstanding: BTreeMap<Key, Outstanding>,
    failures: Vec<AcknowledgeFailure>,
    topic_names: BTreeMap<String, Arc<str>>,
}

impl ShareConsumer {
    /// Joins share group `group` reading `topics`. Refused for a consumer group's id, a bad group id, no topics,
    /// or (with authorization on) without READ on the group and the topics.
    pub async fn join(client: Client, group: &str, topics: &[&str], config: ShareConsumerConfig) -> Result<Self> {
        if topics.is_empty() {
            return Err(Error::InvalidUse { message: "a share consumer reads one topic or more".into() });
        }
        let mut consumer = ShareConsumer {
            client,
            group: group.to_owned(),
            topics: topics.iter().map(|t| (*t).to_owned()).collect(),
            config,
            membership: None,
            outstanding: BTreeMap::new(),
            failures: Vec::new(),
            topic_names: BTreeMap::new(),
        };
        consumer.membership = Some(consumer.open().await?);
        Ok(consumer)
    }

    /// The member id the broker gave this consumer's current membership.
    pub fn member_id(&self) -> Option<&str> {
        self.membership.as_ref().map(|m| m.member_id.as_str())
    }

    pub fn group(&self) -> &str {
        &self.group
    }

    /// Opens the membership's stream at the group's coordinator (on a cluster, the node that refuses it names
    /// the coordinator, and it is opened there).
    async fn open(&self) -> Result<Membership> {
        let join = v1::ShareJoin { group: self.group.clone(), topics: self.topics.clone() };
        let mut sent = None;
        let timeout = self.client.config().request_timeout;
        let mut responses =
            call_coordinator(&self.client, &self.group, RequestContext::default(), timeout, |mut groups| {
                let (requests, outgoing) = mpsc::channel(2);
                let join = v1::ShareRequest { kind: Some(share_request::Kind::Join(join.clone())) };
                // Room for two: the join cannot be refused by a full channel.
                let _ = requests.try_send(join);
                sent = Some(requests);
                let stream =
                    futures_util::stream::unfold(outgoing, |mut rx| async move { rx.recv().await.map(|m| (m, rx)) });
                async move { groups.share_consume(stream).await }
            })
            .await?;
        let requests =
            sent.ok_or_else(|| Error::Unavailable { message: "the share stream was never opened".into() })?;
        match responses.message().await {
            Ok(Some(v1::ShareResponse { kind: Some(share_response::Kind::Joined(joined)) })) => {
                tracing::debug!(group = %self.group, member = %joined.member_id, "joined the share group");
                Ok(Membership { member_id: joined.member_id, requests, responses })
            }
            Ok(_) => Err(Error::Unavailable { message: "the broker ended the share stream before the join".into() }),
            Err(status) => Err(Error::from_status(&status, RequestContext::default())),
        }
    }

    /// Acknowledges `record` (one `poll` returned) as `kind`; sent with the next `poll` or `commit`. A record
    /// acknowledged already, or not this consumer's, is `Error::InvalidUse`.
    pub fn acknowledge(&mut self, record: &ShareRecord, kind: AcknowledgeType) -> Result<()> {
        let key = (Arc::clone(&record.record.topic), record.record.partition);
        let offset = record.record.offset;
        match self.outstanding.get_mut(&key) {
            Some(outstanding) if outstanding.delivered.contains(&offset) => {
                outstanding.chosen.insert(offset, kind);
                Ok(())
            }
            _ => Err(Error::InvalidUse {
                message: format!(
                    "offset {offset} of {} partition {} is not a record this consumer holds unacknowledged",
                    record.record.topic, record.record.partition
                ),
            }),
        }
    }

    /// The records the group hands this member next, waiting up to `max_wait` for one (empty when none came).
    /// First acknowledges what the previous `poll` returned: as [`ShareConsumer::acknowledge`] said, or
    /// accepted.
    pub async fn poll(&mut self) -> Result<Vec<ShareRecord>> {
        self.poll_at_most(self.config.max_records).await
    }

    /// [`ShareConsumer::poll`] for at most `max_records` records (at least 1): a member that wants only a few
    /// more acquires no more than those, so the rest are not held from the group's other members, nor delivered
    /// once more than they need.
    pub async fn poll_at_most(&mut self, max_records: u32) -> Result<Vec<ShareRecord>> {
        if self.config.acknowledgement_mode == AcknowledgementMode::Explicit {
            let unacknowledged = self.unacknowledged();
            if unacknowledged > 0 {
                return Err(Error::InvalidUse {
                    message: format!(
                        "{unacknowledged} records the last poll returned are not acknowledged: in explicit \
                         acknowledgement mode acknowledge each (accept, release or reject) before the next poll"
                    ),
                });
            }
        }
        let acknowledgements = self.take_acknowledgements();
        let fetch = v1::ShareFetch {
            max_records: max_records.max(1),
            max_bytes: self.config.max_bytes,
            max_wait_ms: u32::try_from(self.config.max_wait.as_millis()).unwrap_or(u32::MAX),
            acknowledgements,
        };
        let answer = match self.exchange(share_request::Kind::Fetch(fetch)).await? {
            Some(share_response::Kind::Records(records)) => records,
            Some(_) => return Err(Error::Unavailable { message: "the broker answered a fetch out of turn".into() }),
            None => return Ok(Vec::new()),
        };
        self.note_failures(answer.acknowledgements);
        let mut out = Vec::new();
        for partition in answer.partitions {
            if !partition.error.is_empty() {
                tracing::warn!(group = %self.group, topic = %partition.topic, partition = partition.partition,
                    error = %partition.error, "a share partition could not be read");
                continue;
            }
            self.decode(partition, &mut out)?;
        }
        Ok(out)
    }

    /// Sends the acknowledgements of what `poll` returned (records not acknowledged otherwise: accepted) now,
    /// and waits until the broker stored them. Returns those it refused.
    pub async fn commit(&mut self) -> Result<Vec<AcknowledgeFailure>> {
        let acknowledgements = self.take_acknowledgements();
        if !acknowledgements.is_empty() {
            let acknowledge = v1::ShareAcknowledge { acknowledgements };
            match self.exchange(share_request::Kind::Acknowledge(acknowledge)).await? {
                Some(share_response::Kind::Acknowledged(acknowledged)) => {
                    self.note_failures(acknowledged.acknowledgements)
                }
                Some(_) => {
                    return Err(Error::Unavailable {
                        message: "the broker answered an acknowledgement out of turn".into(),
                    })
                }
                None => {}
            }
        }
        Ok(std::mem::take(&mut self.failures))
    }

    /// Acknowledgements the broker refused since the last `commit` (or this call), taken.
    pub fn take_acknowledge_failures(&mut self) -> Vec<AcknowledgeFailure> {
        std::mem::take(&mut self.failures)
    }

    /// Commits, then leaves the group. Returns the acknowledgements the broker refused.
    pub async fn close(mut self) -> Result<Vec<AcknowledgeFailure>> {
        let failures = self.commit().await?;
        if let Some(membership) = self.membership.take() {
            // Closing the request side is the leave; the broker ends the stream once it removed the member.
            let Membership { requests, mut responses, .. } = membership;
            drop(requests);
            let _ = tokio::time::timeout(Duration::from_secs(5), async {
                while let Ok(Some(_)) = responses.message().await {}
            })
            .await;
        }
        Ok(failures)
    }

    /// Sends one request and waits for its answer, joining again first if the stream is gone. `None`: the
    /// stream broke, retriably; this member left the group with it, and the next call joins again.
    async fn exchange(&mut self, kind: share_request::Kind) -> Result<Option<share_response::Kind>> {
        if self.membership.is_none() {
            tokio::time::sleep(self.config.retry_backoff).await;
            self.membership = Some(self.open().await?);
        }
        let Some(membership) = self.membership.as_mut() else { return Ok(None) };
        let sent = membership.requests.send(v1::ShareRequest { kind: Some(kind) }).await.is_ok();
        let answer = if sent { membership.responses.message().await } else { Ok(None) };
        match answer {
            Ok(Some(response)) => Ok(response.kind),
            Ok(None) => self.lost("the broker ended the share stream".into()),
            Err(status) => {
                let error = Error::from_status(&status, RequestContext::default());
                if error.is_retriable() || matches!(status.code(), tonic::Code::Unknown | tonic::Code::Cancelled) {
                    self.lost(error.to_string())
                } else {
                    self.membership = None;
                    self.outstanding.clear();
                    Err(error)
                }
            }
        }
    }

    /// The membership ended under the consumer: what it held goes back to the group, unacknowledged.
    fn lost(&mut self, reason: String) -> Result<Option<share_response::Kind>> {
        tracing::info!(group = %self.group, %reason, "share group membership lost; joining again");
        self.membership = None;
        self.outstanding.clear();
        Ok(None)
    }

    /// Records `poll` returned that the application has not acknowledged.
    fn unacknowledged(&self) -> usize {
        self.outstanding
            .values()
            .map(|o| o.delivered.iter().filter(|offset| !o.chosen.contains_key(offset)).count())
            .sum()
    }

    /// Every outstanding record's acknowledgement, runs of one type as one range. In explicit mode a record the
    /// application did not acknowledge is not sent: it stays outstanding (each as a range of its own).
    fn take_acknowledgements(&mut self) -> Vec<v1::ShareAcknowledgement> {
        let is_explicit = self.config.acknowledgement_mode == AcknowledgementMode::Explicit;
        let mut out = Vec::new();
        let mut kept = BTreeMap::new();
        for ((topic, partition), outstanding) in std::mem::take(&mut self.outstanding) {
            let mut left = Outstanding::default();
            for &(first, last) in &outstanding.ranges {
                let mut run: Option<(i64, i64, v1::AcknowledgeType)> = None;
                for offset in first..=last {
                    let kind = match outstanding.chosen.get(&offset) {
                        Some(kind) => kind.to_wire(),
                        None if outstanding.delivered.contains(&offset) && is_explicit => {
                            if let Some(done) = run.take() {
                                out.push(acknowledgement(&topic, partition, done));
                            }
                            left.ranges.push((offset, offset));
                            left.delivered.insert(offset);
                            continue;
                        }
                        None if outstanding.delivered.contains(&offset) => v1::AcknowledgeType::Accept,
                        None => v1::AcknowledgeType::Gap,
                    };
                    run = match run {
                        Some((start, end, same)) if same == kind && end + 1 == offset => Some((start, offset, same)),
                        Some(done) => {
                            out.push(acknowledgement(&topic, partition, done));
                            Some((offset, offset, kind))
                        }
                        None => Some((offset, offset, kind)),
                    };
                }
                if let Some(done) = run {
                    out.push(acknowledgement(&topic, partition, done));
                }
            }
            if !left.delivered.is_empty() {
                kept.insert((topic, partition), left);
            }
        }
        self.outstanding = kept;
        out
    }

    fn note_failures(&mut self, results: Vec<v1::ShareAcknowledgeResult>) {
        for result in results.into_iter().filter(|r| !r.error.is_empty()) {
            tracing::warn!(group = %self.group, topic = %result.topic, partition = result.partition,
                error = %result.error, "the broker refused an acknowledgement; its records are delivered again");
            self.failures.push(AcknowledgeFailure {
                topic: result.topic,
                partition: result.partition,
                message: result.error,
            });
        }
    }

    /// The acquired records of one partition's answer, onto `out`; the records outside its ranges are skipped.
    fn decode(&mut self, partition: v1::SharePartitionRecords, out: &mut Vec<ShareRecord>) -> Result<()> {
        let Some(from) = partition.acquired.iter().map(|a| a.first_offset).min() else { return Ok(()) };
        let topic = Arc::clone(
            self.topic_names.entry(partition.topic.clone()).or_insert_with(|| Arc::from(partition.topic.as_str())),
        );
        let limits = DecodeLimits {
            check_crcs: self.config.check_crcs,
            max_decompressed_bytes: self.config.max_decompressed_bytes,
        };
        let mut records = VecDeque::new();
        let decoded = decode_batches(&topic, partition.partition, from, partition.record_batches, limits, &mut records);
        let outstanding = self.outstanding.entry((Arc::clone(&topic), partition.partition)).or_default();
        outstanding.ranges.extend(partition.acquired.iter().map(|a| (a.first_offset, a.last_offset)));
        for record in records {
            let Some(range) =
                partition.acquired.iter().find(|a| a.first_offset <= record.offset && record.offset <= a.last_offset)
            else {
                continue;
            };
            outstanding.delivered.insert(record.offset);
            out.push(ShareRecord { record, delivery_count: range.delivery_count });
        }
        // A batch that cannot be decoded: its acquired records stay outstanding as gaps, acknowledged as such,
        // and the error says which it was.
        decoded.map(|_| ())
    }
}

fn acknowledgement(
    topic: &str,
    partition: u32,
    (first, last, kind): (i64, i64, v1::AcknowledgeType),
) -> v1::ShareAcknowledgement {
    v1::ShareAcknowledgement {
        topic: topic.to_owned(),
        partition,
        first_offset: first,
        last_offset: last,
        r#type: kind as i32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(offset: i64) -> ShareRecord {
        ShareRecord {
            record: ConsumedRecord {
                topic: Arc::from("jobs"),
                partition: 0,
                offset,
                timestamp_ms: 0,
                key: None,
                value: None,
                headers: Vec::new(),
            },
            delivery_count: 1,
        }
    }

    /// A consumer (never connected) holding `outstanding` records of `jobs` partition 0.
    fn holding(outstanding: Outstanding) -> ShareConsumer {
        ShareConsumer {
            client: Client::connect_lazy("127.0.0.1:1", crate::ClientConfig::default()).expect("a lazy client"),
            group: "g".into(),
            topics: vec!["jobs".into()],
            config: ShareConsumerConfig::default(),
            membership: None,
            outstanding: BTreeMap::from([((Arc::from("jobs"), 0), outstanding)]),
            failures: Vec::new(),
            topic_names: BTreeMap::new(),
        }
    }

    #[tokio::test]
    async fn unacknowledged_records_are_accepted_offsets_without_one_are_gaps_and_runs_are_ranges() {
        let outstanding = Outstanding {
            ranges: vec![(10, 15), (20, 20)],
            delivered: [10, 11, 13, 14, 15, 20].into_iter().collect(),
            chosen: BTreeMap::from([(14, AcknowledgeType::Release), (20, AcknowledgeType::Reject)]),
        };
        let sent: Vec<(i64, i64, i32)> = holding(outstanding)
            .take_acknowledgements()
            .into_iter()
            .map(|a| (a.first_offset, a.last_offset, a.r#type))
            .collect();
        let (accept, release, reject, gap) = (1, 2, 3, 0);
        assert_eq!(
            sent,
            [(10, 11, accept), (12, 12, gap), (13, 13, accept), (14, 14, release), (15, 15, accept), (20, 20, reject)]
        );
    }

    #[tokio::test]
    async fn a_record_not_held_cannot_be_acknowledged() {
        let held = Outstanding { ranges: vec![(1, 1)], delivered: [1].into_iter().collect(), chosen: BTreeMap::new() };
        let mut consumer = holding(held);
        assert!(consumer.acknowledge(&record(1), AcknowledgeType::Release).is_ok());
        assert!(matches!(consumer.acknowledge(&record(2), AcknowledgeType::Accept), Err(Error::InvalidUse { .. })));
        assert_eq!(consumer.take_acknowledgements().len(), 1);
        assert!(consumer.acknowledge(&record(1), AcknowledgeType::Accept).is_err(), "sent: no longer outstanding");
    }

    #[tokio::test]
    async fn in_explicit_mode_only_what_was_acknowledged_is_sent_and_poll_waits_for_the_rest() {
        let outstanding = Outstanding {
            ranges: vec![(10, 14)],
            delivered: [10, 11, 13, 14].into_iter().collect(),
            chosen: BTreeMap::from([(10, AcknowledgeType::Accept), (14, AcknowledgeType::Reject)]),
        };
        let mut consumer = holding(outstanding);
        consumer.config.acknowledgement_mode = AcknowledgementMode::Explicit;
        let refused = consumer.poll().await.expect_err("11 and 13 are not acknowledged");
        assert!(refused.to_string().contains("2 records"), "{refused}");
        let sent: Vec<(i64, i64, i32)> =
            consumer.take_acknowledgements().into_iter().map(|a| (a.first_offset, a.last_offset, a.r#type)).collect();
        let (accept, reject, gap) = (1, 3, 0);
        assert_eq!(sent, [(10, 10, accept), (12, 12, gap), (14, 14, reject)], "11 and 13 held back");
        assert_eq!(consumer.unacknowledged(), 2);
        consumer.acknowledge(&record(11), AcknowledgeType::Release).expect("still held");
        consumer.acknowledge(&record(13), AcknowledgeType::Accept).expect("still held");
        assert_eq!(consumer.unacknowledged(), 0);
        let sent: Vec<(i64, i64, i32)> =
            consumer.take_acknowledgements().into_iter().map(|a| (a.first_offset, a.last_offset, a.r#type)).collect();
        assert_eq!(sent, [(11, 11, 2), (13, 13, accept)]);
        assert!(consumer.outstanding.is_empty());
    }
}
