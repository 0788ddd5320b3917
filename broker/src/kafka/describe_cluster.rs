//! DescribeCluster (v0–v1): the cluster as Metadata describes it, this node alone at its advertised address,
//! and its controller. Only the brokers' endpoints are described (endpoint type 1); a request for the
//! controllers' (2) gets UNSUPPORTED_ENDPOINT_TYPE, as a Kafka broker answers it.

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};
use kafka_protocol::ResponseError;

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
    let broker = DescribeClusterBroker::default()
        .with_broker_id(BrokerId(kafka.node_id))
        .with_host(text(kafka.advertised_host.clone()))
        .with_port(i32::from(kafka.advertised_port));
    // The cluster id Metadata gives.
    answer.with_cluster_id(text("rill")).with_controller_id(BrokerId(kafka.node_id)).with_brokers(vec![broker])
}
