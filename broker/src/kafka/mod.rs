//! The Kafka wire protocol, served on the same port as gRPC (docs/kafka.md).
//!
//! `listener.rs` tells a new connection's protocol from its first byte and hands gRPC ones to tonic;
//! `connection.rs` serves a Kafka one: size-prefixed frames (at most `max_request_bytes`), one request at a time
//! in order, as Kafka's own broker does, reading ahead one request while it answers (`request_buffer.rs`);
//! a Fetch answer's batches go out as the `Bytes` storage read, never copied into the frame (`response_frame.rs`). Each API has its file (`api_versions.rs`, `metadata.rs`, `produce.rs`,
//! `fetch.rs`, `list_offsets.rs`, `acls.rs`, ...) over the same `Node`; `sasl.rs` authenticates a connection when
//! `auth.kafka_sasl_mechanisms` asks for it, before anything else is served the gRPC services use, and `error.rs` is the one place a
//! `BrokerError` becomes a Kafka error code. Requests and responses are framed by the `kafka-protocol` crate;
//! record batches pass through as `Bytes`, never decoded or re-encoded here (produce checks them with the same
//! Kafka rules as the gRPC path).

mod acl_wire;
mod acls;
mod alter_configs;
mod api_versions;
mod bounds;
mod broker_configs;
mod client_quotas;
mod client_telemetry;
mod connection;
mod consumer_group_describe;
mod consumer_group_heartbeat;
mod consumer_protocol;
mod create_topics;
mod delete_records;
mod describe_cluster;
mod describe_configs;
mod describe_log_dirs;
mod describe_quorum;
mod describe_topic_partitions;
mod dispatch;
mod elect_leaders;
mod error;
mod error_counts;
mod fetch;
pub(crate) mod fetch_sessions;
mod find_coordinator;
mod framing;
mod group_errors;
mod groups_admin;
mod heartbeat;
mod init_producer_id;
mod join_group;
mod leader_epoch;
mod leader_hints;
mod list_config_resources;
mod list_offsets;
pub mod listener;
mod metadata;
mod mutation_quota;
mod offset_commit;
mod offset_delete;
mod offset_fetch;
mod offset_for_leader_epoch;
mod oversized;
mod partition_reassignments;
mod produce;
mod request_buffer;
mod request_time;
mod response_frame;
mod sasl;
mod share_fetch;
mod share_group_describe;
mod share_group_heartbeat;
mod share_group_offsets;
mod sync_group;
pub(crate) mod topic_configs;
mod topics_admin;
mod transactions;
mod transactions_admin;
mod user_scram;

use std::net::SocketAddr;
use std::sync::Arc;

use crate::auth::acl::{Operation, Resource};
use crate::auth::Principal;
use crate::config::parse_advertise;
use crate::node::Node;

/// What every Kafka connection shares: the node, and who this node says it is in Metadata.
pub struct KafkaContext {
    pub node: Arc<Node>,
    /// The node id Metadata names as every partition's leader.
    pub node_id: i32,
    pub advertised_host: String,
    pub advertised_port: u16,
    /// Failed SASL authentications per client address, which slow that address's next answers.
    pub auth_failures: crate::auth::backoff::FailureBackoff,
    /// This node's member of the controller quorum; `None` on a single node.
    pub controller: Option<Arc<crate::cluster::Controller>>,
}

impl KafkaContext {
    /// Allows `principal` `operation` on `resource`, or answers the Kafka code of the denial (TOPIC_, GROUP_ or
    /// CLUSTER_AUTHORIZATION_FAILED), counted and logged. One call per resource a request names.
    pub fn authorize(&self, principal: &Principal, operation: Operation, resource: &Resource<'_>) -> Result<(), i16> {
        self.node
            .authorizer
            .check(principal, operation, resource)
            .map_err(|denied| error::denied_code(denied.resource_type))
    }

    /// `advertise` if set; else the address the node listens on (with its real port), where an unspecified IP
    /// (0.0.0.0, ::) becomes 127.0.0.1: a client cannot connect to "any address", and nothing better is known.
    pub fn new(
        node: Arc<Node>,
        listen_addr: SocketAddr,
        controller: Option<Arc<crate::cluster::Controller>>,
    ) -> KafkaContext {
        let configured = node.config.advertise.as_deref().and_then(|advertise| parse_advertise(advertise).ok());
        let (advertised_host, advertised_port) = configured.unwrap_or_else(|| {
            let ip = if listen_addr.ip().is_unspecified() {
                std::net::IpAddr::from([127, 0, 0, 1])
            } else {
                listen_addr.ip()
            };
            (ip.to_string(), listen_addr.port())
        });
        let node_id = node.config.node_id.and_then(|id| i32::try_from(id).ok()).unwrap_or(0);
        KafkaContext { node, node_id, advertised_host, advertised_port, auth_failures: Default::default(), controller }
    }

    /// The controller, if this node leads it: the cluster-changing APIs (ElectLeaders, the partition
    /// reassignments) run there, where the CLI's calls run. Elsewhere NOT_CONTROLLER naming the leader (Kafka's
    /// answer before KIP-590): clients send these APIs to Metadata's controller id, which is the leader.
    pub fn leading_controller(&self) -> Result<&Arc<crate::cluster::Controller>, crate::error::BrokerError> {
        let Some(controller) = &self.controller else { return Err(crate::cluster::describe::single_node_refused()) };
        if controller.is_leader() {
            return Ok(controller);
        }
        let reason = match controller.current_leader_id() {
            Some(leader) => format!(
                "node {} is not the controller leader; node {leader} is (Metadata's controller id): send the request there",
                controller.node_id
            ),
            None => "no controller leader is elected (is a majority of the voters up?); retry".to_owned(),
        };
        Err(crate::error::BrokerError::ControllerUnavailable { reason })
    }
}
