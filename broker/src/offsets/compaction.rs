//! Rewriting the committed-offsets log with one record per live key, at start, when most records are dead.
//!
//! The new log is built beside the old one and swapped in by renames, each step safe to crash after:
//!
//! 1. write `__consumer_offsets-0.new` completely and close it (fsynced);
//! 2. rename `__consumer_offsets-0` to `__consumer_offsets-0.old`;
//! 3. rename `.new` to `__consumer_offsets-0`, then fsync the data dir;
//! 4. remove `.old`.
//!
//! [`finish_interrupted`] runs before every open and completes or undoes a swap cut short: without the live
//! directory, `.new` is complete (step 1 ended before step 2 began) and takes its place; with it, a `.new` is
//! an unfinished step 1 and an `.old` a finished swap, and both are removed.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use rill_protocol::{Record, RecordBatchBuilder};
use rill_storage::{Log, LogConfig};

use super::share_states::{self, StoredShareState};
use super::{encode_key, encode_value, Committed, OffsetKey, OFFSETS_LOG_DIR};
use crate::error::{BrokerError, Result};
use crate::meta::fsync_dir;

/// Compact once dead records outnumber live ones and there are enough of them to matter.
const MIN_DEAD_RECORDS: usize = 10_000;
/// Bytes per batch of the rewritten log (well under its `max_batch_bytes`).
const BATCH_BYTES: usize = 1 << 20;

pub fn is_worth_it(records: usize, live: usize) -> bool {
    let dead = records.saturating_sub(live);
    dead >= MIN_DEAD_RECORDS && dead > live
}

/// Replaces the offsets log under `data_dir` with one holding exactly `committed` and `shares` (share groups'
/// partition states).
pub fn rewrite(
    data_dir: &Path,
    committed: &BTreeMap<OffsetKey, Committed>,
    shares: &BTreeMap<OffsetKey, StoredShareState>,
    config: LogConfig,
) -> Result<()> {
    let (live, new, old) = dirs(data_dir);
    remove_dir_if_present(&new)?;
    let log = Log::open(&new, config)?;
    let mut builder = RecordBatchBuilder::default();
    let commits = committed.iter().map(|(key, commit)| Record {
        key: Some(encode_key(key)),
        value: Some(encode_value(commit.offset, commit.commit_time_ms, &commit.metadata)),
        headers: Vec::new(),
        timestamp_ms: commit.commit_time_ms,
    });
    let states = shares
        .iter()
        .map(|(key, state)| share_states::record(key, Some((state.version, &state.bytes)), crate::node::now_ms()));
    for record in commits.chain(states) {
        if !builder.is_empty() && builder.encoded_bytes() + builder.record_bytes(&record) > BATCH_BYTES {
            log.append(&std::mem::take(&mut builder).build())?;
        }
        builder.push(&record);
    }
    if !builder.is_empty() {
        log.append(&builder.build())?;
    }
    log.close()?;
    drop(log);
    fs::rename(&live, &old).map_err(BrokerError::io(&live))?;
    fs::rename(&new, &live).map_err(BrokerError::io(&new))?;
    fsync_dir(data_dir)?;
    remove_dir_if_present(&old)?;
    tracing::info!(entries = committed.len(), share_partitions = shares.len(), "compacted the committed-offsets log");
    Ok(())
}

/// Completes or undoes a rewrite that a crash interrupted (see the module docs).
pub fn finish_interrupted(data_dir: &Path) -> Result<()> {
    let (live, new, old) = dirs(data_dir);
    if !live.exists() {
        let complete = if new.exists() { new.clone() } else { old.clone() };
        if complete.exists() {
            tracing::warn!(from = %complete.display(), "finishing an interrupted compaction of committed offsets");
            fs::rename(&complete, &live).map_err(BrokerError::io(&complete))?;
            fsync_dir(data_dir)?;
        }
    }
    remove_dir_if_present(&new)?;
    remove_dir_if_present(&old)
}

fn dirs(data_dir: &Path) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    (
        data_dir.join(OFFSETS_LOG_DIR),
        data_dir.join(format!("{OFFSETS_LOG_DIR}.new")),
        data_dir.join(format!("{OFFSETS_LOG_DIR}.old")),
    )
}

fn remove_dir_if_present(dir: &Path) -> Result<()> {
    match fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(BrokerError::Io { path: dir.to_owned(), source: err }),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::super::OffsetStore;
    use super::*;

    fn key(partition: u32) -> OffsetKey {
        OffsetKey { group: "g".into(), topic: "t".into(), partition }
    }

    /// 12,000 commits of 3 keys and a share partition's state saved 3 times: the reopened store is compacted to 4
    /// records and keeps the last of each.
    async fn store_with_many_dead_commits(dir: &Path) {
        let store = Arc::new(OffsetStore::open(dir).await.unwrap());
        for round in 0..4 {
            let commits = (0..3000).map(|i| (key(i % 3), i64::from(round * 3000 + i), format!("r{round}"))).collect();
            store.commit(commits, 7).await.unwrap();
        }
        for version in 1..=3u64 {
            let state = crate::share_groups::StateToStore {
                key: key(0),
                version,
                bytes: vec![version as u8],
                dead_letters: Vec::new(),
            };
            store.save_share_states("g", vec![state]).await.unwrap();
        }
        store.close().await.unwrap();
    }

    #[tokio::test]
    async fn a_log_of_mostly_dead_commits_is_rewritten_with_the_live_ones_at_start() {
        let dir = tempfile::tempdir().unwrap();
        store_with_many_dead_commits(dir.path()).await;
        let store = Arc::new(OffsetStore::open(dir.path()).await.unwrap());
        assert_eq!(store.get(&key(0)).map(|c| c.offset), Some(11_997));
        assert_eq!(store.get(&key(2)), Some(Committed { offset: 11_999, metadata: "r3".into(), commit_time_ms: 7 }));
        assert_eq!(store.local_log().high_watermark(), 4, "one record per live key");
        assert_eq!(store.share_state(&key(0)).map(|s| s.bytes), Some(vec![3]), "the share state is a live key too");
        assert!(!dir.path().join(format!("{OFFSETS_LOG_DIR}.old")).exists());
        store.commit(vec![(key(1), 5, String::new())], 8).await.unwrap();
        store.close().await.unwrap();
        let store = OffsetStore::open(dir.path()).await.unwrap();
        assert_eq!(store.get(&key(1)).map(|c| c.offset), Some(5), "commits after a compaction are kept");
    }

    #[tokio::test]
    async fn a_crash_at_any_step_of_the_swap_leaves_the_commits_intact() {
        let dir = tempfile::tempdir().unwrap();
        store_with_many_dead_commits(dir.path()).await;
        let (live, new, old) = dirs(dir.path());
        let expected = Some(Committed { offset: 11_998, metadata: "r3".into(), commit_time_ms: 7 });

        // Crash during step 1: a partial .new beside the live log.
        fs::create_dir_all(&new).unwrap();
        fs::write(new.join("00000000000000000000.log"), b"partial").unwrap();
        let store = OffsetStore::open(dir.path()).await.unwrap();
        assert_eq!(store.get(&key(1)), expected);
        store.close().await.unwrap();
        drop(store);

        // Crash between steps 2 and 3: only .old and a complete .new.
        fs::rename(&live, &new).unwrap();
        fs::create_dir_all(&old).unwrap();
        let store = OffsetStore::open(dir.path()).await.unwrap();
        assert_eq!(store.get(&key(1)), expected);
        assert!(!new.exists() && !old.exists());
        store.close().await.unwrap();
        drop(store);

        // Crash between steps 3 and 4: the live log and a leftover .old.
        fs::create_dir_all(&old).unwrap();
        let store = OffsetStore::open(dir.path()).await.unwrap();
        assert_eq!(store.get(&key(1)), expected);
        assert!(!old.exists());
    }
}
