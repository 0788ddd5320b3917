//! Share groups' partition states (`share_groups/partition.rs` encodes them) in the committed-offsets log, beside
//! the commits: the same key layout with version byte 1, the value a version byte (1), the state's version (u64,
//! big-endian) and the state's bytes, a null value forgetting the key; a value of version byte 0 (written before
//! states carried their version) is the bytes alone, at version 0. The last record of a key wins at replay, as
//! for commits.
//!
//! A save is answered once stored (fsynced on a single node, on every in-sync replica of the group's offsets
//! partition on a cluster), as a commit is. Saves carry the version the share groups gave the state when they
//! took it. Its high 32 bits are a fencing token: the leader epoch of the partition at which the node that
//! keeps the window loaded it, or more after a reset (`ShareGroups::reset` raises it by one). Under the store's
//! lock a save whose token is below the stored one is refused ([`BrokerError::ShareStateFenced`]: a newer
//! leader, or a reset, has written since its writer loaded the state, and its window is stale), and a save of the
//! same token not newer than the stored one is dropped, so two saves of one partition taken in one order never
//! land in the other.

use std::collections::BTreeMap;
use std::sync::Arc;

use rill_protocol::{Record, RecordBatchBuilder};

use super::{decode_key_versioned, encode_key_versioned, OffsetKey, OffsetStore};
use crate::error::{BrokerError, Result};
use crate::registry::blocking;
use crate::share_groups::StateToStore;

const KEY_VERSION: u8 = 1;
/// The value before states carried their version: the bytes alone.
const VALUE_UNVERSIONED: u8 = 0;
const VALUE_VERSION: u8 = 1;

/// A share partition's state as the store holds it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StoredShareState {
    /// The share groups' version of the state (0 for one stored before states carried their version).
    pub version: u64,
    pub bytes: Vec<u8>,
}

/// A version's fencing token: its high 32 bits.
pub fn fencing_token(version: u64) -> u32 {
    (version >> 32) as u32
}

pub fn decode_key(bytes: &[u8]) -> Option<OffsetKey> {
    decode_key_versioned(KEY_VERSION, bytes)
}

/// The record that stores `state` (its version and bytes) for `key`, or forgets the key (`None`).
pub fn record(key: &OffsetKey, state: Option<(u64, &[u8])>, now_ms: i64) -> Record {
    let value = state.map(|(version, bytes)| {
        let mut value = Vec::with_capacity(9 + bytes.len());
        value.push(VALUE_VERSION);
        value.extend_from_slice(&version.to_be_bytes());
        value.extend_from_slice(bytes);
        value
    });
    Record { key: Some(encode_key_versioned(KEY_VERSION, key)), value, headers: Vec::new(), timestamp_ms: now_ms }
}

/// Applies one replayed record to the states.
pub fn replay_record(states: &mut BTreeMap<OffsetKey, StoredShareState>, key: OffsetKey, value: Option<&[u8]>) {
    match value.and_then(|value| value.split_first()) {
        Some((&VALUE_UNVERSIONED, bytes)) => {
            states.insert(key, StoredShareState { version: 0, bytes: bytes.to_vec() });
        }
        Some((&VALUE_VERSION, rest)) if rest.len() >= 8 => {
            let (version, bytes) = rest.split_at(8);
            let version = u64::from_be_bytes(version.try_into().unwrap_or_default());
            states.insert(key, StoredShareState { version, bytes: bytes.to_vec() });
        }
        Some(_) => tracing::warn!(group = %key.group, topic = %key.topic, "skipping a share state of another version"),
        None => {
            states.remove(&key);
        }
    }
}

impl OffsetStore {
    /// Stores share partition states of `group` durably; returns once they are fsynced.
    pub async fn save_share_states(self: &Arc<Self>, group: &str, states: Vec<StateToStore>) -> Result<()> {
        if states.is_empty() {
            return Ok(());
        }
        if states.iter().any(|state| state.key.group != group) {
            return Err(BrokerError::Internal("one share state save for several groups".into()));
        }
        let store = Arc::clone(self);
        let routed = group.to_owned();
        let appended = blocking(move || {
            let now_ms = crate::node::now_ms();
            let _commits = store.lock();
            let mut stored = store.share_lock();
            if let Some((state, held)) = states.iter().find_map(|state| {
                let held = stored.get(&state.key)?;
                (fencing_token(held.version) > fencing_token(state.version)).then_some((state, held.version))
            }) {
                return Err(BrokerError::ShareStateFenced {
                    group: state.key.group.clone(),
                    topic: state.key.topic.clone(),
                    partition: state.key.partition,
                    sent: fencing_token(state.version),
                    stored: fencing_token(held),
                });
            }
            let newer: Vec<StateToStore> = states
                .into_iter()
                .filter(|state| stored.get(&state.key).is_none_or(|held| held.version < state.version))
                .collect();
            if newer.is_empty() {
                return Ok(None);
            }
            let mut builder = RecordBatchBuilder::default();
            for state in &newer {
                builder.push(&record(&state.key, Some((state.version, &state.bytes)), now_ms));
            }
            let appended = store.append_for(&routed, &builder.build())?;
            for state in newer {
                stored.insert(state.key, StoredShareState { version: state.version, bytes: state.bytes });
            }
            Ok(Some(appended))
        })
        .await?;
        match appended {
            Some(appended) => self.settle(group, appended).await,
            None => Ok(()),
        }
    }

    /// The state stored for one share partition, with its version.
    pub fn share_state(&self, key: &OffsetKey) -> Option<StoredShareState> {
        self.share_lock().get(key).cloned()
    }

    /// The stored version of one share partition's state (0 when none is stored).
    pub fn share_state_version(&self, key: &OffsetKey) -> u64 {
        self.share_lock().get(key).map_or(0, |state| state.version)
    }

    /// Every share partition state stored for `group`, in (topic, partition) order.
    pub fn share_states_of(&self, group: &str) -> Vec<(OffsetKey, Vec<u8>)> {
        self.share_lock()
            .iter()
            .filter(|(key, _)| key.group == group)
            .map(|(key, state)| (key.clone(), state.bytes.clone()))
            .collect()
    }

    /// Every share group with a stored state.
    pub fn share_groups(&self) -> std::collections::BTreeSet<String> {
        self.share_lock().keys().map(|key| key.group.clone()).collect()
    }

    /// Forgets every share group's states of the deleted `topics` that this node stores (on a cluster, of the
    /// groups it coordinates; another coordinator forgets its own). Failures are logged: the topic is gone
    /// whatever happens here.
    pub async fn forget_share_states_of_topics(self: &Arc<Self>, topics: &std::collections::BTreeSet<String>) {
        let groups: std::collections::BTreeSet<String> =
            self.share_lock().keys().filter(|key| topics.contains(&key.topic)).map(|key| key.group.clone()).collect();
        for group in groups {
            let gone = topics.clone();
            match self.forget_share_states(&group, move |key| gone.contains(&key.topic)).await {
                Ok(_) | Err(BrokerError::NotCoordinator { .. }) => {}
                Err(err) => {
                    tracing::error!(topics = ?topics, %group, error = %err, "cannot forget a deleted topic's share state")
                }
            }
        }
    }

    /// Forgets the share partition states of `group` that `forgets` picks (a tombstone each, fsynced). Returns
    /// how many were forgotten.
    pub async fn forget_share_states(
        self: &Arc<Self>,
        group: &str,
        forgets: impl Fn(&OffsetKey) -> bool + Send + 'static,
    ) -> Result<usize> {
        let store = Arc::clone(self);
        let routed = group.to_owned();
        let (appended, forgotten) = blocking(move || {
            let _commits = store.lock();
            let mut stored = store.share_lock();
            let keys: Vec<OffsetKey> =
                stored.keys().filter(|key| key.group == routed && forgets(key)).cloned().collect();
            if keys.is_empty() {
                return Ok((None, 0));
            }
            let now_ms = crate::node::now_ms();
            let mut builder = RecordBatchBuilder::default();
            for key in &keys {
                builder.push(&record(key, None, now_ms));
            }
            let appended = store.append_for(&routed, &builder.build())?;
            for key in &keys {
                stored.remove(key);
            }
            Ok((Some(appended), keys.len()))
        })
        .await?;
        if let Some(appended) = appended {
            self.settle(group, appended).await?;
        }
        Ok(forgotten)
    }

    pub(super) fn share_lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<OffsetKey, StoredShareState>> {
        self.share_states.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(group: &str, partition: u32) -> OffsetKey {
        OffsetKey { group: group.into(), topic: "jobs".into(), partition }
    }

    fn state(key: OffsetKey, version: u64, bytes: &[u8]) -> StateToStore {
        StateToStore { key, version, bytes: bytes.to_vec(), dead_letters: Vec::new() }
    }

    #[tokio::test]
    async fn share_states_survive_a_reopen_beside_commits_and_an_older_save_never_wins() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Arc::new(OffsetStore::open(dir.path()).await.unwrap());
            store.commit(vec![(key("g", 0), 5, String::new())], 1).await.unwrap();
            store
                .save_share_states("g", vec![state(key("g", 0), 2, b"two"), state(key("g", 1), 1, b"one")])
                .await
                .unwrap();
            store.save_share_states("g", vec![state(key("g", 0), 1, b"stale")]).await.unwrap();
            assert_eq!(store.share_state(&key("g", 0)).map(|s| s.bytes).as_deref(), Some(&b"two"[..]));
            store.save_share_states("other", vec![state(key("other", 0), 1, b"x")]).await.unwrap();
            assert_eq!(store.forget_share_states("other", |_| true).await.unwrap(), 1);
            store.close().await.unwrap();
        }
        let store = Arc::new(OffsetStore::open(dir.path()).await.unwrap());
        assert_eq!(store.get(&key("g", 0)).map(|c| c.offset), Some(5), "the commit of the same key is apart");
        let states = store.share_states_of("g");
        assert_eq!(states, [(key("g", 0), b"two".to_vec()), (key("g", 1), b"one".to_vec())]);
        assert!(store.share_states_of("other").is_empty(), "forgotten for good");
        let mixed = store.save_share_states("g", vec![state(key("h", 0), 1, b"")]).await;
        assert!(matches!(mixed, Err(BrokerError::Internal(_))), "{mixed:?}");
    }

    #[tokio::test]
    async fn a_save_below_the_stored_fencing_token_is_refused_and_versions_outlive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Arc::new(OffsetStore::open(dir.path()).await.unwrap());
            store.save_share_states("g", vec![state(key("g", 0), (2 << 32) + 5, b"two")]).await.unwrap();
            let fenced = store.save_share_states("g", vec![state(key("g", 0), (1 << 32) + 9, b"stale")]).await;
            assert!(matches!(fenced, Err(BrokerError::ShareStateFenced { sent: 1, stored: 2, .. })), "{fenced:?}");
            // A save of the same token taken earlier lands before the stored one or not at all: dropped.
            store.save_share_states("g", vec![state(key("g", 0), (2 << 32) + 4, b"older")]).await.unwrap();
            store.close().await.unwrap();
        }
        let store = Arc::new(OffsetStore::open(dir.path()).await.unwrap());
        assert_eq!(
            store.share_state(&key("g", 0)),
            Some(StoredShareState { version: (2 << 32) + 5, bytes: b"two".to_vec() })
        );
        let fenced = store.save_share_states("g", vec![state(key("g", 0), 1 << 32, b"stale")]).await;
        assert!(matches!(fenced, Err(BrokerError::ShareStateFenced { .. })), "the token outlived the reopen");
    }

    #[test]
    fn a_state_stored_before_states_carried_their_version_replays_at_version_0() {
        let mut states = BTreeMap::new();
        replay_record(&mut states, key("g", 0), Some(b"\x00old"));
        assert_eq!(states.get(&key("g", 0)), Some(&StoredShareState { version: 0, bytes: b"old".to_vec() }));
        let record = record(&key("g", 0), Some((7, b"new")), 1);
        replay_record(&mut states, key("g", 0), record.value.as_deref());
        assert_eq!(states.get(&key("g", 0)), Some(&StoredShareState { version: 7, bytes: b"new".to_vec() }));
        replay_record(&mut states, key("g", 0), Some(b"\x01short"));
        assert_eq!(
            states.get(&key("g", 0)).map(|s| s.version),
            Some(7),
            "a value too short for its version is skipped"
        );
    }

    #[test]
    fn a_share_key_is_not_a_commit_key_and_garbage_is_refused() {
        let record = record(&key("g", 3), Some((0, b"state")), 1);
        let bytes = record.key.unwrap();
        assert_eq!(decode_key(&bytes), Some(key("g", 3)));
        assert_eq!(super::super::decode_key(&bytes), None);
        for garbage in [&b""[..], b"\x01", b"\x01\x00\x05ab"] {
            assert_eq!(decode_key(garbage), None);
        }
    }
}
