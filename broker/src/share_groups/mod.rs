//! Share groups (Kafka's KIP-932, "queues for Kafka"): consumers that read a topic's partitions together, record
//! by record, each record handed to one member at a time under a lock and acknowledged on its own (accepted,
//! released for another delivery, rejected), delivered again when its lock runs out, and given up after
//! `delivery_count_limit` deliveries. More members than partitions all get work; a slow or poisoned record holds
//! up nothing behind it.
//!
//! - `assignment.rs` — which members read which partitions (a pure function; partitions may be shared).
//! - `partition.rs` — one share partition's window of records in flight: acquisition, acknowledgement, locks,
//!   delivery counts, and the stored form of that state.
//! - `delivery.rs` — records read for a member and its acknowledgements stored, over the node's logs and offset
//!   store: what Kafka's ShareFetch and rill's ShareConsume stream both run.
//! - `member_reads.rs` — a `ShareConsume` member's reads and acknowledgements, at each partition's leader, made
//!   by the node serving its stream (on a cluster, the group's coordinator).
//! - `dead_letters.rs` — the records a group rejects or gives up on, written to its dead-letter topic (KIP-1191)
//!   before the state that archives them is stored.
//! - this file — [`ShareGroups`]: the groups' members (ShareGroupHeartbeat, or a ShareConsume stream), their share
//!   sessions (ShareFetch's session epochs), and the share partitions, all behind one `std::sync::Mutex` held only
//!   for in-memory work.
//!
//! What lasts: each share partition's window (its start, its end, and the delivery count of every record in it
//! not yet done with) is stored in the committed-offsets log (`OffsetStore::save_share_states`) before any answer
//! that depends on it: a new partition's starting offset before the heartbeat that assigns it is answered, an
//! acknowledgement before its success is. Locks and memberships are not stored: after a restart members rejoin
//! and every record that was out is delivered again (at-least-once, as Kafka's share groups are). A delivery
//! count raised by an acquisition is stored with the next acknowledgement of that partition, so a broker that
//! crashes in between may deliver a record once more than the limit.
//!
//! On a cluster node the roles part as in Kafka: a group's members and their assignment live at the group's
//! coordinator (the leader of its `__consumer_offsets` partition), and each share partition's window and the
//! members' share sessions at the partition's leader, where ShareFetch is sent. The leader loads a window's
//! stored state from the coordinator and stores its changes there (`remote.rs`); what the coordinator stores is
//! replicated with its offsets partition, so a window survives the loss of either node, less its locks. A
//! window's versions carry the leader epoch it was loaded at as a fencing token (`offsets/share_states.rs`): a
//! deposed leader's stale window cannot overwrite its successor's. A partition's window starts (by the group's
//! reset policy) at its first fetch, not at the heartbeat that assigns it, since the coordinator does not hold
//! the partition. A member that leaves, or whose session runs out, is told to every other node
//! (`remote::release_departed`), which releases what it held there. A member of rill's `ShareConsume` stream is
//! served by the group's coordinator, which reads and acknowledges for it at each partition's leader
//! (`member_reads.rs`), as the member's own ShareFetch would.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::group_config::GroupConfigs;
use crate::groups::TopicPartition;
use crate::offsets::OffsetKey;

pub mod assignment;
pub mod dead_letters;
pub mod delivery;
pub mod member_reads;
pub mod partition;
pub mod remote;

pub use partition::{
    AckBatch, AckError, Acquired, BatchSpan, DeadLetter, DeadLetterCause, DeliveryCounts, DeliveryRules, MemberRef,
    SharePartition,
};

/// Where a share partition the group has never read starts: the broker's `--share-auto-offset-reset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ShareOffsetReset {
    /// At the log's start: the group reads what the partition holds.
    Earliest,
    /// At the high watermark: the group reads what is produced from then on (Kafka's default).
    Latest,
}

/// Where a share partition the group has never read starts, as a group runs with it (the broker's
/// [`ShareOffsetReset`], or the group's `share.auto.offset.reset`, which may also be `by_duration:`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShareStart {
    Earliest,
    Latest,
    /// At the first record no older than this (its timestamp at or after now less it); at the end when every
    /// record is older.
    ByDuration(Duration),
}

impl From<ShareOffsetReset> for ShareStart {
    fn from(reset: ShareOffsetReset) -> ShareStart {
        match reset {
            ShareOffsetReset::Earliest => ShareStart::Earliest,
            ShareOffsetReset::Latest => ShareStart::Latest,
        }
    }
}

/// The share groups' settings (the broker's `share_*` options).
#[derive(Debug, Clone, Copy)]
pub struct ShareSettings {
    pub session_timeout: Duration,
    pub heartbeat_interval: Duration,
    pub rules: DeliveryRules,
    pub auto_offset_reset: ShareStart,
    /// `share.isolation.level=read_committed`: records are delivered once their transaction commits, and an
    /// aborted transaction's never.
    pub is_read_committed: bool,
    pub max_groups: u32,
    pub max_members_per_group: u32,
}

impl ShareSettings {
    pub fn of(config: &crate::config::BrokerConfig) -> ShareSettings {
        ShareSettings {
            session_timeout: Duration::from_millis(config.share_session_timeout_ms),
            heartbeat_interval: Duration::from_millis(config.share_heartbeat_interval_ms),
            rules: DeliveryRules {
                lock_duration: Duration::from_millis(config.share_record_lock_duration_ms),
                delivery_count_limit: config.share_delivery_count_limit,
                max_record_locks: config.share_max_record_locks,
                // A group's own config names its dead-letter topic; the broker has none for all groups.
                keeps_dead_letters: false,
            },
            auto_offset_reset: config.share_auto_offset_reset.into(),
            is_read_committed: false,
            max_groups: config.max_groups,
            max_members_per_group: config.max_members_per_group,
        }
    }
}

/// What a share group's request was refused for; the Kafka layer maps each to its error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShareError {
    #[error(
        "member {member} is not a member of share group {group} (its session may have timed out): rejoin with epoch 0"
    )]
    UnknownMember { group: String, member: String },
    #[error(
        "member {member} of share group {group} sent epoch {sent}, but its epoch is {current}: rejoin with epoch 0"
    )]
    FencedEpoch { group: String, member: String, sent: i32, current: i32 },
    #[error("{0}")]
    InvalidRequest(String),
    #[error("share group {group} already has its maximum of {max} members")]
    GroupFull { group: String, max: u32 },
    #[error("the broker already holds its maximum of {max} share groups")]
    TooManyGroups { max: u32 },
    #[error("member {member} of share group {group} has no share session: open one with share session epoch 0")]
    SessionNotFound { group: String, member: String },
    #[error("share session epoch {sent} is not the session's next epoch, {expected}")]
    InvalidSessionEpoch { sent: i32, expected: i32 },
    #[error("group {0} is a consumer group, not a share group")]
    NotAShareGroup(String),
    #[error("share group {group} has {members} members: only a group without members can be deleted")]
    NotEmpty { group: String, members: usize },
    #[error("this node holds its maximum of {max} share sessions: close unused share consumers, or retry")]
    TooManySessions { max: usize },
}

/// What the share groups need of the node: topics, logs and the stored states.
pub trait ShareLog {
    /// The partition counts of those of `topics` that exist.
    fn partition_counts(&self, topics: &BTreeSet<String>) -> BTreeMap<String, u32>;
    /// A partition's log start offset and where reading ends (the high watermark; the last stable offset for
    /// `is_read_committed`), when this node holds it.
    fn bounds(&self, topic: &str, partition: u32, is_read_committed: bool) -> Option<(i64, i64)>;
    /// The first offset of a partition whose record's timestamp is at or after `timestamp_ms`, if any.
    fn offset_at_time(&self, topic: &str, partition: u32, timestamp_ms: i64) -> Option<i64>;
    /// The share partition state stored for `key`, with its version.
    fn stored(&self, key: &OffsetKey) -> Option<crate::offsets::StoredShareState>;
    /// The leader epoch of a partition this node holds (0 on a single node): the fencing token of the windows it
    /// loads.
    fn leader_epoch(&self, topic: &str, partition: u32) -> u32;
    /// Every share partition state stored for `group`'s partitions.
    fn stored_in_group(&self, group: &str) -> Vec<(OffsetKey, Vec<u8>)>;
}

/// A share partition's state to store before answering (`OffsetStore::save_share_states`); a save carrying a
/// lower version than one already stored is dropped, so concurrent saves land in the order they were taken, and
/// one whose fencing token is lower is refused.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StateToStore {
    pub key: OffsetKey,
    pub version: u64,
    pub bytes: Vec<u8>,
    /// Records this state no longer holds because the group gave up on them, whose dead letters are written
    /// before it is stored (`dead_letters.rs`); emptied then, never sent to the coordinator nor stored.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dead_letters: Vec<DeadLetter>,
}

/// One ShareGroupHeartbeat, as the Kafka layer decoded it (topic names resolved).
pub struct ShareHeartbeat {
    pub group: String,
    pub member_id: String,
    pub member_epoch: i32,
    /// `None`: unchanged since the last heartbeat.
    pub subscribed_topics: Option<BTreeSet<String>>,
    pub client_id: String,
    pub client_host: String,
    pub rack: Option<String>,
}

pub struct HeartbeatAnswer {
    pub member_epoch: i32,
    pub heartbeat_interval_ms: i32,
    /// The member's partitions, when they changed (or it joined); `None`: unchanged.
    pub assignment: Option<BTreeSet<TopicPartition>>,
    /// New share partitions' starting points, to store before answering.
    pub to_store: Vec<StateToStore>,
}

/// What a ShareFetch or ShareAcknowledge does to the member's share session (`ShareGroups::fetch_session`).
#[derive(Debug, Clone, Copy)]
pub struct SessionChange<'a> {
    /// `share_session_epoch`: 0 opens, -1 closes, any other must be the session's next.
    pub epoch: i32,
    /// Partitions the request names (a session opened has exactly these).
    pub added: &'a [TopicPartition],
    /// Partitions the request forgets.
    pub forgotten: &'a [TopicPartition],
    pub has_acknowledgements: bool,
}

/// Each partition's outcome of an acknowledgement request.
pub type AckOutcomes = Vec<(TopicPartition, Result<(), AckError>)>;

/// A member as ShareGroupDescribe shows it.
#[derive(Debug, Clone)]
pub struct ShareMemberView {
    pub member_id: String,
    pub member_epoch: i32,
    pub client_id: String,
    pub client_host: String,
    pub rack: Option<String>,
    pub subscribed_topics: BTreeSet<String>,
    pub assignment: BTreeSet<TopicPartition>,
}

/// A share group as described: its epoch (bumped at every assignment change) and members.
#[derive(Debug, Clone)]
pub struct ShareGroupView {
    pub group_epoch: i32,
    pub assignment_epoch: i32,
    pub members: Vec<ShareMemberView>,
}

/// One share partition of a group, as DescribeShareGroupOffsets and `rill` show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharePartitionView {
    pub partition: TopicPartition,
    /// Every record below is done with (Kafka's share-partition start offset).
    pub start_offset: i64,
    /// Records of the window still to be delivered or out with a member.
    pub in_flight: usize,
    /// Records out with a member.
    pub acquired: usize,
}

/// One loaded share partition as `/metrics` shows it.
#[derive(Debug, Clone)]
pub struct SharePartitionMetrics {
    pub key: OffsetKey,
    pub start_offset: i64,
    pub in_flight: usize,
    pub acquired: usize,
    pub counts: DeliveryCounts,
}

struct ShareMember {
    /// Moves whenever the member's partitions change, by its own heartbeat or another member's.
    epoch: i32,
    /// The epochs the last two answers to the member's heartbeats told it, newest first: what its next
    /// heartbeat may carry (the older one when the last answer was lost on the way). Another member's join moves
    /// `epoch` without telling this one, which must not fence it: it learns at its next heartbeat.
    told: [i32; 2],
    subscribed: BTreeSet<String>,
    assignment: BTreeSet<TopicPartition>,
    deadline: Instant,
    client_id: String,
    client_host: String,
    rack: Option<String>,
    /// How locks name this member (shared by every record it holds).
    name: MemberRef,
}

/// A member's share session (ShareFetch) at this node: the partitions it fetches, and the epoch its next request
/// must carry.
struct ShareSession {
    next_epoch: i32,
    partitions: BTreeSet<TopicPartition>,
    /// How locks name the member.
    name: MemberRef,
    last_used: Instant,
}

/// Share sessions one node keeps at most (Kafka's `share.max.share.sessions` is 2000 by default; rill's bound is
/// its member limits'). On a cluster a session whose member went away without closing it is evicted once it is
/// unused for its group's session timeout.
pub const MAX_SHARE_SESSIONS: usize = 10_000;

#[derive(Default)]
struct ShareGroup {
    group_epoch: i32,
    members: BTreeMap<String, ShareMember>,
}

struct Tracked {
    partition: SharePartition,
    version: u64,
    /// The partition's leader epoch when this node loaded the window (0 on a single node): a node that leads the
    /// partition at another epoch loads it again, since another leader may have changed it meanwhile.
    leader_epoch: u32,
}

#[derive(Default)]
struct State {
    groups: BTreeMap<String, ShareGroup>,
    partitions: BTreeMap<OffsetKey, Tracked>,
    /// By (group, member).
    sessions: BTreeMap<(String, String), ShareSession>,
    /// On a cluster: members that left or timed out at this coordinator, by group, whose records the other
    /// nodes still hold under their locks (`take_departed`).
    departed: Vec<(String, String)>,
}

pub struct ShareGroups {
    /// The broker's settings and each group's own (`group_config.rs`), read on every request of a group.
    configs: Arc<GroupConfigs>,
    /// On a cluster node: the groups' members are kept by their coordinators, windows and sessions by the
    /// partitions' leaders (the module's doc).
    is_clustered: bool,
    state: Mutex<State>,
    /// Bumped whenever records become available again other than by an append (a release, a lock that ran out,
    /// a member that left), so a fetch waiting for records looks again.
    released: watch::Sender<u64>,
}

fn key_of(group: &str, partition: &TopicPartition) -> OffsetKey {
    OffsetKey { group: group.to_owned(), topic: partition.topic.clone(), partition: partition.partition }
}

impl ShareGroups {
    pub fn new(configs: Arc<GroupConfigs>) -> ShareGroups {
        ShareGroups { configs, is_clustered: false, state: Mutex::new(State::default()), released: watch::channel(0).0 }
    }

    /// A cluster node's share groups.
    pub fn clustered(configs: Arc<GroupConfigs>) -> ShareGroups {
        ShareGroups { is_clustered: true, ..ShareGroups::new(configs) }
    }

    pub fn is_clustered(&self) -> bool {
        self.is_clustered
    }

    /// Whether `member` is a member of `group` here (at its coordinator, on a cluster).
    pub fn has_member(&self, group: &str, member: &str, now: Instant) -> bool {
        let mut state = self.lock();
        self.expire_members(&mut state, group, now);
        state.groups.get(group).is_some_and(|group| group.members.contains_key(member))
    }

    /// The settings `group` runs with: the broker's, with the group's own keys in their place. A new lock
    /// duration applies to records acquired after a change; a new delivery count limit to every later release.
    pub fn settings_of(&self, group: &str) -> ShareSettings {
        self.configs.share_settings(group)
    }

    /// The broker's settings.
    pub fn settings(&self) -> &ShareSettings {
        &self.configs.defaults().share
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The partitions the group assigns `member` now (none for a member it does not have): what a rill member's
    /// fetch reads, so a reassignment applies from its next pass, not its next heartbeat.
    pub fn assignment_of(&self, group: &str, member: &str) -> Vec<TopicPartition> {
        let state = self.lock();
        let member = state.groups.get(group).and_then(|group| group.members.get(member));
        member.map(|member| member.assignment.iter().cloned().collect()).unwrap_or_default()
    }

    pub fn is_share_group(&self, group: &str) -> bool {
        self.lock().groups.contains_key(group)
    }

    /// A ShareGroupHeartbeat: join (epoch 0), stay (the member's epoch, or the one before it, whose answer may
    /// have been lost), or leave (-1). Every heartbeat recomputes the group's assignment against the topics that
    /// exist now, so a new topic or partition is picked up within a heartbeat interval.
    pub fn heartbeat(
        &self,
        heartbeat: ShareHeartbeat,
        log: &dyn ShareLog,
        now: Instant,
    ) -> Result<HeartbeatAnswer, ShareError> {
        let mut state = self.lock();
        let settings = self.configs.share_settings(&heartbeat.group);
        let released = self.expire_members(&mut state, &heartbeat.group, now);
        let ShareHeartbeat { group: group_id, member_id, member_epoch, subscribed_topics, .. } = &heartbeat;
        if member_id.is_empty() {
            return Err(ShareError::InvalidRequest(
                "member_id is empty: a share group member names itself (a UUID it generates, KIP-1082)".into(),
            ));
        }
        let joins_with = subscribed_topics.clone().filter(|topics| !topics.is_empty());
        if *member_epoch == 0 && joins_with.is_none() {
            return Err(ShareError::InvalidRequest(
                "a joining member (epoch 0) must subscribe to at least one topic".into(),
            ));
        }
        if *member_epoch == 0
            && !state.groups.contains_key(group_id)
            && state.groups.len() >= settings.max_groups as usize
        {
            return Err(ShareError::TooManyGroups { max: settings.max_groups });
        }
        let State { groups, partitions, sessions, departed } = &mut *state;
        if *member_epoch != 0 && !groups.contains_key(group_id) {
            if *member_epoch == -1 {
                return Ok(HeartbeatAnswer {
                    member_epoch: -1,
                    heartbeat_interval_ms: duration_ms(settings.heartbeat_interval),
                    assignment: None,
                    to_store: Vec::new(),
                });
            }
            return Err(ShareError::UnknownMember { group: group_id.clone(), member: member_id.clone() });
        }
        let group = groups.entry(group_id.clone()).or_default();
        let mut to_release = Vec::new();
        match *member_epoch {
            -1 => {
                if let Some(member) = group.members.remove(member_id) {
                    to_release.push(member.name);
                }
            }
            0 => {
                let topics = joins_with.unwrap_or_default();
                if !group.members.contains_key(member_id)
                    && group.members.len() >= settings.max_members_per_group as usize
                {
                    return Err(ShareError::GroupFull { group: group_id.clone(), max: settings.max_members_per_group });
                }
                if let Some(member) = group.members.get_mut(member_id) {
                    // A member that joins again with its id (librdkafka's share consumer can send a second join
                    // right after its first) stays the member it was, as in Kafka: it keeps the records it holds
                    // and its share session, and the answer carries its whole assignment.
                    member.subscribed = topics;
                    member.deadline = now + settings.session_timeout;
                    member.client_id.clone_from(&heartbeat.client_id);
                    member.client_host.clone_from(&heartbeat.client_host);
                    member.rack.clone_from(&heartbeat.rack);
                } else {
                    group.members.insert(
                        member_id.clone(),
                        ShareMember {
                            epoch: 0,
                            told: [0, 0],
                            subscribed: topics,
                            assignment: BTreeSet::new(),
                            deadline: now + settings.session_timeout,
                            client_id: heartbeat.client_id.clone(),
                            client_host: heartbeat.client_host.clone(),
                            rack: heartbeat.rack.clone(),
                            name: Arc::from(member_id.as_str()),
                        },
                    );
                }
            }
            sent => {
                let Some(member) = group.members.get_mut(member_id) else {
                    return Err(ShareError::UnknownMember { group: group_id.clone(), member: member_id.clone() });
                };
                if sent != member.epoch && !member.told.contains(&sent) {
                    return Err(ShareError::FencedEpoch {
                        group: group_id.clone(),
                        member: member_id.clone(),
                        sent,
                        current: member.epoch,
                    });
                }
                if let Some(topics) = subscribed_topics.clone() {
                    if topics.is_empty() {
                        return Err(ShareError::InvalidRequest(
                            "subscribed_topic_names is empty: leave the group (epoch -1) instead".into(),
                        ));
                    }
                    member.subscribed = topics;
                }
                member.deadline = now + settings.session_timeout;
            }
        }
        let mut released = released;
        for name in &to_release {
            released += release_everywhere(partitions, group_id, name, &settings.rules);
            sessions.remove(&(group_id.clone(), name.to_string()));
            if self.is_clustered {
                departed.push((group_id.clone(), name.to_string()));
            }
        }
        let to_store = reassign(group, group_id, partitions, log, &settings, self.is_clustered);
        let answer = match group.members.get_mut(member_id) {
            Some(member) => {
                if member.told[0] != member.epoch {
                    member.told = [member.epoch, member.told[0]];
                }
                HeartbeatAnswer {
                    member_epoch: member.epoch,
                    heartbeat_interval_ms: duration_ms(settings.heartbeat_interval),
                    assignment: (member.epoch != *member_epoch).then(|| member.assignment.clone()),
                    to_store,
                }
            }
            None => HeartbeatAnswer {
                member_epoch: -1,
                heartbeat_interval_ms: duration_ms(settings.heartbeat_interval),
                assignment: None,
                to_store,
            },
        };
        drop(state);
        if released > 0 {
            self.released.send_modify(|n| *n += 1);
        }
        Ok(answer)
    }

    /// Removes the group's members whose session ran out, releasing what they held. Returns how many records
    /// went back to the group.
    fn expire_members(&self, state: &mut State, group_id: &str, now: Instant) -> usize {
        let rules = self.configs.share_settings(group_id).rules;
        let State { groups, partitions, sessions, departed } = state;
        let Some(group) = groups.get_mut(group_id) else { return 0 };
        let expired: Vec<String> =
            group.members.iter().filter(|(_, member)| member.deadline <= now).map(|(id, _)| id.clone()).collect();
        let mut released = 0;
        for id in expired {
            if let Some(member) = group.members.remove(&id) {
                tracing::info!(group = group_id, member = %id, "share group member's session timed out");
                released += release_everywhere(partitions, group_id, &member.name, &rules);
                if self.is_clustered {
                    departed.push((group_id.to_owned(), id.clone()));
                }
                sessions.remove(&(group_id.to_owned(), id));
            }
        }
        released
    }

    /// Opens, continues or closes `member`'s share session (ShareFetch's `share_session_epoch`: 0 opens, -1 closes,
    /// any other must be the session's next) and returns the partitions the request fetches: every partition of
    /// the session, none when it closes. On a single node the member must be in the group; on a cluster the caller
    /// asked the group's coordinator before opening (`remote::is_member`), and a session goes on without asking.
    pub fn fetch_session(
        &self,
        group_id: &str,
        member_id: &str,
        change: SessionChange<'_>,
        now: Instant,
    ) -> Result<Vec<TopicPartition>, ShareError> {
        let SessionChange { epoch, added, forgotten, has_acknowledgements } = change;
        let mut state = self.lock();
        let released = self.expire_members(&mut state, group_id, now);
        if released > 0 {
            self.released.send_modify(|n| *n += 1);
        }
        let unknown = || ShareError::UnknownMember { group: group_id.to_owned(), member: member_id.to_owned() };
        let is_member = state.groups.get(group_id).is_some_and(|group| group.members.contains_key(member_id));
        let session_key = (group_id.to_owned(), member_id.to_owned());
        match epoch {
            -1 => {
                state.sessions.remove(&session_key);
                Ok(Vec::new())
            }
            0 => {
                if !self.is_clustered && !is_member {
                    return Err(unknown());
                }
                if has_acknowledgements {
                    return Err(ShareError::InvalidRequest(
                        "a share session is opened (share_session_epoch 0) without acknowledgements: the records \
                         they name were acquired in another session"
                            .into(),
                    ));
                }
                if !state.sessions.contains_key(&session_key) && state.sessions.len() >= MAX_SHARE_SESSIONS {
                    self.evict_idle_sessions(&mut state, now);
                    if state.sessions.len() >= MAX_SHARE_SESSIONS {
                        return Err(ShareError::TooManySessions { max: MAX_SHARE_SESSIONS });
                    }
                }
                let partitions: BTreeSet<TopicPartition> = added.iter().cloned().collect();
                let name = Arc::from(member_id);
                let session = ShareSession { next_epoch: 1, partitions: partitions.clone(), name, last_used: now };
                state.sessions.insert(session_key, session);
                Ok(partitions.into_iter().collect())
            }
            sent if sent < -1 => Err(ShareError::InvalidRequest(format!(
                "share_session_epoch {sent} is not allowed: 0 opens a session, -1 closes it, a positive epoch continues it"
            ))),
            sent => {
                if !self.is_clustered && !is_member {
                    return Err(unknown());
                }
                let session = state.sessions.get_mut(&session_key).ok_or_else(|| ShareError::SessionNotFound {
                    group: group_id.to_owned(),
                    member: member_id.to_owned(),
                })?;
                if sent != session.next_epoch {
                    return Err(ShareError::InvalidSessionEpoch { sent, expected: session.next_epoch });
                }
                session.next_epoch = if sent == i32::MAX { 1 } else { sent + 1 };
                session.last_used = now;
                session.partitions.extend(added.iter().cloned());
                for gone in forgotten {
                    session.partitions.remove(gone);
                }
                Ok(session.partitions.iter().cloned().collect())
            }
        }
    }

    /// Forgets the sessions unused for their group's session timeout (on a cluster, members that went away
    /// without closing theirs at this node).
    /// On a cluster: gives `member` a share session here unless it has one, and marks it used, for the reads its
    /// coordinator makes on its behalf (a rill `ShareConsume` member, whom the coordinator keeps): what it
    /// acquires here is locked to it, and released when the coordinator tells this node it departed.
    pub fn keep_session(&self, group_id: &str, member_id: &str, now: Instant) -> Result<(), ShareError> {
        let mut state = self.lock();
        let session_key = (group_id.to_owned(), member_id.to_owned());
        if let Some(session) = state.sessions.get_mut(&session_key) {
            session.last_used = now;
            return Ok(());
        }
        if state.sessions.len() >= MAX_SHARE_SESSIONS {
            self.evict_idle_sessions(&mut state, now);
            if state.sessions.len() >= MAX_SHARE_SESSIONS {
                return Err(ShareError::TooManySessions { max: MAX_SHARE_SESSIONS });
            }
        }
        let session =
            ShareSession { next_epoch: 1, partitions: BTreeSet::new(), name: Arc::from(member_id), last_used: now };
        state.sessions.insert(session_key, session);
        Ok(())
    }

    fn evict_idle_sessions(&self, state: &mut State, now: Instant) {
        let configs = &self.configs;
        state.sessions.retain(|(group, _), session| {
            now.saturating_duration_since(session.last_used) < configs.share_settings(group).session_timeout
        });
    }

    /// Applies `member`'s acknowledgements, partition by partition (a partition's batches all apply or none do).
    /// Returns each partition's outcome and the states to store before the outcomes are answered.
    pub fn acknowledge(
        &self,
        group_id: &str,
        member_id: &str,
        acknowledgements: Vec<(TopicPartition, Vec<AckBatch>)>,
    ) -> (AckOutcomes, Vec<StateToStore>) {
        let mut state = self.lock();
        let rules = self.configs.share_settings(group_id).rules;
        let mut outcomes = Vec::with_capacity(acknowledgements.len());
        let mut to_store = Vec::new();
        let mut released = false;
        for (partition, batches) in acknowledgements {
            let key = key_of(group_id, &partition);
            let Some(tracked) = state.partitions.get_mut(&key) else {
                let first = batches.first().map_or(0, |batch| batch.first);
                outcomes.push((partition, Err(AckError::NotAcquired { offset: first })));
                continue;
            };
            let was_full = !tracked.partition.has_room(&rules);
            let applied = tracked.partition.acknowledge_batches(member_id, &batches, &rules);
            if applied.is_ok() {
                // Released records are available again; an accept or reject that moves a full window's start
                // makes room for fresh ones. Either way a fetch waiting on the partition has something to take.
                released |= batches.iter().any(|batch| batch.types.contains(&2))
                    || (was_full && tracked.partition.has_room(&rules));
                to_store.push(snapshot(&key, tracked));
            }
            outcomes.push((partition, applied));
        }
        drop(state);
        if released {
            self.released.send_modify(|n| *n += 1);
        }
        (outcomes, to_store)
    }

    /// Releases what `member` holds in this node's windows of `group` and forgets its session here: it left the
    /// group (told by the group's coordinator on a cluster).
    pub fn depart(&self, group_id: &str, member_id: &str) {
        self.lock().sessions.remove(&(group_id.to_owned(), member_id.to_owned()));
        self.release_member(group_id, member_id);
    }

    /// On a cluster: the members that left or timed out here since the last call, by (group, member), for the
    /// other nodes to release what they hold (`remote::release_everywhere`).
    pub fn take_departed(&self) -> Vec<(String, String)> {
        std::mem::take(&mut self.lock().departed)
    }

    /// Releases what `member` holds in the partitions of its closed session (ShareFetch with epoch -1).
    pub fn release_member(&self, group_id: &str, member_id: &str) {
        let mut state = self.lock();
        let rules = self.configs.share_settings(group_id).rules;
        let released = state
            .partitions
            .iter_mut()
            .filter(|(key, _)| key.group == group_id)
            .map(|(_, tracked)| tracked.partition.release_member(member_id, &rules))
            .sum::<usize>();
        drop(state);
        if released > 0 {
            self.released.send_modify(|n| *n += 1);
        }
    }

    /// Readies a share partition for a fetch: loaded (or started), moved past what the log no longer holds,
    /// its run-out locks released. Returns the offset to read from, if there is anything to acquire below the
    /// high watermark, and the state to store first when the partition was just started.
    pub fn prepare(
        &self,
        group_id: &str,
        partition: &TopicPartition,
        log: &dyn ShareLog,
        now: Instant,
    ) -> (Option<i64>, Option<StateToStore>) {
        let mut state = self.lock();
        let settings = self.configs.share_settings(group_id);
        let Some((log_start, readable_end)) =
            log.bounds(&partition.topic, partition.partition, settings.is_read_committed)
        else {
            return (None, None);
        };
        let rules = settings.rules;
        let key = key_of(group_id, partition);
        let started = match self.is_clustered {
            false => track(&mut state.partitions, &key, log, &settings, log.stored(&key)),
            // Loaded from the coordinator first (`install`), at the epoch this node leads the partition at now.
            true => {
                let epoch = log.leader_epoch(&partition.topic, partition.partition);
                if state.partitions.get(&key).is_none_or(|tracked| tracked.leader_epoch != epoch) {
                    return (None, None);
                }
                false
            }
        };
        let Some(tracked) = state.partitions.get_mut(&key) else { return (None, None) };
        let moved = tracked.partition.skip_below(log_start);
        let expired = tracked.partition.expire_locks(now, &rules);
        let read_from = tracked.partition.read_from(&rules).filter(|offset| *offset < readable_end);
        // Records archived as their locks ran out leave the stored state as soon as they have dead letters to
        // write (else at the next store, as the locks themselves are never stored).
        let to_store = (started || moved || tracked.partition.has_dead_letters()).then(|| snapshot(&key, tracked));
        drop(state);
        if expired > 0 {
            self.released.send_modify(|n| *n += 1);
        }
        (read_from, to_store)
    }

    /// On a cluster: whether this node must load `partition`'s window from the group's coordinator before it
    /// reads it (it has none, or one loaded at another leader epoch than the one it leads at now).
    pub fn needs_load(&self, group_id: &str, partition: &TopicPartition, log: &dyn ShareLog) -> bool {
        let epoch = log.leader_epoch(&partition.topic, partition.partition);
        let state = self.lock();
        self.is_clustered
            && state.partitions.get(&key_of(group_id, partition)).is_none_or(|tracked| tracked.leader_epoch != epoch)
    }

    /// On a cluster: installs `partition`'s window loaded from the coordinator (`stored`: what it holds), or
    /// starts it where the group's reset policy says when nothing is stored, in place of one of another leader
    /// epoch. Returns the state to store first when it was started.
    pub fn install(
        &self,
        group_id: &str,
        partition: &TopicPartition,
        stored: Option<crate::offsets::StoredShareState>,
        log: &dyn ShareLog,
    ) -> Option<StateToStore> {
        let settings = self.configs.share_settings(group_id);
        let key = key_of(group_id, partition);
        let epoch = log.leader_epoch(&partition.topic, partition.partition);
        let mut state = self.lock();
        if state.partitions.get(&key).is_some_and(|tracked| tracked.leader_epoch == epoch) {
            return None;
        }
        state.partitions.remove(&key);
        let started = track(&mut state.partitions, &key, log, &settings, stored);
        let tracked = state.partitions.get_mut(&key)?;
        started.then(|| snapshot(&key, tracked))
    }

    /// Drops a window whose save was fenced (`BrokerError::ShareStateFenced`): the next read loads it again.
    /// Counts the outcome of `partition`'s dead letters (`dead_letters.rs`), if this node still holds its window.
    pub fn count_dead_letters(&self, key: &OffsetKey, written: u64, lost: u64) {
        if let Some(tracked) = self.lock().partitions.get_mut(key) {
            tracked.partition.count_dead_letters(written, lost);
        }
    }

    pub fn forget_window(&self, group_id: &str, partition: &TopicPartition) {
        self.lock().partitions.remove(&key_of(group_id, partition));
    }

    /// Drops this node's windows of `group` (of `topics` only, when given) and its members' sessions here: the
    /// group's coordinator reset or deleted them, and the next read loads what it stored.
    pub fn forget_windows(&self, group_id: &str, topics: Option<&BTreeSet<String>>) {
        let mut state = self.lock();
        state.partitions.retain(|key, _| key.group != group_id || topics.is_some_and(|t| !t.contains(&key.topic)));
        if topics.is_none() {
            state.sessions.retain(|(group, _), _| group != group_id);
        }
    }

    /// Acquires for `member` what the read `batches` of `partition` offer (see `SharePartition::acquire`).
    pub fn acquire(
        &self,
        group_id: &str,
        member_id: &str,
        partition: &TopicPartition,
        batches: &[BatchSpan],
        max_records: usize,
        now: Instant,
    ) -> Vec<Acquired> {
        let mut state = self.lock();
        let rules = self.configs.share_settings(group_id).rules;
        let session = state.sessions.get(&(group_id.to_owned(), member_id.to_owned())).map(|s| Arc::clone(&s.name));
        let member = || state.groups.get(group_id)?.members.get(member_id).map(|member| Arc::clone(&member.name));
        // A rill member (ShareConsume) reads without a share session, as the group's member on a single node.
        let Some(name) = session.or_else(member) else {
            return Vec::new();
        };
        match state.partitions.get_mut(&key_of(group_id, partition)) {
            Some(tracked) => tracked.partition.acquire(batches, &name, now, max_records, &rules),
            None => Vec::new(),
        }
    }

    /// When a fetch waiting on `partitions` should look again even if nothing is appended or released: the
    /// first of their locks to run out.
    pub fn next_deadline(&self, group_id: &str, partitions: &[TopicPartition]) -> Option<Instant> {
        let state = self.lock();
        partitions
            .iter()
            .filter_map(|partition| state.partitions.get(&key_of(group_id, partition)))
            .filter_map(|tracked| tracked.partition.next_deadline())
            .min()
    }

    pub fn watch_released(&self) -> watch::Receiver<u64> {
        self.released.subscribe()
    }

    /// Every share group, and how many members it has (for ListGroups).
    pub fn list(&self, now: Instant) -> Vec<(String, usize)> {
        let mut state = self.lock();
        let names: Vec<String> = state.groups.keys().cloned().collect();
        for name in &names {
            self.expire_members(&mut state, name, now);
        }
        state.groups.iter().map(|(name, group)| (name.clone(), group.members.len())).collect()
    }

    pub fn describe(&self, group_id: &str, now: Instant) -> Option<ShareGroupView> {
        let mut state = self.lock();
        self.expire_members(&mut state, group_id, now);
        let group = state.groups.get(group_id)?;
        let members = group
            .members
            .iter()
            .map(|(id, member)| ShareMemberView {
                member_id: id.clone(),
                member_epoch: member.epoch,
                client_id: member.client_id.clone(),
                client_host: member.client_host.clone(),
                rack: member.rack.clone(),
                subscribed_topics: member.subscribed.clone(),
                assignment: member.assignment.clone(),
            })
            .collect();
        Some(ShareGroupView { group_epoch: group.group_epoch, assignment_epoch: group.group_epoch, members })
    }

    /// The group's share partitions (those it has started, loaded or not), in (topic, partition) order.
    pub fn partitions(&self, group_id: &str, log: &dyn ShareLog) -> Vec<SharePartitionView> {
        let state = self.lock();
        let mut views: BTreeMap<TopicPartition, SharePartitionView> = state
            .partitions
            .iter()
            .filter(|(key, _)| key.group == group_id)
            .map(|(key, tracked)| {
                let partition = TopicPartition::new(key.topic.clone(), key.partition);
                let view = SharePartitionView {
                    partition: partition.clone(),
                    start_offset: tracked.partition.start(),
                    in_flight: tracked.partition.in_flight(),
                    acquired: tracked.partition.acquired(),
                };
                (partition, view)
            })
            .collect();
        let rules = self.configs.share_settings(group_id).rules;
        drop(state);
        for (key, bytes) in log.stored_in_group(group_id) {
            let partition = TopicPartition::new(key.topic.clone(), key.partition);
            if views.contains_key(&partition) {
                continue;
            }
            if let Some(stored) = SharePartition::decode(&bytes, &rules) {
                let view = SharePartitionView {
                    partition: partition.clone(),
                    start_offset: stored.start(),
                    in_flight: stored.in_flight(),
                    acquired: 0,
                };
                views.insert(partition, view);
            }
        }
        views.into_values().collect()
    }

    /// Moves a share group without members to `offset` in each of `targets` (`rill group reset-offsets`, Kafka's
    /// AlterShareGroupOffsets), forgetting what was in flight there. Returns the states to store.
    pub fn reset(
        &self,
        group_id: &str,
        targets: &[(TopicPartition, i64)],
        log: &dyn ShareLog,
        now: Instant,
    ) -> Result<Vec<StateToStore>, ShareError> {
        let mut state = self.lock();
        self.expire_members(&mut state, group_id, now);
        if let Some(group) = state.groups.get(group_id).filter(|group| !group.members.is_empty()) {
            return Err(ShareError::NotEmpty { group: group_id.to_owned(), members: group.members.len() });
        }
        let mut to_store = Vec::with_capacity(targets.len());
        for (partition, offset) in targets {
            let key = key_of(group_id, partition);
            // A new fencing token, above the window's and the store's: a window loaded before the reset (at a
            // partition's leader, on a cluster) can no longer store over it.
            let loaded = state.partitions.get(&key).map_or(0, |tracked| tracked.version);
            let stored = log.stored(&key).map_or(0, |stored| stored.version);
            let token = crate::offsets::fencing_token(loaded.max(stored)).saturating_add(1);
            let leader_epoch = log.leader_epoch(&partition.topic, partition.partition);
            let version = u64::from(token) << 32;
            let mut tracked = Tracked { partition: SharePartition::starting_at(*offset), version, leader_epoch };
            to_store.push(snapshot(&key, &mut tracked));
            // On a cluster the partition's leader keeps the window: it loads the reset state at its next read.
            match self.is_clustered {
                true => state.partitions.remove(&key),
                false => state.partitions.insert(key, tracked),
            };
        }
        Ok(to_store)
    }

    /// Forgets a share group's state in `topics` (Kafka's DeleteShareGroupOffsets); the group must have no
    /// members. The caller tombstones what the store holds.
    pub fn forget_topics_of(&self, group_id: &str, topics: &BTreeSet<String>, now: Instant) -> Result<(), ShareError> {
        let mut state = self.lock();
        self.expire_members(&mut state, group_id, now);
        if let Some(group) = state.groups.get(group_id).filter(|group| !group.members.is_empty()) {
            return Err(ShareError::NotEmpty { group: group_id.to_owned(), members: group.members.len() });
        }
        state.partitions.retain(|key, _| key.group != group_id || !topics.contains(&key.topic));
        Ok(())
    }

    /// Every share group's member count, and every loaded share partition's state and counts, for `/metrics`.
    pub fn metrics(&self) -> (Vec<(String, usize)>, Vec<SharePartitionMetrics>) {
        let state = self.lock();
        let members = state.groups.iter().map(|(name, group)| (name.clone(), group.members.len())).collect();
        let partitions = state
            .partitions
            .iter()
            .map(|(key, tracked)| SharePartitionMetrics {
                key: key.clone(),
                start_offset: tracked.partition.start(),
                in_flight: tracked.partition.in_flight(),
                acquired: tracked.partition.acquired(),
                counts: tracked.partition.counts(),
            })
            .collect();
        (members, partitions)
    }

    /// Forgets a share group without members: its members' records and its partitions' states (the caller
    /// tombstones what the store holds). Returns whether it was a share group.
    pub fn delete(&self, group_id: &str, now: Instant) -> Result<bool, ShareError> {
        let mut state = self.lock();
        self.expire_members(&mut state, group_id, now);
        let Some(group) = state.groups.get(group_id) else { return Ok(false) };
        if !group.members.is_empty() {
            return Err(ShareError::NotEmpty { group: group_id.to_owned(), members: group.members.len() });
        }
        state.groups.remove(group_id);
        state.partitions.retain(|key, _| key.group != group_id);
        state.sessions.retain(|(group, _), _| group != group_id);
        Ok(true)
    }

    /// On a cluster: forgets the members of the groups this node no longer coordinates (`is_moved`). The windows
    /// and sessions it keeps as a partition leader stay.
    pub fn drop_groups(&self, is_moved: impl Fn(&str) -> bool) {
        self.lock().groups.retain(|group, _| !is_moved(group));
    }

    /// Forgets every group's state of a deleted topic (a topic created again under its name starts afresh).
    pub fn forget_topic(&self, topic: &str) {
        let mut state = self.lock();
        state.partitions.retain(|key, _| key.topic != topic);
    }
}

fn duration_ms(duration: Duration) -> i32 {
    i32::try_from(duration.as_millis()).unwrap_or(i32::MAX)
}

fn snapshot(key: &OffsetKey, tracked: &mut Tracked) -> StateToStore {
    tracked.version += 1;
    let dead_letters = tracked.partition.take_dead_letters();
    StateToStore { key: key.clone(), version: tracked.version, bytes: tracked.partition.encode(), dead_letters }
}

/// Loads `key`'s share partition from `stored`, or starts it where the reset policy says. Returns whether it
/// was started (and so must be stored). The window's versions take a fencing token above the stored one's and
/// at least the partition's leader epoch (`offsets/share_states.rs`), so every window stored before it loaded
/// is fenced by its first save.
fn track(
    partitions: &mut BTreeMap<OffsetKey, Tracked>,
    key: &OffsetKey,
    log: &dyn ShareLog,
    settings: &ShareSettings,
    stored: Option<crate::offsets::StoredShareState>,
) -> bool {
    if partitions.contains_key(key) {
        return false;
    }
    let leader_epoch = log.leader_epoch(&key.topic, key.partition);
    let token = stored.as_ref().map_or(0, |s| crate::offsets::fencing_token(s.version).saturating_add(1));
    let version = u64::from(token.max(leader_epoch)) << 32;
    if let Some(stored) = stored.and_then(|stored| SharePartition::decode(&stored.bytes, &settings.rules)) {
        partitions.insert(key.clone(), Tracked { partition: stored, version, leader_epoch });
        return false;
    }
    let (log_start, readable_end) = log.bounds(&key.topic, key.partition, settings.is_read_committed).unwrap_or((0, 0));
    let start = match settings.auto_offset_reset {
        ShareStart::Earliest => log_start,
        ShareStart::Latest => readable_end,
        ShareStart::ByDuration(age) => {
            let since = crate::node::now_ms().saturating_sub(i64::try_from(age.as_millis()).unwrap_or(i64::MAX));
            log.offset_at_time(&key.topic, key.partition, since)
                .map_or(readable_end, |offset| offset.clamp(log_start, readable_end.max(log_start)))
        }
    };
    partitions.insert(key.clone(), Tracked { partition: SharePartition::starting_at(start), version, leader_epoch });
    true
}

fn release_everywhere(
    partitions: &mut BTreeMap<OffsetKey, Tracked>,
    group_id: &str,
    member: &str,
    rules: &DeliveryRules,
) -> usize {
    partitions
        .iter_mut()
        .filter(|(key, _)| key.group == group_id)
        .map(|(_, tracked)| tracked.partition.release_member(member, rules))
        .sum()
}

/// Recomputes the group's assignment; a member whose partitions changed (or that just joined) gets a new epoch.
/// Starts the share partitions newly assigned, returning their states to store.
fn reassign(
    group: &mut ShareGroup,
    group_id: &str,
    partitions: &mut BTreeMap<OffsetKey, Tracked>,
    log: &dyn ShareLog,
    settings: &ShareSettings,
    is_clustered: bool,
) -> Vec<StateToStore> {
    let subscriptions: BTreeMap<String, BTreeSet<String>> =
        group.members.iter().map(|(id, member)| (id.clone(), member.subscribed.clone())).collect();
    let topics: BTreeSet<String> = subscriptions.values().flatten().cloned().collect();
    let target = assignment::assign(&subscriptions, &log.partition_counts(&topics));
    let mut changed = false;
    for (id, member) in group.members.iter_mut() {
        let assigned = target.get(id).cloned().unwrap_or_default();
        if assigned != member.assignment || member.epoch == 0 {
            member.epoch += 1;
            member.assignment = assigned;
            changed = true;
        }
    }
    if changed {
        group.group_epoch += 1;
    }
    let mut to_store = Vec::new();
    // On a cluster the partitions' leaders start their windows, at their first fetch (the module's doc).
    if is_clustered {
        return to_store;
    }
    for partition in target.values().flatten() {
        let key = key_of(group_id, partition);
        if track(partitions, &key, log, settings, log.stored(&key)) {
            let tracked = partitions.get_mut(&key).expect("tracked just above");
            to_store.push(snapshot(&key, tracked));
        }
    }
    to_store
}

/// The node as the share groups see it: its registry's topics and logs, its store's saved states.
impl ShareLog for crate::node::Node {
    fn partition_counts(&self, topics: &BTreeSet<String>) -> BTreeMap<String, u32> {
        crate::groups::partition_counts_of(self, topics)
    }

    fn bounds(&self, topic: &str, partition: u32, is_read_committed: bool) -> Option<(i64, i64)> {
        let partition = self.registry.partition(topic, partition).ok()?;
        let log = partition.log();
        let end = if is_read_committed { log.last_stable_offset() } else { log.high_watermark() };
        Some((log.log_start_offset(), end))
    }

    fn offset_at_time(&self, topic: &str, partition: u32, timestamp_ms: i64) -> Option<i64> {
        let log = self.registry.partition(topic, partition).ok()?;
        // A time index lookup (mapped, and one batch read): bounded work, done once when a share partition starts.
        match log.log().offset_for_timestamp(timestamp_ms) {
            Ok(offset) => offset,
            Err(err) => {
                tracing::warn!(topic, partition, error = %err, "share group start by time failed; starting at the end");
                None
            }
        }
    }

    fn stored(&self, key: &OffsetKey) -> Option<crate::offsets::StoredShareState> {
        self.offsets.share_state(key)
    }

    fn leader_epoch(&self, topic: &str, partition: u32) -> u32 {
        match &self.replication {
            Some(replication) => replication.leader_epoch(topic, partition).map_or(0, |(epoch, _)| epoch),
            None => 0,
        }
    }

    fn stored_in_group(&self, group: &str) -> Vec<(OffsetKey, Vec<u8>)> {
        self.offsets.share_states_of(group)
    }
}

#[cfg(test)]
mod tests;
