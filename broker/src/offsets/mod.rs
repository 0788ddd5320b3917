//! Committed consumer-group offsets, stored durably in an internal log and kept in memory for lookups. On a
//! single node the log is `<data>/__consumer_offsets-0`, local and fsynced; on a cluster node it is the partitions
//! of the replicated topic `__consumer_offsets` this node leads (`replicated.rs`), with the same record format.
//!
//! Each commit is one record: the key names (group, topic, partition), the value holds the offset, the commit
//! time and the metadata string. On start the whole log is replayed and the last record per key wins, as in
//! Kafka's `__consumer_offsets`. A commit is answered only after its records are fsynced, whatever any topic's
//! policy is, so an acknowledged commit survives a crash.
//!
//! Record layout (big-endian, version byte first so the format can grow):
//! - key: `0u8`, group length (u16), group (UTF-8), topic length (u16), topic (UTF-8), partition (u32)
//! - value: `0u8`, offset (i64), commit time ms (i64), metadata (UTF-8, the rest of the value)
//!
//! The same log holds share groups' partition states (`share_states.rs`), keyed by (group, topic, partition) with
//! a key version byte of 1, so they replay, compact and are deleted with the commits.
//!
//! The log keeps every commit until the broker starts: then, if most of its records are superseded, it is
//! rewritten with one record per live key (`compaction.rs`), so replay time follows the number of committed
//! partitions rather than the number of commits ever made.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Arc, Mutex};

use rill_protocol::{BatchIter, Record, RecordBatchBuilder};
use rill_storage::{Durability, Log, LogConfig};

use crate::error::{BrokerError, Result};
use crate::node::now_ms;
use crate::partition::DurableSyncs;
use crate::registry::blocking;
use crate::replication::CannotWrite;

mod compaction;
pub mod replicated;
mod share_states;

pub use replicated::OFFSETS_TOPIC;
pub use share_states::{fencing_token, StoredShareState};

/// The internal log's directory name; the `__` prefix is reserved, so no user topic can collide with it.
pub const OFFSETS_LOG_DIR: &str = "__consumer_offsets-0";
const FORMAT_VERSION: u8 = 0;
/// Longest metadata string a commit may carry.
pub const MAX_METADATA_BYTES: usize = 4096;
/// Longest group id (Kafka's topic-name limit, for symmetry).
pub const MAX_GROUP_CHARS: usize = 249;
const REPLAY_READ_BYTES: usize = 1 << 20;
/// Bytes per batch of tombstones written by a group deletion (well under the log's `max_batch_bytes`).
const DELETE_BATCH_BYTES: usize = 1 << 20;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
pub struct OffsetKey {
    pub group: String,
    pub topic: String,
    pub partition: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    pub offset: i64,
    pub metadata: String,
    pub commit_time_ms: i64,
}

/// Where the commits go.
enum Backing {
    /// A single node: the local log, fsynced before a commit is answered (by its `DurableSyncs`, so that commits
    /// waiting for an fsync hold no thread).
    Local(Arc<Log>, Arc<DurableSyncs>),
    /// A cluster node: the `__consumer_offsets` partitions it leads; a commit is answered at the high watermark.
    Replicated(replicated::Coordinators),
}

/// Where one commit or delete was appended, and what must happen before it is answered.
enum Appended {
    Local(Arc<Log>, Arc<DurableSyncs>, i64),
    Replicated(replicated::Loaded, i64),
}

pub struct OffsetStore {
    backing: Backing,
    /// Guards appends to the log together with the map update, so the map and the log agree on which of two
    /// concurrent commits of one key came last. Held only inside blocking tasks, never across an await.
    committed: Mutex<BTreeMap<OffsetKey, Committed>>,
    /// Share groups' partition states (`share_states.rs`); locked after `committed`, never before it.
    share_states: Mutex<BTreeMap<OffsetKey, share_states::StoredShareState>>,
}

impl OffsetStore {
    /// Opens (or creates) the offsets log under `data_dir` and replays it.
    pub async fn open(data_dir: &Path) -> Result<OffsetStore> {
        let data_dir = data_dir.to_owned();
        let dir = data_dir.join(OFFSETS_LOG_DIR);
        blocking(move || {
            let config = LogConfig {
                segment_bytes: 64 << 20,
                max_batch_bytes: 4 << 20,
                retention_bytes: None,
                retention_ms: None,
                // Commits are fsynced explicitly with `sync_through` before they are answered.
                durability: Durability::Never,
                ..LogConfig::default()
            };
            compaction::finish_interrupted(&data_dir)?;
            let mut log = Log::open(&dir, config)?;
            let mut replayed = replay(&log)?;
            if compaction::is_worth_it(replayed.records, replayed.committed.len() + replayed.share_states.len()) {
                log.close()?;
                drop(log);
                compaction::rewrite(&data_dir, &replayed.committed, &replayed.share_states, config)?;
                log = Log::open(&dir, config)?;
                replayed = replay(&log)?;
            }
            let Replayed { committed, share_states, records } = replayed;
            tracing::info!(
                entries = committed.len(),
                share_partitions = share_states.len(),
                records,
                "restored committed offsets"
            );
            let syncs = DurableSyncs::new(log.durable_end_offset());
            Ok(OffsetStore {
                backing: Backing::Local(Arc::new(log), syncs),
                committed: Mutex::new(committed),
                share_states: Mutex::new(share_states),
            })
        })
        .await
    }

    /// A cluster node's store: empty until this node leads (and has loaded) partitions of `__consumer_offsets`.
    /// `controller` is the raft controller in a node (the replication simulation passes its stand-in); the
    /// topic's partition count is `config.offsets_topic_partitions` until the topic exists.
    pub fn replicated(
        controller: Arc<dyn crate::replication::links::ControllerLink>,
        node_id: u64,
        config: Arc<crate::config::BrokerConfig>,
    ) -> OffsetStore {
        OffsetStore {
            backing: Backing::Replicated(replicated::Coordinators::new(controller, node_id, config)),
            committed: Mutex::new(BTreeMap::new()),
            share_states: Mutex::new(BTreeMap::new()),
        }
    }

    /// Ok on a single node, or if this node coordinates the group (leads its offsets partition and has loaded
    /// it); `not-coordinator`, naming the coordinator when there is one, otherwise.
    pub fn check_coordinator(&self, group: &str) -> Result<()> {
        match &self.backing {
            Backing::Local(..) => Ok(()),
            Backing::Replicated(coordinators) => coordinators.leading(group).map(|_| ()),
        }
    }

    /// The group's coordinator (node id and address) on a cluster; `None` on a single node, or while the
    /// group's offsets partition has no leader.
    pub fn coordinator(&self, group: &str) -> Option<(u64, String)> {
        self.coordinators().and_then(|c| c.coordinator(group))
    }

    /// The offsets partition a group's commits go to (0 on a single node).
    pub fn partition_of(&self, group: &str) -> u32 {
        self.coordinators().map_or(0, |c| c.partition_of(group))
    }

    /// Appends `batch` for `group` where the backing keeps it. Runs under the store's lock.
    fn append_for(&self, group: &str, batch: &[u8]) -> Result<Appended> {
        match &self.backing {
            Backing::Local(log, syncs) => {
                let end = log.append(batch)?.last_offset + 1;
                Ok(Appended::Local(Arc::clone(log), Arc::clone(syncs), end))
            }
            Backing::Replicated(coordinators) => {
                let loaded = coordinators.leading(group)?;
                // As Kafka's coordinator: a commit that could be acknowledged by fewer copies than the topic's
                // min_insync_replicas is refused, so an acknowledged commit survives the coordinator's loss.
                let replication = loaded.replication.upgrade();
                if let Some(replication) = &replication {
                    replication.check_in_sync(OFFSETS_TOPIC, loaded.partition.index)?;
                }
                // Past the first half of the disk reserve, commits stop here too (`disk_reserve.rs`).
                let room = replication.as_ref().map_or(Ok(()), |r| r.take_commit_room(batch.len() as u64));
                let appended = room.and_then(|()| Ok(loaded.partition.log().append(batch)?));
                let end = match appended {
                    Ok(appended) => appended.last_offset + 1,
                    Err(err) => {
                        // A coordinator whose disk is full, or whose offsets log had an fsync fail, hands the offsets
                        // partition, and so its groups, over.
                        if let (Some(replication), Some(why)) = (&replication, CannotWrite::of(&err)) {
                            replication.resign(OFFSETS_TOPIC, loaded.partition.index, loaded.epoch, why);
                        }
                        return Err(err);
                    }
                };
                Ok(Appended::Replicated(loaded, end))
            }
        }
    }

    /// Before a commit or delete is answered: fsynced on a single node; on a cluster, on every in-sync replica.
    async fn settle(&self, group: &str, appended: Appended) -> Result<()> {
        match appended {
            Appended::Local(log, syncs, end) => syncs.wait_through(&log, end).await,
            Appended::Replicated(loaded, end) => {
                let Some(replication) = loaded.replication.upgrade() else { return Err(BrokerError::ShuttingDown) };
                replication.on_append(&loaded.partition);
                replication.wait_replicated(&loaded.partition, loaded.epoch, end).await.map_err(|err| match err {
                    // Deposed while waiting: the commit may or may not survive; the member retries at the new
                    // coordinator (where its membership is gone, so it rejoins and re-reads from the last commit).
                    BrokerError::NotLeader { .. } => match self.coordinators() {
                        Some(c) => c.leading(group).err().unwrap_or(err),
                        None => err,
                    },
                    other => other,
                })
            }
        }
    }

    /// Stores the commits durably; returns once they are fsynced. The caller has validated them.
    #[cfg(test)]
    pub async fn commit(self: &Arc<Self>, commits: Vec<(OffsetKey, i64, String)>, now_ms: i64) -> Result<()> {
        self.commit_checked(commits, now_ms, || Ok(())).await
    }

    /// Stores the commits durably if `check` passes. `check` runs under the store's lock, so nothing can read
    /// these offsets between the check and the store: a group member's commit is checked against the group's
    /// membership at the instant it lands, and a partition handed to a new owner after the check is read by
    /// that owner only after the commit is in the map.
    pub async fn commit_checked(
        self: &Arc<Self>,
        commits: Vec<(OffsetKey, i64, String)>,
        now_ms: i64,
        check: impl FnOnce() -> Result<()> + Send + 'static,
    ) -> Result<()> {
        if commits.is_empty() {
            return blocking(check).await;
        }
        let group = commits[0].0.group.clone();
        if commits.iter().any(|(key, _, _)| key.group != group) {
            return Err(BrokerError::Internal("one commit call for several groups".into()));
        }
        let store = Arc::clone(self);
        let routed = group.clone();
        let appended = blocking(move || {
            let mut builder = RecordBatchBuilder::default();
            for (key, offset, metadata) in &commits {
                builder.push(&Record {
                    key: Some(encode_key(key)),
                    value: Some(encode_value(*offset, now_ms, metadata)),
                    headers: Vec::new(),
                    timestamp_ms: now_ms,
                });
            }
            let batch = builder.build();
            let mut committed = store.committed.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            store.check_coordinator(&routed)?;
            check()?;
            let appended = store.append_for(&routed, &batch)?;
            for (key, offset, metadata) in commits {
                committed.insert(key, Committed { offset, metadata, commit_time_ms: now_ms });
            }
            Ok(appended)
        })
        .await?;
        self.settle(&group, appended).await
    }

    /// Forgets every committed offset of `group` (a tombstone per key, fsynced) if `check` passes under the
    /// store's lock. Returns how many were forgotten.
    pub async fn delete_group_checked(
        self: &Arc<Self>,
        group: String,
        now_ms: i64,
        check: impl FnOnce() -> Result<()> + Send + 'static,
    ) -> Result<usize> {
        let forgets = group.clone();
        self.forget_checked(group, move |key, _| key.group == forgets, now_ms, check).await
    }

    /// Forgets the committed offsets of `keys` that exist (Kafka's OffsetDelete), like `delete_group_checked`.
    /// Returns how many were forgotten.
    pub async fn delete_checked(
        self: &Arc<Self>,
        keys: BTreeSet<OffsetKey>,
        now_ms: i64,
        check: impl FnOnce() -> Result<()> + Send + 'static,
    ) -> Result<usize> {
        let Some(group) = keys.first().map(|key| key.group.clone()) else { return Ok(0) };
        self.forget_checked(group, move |key, _| keys.contains(key), now_ms, check).await
    }

    /// Forgets the offsets of deleted `topics` committed up to `deleted_at_ms`, in every group this node
    /// coordinates (a tombstone per key, as for a deleted group), as Kafka's coordinator does when partitions
    /// are deleted: a group that later consumes a re-created topic of the same name must start from its reset
    /// policy, not skip to where it was in the old topic. A commit after `deleted_at_ms` is the new topic's and
    /// stays. A group whose coordinator moved meanwhile is left to the new one. Returns how many were forgotten.
    pub async fn forget_topics(self: &Arc<Self>, topics: BTreeSet<String>, deleted_at_ms: i64) -> Result<usize> {
        let topics = Arc::new(topics);
        let is_forgotten = {
            let topics = Arc::clone(&topics);
            move |key: &OffsetKey, commit: &Committed| {
                topics.contains(&key.topic) && commit.commit_time_ms <= deleted_at_ms
            }
        };
        let groups: BTreeSet<String> = self
            .lock()
            .iter()
            .filter(|(key, commit)| is_forgotten(key, commit))
            .map(|(key, _)| key.group.clone())
            .collect();
        let mut forgotten = 0;
        for group in groups {
            let (in_group, is_forgotten) = (group.clone(), is_forgotten.clone());
            let forgets = move |key: &OffsetKey, commit: &Committed| key.group == in_group && is_forgotten(key, commit);
            match self.forget_checked(group.clone(), forgets, now_ms(), || Ok(())).await {
                Ok(count) => forgotten += count,
                Err(BrokerError::NotCoordinator { .. }) => {}
                Err(err) => return Err(err),
            }
        }
        if forgotten > 0 {
            tracing::info!(topics = ?topics, forgotten, "forgot the committed offsets of deleted topics");
        }
        Ok(forgotten)
    }

    async fn forget_checked(
        self: &Arc<Self>,
        group: String,
        forgets: impl Fn(&OffsetKey, &Committed) -> bool + Send + 'static,
        now_ms: i64,
        check: impl FnOnce() -> Result<()> + Send + 'static,
    ) -> Result<usize> {
        let store = Arc::clone(self);
        let routed = group.clone();
        let (appended, deleted) = blocking(move || {
            let mut committed = store.committed.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            store.check_coordinator(&routed)?;
            check()?;
            let keys: Vec<OffsetKey> =
                committed.iter().filter(|(k, c)| forgets(k, c)).map(|(k, _)| k.clone()).collect();
            if keys.is_empty() {
                return Ok((None, 0));
            }
            let mut builder = RecordBatchBuilder::default();
            for key in &keys {
                let record =
                    Record { key: Some(encode_key(key)), value: None, headers: Vec::new(), timestamp_ms: now_ms };
                // Tombstones are small; split like compaction does so a huge group never exceeds the batch limit.
                if !builder.is_empty() && builder.encoded_bytes() + builder.record_bytes(&record) > DELETE_BATCH_BYTES {
                    store.append_for(&routed, &std::mem::take(&mut builder).build())?;
                }
                builder.push(&record);
            }
            let appended = store.append_for(&routed, &builder.build())?;
            for key in &keys {
                committed.remove(key);
            }
            Ok((Some(appended), keys.len()))
        })
        .await?;
        if let Some(appended) = appended {
            self.settle(&group, appended).await?;
        }
        Ok(deleted)
    }

    /// Every group with committed offsets, and the time of its newest commit.
    pub fn groups(&self) -> BTreeMap<String, i64> {
        let mut groups = BTreeMap::new();
        for (key, commit) in self.lock().iter() {
            let newest = groups.entry(key.group.clone()).or_insert(commit.commit_time_ms);
            *newest = (*newest).max(commit.commit_time_ms);
        }
        groups
    }

    /// Every committed offset of every group, in (group, topic, partition) order: one pass under the lock, where
    /// `groups` then `for_group` per group would scan the map once per group.
    pub fn all_committed(&self) -> Vec<(OffsetKey, i64)> {
        self.lock().iter().map(|(key, commit)| (key.clone(), commit.offset)).collect()
    }

    /// The group's committed offset for one partition.
    pub fn get(&self, key: &OffsetKey) -> Option<Committed> {
        self.lock().get(key).cloned()
    }

    /// Every partition the group has committed for, in (topic, partition) order.
    pub fn for_group(&self, group: &str) -> Vec<(OffsetKey, Committed)> {
        self.lock().iter().filter(|(k, _)| k.group == group).map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    /// Closes the log cleanly.
    pub async fn close(&self) -> Result<()> {
        match &self.backing {
            Backing::Local(log, _) => {
                let log = Arc::clone(log);
                blocking(move || Ok(log.close()?)).await
            }
            // The registry closes the offsets topic's partitions with every other topic's.
            Backing::Replicated(_) => Ok(()),
        }
    }

    #[cfg(test)]
    fn local_log(&self) -> &Arc<Log> {
        match &self.backing {
            Backing::Local(log, _) => log,
            Backing::Replicated(_) => panic!("a cluster node's store has no local log"),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<OffsetKey, Committed>> {
        self.committed.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// What a replay of the log found.
struct Replayed {
    /// The live commits.
    committed: BTreeMap<OffsetKey, Committed>,
    /// The live share partition states.
    share_states: BTreeMap<OffsetKey, share_states::StoredShareState>,
    /// How many records it took to find them.
    records: usize,
}

/// The live commits and share partition states in the log.
fn replay(log: &Log) -> Result<Replayed> {
    let mut committed = BTreeMap::new();
    let mut share_states = BTreeMap::new();
    let mut records_seen = 0;
    let mut offset = log.log_start_offset();
    while offset < log.high_watermark() {
        let read = log.read(offset, REPLAY_READ_BYTES)?;
        if read.batches.is_empty() {
            break;
        }
        for batch in BatchIter::new(read.batches) {
            let batch = batch.map_err(|e| BrokerError::Internal(format!("offsets log at {offset}: {e}")))?;
            offset = batch.header.next_offset();
            let records = batch.records().map_err(|e| BrokerError::Internal(format!("offsets log: {e}")))?;
            for record in records {
                let record = record.map_err(|e| BrokerError::Internal(format!("offsets log: {e}")))?;
                records_seen += 1;
                if let Some(key) = record.key.and_then(share_states::decode_key) {
                    share_states::replay_record(&mut share_states, key, record.value);
                    continue;
                }
                match (record.key.and_then(decode_key), record.value.map(decode_value)) {
                    (Some(key), Some(Some(value))) => {
                        committed.insert(key, value);
                    }
                    // A tombstone (null value) forgets the key: group deletion and expiry write them.
                    (Some(key), None) => {
                        committed.remove(&key);
                    }
                    _ => tracing::warn!(offset = record.offset, "skipping an undecodable committed-offset record"),
                }
            }
        }
    }
    Ok(Replayed { committed, share_states, records: records_seen })
}

fn encode_key(key: &OffsetKey) -> Vec<u8> {
    encode_key_versioned(FORMAT_VERSION, key)
}

/// A key's layout, after a version byte that says what the record is (0 a commit, 1 a share partition's state).
fn encode_key_versioned(version: u8, key: &OffsetKey) -> Vec<u8> {
    let mut out = Vec::with_capacity(9 + key.group.len() + key.topic.len());
    out.push(version);
    // Both names are length-checked (<= 249 chars of at most 4 bytes) before they get here.
    out.extend_from_slice(&(key.group.len() as u16).to_be_bytes());
    out.extend_from_slice(key.group.as_bytes());
    out.extend_from_slice(&(key.topic.len() as u16).to_be_bytes());
    out.extend_from_slice(key.topic.as_bytes());
    out.extend_from_slice(&key.partition.to_be_bytes());
    out
}

fn decode_key(bytes: &[u8]) -> Option<OffsetKey> {
    decode_key_versioned(FORMAT_VERSION, bytes)
}

fn decode_key_versioned(expected: u8, bytes: &[u8]) -> Option<OffsetKey> {
    let (&version, rest) = bytes.split_first()?;
    if version != expected {
        return None;
    }
    let (group, rest) = take_string(rest)?;
    let (topic, rest) = take_string(rest)?;
    let partition = u32::from_be_bytes(rest.try_into().ok()?);
    Some(OffsetKey { group, topic, partition })
}

fn take_string(bytes: &[u8]) -> Option<(String, &[u8])> {
    let len = u16::from_be_bytes(bytes.get(..2)?.try_into().ok()?) as usize;
    let text = std::str::from_utf8(bytes.get(2..2 + len)?).ok()?.to_owned();
    Some((text, &bytes[2 + len..]))
}

fn encode_value(offset: i64, commit_time_ms: i64, metadata: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(17 + metadata.len());
    out.push(FORMAT_VERSION);
    out.extend_from_slice(&offset.to_be_bytes());
    out.extend_from_slice(&commit_time_ms.to_be_bytes());
    out.extend_from_slice(metadata.as_bytes());
    out
}

fn decode_value(bytes: &[u8]) -> Option<Committed> {
    let (&version, rest) = bytes.split_first()?;
    if version != FORMAT_VERSION || rest.len() < 16 {
        return None;
    }
    let offset = i64::from_be_bytes(rest[0..8].try_into().ok()?);
    let commit_time_ms = i64::from_be_bytes(rest[8..16].try_into().ok()?);
    let metadata = std::str::from_utf8(&rest[16..]).ok()?.to_owned();
    Some(Committed { offset, metadata, commit_time_ms })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_values_round_trip_and_garbage_is_refused() {
        let key = OffsetKey { group: "g-1".into(), topic: "orders".into(), partition: 7 };
        assert_eq!(decode_key(&encode_key(&key)), Some(key));
        let value = Committed { offset: 42, metadata: "by me".into(), commit_time_ms: 1_700_000_000_000 };
        assert_eq!(decode_value(&encode_value(42, 1_700_000_000_000, "by me")), Some(value));
        for garbage in [&b""[..], b"\x00", b"\x01\x00\x01a\x00\x01b\x00\x00\x00\x01", b"\x00\x00\x05ab"] {
            assert_eq!(decode_key(garbage), None);
            assert_eq!(decode_value(garbage), None);
        }
    }

    proptest::proptest! {
        #[test]
        fn any_key_and_value_round_trip(
            group in "\\PC{1,40}", topic in "[a-z.]{1,40}", partition: u32,
            offset: i64, time: i64, metadata in "\\PC{0,100}",
        ) {
            let key = OffsetKey { group, topic, partition };
            proptest::prop_assert_eq!(decode_key(&encode_key(&key)), Some(key));
            let value = Committed { offset, metadata: metadata.clone(), commit_time_ms: time };
            proptest::prop_assert_eq!(decode_value(&encode_value(offset, time, &metadata)), Some(value));
        }

        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64)) {
            let _ = decode_key(&bytes);
            let _ = decode_value(&bytes);
        }
    }

    /// What a cluster's coordinator replays from a compacted offsets log (`registry::log_config_of`) is what it
    /// replayed before the compaction: each key's newest commit, and no tombstoned key.
    #[test]
    fn a_compacted_offsets_log_replays_the_same_commits() {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig {
            segment_bytes: 4096,
            max_batch_bytes: 4096,
            compaction: Some(replicated::COMPACTION),
            ..LogConfig::default()
        };
        let log = Log::open(dir.path(), config).unwrap();
        for n in 0..400i64 {
            let key = OffsetKey { group: format!("g{}", n % 7), topic: "t".into(), partition: (n % 5) as u32 };
            let value = (n % 37 != 36).then(|| encode_value(n, 1_000 + n, "m"));
            let mut builder = RecordBatchBuilder::default();
            builder.push(&Record { key: Some(encode_key(&key)), value, headers: Vec::new(), timestamp_ms: 1_000 });
            log.append(&builder.build()).unwrap();
        }
        let Replayed { committed: before, records: records_before, .. } = replay(&log).unwrap();
        let compacted = log.compact_if_configured().unwrap().expect("a pass was due");
        assert!(compacted.records_removed > 300, "{compacted:?}");
        let Replayed { committed: after, records: records_after, .. } = replay(&log).unwrap();
        assert_eq!(after, before);
        assert!(records_after < records_before / 4, "{records_after} records replayed, {records_before} before");
    }

    #[tokio::test]
    async fn commits_survive_a_reopen_and_the_last_one_wins() {
        let dir = tempfile::tempdir().unwrap();
        let key = |p| OffsetKey { group: "g".into(), topic: "t".into(), partition: p };
        {
            let store = Arc::new(OffsetStore::open(dir.path()).await.unwrap());
            store.commit(vec![(key(0), 5, "a".into()), (key(1), 9, String::new())], 1).await.unwrap();
            store.commit(vec![(key(0), 6, "b".into())], 2).await.unwrap();
            store.close().await.unwrap();
        }
        let store = OffsetStore::open(dir.path()).await.unwrap();
        assert_eq!(store.get(&key(0)), Some(Committed { offset: 6, metadata: "b".into(), commit_time_ms: 2 }));
        assert_eq!(store.for_group("g").len(), 2);
        assert!(store.for_group("other").is_empty());
    }

    /// A single node answers a commit only once it is fsynced, however many commit at once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_commits_are_answered_only_once_fsynced() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(OffsetStore::open(dir.path()).await.unwrap());
        let members: Vec<_> = (0..8u32)
            .map(|member| {
                let store = Arc::clone(&store);
                tokio::spawn(async move {
                    for n in 0..20 {
                        let key = OffsetKey { group: format!("g{member}"), topic: "t".into(), partition: 0 };
                        // This commit's record lands past the end read before it.
                        let end_before = store.local_log().log_end_offset();
                        store.commit(vec![(key, n, String::new())], 1).await.unwrap();
                        assert!(store.local_log().durable_end_offset() > end_before, "answered before its fsync");
                    }
                })
            })
            .collect();
        for member in members {
            member.await.unwrap();
        }
        let log = store.local_log();
        assert_eq!(log.durable_end_offset(), log.log_end_offset(), "every answered commit is on disk");
        assert_eq!(log.log_end_offset(), 160);
        store.close().await.unwrap();
    }

    #[tokio::test]
    async fn a_deleted_group_stays_deleted_after_a_reopen_and_a_failed_check_stores_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let key = |g: &str, p| OffsetKey { group: g.into(), topic: "t".into(), partition: p };
        {
            let store = Arc::new(OffsetStore::open(dir.path()).await.unwrap());
            store.commit(vec![(key("g", 0), 5, String::new()), (key("g", 1), 9, String::new())], 1).await.unwrap();
            store.commit(vec![(key("keep", 0), 3, String::new())], 1).await.unwrap();
            let refused = store
                .commit_checked(vec![(key("g", 0), 99, String::new())], 2, || Err(BrokerError::invalid("x", "no")))
                .await;
            assert!(refused.is_err());
            assert_eq!(store.get(&key("g", 0)).map(|c| c.offset), Some(5));
            let refused = store.delete_group_checked("g".into(), 3, || Err(BrokerError::invalid("x", "no"))).await;
            assert!(refused.is_err());
            assert_eq!(store.for_group("g").len(), 2);
            assert_eq!(store.delete_group_checked("g".into(), 3, || Ok(())).await.unwrap(), 2);
            assert_eq!(store.delete_group_checked("g".into(), 3, || Ok(())).await.unwrap(), 0);
            store.close().await.unwrap();
        }
        let store = OffsetStore::open(dir.path()).await.unwrap();
        assert!(store.for_group("g").is_empty());
        assert_eq!(store.groups().into_iter().collect::<Vec<_>>(), [("keep".to_string(), 1)]);
    }

    #[tokio::test]
    async fn a_deleted_topics_commits_up_to_its_deletion_are_forgotten_in_every_group_for_good() {
        let dir = tempfile::tempdir().unwrap();
        let key = |g: &str, t: &str| OffsetKey { group: g.into(), topic: t.into(), partition: 0 };
        {
            let store = Arc::new(OffsetStore::open(dir.path()).await.unwrap());
            store
                .commit(vec![(key("a", "gone"), 5, String::new()), (key("a", "kept"), 7, String::new())], 10)
                .await
                .unwrap();
            store.commit(vec![(key("b", "gone"), 6, String::new())], 10).await.unwrap();
            // Committed after the deletion: the re-created topic's, which stays.
            store.commit(vec![(key("c", "gone"), 1, String::new())], 30).await.unwrap();
            assert_eq!(store.forget_topics(["gone".to_owned()].into(), 20).await.unwrap(), 2);
            assert_eq!(store.forget_topics(["gone".to_owned()].into(), 20).await.unwrap(), 0, "nothing left");
            store.close().await.unwrap();
        }
        let store = OffsetStore::open(dir.path()).await.unwrap();
        let left: Vec<(OffsetKey, i64)> = store.all_committed();
        assert_eq!(left, [(key("a", "kept"), 7), (key("c", "gone"), 1)]);
    }
}
