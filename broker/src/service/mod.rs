//! The gRPC services, one file per service. Each handler turns a request into calls on [`Node`] and returns
//! `Result<_, BrokerError>`; the conversion to `tonic::Status` happens in `error.rs`, nowhere else.

mod admin;
pub(crate) mod group_admin;
mod groups;
mod produce;
mod read;
mod records;
mod records_route;

use std::sync::Arc;

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
