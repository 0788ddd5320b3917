//! The console's sign-in sessions (docs/console.md, "Signing in"): what a session cookie stands for.
//!
//! A session is created when a user signs in with their password and holds the user's name and two wall-clock
//! times: it ends [`IDLE_LIMIT`] after its last use or [`LIFETIME_LIMIT`] after sign-in, whichever comes first,
//! at sign-out, or when its user is deleted (the caller checks the user on each use). Its CSRF token is derived
//! from its id ([`csrf_token_of`]), so nothing but the id's hash need be kept.
//!
//! Sessions survive a restart: a store opened on a data dir ([`Sessions::open`]) keeps them in
//! `<data>/__console_sessions.json` (`session_file.rs`), written at every sign-in and session end before the
//! answer goes out, and after a use only when the file is [`TOUCH_WRITE_INTERVAL`] old (so a session may end
//! that much early after a restart, and busy pages cost no disk write each). A file that cannot be read is
//! ignored with a warning: nobody is signed in, nobody is let in. An end that cannot be written removes the
//! file instead, so an ended session never comes back at the next start.
//!
//! This is a single node's store. A cluster node keeps its sessions in the replicated metadata instead
//! (`cluster_sessions.rs`), so they hold on every node; `admin.rs`'s `SessionStore` picks one.
//!
//! Invariants: the store holds at most [`MAX_SESSIONS`] (a full store drops expired sessions, then the one
//! unused longest) and at most [`MAX_SESSIONS_PER_USER`] of one user (the user's oldest sign-ins go first, as
//! on a cluster), so sign-ins cannot grow memory or the file without bound, and one user signing in over and
//! over cannot push everyone else's sessions out. It keeps only the SHA-256 of each
//! session id, in memory and on disk: a memory dump, a debug print or the file yields no cookie that would sign
//! anyone in.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::digest;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

use super::session_file::{self, StoredSession};
pub use crate::cluster::console_sessions::MAX_SESSIONS_PER_USER;

/// Sessions held at once; the console has a handful of operators, so this is a bound, not a target.
pub const MAX_SESSIONS: usize = 1_000;
/// A session unused this long has ended.
pub const IDLE_LIMIT: Duration = Duration::from_secs(30 * 60);
/// A session ends this long after sign-in however busy it is; the cookie's `Max-Age` says the same.
pub const LIFETIME_LIMIT: Duration = Duration::from_secs(12 * 60 * 60);
/// How stale the last-use times in the file may grow before a use writes them.
pub const TOUCH_WRITE_INTERVAL: Duration = Duration::from_secs(60);
/// A session signed in further in the future than this (a clock set back, or a file from another machine)
/// has ended: its lifetime could not be trusted.
pub const CLOCK_SKEW_ALLOWED: Duration = Duration::from_secs(5 * 60);
/// Random bytes of a session id (256 bits: not guessable, no need to slow guessing).
const SECRET_BYTES: usize = 32;
/// What the CSRF token's hash starts with, so that it is never the id's hash (which the file holds).
const CSRF_DOMAIN: &[u8] = b"rill console csrf\0";

pub(crate) type IdHash = [u8; 32];

#[derive(Debug, Clone)]
struct Session {
    user: String,
    /// The user's `UserStore::credential_stamp` at sign-in.
    user_stamp: String,
    signed_in_unix_ms: u64,
    last_used_unix_ms: u64,
}

impl Session {
    fn is_live(&self, now_unix_ms: u64) -> bool {
        let limit_ms = |limit: Duration| u64::try_from(limit.as_millis()).unwrap_or(u64::MAX);
        self.signed_in_unix_ms <= now_unix_ms.saturating_add(limit_ms(CLOCK_SKEW_ALLOWED))
            && now_unix_ms.saturating_sub(self.last_used_unix_ms) < limit_ms(IDLE_LIMIT)
            && now_unix_ms.saturating_sub(self.signed_in_unix_ms) < limit_ms(LIFETIME_LIMIT)
    }
}

/// A live session as a request sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionView {
    pub user: String,
    /// The user's credential stamp at sign-in: the session ends when the user's is no longer this.
    pub user_stamp: String,
    /// What every form of this session carries and every POST must send back.
    pub csrf_token: String,
}

/// A new session: the id goes into the cookie (and nowhere else), the view into the first page.
pub struct NewSession {
    pub id: String,
    pub view: SessionView,
}

impl std::fmt::Debug for NewSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The id signs its holder in: it goes into the cookie, never into a log line.
        f.debug_struct("NewSession").field("user", &self.view.user).finish_non_exhaustive()
    }
}

/// Where sessions are kept besides memory, and when the file was last written.
#[derive(Debug)]
struct Persistence {
    path: PathBuf,
    /// Held across a write, and taken before the sessions' lock, so files are written in the order their
    /// contents were taken: an older set never replaces a newer one.
    last_write: Mutex<Option<SystemTime>>,
}

#[derive(Debug, Default)]
pub struct Sessions {
    by_id_hash: Mutex<HashMap<IdHash, Session>>,
    /// `None`: in memory only (tests, and what a restart then forgets).
    persistence: Option<Persistence>,
}

impl Sessions {
    /// The sessions kept in `data_dir`, those still live at `now`. A file that cannot be read is ignored, with
    /// a warning naming it: it would only sign people in, never let anyone else in, so losing it costs a sign-in.
    pub fn open(data_dir: &Path, now: SystemTime) -> Self {
        let path = session_file::path_in(data_dir);
        let now_ms = unix_ms(now);
        let mut by_id_hash = HashMap::new();
        match session_file::load(&path) {
            Ok(stored) => {
                for StoredSession { id_hash, user, user_stamp, signed_in_unix_ms, last_used_unix_ms } in stored {
                    let session = Session { user, user_stamp, signed_in_unix_ms, last_used_unix_ms };
                    if session.is_live(now_ms) {
                        by_id_hash.insert(id_hash, session);
                    }
                }
                let users: std::collections::HashSet<String> =
                    by_id_hash.values().map(|session| session.user.clone()).collect();
                for user in users {
                    keep_per_user_bounded(&mut by_id_hash, &user);
                }
                keep_bounded(&mut by_id_hash, now_ms);
                tracing::debug!(path = %path.display(), sessions = by_id_hash.len(), "console sessions loaded");
            }
            Err(error) => tracing::warn!(
                %error,
                "console sessions file ignored: everyone signs in again; it is replaced at the next sign-in"
            ),
        }
        Self {
            by_id_hash: Mutex::new(by_id_hash),
            persistence: Some(Persistence { path, last_write: Mutex::new(None) }),
        }
    }

    /// Opens a session for `user`, who just proved their password, with its credential stamp `user_stamp`.
    pub fn create(&self, user: &str, user_stamp: &str, now: SystemTime) -> NewSession {
        let id = random_secret();
        let now_ms = unix_ms(now);
        let session = Session {
            user: user.to_owned(),
            user_stamp: user_stamp.to_owned(),
            signed_in_unix_ms: now_ms,
            last_used_unix_ms: now_ms,
        };
        self.change(now, |map| {
            map.insert(id_hash(&id), session);
            keep_per_user_bounded(map, user);
            keep_bounded(map, now_ms);
        });
        let view =
            SessionView { user: user.to_owned(), user_stamp: user_stamp.to_owned(), csrf_token: csrf_token_of(&id) };
        NewSession { id, view }
    }

    /// The live session `id` names, marked used at `now`; an ended one is forgotten.
    pub fn find(&self, id: &str, now: SystemTime) -> Option<SessionView> {
        let hash = id_hash(id);
        let now_ms = unix_ms(now);
        let (user, user_stamp) = {
            let mut map = self.lock();
            let session = map.get_mut(&hash)?;
            if !session.is_live(now_ms) {
                // Not written: an expired session is dropped again by the next start's load.
                map.remove(&hash);
                return None;
            }
            session.last_used_unix_ms = session.last_used_unix_ms.max(now_ms);
            (session.user.clone(), session.user_stamp.clone())
        };
        self.write_touches(now);
        Some(SessionView { user, user_stamp, csrf_token: csrf_token_of(id) })
    }

    /// Ends the session `id` (sign-out, or its user is gone), on disk too before this returns.
    pub fn end(&self, id: &str, now: SystemTime) {
        let hash = id_hash(id);
        self.change(now, |map| {
            map.remove(&hash);
        });
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Sessions not yet ended at `now` (`rill_console_sessions`); ended ones the store still holds until a use
    /// or a full store drops them are not counted.
    pub fn live_count(&self, now: SystemTime) -> usize {
        let now_ms = unix_ms(now);
        self.lock().values().filter(|session| session.is_live(now_ms)).count()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IdHash, Session>> {
        self.by_id_hash.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Applies `edit` and writes the result. If it cannot be written the file is removed: a session just
    /// opened then lasts until the restart, and one just ended cannot come back with an old file.
    fn change(&self, now: SystemTime, edit: impl FnOnce(&mut HashMap<IdHash, Session>)) {
        let Some(persistence) = &self.persistence else {
            edit(&mut self.lock());
            return;
        };
        let mut last_write = persistence.last_write.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let stored = {
            let mut map = self.lock();
            edit(&mut map);
            assert!(map.len() <= MAX_SESSIONS, "the session store stays bounded");
            stored_form(&map)
        };
        *last_write = Some(now);
        if let Err(error) = session_file::store(&persistence.path, &stored) {
            match session_file::remove(&persistence.path) {
                Ok(()) => tracing::warn!(
                    %error,
                    "console sessions file not written, so removed: the sessions open now end at the next restart"
                ),
                Err(remove_error) => tracing::error!(
                    %error,
                    %remove_error,
                    "console sessions file neither written nor removed: a session ended now may come back after \
                     a restart; fix the data dir's permissions or space"
                ),
            }
        }
    }

    /// Writes the last-use times if the file is older than [`TOUCH_WRITE_INTERVAL`]. A failure here loses only
    /// use times, so it is logged and the file kept.
    fn write_touches(&self, now: SystemTime) {
        let Some(persistence) = &self.persistence else { return };
        let mut last_write = persistence.last_write.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let is_due = last_write
            .is_none_or(|written| now.duration_since(written).map_or(true, |age| age >= TOUCH_WRITE_INTERVAL));
        if !is_due {
            return;
        }
        let stored = stored_form(&self.lock());
        *last_write = Some(now);
        if let Err(error) = session_file::store(&persistence.path, &stored) {
            tracing::warn!(%error, "console sessions' last-use times not written: they may end early after a restart");
        }
    }
}

/// Drops expired sessions, then the ones unused longest, until a new one fits under [`MAX_SESSIONS`].
fn keep_bounded(map: &mut HashMap<IdHash, Session>, now_ms: u64) {
    if map.len() <= MAX_SESSIONS {
        return;
    }
    map.retain(|_, session| session.is_live(now_ms));
    while map.len() > MAX_SESSIONS {
        let Some(stalest) = map.iter().min_by_key(|(_, s)| s.last_used_unix_ms).map(|(hash, _)| *hash) else { break };
        map.remove(&stalest);
    }
}

/// Drops `user`'s oldest sign-ins (ties by id hash, so the choice does not depend on the map's order) until at
/// most [`MAX_SESSIONS_PER_USER`] are left: a cluster's rule (`cluster/console_sessions.rs`), here for one node.
fn keep_per_user_bounded(map: &mut HashMap<IdHash, Session>, user: &str) {
    let mut of_user: Vec<(u64, IdHash)> = map
        .iter()
        .filter(|(_, session)| session.user == user)
        .map(|(hash, session)| (session.signed_in_unix_ms, *hash))
        .collect();
    let Some(excess) = of_user.len().checked_sub(MAX_SESSIONS_PER_USER).filter(|excess| *excess > 0) else {
        return;
    };
    of_user.sort_unstable();
    for (_, hash) in of_user.into_iter().take(excess) {
        map.remove(&hash);
    }
}

fn stored_form(map: &HashMap<IdHash, Session>) -> Vec<StoredSession> {
    map.iter()
        .map(|(hash, session)| StoredSession {
            id_hash: *hash,
            user: session.user.clone(),
            user_stamp: session.user_stamp.clone(),
            signed_in_unix_ms: session.signed_in_unix_ms,
            last_used_unix_ms: session.last_used_unix_ms,
        })
        .collect()
}

pub(crate) fn unix_ms(time: SystemTime) -> u64 {
    // Before 1970 only on a broken clock: such a time makes every session look unused, so they end.
    time.duration_since(UNIX_EPOCH).map_or(0, |since| u64::try_from(since.as_millis()).unwrap_or(u64::MAX))
}

pub(crate) fn random_secret() -> String {
    let mut bytes = [0u8; SECRET_BYTES];
    rand::Rng::fill(&mut rand::thread_rng(), &mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

pub(crate) fn id_hash(id: &str) -> IdHash {
    let mut hash = [0u8; 32];
    hash.copy_from_slice(digest::digest(&digest::SHA256, id.as_bytes()).as_ref());
    hash
}

/// The CSRF token of the session `id`: a hash of the id in its own domain, so it is the same after a restart
/// without being stored, cannot be computed from the id's hash in the file, and tells nothing of the id.
pub fn csrf_token_of(id: &str) -> String {
    let mut context = digest::Context::new(&digest::SHA256);
    context.update(CSRF_DOMAIN);
    context.update(id.as_bytes());
    URL_SAFE_NO_PAD.encode(context.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_is_found_by_its_id_until_idle_or_old_and_ends_at_sign_out() {
        let sessions = Sessions::default();
        let start = SystemTime::now();
        let alice = sessions.create("alice", "stamp", start);
        let bob = sessions.create("bob", "stamp", start);
        assert_ne!(alice.id, bob.id);
        assert_ne!(alice.view.csrf_token, bob.view.csrf_token, "each session has its own CSRF token");
        assert_eq!(sessions.find(&alice.id, start), Some(alice.view.clone()));
        assert_eq!(sessions.find("not-a-session", start), None);

        // Used every 20 minutes, alice stays signed in past the idle limit, but not past the lifetime.
        let mut now = start;
        while now.duration_since(start).expect("later") + Duration::from_secs(20 * 60) < LIFETIME_LIMIT {
            now += Duration::from_secs(20 * 60);
            assert!(sessions.find(&alice.id, now).is_some(), "used within the idle limit");
        }
        assert_eq!(sessions.find(&alice.id, start + LIFETIME_LIMIT), None, "ended by its lifetime");
        assert_eq!(sessions.find(&bob.id, start + IDLE_LIMIT), None, "bob was idle too long");
        assert!(sessions.is_empty(), "ended sessions are forgotten");

        let carol = sessions.create("carol", "stamp", now);
        sessions.end(&carol.id, now);
        assert_eq!(sessions.find(&carol.id, now), None, "signed out");

        let dave = sessions.create("dave", "stamp", now);
        let clock_set_back = now - CLOCK_SKEW_ALLOWED - Duration::from_secs(1);
        assert_eq!(sessions.find(&dave.id, clock_set_back), None, "a sign-in in the future is not trusted");
    }

    #[test]
    fn a_console_tab_reloading_itself_keeps_its_session_until_the_lifetime_not_forever() {
        // A live page (console/live.rs) reloads every 5 s, and each reload is a use, as a click is: an open
        // Overview keeps its user signed in, but never past the lifetime counted from sign-in.
        let sessions = Sessions::default();
        let start = SystemTime::now();
        let alice = sessions.create("alice", "stamp", start);
        let reload = Duration::from_secs(5);
        let mut now = start + reload;
        while now < start + LIFETIME_LIMIT {
            assert!(sessions.find(&alice.id, now).is_some(), "reloaded {:?} after sign-in", now.duration_since(start));
            now += reload;
        }
        assert_eq!(sessions.find(&alice.id, now), None, "ended 12 h after sign-in, reloads or not");
    }

    #[test]
    fn the_store_never_holds_more_than_its_limit_and_drops_the_stalest() {
        let sessions = Sessions::default();
        let start = SystemTime::now();
        let first = sessions.create("first", "stamp", start);
        let ids: Vec<String> = (1..MAX_SESSIONS + 10)
            .map(|i| sessions.create(&format!("user{i}"), "stamp", start + Duration::from_millis(i as u64)).id)
            .collect();
        assert_eq!(sessions.len(), MAX_SESSIONS);
        assert_eq!(sessions.find(&first.id, start + Duration::from_secs(1)), None, "the stalest went first");
        assert!(sessions.find(ids.last().expect("ids"), start + Duration::from_secs(1)).is_some());
    }

    #[test]
    fn a_user_holds_at_most_its_cap_of_sessions_and_its_oldest_sign_in_goes_first() {
        let sessions = Sessions::default();
        let start = SystemTime::now();
        let at = |i: usize| start + Duration::from_millis(i as u64);
        let bob = sessions.create("bob", "stamp", start);
        let alice: Vec<NewSession> =
            (1..=MAX_SESSIONS_PER_USER + 2).map(|i| sessions.create("alice", "stamp", at(i))).collect();
        assert_eq!(sessions.len(), MAX_SESSIONS_PER_USER + 1, "alice's cap, and bob's one");
        let now = at(MAX_SESSIONS_PER_USER + 3);
        for (i, session) in alice.iter().enumerate() {
            let is_kept = sessions.find(&session.id, now).is_some();
            assert_eq!(is_kept, i >= 2, "alice's sign-in {i}: the two oldest went");
        }
        assert!(sessions.find(&bob.id, now).is_some(), "another user's session is not alice's to push out");
        // The first sign-in is used last, yet it goes first at the next: the cap counts sign-ins, not uses.
        let newest = sessions.create("alice", "stamp", now);
        assert!(sessions.find(&newest.id, now).is_some());
        assert!(sessions.find(&alice[2].id, now).is_none(), "the oldest remaining sign-in went");
        assert_eq!(sessions.live_count(now), MAX_SESSIONS_PER_USER + 1);
        assert_eq!(sessions.live_count(now + IDLE_LIMIT), 0, "idle ones are not counted");
    }

    #[test]
    fn a_file_holding_more_of_one_user_than_the_cap_loads_with_the_newest() {
        let dir = tempfile::tempdir().expect("tempdir");
        let start = SystemTime::now();
        let stored: Vec<StoredSession> = (0..MAX_SESSIONS_PER_USER + 5)
            .map(|i| StoredSession {
                id_hash: id_hash(&format!("id-{i}")),
                user: "alice".to_owned(),
                user_stamp: "stamp".to_owned(),
                signed_in_unix_ms: unix_ms(start) + i as u64,
                last_used_unix_ms: unix_ms(start) + i as u64,
            })
            .collect();
        session_file::store(&session_file::path_in(dir.path()), &stored).expect("a file from before the cap");
        let sessions = Sessions::open(dir.path(), start);
        assert_eq!(sessions.len(), MAX_SESSIONS_PER_USER);
        assert!(sessions.find("id-4", start).is_none() && sessions.find("id-5", start).is_some());
    }

    #[test]
    fn sessions_survive_a_reopen_with_their_token_and_end_for_good() {
        let dir = tempfile::tempdir().expect("tempdir");
        let start = SystemTime::now();
        let sessions = Sessions::open(dir.path(), start);
        let alice = sessions.create("alice", "stamp", start);
        let bob = sessions.create("bob", "stamp", start);
        let carol = sessions.create("carol", "stamp", start);
        sessions.end(&bob.id, start);
        // carol is used once more, past the write interval: that use reaches the file.
        let later = start + TOUCH_WRITE_INTERVAL + Duration::from_secs(1);
        assert!(sessions.find(&carol.id, later).is_some());
        drop(sessions);

        let file = std::fs::read_to_string(dir.path().join(session_file::SESSIONS_FILE)).expect("the file");
        for secret in [&alice.id, &alice.view.csrf_token, &carol.id, &carol.view.csrf_token] {
            assert!(!file.contains(secret.as_str()), "no id or CSRF token in the file: {file}");
        }

        let reopened = Sessions::open(dir.path(), later);
        assert_eq!(reopened.find(&alice.id, later), Some(alice.view.clone()), "the same cookie and CSRF token");
        assert_eq!(reopened.find(&bob.id, later), None, "signed out before the restart");
        let idle_after_alice = start + IDLE_LIMIT + Duration::from_secs(1);
        assert!(reopened.find(&carol.id, idle_after_alice).is_some(), "carol's last use was kept");
        assert_eq!(reopened.find(&alice.id, idle_after_alice + IDLE_LIMIT), None, "idle sessions still end");

        let at_end = start + LIFETIME_LIMIT;
        assert_eq!(Sessions::open(dir.path(), at_end).len(), 0, "a reopen drops sessions past their lifetime");
    }

    #[test]
    fn a_damaged_file_opens_no_session_and_is_replaced_at_the_next_sign_in() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(session_file::SESSIONS_FILE);
        std::fs::write(&path, b"{\"version\":1,\"sessions\":[{\"id_sha").expect("torn file");
        let now = SystemTime::now();
        let sessions = Sessions::open(dir.path(), now);
        assert!(sessions.is_empty());
        let alice = sessions.create("alice", "stamp", now);
        assert_eq!(Sessions::open(dir.path(), now).find(&alice.id, now), Some(alice.view), "a good file again");
    }

    #[test]
    fn an_end_that_cannot_be_written_removes_the_file_so_it_never_comes_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let now = SystemTime::now();
        let sessions = Sessions::open(dir.path(), now);
        let alice = sessions.create("alice", "stamp", now);
        // The temporary file's name is taken by a non-empty directory: writes fail, removing the file does not.
        let blocker = dir.path().join(session_file::SESSIONS_FILE).with_extension("tmp");
        std::fs::create_dir_all(blocker.join("x")).expect("blocker");
        sessions.end(&alice.id, now);
        assert_eq!(Sessions::open(dir.path(), now).find(&alice.id, now), None, "alice stays signed out");
    }
}
