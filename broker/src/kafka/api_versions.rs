//! ApiVersions: the APIs and version ranges this broker implements, exactly; a client picks from them.

use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiKey, ApiVersionsResponse};
use kafka_protocol::ResponseError;

/// Every API served, with the versions implemented (docs/kafka.md lists them with what differs from Kafka).
/// Produce from v3 and Fetch from v4 are the record-batch-v2 versions (older ones carry message sets, which
/// rill does not store). Produce v10 carries KIP-951's leader hints; v11 only tells that the client takes
/// TRANSACTION_ABORTABLE, which rill never answers; v12 is transaction protocol v2's (KIP-890), not served. Fetch
/// v13 names topics by id (KIP-516), v14 only tells that the client takes a tiered-storage error rill never sends,
/// v15 moves a broker's replica id (consumers send none), v16 carries the leaders' endpoints (KIP-951), v17 adds
/// a follower's replica directory id (KIP-853, tagged: consumers send none, and rill's followers do not fetch
/// over Kafka's protocol).
pub const SUPPORTED: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 3, 11),
    (ApiKey::Fetch, 4, 17),
    // v7 asks -3 (largest timestamp, KIP-734), v8 -4 (earliest local), v9 -5 (latest tiered: none, as Kafka
    // answers without tiered storage); v10 (-6, earliest pending upload, KIP-1023) is not served.
    (ApiKey::ListOffsets, 1, 9),
    // KIP-320's truncation check after a leader change: v2 is the first with `current_leader_epoch` (librdkafka
    // sends v2; Kafka 4.0 dropped v0–v1, KIP-896), v4 is flexible and what the Java consumer sends.
    (ApiKey::OffsetForLeaderEpoch, 2, 4),
    // v0 still serves in Kafka 4 and is what clients of Kafka 2.1's time send without asking ApiVersions first
    // (Sarama's ClusterAdmin.ListTopics, for one); v13 adds only a top-level error code (KIP-1102's
    // REBOOTSTRAP_REQUIRED, which rill never answers: 0).
    (ApiKey::Metadata, 0, 13),
    (ApiKey::ApiVersions, 0, 3),
    (ApiKey::InitProducerId, 0, 4),
    (ApiKey::AddPartitionsToTxn, 0, 3),
    (ApiKey::AddOffsetsToTxn, 0, 3),
    (ApiKey::EndTxn, 0, 3),
    (ApiKey::TxnOffsetCommit, 0, 3),
    (ApiKey::DescribeProducers, 0, 0),
    // What `kafka-transactions.sh abort` sends a partition's leader (Kafka 4 serves v1 only).
    (ApiKey::WriteTxnMarkers, 1, 1),
    (ApiKey::DescribeTransactions, 0, 0),
    (ApiKey::ListTransactions, 0, 1),
    // The group coordinator (docs/kafka.md): FindCoordinator v4 batches keys; OffsetCommit v9 and OffsetFetch v9
    // carry KIP-848 member epochs, checked in a KIP-848 group.
    (ApiKey::FindCoordinator, 0, 4),
    (ApiKey::OffsetCommit, 2, 9),
    (ApiKey::OffsetFetch, 1, 9),
    (ApiKey::OffsetDelete, 0, 0),
    (ApiKey::ListGroups, 0, 5),
    (ApiKey::DescribeGroups, 0, 5),
    (ApiKey::DeleteGroups, 0, 2),
    (ApiKey::JoinGroup, 0, 9),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 5),
    // KIP-848's broker-assigned groups (`group.protocol=consumer`); v1 is what librdkafka 2.12 and Kafka 4.0 send.
    (ApiKey::ConsumerGroupHeartbeat, 0, 1),
    (ApiKey::ConsumerGroupDescribe, 0, 1),
    // Share groups (KIP-932, `share_groups/`): v1 is the first version Kafka 4.1 made stable, and what librdkafka
    // 2.15's share consumer sends. DescribeShareGroupOffsets v0 is the codec's.
    (ApiKey::ShareGroupHeartbeat, 1, 1),
    (ApiKey::ShareGroupDescribe, 1, 1),
    (ApiKey::ShareFetch, 1, 1),
    (ApiKey::ShareAcknowledge, 1, 1),
    (ApiKey::DescribeShareGroupOffsets, 0, 0),
    (ApiKey::AlterShareGroupOffsets, 0, 0),
    (ApiKey::DeleteShareGroupOffsets, 0, 0),
    // Topic administration; DeleteTopics v6 names topics by name or id; DescribeCluster v2 adds fenced brokers of
    // KRaft controllers.
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 6),
    // Every version the codec has (v2 is flexible); on a cluster at the partition's leader (`delete_records.rs`).
    (ApiKey::DeleteRecords, 0, 2),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::DescribeConfigs, 1, 4),
    // Topic settings changed while the topic serves (`topic_config.rs`): every version the codec has. AlterConfigs
    // v2 and IncrementalAlterConfigs v1 are the flexible ones.
    (ApiKey::AlterConfigs, 0, 2),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    (ApiKey::DescribeCluster, 0, 1),
    // Topic sizes on disk, as Kafka UIs and `kafka-log-dirs.sh` read them; v0 went with Kafka 4.0 (KIP-896).
    (ApiKey::DescribeLogDirs, 1, 4),
    // Changing a cluster (docs/cluster.md), on the controller leader: preferred (and refused unclean) elections,
    // and KIP-455's reassignments (v1 adds `allow_replication_factor_change`, KIP-860). Every version the codec
    // has; Kafka 4.1 has no more.
    (ApiKey::ElectLeaders, 0, 2),
    (ApiKey::AlterPartitionReassignments, 0, 1),
    (ApiKey::ListPartitionReassignments, 0, 0),
    // Kafka's ACL APIs (KIP-140, KIP-290 prefixes from v1); v0 (literal names only) went with Kafka 4.0 (KIP-896),
    // and librdkafka and the Java AdminClient both speak v1. v2 and v3 are flexible.
    (ApiKey::DescribeAcls, 1, 3),
    (ApiKey::CreateAcls, 1, 3),
    (ApiKey::DeleteAcls, 1, 3),
    // Client quotas (KIP-546): every version the codec has; v1 is flexible.
    (ApiKey::DescribeClientQuotas, 0, 1),
    (ApiKey::AlterClientQuotas, 0, 1),
    // SCRAM users (KIP-554), `rill user`'s store: the one version Kafka has.
    (ApiKey::DescribeUserScramCredentials, 0, 0),
    (ApiKey::AlterUserScramCredentials, 0, 0),
    // SASL (only advertised with `auth.kafka_sasl_mechanisms` set): SaslHandshake v0 is followed by raw SASL
    // frames instead of SaslAuthenticate (`sasl.rs`). librdkafka 2.0 (Debian's kcat) refuses SCRAM and PLAIN
    // unless v0 is advertised, though it then sends v1.
    (ApiKey::SaslHandshake, 0, 1),
    (ApiKey::SaslAuthenticate, 0, 2),
    // Client metrics (KIP-714, `client_telemetry.rs`): a client that sees them asks what to push, and is asked
    // for nothing until a subscription matches it. Offered always, as by a Kafka broker with a telemetry receiver,
    // so a subscription set while clients run reaches them at their next ask.
    (ApiKey::GetTelemetrySubscriptions, 0, 0),
    (ApiKey::PushTelemetry, 0, 0),
    // v0 lists the client metrics subscriptions (KIP-714's ListClientMetricsResources), v1 any config resource
    // type (KIP-1142).
    (ApiKey::ListConfigResources, 0, 1),
    // The controller quorum as Kafka's KRaft quorum (`kafka-metadata-quorum.sh`); v2 (KIP-853) names the voters'
    // endpoints.
    (ApiKey::DescribeQuorum, 0, 2),
    // Metadata's topics a page at a time (KIP-966), which Java's AdminClient describes topics with from 3.8.
    (ApiKey::DescribeTopicPartitions, 0, 0),
];

/// The APIs only a broker with SASL on serves.
fn is_sasl_api(key: ApiKey) -> bool {
    matches!(key, ApiKey::SaslHandshake | ApiKey::SaslAuthenticate)
}

/// The versions of `api_key` served, if it is served at all.
pub fn supported_versions(api_key: i16) -> Option<(i16, i16)> {
    SUPPORTED.iter().find(|(key, _, _)| *key as i16 == api_key).map(|&(_, min, max)| (min, max))
}

/// The answer to an ApiVersions request of any version. A client that sent a version above the highest served
/// gets UNSUPPORTED_VERSION with the list anyway, which it reads as v0 and then retries at a version it finds
/// there (the caller encodes this answer at v0 in that case).
pub fn answer(is_version_supported: bool, is_sasl_on: bool) -> ApiVersionsResponse {
    let api_keys = SUPPORTED
        .iter()
        .filter(|(key, _, _)| is_sasl_on || !is_sasl_api(*key))
        .map(|&(key, min, max)| {
            ApiVersion::default().with_api_key(key as i16).with_min_version(min).with_max_version(max)
        })
        .collect();
    let error_code = if is_version_supported { 0 } else { ResponseError::UnsupportedVersion.code() };
    ApiVersionsResponse::default().with_error_code(error_code).with_api_keys(api_keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advertised_versions_are_ones_the_codec_can_decode() {
        for &(key, min, max) in SUPPORTED {
            let valid = key.valid_versions();
            assert!(valid.min <= min && max <= valid.max, "{key:?} {min}..={max} outside {valid:?}");
        }
    }

    #[test]
    fn an_unsupported_version_is_answered_with_the_list_and_unsupported_version() {
        let answer = answer(false, true);
        assert_eq!(answer.error_code, 35);
        assert_eq!(answer.api_keys.len(), SUPPORTED.len());
        assert_eq!(supported_versions(ApiKey::Produce as i16), Some((3, 11)));
        assert_eq!(supported_versions(ApiKey::EndTxn as i16), Some((0, 3)));
        assert_eq!(supported_versions(ApiKey::WriteTxnMarkers as i16), Some((1, 1)));
        assert_eq!(supported_versions(ApiKey::AlterPartition as i16), None);
    }

    #[test]
    fn sasl_apis_are_advertised_only_with_sasl_on() {
        let has_sasl =
            |answer: &ApiVersionsResponse| answer.api_keys.iter().any(|k| k.api_key == ApiKey::SaslHandshake as i16);
        assert!(has_sasl(&answer(true, true)));
        assert!(!has_sasl(&answer(true, false)));
        assert_eq!(answer(true, false).api_keys.len(), SUPPORTED.len() - 2);
    }
}
