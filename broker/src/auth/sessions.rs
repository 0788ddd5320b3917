//! The console's sign-in sessions (docs/console.md, "Signing in"): what a session cookie stands for.
//!
//! A session is created when a user signs in with their password and holds the user's name, the session's own
//! CSRF token and two clocks: it ends [`IDLE_LIMIT`] after its last use or [`LIFETIME_LIMIT`] after sign-in,
//! whichever comes first, at sign-out, or when its user is deleted (the caller checks the user on each use).
//!
//! Invariants: the store holds at most [`MAX_SESSIONS`] (a full store drops expired sessions, then the one
//! unused longest), so sign-ins cannot grow memory without bound. It keeps only the SHA-256 of each session
//! id: a memory dump or a debug print of the store yields no cookie that would sign anyone in.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::digest;

/// Sessions held at once; the console has a handful of operators, so this is a bound, not a target.
pub const MAX_SESSIONS: usize = 1_000;
/// A session unused this long has ended.
pub const IDLE_LIMIT: Duration = Duration::from_secs(30 * 60);
/// A session ends this long after sign-in however busy it is; the cookie's `Max-Age` says the same.
pub const LIFETIME_LIMIT: Duration = Duration::from_secs(12 * 60 * 60);
/// Random bytes of a session id and of a CSRF token (256 bits: not guessable, no need to slow guessing).
const SECRET_BYTES: usize = 32;

type IdHash = [u8; 32];

#[derive(Debug, Clone)]
struct Session {
    user: String,
    csrf_token: String,
    signed_in: Instant,
    last_used: Instant,
}

impl Session {
    fn is_live(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.last_used) < IDLE_LIMIT
            && now.saturating_duration_since(self.signed_in) < LIFETIME_LIMIT
    }
}

/// A live session as a request sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionView {
    pub user: String,
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

#[derive(Debug, Default)]
pub struct Sessions {
    by_id_hash: Mutex<HashMap<IdHash, Session>>,
}

impl Sessions {
    /// Opens a session for `user`, who just proved their password.
    pub fn create(&self, user: &str, now: Instant) -> NewSession {
        let id = random_secret();
        let csrf_token = random_secret();
        let session = Session { user: user.to_owned(), csrf_token: csrf_token.clone(), signed_in: now, last_used: now };
        let mut map = self.lock();
        if map.len() >= MAX_SESSIONS {
            map.retain(|_, session| session.is_live(now));
            if map.len() >= MAX_SESSIONS {
                if let Some(stalest) = map.iter().min_by_key(|(_, s)| s.last_used).map(|(hash, _)| *hash) {
                    map.remove(&stalest);
                }
            }
        }
        map.insert(id_hash(&id), session);
        assert!(map.len() <= MAX_SESSIONS, "the session store stays bounded");
        NewSession { id, view: SessionView { user: user.to_owned(), csrf_token } }
    }

    /// The live session `id` names, marked used at `now`; an ended one is forgotten.
    pub fn find(&self, id: &str, now: Instant) -> Option<SessionView> {
        let hash = id_hash(id);
        let mut map = self.lock();
        let session = map.get_mut(&hash)?;
        if !session.is_live(now) {
            map.remove(&hash);
            return None;
        }
        session.last_used = now;
        Some(SessionView { user: session.user.clone(), csrf_token: session.csrf_token.clone() })
    }

    /// Ends the session `id` (sign-out, or its user is gone).
    pub fn end(&self, id: &str) {
        self.lock().remove(&id_hash(id));
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IdHash, Session>> {
        self.by_id_hash.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn random_secret() -> String {
    let mut bytes = [0u8; SECRET_BYTES];
    rand::Rng::fill(&mut rand::thread_rng(), &mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

fn id_hash(id: &str) -> IdHash {
    let mut hash = [0u8; 32];
    hash.copy_from_slice(digest::digest(&digest::SHA256, id.as_bytes()).as_ref());
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_is_found_by_its_id_until_idle_or_old_and_ends_at_sign_out() {
        let sessions = Sessions::default();
        let start = Instant::now();
        let alice = sessions.create("alice", start);
        let bob = sessions.create("bob", start);
        assert_ne!(alice.id, bob.id);
        assert_ne!(alice.view.csrf_token, bob.view.csrf_token, "each session has its own CSRF token");
        assert_eq!(sessions.find(&alice.id, start), Some(alice.view.clone()));
        assert_eq!(sessions.find("not-a-session", start), None);

        // Used every 20 minutes, alice stays signed in past the idle limit, but not past the lifetime.
        let mut now = start;
        while now.saturating_duration_since(start) + Duration::from_secs(20 * 60) < LIFETIME_LIMIT {
            now += Duration::from_secs(20 * 60);
            assert!(sessions.find(&alice.id, now).is_some(), "used within the idle limit");
        }
        assert_eq!(sessions.find(&alice.id, start + LIFETIME_LIMIT), None, "ended by its lifetime");
        assert_eq!(sessions.find(&bob.id, start + IDLE_LIMIT), None, "bob was idle too long");
        assert!(sessions.is_empty(), "ended sessions are forgotten");

        let carol = sessions.create("carol", now);
        sessions.end(&carol.id);
        assert_eq!(sessions.find(&carol.id, now), None, "signed out");
    }

    #[test]
    fn the_store_never_holds_more_than_its_limit_and_drops_the_stalest() {
        let sessions = Sessions::default();
        let start = Instant::now();
        let first = sessions.create("first", start);
        let ids: Vec<String> = (1..MAX_SESSIONS + 10)
            .map(|i| sessions.create("user", start + Duration::from_millis(i as u64)).id)
            .collect();
        assert_eq!(sessions.len(), MAX_SESSIONS);
        assert_eq!(sessions.find(&first.id, start + Duration::from_secs(1)), None, "the stalest went first");
        assert!(sessions.find(ids.last().expect("ids"), start + Duration::from_secs(1)).is_some());
    }
}
