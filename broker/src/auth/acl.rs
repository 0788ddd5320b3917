//! Kafka's ACL model (KIP-11, KIP-290): a binding allows or denies one principal (`User:NAME`, or `User:*` for
//! every principal) one operation on the resources one pattern names (a topic, group or the cluster, by literal
//! name, `*`, or a name prefix), from any host (`*`: rill keeps Kafka's field but matches no other).
//!
//! The decision ([`decide`]) is Kafka's `AclAuthorizer`'s: a matching DENY wins over any ALLOW; without a
//! matching ALLOW the answer is no. An ALLOW of READ, WRITE, DELETE or ALTER also allows DESCRIBE, an ALLOW of
//! ALTER_CONFIGS also allows DESCRIBE_CONFIGS, and ALL allows everything; a DENY denies only its operation (or
//! everything, for ALL). Persisting bindings is `acl_store.rs`; super users and the on/off switch are
//! `authorizer.rs`.

use serde::{Deserialize, Serialize};

use super::Principal;

/// The one name the cluster resource has, as in Kafka.
pub const CLUSTER_NAME: &str = "kafka-cluster";
/// A literal resource name that matches every resource of its type.
pub const WILDCARD: &str = "*";
/// The principal pattern that matches every principal, anonymous ones included.
pub const ANY_PRINCIPAL: &str = "User:*";
/// The only host rill matches: every host.
pub const ANY_HOST: &str = "*";
/// Longest resource name or prefix: Kafka's topic name limit, which group ids share here.
pub const MAX_RESOURCE_NAME_BYTES: usize = 249;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Permission {
    Allow,
    Deny,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResourceType {
    Topic,
    Group,
    Cluster,
    /// A transactional producer's `transactional.id` (Kafka's TRANSACTIONAL_ID).
    TransactionalId,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PatternType {
    /// The exact name, or every resource of the type when the name is `*`.
    Literal,
    /// Every resource whose name starts with the pattern's name.
    Prefixed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    All,
    Read,
    Write,
    Create,
    Delete,
    Alter,
    Describe,
    DescribeConfigs,
    AlterConfigs,
    /// Kafka's InitProducerId for an idempotent producer, on the cluster.
    IdempotentWrite,
}

impl Operation {
    pub const ALL: [Operation; 10] = [
        Operation::All,
        Operation::Read,
        Operation::Write,
        Operation::Create,
        Operation::Delete,
        Operation::Alter,
        Operation::Describe,
        Operation::DescribeConfigs,
        Operation::AlterConfigs,
        Operation::IdempotentWrite,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Operation::All => "all",
            Operation::Read => "read",
            Operation::Write => "write",
            Operation::Create => "create",
            Operation::Delete => "delete",
            Operation::Alter => "alter",
            Operation::Describe => "describe",
            Operation::DescribeConfigs => "describe_configs",
            Operation::AlterConfigs => "alter_configs",
            Operation::IdempotentWrite => "idempotent_write",
        }
    }

    /// Reads `read`, `describe-configs`, `DescribeConfigs`, `DESCRIBE_CONFIGS` alike.
    pub fn parse(text: &str) -> Option<Operation> {
        let folded: String = text.chars().filter(|c| *c != '_' && *c != '-').collect::<String>().to_ascii_lowercase();
        Operation::ALL.into_iter().find(|op| op.name().replace('_', "") == folded)
    }

    /// Index in [`Operation::ALL`], for fixed tables (the denial counters).
    pub fn index(self) -> usize {
        Operation::ALL.iter().position(|op| *op == self).expect("every operation is in ALL")
    }

    /// Whether an ALLOW of `self` allows `asked`: the same operation, ALL, or one Kafka implies.
    fn allows(self, asked: Operation) -> bool {
        self == asked
            || self == Operation::All
            || (asked == Operation::Describe
                && matches!(self, Operation::Read | Operation::Write | Operation::Delete | Operation::Alter))
            || (asked == Operation::DescribeConfigs && self == Operation::AlterConfigs)
    }

    /// Whether a DENY of `self` denies `asked`: only the same operation, or ALL.
    fn denies(self, asked: Operation) -> bool {
        self == asked || self == Operation::All
    }
}

impl Permission {
    pub fn name(self) -> &'static str {
        match self {
            Permission::Allow => "allow",
            Permission::Deny => "deny",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Permission::Allow, Permission::Deny].into_iter().find(|p| p.name().eq_ignore_ascii_case(text))
    }
}

impl PatternType {
    pub fn name(self) -> &'static str {
        match self {
            PatternType::Literal => "literal",
            PatternType::Prefixed => "prefixed",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [PatternType::Literal, PatternType::Prefixed].into_iter().find(|p| p.name().eq_ignore_ascii_case(text))
    }
}

impl ResourceType {
    pub fn parse(text: &str) -> Option<Self> {
        ResourceType::ALL.into_iter().find(|t| t.name().eq_ignore_ascii_case(text))
    }

    pub const ALL: [ResourceType; 4] =
        [ResourceType::Topic, ResourceType::Group, ResourceType::Cluster, ResourceType::TransactionalId];

    pub fn name(self) -> &'static str {
        match self {
            ResourceType::Topic => "topic",
            ResourceType::Group => "group",
            ResourceType::Cluster => "cluster",
            ResourceType::TransactionalId => "transactional-id",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }

    /// The operations Kafka defines on the type (besides ALL).
    pub fn operations(self) -> &'static [Operation] {
        use Operation::*;
        match self {
            ResourceType::Topic => &[Read, Write, Create, Delete, Alter, Describe, DescribeConfigs, AlterConfigs],
            ResourceType::Group => &[Read, Delete, Describe, DescribeConfigs, AlterConfigs],
            ResourceType::Cluster => &[Create, Alter, Describe, DescribeConfigs, AlterConfigs, IdempotentWrite],
            ResourceType::TransactionalId => &[Write, Describe],
        }
    }
}

impl std::fmt::Display for Operation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One resource a request acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resource<'a> {
    pub kind: ResourceType,
    pub name: &'a str,
}

impl<'a> Resource<'a> {
    pub fn topic(name: &'a str) -> Self {
        Resource { kind: ResourceType::Topic, name }
    }

    pub fn group(name: &'a str) -> Self {
        Resource { kind: ResourceType::Group, name }
    }

    pub fn cluster() -> Resource<'static> {
        Resource { kind: ResourceType::Cluster, name: CLUSTER_NAME }
    }

    pub fn transactional_id(name: &'a str) -> Self {
        Resource { kind: ResourceType::TransactionalId, name }
    }
}

impl std::fmt::Display for Resource<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.kind {
            ResourceType::Cluster => f.write_str("the cluster"),
            kind => write!(f, "{} {:?}", kind.name(), self.name),
        }
    }
}

/// One ACL: `permission` `principal` to `operation` the resources `pattern_type` `name` of `resource_type`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AclBinding {
    pub resource_type: ResourceType,
    pub pattern_type: PatternType,
    pub name: String,
    /// `User:NAME`, `User:ANONYMOUS` or `User:*`.
    pub principal: String,
    pub host: String,
    pub operation: Operation,
    pub permission: Permission,
}

/// Why a binding cannot be stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidAcl {
    #[error("invalid principal {0:?}: use User:NAME (a user name as `rill user` allows), User:ANONYMOUS or User:*")]
    Principal(String),
    #[error("invalid host {0:?}: only * (every host) is supported")]
    Host(String),
    #[error("invalid resource name {name:?}: {reason}")]
    Name { name: String, reason: &'static str },
    #[error("operation {operation} does not apply to a {resource_type}: it takes {allowed}")]
    Operation { operation: Operation, resource_type: &'static str, allowed: String },
}

impl AclBinding {
    /// Checks what Kafka's broker checks of a new ACL, and that the cluster is named `kafka-cluster`.
    pub fn validate(&self) -> Result<(), InvalidAcl> {
        validate_principal(&self.principal)?;
        if self.host != ANY_HOST {
            return Err(InvalidAcl::Host(self.host.clone()));
        }
        let bad_name = |reason| Err(InvalidAcl::Name { name: self.name.clone(), reason });
        if self.name.is_empty() || self.name.len() > MAX_RESOURCE_NAME_BYTES {
            return bad_name("it must be 1 to 249 bytes");
        }
        if self.resource_type == ResourceType::Cluster
            && (self.name != CLUSTER_NAME || self.pattern_type != PatternType::Literal)
        {
            return bad_name("the cluster resource is the literal name kafka-cluster");
        }
        if self.pattern_type == PatternType::Prefixed && self.name == WILDCARD {
            return bad_name("a prefixed pattern of * is not allowed: use the literal name *");
        }
        let allowed = self.resource_type.operations();
        if self.operation != Operation::All && !allowed.contains(&self.operation) {
            let allowed = allowed.iter().map(|op| op.name()).collect::<Vec<_>>().join(", ") + ", all";
            return Err(InvalidAcl::Operation {
                operation: self.operation,
                resource_type: self.resource_type.name(),
                allowed,
            });
        }
        Ok(())
    }

    fn matches_resource(&self, resource: &Resource<'_>) -> bool {
        self.resource_type == resource.kind && self.covers_name(resource.name)
    }

    /// Whether the binding's pattern covers a resource named `name` (of its type).
    fn covers_name(&self, name: &str) -> bool {
        match self.pattern_type {
            PatternType::Literal => self.name == WILDCARD || self.name == name,
            PatternType::Prefixed => name.starts_with(self.name.as_str()),
        }
    }

    fn matches_principal(&self, principal: &str) -> bool {
        self.principal == ANY_PRINCIPAL || self.principal == principal
    }
}

fn validate_principal(principal: &str) -> Result<(), InvalidAcl> {
    let invalid = || InvalidAcl::Principal(principal.to_owned());
    let name = principal.strip_prefix("User:").ok_or_else(invalid)?;
    if name == "*" || name == "ANONYMOUS" {
        return Ok(());
    }
    super::users::validate_name(name).map_err(|_| invalid())
}

/// Whether `bindings` let `principal` do `operation` on `resource`: a matching DENY wins, then any matching
/// ALLOW; none at all is no.
pub fn decide(bindings: &[AclBinding], principal: &Principal, operation: Operation, resource: &Resource<'_>) -> bool {
    let principal = principal.to_string();
    let mut is_allowed = false;
    for binding in bindings.iter().filter(|b| b.matches_principal(&principal) && b.matches_resource(resource)) {
        match binding.permission {
            Permission::Deny if binding.operation.denies(operation) => return false,
            Permission::Allow if binding.operation.allows(operation) => is_allowed = true,
            _ => {}
        }
    }
    is_allowed
}

/// Whether `principal` may do `operation` on some topic: what Kafka (KIP-679) accepts instead of
/// IDEMPOTENT_WRITE on the cluster for an idempotent producer's InitProducerId. An ALLOW on a topic pattern
/// counts unless a DENY of every topic (`*`) takes it back.
pub fn allows_on_some_topic(bindings: &[AclBinding], principal: &Principal, operation: Operation) -> bool {
    let principal = principal.to_string();
    let mine = || bindings.iter().filter(|b| b.resource_type == ResourceType::Topic && b.matches_principal(&principal));
    let is_denied_everywhere = mine().any(|b| {
        b.permission == Permission::Deny
            && b.operation.denies(operation)
            && b.pattern_type == PatternType::Literal
            && b.name == WILDCARD
    });
    !is_denied_everywhere && mine().any(|b| b.permission == Permission::Allow && b.operation.allows(operation))
}

/// What `rill acl list`, `rill acl remove` and Kafka's DescribeAcls and DeleteAcls select: every field that is
/// `Some` must equal the binding's, and `applies_to` selects by what a binding covers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AclFilter {
    pub resource_type: Option<ResourceType>,
    pub pattern_type: Option<PatternType>,
    pub name: Option<String>,
    pub principal: Option<String>,
    pub host: Option<String>,
    pub operation: Option<Operation>,
    pub permission: Option<Permission>,
    /// Kafka's MATCH pattern filter: the bindings that would apply to a resource of this name (a literal one of
    /// the name, the literal `*`, or a prefixed one the name starts with), whatever their pattern type.
    pub applies_to: Option<String>,
}

impl AclFilter {
    pub fn matches(&self, binding: &AclBinding) -> bool {
        fn field<T: PartialEq>(wanted: &Option<T>, actual: &T) -> bool {
            wanted.as_ref().is_none_or(|wanted| wanted == actual)
        }
        field(&self.resource_type, &binding.resource_type)
            && field(&self.pattern_type, &binding.pattern_type)
            && field(&self.name, &binding.name)
            && field(&self.principal, &binding.principal)
            && field(&self.host, &binding.host)
            && field(&self.operation, &binding.operation)
            && field(&self.permission, &binding.permission)
            && self.applies_to.as_ref().is_none_or(|name| binding.covers_name(name))
    }
}

/// An ALLOW of READ on a literal topic, as the store and metadata tests make them.
#[cfg(test)]
pub(crate) fn allow_read(principal: &str, topic: &str) -> AclBinding {
    AclBinding {
        resource_type: ResourceType::Topic,
        pattern_type: PatternType::Literal,
        name: topic.into(),
        principal: principal.into(),
        host: ANY_HOST.into(),
        operation: Operation::Read,
        permission: Permission::Allow,
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn binding(
        permission: Permission,
        principal: &str,
        op: Operation,
        kind: ResourceType,
        pattern: PatternType,
        name: &str,
    ) -> AclBinding {
        AclBinding {
            resource_type: kind,
            pattern_type: pattern,
            name: name.to_owned(),
            principal: principal.to_owned(),
            host: ANY_HOST.to_owned(),
            operation: op,
            permission,
        }
    }

    fn alice() -> Principal {
        Principal::User("alice".into())
    }

    #[test]
    fn deny_wins_and_nothing_matching_is_denied() {
        use Operation::*;
        use PatternType::*;
        use Permission::*;
        use ResourceType::*;
        let acls = vec![
            binding(Allow, "User:alice", Write, Topic, Prefixed, "orders."),
            binding(Deny, "User:alice", Write, Topic, Literal, "orders.audit"),
            binding(Allow, "User:*", Read, Topic, Literal, "*"),
        ];
        assert!(decide(&acls, &alice(), Write, &Resource::topic("orders.eu")));
        assert!(!decide(&acls, &alice(), Write, &Resource::topic("orders.audit")), "deny wins");
        assert!(!decide(&acls, &alice(), Write, &Resource::topic("payments")), "no allow: denied");
        assert!(decide(&acls, &Principal::Anonymous, Read, &Resource::topic("payments")), "User:* covers anonymous");
        assert!(!decide(&acls, &alice(), Read, &Resource::group("payments")), "another resource type");
        assert!(!decide(&[], &alice(), Describe, &Resource::cluster()));
    }

    #[test]
    fn a_match_filter_selects_the_bindings_that_apply_to_a_name_whatever_their_pattern() {
        use Operation::*;
        use PatternType::*;
        use Permission::*;
        use ResourceType::*;
        let acls = [
            binding(Allow, "User:alice", Read, Topic, Literal, "orders.eu"),
            binding(Allow, "User:alice", Read, Topic, Literal, "*"),
            binding(Allow, "User:alice", Read, Topic, Prefixed, "orders."),
            binding(Allow, "User:alice", Read, Topic, Prefixed, "payments"),
            binding(Allow, "User:alice", Read, Topic, Literal, "orders.us"),
            binding(Allow, "User:alice", Read, Group, Literal, "orders.eu"),
        ];
        let selected = |filter: AclFilter| acls.iter().filter(|b| filter.matches(b)).count();
        let applying = AclFilter { applies_to: Some("orders.eu".into()), ..AclFilter::default() };
        assert_eq!(selected(applying.clone()), 4, "literal, *, the prefix, and the group of the same name");
        assert_eq!(selected(AclFilter { resource_type: Some(Topic), ..applying }), 3);
        let literal_only = AclFilter { name: Some("orders.eu".into()), ..AclFilter::default() };
        assert_eq!(selected(literal_only), 2, "without applies_to a name is compared as it is");
    }

    #[test]
    fn kafkas_implied_operations_allow_describe_and_deny_only_what_it_names() {
        use Operation::*;
        let on_topic =
            |permission, op| binding(permission, "User:alice", op, ResourceType::Topic, PatternType::Literal, "t");
        for op in [Read, Write, Delete, Alter, All] {
            assert!(decide(&[on_topic(Permission::Allow, op)], &alice(), Describe, &Resource::topic("t")), "{op}");
        }
        assert!(!decide(&[on_topic(Permission::Allow, Create)], &alice(), Describe, &Resource::topic("t")));
        assert!(decide(&[on_topic(Permission::Allow, AlterConfigs)], &alice(), DescribeConfigs, &Resource::topic("t")));
        assert!(!decide(&[on_topic(Permission::Allow, Describe)], &alice(), Read, &Resource::topic("t")));
        let deny_describe = [on_topic(Permission::Allow, All), on_topic(Permission::Deny, Describe)];
        assert!(decide(&deny_describe, &alice(), Read, &Resource::topic("t")), "a deny of describe leaves read");
        assert!(!decide(&deny_describe, &alice(), Describe, &Resource::topic("t")));
        let deny_all = [on_topic(Permission::Allow, Read), on_topic(Permission::Deny, All)];
        assert!(!decide(&deny_all, &alice(), Read, &Resource::topic("t")));
    }

    #[test]
    fn an_idempotent_producer_needs_write_on_some_topic_not_denied_everywhere() {
        use PatternType::*;
        let allow = binding(Permission::Allow, "User:alice", Operation::Write, ResourceType::Topic, Prefixed, "o");
        assert!(allows_on_some_topic(std::slice::from_ref(&allow), &alice(), Operation::Write));
        assert!(!allows_on_some_topic(std::slice::from_ref(&allow), &Principal::Anonymous, Operation::Write));
        let deny = binding(Permission::Deny, "User:*", Operation::All, ResourceType::Topic, Literal, "*");
        assert!(!allows_on_some_topic(&[allow, deny], &alice(), Operation::Write));
    }

    #[test]
    fn bindings_are_validated_with_what_is_allowed_in_the_message() {
        use Operation::*;
        let good = binding(Permission::Allow, "User:alice", Read, ResourceType::Group, PatternType::Prefixed, "app-");
        assert_eq!(good.validate(), Ok(()));
        let cases = [
            AclBinding { principal: "alice".into(), ..good.clone() },
            AclBinding { principal: "Group:x".into(), ..good.clone() },
            AclBinding { host: "10.0.0.1".into(), ..good.clone() },
            AclBinding { name: String::new(), ..good.clone() },
            AclBinding { operation: Write, ..good.clone() },
            AclBinding { resource_type: ResourceType::Cluster, ..good.clone() },
            AclBinding { pattern_type: PatternType::Prefixed, name: "*".into(), ..good.clone() },
        ];
        for bad in cases {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
        let err = AclBinding { operation: Write, ..good }.validate().expect_err("write on a group");
        assert!(err.to_string().contains("read, delete, describe, describe_configs, alter_configs, all"), "{err}");
        assert_eq!(Operation::parse("DESCRIBE_CONFIGS"), Some(DescribeConfigs));
        assert_eq!(Operation::parse("describe-configs"), Some(DescribeConfigs));
        assert_eq!(Operation::parse("AlterConfigs"), Some(AlterConfigs));
        assert_eq!(Operation::parse("fly"), None);
    }

    fn any_binding() -> impl Strategy<Value = AclBinding> {
        (
            prop_oneof![Just(Permission::Allow), Just(Permission::Deny)],
            prop_oneof![Just("User:alice"), Just("User:bob"), Just("User:*")],
            prop::sample::select(Operation::ALL.to_vec()),
            prop_oneof![Just(PatternType::Literal), Just(PatternType::Prefixed)],
            prop_oneof![Just("*"), Just("a"), Just("ab"), Just("abc"), Just("b")],
        )
            .prop_map(|(permission, principal, op, pattern, name)| {
                binding(permission, principal, op, ResourceType::Topic, pattern, name)
            })
    }

    /// The model the matcher must agree with, written the long way round: the operations each binding grants or
    /// takes away, spelled out as sets.
    fn model(bindings: &[AclBinding], principal: &str, op: Operation, topic: &str) -> bool {
        let applies = |b: &&AclBinding| {
            (b.principal == "User:*" || b.principal == principal)
                && match b.pattern_type {
                    PatternType::Literal => b.name == "*" || b.name == topic,
                    PatternType::Prefixed => topic.get(..b.name.len()) == Some(b.name.as_str()),
                }
        };
        let granted = |b: &AclBinding| -> Vec<Operation> {
            match b.operation {
                Operation::All => Operation::ALL.to_vec(),
                Operation::Read | Operation::Write | Operation::Delete | Operation::Alter => {
                    vec![b.operation, Operation::Describe]
                }
                Operation::AlterConfigs => vec![b.operation, Operation::DescribeConfigs],
                other => vec![other],
            }
        };
        let taken = |b: &AclBinding| -> Vec<Operation> {
            if b.operation == Operation::All {
                Operation::ALL.to_vec()
            } else {
                vec![b.operation]
            }
        };
        let relevant: Vec<&AclBinding> = bindings.iter().filter(applies).collect();
        let denied = relevant.iter().any(|b| b.permission == Permission::Deny && taken(b).contains(&op));
        let allowed = relevant.iter().any(|b| b.permission == Permission::Allow && granted(b).contains(&op));
        allowed && !denied
    }

    proptest! {
        #[test]
        fn the_matcher_agrees_with_the_model(
            bindings in prop::collection::vec(any_binding(), 0..8),
            who in prop_oneof![Just("alice"), Just("bob"), Just("carol")],
            op in prop::sample::select(Operation::ALL.to_vec()),
            topic in prop_oneof![Just("a"), Just("ab"), Just("abc"), Just("b"), Just("c")],
        ) {
            let principal = Principal::User(who.to_owned());
            let expected = model(&bindings, &principal.to_string(), op, topic);
            prop_assert_eq!(decide(&bindings, &principal, op, &Resource::topic(topic)), expected);
            // Adding a DENY of ALL for the principal on the topic never allows anything.
            let mut denied = bindings.clone();
            denied.push(binding(Permission::Deny, "User:*", Operation::All, ResourceType::Topic, PatternType::Literal, topic));
            prop_assert!(!decide(&denied, &principal, op, &Resource::topic(topic)));
        }
    }
}
