//! DescribeClientQuotas (48) and AlterClientQuotas (49), v0–v1: Kafka's quota tools (`kafka-configs.sh
//! --entity-type users|clients|ips`, the Java AdminClient's `describeClientQuotas`/`alterClientQuotas`) over the
//! node's quota store (`quotas/`), the quotas `rill quota` manages too: byte rates, partition mutation rates and
//! request percentages of users and client ids, and (KIP-612) the connection rate of an `ip` entity, its name an IP
//! address, written back as `IpAddr` writes it.
//!
//! Authorization is Kafka's: DESCRIBE_CONFIGS on the cluster to describe, ALTER_CONFIGS to alter, or a super
//! user. What rill does not hold (a key it does not know, a value that is not a whole number in its range, an ip
//! entity's name that is no address, an ip beside a user or client id) is
//! refused with INVALID_REQUEST and a message saying what is served: in the whole response for a describe, per
//! entry for an alter. The valid entries of an alter are
//! applied together, in one write (or one controller command on a cluster).

use kafka_protocol::messages::alter_client_quotas_response as alter_response;
use kafka_protocol::messages::describe_client_quotas_response::{EntityData, EntryData, ValueData};
use kafka_protocol::messages::{
    AlterClientQuotasRequest, AlterClientQuotasResponse, DescribeClientQuotasRequest, DescribeClientQuotasResponse,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::topic_configs::text;
use super::KafkaContext;
use crate::auth::acl::{Operation, Resource};
use crate::auth::Principal;
use crate::quotas::store::QuotaError;
use crate::quotas::{
    rate_from_wire, ComponentFilter, EntityKind, EntityName, InvalidQuota, NameMatch, QuotaChange, QuotaEntity,
    QuotaKey,
};

/// Most entries one AlterClientQuotas may carry: each becomes part of one write.
pub const MAX_ENTRIES_PER_REQUEST: usize = 1_000;

type Refusal = (ResponseError, String);

fn authorize(kafka: &KafkaContext, principal: &Principal, operation: Operation) -> Result<(), Refusal> {
    kafka
        .node
        .authorizer
        .check(principal, operation, &Resource::cluster())
        .map_err(|denied| (ResponseError::ClusterAuthorizationFailed, denied.to_string()))
}

fn store_refusal(err: &QuotaError) -> Refusal {
    let code = match err {
        QuotaError::Invalid(_) => ResponseError::InvalidRequest,
        // A change the controller quorum could not record: Kafka's admin clients retry NOT_CONTROLLER.
        QuotaError::Unavailable { .. } => ResponseError::NotController,
        QuotaError::Io { .. } | QuotaError::Write { .. } => ResponseError::KafkaStorageError,
        QuotaError::Corrupt { .. } | QuotaError::Internal(_) => ResponseError::UnknownServerError,
    };
    (code, err.to_string())
}

fn invalid(err: InvalidQuota) -> Refusal {
    (ResponseError::InvalidRequest, err.to_string())
}

pub fn describe(
    kafka: &KafkaContext,
    request: &DescribeClientQuotasRequest,
    principal: &Principal,
) -> DescribeClientQuotasResponse {
    let answer = authorize(kafka, principal, Operation::DescribeConfigs).and_then(|()| {
        let filters = describe_filters(request)?;
        let quotas = kafka.node.quotas.store().snapshot();
        let entries = quotas
            .matching(&filters, request.strict)
            .map(|(entity, values)| {
                let values = values
                    .iter()
                    .map(|(key, value)| ValueData::default().with_key(text(key.name())).with_value(*value as f64))
                    .collect();
                EntryData::default().with_entity(wire_entity(entity)).with_values(values)
            })
            .collect();
        Ok(entries)
    });
    match answer {
        Ok(entries) => DescribeClientQuotasResponse::default().with_entries(Some(entries)),
        Err((code, message)) => DescribeClientQuotasResponse::default()
            .with_error_code(code.code())
            .with_error_message(Some(StrBytes::from_string(message))),
    }
}

fn describe_filters(request: &DescribeClientQuotasRequest) -> Result<Vec<ComponentFilter>, Refusal> {
    let mut filters: Vec<ComponentFilter> = Vec::with_capacity(request.components.len());
    for component in &request.components {
        let kind = EntityKind::parse(&component.entity_type).map_err(invalid)?;
        if filters.iter().any(|f| f.kind == kind) {
            let message = format!("entity type {:?} is filtered on twice", kind.name());
            return Err((ResponseError::InvalidRequest, message));
        }
        let kind_match = match (component.match_type, &component._match) {
            (0, Some(name)) => NameMatch::Exact(canonical_name(kind, name.as_str())),
            (0, None) => {
                let message = "match type 0 (exact) needs a name: use match type 1 for the default".to_owned();
                return Err((ResponseError::InvalidRequest, message));
            }
            (1, _) => NameMatch::Default,
            (2, _) => NameMatch::Any,
            (other, _) => {
                let message = format!("match type {other} is not one of 0 (exact), 1 (default), 2 (any)");
                return Err((ResponseError::InvalidRequest, message));
            }
        };
        filters.push(ComponentFilter { kind, kind_match });
    }
    Ok(filters)
}

fn wire_entity(entity: &QuotaEntity) -> Vec<EntityData> {
    let component = |kind: EntityKind, name: &EntityName| {
        let name = match name {
            EntityName::Default => None,
            EntityName::Named(name) => Some(text(name)),
        };
        EntityData::default().with_entity_type(text(kind.name())).with_entity_name(name)
    };
    let user = entity.user.as_ref().map(|name| component(EntityKind::User, name));
    let client = entity.client_id.as_ref().map(|name| component(EntityKind::ClientId, name));
    let ip = entity.ip.as_ref().map(|name| component(EntityKind::Ip, name));
    user.into_iter().chain(client).chain(ip).collect()
}

/// An entity's name as the store keeps it: an IP address as `IpAddr` writes it (`::ffff:10.0.0.1` is
/// `10.0.0.1`), so that every spelling of an address names one entity; any other name as given.
fn canonical_name(kind: EntityKind, name: &str) -> String {
    match (kind, name.parse::<std::net::IpAddr>()) {
        (EntityKind::Ip, Ok(ip)) => ip.to_canonical().to_string(),
        _ => name.to_owned(),
    }
}

pub async fn alter(
    kafka: &KafkaContext,
    request: AlterClientQuotasRequest,
    principal: &Principal,
) -> AlterClientQuotasResponse {
    let denied = authorize(kafka, principal, Operation::AlterConfigs).err().or_else(|| {
        (request.entries.len() > MAX_ENTRIES_PER_REQUEST).then(|| {
            let message = format!(
                "{} entries in one request: at most {MAX_ENTRIES_PER_REQUEST} are taken",
                request.entries.len()
            );
            (ResponseError::InvalidRequest, message)
        })
    });
    // Each entry's changes, or why it is refused.
    let parsed: Vec<Result<Vec<QuotaChange>, Refusal>> = request
        .entries
        .iter()
        .map(|entry| match &denied {
            Some(refusal) => Err(refusal.clone()),
            None => entry_changes(entry),
        })
        .collect();
    let changes: Vec<QuotaChange> = parsed.iter().filter_map(|p| p.as_ref().ok()).flatten().cloned().collect();
    let applied: Result<(), Refusal> = if changes.is_empty() {
        Ok(())
    } else {
        let store = std::sync::Arc::clone(kafka.node.quotas.store());
        let validate_only = request.validate_only;
        match tokio::task::spawn_blocking(move || store.alter(changes, validate_only)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(err)) => {
                tracing::info!(error = %err, "quota change refused");
                Err(store_refusal(&err))
            }
            Err(err) => Err(store_refusal(&QuotaError::Internal(format!("quota store task failed: {err}")))),
        }
    };
    let entries = request
        .entries
        .iter()
        .zip(parsed)
        .map(|(entry, parsed)| {
            let outcome = parsed.map(drop).and_then(|()| applied.clone());
            let entity = entry
                .entity
                .iter()
                .map(|c| {
                    alter_response::EntityData::default()
                        .with_entity_type(c.entity_type.clone())
                        .with_entity_name(c.entity_name.clone())
                })
                .collect();
            let (code, message) = match outcome {
                Ok(()) => (0, None),
                Err((code, message)) => (code.code(), Some(StrBytes::from_string(message))),
            };
            alter_response::EntryData::default().with_entity(entity).with_error_code(code).with_error_message(message)
        })
        .collect();
    AlterClientQuotasResponse::default().with_entries(entries)
}

fn entry_changes(
    entry: &kafka_protocol::messages::alter_client_quotas_request::EntryData,
) -> Result<Vec<QuotaChange>, Refusal> {
    let mut entity = QuotaEntity::default();
    for component in &entry.entity {
        let kind = EntityKind::parse(&component.entity_type).map_err(invalid)?;
        let name = match &component.entity_name {
            Some(name) => EntityName::Named(canonical_name(kind, name.as_str())),
            None => EntityName::Default,
        };
        let slot = match kind {
            EntityKind::User => &mut entity.user,
            EntityKind::ClientId => &mut entity.client_id,
            EntityKind::Ip => &mut entity.ip,
        };
        if slot.replace(name).is_some() {
            return Err(invalid(InvalidQuota::EntityShape));
        }
    }
    entity.validate().map_err(invalid)?;
    if entry.ops.is_empty() {
        return Err((ResponseError::InvalidRequest, format!("no operation for {entity}")));
    }
    let mut changes = Vec::with_capacity(entry.ops.len());
    for op in &entry.ops {
        let key = QuotaKey::parse(&op.key).map_err(invalid)?;
        if changes.iter().any(|c: &QuotaChange| c.key == key) {
            return Err((ResponseError::InvalidRequest, format!("{} is changed twice for {entity}", key.name())));
        }
        let value = if op.remove { None } else { Some(rate_from_wire(key, op.value).map_err(invalid)?) };
        changes.push(QuotaChange { entity: entity.clone(), key, value });
    }
    Ok(changes)
}
