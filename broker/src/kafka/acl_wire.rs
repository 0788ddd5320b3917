//! Kafka's codes for the ACL model (the `ResourceType`, `PatternType`, `AclOperation` and `AclPermissionType`
//! enums of KIP-140 and KIP-290) to and from rill's (`auth/acl.rs`), for CreateAcls, DescribeAcls and DeleteAcls.
//!
//! A CreateAcls binding becomes an [`AclBinding`] checked by [`AclBinding::validate`], the check `rill acl add`
//! gets from the store, so both edges refuse the same bindings with the same words. A filter becomes an
//! [`AclFilter`], or `None` when it names something Kafka has and rill never holds (a delegation token, the
//! CLUSTER_ACTION operation): such a filter selects nothing, which is what Kafka would select from rill's ACLs.

use crate::auth::acl::{AclBinding, AclFilter, InvalidAcl, Operation, PatternType, Permission, ResourceType};

/// The filters' wildcard, shared by the four enums. Their UNKNOWN (0) is what a client sends for a value it could
/// not name: never valid in a request, refused like any code not listed here.
const ANY: i8 = 1;
/// PatternType's MATCH (filters only): the bindings that apply to a resource name, whatever their pattern.
const MATCH: i8 = 2;

const RESOURCE_TYPES: [(i8, ResourceType); 4] = [
    (2, ResourceType::Topic),
    (3, ResourceType::Group),
    (4, ResourceType::Cluster),
    (5, ResourceType::TransactionalId),
];
/// Resource types Kafka has and rill does not (no delegation tokens, no ACLs on users).
const KAFKA_ONLY_RESOURCE_TYPES: [(i8, &str); 2] = [(6, "DELEGATION_TOKEN"), (7, "USER")];
const PATTERN_TYPES: [(i8, PatternType); 2] = [(3, PatternType::Literal), (4, PatternType::Prefixed)];
const OPERATIONS: [(i8, Operation); 10] = [
    (2, Operation::All),
    (3, Operation::Read),
    (4, Operation::Write),
    (5, Operation::Create),
    (6, Operation::Delete),
    (7, Operation::Alter),
    (8, Operation::Describe),
    (10, Operation::DescribeConfigs),
    (11, Operation::AlterConfigs),
    (12, Operation::IdempotentWrite),
];
/// Operations Kafka has and rill never asks about (inter-broker calls, delegation tokens, KIP-939).
const KAFKA_ONLY_OPERATIONS: [(i8, &str); 4] =
    [(9, "CLUSTER_ACTION"), (13, "CREATE_TOKENS"), (14, "DESCRIBE_TOKENS"), (15, "TWO_PHASE_COMMIT")];
const PERMISSIONS: [(i8, Permission); 2] = [(2, Permission::Deny), (3, Permission::Allow)];

const ALLOWED_RESOURCE_TYPES: &str = "TOPIC (2), GROUP (3), CLUSTER (4) or TRANSACTIONAL_ID (5)";
const ALLOWED_PATTERN_TYPES: &str = "LITERAL (3) or PREFIXED (4)";
const ALLOWED_OPERATIONS: &str = "ALL (2), READ (3), WRITE (4), CREATE (5), DELETE (6), ALTER (7), DESCRIBE (8), \
                                  DESCRIBE_CONFIGS (10), ALTER_CONFIGS (11) or IDEMPOTENT_WRITE (12)";
const ALLOWED_PERMISSIONS: &str = "DENY (2) or ALLOW (3)";

/// Why a binding or a filter from the wire is refused: each is answered as INVALID_REQUEST with this message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireAclError {
    #[error("invalid {field} code {code} in {place}: use {allowed}")]
    Invalid { field: &'static str, code: i8, place: &'static str, allowed: &'static str },
    #[error("{field} {name} is not supported: rill keeps ACLs with {allowed}")]
    Unsupported { field: &'static str, name: &'static str, allowed: &'static str },
    #[error(transparent)]
    Binding(#[from] InvalidAcl),
}

/// One field of a filter: a wildcard, a value rill has, or a value only Kafka has.
enum Selects<T> {
    Any,
    Value(T),
    KafkaOnly,
}

fn lookup<T: Copy>(table: &[(i8, T)], code: i8) -> Option<T> {
    table.iter().find(|(c, _)| *c == code).map(|(_, value)| *value)
}

fn code_of<T: Copy + PartialEq>(table: &[(i8, T)], value: T) -> i8 {
    table.iter().find(|(_, v)| *v == value).map(|(code, _)| *code).expect("every rill value has a Kafka code")
}

/// Decodes a filter field: ANY, a value of `table`, or one of `kafka_only`; UNKNOWN and other codes are refused.
fn filter_field<T: Copy>(
    field: &'static str,
    code: i8,
    table: &[(i8, T)],
    kafka_only: &[(i8, &'static str)],
    allowed: &'static str,
) -> Result<Selects<T>, WireAclError> {
    if code == ANY {
        return Ok(Selects::Any);
    }
    if let Some(value) = lookup(table, code) {
        return Ok(Selects::Value(value));
    }
    match lookup(kafka_only, code) {
        Some(_) => Ok(Selects::KafkaOnly),
        None => Err(WireAclError::Invalid { field, code, place: "a filter", allowed }),
    }
}

/// Decodes a binding field: a value of `table`; a Kafka-only value is unsupported, anything else invalid.
fn binding_field<T: Copy>(
    field: &'static str,
    code: i8,
    table: &[(i8, T)],
    kafka_only: &[(i8, &'static str)],
    allowed: &'static str,
) -> Result<T, WireAclError> {
    if let Some(value) = lookup(table, code) {
        return Ok(value);
    }
    match lookup(kafka_only, code) {
        Some(name) => Err(WireAclError::Unsupported { field, name, allowed }),
        None => Err(WireAclError::Invalid { field, code, place: "a binding", allowed }),
    }
}

/// The fields of one CreateAcls creation, as the wire has them.
pub struct WireBinding<'a> {
    pub resource_type: i8,
    pub name: &'a str,
    pub pattern_type: i8,
    pub principal: &'a str,
    pub host: &'a str,
    pub operation: i8,
    pub permission: i8,
}

/// A binding to create, checked as `rill acl add` checks one; ANY, MATCH and UNKNOWN are a filter's values,
/// refused here as Kafka refuses them.
pub fn binding_from_wire(wire: &WireBinding<'_>) -> Result<AclBinding, WireAclError> {
    let binding = AclBinding {
        resource_type: binding_field(
            "resource type",
            wire.resource_type,
            &RESOURCE_TYPES,
            &KAFKA_ONLY_RESOURCE_TYPES,
            ALLOWED_RESOURCE_TYPES,
        )?,
        pattern_type: binding_field("pattern type", wire.pattern_type, &PATTERN_TYPES, &[], ALLOWED_PATTERN_TYPES)?,
        name: wire.name.to_owned(),
        principal: wire.principal.to_owned(),
        host: wire.host.to_owned(),
        operation: binding_field("operation", wire.operation, &OPERATIONS, &KAFKA_ONLY_OPERATIONS, ALLOWED_OPERATIONS)?,
        permission: binding_field("permission type", wire.permission, &PERMISSIONS, &[], ALLOWED_PERMISSIONS)?,
    };
    binding.validate()?;
    Ok(binding)
}

/// The fields of a DescribeAcls or DeleteAcls filter, as the wire has them (`None`: null, any).
pub struct WireFilter<'a> {
    pub resource_type: i8,
    pub name: Option<&'a str>,
    pub pattern_type: i8,
    pub principal: Option<&'a str>,
    pub host: Option<&'a str>,
    pub operation: i8,
    pub permission: i8,
}

/// The filter, or `None` when it can select nothing rill holds.
pub fn filter_from_wire(wire: &WireFilter<'_>) -> Result<Option<AclFilter>, WireAclError> {
    let resource_type = filter_field(
        "resource type",
        wire.resource_type,
        &RESOURCE_TYPES,
        &KAFKA_ONLY_RESOURCE_TYPES,
        ALLOWED_RESOURCE_TYPES,
    )?;
    let operation = filter_field("operation", wire.operation, &OPERATIONS, &KAFKA_ONLY_OPERATIONS, ALLOWED_OPERATIONS)?;
    let permission = filter_field("permission type", wire.permission, &PERMISSIONS, &[], ALLOWED_PERMISSIONS)?;
    let name = wire.name.map(str::to_owned);
    let mut filter = AclFilter {
        principal: wire.principal.map(str::to_owned),
        host: wire.host.map(str::to_owned),
        ..AclFilter::default()
    };
    match wire.pattern_type {
        ANY => filter.name = name,
        MATCH => filter.applies_to = name,
        code => match lookup(&PATTERN_TYPES, code) {
            Some(pattern_type) => (filter.pattern_type, filter.name) = (Some(pattern_type), name),
            None => {
                let allowed = "ANY (1), MATCH (2), LITERAL (3) or PREFIXED (4)";
                return Err(WireAclError::Invalid { field: "pattern type", code, place: "a filter", allowed });
            }
        },
    }
    if matches!(resource_type, Selects::KafkaOnly) || matches!(operation, Selects::KafkaOnly) {
        return Ok(None);
    }
    filter.resource_type = value_of(resource_type);
    filter.operation = value_of(operation);
    filter.permission = value_of(permission);
    Ok(Some(filter))
}

fn value_of<T>(field: Selects<T>) -> Option<T> {
    match field {
        Selects::Value(value) => Some(value),
        Selects::Any | Selects::KafkaOnly => None,
    }
}

pub fn resource_type_code(resource_type: ResourceType) -> i8 {
    code_of(&RESOURCE_TYPES, resource_type)
}

pub fn pattern_type_code(pattern_type: PatternType) -> i8 {
    code_of(&PATTERN_TYPES, pattern_type)
}

pub fn operation_code(operation: Operation) -> i8 {
    code_of(&OPERATIONS, operation)
}

pub fn permission_code(permission: Permission) -> i8 {
    code_of(&PERMISSIONS, permission)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::acl::ANY_HOST;

    const UNKNOWN: i8 = 0;

    fn creation<'a>(resource_type: i8, pattern_type: i8, operation: i8, host: &'a str) -> WireBinding<'a> {
        WireBinding {
            resource_type,
            name: "orders",
            pattern_type,
            principal: "User:alice",
            host,
            operation,
            permission: 3,
        }
    }

    fn filter(resource_type: i8, pattern_type: i8, operation: i8) -> WireFilter<'static> {
        WireFilter {
            resource_type,
            name: Some("orders"),
            pattern_type,
            principal: None,
            host: None,
            operation,
            permission: ANY,
        }
    }

    #[test]
    fn every_rill_value_round_trips_through_its_kafka_code() {
        for operation in Operation::ALL {
            assert_eq!(lookup(&OPERATIONS, operation_code(operation)), Some(operation));
        }
        for resource_type in ResourceType::ALL {
            assert_eq!(lookup(&RESOURCE_TYPES, resource_type_code(resource_type)), Some(resource_type));
        }
        assert_eq!(pattern_type_code(PatternType::Prefixed), 4);
        assert_eq!(permission_code(Permission::Allow), 3);
    }

    #[test]
    fn a_binding_takes_concrete_values_and_the_validation_rill_acl_add_has() {
        let binding = binding_from_wire(&creation(2, 4, 3, ANY_HOST)).expect("prefixed read on a topic");
        assert_eq!((binding.resource_type, binding.pattern_type), (ResourceType::Topic, PatternType::Prefixed));
        assert_eq!((binding.operation, binding.permission), (Operation::Read, Permission::Allow));
        let refused = |wire: WireBinding<'_>| binding_from_wire(&wire).expect_err("refused").to_string();
        assert!(refused(creation(ANY, 3, 3, ANY_HOST)).contains("CLUSTER (4) or TRANSACTIONAL_ID (5)"));
        assert!(refused(creation(2, MATCH, 3, ANY_HOST)).contains("LITERAL (3) or PREFIXED (4)"));
        assert!(refused(creation(2, 3, ANY, ANY_HOST)).contains("operation code 1"));
        assert!(refused(creation(6, 3, 3, ANY_HOST)).contains("DELEGATION_TOKEN is not supported"));
        assert!(refused(creation(5, 3, 3, ANY_HOST)).contains("it takes write, describe, all"));
        let transactional = binding_from_wire(&creation(5, 3, 4, ANY_HOST)).expect("write on a transactional id");
        assert_eq!(transactional.resource_type, ResourceType::TransactionalId);
        assert!(refused(creation(4, 3, 9, ANY_HOST)).contains("CLUSTER_ACTION is not supported"));
        assert!(refused(creation(2, 3, 3, "10.0.0.1")).contains("only * (every host)"));
        assert!(refused(creation(3, 3, 4, ANY_HOST))
            .contains("it takes read, delete, describe, describe_configs, alter_configs, all"));
    }

    #[test]
    fn a_filter_maps_any_match_and_null_to_wildcards_and_kafka_only_values_to_nothing() {
        let any = filter_from_wire(&filter(ANY, ANY, ANY)).expect("valid").expect("selects");
        assert_eq!(any, AclFilter { name: Some("orders".into()), ..AclFilter::default() });
        let matching = filter_from_wire(&filter(2, MATCH, 3)).expect("valid").expect("selects");
        assert_eq!(
            matching,
            AclFilter {
                resource_type: Some(ResourceType::Topic),
                operation: Some(Operation::Read),
                applies_to: Some("orders".into()),
                ..AclFilter::default()
            }
        );
        let literal = filter_from_wire(&filter(ANY, 3, ANY)).expect("valid").expect("selects");
        assert_eq!(literal.pattern_type, Some(PatternType::Literal));
        assert_eq!(filter_from_wire(&filter(6, ANY, ANY)), Ok(None), "delegation tokens: none held");
        assert_eq!(filter_from_wire(&filter(ANY, ANY, 13)), Ok(None), "CREATE_TOKENS: none held");
        for bad in [filter(UNKNOWN, ANY, ANY), filter(ANY, UNKNOWN, ANY), filter(ANY, ANY, 42)] {
            assert!(matches!(filter_from_wire(&bad), Err(WireAclError::Invalid { .. })));
        }
    }
}
