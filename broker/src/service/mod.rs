//! The gRPC services, one file per service. Each handler turns a request into calls on [`Node`] and returns
//! `Result<_, BrokerError>`; the conversion to `tonic::Status` happens in `error.rs`, nowhere else.

mod admin;
pub(crate) mod group_admin;
mod groups;
mod produce;
mod produce_stream;
mod read;
mod records;
mod records_route;

use std::sync::Arc;

use crate::auth::acl::{Operation, Resource};
use crate::auth::Principal;
use crate::node::Node;

pub use group_admin::{expire_groups, follow_topic_changes};
pub(crate) use produce::produce;
pub use records_route::RecordsRoute;

/// Implements `TopicAdmin`, `Records` and `ConsumerGroups` over one shared [`Node`].
#[derive(Clone)]
pub struct RillService {
    node: Arc<Node>,
}

impl RillService {
    pub fn new(node: Arc<Node>) -> Self {
        Self { node }
    }
}

/// Who a gRPC request acts as: what the authentication layer put in its extensions (anonymous without one,
/// which only node-to-node calls lack, and those never come here).
pub(crate) fn principal_in(extensions: &http::Extensions) -> Principal {
    extensions.get::<Principal>().cloned().unwrap_or(Principal::Anonymous)
}

pub(crate) fn principal_of<T>(request: &tonic::Request<T>) -> Principal {
    request.extensions().get::<Principal>().cloned().unwrap_or(Principal::Anonymous)
}

/// Kafka's rule for creating a topic: CREATE on the cluster, or on the topic itself.
pub(crate) fn authorize_create_topic(node: &Node, principal: &Principal, topic: &str) -> crate::error::Result<()> {
    if node.authorizer.is_allowed(principal, Operation::Create, &Resource::cluster()) {
        return Ok(());
    }
    node.authorize(principal, Operation::Create, &Resource::topic(topic))
}
