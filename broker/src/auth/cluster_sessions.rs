//! The console's sign-in sessions on a cluster node (docs/console.md, "Sessions on a cluster"): kept in the
//! replicated cluster metadata (`cluster/console_sessions.rs`), so a cookie made on one node's admin listener
//! signs its holder in on every node's, and a sign-out on any node ends it on all of them.
//!
//! A sign-in and a sign-out are raft writes, answered once this node has applied them. A use is not: it reads
//! this node's replica, keeps its own last-use time in memory, and replicates a touch at most once every
//! [`TOUCH_REPLICATE_INTERVAL`] per session, in the background. So a session ends by idling on a node that did
//! not serve it at most that interval early, and after a restart this node knows its uses only as far as it
//! replicated them. The per-node file (`session_file.rs`) is not used on a cluster.
//!
//! Invariants: only the SHA-256 of an id leaves this module, in memory and in the metadata; the in-memory
//! use times are bounded by the sessions the metadata holds (`MAX_CLUSTER_SESSIONS`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use tokio::runtime::Handle;

use super::replicated::ClusterAccess;
use super::sessions::{csrf_token_of, id_hash, random_secret, unix_ms, NewSession, SessionView};
use super::users::credential_stamp_of;
use crate::cluster::console_sessions::{ConsoleSessionRecord, MAX_CLUSTER_SESSIONS, TOUCH_REPLICATE_INTERVAL};
use crate::cluster::metadata::{ClusterMetadata, Command};
use crate::cluster::Controller;

/// Why a session could not be opened or ended on the cluster.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClusterSessionError {
    #[error("the cluster could not record the session change: {reason}")]
    Unavailable { reason: String },
    #[error("user {user} was deleted or created again while signing in")]
    UserChanged { user: String },
}

/// This node's own knowledge of a session it served.
#[derive(Debug, Clone, Copy, Default)]
struct LocalUse {
    last_used_unix_ms: u64,
    /// When this node last proposed a touch for it: one in flight is not proposed again.
    touch_proposed_unix_ms: u64,
}

pub struct ClusterSessions {
    access: ClusterAccess,
    /// By the id's hash as the metadata keys it.
    local: Mutex<HashMap<String, LocalUse>>,
}

impl std::fmt::Debug for ClusterSessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterSessions").finish_non_exhaustive()
    }
}

impl ClusterSessions {
    /// The sessions of the cluster `controller` belongs to; `runtime` runs the background touches.
    pub fn new(controller: Arc<Controller>, runtime: Handle) -> Self {
        Self { access: ClusterAccess::new(controller, runtime), local: Mutex::new(HashMap::new()) }
    }

    /// Opens a session for `user`, who just proved their password, if the user still has the credential
    /// stamp `user_stamp` when the sign-in is committed.
    pub async fn create(
        &self,
        user: &str,
        user_stamp: &str,
        now: SystemTime,
    ) -> Result<NewSession, ClusterSessionError> {
        let id = random_secret();
        let key = key_of(&id);
        let command = Command::OpenConsoleSession {
            id_sha256: key.clone(),
            user: user.to_owned(),
            user_stamp: user_stamp.to_owned(),
            at_unix_ms: unix_ms(now),
        };
        let outcome = self
            .access
            .propose_async(command, |metadata| metadata.console_sessions.contains_key(&key))
            .await
            .map_err(|reason| ClusterSessionError::Unavailable { reason })?;
        if !outcome.changed {
            return Err(ClusterSessionError::UserChanged { user: user.to_owned() });
        }
        let view =
            SessionView { user: user.to_owned(), user_stamp: user_stamp.to_owned(), csrf_token: csrf_token_of(&id) };
        Ok(NewSession { id, view })
    }

    /// The live session `id` names, as this node's replica holds it, marked used at `now`.
    pub fn find(&self, id: &str, now: SystemTime) -> Option<SessionView> {
        let key = key_of(id);
        let now_ms = unix_ms(now);
        let metadata = self.access.metadata();
        let mut local = self.lock();
        let Some(session) = session_of_its_user(&metadata, &key) else {
            local.remove(&key);
            return None;
        };
        let last_used_here = local.get(&key).map_or(0, |used| used.last_used_unix_ms);
        if !session.is_live(now_ms, last_used_here) {
            // The controller's purge removes it from the metadata; nothing to write from here.
            local.remove(&key);
            return None;
        }
        if local.len() >= MAX_CLUSTER_SESSIONS && !local.contains_key(&key) {
            local.retain(|key, _| metadata.console_sessions.contains_key(key));
        }
        let used = local.entry(key.clone()).or_default();
        used.last_used_unix_ms = used.last_used_unix_ms.max(now_ms);
        let is_touch_due = is_touch_due(session.touched_unix_ms, used.touch_proposed_unix_ms, now_ms);
        if is_touch_due {
            used.touch_proposed_unix_ms = now_ms;
        }
        drop(local);
        if is_touch_due {
            let touch = Command::TouchConsoleSessions { id_sha256s: vec![key], at_unix_ms: now_ms };
            self.access.propose_in_background(touch, "console session touch");
        }
        Some(SessionView {
            user: session.user.clone(),
            user_stamp: session.user_stamp.clone(),
            csrf_token: csrf_token_of(id),
        })
    }

    /// Ends the session `id` on every node (sign-out), once this node has applied the end.
    pub async fn end(&self, id: &str) -> Result<(), ClusterSessionError> {
        let key = key_of(id);
        self.lock().remove(&key);
        let command = Command::EndConsoleSession { id_sha256: key.clone() };
        self.access
            .propose_async(command, |metadata| !metadata.console_sessions.contains_key(&key))
            .await
            .map(|_| ())
            .map_err(|reason| ClusterSessionError::Unavailable { reason })
    }

    /// The sessions this node's replica of the metadata holds (`rill_console_sessions`): the same on every node
    /// once applied. Ended ones leave it at the controller leader's next purge, within a heartbeat or so.
    pub fn replicated_count(&self) -> usize {
        self.access.metadata().console_sessions.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, LocalUse>> {
        self.local.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Whether a use at `now_ms` replicates a touch: the replicated one is [`TOUCH_REPLICATE_INTERVAL`] old, and
/// this node has not proposed one within that interval (one may still be on its way).
fn is_touch_due(replicated_touch_ms: u64, proposed_here_ms: u64, now_ms: u64) -> bool {
    let interval_ms = u64::try_from(TOUCH_REPLICATE_INTERVAL.as_millis()).unwrap_or(u64::MAX);
    now_ms.saturating_sub(replicated_touch_ms) >= interval_ms && now_ms.saturating_sub(proposed_here_ms) >= interval_ms
}

/// The session `key` names in `metadata` while its user holds the stamp it signed in with, both read from the
/// one replica. Applying ends a user's sessions when the user is deleted or created again, so a session whose
/// user no longer matches is one this replica has not yet dropped: refused, never ended from here.
fn session_of_its_user<'a>(metadata: &'a ClusterMetadata, key: &str) -> Option<&'a ConsoleSessionRecord> {
    let session = metadata.console_sessions.get(key)?;
    let user = metadata.users.get(&session.user)?;
    (credential_stamp_of(user) == session.user_stamp).then_some(session)
}

/// How the metadata names the session `id`: the URL-safe base64 of its SHA-256, as the per-node file does.
fn key_of(id: &str) -> String {
    URL_SAFE_NO_PAD.encode(id_hash(id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_busy_session_replicates_one_touch_per_interval_whatever_its_use() {
        let interval_ms = TOUCH_REPLICATE_INTERVAL.as_millis() as u64;
        let signed_in = 1_800_000_000_000;
        let (mut replicated, mut proposed, mut touches) = (signed_in, 0, 0);
        // A page a second for an hour on one node, each proposed touch committed a second later.
        for second in 1..=3_600u64 {
            let now = signed_in + second * 1_000;
            if proposed != 0 && now >= proposed + 1_000 {
                replicated = replicated.max(proposed);
            }
            if is_touch_due(replicated, proposed, now) {
                proposed = now;
                touches += 1;
            }
        }
        assert_eq!(touches, 3_600 / (interval_ms / 1_000), "one raft write per interval, not per page");
        assert!(!is_touch_due(signed_in, 0, signed_in + interval_ms - 1), "none before the first interval");
        let lost = signed_in + interval_ms;
        assert!(!is_touch_due(signed_in, lost, lost + 1), "a touch on its way is not proposed again");
        assert!(is_touch_due(signed_in, lost, lost + interval_ms), "one that was lost is, an interval later");
    }

    #[test]
    fn a_session_is_found_only_while_the_same_replica_holds_its_user_with_the_stamp_it_signed_in_with() {
        use crate::auth::scram::{ScramCredential, ScramMechanism, MIN_ITERATIONS};
        use crate::auth::users::UserRecord;
        let user = || {
            let credential = ScramCredential::generate(ScramMechanism::Sha256, b"pw", MIN_ITERATIONS);
            UserRecord { scram: [(ScramMechanism::Sha256, credential)].into(), token_hashes: Vec::new() }
        };
        let mut metadata = ClusterMetadata::default();
        metadata.apply(&Command::CreateUser { name: "alice".into(), user: user() });
        let key = key_of(&random_secret());
        let user_stamp = credential_stamp_of(&metadata.users["alice"]);
        let open = Command::OpenConsoleSession {
            id_sha256: key.clone(),
            user: "alice".into(),
            user_stamp,
            at_unix_ms: 1_800_000_000_000,
        };
        assert_eq!(metadata.apply(&open).refusal, None);
        assert_eq!(session_of_its_user(&metadata, &key).map(|s| s.user.as_str()), Some("alice"));
        assert!(session_of_its_user(&metadata, &key_of(&random_secret())).is_none(), "an unknown id");

        // A replica whose user differs from the session's (never left by applying, which ends such sessions).
        let mut other_stamp = metadata.clone();
        Arc::make_mut(&mut other_stamp.users).insert("alice".into(), user());
        assert!(session_of_its_user(&other_stamp, &key).is_none(), "alice created again is not who signed in");
        let mut without_user = metadata.clone();
        Arc::make_mut(&mut without_user.users).remove("alice");
        assert!(session_of_its_user(&without_user, &key).is_none(), "a deleted alice has no session");
        assert!(metadata.console_sessions.contains_key(&key), "refusing drops nothing");
    }

    #[test]
    fn the_metadata_names_a_session_by_its_hash_never_its_id() {
        let id = random_secret();
        let key = key_of(&id);
        assert_eq!(key.len(), 43, "32 bytes of unpadded base64: {key}");
        assert_ne!(key, id);
        assert_ne!(key, csrf_token_of(&id), "the CSRF token is not the key either");
    }
}
