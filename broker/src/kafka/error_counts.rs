//! The error codes a Kafka response carries, for `rill_kafka_request_errors_total{api, code}`.
//!
//! Kafka answers most failures inside a successful response: a code per partition (Produce, Fetch, ListOffsets,
//! OffsetCommit, ...), per topic, per group, or one for the request. Like Kafka's own `ErrorsPerSec` metric
//! (`AbstractResponse.errorCounts`), every non-zero code counts once per place it appears, so a Produce refused
//! for three partitions counts three. Walking a response is a loop over what it already holds: no allocation.

use kafka_protocol::messages::*;

/// A response whose error codes can be listed.
pub trait ErrorCodes {
    /// Calls `count` with every error code in the response, zeros included (the caller skips them).
    fn each_error_code(&self, count: &mut dyn FnMut(i16));
}

/// Responses with one code for the whole request.
macro_rules! request_level {
    ($($response:ty),* $(,)?) => {$(
        impl ErrorCodes for $response {
            fn each_error_code(&self, count: &mut dyn FnMut(i16)) {
                count(self.error_code);
            }
        }
    )*};
}

request_level!(
    ApiVersionsResponse,
    InitProducerIdResponse,
    JoinGroupResponse,
    SyncGroupResponse,
    HeartbeatResponse,
    ListGroupsResponse,
    ConsumerGroupHeartbeatResponse,
    ShareGroupHeartbeatResponse,
    DescribeClusterResponse,
    DescribeAclsResponse,
    DescribeClientQuotasResponse,
    AddOffsetsToTxnResponse,
    EndTxnResponse,
    GetTelemetrySubscriptionsResponse,
    PushTelemetryResponse,
    ListConfigResourcesResponse,
);

impl ErrorCodes for AddPartitionsToTxnResponse {
    fn each_error_code(&self, count: &mut dyn FnMut(i16)) {
        let partitions = self.results_by_topic_v3_and_below.iter().flat_map(|t| &t.results_by_partition);
        partitions.for_each(|p| count(p.partition_error_code));
    }
}

impl ErrorCodes for ListTransactionsResponse {
    fn each_error_code(&self, count: &mut dyn FnMut(i16)) {
        count(self.error_code);
    }
}

impl ErrorCodes for DescribeTransactionsResponse {
    fn each_error_code(&self, count: &mut dyn FnMut(i16)) {
        self.transaction_states.iter().for_each(|t| count(t.error_code));
    }
}

impl ErrorCodes for DescribeProducersResponse {
    fn each_error_code(&self, count: &mut dyn FnMut(i16)) {
        self.topics.iter().flat_map(|t| &t.partitions).for_each(|p| count(p.error_code));
    }
}

impl ErrorCodes for DescribeTopicPartitionsResponse {
    fn each_error_code(&self, count: &mut dyn FnMut(i16)) {
        for topic in &self.topics {
            count(topic.error_code);
            topic.partitions.iter().for_each(|p| count(p.error_code));
        }
    }
}

impl ErrorCodes for DescribeQuorumResponse {
    fn each_error_code(&self, count: &mut dyn FnMut(i16)) {
        count(self.error_code);
        self.topics.iter().flat_map(|t| &t.partitions).for_each(|p| count(p.error_code));
    }
}

impl ErrorCodes for WriteTxnMarkersResponse {
    fn each_error_code(&self, count: &mut dyn FnMut(i16)) {
        self.markers.iter().flat_map(|m| &m.topics).flat_map(|t| &t.partitions).for_each(|p| count(p.error_code));
    }
}

impl ErrorCodes for TxnOffsetCommitResponse {
    fn each_error_code(&self, count: &mut dyn FnMut(i16)) {
        self.topics.iter().flat_map(|t| &t.partitions).for_each(|p| count(p.error_code));
    }
}

impl ErrorCodes for AlterClientQuotasResponse {
    fn each_error_code(&self, count: &mut dyn FnMut(i16)) {
        self.entries.iter().for_each(|e| count(e.error_code));
    }
}

impl ErrorCodes for DescribeUserScramCredentialsResponse {
    fn each_error_code(&self, count: &mut dyn FnMut(i16)) {
        count(self.error_code);
        self.results.iter().for_each(|r| count(r.error_code));
    }
}

impl ErrorCodes for AlterUserScramCredentialsResponse {
    fn each_error_code(&self, count: &mut dyn FnMut(i16)) {
        self.results.iter().for_each(|r| count(r.error_code));
    }
}

impl ErrorCodes for ProduceResponse {
    fn each_error_code(&self, count: &mut dyn FnMut(i16)) {
        self.responses.iter().flat_map(|t| &t.partition_responses).for_each(|p| count(p.error_code));
    }
}

impl ErrorCodes for FetchResponse {
    fn each_error_code(&self, count: &mut dyn FnMut(i16)) {
        count(self.error_code);
        self.responses.iter().flat_map(|t| &t.partitions).for_each(|p| count(p.error_code));
    }
}

impl ErrorCodes for ListOffsetsResponse {
    fn each_error_code(&self, count: &mut dyn FnMut(i16)) {
        self.topics.iter().flat_map(|t| &t.partitions).for_each(|p| count(p.error_code));
    }
}

impl ErrorCodes for OffsetForLeaderEpochResponse {
    fn each_error_code(&self, count: &mut dyn FnMut(i16)) {
        self.topics.iter().flat_map(|t| &t.partitions).for_each(|p| count(p.error_code));
    }
}

impl ErrorCodes for MetadataResponse {
    fn each_error_code(&self, count: &mut dyn FnMut(i16)) {
        for topic in &self.topics {
            count(topic.error_code);
            topic.partitions.iter().for_each(|p| count(p.error_code));
        }
    }
}

impl ErrorCodes for OffsetCommitResponse {
    fn each_error_code(&self, count: &mut dyn FnMut(i16)) {
        self.topics.iter().flat_map(|t| &t.partitions).for_each(|p| count(p.error_code));
    }
}

impl ErrorCodes for OffsetFetchResponse {
    fn each_error_code(&self, count: &mut dyn FnMut(i16)) {
        count(self.error_code);
        self.topics.iter().flat_map(|t| &t.partitions).for_each(|p| count(p.error_code));
        for group in &self.groups {
            count(group.error_code);
            group.topics.iter().flat_map(|t| &t.partitions).for_each(|p| count(p.error_code));
        }
    }
}

impl ErrorCodes for OffsetDeleteResponse {
    fn each_error_code(&self, count: &mut dyn FnMut(i16)) {
        count(self.error_code);
        self.topics.iter().flat_map(|t| &t.partitions).for_each(|p| count(p.error_code));
    }
}

impl ErrorCodes for DeleteRecordsResponse {
    fn each_error_code(&self, count: &mut dyn FnMut(i16)) {
        self.topics.iter().flat_map(|t| &t.partitions).for_each(|p| count(p.error_code));
    }
}

impl ErrorCodes for FindCoordinatorResponse {
    fn each_error_code(&self, count: &mut dyn FnMut(i16)) {
        // v0-3 answer in the top-level code, v4+ per coordinator key; the other is left at 0.
        count(self.error_code);
        self.coordinators.iter().for_each(|c| count(c.error_code));
    }
}

impl ErrorCodes for DescribeGroupsResponse {
    fn each_error_code(&self, count: &mut dyn FnMut(i16)) {
        self.groups.iter().for_each(|g| count(g.error_code));
    }
}

impl ErrorCodes for ConsumerGroupDescribeResponse {
    fn each_error_code(&self, count: &mut dyn FnMut(i16)) {
        self.groups.iter().for_each(|g| count(g.error_code));
    }
}

impl ErrorCodes for ShareGroupDescribeResponse {
    fn each_error_code(&self, count: &mut dyn FnMut(i16)) {
        self.groups.iter().for_each(|g| count(g.error_code));
    }
}

impl ErrorCodes for DescribeShareGroupOffsetsResponse {
    fn each_error_code(&self, count: &mut dyn FnMut(i16)) {
        for group in &self.groups {
            count(group.error_code);
            group.topics.iter().flat_map(|t| &t.partitions).for_each(|p| count(p.error_code));
        }
    }
}

/// A share fetch counts its request's code, each partition's, and each partition's acknowledgement's.
impl ErrorCodes for ShareFetchResponse {
    fn each_error_code(&self, count: &mut dyn FnMut(i16)) {
        count(self.error_code);
        for partition in self.responses.iter().flat_map(|t| &t.partitions) {
            count(partition.error_code);
            count(partition.acknowledge_error_code);
        }
    }
}

impl ErrorCodes for AlterShareGroupOffsetsResponse {
    fn each_error_code(&self, count: &mut dyn FnMut(i16)) {
        count(self.error_code);
        self.responses.iter().flat_map(|t| &t.partitions).for_each(|p| count(p.error_code));
    }
}

impl ErrorCodes for DeleteShareGroupOffsetsResponse {
    fn each_error_code(&self, count: &mut dyn FnMut(i16)) {
        count(self.error_code);
        self.responses.iter().for_each(|t| count(t.error_code));
    }
}

impl ErrorCodes for ShareAcknowledgeResponse {
    fn each_error_code(&self, count: &mut dyn FnMut(i16)) {
        count(self.error_code);
        self.responses.iter().flat_map(|t| &t.partitions).for_each(|p| count(p.error_code));
    }
}

impl ErrorCodes for DeleteGroupsResponse {
    fn each_error_code(&self, count: &mut dyn FnMut(i16)) {
        self.results.iter().for_each(|g| count(g.error_code));
    }
}

impl ErrorCodes for LeaveGroupResponse {
    fn each_error_code(&self, count: &mut dyn FnMut(i16)) {
        count(self.error_code);
        self.members.iter().for_each(|m| count(m.error_code));
    }
}

impl ErrorCodes for CreateTopicsResponse {
    fn each_error_code(&self, count: &mut dyn FnMut(i16)) {
        self.topics.iter().for_each(|t| count(t.error_code));
    }
}

impl ErrorCodes for DeleteTopicsResponse {
    fn each_error_code(&self, count: &mut dyn FnMut(i16)) {
        self.responses.iter().for_each(|t| count(t.error_code));
    }
}

impl ErrorCodes for CreatePartitionsResponse {
    fn each_error_code(&self, count: &mut dyn FnMut(i16)) {
        self.results.iter().for_each(|t| count(t.error_code));
    }
}

impl ErrorCodes for DescribeConfigsResponse {
    fn each_error_code(&self, count: &mut dyn FnMut(i16)) {
        self.results.iter().for_each(|r| count(r.error_code));
    }
}

impl ErrorCodes for AlterConfigsResponse {
    fn each_error_code(&self, count: &mut dyn FnMut(i16)) {
        self.responses.iter().for_each(|r| count(r.error_code));
    }
}

impl ErrorCodes for IncrementalAlterConfigsResponse {
    fn each_error_code(&self, count: &mut dyn FnMut(i16)) {
        self.responses.iter().for_each(|r| count(r.error_code));
    }
}

impl ErrorCodes for CreateAclsResponse {
    fn each_error_code(&self, count: &mut dyn FnMut(i16)) {
        self.results.iter().for_each(|r| count(r.error_code));
    }
}

impl ErrorCodes for DeleteAclsResponse {
    fn each_error_code(&self, count: &mut dyn FnMut(i16)) {
        for filter in &self.filter_results {
            count(filter.error_code);
            filter.matching_acls.iter().for_each(|acl| count(acl.error_code));
        }
    }
}

impl ErrorCodes for ElectLeadersResponse {
    fn each_error_code(&self, count: &mut dyn FnMut(i16)) {
        count(self.error_code);
        self.replica_election_results.iter().flat_map(|t| &t.partition_result).for_each(|p| count(p.error_code));
    }
}

impl ErrorCodes for AlterPartitionReassignmentsResponse {
    fn each_error_code(&self, count: &mut dyn FnMut(i16)) {
        count(self.error_code);
        self.responses.iter().flat_map(|t| &t.partitions).for_each(|p| count(p.error_code));
    }
}

impl ErrorCodes for DescribeLogDirsResponse {
    fn each_error_code(&self, count: &mut dyn FnMut(i16)) {
        count(self.error_code);
        self.results.iter().for_each(|dir| count(dir.error_code));
    }
}

impl ErrorCodes for ListPartitionReassignmentsResponse {
    fn each_error_code(&self, count: &mut dyn FnMut(i16)) {
        count(self.error_code);
    }
}

/// Counts `response`'s non-zero codes for `api` when the node records metrics.
pub fn count(kafka: &super::KafkaContext, api: ApiKey, response: &impl ErrorCodes) {
    if let Some(metrics) = &kafka.node.metrics {
        response.each_error_code(&mut |code| metrics.kafka.record_error_code(api as i16, code));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};

    #[test]
    fn a_produce_counts_each_refused_partition() {
        let partitions = [0, 3, 3, 0].map(|code| PartitionProduceResponse::default().with_error_code(code));
        let response = ProduceResponse::default()
            .with_responses(vec![TopicProduceResponse::default().with_partition_responses(partitions.to_vec())]);
        let mut codes = Vec::new();
        response.each_error_code(&mut |code| codes.push(code));
        assert_eq!(codes, [0, 3, 3, 0]);
    }
}
