//! Share groups' partition states (`share_groups/partition.rs` encodes them) in the committed-offsets log, beside
//! the commits: the same key layout with version byte 1, the value a version byte (0) and the state's bytes, a
//! null value forgetting the key. The last record of a key wins at replay, as for commits.
//!
//! A save is answered once fsynced, as a commit is. Saves carry the version the share groups gave the state
//! when they took it; under the store's lock a save older than what the store holds is dropped, so two saves of
//! one partition taken in one order never land in the other.

use std::collections::BTreeMap;
use std::sync::Arc;

use rill_protocol::{Record, RecordBatchBuilder};

use super::{decode_key_versioned, encode_key_versioned, OffsetKey, OffsetStore};
use crate::error::{BrokerError, Result};
use crate::registry::blocking;
use crate::share_groups::StateToStore;

const KEY_VERSION: u8 = 1;
const VALUE_VERSION: u8 = 0;

/// A share partition's state as the store holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredShareState {
    /// The share groups' version of the state (0 for one replayed from the log).
    pub version: u64,
    pub bytes: Vec<u8>,
}

pub fn decode_key(bytes: &[u8]) -> Option<OffsetKey> {
    decode_key_versioned(KEY_VERSION, bytes)
}

/// The record that stores `state` for `key`, or forgets the key (`None`).
pub fn record(key: &OffsetKey, state: Option<&[u8]>, now_ms: i64) -> Record {
    let value = state.map(|bytes| {
        let mut value = Vec::with_capacity(1 + bytes.len());
        value.push(VALUE_VERSION);
        value.extend_from_slice(bytes);
        value
    });
    Record { key: Some(encode_key_versioned(KEY_VERSION, key)), value, headers: Vec::new(), timestamp_ms: now_ms }
}

/// Applies one replayed record to the states.
pub fn replay_record(states: &mut BTreeMap<OffsetKey, StoredShareState>, key: OffsetKey, value: Option<&[u8]>) {
    match value.and_then(|value| value.split_first()) {
        Some((&VALUE_VERSION, bytes)) => {
            states.insert(key, StoredShareState { version: 0, bytes: bytes.to_vec() });
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
            let newer: Vec<StateToStore> = states
                .into_iter()
                .filter(|state| stored.get(&state.key).is_none_or(|held| held.version < state.version))
                .collect();
            if newer.is_empty() {
                return Ok(None);
            }
            let mut builder = RecordBatchBuilder::default();
            for state in &newer {
                builder.push(&record(&state.key, Some(&state.bytes), now_ms));
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

    /// The state stored for one share partition.
    pub fn share_state(&self, key: &OffsetKey) -> Option<Vec<u8>> {
        self.share_lock().get(key).map(|state| state.bytes.clone())
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

    /// The share groups with a state stored for a partition of `topic`.
    pub fn share_groups_of_topic(&self, topic: &str) -> std::collections::BTreeSet<String> {
        self.share_lock().keys().filter(|key| key.topic == topic).map(|key| key.group.clone()).collect()
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

    fn share_lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<OffsetKey, StoredShareState>> {
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
        StateToStore { key, version, bytes: bytes.to_vec() }
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
            assert_eq!(store.share_state(&key("g", 0)).as_deref(), Some(&b"two"[..]));
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

    #[test]
    fn a_share_key_is_not_a_commit_key_and_garbage_is_refused() {
        let record = record(&key("g", 3), Some(b"state"), 1);
        let bytes = record.key.unwrap();
        assert_eq!(decode_key(&bytes), Some(key("g", 3)));
        assert_eq!(super::super::decode_key(&bytes), None);
        for garbage in [&b""[..], b"\x01", b"\x01\x00\x05ab"] {
            assert_eq!(decode_key(garbage), None);
        }
    }
}
