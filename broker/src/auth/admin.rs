//! Who calls the admin listener (docs/console.md, "Signing in"): a bearer token's user, a signed-in console
//! session, or nobody. The admin listener asks this once per request and hands the [`Caller`] to `/metrics` and
//! the console; whether anonymous callers are let in is `auth.admin_auth` (`is_required`).
//!
//! Invariants: a password is checked against the user's stored SCRAM credential and dropped, never stored or
//! logged; a failed sign-in says the same whatever failed and waits longer after each failure from its address
//! (the SASL backoff, `backoff.rs`, with its own map); an `Authorization` header that names no token this node
//! issued is refused even when authentication is off, as on gRPC, so a mistyped token never passes silently as
//! anonymous.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use super::backoff::FailureBackoff;
use super::cluster_sessions::{ClusterSessionError, ClusterSessions};
use super::sessions::{NewSession, SessionView, Sessions};
use super::{Principal, UserStore};

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "rill_session";

/// Who a request to the admin listener acts as.
#[derive(Debug, Clone)]
pub enum Caller {
    /// Nothing authenticated it: `User:ANONYMOUS`.
    Anonymous,
    /// An `Authorization: Bearer` token's user. A browser never adds that header by itself, so a request
    /// carrying it cannot be forged by another site, and needs no CSRF token.
    Token { user: String },
    /// A console session's user, from the session cookie.
    Session { id: String, view: SessionView },
}

impl Caller {
    pub fn principal(&self) -> Principal {
        match self {
            Caller::Anonymous => Principal::Anonymous,
            Caller::Token { user } | Caller::Session { view: SessionView { user, .. }, .. } => {
                Principal::User(user.clone())
            }
        }
    }

    pub fn is_authenticated(&self) -> bool {
        !matches!(self, Caller::Anonymous)
    }
}

/// Why a request's credentials were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdminAuthError {
    #[error("the bearer token is not valid (unknown, revoked, or its user deleted)")]
    InvalidToken,
    #[error("the bearer token is not valid: {0}")]
    InvalidOAuthToken(super::oauth::TokenError),
    #[error("the Authorization header is not `Bearer TOKEN`")]
    NotBearer,
}

/// A sign-in that failed, and how long its answer waits (the backoff for its address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignInRefused {
    pub wait: Duration,
}

/// Why a sign-in opened no session.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignInError {
    #[error("wrong user name or password")]
    Refused(SignInRefused),
    /// The password was right but the cluster could not record the session (no controller leader, say).
    #[error("{0}")]
    Unavailable(ClusterSessionError),
}

/// Where the console's sessions live: a single node's own store (and file), or the cluster metadata.
#[derive(Debug)]
pub enum SessionStore {
    Node(Sessions),
    Cluster(ClusterSessions),
}

impl SessionStore {
    async fn create(&self, user: &str, user_stamp: &str, now: SystemTime) -> Result<NewSession, ClusterSessionError> {
        match self {
            SessionStore::Node(sessions) => Ok(sessions.create(user, user_stamp, now)),
            SessionStore::Cluster(sessions) => sessions.create(user, user_stamp, now).await,
        }
    }

    fn find(&self, id: &str, now: SystemTime) -> Option<SessionView> {
        match self {
            SessionStore::Node(sessions) => sessions.find(id, now),
            SessionStore::Cluster(sessions) => sessions.find(id, now),
        }
    }

    /// Sessions held now (`rill_console_sessions`): a single node's not yet ended, a cluster's replicated ones.
    pub fn count(&self, now: SystemTime) -> usize {
        match self {
            SessionStore::Node(sessions) => sessions.live_count(now),
            SessionStore::Cluster(sessions) => sessions.replicated_count(),
        }
    }

    async fn end(&self, id: &str, now: SystemTime) -> Result<(), ClusterSessionError> {
        match self {
            SessionStore::Node(sessions) => {
                sessions.end(id, now);
                Ok(())
            }
            SessionStore::Cluster(sessions) => sessions.end(id).await,
        }
    }
}

/// The admin listener's authentication: the node's users, the console's sessions, the sign-in backoff.
pub struct AdminAuthenticator {
    users: Arc<UserStore>,
    is_required: bool,
    sessions: SessionStore,
    backoff: FailureBackoff,
    oauth: Option<Arc<super::oauth::OAuthValidator>>,
}

impl AdminAuthenticator {
    /// An authenticator over `users` whose console sessions are `sessions` (`Sessions::open` on the data dir,
    /// or the cluster's, so they survive a restart).
    pub fn new(users: Arc<UserStore>, is_required: bool, sessions: SessionStore) -> Self {
        Self { users, is_required, sessions, backoff: FailureBackoff::default(), oauth: None }
    }

    /// Also takes JWTs from the identity provider `oauth` checks, as bearer tokens.
    pub fn with_oauth(self, oauth: Option<Arc<super::oauth::OAuthValidator>>) -> Self {
        Self { oauth, ..self }
    }

    /// [`AdminAuthenticator::caller`], a JWT bearer token checked against the identity provider first.
    pub async fn authenticate(
        &self,
        authorization: Option<&str>,
        cookie: Option<&str>,
        now: SystemTime,
    ) -> Result<Caller, AdminAuthError> {
        if let (Some(oauth), Some(token)) = (&self.oauth, authorization.and_then(super::oauth::jwt_in_bearer)) {
            let valid = oauth.validate(token).await.map_err(AdminAuthError::InvalidOAuthToken)?;
            return Ok(Caller::Token { user: valid.user });
        }
        self.caller(authorization, cookie, now)
    }

    /// The console's sessions held now, for `/metrics`.
    pub fn session_count(&self, now: SystemTime) -> usize {
        self.sessions.count(now)
    }

    /// Whether a caller must be a user (`auth.admin_auth`).
    pub fn is_required(&self) -> bool {
        self.is_required
    }

    /// The caller of a request with these `Authorization` and `Cookie` headers. A token wins over a cookie; a
    /// cookie naming no live session (ended, or its user deleted) is anonymous, so the console asks to sign in.
    pub fn caller(
        &self,
        authorization: Option<&str>,
        cookie: Option<&str>,
        now: SystemTime,
    ) -> Result<Caller, AdminAuthError> {
        if let Some(value) = authorization {
            let Some(token) = value.strip_prefix("Bearer ").map(str::trim) else {
                // Another scheme (Basic, say) means nothing here: refused where authentication is required,
                // ignored where it is off (as before authentication existed).
                return if self.is_required { Err(AdminAuthError::NotBearer) } else { Ok(Caller::Anonymous) };
            };
            let user = self.users.user_of_token(token);
            return user.map(|user| Caller::Token { user }).ok_or(AdminAuthError::InvalidToken);
        }
        let Some(id) = cookie.and_then(session_id_of) else { return Ok(Caller::Anonymous) };
        let Some(view) = self.sessions.find(id, now) else { return Ok(Caller::Anonymous) };
        if let SessionStore::Node(sessions) = &self.sessions {
            if self.users.credential_stamp(&view.user).as_deref() != Some(view.user_stamp.as_str()) {
                // Deleted, or deleted and created again: either way not the user who signed in.
                sessions.end(id, now);
                return Ok(Caller::Anonymous);
            }
        }
        // A cluster's `find` checked the user in the same replica of the metadata as the session: the user
        // store here follows that replica a moment behind, and a restarted node's can lag a fresh session by a
        // user's re-creation, which must not end the session everywhere.
        Ok(Caller::Session { id: id.to_owned(), view })
    }

    /// Checks `password` against `user`'s stored credential (PBKDF2: run off the async threads) and opens a
    /// session; a failure is slowed per address. The password is dropped here.
    pub async fn sign_in(&self, user: &str, password: String, peer: Option<IpAddr>) -> Result<NewSession, SignInError> {
        let is_valid = super::users::validate_name(user).is_ok() && {
            let (users, name) = (Arc::clone(&self.users), user.to_owned());
            tokio::task::spawn_blocking(move || users.check_password(&name, password.as_bytes())).await.unwrap_or(false)
        };
        let address = peer.unwrap_or(IpAddr::from([0, 0, 0, 0]));
        // Taken after the check: a user deleted in between has no stamp, and the sign-in fails as a wrong one.
        let stamp = if is_valid { self.users.credential_stamp(user) } else { None };
        let Some(stamp) = stamp else {
            let wait = self.backoff.record_failure(address, Instant::now());
            tracing::info!(%address, user, wait_ms = wait.as_millis() as u64, "console sign-in failed");
            return Err(SignInError::Refused(SignInRefused { wait }));
        };
        let session = match self.sessions.create(user, &stamp, SystemTime::now()).await {
            Ok(session) => session,
            Err(ClusterSessionError::UserChanged { .. }) => {
                // The user went (or came back new) between the check and the commit: as a wrong password.
                let wait = self.backoff.record_failure(address, Instant::now());
                tracing::info!(%address, user, "console sign-in failed: the user changed meanwhile");
                return Err(SignInError::Refused(SignInRefused { wait }));
            }
            Err(error) => {
                tracing::warn!(%address, user, %error, "console sign-in not recorded");
                return Err(SignInError::Unavailable(error));
            }
        };
        self.backoff.record_success(address);
        tracing::info!(%address, principal = %Principal::User(user.to_owned()), "console sign-in");
        Ok(session)
    }

    /// Ends the caller's session (sign-out); on a cluster, on every node, before this returns.
    pub async fn sign_out(&self, caller: &Caller) -> Result<(), ClusterSessionError> {
        if let Caller::Session { id, view } = caller {
            self.sessions.end(id, SystemTime::now()).await?;
            tracing::info!(principal = %Principal::User(view.user.clone()), "console sign-out");
        }
        Ok(())
    }
}

/// The session id in a `Cookie` header (`a=1; rill_session=ID`), if there is one.
fn session_id_of(cookie: &str) -> Option<&str> {
    cookie
        .split(';')
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.trim())
        .filter(|value| !value.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::scram::MIN_ITERATIONS;

    #[tokio::test]
    async fn a_password_opens_a_session_its_cookie_finds_and_a_token_wins() {
        let dir = tempfile::tempdir().expect("tempdir");
        let users = Arc::new(UserStore::open(dir.path()).expect("store"));
        users.create("alice", b"pencil", &[], MIN_ITERATIONS).expect("alice");
        users.create("bob", b"hunter2", &[], MIN_ITERATIONS).expect("bob");
        let token = users.create_token("bob").expect("token");
        let auth = AdminAuthenticator::new(Arc::clone(&users), true, SessionStore::Node(Sessions::default()));
        let peer = Some(IpAddr::from([10, 0, 0, 1]));

        let refused = auth.sign_in("alice", "pencil!".into(), peer).await.expect_err("wrong password");
        let wait = Duration::from_millis(100);
        assert_eq!(refused, SignInError::Refused(SignInRefused { wait }), "the first failure waits the first step");
        let again = auth.sign_in("nobody", "pencil".into(), peer).await.expect_err("unknown user");
        let wait = Duration::from_millis(200);
        assert_eq!(again, SignInError::Refused(SignInRefused { wait }), "and the next one longer");
        let session = auth.sign_in("alice", "pencil".into(), peer).await.expect("right password");

        let cookie = format!("theme=dark; {SESSION_COOKIE}={}", session.id);
        let caller = auth.caller(None, Some(&cookie), SystemTime::now()).expect("a session");
        assert_eq!(caller.principal(), Principal::User("alice".into()));
        let by_token = auth.caller(Some(&format!("Bearer {token}")), Some(&cookie), SystemTime::now()).expect("token");
        assert_eq!(by_token.principal(), Principal::User("bob".into()), "a token wins over a cookie");
        assert_eq!(
            auth.caller(Some("Bearer rill_nope"), None, SystemTime::now()).err(),
            Some(AdminAuthError::InvalidToken)
        );
        assert_eq!(auth.caller(Some("Basic YTpi"), None, SystemTime::now()).err(), Some(AdminAuthError::NotBearer));
        assert!(matches!(auth.caller(None, Some("rill_session=forged"), SystemTime::now()), Ok(Caller::Anonymous)));

        users.delete("alice").expect("delete alice");
        assert!(
            matches!(auth.caller(None, Some(&cookie), SystemTime::now()), Ok(Caller::Anonymous)),
            "a deleted user's sessions end"
        );
        let second = auth.sign_in("bob", "hunter2".into(), peer).await.expect("bob signs in");
        let caller =
            auth.caller(None, Some(&format!("{SESSION_COOKIE}={}", second.id)), SystemTime::now()).expect("ok");
        auth.sign_out(&caller).await.expect("a single node's sign-out always ends the session");
        let cookie = format!("{SESSION_COOKIE}={}", second.id);
        assert!(matches!(auth.caller(None, Some(&cookie), SystemTime::now()), Ok(Caller::Anonymous)), "signed out");

        // Deleted and created again with the same name before the session is used: a new user, not signed in.
        users.create("carol", b"first", &[], MIN_ITERATIONS).expect("carol");
        let carols = auth.sign_in("carol", "first".into(), peer).await.expect("carol signs in");
        users.delete("carol").expect("delete carol");
        users.create("carol", b"second", &[], MIN_ITERATIONS).expect("carol again");
        let cookie = format!("{SESSION_COOKIE}={}", carols.id);
        assert!(
            matches!(auth.caller(None, Some(&cookie), SystemTime::now()), Ok(Caller::Anonymous)),
            "a re-created user does not inherit the old one's sessions"
        );
    }
}
