//! Who may use a cluster, as part of its replicated metadata: the users (a SCRAM credential per mechanism and
//! the SHA-256 of each bearer token: never a password or a token) and the ACL bindings. `UserStore` and
//! `AclStore` read them on a cluster node and change them by proposing the commands applied here.
//!
//! Applying is deterministic: salts, credentials and tokens are computed by the proposer, so every replica
//! applies the same bytes. The limits a single node keeps ([`MAX_USERS`], [`MAX_TOKENS_PER_USER`],
//! [`MAX_ACLS`]) are checked here as well as before proposing, so concurrent proposals from several nodes
//! cannot together go past them; a command that would is refused, changing nothing, with an [`AccessRefusal`].

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::metadata::{ClusterMetadata, Command, CommandOutcome};
use crate::auth::acl::AclBinding;
use crate::auth::acl_store::MAX_ACLS;
use crate::auth::scram::{ScramCredential, ScramMechanism};
use crate::auth::users::{validate_name, UserRecord, MAX_TOKENS_PER_USER, MAX_USERS};

/// Every user of the cluster by name. Shared (`Arc`) so that publishing the metadata after each applied
/// command, and the stores' snapshots, copy nothing.
pub type Users = Arc<BTreeMap<String, UserRecord>>;
/// Every ACL binding of the cluster, sorted and without duplicates: the order the ACL store lists them in.
pub type AclBindings = Arc<Vec<AclBinding>>;

/// Why an access command changed nothing; the proposer turns it into the error a single node would give.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AccessRefusal {
    UserExists,
    UnknownUser,
    /// A credential deletion for a mechanism the user has none of.
    UnknownCredential,
    TooManyUsers,
    TooManyTokens,
    TooManyAcls,
    /// A client quota change past `quotas::MAX_QUOTA_ENTITIES`.
    TooManyQuotas,
    /// A group config change past `group_config::MAX_CONFIGURED_GROUPS`.
    TooManyGroupConfigs,
    /// A client metrics subscription past `client_telemetry::subscriptions::MAX_SUBSCRIPTIONS`.
    TooManySubscriptions,
    /// A name, credential or binding the proposer should have refused (a bug, or a newer proposer's format).
    Invalid,
}

impl ClusterMetadata {
    /// Applies a user or ACL command; other commands change nothing here.
    pub(super) fn apply_access(&mut self, command: &Command) -> CommandOutcome {
        let result = match command {
            Command::CreateUser { name, user } => self.create_user(name, user),
            Command::DeleteUser { name } => match Arc::make_mut(&mut self.users).remove(name) {
                Some(_) => {
                    self.end_console_sessions_of(name);
                    Ok(1)
                }
                None => Err(AccessRefusal::UnknownUser),
            },
            Command::AddUserToken { name, token_hash } => self.add_user_token(name, token_hash),
            Command::AlterUserCredentials { name, upserts, deletes } => {
                self.alter_user_credentials(name, upserts, deletes)
            }
            Command::AddAcls { bindings } => self.add_acls(bindings),
            Command::RemoveAcls { bindings } => Ok(self.remove_acls(bindings)),
            _ => Ok(0),
        };
        match result {
            Ok(count) => CommandOutcome { changed: count > 0, count: Some(count), ..CommandOutcome::unchanged() },
            Err(refusal) => CommandOutcome { refusal: Some(refusal), ..CommandOutcome::unchanged() },
        }
    }

    fn create_user(&mut self, name: &str, user: &UserRecord) -> Result<u64, AccessRefusal> {
        if validate_name(name).is_err() || !user.is_well_formed() {
            return Err(AccessRefusal::Invalid);
        }
        if self.users.contains_key(name) {
            return Err(AccessRefusal::UserExists);
        }
        if self.users.len() >= MAX_USERS {
            return Err(AccessRefusal::TooManyUsers);
        }
        Arc::make_mut(&mut self.users).insert(name.to_owned(), user.clone());
        // A new user of an old name inherits none of its sessions, whatever the order the commands came in.
        self.end_console_sessions_of(name);
        Ok(1)
    }

    fn alter_user_credentials(
        &mut self,
        name: &str,
        upserts: &[(ScramMechanism, ScramCredential)],
        deletes: &[ScramMechanism],
    ) -> Result<u64, AccessRefusal> {
        if validate_name(name).is_err() || upserts.iter().any(|(m, credential)| !credential.is_well_formed(*m)) {
            return Err(AccessRefusal::Invalid);
        }
        let current = self.users.get(name);
        if current.is_none() && upserts.is_empty() {
            return Err(AccessRefusal::UnknownUser);
        }
        if current.is_none() && self.users.len() >= MAX_USERS {
            return Err(AccessRefusal::TooManyUsers);
        }
        let is_new = current.is_none();
        let next = current
            .cloned()
            .unwrap_or_default()
            .with_credentials(upserts, deletes)
            .map_err(|_| AccessRefusal::UnknownCredential)?;
        match next {
            Some(record) => {
                Arc::make_mut(&mut self.users).insert(name.to_owned(), record);
            }
            None => {
                Arc::make_mut(&mut self.users).remove(name);
            }
        }
        // A new user of an old name inherits none of its sessions; nor does a removed one keep them.
        if is_new || !self.users.contains_key(name) {
            self.end_console_sessions_of(name);
        }
        Ok(1)
    }

    fn add_user_token(&mut self, name: &str, token_hash: &str) -> Result<u64, AccessRefusal> {
        let record = self.users.get(name).ok_or(AccessRefusal::UnknownUser)?;
        if record.token_hashes.iter().any(|hash| hash == token_hash) {
            return Ok(0);
        }
        if record.token_hashes.len() >= MAX_TOKENS_PER_USER {
            return Err(AccessRefusal::TooManyTokens);
        }
        let record = Arc::make_mut(&mut self.users).get_mut(name).ok_or(AccessRefusal::UnknownUser)?;
        record.token_hashes.push(token_hash.to_owned());
        Ok(1)
    }

    fn add_acls(&mut self, bindings: &[AclBinding]) -> Result<u64, AccessRefusal> {
        if bindings.iter().any(|binding| binding.validate().is_err()) {
            return Err(AccessRefusal::Invalid);
        }
        let mut all: BTreeSet<AclBinding> = self.acls.iter().cloned().collect();
        let before = all.len();
        all.extend(bindings.iter().cloned());
        if all.len() > MAX_ACLS {
            return Err(AccessRefusal::TooManyAcls);
        }
        let added = all.len() - before;
        if added > 0 {
            self.acls = Arc::new(all.into_iter().collect());
        }
        Ok(added as u64)
    }

    fn remove_acls(&mut self, bindings: &[AclBinding]) -> u64 {
        let gone: BTreeSet<&AclBinding> = bindings.iter().collect();
        let before = self.acls.len();
        let kept: Vec<AclBinding> = self.acls.iter().filter(|b| !gone.contains(b)).cloned().collect();
        let removed = before - kept.len();
        if removed > 0 {
            self.acls = Arc::new(kept);
        }
        removed as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::acl::allow_read as read;
    use crate::auth::scram::MIN_ITERATIONS;

    fn user() -> UserRecord {
        let credential = ScramCredential::generate(ScramMechanism::Sha256, b"pw", MIN_ITERATIONS);
        UserRecord { scram: [(ScramMechanism::Sha256, credential)].into(), token_hashes: Vec::new() }
    }

    fn create(name: &str, user: &UserRecord) -> Command {
        Command::CreateUser { name: name.into(), user: user.clone() }
    }

    #[test]
    fn replicas_applying_the_same_commands_hold_the_same_users_and_acls() {
        let alice = user();
        let commands = [
            create("alice", &alice),
            Command::AddUserToken { name: "alice".into(), token_hash: "h1".into() },
            Command::AddAcls { bindings: vec![read("User:bob", "b"), read("User:alice", "a"), read("User:bob", "b")] },
            create("bob", &user()),
            Command::RemoveAcls { bindings: vec![read("User:bob", "b")] },
            Command::DeleteUser { name: "bob".into() },
        ];
        let (mut one, mut two) = (ClusterMetadata::default(), ClusterMetadata::default());
        let outcomes: Vec<CommandOutcome> = commands.iter().map(|c| one.apply(c)).collect();
        assert_eq!(outcomes, commands.iter().map(|c| two.apply(c)).collect::<Vec<_>>());
        assert_eq!(one, two);
        assert_eq!(outcomes[2].count, Some(2), "a duplicate binding is held once");
        assert_eq!(one.users.keys().collect::<Vec<_>>(), ["alice"]);
        assert_eq!(one.users["alice"], UserRecord { token_hashes: vec!["h1".into()], ..alice });
        assert_eq!(*one.acls, [read("User:alice", "a")]);
    }

    /// Kafka's AlterUserScramCredentials as replicated: a user made by its first credential, a second added, one
    /// replaced, and the user gone with its last; a deletion of a credential it lacks refused, changing nothing.
    #[test]
    fn credential_changes_make_change_and_remove_a_user() {
        let credential = |password: &[u8]| ScramCredential::generate(ScramMechanism::Sha512, password, MIN_ITERATIONS);
        let alter = |upserts: Vec<(ScramMechanism, ScramCredential)>, deletes: Vec<ScramMechanism>| {
            Command::AlterUserCredentials { name: "ops".into(), upserts, deletes }
        };
        let mut metadata = ClusterMetadata::default();
        let sha256 = user().scram[&ScramMechanism::Sha256].clone();
        assert_eq!(metadata.apply(&alter(vec![(ScramMechanism::Sha256, sha256.clone())], vec![])).refusal, None);
        let first = credential(b"one");
        metadata.apply(&alter(vec![(ScramMechanism::Sha512, first)], vec![]));
        let second = credential(b"two");
        metadata.apply(&alter(vec![(ScramMechanism::Sha512, second.clone())], vec![]));
        let held = &metadata.users["ops"].scram;
        assert_eq!((held[&ScramMechanism::Sha256].clone(), held[&ScramMechanism::Sha512].clone()), (sha256, second));
        let before = metadata.clone();
        let lacking = metadata.apply(&alter(vec![], vec![ScramMechanism::Sha512, ScramMechanism::Sha512]));
        assert_eq!(lacking.refusal, Some(AccessRefusal::UnknownCredential));
        assert_eq!(metadata, before, "all of a user's changes or none");
        metadata.apply(&alter(vec![], vec![ScramMechanism::Sha256, ScramMechanism::Sha512]));
        assert!(!metadata.users.contains_key("ops"), "gone with its last credential");
        let nobody = metadata.apply(&alter(vec![], vec![ScramMechanism::Sha256]));
        assert_eq!(nobody.refusal, Some(AccessRefusal::UnknownUser));
    }

    #[test]
    fn refused_commands_change_nothing_and_say_why() {
        let mut metadata = ClusterMetadata::default();
        metadata.apply(&create("alice", &user()));
        let before = metadata.clone();
        let refusal = |m: &mut ClusterMetadata, c: Command| m.apply(&c).refusal;
        assert_eq!(refusal(&mut metadata, create("alice", &user())), Some(AccessRefusal::UserExists));
        assert_eq!(refusal(&mut metadata, create("a b", &user())), Some(AccessRefusal::Invalid));
        let unknown = Command::AddUserToken { name: "nobody".into(), token_hash: "h".into() };
        assert_eq!(refusal(&mut metadata, unknown), Some(AccessRefusal::UnknownUser));
        assert_eq!(
            refusal(&mut metadata, Command::DeleteUser { name: "nobody".into() }),
            Some(AccessRefusal::UnknownUser)
        );
        let bad_acl = Command::AddAcls { bindings: vec![read("User:alice", "a"), read("alice", "a")] };
        assert_eq!(refusal(&mut metadata, bad_acl), Some(AccessRefusal::Invalid), "all or nothing");
        assert_eq!(metadata, before);
    }

    #[test]
    fn the_limits_hold_in_apply_whoever_proposed() {
        let mut metadata = ClusterMetadata::default();
        let alice = user();
        Arc::make_mut(&mut metadata.users).extend((0..MAX_USERS).map(|i| (format!("u{i}"), alice.clone())));
        assert_eq!(metadata.apply(&create("one-too-many", &alice)).refusal, Some(AccessRefusal::TooManyUsers));
        for i in 0..MAX_TOKENS_PER_USER {
            let token = Command::AddUserToken { name: "u0".into(), token_hash: format!("h{i}") };
            assert!(metadata.apply(&token).changed);
        }
        let token = Command::AddUserToken { name: "u0".into(), token_hash: "extra".into() };
        assert_eq!(metadata.apply(&token).refusal, Some(AccessRefusal::TooManyTokens));

        let bindings: Vec<AclBinding> = (0..MAX_ACLS).map(|i| read("User:alice", &format!("t{i}"))).collect();
        assert_eq!(metadata.apply(&Command::AddAcls { bindings }).count, Some(MAX_ACLS as u64));
        let over = Command::AddAcls { bindings: vec![read("User:bob", "t")] };
        assert_eq!(metadata.apply(&over).refusal, Some(AccessRefusal::TooManyAcls));
        assert_eq!(metadata.acls.len(), MAX_ACLS);
    }

    #[test]
    fn users_and_acls_survive_a_snapshot_and_older_snapshots_load_without_them() {
        let mut metadata = ClusterMetadata::default();
        metadata.apply(&create("alice", &user()));
        metadata.apply(&Command::AddAcls { bindings: vec![read("User:alice", "a")] });
        let bytes = serde_json::to_vec(&metadata).expect("serializable");
        let restored: ClusterMetadata = serde_json::from_slice(&bytes).expect("round trip");
        assert_eq!(restored, metadata);
        let text = String::from_utf8(bytes).expect("JSON");
        assert!(!text.contains("\"pw\""), "no password in the metadata: {text}");

        let old: ClusterMetadata = serde_json::from_str(r#"{"cluster_id":"c","nodes":{},"topics":{}}"#).expect("old");
        assert!(old.users.is_empty() && old.acls.is_empty());
        let empty = serde_json::to_string(&ClusterMetadata::default()).expect("serializable");
        assert!(!empty.contains("users") && !empty.contains("acls"), "nothing new written without users: {empty}");
    }

    #[test]
    fn client_quotas_apply_alike_on_every_replica_refuse_what_is_invalid_and_old_snapshots_load_without_them() {
        use crate::quotas::{EntityName, QuotaChange, QuotaEntity, QuotaKey};
        let change = |value| QuotaChange {
            entity: QuotaEntity { user: None, client_id: Some(EntityName::Named("app".into())), ip: None },
            key: QuotaKey::ProducerByteRate,
            value,
        };
        let set = Command::AlterClientQuotas { changes: vec![change(Some(100))] };
        let (mut one, mut two) = (ClusterMetadata::default(), ClusterMetadata::default());
        assert!(one.apply(&set).changed && two.apply(&set).changed);
        assert_eq!(one, two);
        assert!(!one.apply(&set).changed, "the same value again changes nothing");
        let before = one.clone();
        let invalid = Command::AlterClientQuotas { changes: vec![change(None), change(Some(0))] };
        assert_eq!(one.apply(&invalid).refusal, Some(AccessRefusal::Invalid), "all or nothing");
        assert_eq!(one, before);
        assert_eq!(
            one.client_quotas.resolve(QuotaKey::ProducerByteRate, "u", "app").map(|q| q.bytes_per_sec),
            Some(100)
        );

        let bytes = serde_json::to_vec(&one).expect("serializable");
        assert_eq!(serde_json::from_slice::<ClusterMetadata>(&bytes).expect("round trip"), one);
        let empty = serde_json::to_string(&ClusterMetadata::default()).expect("serializable");
        assert!(!empty.contains("client_quotas"), "nothing new written without quotas: {empty}");
        assert!(one.apply(&Command::AlterClientQuotas { changes: vec![change(None)] }).changed);
        assert!(one.client_quotas.is_empty());
    }
}
