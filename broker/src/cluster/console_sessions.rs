//! The console's sign-in sessions as part of a cluster's replicated metadata (docs/console.md, "Sessions on a
//! cluster"), so one cookie signs its holder in on every node's admin listener and a sign-out, or the deletion
//! or re-creation of the user, ends it on every node.
//!
//! A session is kept by the SHA-256 of its id (never the id: the cookie is the only copy), with its user, the
//! user's credential stamp at sign-in and two wall-clock times of the proposer: when it signed in and when some
//! node last replicated a use of it ("touched"). Uses are not replicated one by one: a node serving a session
//! touches it at most once every [`TOUCH_REPLICATE_INTERVAL`] and keeps finer use times for itself
//! (`auth/cluster_sessions.rs`), so busy pages cost no raft write each and another node sees the session idle
//! at most that much early.
//!
//! Applying is deterministic: every time it compares against is carried in the command, never read from the
//! applying node's clock. The bounds hold in `apply`, whoever proposed: at most [`MAX_SESSIONS_PER_USER`] per
//! user and [`MAX_CLUSTER_SESSIONS`] in all (a sign-in past either drops the oldest sign-ins first), and the
//! controller leader proposes [`Command::PurgeConsoleSessions`] for sessions that have ended by idling or age,
//! so the metadata cannot grow without bound.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::access::AccessRefusal;
use super::metadata::{ClusterMetadata, Command, CommandOutcome};
use crate::auth::sessions::{CLOCK_SKEW_ALLOWED, IDLE_LIMIT, LIFETIME_LIMIT, MAX_SESSIONS};
use crate::auth::users::{credential_stamp_of, validate_name};

/// Sessions one user may hold at once on a cluster: a browser per device and a few scripts, with room.
pub const MAX_SESSIONS_PER_USER: usize = 32;
/// Sessions the cluster holds at once: the same bound as a single node's store.
pub const MAX_CLUSTER_SESSIONS: usize = MAX_SESSIONS;
/// How stale a session's replicated last use may grow before a node that uses it replicates the use: a raft
/// write per session at most this often, and a session ends at most this much early on a node that did not
/// serve it.
pub const TOUCH_REPLICATE_INTERVAL: Duration = Duration::from_secs(5 * 60);
/// Most sessions one touch command names.
pub const MAX_TOUCHES_PER_COMMAND: usize = 256;
/// The length of an id's hash as kept: URL-safe base64 of 32 bytes, unpadded.
const ID_HASH_CHARS: usize = 43;

/// Every console session of the cluster, by the URL-safe base64 of the SHA-256 of its id. Shared (`Arc`) so
/// that publishing the metadata after each applied command copies nothing.
pub type ConsoleSessions = Arc<BTreeMap<String, ConsoleSessionRecord>>;

/// One session as the metadata keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsoleSessionRecord {
    pub user: String,
    /// The user's credential stamp at sign-in (`auth/users.rs`): the session is the user's only while it holds.
    pub user_stamp: String,
    /// By the signing-in node's clock, Unix milliseconds.
    pub signed_in_unix_ms: u64,
    /// The last use a node replicated, Unix milliseconds: at most [`TOUCH_REPLICATE_INTERVAL`] behind the last
    /// use of a session used on any node.
    pub touched_unix_ms: u64,
}

impl ConsoleSessionRecord {
    /// Whether the session is still open at `now_unix_ms` if it was last used at `last_used_unix_ms` (the
    /// replicated touch, or a later use a node saw itself): the same limits as a single node's sessions.
    pub fn is_live(&self, now_unix_ms: u64, last_used_unix_ms: u64) -> bool {
        let limit_ms = |limit: Duration| u64::try_from(limit.as_millis()).unwrap_or(u64::MAX);
        let last_used = last_used_unix_ms.max(self.touched_unix_ms);
        self.signed_in_unix_ms <= now_unix_ms.saturating_add(limit_ms(CLOCK_SKEW_ALLOWED))
            && now_unix_ms.saturating_sub(last_used) < limit_ms(IDLE_LIMIT)
            && now_unix_ms.saturating_sub(self.signed_in_unix_ms) < limit_ms(LIFETIME_LIMIT)
    }
}

impl ClusterMetadata {
    /// Applies a console session command; other commands change nothing here.
    pub(super) fn apply_console_session(&mut self, command: &Command) -> CommandOutcome {
        let result = match command {
            Command::OpenConsoleSession { id_sha256, user, user_stamp, at_unix_ms } => {
                self.open_console_session(id_sha256, user, user_stamp, *at_unix_ms)
            }
            Command::EndConsoleSession { id_sha256 } => {
                Ok(u64::from(Arc::make_mut(&mut self.console_sessions).remove(id_sha256).is_some()))
            }
            Command::TouchConsoleSessions { id_sha256s, at_unix_ms } => Ok(self.touch(id_sha256s, *at_unix_ms)),
            Command::PurgeConsoleSessions { at_unix_ms } => {
                Ok(self.retain_console_sessions(|session| session.is_live(*at_unix_ms, 0)))
            }
            _ => Ok(0),
        };
        match result {
            Ok(count) => CommandOutcome { changed: count > 0, count: Some(count), ..CommandOutcome::unchanged() },
            Err(refusal) => CommandOutcome { refusal: Some(refusal), ..CommandOutcome::unchanged() },
        }
    }

    /// The sessions of `user` end: it was deleted, or created again (a new user with the old name).
    pub(super) fn end_console_sessions_of(&mut self, user: &str) {
        self.retain_console_sessions(|session| session.user != user);
    }

    /// Whether some session has ended by `now_unix_ms` and waits for a purge.
    pub fn has_ended_console_sessions(&self, now_unix_ms: u64) -> bool {
        self.console_sessions.values().any(|session| !session.is_live(now_unix_ms, 0))
    }

    fn open_console_session(
        &mut self,
        id_sha256: &str,
        user: &str,
        user_stamp: &str,
        at_unix_ms: u64,
    ) -> Result<u64, AccessRefusal> {
        if id_sha256.len() != ID_HASH_CHARS || validate_name(user).is_err() {
            return Err(AccessRefusal::Invalid);
        }
        // The stamp is checked here, in log order, so a sign-in racing the user's deletion and re-creation
        // never opens a session for the new user.
        let record = self.users.get(user).ok_or(AccessRefusal::UnknownUser)?;
        if credential_stamp_of(record) != user_stamp {
            return Err(AccessRefusal::UnknownUser);
        }
        if self.console_sessions.contains_key(id_sha256) {
            return Ok(0);
        }
        let session = ConsoleSessionRecord {
            user: user.to_owned(),
            user_stamp: user_stamp.to_owned(),
            signed_in_unix_ms: at_unix_ms,
            touched_unix_ms: at_unix_ms,
        };
        self.retain_console_sessions(|session| session.is_live(at_unix_ms, 0));
        let sessions = Arc::make_mut(&mut self.console_sessions);
        sessions.insert(id_sha256.to_owned(), session);
        drop_oldest(sessions, MAX_SESSIONS_PER_USER, |session| session.user == user);
        drop_oldest(sessions, MAX_CLUSTER_SESSIONS, |_| true);
        assert!(sessions.len() <= MAX_CLUSTER_SESSIONS, "the cluster's sessions stay bounded");
        Ok(1)
    }

    fn touch(&mut self, id_sha256s: &[String], at_unix_ms: u64) -> u64 {
        let is_later = |session: Option<&ConsoleSessionRecord>| session.is_some_and(|s| s.touched_unix_ms < at_unix_ms);
        let names = id_sha256s.iter().take(MAX_TOUCHES_PER_COMMAND);
        if !names.clone().any(|id_sha256| is_later(self.console_sessions.get(id_sha256))) {
            return 0;
        }
        let sessions = Arc::make_mut(&mut self.console_sessions);
        let mut touched = 0;
        for id_sha256 in names {
            if let Some(session) = sessions.get_mut(id_sha256).filter(|s| s.touched_unix_ms < at_unix_ms) {
                session.touched_unix_ms = at_unix_ms;
                touched += 1;
            }
        }
        touched
    }

    /// Keeps the sessions `keep` accepts; how many went.
    fn retain_console_sessions(&mut self, keep: impl Fn(&ConsoleSessionRecord) -> bool) -> u64 {
        if self.console_sessions.values().all(&keep) {
            return 0;
        }
        let sessions = Arc::make_mut(&mut self.console_sessions);
        let before = sessions.len();
        sessions.retain(|_, session| keep(session));
        (before - sessions.len()) as u64
    }
}

/// Drops the sessions `counted` selects, oldest sign-in first (ties by id hash, so every replica drops the
/// same), until at most `limit` are left.
fn drop_oldest(
    sessions: &mut BTreeMap<String, ConsoleSessionRecord>,
    limit: usize,
    counted: impl Fn(&ConsoleSessionRecord) -> bool,
) {
    let mut selected: Vec<(u64, String)> = sessions
        .iter()
        .filter(|(_, session)| counted(session))
        .map(|(id_sha256, session)| (session.signed_in_unix_ms, id_sha256.clone()))
        .collect();
    if selected.len() <= limit {
        return;
    }
    selected.sort_unstable();
    let excess = selected.len() - limit;
    for (_, id_sha256) in selected.into_iter().take(excess) {
        sessions.remove(&id_sha256);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::scram::{ScramCredential, ScramMechanism, MIN_ITERATIONS};
    use crate::auth::users::UserRecord;

    const START: u64 = 1_800_000_000_000;

    fn user() -> UserRecord {
        let credential = ScramCredential::generate(ScramMechanism::Sha256, b"pw", MIN_ITERATIONS);
        UserRecord { scram: [(ScramMechanism::Sha256, credential)].into(), token_hashes: Vec::new() }
    }

    fn id(n: usize) -> String {
        format!("{n:0>43}")
    }

    fn ms(duration: Duration) -> u64 {
        duration.as_millis() as u64
    }

    /// Metadata with users `names`.
    fn with_users(names: &[&str]) -> ClusterMetadata {
        let mut metadata = ClusterMetadata::default();
        for name in names {
            metadata.apply(&Command::CreateUser { name: (*name).into(), user: user() });
        }
        metadata
    }

    /// The command that signs `name` in with session `n` at `at`.
    fn open(metadata: &ClusterMetadata, name: &str, n: usize, at: u64) -> Command {
        let stamp = credential_stamp_of(&metadata.users[name]);
        Command::OpenConsoleSession { id_sha256: id(n), user: name.into(), user_stamp: stamp, at_unix_ms: at }
    }

    #[test]
    fn replicas_applying_the_same_session_commands_hold_the_same_sessions() {
        let mut one = with_users(&["alice", "bob"]);
        let mut two = one.clone();
        let commands = [
            open(&one, "alice", 1, START),
            open(&one, "bob", 2, START + 1),
            open(&one, "alice", 3, START + 2),
            Command::TouchConsoleSessions { id_sha256s: vec![id(1), id(9)], at_unix_ms: START + 60_000 },
            Command::EndConsoleSession { id_sha256: id(3) },
            Command::DeleteUser { name: "bob".into() },
        ];
        let outcomes: Vec<CommandOutcome> = commands.iter().map(|c| one.apply(c)).collect();
        assert_eq!(outcomes, commands.iter().map(|c| two.apply(c)).collect::<Vec<_>>());
        assert_eq!(one, two);
        assert_eq!(outcomes.iter().map(|o| o.changed).collect::<Vec<_>>(), [true, true, true, true, true, true]);
        assert_eq!(one.console_sessions.keys().collect::<Vec<_>>(), [&id(1)], "signed out, and bob deleted");
        assert_eq!(one.console_sessions[&id(1)].touched_unix_ms, START + 60_000);
        let again = Command::TouchConsoleSessions { id_sha256s: vec![id(1)], at_unix_ms: START + 30_000 };
        assert!(!one.apply(&again).changed, "an older touch moves nothing back");
    }

    #[test]
    fn a_sign_in_for_a_user_deleted_or_created_again_is_refused_and_re_creation_ends_sessions() {
        let mut metadata = with_users(&["alice"]);
        let stale = open(&metadata, "alice", 1, START);
        assert!(metadata.apply(&stale).changed);
        metadata.apply(&Command::DeleteUser { name: "alice".into() });
        metadata.apply(&Command::CreateUser { name: "alice".into(), user: user() });
        assert!(metadata.console_sessions.is_empty(), "the old alice's session ended with her");
        let Command::OpenConsoleSession { user_stamp, .. } = &stale else { unreachable!() };
        let late = Command::OpenConsoleSession {
            id_sha256: id(2),
            user: "alice".into(),
            user_stamp: user_stamp.clone(),
            at_unix_ms: START,
        };
        assert_eq!(metadata.apply(&late).refusal, Some(AccessRefusal::UnknownUser), "the old stamp");
        let nobody = Command::OpenConsoleSession {
            id_sha256: id(3),
            user: "nobody".into(),
            user_stamp: "s".into(),
            at_unix_ms: START,
        };
        assert_eq!(metadata.apply(&nobody).refusal, Some(AccessRefusal::UnknownUser));
        let mut bad_hash = open(&metadata, "alice", 4, START);
        if let Command::OpenConsoleSession { id_sha256, .. } = &mut bad_hash {
            *id_sha256 = "short".into();
        }
        assert_eq!(metadata.apply(&bad_hash).refusal, Some(AccessRefusal::Invalid));
        assert!(metadata.console_sessions.is_empty());
    }

    #[test]
    fn sessions_end_by_idling_or_age_and_the_purge_drops_only_those() {
        let mut metadata = with_users(&["alice"]);
        metadata.apply(&open(&metadata, "alice", 1, START));
        metadata.apply(&open(&metadata, "alice", 2, START));
        let session = metadata.console_sessions[&id(1)].clone();
        let idle = START + ms(IDLE_LIMIT);
        assert!(session.is_live(idle - 1, 0));
        assert!(!session.is_live(idle, 0), "idle by the replicated touch");
        assert!(session.is_live(idle, START + 1), "a later use this node saw keeps it open");
        assert!(!session.is_live(START + ms(LIFETIME_LIMIT), START + ms(LIFETIME_LIMIT)), "too old however busy");
        assert!(!session.is_live(START - ms(CLOCK_SKEW_ALLOWED) - 1, 0), "signed in in the future");

        // Session 2 is touched every 20 minutes: it outlives the idle limit, session 1 does not.
        let mut now = START;
        while now + ms(Duration::from_secs(20 * 60)) < START + ms(LIFETIME_LIMIT) {
            now += ms(Duration::from_secs(20 * 60));
            metadata.apply(&Command::TouchConsoleSessions { id_sha256s: vec![id(2)], at_unix_ms: now });
            metadata.apply(&Command::PurgeConsoleSessions { at_unix_ms: now });
        }
        assert!(!metadata.has_ended_console_sessions(START + 1));
        assert_eq!(metadata.console_sessions.keys().collect::<Vec<_>>(), [&id(2)], "the idle one was purged");
        let end = START + ms(LIFETIME_LIMIT);
        assert!(metadata.has_ended_console_sessions(end));
        assert_eq!(metadata.apply(&Command::PurgeConsoleSessions { at_unix_ms: end }).count, Some(1));
        assert!(metadata.console_sessions.is_empty());
        assert!(!metadata.apply(&Command::PurgeConsoleSessions { at_unix_ms: end }).changed, "nothing left");
    }

    #[test]
    fn the_caps_hold_in_apply_and_drop_the_oldest_sign_ins() {
        let names: Vec<String> =
            (0..MAX_CLUSTER_SESSIONS / MAX_SESSIONS_PER_USER + 2).map(|i| format!("u{i}")).collect();
        let mut metadata = with_users(&names.iter().map(String::as_str).collect::<Vec<_>>());
        for n in 0..MAX_SESSIONS_PER_USER + 3 {
            metadata.apply(&open(&metadata, "u0", n, START + n as u64));
        }
        let of_u0: Vec<&String> = metadata.console_sessions.keys().collect();
        assert_eq!(of_u0.len(), MAX_SESSIONS_PER_USER);
        assert!(!of_u0.contains(&&id(0)) && !of_u0.contains(&&id(2)) && of_u0.contains(&&id(3)), "oldest went");

        let mut n = 1_000;
        for name in &names[1..] {
            for _ in 0..MAX_SESSIONS_PER_USER {
                n += 1;
                metadata.apply(&open(&metadata, name, n, START + n as u64));
            }
        }
        assert_eq!(metadata.console_sessions.len(), MAX_CLUSTER_SESSIONS);
        assert!(!metadata.console_sessions.contains_key(&id(3)), "the cluster-wide cap dropped the oldest too");
        assert!(metadata.console_sessions.contains_key(&id(n)));
    }

    #[test]
    fn sessions_survive_a_snapshot_and_older_snapshots_load_without_them() {
        let mut metadata = with_users(&["alice"]);
        metadata.apply(&open(&metadata, "alice", 1, START));
        let bytes = serde_json::to_vec(&metadata).expect("serializable");
        let restored: ClusterMetadata = serde_json::from_slice(&bytes).expect("round trip");
        assert_eq!(restored, metadata);
        let without = with_users(&["alice"]);
        let text = serde_json::to_string(&without).expect("serializable");
        assert!(!text.contains("console_sessions"), "nothing new written without sessions: {text}");
        let old: ClusterMetadata = serde_json::from_str(r#"{"cluster_id":"c","nodes":{},"topics":{}}"#).expect("old");
        assert!(old.console_sessions.is_empty());
    }
}
