//! The users a node authenticates: their SCRAM credentials and the hashes of their bearer tokens. Nothing
//! secret is kept: a password becomes one [`ScramCredential`] per mechanism, a token its SHA-256.
//!
//! A single node keeps them in `<data>/__users.json`, rewritten whole and atomically (temporary file, fsync,
//! rename, directory fsync) on every change, so a crash leaves the old set or the new one. A cluster node keeps
//! them in the replicated cluster metadata (`replicated.rs`): every node knows every user, and a change is a
//! command proposed to the controller leader, its salts and tokens drawn here, before proposing.
//!
//! Readers (every login, every request with a token) take a snapshot (`Arc`) under a read lock held for no
//! I/O. On a single node writers are serialized by their own lock, held across the file write, then swap the
//! snapshot; on a cluster node the snapshot is swapped whenever an applied command changes the users.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use tokio::runtime::Handle;

use aws_lc_rs::digest;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use super::replicated::{ClusterAccess, StoreBacking as Backing};
use super::scram::{ScramCredential, ScramMechanism, DEFAULT_ITERATIONS};
use super::AuthError;
use crate::cluster::access::AccessRefusal;
use crate::cluster::metadata::Command;
use crate::cluster::Controller;

/// The file, in the data dir (`__`: the broker's own name space).
pub const USERS_FILE: &str = "__users.json";
/// The file format; a newer one is refused rather than misread.
const FORMAT_VERSION: u32 = 1;
/// Most users a node (or a cluster) holds: the file, or the metadata snapshot, is rewritten whole on a change.
pub const MAX_USERS: usize = 10_000;
/// Most tokens one user may hold at once.
pub const MAX_TOKENS_PER_USER: usize = 16;
pub const MAX_NAME_BYTES: usize = 64;
pub const MAX_PASSWORD_BYTES: usize = 1_024;
/// Every token starts with this, so a leaked one is recognisable (secret scanners) and never taken for a password.
pub(crate) const TOKEN_PREFIX: &str = "rill_";
const TOKEN_SECRET_BYTES: usize = 32;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct UsersFile {
    version: u32,
    users: BTreeMap<String, UserRecord>,
}

/// One user as stored, in the file or the cluster metadata.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRecord {
    pub scram: BTreeMap<ScramMechanism, ScramCredential>,
    /// SHA-256 of each token issued to the user, URL-safe base64.
    #[serde(default)]
    pub token_hashes: Vec<String>,
}

impl UserRecord {
    /// Whether every credential is one its mechanism can use.
    pub fn is_well_formed(&self) -> bool {
        self.scram.iter().all(|(&mechanism, credential)| credential.is_well_formed(mechanism))
    }

    /// The record after Kafka's AlterUserScramCredentials changes to it: each of `deletes` removed (the first
    /// missing one is the error), then each of `upserts` set. `None` when no credential is left: the user goes,
    /// its tokens with it, as a Kafka user is its credentials.
    pub fn with_credentials(
        &self,
        upserts: &[(ScramMechanism, ScramCredential)],
        deletes: &[ScramMechanism],
    ) -> Result<Option<UserRecord>, ScramMechanism> {
        let mut next = self.clone();
        for mechanism in deletes {
            next.scram.remove(mechanism).ok_or(*mechanism)?;
        }
        next.scram.extend(upserts.iter().cloned());
        Ok((!next.scram.is_empty()).then_some(next))
    }
}

/// What `rill user list` shows of a user: no secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserSummary {
    pub name: String,
    pub mechanisms: Vec<ScramMechanism>,
    pub token_count: usize,
}

#[derive(Default)]
struct Snapshot {
    /// Shared with the cluster metadata it was built from, on a cluster node.
    users: Arc<BTreeMap<String, UserRecord>>,
    /// Token hash to user name, rebuilt with every change.
    tokens: HashMap<String, String>,
}

impl Snapshot {
    fn new(users: Arc<BTreeMap<String, UserRecord>>) -> Self {
        let tokens = users
            .iter()
            .flat_map(|(name, record)| record.token_hashes.iter().map(move |hash| (hash.clone(), name.clone())))
            .collect();
        Self { users, tokens }
    }
}

pub struct UserStore {
    backing: Backing,
    current: RwLock<Arc<Snapshot>>,
    /// Serializes the writers of the file, or the swaps of the snapshot on a cluster node.
    writer: Mutex<()>,
}

impl std::fmt::Debug for UserStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserStore").field("backing", &self.backing).finish_non_exhaustive()
    }
}

impl UserStore {
    /// Loads `<data_dir>/__users.json`, or starts empty without one. A damaged file stops the start: losing
    /// every user silently would lock everybody out, or worse, let a new `user create` overwrite them.
    pub fn open(data_dir: &Path) -> Result<Self, AuthError> {
        let path = data_dir.join(USERS_FILE);
        let users = match std::fs::read(&path) {
            Ok(bytes) => parse(&path, &bytes)?,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(source) => return Err(AuthError::Io { path, source }),
        };
        let snapshot = Snapshot::new(Arc::new(users));
        Ok(Self { backing: Backing::File(path), current: RwLock::new(Arc::new(snapshot)), writer: Mutex::new(()) })
    }

    /// The users of the cluster `controller` belongs to, as this node applied them. Writes propose commands
    /// through `runtime`, so they are called from its blocking pool, as a single node's file writes are.
    pub fn replicated(controller: Arc<Controller>, runtime: Handle) -> Arc<Self> {
        let access = ClusterAccess::new(controller, runtime);
        let snapshot = Snapshot::new(Arc::clone(&access.metadata().users));
        let store = Arc::new(Self {
            backing: Backing::Cluster(access),
            current: RwLock::new(Arc::new(snapshot)),
            writer: Mutex::new(()),
        });
        if let Backing::Cluster(access) = &store.backing {
            access.follow(Arc::downgrade(&store), Self::refresh);
        }
        store
    }

    fn snapshot(&self) -> Arc<Snapshot> {
        Arc::clone(&self.current.read().unwrap_or_else(|poisoned| poisoned.into_inner()))
    }

    /// On a cluster node: swaps in the users this node last applied, if they changed (the token index is
    /// rebuilt then, never on a login).
    fn refresh(&self) {
        let Backing::Cluster(access) = &self.backing else { return };
        let _writer = self.writer.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let users = Arc::clone(&access.metadata().users);
        if Arc::ptr_eq(&self.snapshot().users, &users) {
            return;
        }
        *self.current.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(Snapshot::new(users));
    }

    /// Makes a change: on a single node `change` edits a copy of the users that is then written and published
    /// (a failed write changes nothing); on a cluster node `command` is proposed, the refusal the controller
    /// applied becomes the same error `change` gives, and `is_applied` says when this node holds the change.
    fn update(
        &self,
        name: &str,
        change: impl FnOnce(&mut BTreeMap<String, UserRecord>) -> Result<(), AuthError>,
        command: impl FnOnce() -> Command,
        is_applied: impl Fn(&BTreeMap<String, UserRecord>) -> bool,
    ) -> Result<(), AuthError> {
        let path = match &self.backing {
            Backing::File(path) => path,
            Backing::Cluster(access) => {
                // The same checks against this node's replica first: most refusals need no round trip.
                change(&mut (*self.snapshot().users).clone())?;
                let outcome = access
                    .propose(command(), |metadata| is_applied(&metadata.users))
                    .map_err(|reason| AuthError::Unavailable { reason })?;
                self.refresh();
                return match outcome.refusal {
                    None => Ok(()),
                    Some(refusal) => Err(refused(refusal, name.to_owned())),
                };
            }
        };
        let _writer = self.writer.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut users = (*self.snapshot().users).clone();
        change(&mut users)?;
        let file = UsersFile { version: FORMAT_VERSION, users };
        let bytes = serde_json::to_vec_pretty(&file).map_err(|err| AuthError::Internal(err.to_string()))?;
        crate::meta::write_atomically(path, &bytes)
            .map_err(|err| AuthError::Internal(format!("cannot write {}: {err}", path.display())))?;
        *self.current.write().unwrap_or_else(|poisoned| poisoned.into_inner()) =
            Arc::new(Snapshot::new(Arc::new(file.users)));
        Ok(())
    }

    /// Creates `name` with a credential for each of `mechanisms` (both SCRAM ones when empty).
    pub fn create(
        &self,
        name: &str,
        password: &[u8],
        mechanisms: &[ScramMechanism],
        iterations: u32,
    ) -> Result<(), AuthError> {
        validate_name(name)?;
        validate_password(password)?;
        let mechanisms = if mechanisms.is_empty() { &ScramMechanism::ALL[..] } else { mechanisms };
        // PBKDF2 before the lock: it is the slow part, and needs nothing of the store.
        let scram = mechanisms
            .iter()
            .map(|&mechanism| (mechanism, ScramCredential::generate(mechanism, password, iterations)))
            .collect();
        let user = UserRecord { scram, token_hashes: Vec::new() };
        let command = || Command::CreateUser { name: name.to_owned(), user: user.clone() };
        self.update(
            name,
            |users| {
                if users.contains_key(name) {
                    return Err(AuthError::UserExists { name: name.to_owned() });
                }
                if users.len() >= MAX_USERS {
                    return Err(AuthError::TooManyUsers { limit: MAX_USERS });
                }
                users.insert(name.to_owned(), user.clone());
                Ok(())
            },
            command,
            |users| users.contains_key(name),
        )
    }

    /// Kafka's AlterUserScramCredentials for `name` (see [`UserRecord::with_credentials`]): creates the user with
    /// its first credential, removes it with its last. All of a user's changes, or none.
    pub fn alter_credentials(
        &self,
        name: &str,
        upserts: &[(ScramMechanism, ScramCredential)],
        deletes: &[ScramMechanism],
    ) -> Result<(), AuthError> {
        validate_name(name)?;
        let command = || Command::AlterUserCredentials {
            name: name.to_owned(),
            upserts: upserts.to_vec(),
            deletes: deletes.to_vec(),
        };
        self.update(
            name,
            |users| {
                let current = users.get(name);
                if current.is_none() && upserts.is_empty() {
                    return Err(AuthError::UnknownUser { name: name.to_owned() });
                }
                if current.is_none() && users.len() >= MAX_USERS {
                    return Err(AuthError::TooManyUsers { limit: MAX_USERS });
                }
                let next =
                    current.cloned().unwrap_or_default().with_credentials(upserts, deletes).map_err(|missing| {
                        AuthError::UnknownCredential { name: name.to_owned(), mechanism: missing.name() }
                    })?;
                match next {
                    Some(record) => users.insert(name.to_owned(), record),
                    None => users.remove(name),
                };
                Ok(())
            },
            command,
            |users| {
                let record = users.get(name);
                upserts.iter().all(|(m, credential)| record.and_then(|r| r.scram.get(m)) == Some(credential))
                    && deletes.iter().all(|m| record.is_none_or(|r| !r.scram.contains_key(m)))
            },
        )
    }

    /// Each mechanism `name` has a credential for, with its iteration count; `None` for an unknown user.
    pub fn credentials(&self, name: &str) -> Option<Vec<(ScramMechanism, u32)>> {
        let snapshot = self.snapshot();
        let record = snapshot.users.get(name)?;
        Some(record.scram.iter().map(|(&mechanism, credential)| (mechanism, credential.iterations)).collect())
    }

    /// Deletes `name` with its credentials and tokens; its open connections keep the identity they logged in with.
    pub fn delete(&self, name: &str) -> Result<(), AuthError> {
        validate_name(name)?;
        self.update(
            name,
            |users| match users.remove(name) {
                Some(_) => Ok(()),
                None => Err(AuthError::UnknownUser { name: name.to_owned() }),
            },
            || Command::DeleteUser { name: name.to_owned() },
            |users| !users.contains_key(name),
        )
    }

    pub fn list(&self) -> Vec<UserSummary> {
        self.snapshot()
            .users
            .iter()
            .map(|(name, record)| UserSummary {
                name: name.clone(),
                mechanisms: record.scram.keys().copied().collect(),
                token_count: record.token_hashes.len(),
            })
            .collect()
    }

    pub fn is_empty(&self) -> bool {
        self.snapshot().users.is_empty()
    }

    /// What changes whenever `name` is created again (a new password, tokens revoked): a digest of its
    /// credentials' salts, drawn anew at each creation. A console session keeps it and ends when it changes, so a
    /// user deleted and re-created with the same name does not inherit the old user's sessions.
    pub fn credential_stamp(&self, name: &str) -> Option<String> {
        self.snapshot().users.get(name).map(credential_stamp_of)
    }

    /// `name`'s credential for `mechanism`, if it has one that is well formed.
    pub fn scram_credential(&self, name: &str, mechanism: ScramMechanism) -> Option<ScramCredential> {
        let snapshot = self.snapshot();
        let credential = snapshot.users.get(name)?.scram.get(&mechanism)?;
        credential.is_well_formed(mechanism).then(|| credential.clone())
    }

    /// SASL PLAIN: whether `password` is `name`'s, checked against any of its SCRAM credentials.
    pub fn check_password(&self, name: &str, password: &[u8]) -> bool {
        let snapshot = self.snapshot();
        let Some(record) = snapshot.users.get(name) else {
            // As long as a real check, so the time taken does not tell whether the user exists.
            static DUMMY: OnceLock<ScramCredential> = OnceLock::new();
            let dummy = DUMMY.get_or_init(|| {
                ScramCredential::derive(ScramMechanism::Sha256, b"", b"no such user", DEFAULT_ITERATIONS)
            });
            let _ = dummy.matches_password(ScramMechanism::Sha256, password);
            return false;
        };
        record.scram.iter().next().is_some_and(|(&mechanism, credential)| {
            credential.is_well_formed(mechanism) && credential.matches_password(mechanism, password)
        })
    }

    /// Issues a new bearer token to `name` and returns it: the only time it is seen, since only its hash is kept.
    pub fn create_token(&self, name: &str) -> Result<String, AuthError> {
        validate_name(name)?;
        let mut secret = [0u8; TOKEN_SECRET_BYTES];
        rand::Rng::fill(&mut rand::thread_rng(), &mut secret);
        let token = format!("{TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(secret));
        let hash = token_hash(&token);
        let is_held =
            |users: &BTreeMap<String, UserRecord>| users.get(name).is_some_and(|u| u.token_hashes.contains(&hash));
        self.update(
            name,
            |users| {
                let record = users.get_mut(name).ok_or_else(|| AuthError::UnknownUser { name: name.to_owned() })?;
                if record.token_hashes.len() >= MAX_TOKENS_PER_USER {
                    return Err(AuthError::TooManyTokens { name: name.to_owned(), limit: MAX_TOKENS_PER_USER });
                }
                record.token_hashes.push(hash.clone());
                Ok(())
            },
            || Command::AddUserToken { name: name.to_owned(), token_hash: hash.clone() },
            is_held,
        )?;
        Ok(token)
    }

    /// The user a bearer token was issued to, if it is one this node issued and the user still exists. The token
    /// is looked up by its SHA-256: a 256-bit random secret needs no salt, and its hash reveals nothing of it.
    pub fn user_of_token(&self, token: &str) -> Option<String> {
        if !token.starts_with(TOKEN_PREFIX) {
            return None;
        }
        self.snapshot().tokens.get(&token_hash(token)).cloned()
    }
}

/// The credential stamp of `record` ([`UserStore::credential_stamp`]); the cluster metadata checks a sign-in's
/// stamp with it too.
pub fn credential_stamp_of(record: &UserRecord) -> String {
    let mut context = digest::Context::new(&digest::SHA256);
    for (mechanism, credential) in &record.scram {
        context.update(format!("{mechanism:?}").as_bytes());
        context.update(&credential.salt);
    }
    URL_SAFE_NO_PAD.encode(context.finish())
}

/// What a refusal applied by the controller means to the caller, as a single node would have said it.
fn refused(refusal: AccessRefusal, name: String) -> AuthError {
    match refusal {
        AccessRefusal::UserExists => AuthError::UserExists { name },
        AccessRefusal::UnknownUser => AuthError::UnknownUser { name },
        AccessRefusal::UnknownCredential => AuthError::UnknownCredential { name, mechanism: "SCRAM" },
        AccessRefusal::TooManyUsers => AuthError::TooManyUsers { limit: MAX_USERS },
        AccessRefusal::TooManyTokens => AuthError::TooManyTokens { name, limit: MAX_TOKENS_PER_USER },
        AccessRefusal::TooManyAcls
        | AccessRefusal::TooManyQuotas
        | AccessRefusal::TooManyGroupConfigs
        | AccessRefusal::TooManySubscriptions
        | AccessRefusal::Invalid => {
            AuthError::Internal(format!("the controller refused the change to user {name:?} as {refusal:?}"))
        }
    }
}

fn token_hash(token: &str) -> String {
    URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, token.as_bytes()))
}

fn parse(path: &Path, bytes: &[u8]) -> Result<BTreeMap<String, UserRecord>, AuthError> {
    let corrupt = |reason: String| AuthError::CorruptUsersFile { path: path.to_owned(), reason };
    let file: UsersFile = serde_json::from_slice(bytes).map_err(|err| corrupt(err.to_string()))?;
    if file.version != FORMAT_VERSION {
        return Err(corrupt(format!("format version {} (this broker reads {FORMAT_VERSION})", file.version)));
    }
    for (name, record) in &file.users {
        validate_name(name).map_err(|err| corrupt(err.to_string()))?;
        if let Some((mechanism, _)) = record.scram.iter().find(|(&m, c)| !c.is_well_formed(m)) {
            return Err(corrupt(format!("user {name:?} has a malformed {} credential", mechanism.name())));
        }
    }
    Ok(file.users)
}

/// A user name: 1 to 64 bytes of ASCII letters, digits, `.`, `_`, `-` and `@`. No `,` or `=` (SCRAM escapes
/// them), no `:` (principals read `User:NAME`), nothing a terminal or a log line would mangle.
pub fn validate_name(name: &str) -> Result<(), AuthError> {
    let invalid = |reason: &str| AuthError::InvalidUserName { name: name.to_owned(), reason: reason.to_owned() };
    if name.is_empty() || name.len() > MAX_NAME_BYTES {
        return Err(invalid("it must be 1 to 64 characters"));
    }
    if !name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'@')) {
        return Err(invalid("only ASCII letters, digits, '.', '_', '-' and '@' are allowed"));
    }
    if name == "ANONYMOUS" {
        return Err(invalid("ANONYMOUS is the principal of unauthenticated clients"));
    }
    Ok(())
}

fn validate_password(password: &[u8]) -> Result<(), AuthError> {
    if password.is_empty() || password.len() > MAX_PASSWORD_BYTES {
        return Err(AuthError::InvalidPassword { reason: format!("it must be 1 to {MAX_PASSWORD_BYTES} bytes") });
    }
    if std::str::from_utf8(password).is_err() {
        return Err(AuthError::InvalidPassword { reason: "it must be UTF-8 text".into() });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::scram::MIN_ITERATIONS;

    /// Kafka's credential changes on a single node: kept across a reopen, a login with the salted password's
    /// password accepted, the user gone with its last credential.
    #[test]
    fn credential_changes_persist_and_remove_the_user_with_its_last() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = UserStore::open(dir.path()).expect("empty store");
        let salted = ScramCredential::derive(ScramMechanism::Sha256, b"s3cret", b"salt", MIN_ITERATIONS);
        store.alter_credentials("ops", &[(ScramMechanism::Sha256, salted)], &[]).expect("made by its first");
        let reopened = UserStore::open(dir.path()).expect("reopen");
        assert!(reopened.check_password("ops", b"s3cret"));
        assert_eq!(reopened.credentials("ops"), Some(vec![(ScramMechanism::Sha256, MIN_ITERATIONS)]));
        let lacking = reopened.alter_credentials("ops", &[], &[ScramMechanism::Sha512]).expect_err("none to delete");
        assert!(matches!(lacking, AuthError::UnknownCredential { .. }), "{lacking}");
        reopened.alter_credentials("ops", &[], &[ScramMechanism::Sha256]).expect("its last");
        assert_eq!(reopened.credentials("ops"), None);
        assert!(UserStore::open(dir.path()).expect("reopen").list().is_empty());
    }

    #[test]
    fn users_persist_across_a_reopen_without_their_passwords() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = UserStore::open(dir.path()).expect("empty store");
        store.create("alice", b"pencil-123", &[], MIN_ITERATIONS).expect("create alice");
        store.create("bob", b"hunter2", &[ScramMechanism::Sha512], MIN_ITERATIONS).expect("create bob");
        let token = store.create_token("alice").expect("token");
        let text = std::fs::read_to_string(dir.path().join(USERS_FILE)).expect("users file");
        assert!(!text.contains("pencil-123") && !text.contains("hunter2") && !text.contains(&token), "{text}");
        assert!(!dir.path().join("__users.tmp").exists(), "the temporary file was renamed away");

        let reopened = UserStore::open(dir.path()).expect("reopen");
        let names: Vec<(String, Vec<ScramMechanism>)> =
            reopened.list().into_iter().map(|u| (u.name, u.mechanisms)).collect();
        assert_eq!(
            names,
            vec![("alice".into(), ScramMechanism::ALL.to_vec()), ("bob".into(), vec![ScramMechanism::Sha512])]
        );
        assert!(reopened.check_password("alice", b"pencil-123"));
        assert!(!reopened.check_password("alice", b"pencil-124"));
        assert!(reopened.scram_credential("bob", ScramMechanism::Sha256).is_none());
        assert_eq!(reopened.user_of_token(&token).as_deref(), Some("alice"));
        assert_eq!(reopened.user_of_token("rill_notatoken"), None);

        reopened.delete("alice").expect("delete");
        let again = UserStore::open(dir.path()).expect("reopen after delete");
        assert_eq!(again.user_of_token(&token), None, "a deleted user's tokens go with it");
        assert!(matches!(again.delete("alice"), Err(AuthError::UnknownUser { .. })));
    }

    #[test]
    fn a_failed_write_changes_nothing_and_a_damaged_file_stops_the_open() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = UserStore::open(dir.path()).expect("empty store");
        store.create("alice", b"pw", &[], MIN_ITERATIONS).expect("create");
        // The temporary file's name is taken by a directory: the write fails before the rename.
        std::fs::create_dir(dir.path().join("__users.tmp")).expect("block the temporary file");
        assert!(store.create("bob", b"pw", &[], MIN_ITERATIONS).is_err());
        assert_eq!(store.list().len(), 1, "the failed create is not published");
        assert_eq!(UserStore::open(dir.path()).expect("reopen").list().len(), 1, "nor stored");

        std::fs::write(dir.path().join(USERS_FILE), b"{\"version\":1,\"users\":{\"a b\":").expect("damage");
        let err = UserStore::open(dir.path()).expect_err("damaged");
        assert!(matches!(err, AuthError::CorruptUsersFile { .. }) && err.to_string().contains(USERS_FILE), "{err}");
    }

    #[test]
    fn names_and_passwords_are_checked_and_the_error_says_what_is_allowed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = UserStore::open(dir.path()).expect("empty store");
        for bad in ["", "a,b", "a=b", "User:x", "ANONYMOUS", "é", &"x".repeat(65)] {
            let err = store.create(bad, b"pw", &[], MIN_ITERATIONS).expect_err(bad);
            assert!(matches!(err, AuthError::InvalidUserName { .. }), "{bad}: {err}");
        }
        let err = store.create("a.b_c-d@e", b"", &[], MIN_ITERATIONS).expect_err("empty password");
        assert!(err.to_string().contains("1 to 1024 bytes"), "{err}");
        store.create("a.b_c-d@e", b"pw", &[], MIN_ITERATIONS).expect("every allowed character");
        assert!(matches!(store.create("a.b_c-d@e", b"pw", &[], MIN_ITERATIONS), Err(AuthError::UserExists { .. })));
        assert!(matches!(store.create_token("nobody"), Err(AuthError::UnknownUser { .. })));
    }
}
