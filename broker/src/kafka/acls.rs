//! DescribeAcls (29), CreateAcls (30) and DeleteAcls (31), v1–v3: Kafka's ACL tools (`kafka-acls.sh`, the Java
//! AdminClient, librdkafka's) over the same [`AclStore`] and validation as `rill acl` (`auth/acl_service.rs`), with
//! Kafka's codes translated by `acl_wire.rs`.
//!
//! Authorization is Kafka's and `rill acl`'s: DESCRIBE on the cluster to describe, ALTER to create or delete, or
//! a super user; with authorization off anyone may, so ACLs can be set up before it is turned on. A refused
//! request, a binding rill cannot hold or a filter it cannot read is answered in the response (per creation, per
//! filter, or for the whole DescribeAcls), never by closing the connection. The store's writes (an fsynced file)
//! run on one blocking task per request: CreateAcls writes once for all its valid bindings, DeleteAcls once for
//! each filter that matched something.

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::delete_acls_response::{DeleteAclsFilterResult, DeleteAclsMatchingAcl};
use kafka_protocol::messages::describe_acls_response::{AclDescription, DescribeAclsResource};
use kafka_protocol::messages::{
    CreateAclsRequest, CreateAclsResponse, DeleteAclsRequest, DeleteAclsResponse, DescribeAclsRequest,
    DescribeAclsResponse,
};
use kafka_protocol::ResponseError;

use super::acl_wire::{self, WireAclError, WireBinding, WireFilter};
use super::topic_configs::text;
use super::KafkaContext;
use crate::auth::acl::{AclBinding, AclFilter, Operation, Resource};
use crate::auth::acl_service::MAX_ACLS_PER_REQUEST;
use crate::auth::acl_store::{AclError, AclStore};
use crate::auth::Principal;

/// A refusal as a response carries it: a code and the message that says what was wrong and what is allowed.
type Refusal = (ResponseError, String);

/// The store, if `principal` may do `operation` on the cluster (DESCRIBE to list, ALTER to change).
fn authorized_store(
    kafka: &KafkaContext,
    principal: &Principal,
    operation: Operation,
) -> Result<Arc<AclStore>, Refusal> {
    let authorizer = &kafka.node.authorizer;
    authorizer
        .check(principal, operation, &Resource::cluster())
        .map_err(|denied| (ResponseError::ClusterAuthorizationFailed, denied.to_string()))?;
    Ok(Arc::clone(authorizer.store()))
}

/// Kafka's code for a failed store operation; on a cluster, a change the controller quorum could not record is
/// NOT_CONTROLLER, which Kafka's admin clients retry.
fn store_refusal(err: &AclError) -> Refusal {
    let code = match err {
        AclError::Invalid(_) => ResponseError::InvalidRequest,
        AclError::TooMany { .. } => ResponseError::PolicyViolation,
        AclError::Unavailable { .. } => ResponseError::NotController,
        AclError::Io { .. } => ResponseError::KafkaStorageError,
        AclError::Corrupt { .. } | AclError::Internal(_) => ResponseError::UnknownServerError,
    };
    (code, err.to_string())
}

fn wire_refusal(err: WireAclError) -> Refusal {
    (ResponseError::InvalidRequest, err.to_string())
}

fn too_many(count: usize, what: &str) -> Refusal {
    (ResponseError::InvalidRequest, format!("{count} {what} in one request: at most {MAX_ACLS_PER_REQUEST} are"))
}

async fn on_blocking_pool<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Result<T, Refusal> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|err| store_refusal(&AclError::Internal(format!("ACL store task failed: {err}"))))
}

pub fn describe(kafka: &KafkaContext, request: &DescribeAclsRequest, principal: &Principal) -> DescribeAclsResponse {
    let wire = WireFilter {
        resource_type: request.resource_type_filter,
        name: request.resource_name_filter.as_deref(),
        pattern_type: request.pattern_type_filter,
        principal: request.principal_filter.as_deref(),
        host: request.host_filter.as_deref(),
        operation: request.operation,
        permission: request.permission_type,
    };
    let described = authorized_store(kafka, principal, Operation::Describe).and_then(|store| {
        let filter = acl_wire::filter_from_wire(&wire).map_err(wire_refusal)?;
        Ok(filter.map(|filter| store.list(&filter)).unwrap_or_default())
    });
    match described {
        Ok(bindings) => DescribeAclsResponse::default().with_resources(by_resource(bindings)),
        Err((code, message)) => {
            DescribeAclsResponse::default().with_error_code(code.code()).with_error_message(Some(text(message)))
        }
    }
}

/// DescribeAcls answers bindings grouped by the resource pattern they share.
fn by_resource(bindings: Vec<AclBinding>) -> Vec<DescribeAclsResource> {
    let mut resources: BTreeMap<_, Vec<AclDescription>> = BTreeMap::new();
    for binding in bindings {
        let description = AclDescription::default()
            .with_principal(text(binding.principal))
            .with_host(text(binding.host))
            .with_operation(acl_wire::operation_code(binding.operation))
            .with_permission_type(acl_wire::permission_code(binding.permission));
        resources.entry((binding.resource_type, binding.pattern_type, binding.name)).or_default().push(description);
    }
    resources
        .into_iter()
        .map(|((resource_type, pattern_type, name), acls)| {
            DescribeAclsResource::default()
                .with_resource_type(acl_wire::resource_type_code(resource_type))
                .with_pattern_type(acl_wire::pattern_type_code(pattern_type))
                .with_resource_name(text(name))
                .with_acls(acls)
        })
        .collect()
}

pub async fn create(kafka: &KafkaContext, request: CreateAclsRequest, principal: &Principal) -> CreateAclsResponse {
    let count = request.creations.len();
    let outcomes: Vec<Result<(), Refusal>> = match authorized_store(kafka, principal, Operation::Alter) {
        Err(refusal) => vec![Err(refusal); count],
        Ok(_) if count > MAX_ACLS_PER_REQUEST => vec![Err(too_many(count, "ACL creations")); count],
        Ok(store) => {
            let decoded: Vec<Result<AclBinding, Refusal>> = request
                .creations
                .iter()
                .map(|creation| {
                    acl_wire::binding_from_wire(&WireBinding {
                        resource_type: creation.resource_type,
                        name: &creation.resource_name,
                        pattern_type: creation.resource_pattern_type,
                        principal: &creation.principal,
                        host: &creation.host,
                        operation: creation.operation,
                        permission: creation.permission_type,
                    })
                    .map_err(wire_refusal)
                })
                .collect();
            let valid: Vec<AclBinding> = decoded.iter().filter_map(|binding| binding.as_ref().ok().cloned()).collect();
            let asked = valid.len();
            // The valid ones are added in one write, all or none: a failed write refuses each of them alike.
            let stored = match asked {
                0 => Ok(0),
                _ => {
                    on_blocking_pool(move || store.add(valid).map_err(|err| store_refusal(&err))).await.and_then(|r| r)
                }
            };
            if let Ok(added) = &stored {
                tracing::info!(%principal, asked, added, "ACLs added through Kafka's CreateAcls");
            }
            decoded.into_iter().map(|binding| binding.and_then(|_| stored.clone().map(drop))).collect()
        }
    };
    let results = outcomes
        .into_iter()
        .map(|outcome| match outcome {
            Ok(()) => AclCreationResult::default(),
            Err((code, message)) => {
                AclCreationResult::default().with_error_code(code.code()).with_error_message(Some(text(message)))
            }
        })
        .collect();
    CreateAclsResponse::default().with_results(results)
}

pub async fn delete(kafka: &KafkaContext, request: DeleteAclsRequest, principal: &Principal) -> DeleteAclsResponse {
    let count = request.filters.len();
    let outcomes: Vec<Result<Vec<AclBinding>, Refusal>> = match authorized_store(kafka, principal, Operation::Alter) {
        Err(refusal) => vec![Err(refusal); count],
        Ok(_) if count > MAX_ACLS_PER_REQUEST => vec![Err(too_many(count, "ACL filters")); count],
        Ok(store) => {
            let filters: Vec<Result<Option<AclFilter>, Refusal>> = request
                .filters
                .iter()
                .map(|filter| {
                    acl_wire::filter_from_wire(&WireFilter {
                        resource_type: filter.resource_type_filter,
                        name: filter.resource_name_filter.as_deref(),
                        pattern_type: filter.pattern_type_filter,
                        principal: filter.principal_filter.as_deref(),
                        host: filter.host_filter.as_deref(),
                        operation: filter.operation,
                        permission: filter.permission_type,
                    })
                    .map_err(wire_refusal)
                })
                .collect();
            // In the filters' order: a binding the first filter removed is not matched again by a later one.
            let removing = move || -> Vec<Result<Vec<AclBinding>, Refusal>> {
                filters
                    .into_iter()
                    .map(|filter| match filter? {
                        Some(filter) => store.remove(&filter).map_err(|err| store_refusal(&err)),
                        None => Ok(Vec::new()),
                    })
                    .collect()
            };
            match on_blocking_pool(removing).await {
                Ok(outcomes) => outcomes,
                Err(refusal) => vec![Err(refusal); count],
            }
        }
    };
    let removed: usize = outcomes.iter().filter_map(|outcome| outcome.as_ref().ok()).map(Vec::len).sum();
    if removed > 0 {
        tracing::info!(%principal, removed, "ACLs removed through Kafka's DeleteAcls");
    }
    let filter_results = outcomes
        .into_iter()
        .map(|outcome| match outcome {
            Ok(bindings) => {
                DeleteAclsFilterResult::default().with_matching_acls(bindings.into_iter().map(matching).collect())
            }
            Err((code, message)) => {
                DeleteAclsFilterResult::default().with_error_code(code.code()).with_error_message(Some(text(message)))
            }
        })
        .collect();
    DeleteAclsResponse::default().with_filter_results(filter_results)
}

fn matching(binding: AclBinding) -> DeleteAclsMatchingAcl {
    DeleteAclsMatchingAcl::default()
        .with_resource_type(acl_wire::resource_type_code(binding.resource_type))
        .with_resource_name(text(binding.name))
        .with_pattern_type(acl_wire::pattern_type_code(binding.pattern_type))
        .with_principal(text(binding.principal))
        .with_host(text(binding.host))
        .with_operation(acl_wire::operation_code(binding.operation))
        .with_permission_type(acl_wire::permission_code(binding.permission))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_failures_have_kafkas_codes() {
        let unavailable = AclError::Unavailable { reason: "no controller leader".into() };
        let (code, message) = store_refusal(&unavailable);
        assert_eq!(code, ResponseError::NotController, "retried by Kafka's admin clients");
        assert!(message.contains("no controller leader"), "{message}");
        assert_eq!(store_refusal(&AclError::TooMany { limit: 3 }).0, ResponseError::PolicyViolation);
    }
}
