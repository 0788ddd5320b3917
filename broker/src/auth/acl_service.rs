//! The `AclAdmin` gRPC service: `rill acl add|remove|list`. With authorization on, changing ACLs needs ALTER
//! on the cluster and listing them DESCRIBE (Kafka's CreateAcls, DeleteAcls and DescribeAcls ask the same), or a
//! super user. The store's writes (an fsynced file) run on the blocking pool.

use std::sync::Arc;

use rill_protocol::reason::Reason;
use rill_protocol::v1::acl_admin_server::{AclAdmin, AclAdminServer};
use rill_protocol::v1::{
    self, AddAclsRequest, AddAclsResponse, ListAclsRequest, ListAclsResponse, RemoveAclsRequest, RemoveAclsResponse,
};
use tonic::{Request, Response, Status};

use super::acl::{AclBinding, AclFilter, Operation, PatternType, Permission, Resource, ResourceType};
use super::acl_store::{AclError, AclStore};
use super::Authorizer;
use crate::error::BrokerError;

/// Most bindings one AddAcls may carry.
pub const MAX_ACLS_PER_REQUEST: usize = 1_000;

pub struct AclAdminService {
    authorizer: Arc<Authorizer>,
}

impl AclAdminService {
    pub fn server(authorizer: Arc<Authorizer>) -> AclAdminServer<Self> {
        AclAdminServer::new(Self::new(authorizer))
    }

    /// The service itself, for a caller in this process (the console) that calls its handlers directly.
    pub fn new(authorizer: Arc<Authorizer>) -> Self {
        Self { authorizer }
    }

    fn authorize<T>(&self, request: &Request<T>, operation: Operation) -> Result<Arc<AclStore>, Status> {
        let principal = crate::service::principal_of(request);
        self.authorizer.check(&principal, operation, &Resource::cluster()).map_err(BrokerError::from)?;
        Ok(Arc::clone(self.authorizer.store()))
    }
}

fn invalid(field: &str, value: &str, allowed: &str) -> Status {
    Reason::InvalidArgument.status(format!("invalid {field} {value:?}: use {allowed}"))
}

fn parse_field<T>(field: &str, value: &str, parse: impl Fn(&str) -> Option<T>, allowed: &str) -> Result<T, Status> {
    parse(value).ok_or_else(|| invalid(field, value, allowed))
}

const RESOURCE_TYPES: &str = "topic, group, cluster or transactional-id";
const PATTERN_TYPES: &str = "literal or prefixed";
const PERMISSIONS: &str = "allow or deny";
const OPERATIONS: &str =
    "all, read, write, create, delete, alter, describe, describe_configs, alter_configs or idempotent_write";

pub fn binding_from_wire(acl: v1::Acl) -> Result<AclBinding, Status> {
    Ok(AclBinding {
        resource_type: parse_field("resource type", &acl.resource_type, ResourceType::parse, RESOURCE_TYPES)?,
        pattern_type: parse_field("pattern type", &acl.pattern_type, PatternType::parse, PATTERN_TYPES)?,
        name: acl.name,
        principal: acl.principal,
        host: if acl.host.is_empty() { super::acl::ANY_HOST.to_owned() } else { acl.host },
        operation: parse_field("operation", &acl.operation, Operation::parse, OPERATIONS)?,
        permission: parse_field("permission", &acl.permission, Permission::parse, PERMISSIONS)?,
    })
}

pub fn binding_to_wire(binding: AclBinding) -> v1::Acl {
    v1::Acl {
        resource_type: binding.resource_type.name().to_owned(),
        pattern_type: binding.pattern_type.name().to_owned(),
        name: binding.name,
        principal: binding.principal,
        host: binding.host,
        operation: binding.operation.name().to_owned(),
        permission: binding.permission.name().to_owned(),
    }
}

fn optional<T>(
    field: &str,
    value: Option<String>,
    parse: fn(&str) -> Option<T>,
    allowed: &str,
) -> Result<Option<T>, Status> {
    value.map(|v| parse_field(field, &v, parse, allowed)).transpose()
}

fn filter_from_wire(filter: Option<v1::AclFilter>) -> Result<AclFilter, Status> {
    let filter = filter.unwrap_or_default();
    Ok(AclFilter {
        resource_type: optional("resource type", filter.resource_type, ResourceType::parse, RESOURCE_TYPES)?,
        pattern_type: optional("pattern type", filter.pattern_type, PatternType::parse, PATTERN_TYPES)?,
        name: filter.name,
        principal: filter.principal,
        host: filter.host,
        operation: optional("operation", filter.operation, Operation::parse, OPERATIONS)?,
        permission: optional("permission", filter.permission, Permission::parse, PERMISSIONS)?,
        applies_to: None,
    })
}

async fn on_blocking_pool<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, AclError> + Send + 'static,
) -> Result<T, Status> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|err| AclError::Internal(format!("ACL store task failed: {err}")))?
        .map_err(Status::from)
}

#[tonic::async_trait]
impl AclAdmin for AclAdminService {
    async fn add_acls(&self, request: Request<AddAclsRequest>) -> Result<Response<AddAclsResponse>, Status> {
        let store = self.authorize(&request, Operation::Alter)?;
        let by = crate::service::principal_of(&request);
        let acls = request.into_inner().acls;
        if acls.len() > MAX_ACLS_PER_REQUEST {
            return Err(Reason::LimitReached
                .status(format!("{} ACLs in one request: at most {MAX_ACLS_PER_REQUEST} are", acls.len())));
        }
        let bindings = acls.into_iter().map(binding_from_wire).collect::<Result<Vec<_>, _>>()?;
        let count = bindings.len();
        let added = on_blocking_pool(move || store.add(bindings)).await?;
        tracing::info!(principal = %by, asked = count, added, "ACLs added");
        Ok(Response::new(AddAclsResponse { added: u32::try_from(added).unwrap_or(u32::MAX) }))
    }

    async fn remove_acls(&self, request: Request<RemoveAclsRequest>) -> Result<Response<RemoveAclsResponse>, Status> {
        let store = self.authorize(&request, Operation::Alter)?;
        let by = crate::service::principal_of(&request);
        let filter = filter_from_wire(request.into_inner().filter)?;
        let removed = on_blocking_pool(move || store.remove(&filter)).await?;
        tracing::info!(principal = %by, removed = removed.len(), "ACLs removed");
        Ok(Response::new(RemoveAclsResponse { removed: removed.into_iter().map(binding_to_wire).collect() }))
    }

    async fn list_acls(&self, request: Request<ListAclsRequest>) -> Result<Response<ListAclsResponse>, Status> {
        let store = self.authorize(&request, Operation::Describe)?;
        let filter = filter_from_wire(request.into_inner().filter)?;
        Ok(Response::new(ListAclsResponse { acls: store.list(&filter).into_iter().map(binding_to_wire).collect() }))
    }
}
