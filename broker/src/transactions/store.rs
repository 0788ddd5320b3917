//! The coordinator's transactional ids on disk: one JSON file per id, `<data>/__transactions/<producer id>.json`,
//! replaced whole and atomically (temporary file, fsync, rename, directory fsync) at every change of state, before
//! the change is answered or acted on. The file is named by the id's producer id (unique, and a safe file name
//! whatever the transactional id holds); the transactional id is inside. When an id's epochs run out it gets a new
//! producer id: the new file is written before the old one is removed, so a crash between leaves two files for one
//! id, and the load keeps the newer producer id's.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use super::state::TransactionMetadata;
use crate::error::{BrokerError, Result};

/// The directory, under the data dir.
pub const DIR_NAME: &str = "__transactions";

pub fn dir(data_dir: &Path) -> PathBuf {
    data_dir.join(DIR_NAME)
}

fn path(dir: &Path, producer_id: i64) -> PathBuf {
    dir.join(format!("{producer_id}.json"))
}

/// Every transactional id stored in `dir` (none when it is missing: made by the first store). A file that does not
/// parse stops the load: a transaction's outcome cannot be guessed.
pub fn load(dir: &Path) -> Result<Vec<TransactionMetadata>> {
    if !dir.exists() {
        return Ok(Vec::new());
    }
    let mut by_id: HashMap<String, TransactionMetadata> = HashMap::new();
    let mut stale = Vec::new();
    for entry in fs::read_dir(dir).map_err(BrokerError::io(dir))? {
        let path = entry.map_err(BrokerError::io(dir))?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if name.ends_with(".tmp") {
            stale.push(path);
            continue;
        }
        if !name.ends_with(".json") {
            continue;
        }
        let bytes = fs::read(&path).map_err(BrokerError::io(&path))?;
        let meta: TransactionMetadata = serde_json::from_slice(&bytes).map_err(|err| BrokerError::CorruptMetadata {
            path: path.clone(),
            reason: format!("{err}: a transaction's state cannot be guessed; restore the file or remove it"),
        })?;
        match by_id.get(&meta.transactional_id) {
            Some(kept) if kept.producer_id > meta.producer_id => stale.push(path),
            Some(kept) => {
                stale.push(self::path(dir, kept.producer_id));
                by_id.insert(meta.transactional_id.clone(), meta);
            }
            None => {
                by_id.insert(meta.transactional_id.clone(), meta);
            }
        }
    }
    for path in stale {
        fs::remove_file(&path).map_err(BrokerError::io(&path))?;
    }
    Ok(by_id.into_values().collect())
}

/// Stores `meta` durably; when `replaces` names an older producer id of the same transactional id, its file goes
/// after the new one is durable.
pub fn store(dir: &Path, meta: &TransactionMetadata, replaces: Option<i64>) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(meta).map_err(|err| BrokerError::Internal(err.to_string()))?;
    if !dir.exists() {
        fs::create_dir_all(dir).map_err(BrokerError::io(dir))?;
        if let Some(data_dir) = dir.parent() {
            crate::meta::fsync_dir(data_dir)?;
        }
    }
    crate::meta::write_atomically(&path(dir, meta.producer_id), &bytes)?;
    if let Some(old) = replaces.filter(|old| *old != meta.producer_id) {
        remove(dir, old)?;
    }
    Ok(())
}

/// Removes the file of an expired id.
pub fn remove(dir: &Path, producer_id: i64) -> Result<()> {
    let path = path(dir, producer_id);
    match fs::remove_file(&path) {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => Err(BrokerError::io(&path)(err)),
        _ => crate::meta::fsync_dir(dir),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_survive_a_reload_and_the_newer_producer_id_of_one_id_wins() {
        let data = tempfile::tempdir().unwrap();
        let dir = dir(data.path());
        assert!(load(&dir).unwrap().is_empty());
        assert!(!dir.exists(), "a node that never used transactions has no directory for them");
        let first = TransactionMetadata::new("app-1".into(), 10, 60_000, 5);
        store(&dir, &first, None).unwrap();
        // A crash between the new file and the removal of the old one.
        let renewed = TransactionMetadata::new("app-1".into(), 11, 60_000, 6);
        crate::meta::write_atomically(&dir.join("11.json"), &serde_json::to_vec(&renewed).unwrap()).unwrap();
        assert_eq!(load(&dir).unwrap(), vec![renewed.clone()]);
        assert!(!dir.join("10.json").exists(), "the older file went");
        store(&dir, &TransactionMetadata::new("other".into(), 12, 1_000, 7), None).unwrap();
        assert_eq!(load(&dir).unwrap().len(), 2);
        remove(&dir, 12).unwrap();
        assert_eq!(load(&dir).unwrap(), vec![renewed]);
    }

    #[test]
    fn a_damaged_file_stops_the_load_and_names_itself() {
        let data = tempfile::tempdir().unwrap();
        let dir = dir(data.path());
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("3.json"), b"{ not json").unwrap();
        let err = load(&dir).expect_err("a damaged file");
        assert!(err.to_string().contains("3.json"), "{err}");
    }
}
