//! `<data>/__console_sessions.json`: the console's sign-in sessions as they survive a restart (ARCHITECTURE.md,
//! "On disk: `__console_sessions.json`").
//!
//! The file holds, per session, the SHA-256 of its id (never the id: the cookie is the only copy), its user and
//! two wall-clock times in Unix milliseconds. Nothing in it signs anyone in: a 256-bit id cannot be found from
//! its hash, and the session's CSRF token is derived from the id, not stored.
//!
//! It is rewritten whole and atomically (a temporary file created `0600`, fsync, rename, directory fsync), so a
//! crash leaves the old set or the new one. A file that cannot be read back (bad JSON, an unknown version, a
//! malformed entry, more than [`FILE_BYTES_MAX`]) is ignored with a warning: the node starts with no sessions,
//! which signs everybody out and lets nobody in, the same as a restart did before sessions were kept.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

/// The file, in the data dir (`__`: the broker's own name space).
pub const SESSIONS_FILE: &str = "__console_sessions.json";
/// The file format; another one is ignored rather than misread.
const FORMAT_VERSION: u32 = 1;
/// Larger than any file the node writes (1,000 sessions of about 150 bytes), so a bigger one is not its own.
pub const FILE_BYTES_MAX: u64 = 1 << 20;
/// Longer than any stamp the node makes (43 characters of base64).
const USER_STAMP_BYTES_MAX: usize = 128;
/// Only the broker's user reads the file.
const FILE_MODE: u32 = 0o600;

/// One session as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSession {
    pub id_hash: [u8; 32],
    pub user: String,
    /// The user's credential stamp at sign-in (`UserStore::credential_stamp`: a digest of salts, no secret).
    pub user_stamp: String,
    pub signed_in_unix_ms: u64,
    pub last_used_unix_ms: u64,
}

#[derive(Serialize, Deserialize)]
struct SessionsFile {
    version: u32,
    sessions: Vec<Entry>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    /// URL-safe base64 of the SHA-256 of the session id.
    id_sha256: String,
    user: String,
    user_stamp: String,
    signed_in_unix_ms: u64,
    last_used_unix_ms: u64,
}

/// Why the file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum SessionFileError {
    #[error("i/o error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a sessions file this broker wrote: {reason}")]
    Damaged { path: PathBuf, reason: String },
}

pub fn path_in(data_dir: &Path) -> PathBuf {
    data_dir.join(SESSIONS_FILE)
}

/// The sessions in the file at `path`; none when there is no file.
pub fn load(path: &Path) -> Result<Vec<StoredSession>, SessionFileError> {
    let io = |source| SessionFileError::Io { path: path.to_owned(), source };
    let damaged = |reason: String| SessionFileError::Damaged { path: path.to_owned(), reason };
    let length = match fs::metadata(path) {
        Ok(metadata) => metadata.len(),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(io(err)),
    };
    if length > FILE_BYTES_MAX {
        return Err(damaged(format!("{length} bytes, more than the {FILE_BYTES_MAX} the broker ever writes")));
    }
    let bytes = fs::read(path).map_err(io)?;
    parse(&bytes).map_err(damaged)
}

fn parse(bytes: &[u8]) -> Result<Vec<StoredSession>, String> {
    let file: SessionsFile = serde_json::from_slice(bytes).map_err(|err| err.to_string())?;
    if file.version != FORMAT_VERSION {
        return Err(format!("format version {}, this broker reads {FORMAT_VERSION}", file.version));
    }
    file.sessions
        .into_iter()
        .enumerate()
        .map(|(index, entry)| {
            let hash = URL_SAFE_NO_PAD.decode(entry.id_sha256.as_bytes()).ok();
            let id_hash: [u8; 32] = hash
                .and_then(|hash| hash.try_into().ok())
                .ok_or_else(|| format!("session {index}: id_sha256 is not 32 bytes of URL-safe base64"))?;
            super::users::validate_name(&entry.user).map_err(|err| format!("session {index}: {err}"))?;
            if entry.user_stamp.is_empty() || entry.user_stamp.len() > USER_STAMP_BYTES_MAX {
                return Err(format!("session {index}: user_stamp is not 1 to {USER_STAMP_BYTES_MAX} bytes"));
            }
            Ok(StoredSession {
                id_hash,
                user: entry.user,
                user_stamp: entry.user_stamp,
                signed_in_unix_ms: entry.signed_in_unix_ms,
                last_used_unix_ms: entry.last_used_unix_ms,
            })
        })
        .collect()
}

/// Replaces the file at `path` with `sessions`, atomically, readable by the broker's user only.
pub fn store(path: &Path, sessions: &[StoredSession]) -> Result<(), SessionFileError> {
    let file = SessionsFile {
        version: FORMAT_VERSION,
        sessions: sessions
            .iter()
            .map(|session| Entry {
                id_sha256: URL_SAFE_NO_PAD.encode(session.id_hash),
                user: session.user.clone(),
                user_stamp: session.user_stamp.clone(),
                signed_in_unix_ms: session.signed_in_unix_ms,
                last_used_unix_ms: session.last_used_unix_ms,
            })
            .collect(),
    };
    let bytes = serde_json::to_vec(&file).expect("a struct of strings and integers always serializes");
    let tmp = path.with_extension("tmp");
    let io = |at: &Path| {
        let at = at.to_owned();
        move |source| SessionFileError::Io { path: at, source }
    };
    let mut out =
        OpenOptions::new().write(true).create(true).truncate(true).mode(FILE_MODE).open(&tmp).map_err(io(&tmp))?;
    // `mode` applies only to a file it creates: a temporary file left by a crash keeps its own until this.
    out.set_permissions(fs::Permissions::from_mode(FILE_MODE)).map_err(io(&tmp))?;
    out.write_all(&bytes).map_err(io(&tmp))?;
    out.sync_all().map_err(io(&tmp))?;
    drop(out);
    fs::rename(&tmp, path).map_err(io(path))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    crate::meta::sync_dir(dir).map_err(io(dir))
}

/// Removes the file: what is left when the current set cannot be written and an ended session must not come
/// back at the next start.
pub fn remove(path: &Path) -> Result<(), SessionFileError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(SessionFileError::Io { path: path.to_owned(), source }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(byte: u8, user: &str) -> StoredSession {
        StoredSession {
            id_hash: [byte; 32],
            user: user.to_owned(),
            user_stamp: format!("stamp-{byte}"),
            signed_in_unix_ms: 1_700_000_000_000,
            last_used_unix_ms: 1_700_000_060_000,
        }
    }

    #[test]
    fn sessions_round_trip_in_a_file_only_the_owner_reads() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = path_in(dir.path());
        assert_eq!(load(&path).expect("no file yet"), vec![]);
        // A temporary file left by a crash, readable by everyone: the write must not inherit its mode.
        fs::write(path.with_extension("tmp"), b"partial").expect("leftover");
        fs::set_permissions(path.with_extension("tmp"), fs::Permissions::from_mode(0o644)).expect("chmod");
        let sessions = vec![session(1, "alice"), session(2, "bob")];
        store(&path, &sessions).expect("store");
        assert_eq!(load(&path).expect("load"), sessions);
        let mode = fs::metadata(&path).expect("metadata").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{mode:o}");
        assert!(!path.with_extension("tmp").exists(), "the temporary file was renamed away");
        remove(&path).expect("remove");
        remove(&path).expect("removing a missing file is fine");
        assert_eq!(load(&path).expect("gone"), vec![]);
    }

    #[test]
    fn a_damaged_file_is_an_error_that_names_it_never_a_panic() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = path_in(dir.path());
        let good = r#"{"version":1,"sessions":[{"id_sha256":"AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE","user":"alice","user_stamp":"s","signed_in_unix_ms":1,"last_used_unix_ms":2}]}"#;
        fs::write(&path, good).expect("write");
        assert_eq!(load(&path).expect("a good file").len(), 1);
        let damaged = [
            &good[..good.len() / 2],
            "",
            "\0\0\0",
            r#"{"version":2,"sessions":[]}"#,
            r#"{"version":1,"sessions":[{"id_sha256":"AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE","user":"alice","user_stamp":"","signed_in_unix_ms":1,"last_used_unix_ms":2}]}"#,
            r#"{"version":1,"sessions":[{"id_sha256":"AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE","user":"alice","signed_in_unix_ms":1,"last_used_unix_ms":2}]}"#,
            r#"{"version":1,"sessions":[{"id_sha256":"AQID","user":"alice","user_stamp":"s","signed_in_unix_ms":1,"last_used_unix_ms":2}]}"#,
            r#"{"version":1,"sessions":[{"id_sha256":"AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE","user":"","user_stamp":"s","signed_in_unix_ms":1,"last_used_unix_ms":2}]}"#,
            r#"{"version":1,"sessions":[{"id_sha256":"AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE","user":"a","user_stamp":"s","signed_in_unix_ms":-1,"last_used_unix_ms":2}]}"#,
        ];
        for text in damaged {
            fs::write(&path, text).expect("write");
            let err = load(&path).expect_err(text);
            assert!(err.to_string().contains(SESSIONS_FILE), "{err}");
        }
        fs::write(&path, vec![b' '; FILE_BYTES_MAX as usize + 1]).expect("write");
        assert!(load(&path).expect_err("too big").to_string().contains("more than"));
    }
}
