//! The `ClientMetricsAdmin` gRPC service: `rill client-metrics set|remove|list`, over the same subscriptions
//! Kafka's CLIENT_METRICS config resources are (`subscriptions.rs`, `store.rs`), beside the node's own (listed,
//! never changed here). With authorization on, a change needs ALTER_CONFIGS on the cluster and a listing
//! DESCRIBE_CONFIGS, as Kafka's IncrementalAlterConfigs and DescribeConfigs of these resources ask, or a super
//! user. The store's writes (an fsynced file, or a controller command) run on the blocking pool.

use std::sync::Arc;

use rill_protocol::reason::Reason;
use rill_protocol::v1::client_metrics_admin_server::{ClientMetricsAdmin, ClientMetricsAdminServer};
use rill_protocol::v1::{self, AlterClientMetricsRequest, AlterClientMetricsResponse, ListClientMetricsRequest};
use tonic::{Request, Response, Status};

use super::store::AlterSubscriptionError;
use super::subscriptions::{SubscriptionError, SubscriptionKey};
use super::{AlterRefusal, ClientMetricsSubscription, ClientTelemetry, SubscriptionSource};
use crate::auth::acl::{Operation, Resource};
use crate::auth::Authorizer;
use crate::error::BrokerError;

impl From<AlterRefusal> for Status {
    fn from(refused: AlterRefusal) -> Self {
        match refused {
            AlterRefusal::Store(AlterSubscriptionError::Store(err)) => err.into(),
            AlterRefusal::Store(AlterSubscriptionError::Refused(SubscriptionError::TooMany)) => {
                Reason::LimitReached.status(refused.to_string())
            }
            refused => Reason::InvalidArgument.status(refused.to_string()),
        }
    }
}

pub struct ClientMetricsAdminService {
    authorizer: Arc<Authorizer>,
    telemetry: Arc<ClientTelemetry>,
}

impl ClientMetricsAdminService {
    pub fn server(
        authorizer: Arc<Authorizer>,
        telemetry: Arc<ClientTelemetry>,
    ) -> ClientMetricsAdminServer<ClientMetricsAdminService> {
        ClientMetricsAdminServer::new(Self { authorizer, telemetry })
    }

    fn authorize<T>(&self, request: &Request<T>, operation: Operation) -> Result<(), Status> {
        let principal = crate::service::principal_of(request);
        self.authorizer.check(&principal, operation, &Resource::cluster()).map_err(BrokerError::from)?;
        Ok(())
    }

    /// Subscription `name` as the node runs it now, if it exists.
    fn subscription(&self, name: &str) -> Option<v1::ClientMetricsSubscription> {
        let found = self.telemetry.subscriptions().into_iter().find(|(subscription, _)| subscription.name == name);
        found.map(|(subscription, source)| to_wire(subscription, source))
    }
}

fn to_wire(subscription: ClientMetricsSubscription, source: SubscriptionSource) -> v1::ClientMetricsSubscription {
    v1::ClientMetricsSubscription {
        name: subscription.name,
        metrics: subscription.metrics,
        interval_ms: subscription.interval_ms,
        r#match: subscription.matches.into_iter().collect(),
        node_setting: source == SubscriptionSource::NodeSettings,
    }
}

/// The request's changes as the store takes them: by Kafka key name, a value set or `None` removed.
fn changes_of(asked: &AlterClientMetricsRequest) -> Result<Vec<(String, Option<String>)>, Status> {
    let mut changes = Vec::new();
    let interval = asked.interval_ms.map(|ms| ms.to_string());
    for (key, value, remove) in [
        (SubscriptionKey::Metrics, asked.metrics.clone(), asked.remove_metrics),
        (SubscriptionKey::IntervalMs, interval, asked.remove_interval_ms),
        (SubscriptionKey::Match, asked.r#match.clone(), asked.remove_match),
    ] {
        let name = key.kafka_name();
        match (value, remove) {
            (Some(_), true) => {
                return Err(Reason::InvalidArgument.status(format!("{name} is set or removed, not both")))
            }
            (Some(value), false) => changes.push((name.to_owned(), Some(value))),
            (None, true) => changes.push((name.to_owned(), None)),
            (None, false) => {}
        }
    }
    if changes.is_empty() {
        return Err(Reason::InvalidArgument.status("nothing to change: set or remove metrics, interval.ms or match"));
    }
    Ok(changes)
}

#[tonic::async_trait]
impl ClientMetricsAdmin for ClientMetricsAdminService {
    async fn alter_client_metrics(
        &self,
        request: Request<AlterClientMetricsRequest>,
    ) -> Result<Response<AlterClientMetricsResponse>, Status> {
        self.authorize(&request, Operation::AlterConfigs)?;
        let by = crate::service::principal_of(&request);
        let asked = request.into_inner();
        let changes = changes_of(&asked)?;
        let telemetry = Arc::clone(&self.telemetry);
        let (name, validate_only) = (asked.name.clone(), asked.validate_only);
        tokio::task::spawn_blocking(move || telemetry.alter_subscription(&name, &changes, validate_only))
            .await
            .map_err(|err| Reason::Internal.status(format!("the subscription store's task failed: {err}")))??;
        if !asked.validate_only {
            tracing::info!(principal = %by, subscription = %asked.name, "client metrics subscription changed");
        }
        Ok(Response::new(AlterClientMetricsResponse { subscription: self.subscription(&asked.name) }))
    }

    async fn list_client_metrics(
        &self,
        request: Request<ListClientMetricsRequest>,
    ) -> Result<Response<v1::ListClientMetricsResponse>, Status> {
        self.authorize(&request, Operation::DescribeConfigs)?;
        let subscriptions =
            self.telemetry.subscriptions().into_iter().map(|(subscription, source)| to_wire(subscription, source));
        Ok(Response::new(v1::ListClientMetricsResponse { subscriptions: subscriptions.collect() }))
    }
}
