//! The `QuotaAdmin` gRPC service: `rill quota set|remove|list`. With authorization on, changing quotas needs
//! ALTER_CONFIGS on the cluster and listing them DESCRIBE_CONFIGS (what Kafka's AlterClientQuotas and
//! DescribeClientQuotas ask), or a super user. The store's writes (an fsynced file, or a controller command)
//! run on the blocking pool.

use std::collections::BTreeMap;
use std::sync::Arc;

use rill_protocol::reason::Reason;
use rill_protocol::v1::quota_admin_server::{QuotaAdmin, QuotaAdminServer};
use rill_protocol::v1::{
    self, AlterQuotasRequest, AlterQuotasResponse, ClientQuota, ListQuotasRequest, ListQuotasResponse,
};
use tonic::{Request, Response, Status};

use super::store::{QuotaError, QuotaStore};
use super::{EntityName, InvalidQuota, QuotaChange, QuotaEntity, QuotaKey};
use crate::auth::acl::{Operation, Resource};
use crate::auth::Authorizer;
use crate::error::BrokerError;

impl From<QuotaError> for Status {
    fn from(err: QuotaError) -> Self {
        let reason = match &err {
            QuotaError::Invalid(InvalidQuota::TooMany) => Reason::LimitReached,
            QuotaError::Invalid(_) => Reason::InvalidArgument,
            QuotaError::Unavailable { .. } => Reason::ControllerUnavailable,
            QuotaError::Io { .. } | QuotaError::Write { .. } => Reason::StorageFailure,
            QuotaError::Corrupt { .. } | QuotaError::Internal(_) => Reason::Internal,
        };
        reason.status(err.to_string())
    }
}

pub struct QuotaAdminService {
    authorizer: Arc<Authorizer>,
    store: Arc<QuotaStore>,
}

impl QuotaAdminService {
    pub fn server(authorizer: Arc<Authorizer>, store: Arc<QuotaStore>) -> QuotaAdminServer<Self> {
        QuotaAdminServer::new(Self::new(authorizer, store))
    }

    /// The service itself, for a caller in this process (the console) that calls its handlers directly.
    pub fn new(authorizer: Arc<Authorizer>, store: Arc<QuotaStore>) -> Self {
        Self { authorizer, store }
    }

    fn authorize<T>(&self, request: &Request<T>, operation: Operation) -> Result<(), Status> {
        let principal = crate::service::principal_of(request);
        self.authorizer.check(&principal, operation, &Resource::cluster()).map_err(BrokerError::from)?;
        Ok(())
    }
}

fn entity_from_wire(entity: Option<v1::QuotaEntity>) -> Result<QuotaEntity, Status> {
    let entity = entity.unwrap_or_default();
    let part = |name: Option<String>, is_default: bool, what: &str| match (name, is_default) {
        (Some(_), true) => Err(Reason::InvalidArgument.status(format!("{what} is a name or the default, not both"))),
        (Some(name), false) => Ok(Some(EntityName::Named(name))),
        (None, true) => Ok(Some(EntityName::Default)),
        (None, false) => Ok(None),
    };
    let entity = QuotaEntity {
        user: part(entity.user, entity.default_user, "the user")?,
        client_id: part(entity.client_id, entity.default_client_id, "the client id")?,
        ip: match part(entity.ip, entity.default_ip, "the ip")? {
            // One spelling per address, as the Kafka API keeps it.
            Some(EntityName::Named(ip)) => {
                Some(EntityName::Named(ip.parse::<std::net::IpAddr>().map_or(ip, |ip| ip.to_canonical().to_string())))
            }
            other => other,
        },
    };
    entity.validate().map_err(QuotaError::from)?;
    Ok(entity)
}

fn entity_to_wire(entity: &QuotaEntity) -> v1::QuotaEntity {
    let named = |part: &Option<EntityName>| match part {
        Some(EntityName::Named(name)) => Some(name.clone()),
        _ => None,
    };
    v1::QuotaEntity {
        user: named(&entity.user),
        default_user: entity.user == Some(EntityName::Default),
        client_id: named(&entity.client_id),
        default_client_id: entity.client_id == Some(EntityName::Default),
        ip: named(&entity.ip),
        default_ip: entity.ip == Some(EntityName::Default),
    }
}

fn quota_to_wire(entity: &QuotaEntity, values: Option<&BTreeMap<QuotaKey, u64>>) -> ClientQuota {
    let value = |key| values.and_then(|values| values.get(&key).copied());
    ClientQuota {
        entity: Some(entity_to_wire(entity)),
        producer_byte_rate: value(QuotaKey::ProducerByteRate),
        consumer_byte_rate: value(QuotaKey::ConsumerByteRate),
        connection_creation_rate: value(QuotaKey::ConnectionCreationRate),
        controller_mutation_rate: value(QuotaKey::ControllerMutationRate),
        request_percentage: value(QuotaKey::RequestPercentage),
    }
}

#[tonic::async_trait]
impl QuotaAdmin for QuotaAdminService {
    async fn alter_quotas(
        &self,
        request: Request<AlterQuotasRequest>,
    ) -> Result<Response<AlterQuotasResponse>, Status> {
        self.authorize(&request, Operation::AlterConfigs)?;
        let by = crate::service::principal_of(&request);
        let asked = request.into_inner();
        let entity = entity_from_wire(asked.entity)?;
        let mut changes = Vec::new();
        for (key, value, remove) in [
            (QuotaKey::ProducerByteRate, asked.producer_byte_rate, asked.remove_producer_byte_rate),
            (QuotaKey::ConsumerByteRate, asked.consumer_byte_rate, asked.remove_consumer_byte_rate),
            (QuotaKey::ConnectionCreationRate, asked.connection_creation_rate, asked.remove_connection_creation_rate),
            (QuotaKey::ControllerMutationRate, asked.controller_mutation_rate, asked.remove_controller_mutation_rate),
            (QuotaKey::RequestPercentage, asked.request_percentage, asked.remove_request_percentage),
        ] {
            match (value, remove) {
                (Some(_), true) => {
                    let message = format!("{} is set or removed, not both", key.name());
                    return Err(Reason::InvalidArgument.status(message));
                }
                (Some(value), false) => changes.push(QuotaChange { entity: entity.clone(), key, value: Some(value) }),
                (None, true) => changes.push(QuotaChange { entity: entity.clone(), key, value: None }),
                (None, false) => {}
            }
        }
        if changes.is_empty() {
            return Err(Reason::InvalidArgument.status(
                "nothing to change: set or remove producer_byte_rate, consumer_byte_rate, controller_mutation_rate \
                 or request_percentage (a user or client id), or connection_creation_rate (an ip)",
            ));
        }
        let store = Arc::clone(&self.store);
        tokio::task::spawn_blocking(move || store.alter(changes, false))
            .await
            .map_err(|err| QuotaError::Internal(format!("quota store task failed: {err}")))??;
        tracing::info!(principal = %by, %entity, "client quotas changed");
        let quotas = self.store.snapshot();
        let values = quotas.entries().find(|(held, _)| **held == entity).map(|(_, values)| values);
        Ok(Response::new(AlterQuotasResponse { quota: Some(quota_to_wire(&entity, values)) }))
    }

    async fn list_quotas(&self, request: Request<ListQuotasRequest>) -> Result<Response<ListQuotasResponse>, Status> {
        self.authorize(&request, Operation::DescribeConfigs)?;
        let quotas = self.store.snapshot();
        let quotas = quotas.entries().map(|(entity, values)| quota_to_wire(entity, Some(values))).collect();
        Ok(Response::new(ListQuotasResponse { quotas }))
    }
}
