//! The one question every edge asks once per request: may this principal do this operation on this resource?
//!
//! With `auth.authorization` off (the default) every principal may do everything, as before ACLs existed. On,
//! super users (`auth.super_users`) may do everything and everyone else what the ACLs (`acl.rs`) allow. A denial
//! is counted in `rill_authorization_denials_total{operation,resource_type}` (a fixed table: both labels come
//! from closed enums) and logged at most once per principal and operation every [`DENIAL_LOG_INTERVAL`], so a
//! client retrying in a loop cannot flood the log. Principals and resource names are logged, never a secret.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::acl::{self, AclBinding, Operation, Resource, ResourceType};
use super::acl_store::AclStore;
use super::Principal;

/// How often one principal's denials of one operation are logged at most.
pub const DENIAL_LOG_INTERVAL: Duration = Duration::from_secs(10);
/// Most (principal, operation) pairs remembered for the rate limit; beyond, a denial is counted, not logged.
const MAX_DENIAL_LOG_KEYS: usize = 10_000;

/// A refused request: who, what, on what. Its message is what the client reads.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{principal} is not authorized to {operation} {resource}: no ACL allows it, or one denies it (`rill acl list`; \
     docs/security.md)"
)]
pub struct Denied {
    pub principal: String,
    pub operation: Operation,
    pub resource_type: ResourceType,
    /// The resource as people read it: `topic "orders"`, `the cluster`.
    pub resource: String,
}

pub struct Authorizer {
    is_on: bool,
    /// `User:NAME` strings.
    super_users: HashSet<String>,
    /// The node's file, or on a cluster node the replicated ACLs.
    acls: Arc<AclStore>,
    /// Denials by [`Operation::index`] and [`ResourceType::index`].
    denials: [[AtomicU64; ResourceType::ALL.len()]; Operation::ALL.len()],
    /// Node-to-node calls (`/rill.internal.*`) refused to a caller that is not a node (`node_calls.rs`).
    node_call_denials: AtomicU64,
    /// By principal and operation; `None`: a refused node-to-node call.
    last_logged: Mutex<HashMap<(String, Option<Operation>), Instant>>,
}

impl std::fmt::Debug for Authorizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authorizer").field("is_on", &self.is_on).finish_non_exhaustive()
    }
}

impl Authorizer {
    pub fn new(is_on: bool, super_users: &[String], acls: Arc<AclStore>) -> Self {
        Self {
            is_on,
            super_users: super_users.iter().cloned().collect(),
            acls,
            denials: Default::default(),
            node_call_denials: AtomicU64::new(0),
            last_logged: Mutex::new(HashMap::new()),
        }
    }

    pub fn is_on(&self) -> bool {
        self.is_on
    }

    /// The ACL store `rill acl` and Kafka's ACL requests change.
    pub fn store(&self) -> &Arc<AclStore> {
        &self.acls
    }

    fn is_super_user(&self, principal: &Principal) -> bool {
        matches!(principal, Principal::User(_)) && self.super_users.contains(&principal.to_string())
    }

    fn bindings(&self) -> Arc<Vec<AclBinding>> {
        self.acls.snapshot()
    }

    /// Whether `principal` may, without counting or logging a no: for filtering what a listing shows, where
    /// leaving a resource out is not a refusal.
    pub fn is_allowed(&self, principal: &Principal, operation: Operation, resource: &Resource<'_>) -> bool {
        !self.is_on || self.is_super_user(principal) || acl::decide(&self.bindings(), principal, operation, resource)
    }

    /// Allows, or counts, logs and returns the denial.
    pub fn check(&self, principal: &Principal, operation: Operation, resource: &Resource<'_>) -> Result<(), Denied> {
        if self.is_allowed(principal, operation, resource) {
            return Ok(());
        }
        Err(self.deny(principal, operation, resource))
    }

    /// Kafka's InitProducerId without a transactional id: IDEMPOTENT_WRITE on the cluster, or WRITE on some topic.
    pub fn check_idempotent_write(&self, principal: &Principal) -> Result<(), Denied> {
        let cluster = Resource::cluster();
        if self.is_allowed(principal, Operation::IdempotentWrite, &cluster)
            || acl::allows_on_some_topic(&self.bindings(), principal, Operation::Write)
        {
            return Ok(());
        }
        Err(self.deny(principal, Operation::IdempotentWrite, &cluster))
    }

    fn deny(&self, principal: &Principal, operation: Operation, resource: &Resource<'_>) -> Denied {
        self.denials[operation.index()][resource.kind.index()].fetch_add(1, Ordering::Relaxed);
        let principal = principal.to_string();
        if self.should_log(&principal, Some(operation)) {
            tracing::info!(
                %principal,
                operation = operation.name(),
                resource_type = resource.kind.name(),
                resource = resource.name,
                "authorization denied (logged at most once per principal and operation every 10 s)"
            );
        }
        Denied { principal, operation, resource_type: resource.kind, resource: resource.to_string() }
    }

    /// Counts a node-to-node call refused to `caller` (its certificate's principal, or `User:ANONYMOUS`) and
    /// logs it as the ACL denials are: at most once per caller every [`DENIAL_LOG_INTERVAL`], never a secret.
    pub fn deny_node_call(&self, caller: &str, path: &str, refused: &super::node_calls::NodeCallRefused) {
        self.node_call_denials.fetch_add(1, Ordering::Relaxed);
        if self.should_log(caller, None) {
            tracing::info!(
                principal = caller,
                path,
                "node-to-node call refused: {refused} (logged at most once per principal every 10 s)"
            );
        }
    }

    /// Node-to-node calls refused so far.
    pub fn node_call_denial_count(&self) -> u64 {
        self.node_call_denials.load(Ordering::Relaxed)
    }

    fn should_log(&self, principal: &str, operation: Option<Operation>) -> bool {
        let now = Instant::now();
        let mut last_logged = self.last_logged.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let key = (principal.to_owned(), operation);
        if let Some(at) = last_logged.get(&key) {
            if now.duration_since(*at) < DENIAL_LOG_INTERVAL {
                return false;
            }
        } else if last_logged.len() >= MAX_DENIAL_LOG_KEYS {
            last_logged.retain(|_, at| now.duration_since(*at) < DENIAL_LOG_INTERVAL);
            if last_logged.len() >= MAX_DENIAL_LOG_KEYS {
                return false;
            }
        }
        last_logged.insert(key, now);
        true
    }

    /// Denials so far, by operation and resource type, every pair included (zeros too, so the series exist).
    pub fn denial_counts(&self) -> Vec<(Operation, ResourceType, u64)> {
        Operation::ALL
            .iter()
            .flat_map(|&op| {
                ResourceType::ALL
                    .iter()
                    .map(move |&kind| (op, kind, self.denials[op.index()][kind.index()].load(Ordering::Relaxed)))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::acl::{PatternType, Permission, ANY_HOST};

    fn store_allowing_alice_to_read(dir: &std::path::Path) -> Arc<AclStore> {
        let store = AclStore::open(dir).expect("store");
        store
            .add(vec![AclBinding {
                resource_type: ResourceType::Topic,
                pattern_type: PatternType::Literal,
                name: "t".into(),
                principal: "User:alice".into(),
                host: ANY_HOST.into(),
                operation: Operation::Read,
                permission: Permission::Allow,
            }])
            .expect("add");
        Arc::new(store)
    }

    #[test]
    fn off_allows_all_on_asks_the_acls_and_super_users_bypass_them() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = store_allowing_alice_to_read(dir.path());
        let alice = Principal::User("alice".into());
        let root = Principal::User("root".into());
        let off = Authorizer::new(false, &[], Arc::clone(&store));
        assert!(off.check(&Principal::Anonymous, Operation::Delete, &Resource::topic("t")).is_ok());

        let on = Authorizer::new(true, &["User:root".into()], store);
        assert!(on.check(&alice, Operation::Read, &Resource::topic("t")).is_ok());
        assert!(on.check(&root, Operation::Alter, &Resource::cluster()).is_ok(), "a super user");
        let denied = on.check(&alice, Operation::Write, &Resource::topic("t")).expect_err("no allow for write");
        let message = denied.to_string();
        assert!(
            message.contains("User:alice") && message.contains("write") && message.contains("topic \"t\""),
            "{message}"
        );
        assert!(on.check(&Principal::Anonymous, Operation::Read, &Resource::topic("t")).is_err());
        let counts = on.denial_counts();
        let count_of = |op, kind| counts.iter().find(|(o, k, _)| *o == op && *k == kind).map(|c| c.2);
        assert_eq!(count_of(Operation::Write, ResourceType::Topic), Some(1));
        assert_eq!(count_of(Operation::Read, ResourceType::Topic), Some(1));
        assert_eq!(counts.len(), Operation::ALL.len() * ResourceType::ALL.len());
    }

    #[test]
    fn a_denial_is_logged_once_per_principal_and_operation_per_interval() {
        let dir = tempfile::tempdir().expect("tempdir");
        let authorizer = Authorizer::new(true, &[], Arc::new(AclStore::open(dir.path()).expect("store")));
        assert!(authorizer.should_log("User:a", Some(Operation::Read)));
        assert!(!authorizer.should_log("User:a", Some(Operation::Read)), "within the interval");
        assert!(authorizer.should_log("User:a", Some(Operation::Write)), "another operation");
        assert!(authorizer.should_log("User:b", Some(Operation::Read)), "another principal");
        assert!(authorizer.should_log("User:a", None), "a refused node-to-node call is logged apart");
        assert!(!authorizer.should_log("User:a", None), "and rate-limited the same way");
    }
}
