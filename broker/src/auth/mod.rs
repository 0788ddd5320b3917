//! Who a client is (docs/security.md): users and their credentials (`users.rs`, `scram.rs`), the `UserAdmin`
//! gRPC service that manages them (`service.rs`), and the [`Principal`] every connection and request carries;
//! what a principal may do: Kafka's ACL model (`acl.rs`), its store (`acl_store.rs`) and the [`Authorizer`] every
//! edge asks once per request (`authorizer.rs`).
//!
//! **Invariants:** no password, token or key is ever stored, logged or answered: a password becomes a SCRAM
//! credential, a token its hash. Every failed authentication says the same thing whatever failed (user or
//! secret), so an answer never tells whether a user exists.

pub mod acl;
pub mod acl_service;
pub mod acl_store;
pub mod admin;
pub mod authenticate;
pub mod authorizer;
pub mod backoff;
pub mod certificate;
pub mod cluster_sessions;
pub mod config;
pub mod forwarded;
pub mod node_calls;
pub mod oauth;
pub(crate) mod replicated;
pub mod scram;
pub mod service;
pub mod session_file;
pub mod sessions;
pub mod users;

use std::path::PathBuf;

use rill_protocol::reason::Reason;

pub use authorizer::{Authorizer, Denied};
pub use config::{AdminAuth, AuthConfig, AuthorizationMode, SaslMechanism};
pub use users::UserStore;

/// Refuses to start a cluster node whose data dir holds a users or ACL file from when it ran alone: the cluster
/// would never read it, and starting without it would silently drop what it holds (its DENYs above all).
pub fn refuse_node_files_on_cluster(data_dir: &std::path::Path) -> Result<(), AuthError> {
    let files = [
        (users::USERS_FILE, "users", "`rill user create`, docs/security.md"),
        (acl_store::ACLS_FILE, "ACLs", "`rill acl add`, docs/security.md"),
        (crate::quotas::store::QUOTAS_FILE, "client quotas", "`rill quota set`, docs/security.md"),
        (crate::group_config::FILE, "group configs", "`rill group config`, docs/kafka.md"),
        (
            crate::client_telemetry::store::FILE,
            "client metrics subscriptions",
            "IncrementalAlterConfigs of CLIENT_METRICS resources, docs/observability.md",
        ),
    ];
    for (file, what, how) in files {
        let path = data_dir.join(file);
        if path.exists() {
            return Err(AuthError::NodeFileOnCluster { path, what, how });
        }
    }
    Ok(())
}

/// Who a request acts as, in Kafka's form (`User:NAME`), ready for ACLs.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Principal {
    /// Authenticated: by SASL, a bearer token, or a client certificate.
    User(String),
    /// Nothing authenticated the client.
    Anonymous,
}

impl std::fmt::Display for Principal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Principal::User(name) => write!(f, "User:{name}"),
            Principal::Anonymous => f.write_str("User:ANONYMOUS"),
        }
    }
}

impl Principal {
    pub fn is_authenticated(&self) -> bool {
        matches!(self, Principal::User(_))
    }
}

/// Why a user operation or an authentication failed.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("invalid user name {name:?}: {reason}")]
    InvalidUserName { name: String, reason: String },
    #[error("invalid password: {reason}")]
    InvalidPassword { reason: String },
    #[error("invalid mechanism {name:?}: SCRAM-SHA-256 and SCRAM-SHA-512 are supported")]
    InvalidMechanism { name: String },
    #[error("user {name:?} already exists (delete it first to change its password)")]
    UserExists { name: String },
    #[error("unknown user {name:?}")]
    UnknownUser { name: String },
    #[error("user {name:?} has no {mechanism} credential to delete")]
    UnknownCredential { name: String, mechanism: &'static str },
    #[error("too many users: a node or a cluster holds at most {limit}")]
    TooManyUsers { limit: usize },
    #[error("user {name:?} holds {limit} tokens, the most allowed: delete and re-create the user to revoke them")]
    TooManyTokens { name: String, limit: usize },
    #[error("the cluster could not record the change: {reason}")]
    Unavailable { reason: String },
    #[error(
        "{path} holds the {what} this node kept when it ran alone, but a cluster node keeps them in the replicated \
         cluster metadata and would ignore it: create them on the cluster ({how}), then move the file out of the \
         data dir"
    )]
    NodeFileOnCluster { path: PathBuf, what: &'static str, how: &'static str },
    #[error("{0}")]
    Unauthenticated(String),
    #[error("corrupt users file {path}: {reason}")]
    CorruptUsersFile { path: PathBuf, reason: String },
    #[error("i/o error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("internal error: {0}")]
    Internal(String),
}

impl AuthError {
    pub fn reason(&self) -> Reason {
        match self {
            AuthError::InvalidUserName { .. }
            | AuthError::InvalidPassword { .. }
            | AuthError::InvalidMechanism { .. } => Reason::InvalidArgument,
            AuthError::UserExists { .. } => Reason::UserExists,
            AuthError::UnknownUser { .. } | AuthError::UnknownCredential { .. } => Reason::UnknownUser,
            AuthError::TooManyUsers { .. } | AuthError::TooManyTokens { .. } => Reason::LimitReached,
            AuthError::Unavailable { .. } => Reason::ControllerUnavailable,
            AuthError::NodeFileOnCluster { .. } => Reason::InvalidArgument,
            AuthError::Unauthenticated(_) => Reason::Unauthenticated,
            AuthError::Io { .. } => Reason::StorageFailure,
            AuthError::CorruptUsersFile { .. } | AuthError::Internal(_) => Reason::Internal,
        }
    }
}

impl From<AuthError> for tonic::Status {
    fn from(err: AuthError) -> Self {
        err.reason().status(err.to_string())
    }
}
