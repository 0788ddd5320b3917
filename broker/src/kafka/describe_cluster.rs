//! DescribeCluster (v0–v1): the cluster as Metadata describes it: its id, its brokers (a single node: itself at
//! its advertised address; a cluster: every alive node at its cluster address) and its controller (the
//! controller quorum's leader on a cluster), each with its rack. Only the brokers' endpoints are described (endpoint type 1); a
//! request for the controllers' (2) gets UNSUPPORTED_ENDPOINT_TYPE, as a Kafka broker answers it.

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};
use kafka_protocol::ResponseError;

use super::metadata::{cluster_brokers, cluster_id, controller_id, this_broker, Broker};
use super::topic_configs::text;
use super::KafkaContext;

const ENDPOINT_BROKERS: i8 = 1;
/// Kafka's "authorized operations not requested" marker.
const OPERATIONS_NOT_REQUESTED: i32 = i32::MIN;

pub fn answer(kafka: &KafkaContext, request: &DescribeClusterRequest) -> DescribeClusterResponse {
    let answer = DescribeClusterResponse::default()
        .with_endpoint_type(request.endpoint_type)
        .with_cluster_authorized_operations(OPERATIONS_NOT_REQUESTED);
    if request.endpoint_type != ENDPOINT_BROKERS {
        return answer
            .with_error_code(ResponseError::UnsupportedEndpointType.code())
            .with_error_message(Some(text("rill describes its brokers' endpoints (type 1) only")));
    }
    let broker = |broker: Broker| {
        DescribeClusterBroker::default()
            .with_broker_id(broker.id)
            .with_host(text(broker.host))
            .with_port(broker.port)
            .with_rack(broker.rack.map(text))
    };
    match &kafka.node.replication {
        Some(replication) => {
            let metadata = replication.metadata();
            answer
                .with_cluster_id(text(cluster_id(Some(&metadata))))
                .with_controller_id(controller_id(replication))
                .with_brokers(cluster_brokers(&metadata).into_iter().map(broker).collect())
        }
        None => answer
            .with_cluster_id(text(cluster_id(None)))
            .with_controller_id(BrokerId(kafka.node_id))
            .with_brokers(vec![broker(this_broker(kafka))]),
    }
}
