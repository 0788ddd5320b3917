//! Administration: topics (create, delete, list, describe, add partitions, alter settings, delete records), log offsets, groups' committed
//! offsets and consumer groups (describe, list, delete, reset offsets). Thin calls over the `TopicAdmin`, `Records.ListOffsets` and `ConsumerGroups` services; the answers
//! are the API's own messages (`rill_protocol::v1`), re-exported here, since the `.proto` is the contract.

use rill_protocol::v1::records_client::RecordsClient;
use rill_protocol::v1::{
    reset_offsets_request, AddPartitionsRequest, AlterGroupConfigRequest, CommitOffsetsRequest, CreateTopicRequest,
    DeleteGroupRequest, DeleteTopicRequest, DescribeGroupConfigRequest, DescribeGroupRequest, DescribeTopicRequest,
    FetchOffsetsRequest, InitProducerIdRequest, ListGroupsRequest, ListOffsetsRequest, ListTopicsRequest, OffsetCommit,
    ResetOffsetsRequest, TopicPartition,
};
pub use rill_protocol::v1::{
    AlterTopicConfigRequest, AlterTopicDefaultsRequest, AlterTopicDefaultsResponse, CommittedOffset,
    DeleteRecordsResult, DescribeGroupResponse as GroupDescription, DurabilityPolicy, GroupConfigEntry, GroupKind,
    GroupState, GroupSummary, MemberDescription, PartitionInfo, PartitionLag, PartitionOffset, TopicConfig,
    TopicDefault, TopicInfo,
};
use std::collections::{HashMap, HashSet};
use std::time::Duration;

use crate::connection::{call, request, Client};
use crate::coordinators::call_coordinator;
use crate::error::{Error, RequestContext, Result};
use crate::partition_wait::PartitionWait;

/// Longest [`Admin::describe_group`] waits for the partitions' leaders to give their log ends.
const LOG_ENDS_TIMEOUT: Duration = Duration::from_secs(2);

/// Which offset of a partition [`Admin::list_offsets`] looks up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetSpec {
    /// The log start offset (the oldest record retention kept).
    Earliest,
    /// The high watermark: the offset the next record will get.
    Latest,
    /// The first offset whose timestamp is at or after this (ms since the Unix epoch); the high watermark if
    /// there is none.
    Timestamp(i64),
    /// The first record carrying the partition's largest timestamp (Kafka's `OffsetSpec.maxTimestamp()`): with
    /// producers' clocks out of order, not always the newest record. The high watermark if there is none.
    MaxTimestamp,
}

impl OffsetSpec {
    /// The wire form: the spec and the timestamp that goes with it (0 unless `Timestamp`).
    fn to_wire(self) -> (rill_protocol::v1::OffsetSpec, i64) {
        use rill_protocol::v1::OffsetSpec as Spec;
        match self {
            OffsetSpec::Earliest => (Spec::Earliest, 0),
            OffsetSpec::Latest => (Spec::Latest, 0),
            OffsetSpec::Timestamp(ms) => (Spec::Timestamp, ms),
            OffsetSpec::MaxTimestamp => (Spec::MaxTimestamp, 0),
        }
    }
}

/// How many copies of each partition a cluster keeps; unset fields take the broker's defaults (1 copy; a
/// minimum of 2 in-sync replicas for 3 copies or more, else 1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TopicReplication {
    pub factor: Option<u32>,
    pub min_insync_replicas: Option<u32>,
}

/// A topic's state: name, partition count, effective config, and each partition's log bounds and size.
#[derive(Debug, Clone, PartialEq)]
pub struct TopicDescription {
    pub topic: TopicInfo,
    pub partitions: Vec<PartitionInfo>,
}

/// Topic and offset administration over a [`Client`]'s connection.
#[derive(Debug, Clone)]
pub struct Admin {
    client: Client,
}

impl Admin {
    pub fn new(client: Client) -> Self {
        Self { client }
    }

    fn timeout(&self) -> Duration {
        self.client.config().request_timeout
    }

    /// Creates `name` with `partition_count` partitions (0: the broker's default, `--default-partitions`); unset
    /// `config` fields take the broker's defaults.
    pub async fn create_topic(&self, name: &str, partition_count: u32, config: TopicConfig) -> Result<TopicInfo> {
        self.create_replicated_topic(name, partition_count, TopicReplication::default(), config).await
    }

    /// [`Admin::create_topic`] with each partition copied on `replication.factor` nodes of a cluster.
    pub async fn create_replicated_topic(
        &self,
        name: &str,
        partition_count: u32,
        replication: TopicReplication,
        config: TopicConfig,
    ) -> Result<TopicInfo> {
        let message = CreateTopicRequest {
            name: name.to_owned(),
            partition_count,
            config: Some(config),
            replication_factor: replication.factor,
            min_insync_replicas: replication.min_insync_replicas,
        };
        let response = call(
            self.timeout(),
            RequestContext::topic(name),
            self.client.topics().create_topic(request(message, self.timeout())),
        )
        .await?;
        response.topic.ok_or_else(|| malformed("CreateTopicResponse without a topic"))
    }

    pub async fn delete_topic(&self, name: &str) -> Result<()> {
        let message = DeleteTopicRequest { name: name.to_owned() };
        call(
            self.timeout(),
            RequestContext::topic(name),
            self.client.topics().delete_topic(request(message, self.timeout())),
        )
        .await?;
        Ok(())
    }

    /// Every topic, sorted by name.
    pub async fn list_topics(&self) -> Result<Vec<TopicInfo>> {
        let response = call(
            self.timeout(),
            RequestContext::default(),
            self.client.topics().list_topics(request(ListTopicsRequest {}, self.timeout())),
        )
        .await?;
        Ok(response.topics)
    }

    pub async fn describe_topic(&self, name: &str) -> Result<TopicDescription> {
        describe(&self.client, name, self.timeout()).await
    }

    /// Grows `name` to `new_partition_count` partitions. Keys hash to different partitions afterwards.
    pub async fn add_partitions(&self, name: &str, new_partition_count: u32) -> Result<TopicInfo> {
        let message = AddPartitionsRequest { name: name.to_owned(), new_partition_count };
        let response = call(
            self.timeout(),
            RequestContext::topic(name),
            self.client.topics().add_partitions(request(message, self.timeout())),
        )
        .await?;
        response.topic.ok_or_else(|| malformed("AddPartitionsResponse without a topic"))
    }

    /// Changes `request.name`'s settings while it serves: the `set` fields change, the `delete` keys go back to
    /// the broker's defaults, the rest stay; with `validate_only`, only checked. All or nothing: a bad key or
    /// value is `Error::InvalidArgument` naming it. Answers with the topic as the change leaves it.
    pub async fn alter_topic_config(&self, request: AlterTopicConfigRequest) -> Result<TopicInfo> {
        let name = request.name.clone();
        let response = call(
            self.timeout(),
            RequestContext::topic(&name),
            self.client.topics().alter_topic_config(crate::connection::request(request, self.timeout())),
        )
        .await?;
        response.topic.ok_or_else(|| malformed("AlterTopicConfigResponse without a topic"))
    }

    /// The cluster's topic defaults: every key a default may be set for (Kafka's broker names, `log.retention.ms`),
    /// with the value a topic that sets nothing itself takes, and whether it is set for the cluster.
    pub async fn describe_topic_defaults(&self) -> Result<Vec<TopicDefault>> {
        let request = rill_protocol::v1::DescribeTopicDefaultsRequest {};
        let response = call(
            self.timeout(),
            RequestContext::default(),
            self.client.topics().describe_topic_defaults(crate::connection::request(request, self.timeout())),
        )
        .await?;
        Ok(response.defaults)
    }

    /// Sets and deletes topic defaults: every topic that does not set such a key itself follows. All or nothing: a
    /// bad key or value, or one some topic cannot take, is `Error::InvalidArgument` naming it.
    pub async fn alter_topic_defaults(&self, request: AlterTopicDefaultsRequest) -> Result<AlterTopicDefaultsResponse> {
        call(
            self.timeout(),
            RequestContext::default(),
            self.client.topics().alter_topic_defaults(crate::connection::request(request, self.timeout())),
        )
        .await
    }

    /// Deletes `topic`'s records before an offset in each listed partition (`(partition, offset)`; offset -1: before
    /// the high watermark). Each partition answers on its own: its new log start offset (`low_watermark`), or the
    /// refusal's reason word and message (`offset-out-of-range` past the high watermark, `unknown-partition`,
    /// `timed-out` on a cluster whose in-sync replicas did not all follow in time). The call fails as a whole for
    /// an unknown topic or a denial. On a cluster each partition goes to its leader (rerouted when it moved), which
    /// answers once its in-sync replicas have deleted too: the low watermark is the smallest log start over them.
    pub async fn delete_records(&self, topic: &str, before: &[(u32, i64)]) -> Result<Vec<DeleteRecordsResult>> {
        crate::delete_records::delete_records(&self.client, topic, before, self.timeout()).await
    }

    /// The `spec` offset of each listed partition of `topic` (every partition if `partitions` is empty), with
    /// both ends of each log. On a cluster, a partition without a ready leader, or added a moment ago, is waited
    /// for within the request timeout; one the topic's metadata does not list is `Error::UnknownPartition` after
    /// a wait of a few seconds (the node asked may be behind).
    pub async fn list_offsets(
        &self,
        topic: &str,
        partitions: &[u32],
        spec: OffsetSpec,
    ) -> Result<Vec<PartitionOffset>> {
        list_offsets(&self.client, topic, partitions, spec, self.timeout()).await
    }

    /// `group`'s committed offsets for the listed partitions (all it has committed if empty); a partition
    /// without a commit has offset -1.
    pub async fn committed_offsets(&self, group: &str, partitions: &[(&str, u32)]) -> Result<Vec<CommittedOffset>> {
        committed_offsets(&self.client, group, partitions, self.timeout()).await
    }

    /// A consumer group's state, members with their partitions, and per partition its committed offset, end
    /// offset and lag. The ends come from each partition's leader, as Kafka's `kafka-consumer-groups.sh` reads
    /// them: on a cluster the coordinator holds replicas of some partitions only (and a follower's high
    /// watermark trails the leader's). A topic whose leaders do not answer within [`LOG_ENDS_TIMEOUT`] keeps the
    /// coordinator's figures (`end_offset` -1 where it holds no replica).
    pub async fn describe_group(&self, group: &str) -> Result<GroupDescription> {
        let message = DescribeGroupRequest { group: group.to_owned() };
        let ctx = RequestContext::default();
        let timeout = self.timeout();
        let mut described = call_coordinator(&self.client, group, ctx, timeout, |mut groups| {
            let message = message.clone();
            async move { groups.describe_group(request(message, timeout)).await }
        })
        .await?;
        self.read_log_ends_from_leaders(&mut described.partitions).await;
        Ok(described)
    }

    async fn read_log_ends_from_leaders(&self, partitions: &mut [PartitionLag]) {
        let mut by_topic: std::collections::BTreeMap<String, Vec<u32>> = std::collections::BTreeMap::new();
        for p in partitions.iter() {
            by_topic.entry(p.topic.clone()).or_default().push(p.partition);
        }
        let timeout = LOG_ENDS_TIMEOUT.min(self.timeout());
        for (topic, asked) in by_topic {
            let ends = match list_offsets(&self.client, &topic, &asked, OffsetSpec::Latest, timeout).await {
                Ok(ends) => ends,
                Err(err) => {
                    tracing::debug!(%topic, error = %err, "keeping the coordinator's log ends");
                    continue;
                }
            };
            for end in ends {
                let Some(p) = partitions.iter_mut().find(|p| p.topic == topic && p.partition == end.partition) else {
                    continue;
                };
                // As the coordinator counts it: records from the commit (or the log start, if older or none)
                // to the high watermark.
                p.end_offset = end.high_watermark;
                p.lag = end.high_watermark - p.committed_offset.max(end.log_start_offset).min(end.high_watermark);
            }
        }
    }

    /// Every group with members or committed offsets, by name.
    pub async fn list_groups(&self) -> Result<Vec<GroupSummary>> {
        let ctx = RequestContext::default();
        let mut groups = self.client.groups();
        let listed = call(self.timeout(), ctx, groups.list_groups(request(ListGroupsRequest {}, self.timeout())));
        Ok(listed.await?.groups)
    }

    /// `group`'s settings (Kafka's group configs: a share group's `share.*` keys, a KIP-848 consumer group's
    /// `consumer.*` keys), every key with the value the group runs with
    /// and whether it is the group's own. A group need not exist.
    pub async fn group_config(&self, group: &str) -> Result<Vec<GroupConfigEntry>> {
        let message = DescribeGroupConfigRequest { group: group.to_owned() };
        let mut groups = self.client.groups();
        let described = call(
            self.timeout(),
            RequestContext::default(),
            groups.describe_group_config(request(message, self.timeout())),
        );
        Ok(described.await?.configs)
    }

    /// Sets the `set` keys of `group`'s settings and puts the `delete` keys back to the broker's; with
    /// `validate_only`, only checked. All or nothing: a bad key or value is `Error::InvalidArgument` naming it.
    /// Answers with the settings as the change leaves them.
    pub async fn alter_group_config(
        &self,
        group: &str,
        set: &[(String, String)],
        delete: &[String],
        validate_only: bool,
    ) -> Result<Vec<GroupConfigEntry>> {
        let message = AlterGroupConfigRequest {
            group: group.to_owned(),
            set: set.iter().cloned().collect(),
            delete: delete.to_vec(),
            validate_only,
        };
        let mut groups = self.client.groups();
        let altered = call(
            self.timeout(),
            RequestContext::default(),
            groups.alter_group_config(request(message, self.timeout())),
        );
        Ok(altered.await?.configs)
    }

    /// Forgets a group's committed offsets; returns how many. `Error::GroupRefused` while it has members.
    pub async fn delete_group(&self, group: &str) -> Result<u32> {
        let message = DeleteGroupRequest { group: group.to_owned() };
        let ctx = RequestContext::default();
        let timeout = self.timeout();
        let response = call_coordinator(&self.client, group, ctx, timeout, |mut groups| {
            let message = message.clone();
            async move { groups.delete_group(request(message, timeout)).await }
        })
        .await?;
        Ok(response.deleted_offsets)
    }

    /// Sets `group`'s committed offsets of `topic` (all partitions if `partitions` is empty) to `to`. Only for a
    /// group without members: `Error::GroupRefused` otherwise.
    pub async fn reset_offsets(
        &self,
        group: &str,
        topic: &str,
        partitions: &[u32],
        to: OffsetSpec,
    ) -> Result<Vec<CommittedOffset>> {
        let (spec, timestamp_ms) = to.to_wire();
        let message = ResetOffsetsRequest {
            group: group.to_owned(),
            topic: topic.to_owned(),
            partitions: partitions.to_vec(),
            to: Some(reset_offsets_request::To::Spec(spec as i32)),
            timestamp_ms,
        };
        let ctx = RequestContext::topic(topic);
        let timeout = self.timeout();
        let response = call_coordinator(&self.client, group, ctx, timeout, |mut groups| {
            let message = message.clone();
            async move { groups.reset_offsets(request(message, timeout)).await }
        })
        .await?;
        Ok(response.offsets)
    }

    /// Stores `offsets` (topic, partition, next offset to consume) as `group`'s positions, as a standalone
    /// (memberless) committer: for tools that set a group's offsets by hand. Refused (`Error::GroupRefused`)
    /// while the group has members: its members' commits are the only ones that count then.
    pub async fn commit_offsets(&self, group: &str, offsets: &[(&str, u32, i64)]) -> Result<()> {
        let offsets = offsets.iter().map(|&(t, p, o)| (t, p, o));
        commit_offsets(&self.client, group, "", -1, offsets, self.timeout()).await
    }
}

/// DescribeTopic, shared by the admin, the producer's partition-count cache and the leader routing (which
/// learns every answer's placement). It is the metadata call, so a bootstrap node that cannot be reached (a
/// refused or silent connection: UNAVAILABLE) passes it to the next one given, each once, as a Kafka client's
/// metadata request moves through its bootstrap list; a node that answered, or timed out, ends it.
pub(crate) async fn describe(client: &Client, name: &str, timeout: Duration) -> Result<TopicDescription> {
    describe_or_create(client, name, false, timeout).await
}

/// [`describe`], asking the broker to create the topic first if it does not exist and the broker creates topics
/// automatically (`auto_create`): what a producer's first send to a topic asks.
pub(crate) async fn describe_or_create(
    client: &Client,
    name: &str,
    auto_create: bool,
    timeout: Duration,
) -> Result<TopicDescription> {
    let mut attempts_left = client.bootstrap_count();
    let response = loop {
        let message = DescribeTopicRequest { name: name.to_owned(), auto_create };
        let answer =
            call(timeout, RequestContext::topic(name), client.topics().describe_topic(request(message, timeout))).await;
        attempts_left -= 1;
        match answer {
            Err(err @ Error::Unavailable { .. }) if attempts_left > 0 => {
                tracing::debug!(topic = %name, error = %err, "bootstrap node unreachable; asking the next one");
                client.next_bootstrap();
            }
            answer => break answer?,
        }
    };
    let topic = response.topic.ok_or_else(|| malformed("DescribeTopicResponse without a topic"))?;
    client.learn_placement(name, &response.partitions);
    Ok(TopicDescription { topic, partitions: response.partitions })
}

/// The topic's info (partition count and config), created first when `auto_create` asks and the broker does.
pub(crate) async fn describe_topic(
    client: &Client,
    name: &str,
    auto_create: bool,
    timeout: Duration,
) -> Result<TopicInfo> {
    describe_or_create(client, name, auto_create, timeout).await.map(|d| d.topic)
}

/// A new producer id and its epoch, for an idempotent producer. Any node answers it, so like [`describe`] it
/// passes from a bootstrap node that cannot be reached to the next one given, each once: the node the client
/// connected to may have stopped since (a rolling restart's stop closes the connection it had just accepted).
pub(crate) async fn init_producer_id(client: &Client, timeout: Duration) -> Result<(i64, i16)> {
    let mut attempts_left = client.bootstrap_count();
    let response = loop {
        let answer = call(
            timeout,
            RequestContext::default(),
            client.records().init_producer_id(request(InitProducerIdRequest {}, timeout)),
        )
        .await;
        attempts_left -= 1;
        match answer {
            Err(err @ Error::Unavailable { .. }) if attempts_left > 0 => {
                tracing::debug!(error = %err, "bootstrap node unreachable; asking the next one for a producer id");
                client.next_bootstrap();
            }
            answer => break answer?,
        }
    };
    let epoch = i16::try_from(response.producer_epoch)
        .map_err(|_| malformed("InitProducerIdResponse with an epoch above 32767"))?;
    Ok((response.producer_id, epoch))
}

/// How many rounds [`list_offsets`] reroutes at once, to the leader a `not-leader` names or the placement gives;
/// after that, partitions still refused wait with a backoff (a leader named that is not ready yet would only send
/// the call back to itself).
const LIST_OFFSETS_ROUNDS: usize = 3;
/// The first wait before asking again for partitions in a passing state (`partition_wait.rs`: no leader, a leader
/// not ready, a new leader learning its high watermark, a node that has not heard of the partition yet); it
/// doubles up to [`PASSING_STATE_MAX_BACKOFF`] within the call's timeout. The wait is for the followers' next
/// fetches or the next metadata heartbeat, a few ms on a healthy cluster, up to the ISR's lag limit when a
/// follower is gone.
const PASSING_STATE_FIRST_BACKOFF: Duration = Duration::from_millis(5);
const PASSING_STATE_MAX_BACKOFF: Duration = Duration::from_millis(500);

/// The `spec` offset of `partitions` of `topic` (every partition if empty). Only a partition's leader answers,
/// as with Kafka: a follower's high watermark trails the leader's. So the call goes to each leader with the
/// partitions it leads, at once; partitions refused with `not-leader` are routed again by a fresh placement (and
/// those on a node that cannot be reached as a fetch's are), and asked again at once, at most
/// [`LIST_OFFSETS_ROUNDS`] times. Partitions in a passing state ([`PartitionWait::is_passing`]: no leader or one
/// not ready yet, `offset-not-available`, `unknown partition` from a node behind the metadata) are asked again
/// after a backoff, placement refreshed, until `timeout` has passed; a partition the metadata does not list is
/// given up on sooner. A call refused whole names no partition, so its partitions are then asked one per call,
/// for an answer that says which partition it is about.
pub(crate) async fn list_offsets(
    client: &Client,
    topic: &str,
    partitions: &[u32],
    spec: OffsetSpec,
    timeout: Duration,
) -> Result<Vec<PartitionOffset>> {
    let (spec, timestamp_ms) = spec.to_wire();
    let mut pending = if partitions.is_empty() {
        describe(client, topic, timeout).await?.partitions.iter().map(|p| p.partition).collect()
    } else {
        partitions.to_vec()
    };
    let mut offsets = Vec::with_capacity(pending.len());
    let deadline = tokio::time::Instant::now() + timeout;
    let mut backoff = PASSING_STATE_FIRST_BACKOFF;
    let mut reroutes = 0;
    let mut waits: HashMap<u32, PartitionWait> = HashMap::new();
    // Partitions asked one per call from now on (see the doc comment).
    let mut asked_alone: HashSet<u32> = HashSet::new();
    while !pending.is_empty() {
        let groups = client.channels_by_leader(topic, &pending).await;
        let calls = split_out(groups, &asked_alone).into_iter().map(|(channel, group)| {
            let message = ListOffsetsRequest {
                topic: topic.to_owned(),
                partitions: group.clone(),
                spec: spec as i32,
                timestamp_ms,
            };
            let ctx = match group[..] {
                [one] => RequestContext::partition(topic, one),
                _ => RequestContext::topic(topic),
            };
            let max = client.config().max_message_bytes;
            let mut records = RecordsClient::new(channel).max_decoding_message_size(max);
            async move { (group, call(timeout, ctx, records.list_offsets(request(message, timeout))).await) }
        });
        let may_reroute = reroutes + 1 < LIST_OFFSETS_ROUNDS;
        let (mut rerouted, mut split, mut waiting) = (Vec::new(), Vec::new(), Vec::new());
        let mut waited_on = None;
        let mut is_placement_stale = false;
        let now = std::time::Instant::now();
        for (group, answer) in futures_util::future::join_all(calls).await {
            let err = match answer {
                Ok(response) => {
                    offsets.extend(response.offsets);
                    continue;
                }
                Err(err) => err,
            };
            match err {
                // A node refuses the whole call at the first partition it does not lead, naming that one's
                // leader only: the placement, asked once, routes them all.
                Error::NotLeader { leader_address: Some(_), .. } if may_reroute => {
                    is_placement_stale = true;
                    rerouted.extend(group);
                }
                Error::Unavailable { .. } if may_reroute => {
                    for &partition in &group {
                        client.learn_from(topic, partition, &err).await;
                    }
                    rerouted.extend(group);
                }
                // Refused whole for a reason that names no partition (an unknown one among several, say).
                err if group.len() > 1 && !is_about_every_partition(&err) => {
                    tracing::debug!(%topic, ?group, error = %err, "asking the partitions one per call");
                    asked_alone.extend(&group);
                    split.extend(group);
                }
                err => {
                    let mut is_passing = true;
                    for &partition in &group {
                        let is_listed = client.is_listed(topic, partition);
                        is_passing &= waits.entry(partition).or_default().is_passing(&err, is_listed, now);
                    }
                    if !is_passing {
                        return Err(err);
                    }
                    // Whoever answered, the placement may be what is behind: the leader, or the partition itself.
                    is_placement_stale |= !matches!(err, Error::OffsetNotAvailable { .. });
                    waiting.extend(group);
                    waited_on = Some(err);
                }
            }
        }
        if !rerouted.is_empty() {
            reroutes += 1;
        }
        if let Some(err) = waited_on {
            if tokio::time::Instant::now() + backoff >= deadline {
                return Err(err);
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(PASSING_STATE_MAX_BACKOFF);
        }
        pending = rerouted;
        pending.append(&mut split);
        pending.append(&mut waiting);
        if is_placement_stale {
            if let Err(err) = describe(client, topic, timeout).await {
                tracing::debug!(%topic, error = %err, "cannot learn the topic's leaders");
            }
        }
    }
    // In the order asked, as one broker's answer is.
    if !partitions.is_empty() {
        offsets.sort_by_key(|o| partitions.iter().position(|p| *p == o.partition));
    } else {
        offsets.sort_by_key(|o| o.partition);
    }
    Ok(offsets)
}

/// Whether a refusal of a call for several partitions says all it means whatever partition it came from: the
/// leadership and offset states, and a topic that does not exist.
fn is_about_every_partition(err: &Error) -> bool {
    matches!(
        err,
        Error::NotLeader { .. }
            | Error::LeaderEpochMismatch { .. }
            | Error::OffsetNotAvailable { .. }
            | Error::UnknownTopic { .. }
            | Error::Unavailable { .. }
            | Error::TimedOut { .. }
    )
}

/// The calls of [`list_offsets`]: each leader's group, with the partitions of `alone` split out into calls of
/// their own.
fn split_out<C: Clone>(groups: Vec<(C, Vec<u32>)>, alone: &HashSet<u32>) -> Vec<(C, Vec<u32>)> {
    let mut calls = Vec::with_capacity(groups.len());
    for (channel, group) in groups {
        let (singles, rest): (Vec<u32>, Vec<u32>) = group.into_iter().partition(|p| alone.contains(p));
        calls.extend(singles.into_iter().map(|p| (channel.clone(), vec![p])));
        if !rest.is_empty() {
            calls.push((channel, rest));
        }
    }
    calls
}

pub(crate) async fn committed_offsets(
    client: &Client,
    group: &str,
    partitions: &[(&str, u32)],
    timeout: Duration,
) -> Result<Vec<CommittedOffset>> {
    let message = FetchOffsetsRequest {
        group: group.to_owned(),
        partitions: partitions
            .iter()
            .map(|&(topic, partition)| TopicPartition { topic: topic.to_owned(), partition })
            .collect(),
    };
    let ctx = match partitions {
        [(topic, _)] => RequestContext::topic(topic),
        _ => RequestContext::default(),
    };
    let response = call_coordinator(client, group, ctx, timeout, |mut groups| {
        let message = message.clone();
        async move { groups.fetch_offsets(request(message, timeout)).await }
    })
    .await?;
    Ok(response.offsets)
}

pub(crate) async fn commit_offsets<'a>(
    client: &Client,
    group: &str,
    member_id: &str,
    generation: i32,
    offsets: impl Iterator<Item = (&'a str, u32, i64)>,
    timeout: Duration,
) -> Result<()> {
    let offsets: Vec<OffsetCommit> = offsets
        .map(|(topic, partition, offset)| OffsetCommit {
            topic: topic.to_owned(),
            partition,
            offset,
            metadata: String::new(),
        })
        .collect();
    // A standalone committer sends no member id and generation -1; a group member its own.
    let message =
        CommitOffsetsRequest { group: group.to_owned(), member_id: member_id.to_owned(), generation, offsets };
    let ctx = match message.offsets.as_slice() {
        [one] => RequestContext::partition(&one.topic, one.partition),
        _ => RequestContext::default(),
    };
    call_coordinator(client, group, ctx, timeout, |mut groups| {
        let message = message.clone();
        async move { groups.commit_offsets(request(message, timeout)).await }
    })
    .await?;
    Ok(())
}

fn malformed(what: &str) -> Error {
    Error::Broker { code: tonic::Code::Internal, message: format!("malformed answer: {what}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_asked_alone_get_calls_of_their_own() {
        let groups = vec![("node-1", vec![0, 3, 5]), ("bootstrap", vec![1, 2])];
        let alone: HashSet<u32> = [3, 1, 2].into_iter().collect();
        let calls = split_out(groups, &alone);
        assert_eq!(
            calls,
            vec![("node-1", vec![3]), ("node-1", vec![0, 5]), ("bootstrap", vec![1]), ("bootstrap", vec![2]),]
        );
        let untouched = split_out(vec![("node-1", vec![0, 1])], &HashSet::new());
        assert_eq!(untouched, vec![("node-1", vec![0, 1])]);
    }
}
