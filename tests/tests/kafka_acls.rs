//! Kafka's DescribeAcls, CreateAcls and DeleteAcls on the broker's port (docs/security.md, "ACLs"), spoken raw
//! with the `kafka-protocol` crate: bindings created over every served version are described by Kafka's filters
//! (ANY, MATCH, LITERAL, PREFIXED, null principal and host) and deleted with the bindings each filter matched;
//! a binding rill cannot hold is refused in its own result with what is allowed, the rest of the request going
//! through; and with authorization on, only a principal with DESCRIBE (ALTER) on the cluster may describe
//! (change) them, a refusal naming the principal and the operation. A group's configs take DESCRIBE_CONFIGS and
//! ALTER_CONFIGS on the group.

use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use rill_tests::kafka_client::KafkaClient;
use rill_tests::{TestBroker, PASSWORD};

// Kafka's enum codes (ResourceType, PatternType, AclOperation, AclPermissionType).
const ANY: i8 = 1;
const TOPIC: i8 = 2;
const GROUP: i8 = 3;
const CLUSTER: i8 = 4;
const TRANSACTIONAL_ID: i8 = 5;
const MATCH: i8 = 2;
const LITERAL: i8 = 3;
const PREFIXED: i8 = 4;
const READ: i8 = 3;
const WRITE: i8 = 4;
const DESCRIBE: i8 = 8;
const DENY: i8 = 2;
const ALLOW: i8 = 3;

const INVALID_REQUEST: i16 = 42;
const CLUSTER_AUTHORIZATION_FAILED: i16 = 31;

fn text(value: &str) -> StrBytes {
    StrBytes::from_string(value.into())
}

/// One binding as (resource type, name, pattern type, principal, operation, permission), host `*`.
type Binding = (i8, &'static str, i8, &'static str, i8, i8);

fn creation(&(resource_type, name, pattern_type, principal, operation, permission): &Binding) -> AclCreation {
    AclCreation::default()
        .with_resource_type(resource_type)
        .with_resource_name(text(name))
        .with_resource_pattern_type(pattern_type)
        .with_principal(text(principal))
        .with_host(text("*"))
        .with_operation(operation)
        .with_permission_type(permission)
}

/// A filter on resource type, name and pattern type; ANY (or null) for the rest unless changed.
fn filter(resource_type: i8, name: Option<&str>, pattern_type: i8) -> DescribeAclsRequest {
    DescribeAclsRequest::default()
        .with_resource_type_filter(resource_type)
        .with_resource_name_filter(name.map(text))
        .with_pattern_type_filter(pattern_type)
        .with_principal_filter(None)
        .with_host_filter(None)
        .with_operation(ANY)
        .with_permission_type(ANY)
}

fn as_delete(filter: &DescribeAclsRequest) -> DeleteAclsFilter {
    DeleteAclsFilter::default()
        .with_resource_type_filter(filter.resource_type_filter)
        .with_resource_name_filter(filter.resource_name_filter.clone())
        .with_pattern_type_filter(filter.pattern_type_filter)
        .with_principal_filter(filter.principal_filter.clone())
        .with_host_filter(filter.host_filter.clone())
        .with_operation(filter.operation)
        .with_permission_type(filter.permission_type)
}

/// What a DescribeAcls answered, flattened and sorted, as (type, name, pattern, principal, host, op, permission).
fn described(response: &DescribeAclsResponse) -> Vec<(i8, String, i8, String, String, i8, i8)> {
    assert_eq!(response.error_code, 0, "{:?}", response.error_message);
    let mut acls: Vec<_> = response
        .resources
        .iter()
        .flat_map(|resource| {
            resource.acls.iter().map(|acl| {
                (
                    resource.resource_type,
                    resource.resource_name.to_string(),
                    resource.pattern_type,
                    acl.principal.to_string(),
                    acl.host.to_string(),
                    acl.operation,
                    acl.permission_type,
                )
            })
        })
        .collect();
    acls.sort();
    acls
}

fn names(response: &DescribeAclsResponse) -> Vec<String> {
    described(response).into_iter().map(|acl| format!("{}:{}:{}", acl.0, acl.1, acl.5)).collect()
}

async fn describe(client: &mut KafkaClient, version: i16, request: &DescribeAclsRequest) -> DescribeAclsResponse {
    client.call(ApiKey::DescribeAcls, version, request).await
}

const BINDINGS: [Binding; 6] = [
    (TOPIC, "orders.eu", LITERAL, "User:app", WRITE, ALLOW),
    (TOPIC, "orders.", PREFIXED, "User:app", READ, ALLOW),
    (TOPIC, "*", LITERAL, "User:*", DESCRIBE, ALLOW),
    (TOPIC, "orders.eu", LITERAL, "User:intern", WRITE, DENY),
    (GROUP, "orders.eu", LITERAL, "User:app", READ, ALLOW),
    (CLUSTER, "kafka-cluster", LITERAL, "User:ops", DESCRIBE, ALLOW),
];

#[tokio::test]
async fn bindings_created_over_kafka_are_selected_by_kafkas_filters_and_deleted_with_what_each_matched() {
    let broker = TestBroker::start().await;
    let addr = broker.handle.as_ref().expect("running").addr();
    let mut client = KafkaClient::connect(addr).await;

    // One binding per version, the rest in v3; one refused binding in the same request leaves the others stored.
    for (version, bindings) in [(1, &BINDINGS[..1]), (2, &BINDINGS[1..2])] {
        let request = CreateAclsRequest::default().with_creations(bindings.iter().map(creation).collect());
        let response: CreateAclsResponse = client.call(ApiKey::CreateAcls, version, &request).await;
        assert_eq!(response.results.len(), 1);
        assert_eq!(response.results[0].error_code, 0, "v{version}: {:?}", response.results[0].error_message);
    }
    let mut creations: Vec<AclCreation> = BINDINGS[2..].iter().map(creation).collect();
    creations.insert(1, creation(&(TOPIC, "orders.us", LITERAL, "User:app", READ, ALLOW)).with_host(text("10.0.0.7")));
    let response: CreateAclsResponse =
        client.call(ApiKey::CreateAcls, 3, &CreateAclsRequest::default().with_creations(creations)).await;
    let codes: Vec<i16> = response.results.iter().map(|r| r.error_code).collect();
    assert_eq!(codes, [0, INVALID_REQUEST, 0, 0, 0]);
    let message = response.results[1].error_message.as_deref().unwrap_or_default().to_string();
    assert!(message.contains("10.0.0.7") && message.contains("only * (every host)"), "{message}");

    let everything = filter(ANY, None, ANY);
    for version in 1..=3 {
        let all = described(&describe(&mut client, version, &everything).await);
        assert_eq!(all.len(), BINDINGS.len(), "v{version}: {all:?}");
    }
    let all = described(&describe(&mut client, 3, &everything).await);
    assert!(all.contains(&(TOPIC, "orders.".into(), PREFIXED, "User:app".into(), "*".into(), READ, ALLOW)), "{all:?}");
    assert!(all.contains(&(CLUSTER, "kafka-cluster".into(), LITERAL, "User:ops".into(), "*".into(), DESCRIBE, ALLOW)));

    // MATCH: every binding that applies to topic orders.eu (its literal ones, `*`, and the prefix orders.).
    let applying = describe(&mut client, 3, &filter(TOPIC, Some("orders.eu"), MATCH)).await;
    assert_eq!(names(&applying), ["2:*:8", "2:orders.:3", "2:orders.eu:4", "2:orders.eu:4"]);
    // ANY pattern with a name: that exact name, of any pattern type and (here) any resource type.
    let exact = describe(&mut client, 3, &filter(ANY, Some("orders.eu"), ANY)).await;
    assert_eq!(names(&exact), ["2:orders.eu:4", "2:orders.eu:4", "3:orders.eu:3"]);
    let prefixed = describe(&mut client, 3, &filter(ANY, None, PREFIXED)).await;
    assert_eq!(names(&prefixed), ["2:orders.:3"]);
    let literal_groups = describe(&mut client, 3, &filter(GROUP, None, LITERAL)).await;
    assert_eq!(names(&literal_groups), ["3:orders.eu:3"]);
    let denies = describe(&mut client, 3, &filter(ANY, None, ANY).with_permission_type(DENY)).await;
    assert_eq!(described(&denies)[0].3, "User:intern");
    let apps_writes = filter(ANY, None, ANY).with_principal_filter(Some(text("User:app"))).with_operation(WRITE);
    assert_eq!(names(&describe(&mut client, 3, &apps_writes).await), ["2:orders.eu:4"]);
    let other_host = filter(ANY, None, ANY).with_host_filter(Some(text("10.0.0.7")));
    assert!(described(&describe(&mut client, 3, &other_host).await).is_empty(), "rill keeps only host *");
    let transactional = describe(&mut client, 3, &filter(TRANSACTIONAL_ID, None, ANY)).await;
    assert!(described(&transactional).is_empty(), "no transactional id has an ACL yet");

    // A filter with a code no enum has is refused, with the values allowed; the connection serves on.
    let unknown = describe(&mut client, 3, &filter(ANY, None, 0)).await;
    assert_eq!(unknown.error_code, INVALID_REQUEST);
    let message = unknown.error_message.as_deref().unwrap_or_default().to_string();
    assert!(message.contains("MATCH (2), LITERAL (3) or PREFIXED (4)"), "{message}");

    // Each filter answers the bindings it removed; a bad filter is refused alone.
    let filters = vec![
        as_delete(&filter(TOPIC, Some("orders.eu"), MATCH).with_principal_filter(Some(text("User:app")))),
        as_delete(&filter(ANY, None, ANY).with_operation(42)),
        as_delete(&filter(CLUSTER, None, ANY)),
        as_delete(&filter(GROUP, Some("nothing-here"), LITERAL)),
    ];
    for version in [1, 3] {
        let request = DeleteAclsRequest::default().with_filters(filters.clone());
        let response: DeleteAclsResponse = client.call(ApiKey::DeleteAcls, version, &request).await;
        let results = &response.filter_results;
        let codes: Vec<i16> = results.iter().map(|r| r.error_code).collect();
        assert_eq!(codes, [0, INVALID_REQUEST, 0, 0], "v{version}");
        let message = results[1].error_message.as_deref().unwrap_or_default().to_string();
        assert!(message.contains("operation code 42") && message.contains("READ (3)"), "{message}");
        let matched = |i: usize| -> Vec<(String, i8)> {
            let mut acls: Vec<_> =
                results[i].matching_acls.iter().map(|acl| (acl.resource_name.to_string(), acl.operation)).collect();
            acls.sort();
            acls
        };
        if version == 1 {
            assert_eq!(matched(0), [("orders.".into(), READ), ("orders.eu".into(), WRITE)]);
            assert_eq!(matched(2), [("kafka-cluster".into(), DESCRIBE)]);
            let acl = &results[2].matching_acls[0];
            assert_eq!((acl.resource_type, acl.pattern_type, acl.permission_type), (CLUSTER, LITERAL, ALLOW));
            assert_eq!((acl.principal.as_str(), acl.host.as_str()), ("User:ops", "*"));
        } else {
            assert!(matched(0).is_empty() && matched(2).is_empty(), "deleted by the first request");
        }
        assert!(matched(3).is_empty());
    }
    let left = describe(&mut client, 3, &everything).await;
    assert_eq!(names(&left), ["2:*:8", "2:orders.eu:4", "3:orders.eu:3"]);
}

#[tokio::test]
async fn bindings_rill_cannot_hold_are_refused_each_with_what_is_allowed() {
    let broker = TestBroker::start().await;
    let mut client = KafkaClient::connect(broker.handle.as_ref().expect("running").addr()).await;
    let refused: [(AclCreation, &str); 7] = [
        (creation(&(TRANSACTIONAL_ID, "tx", LITERAL, "User:app", READ, ALLOW)), "it takes write, describe, all"),
        (creation(&(ANY, "t", LITERAL, "User:app", READ, ALLOW)), "CLUSTER (4) or TRANSACTIONAL_ID (5)"),
        (creation(&(TOPIC, "t", MATCH, "User:app", READ, ALLOW)), "LITERAL (3) or PREFIXED (4)"),
        (creation(&(TOPIC, "t", LITERAL, "User:app", ANY, ALLOW)), "IDEMPOTENT_WRITE (12)"),
        (
            creation(&(GROUP, "g", LITERAL, "User:app", WRITE, ALLOW)),
            "it takes read, delete, describe, describe_configs, alter_configs, all",
        ),
        (creation(&(CLUSTER, "mine", LITERAL, "User:app", DESCRIBE, ALLOW)), "literal name kafka-cluster"),
        (creation(&(TOPIC, "t", LITERAL, "Group:app", READ, ALLOW)), "use User:NAME"),
    ];
    let request = CreateAclsRequest::default().with_creations(refused.iter().map(|(c, _)| c.clone()).collect());
    let response: CreateAclsResponse = client.call(ApiKey::CreateAcls, 3, &request).await;
    assert_eq!(response.results.len(), refused.len());
    for (result, (_, words)) in response.results.iter().zip(&refused) {
        assert_eq!(result.error_code, INVALID_REQUEST, "{words}");
        let message = result.error_message.as_deref().unwrap_or_default();
        assert!(message.contains(words), "{message:?} should say {words:?}");
    }
    let all = describe(&mut client, 3, &filter(ANY, None, ANY)).await;
    assert!(described(&all).is_empty(), "nothing refused was stored");
}

/// A Kafka connection that authenticated as `user` with SASL PLAIN.

#[tokio::test]
async fn only_describe_on_the_cluster_lists_acls_and_only_alter_changes_them() {
    // Users first, with authorization off; then on, with admin a super user.
    let broker = TestBroker::start_authorizing(&[], &["admin", "ops"]).await;
    let addr = broker.handle.as_ref().expect("running").addr();

    let mut ops = KafkaClient::connect_as(addr, "ops", PASSWORD).await;
    let everything = filter(ANY, None, ANY);
    let refused = describe(&mut ops, 3, &everything).await;
    assert_eq!(refused.error_code, CLUSTER_AUTHORIZATION_FAILED);
    let message = refused.error_message.as_deref().unwrap_or_default().to_string();
    assert!(message.contains("User:ops") && message.contains("describe the cluster"), "{message}");
    let grant = CreateAclsRequest::default().with_creations(vec![creation(&(
        CLUSTER,
        "kafka-cluster",
        LITERAL,
        "User:ops",
        DESCRIBE,
        ALLOW,
    ))]);
    let refused: CreateAclsResponse = ops.call(ApiKey::CreateAcls, 3, &grant).await;
    assert_eq!(refused.results[0].error_code, CLUSTER_AUTHORIZATION_FAILED);
    let message = refused.results[0].error_message.as_deref().unwrap_or_default().to_string();
    assert!(message.contains("User:ops") && message.contains("alter the cluster"), "{message}");

    // The super user grants ops DESCRIBE on the cluster: ops may list, and still not change.
    let mut admin = KafkaClient::connect_as(addr, "admin", PASSWORD).await;
    let granted: CreateAclsResponse = admin.call(ApiKey::CreateAcls, 3, &grant).await;
    assert_eq!(granted.results[0].error_code, 0, "{:?}", granted.results[0].error_message);
    assert_eq!(names(&describe(&mut ops, 3, &everything).await), ["4:kafka-cluster:8"]);
    let delete = DeleteAclsRequest::default().with_filters(vec![as_delete(&everything)]);
    let refused: DeleteAclsResponse = ops.call(ApiKey::DeleteAcls, 3, &delete).await;
    assert_eq!(refused.filter_results[0].error_code, CLUSTER_AUTHORIZATION_FAILED);
    assert!(refused.filter_results[0].matching_acls.is_empty());
    assert_eq!(names(&describe(&mut admin, 3, &everything).await), ["4:kafka-cluster:8"], "nothing deleted");

    let deleted: DeleteAclsResponse = admin.call(ApiKey::DeleteAcls, 3, &delete).await;
    assert_eq!(deleted.filter_results[0].matching_acls.len(), 1);
    let refused = describe(&mut ops, 3, &everything).await;
    assert_eq!(refused.error_code, CLUSTER_AUTHORIZATION_FAILED, "the grant is gone");
}

#[tokio::test]
async fn only_write_on_a_transactional_id_lets_a_producer_use_it() {
    let broker = TestBroker::start_authorizing(&[], &["admin", "app"]).await;
    let addr = broker.handle.as_ref().expect("running").addr();
    let init = |id: &'static str| {
        InitProducerIdRequest::default()
            .with_transactional_id(Some(TransactionalId(StrBytes::from_static_str(id))))
            .with_transaction_timeout_ms(60_000)
    };
    let mut app = KafkaClient::connect_as(addr, "app", PASSWORD).await;
    let refused: InitProducerIdResponse = app.call(ApiKey::InitProducerId, 4, &init("app-1")).await;
    assert_eq!(refused.error_code, ResponseError::TransactionalIdAuthorizationFailed.code());
    let find = FindCoordinatorRequest::default().with_key(StrBytes::from_static_str("app-1")).with_key_type(1);
    let refused: FindCoordinatorResponse = app.call(ApiKey::FindCoordinator, 3, &find).await;
    assert_eq!(refused.error_code, ResponseError::TransactionalIdAuthorizationFailed.code());

    // WRITE on the prefix "app-" (which allows DESCRIBE too), granted by the super user.
    let mut admin = KafkaClient::connect_as(addr, "admin", PASSWORD).await;
    let grant = CreateAclsRequest::default().with_creations(vec![creation(&(
        TRANSACTIONAL_ID,
        "app-",
        PREFIXED,
        "User:app",
        WRITE,
        ALLOW,
    ))]);
    let granted: CreateAclsResponse = admin.call(ApiKey::CreateAcls, 3, &grant).await;
    assert_eq!(granted.results[0].error_code, 0, "{:?}", granted.results[0].error_message);
    let found: FindCoordinatorResponse = app.call(ApiKey::FindCoordinator, 3, &find).await;
    assert_eq!(found.error_code, 0);
    let initialised: InitProducerIdResponse = app.call(ApiKey::InitProducerId, 4, &init("app-1")).await;
    assert_eq!((initialised.error_code, initialised.producer_epoch), (0, 0));
    let other: InitProducerIdResponse = app.call(ApiKey::InitProducerId, 4, &init("billing-1")).await;
    assert_eq!(other.error_code, ResponseError::TransactionalIdAuthorizationFailed.code(), "outside the prefix");
}

const DESCRIBE_CONFIGS: i8 = 10;
const ALTER_CONFIGS: i8 = 11;
/// Kafka's config resource type of a group (KIP-848's group configs).
const GROUP_CONFIGS: i8 = 32;

fn alter_group(group: &str, key: &str, operation: i8, value: Option<&str>) -> IncrementalAlterConfigsRequest {
    use incremental_alter_configs_request::{AlterConfigsResource, AlterableConfig};
    let config =
        AlterableConfig::default().with_name(text(key)).with_config_operation(operation).with_value(value.map(text));
    let resource = AlterConfigsResource::default()
        .with_resource_type(GROUP_CONFIGS)
        .with_resource_name(text(group))
        .with_configs(vec![config]);
    IncrementalAlterConfigsRequest::default().with_resources(vec![resource])
}

fn describe_group(group: &str) -> DescribeConfigsRequest {
    let resource = describe_configs_request::DescribeConfigsResource::default()
        .with_resource_type(GROUP_CONFIGS)
        .with_resource_name(text(group))
        .with_configuration_keys(None);
    DescribeConfigsRequest::default().with_resources(vec![resource])
}

#[tokio::test]
async fn a_groups_configs_take_describe_configs_and_alter_configs_on_the_group() {
    let broker = TestBroker::start_authorizing(&[], &["admin", "ops"]).await;
    let addr = broker.handle.as_ref().expect("running").addr();
    let mut ops = KafkaClient::connect_as(addr, "ops", PASSWORD).await;
    let set_earliest = alter_group("mailers", "share.auto.offset.reset", 0, Some("earliest"));
    let refused: IncrementalAlterConfigsResponse = ops.call(ApiKey::IncrementalAlterConfigs, 1, &set_earliest).await;
    assert_eq!(refused.responses[0].error_code, ResponseError::GroupAuthorizationFailed.code());
    let refused: DescribeConfigsResponse = ops.call(ApiKey::DescribeConfigs, 4, &describe_group("mailers")).await;
    assert_eq!(refused.results[0].error_code, ResponseError::GroupAuthorizationFailed.code());
    assert!(refused.results[0].configs.is_empty(), "nothing of the group's configs shown");

    // DESCRIBE_CONFIGS on the group lets ops read them; changing them takes ALTER_CONFIGS.
    let mut admin = KafkaClient::connect_as(addr, "admin", PASSWORD).await;
    let grant = |operation| {
        CreateAclsRequest::default()
            .with_creations(vec![creation(&(GROUP, "mailers", LITERAL, "User:ops", operation, ALLOW))])
    };
    let granted: CreateAclsResponse = admin.call(ApiKey::CreateAcls, 3, &grant(DESCRIBE_CONFIGS)).await;
    assert_eq!(granted.results[0].error_code, 0, "{:?}", granted.results[0].error_message);
    let described: DescribeConfigsResponse = ops.call(ApiKey::DescribeConfigs, 4, &describe_group("mailers")).await;
    assert_eq!(described.results[0].error_code, 0, "{:?}", described.results[0].error_message);
    let refused: IncrementalAlterConfigsResponse = ops.call(ApiKey::IncrementalAlterConfigs, 1, &set_earliest).await;
    assert_eq!(refused.responses[0].error_code, ResponseError::GroupAuthorizationFailed.code());
    let granted: CreateAclsResponse = admin.call(ApiKey::CreateAcls, 3, &grant(ALTER_CONFIGS)).await;
    assert_eq!(granted.results[0].error_code, 0, "{:?}", granted.results[0].error_message);
    let altered: IncrementalAlterConfigsResponse = ops.call(ApiKey::IncrementalAlterConfigs, 1, &set_earliest).await;
    assert_eq!(altered.responses[0].error_code, 0, "{:?}", altered.responses[0].error_message);
    let described: DescribeConfigsResponse = ops.call(ApiKey::DescribeConfigs, 4, &describe_group("mailers")).await;
    let reset =
        described.results[0].configs.iter().find(|c| c.name.as_str() == "share.auto.offset.reset").expect("listed");
    assert_eq!((reset.value.as_ref().map(|v| v.as_str()), reset.config_source), (Some("earliest"), 8));

    // Refused as Kafka refuses them: APPEND (a group has no list key), AlterConfigs (the whole-set call).
    let append = alter_group("mailers", "share.auto.offset.reset", 2, Some("latest"));
    let refused: IncrementalAlterConfigsResponse = admin.call(ApiKey::IncrementalAlterConfigs, 1, &append).await;
    assert_eq!(refused.responses[0].error_code, ResponseError::InvalidConfig.code());
    let whole =
        AlterConfigsRequest::default().with_resources(vec![alter_configs_request::AlterConfigsResource::default()
            .with_resource_type(GROUP_CONFIGS)
            .with_resource_name(text("mailers"))
            .with_configs(vec![alter_configs_request::AlterableConfig::default()
                .with_name(text("share.auto.offset.reset"))
                .with_value(Some(text("latest")))])]);
    let refused: AlterConfigsResponse = admin.call(ApiKey::AlterConfigs, 2, &whole).await;
    assert_eq!(refused.responses[0].error_code, INVALID_REQUEST);
    let message = refused.responses[0].error_message.as_deref().unwrap_or_default().to_string();
    assert!(message.contains("IncrementalAlterConfigs"), "{message}");
}

/// Kafka's config resource type of a client metrics subscription (KIP-714).
const CLIENT_METRICS: i8 = 16;

fn alter_subscription(name: &str) -> IncrementalAlterConfigsRequest {
    use incremental_alter_configs_request::{AlterConfigsResource, AlterableConfig};
    let config =
        AlterableConfig::default().with_name(text("metrics")).with_config_operation(0).with_value(Some(text("*")));
    let resource = AlterConfigsResource::default()
        .with_resource_type(CLIENT_METRICS)
        .with_resource_name(text(name))
        .with_configs(vec![config]);
    IncrementalAlterConfigsRequest::default().with_resources(vec![resource])
}

#[tokio::test]
async fn client_metrics_subscriptions_take_describe_configs_and_alter_configs_on_the_cluster() {
    let broker = TestBroker::start_authorizing(&[], &["admin", "ops"]).await;
    let addr = broker.handle.as_ref().expect("running").addr();
    let mut ops = KafkaClient::connect_as(addr, "ops", PASSWORD).await;
    let refused: IncrementalAlterConfigsResponse =
        ops.call(ApiKey::IncrementalAlterConfigs, 1, &alter_subscription("all")).await;
    assert_eq!(refused.responses[0].error_code, ResponseError::ClusterAuthorizationFailed.code());
    let describe = DescribeConfigsRequest::default().with_resources(vec![
        describe_configs_request::DescribeConfigsResource::default()
            .with_resource_type(CLIENT_METRICS)
            .with_resource_name(text("all"))
            .with_configuration_keys(None),
    ]);
    let refused: DescribeConfigsResponse = ops.call(ApiKey::DescribeConfigs, 4, &describe).await;
    assert_eq!(refused.results[0].error_code, ResponseError::ClusterAuthorizationFailed.code());
    let list = ListConfigResourcesRequest::default();
    let refused: ListConfigResourcesResponse = ops.call(ApiKey::ListConfigResources, 1, &list).await;
    assert_eq!(refused.error_code, ResponseError::ClusterAuthorizationFailed.code());
    assert!(refused.config_resources.is_empty());

    let mut admin = KafkaClient::connect_as(addr, "admin", PASSWORD).await;
    let altered: IncrementalAlterConfigsResponse =
        admin.call(ApiKey::IncrementalAlterConfigs, 1, &alter_subscription("all")).await;
    assert_eq!(altered.responses[0].error_code, 0, "{:?}", altered.responses[0].error_message);
    let listed: ListConfigResourcesResponse = admin.call(ApiKey::ListConfigResources, 0, &list).await;
    let names: Vec<&str> = listed.config_resources.iter().map(|r| r.resource_name.as_str()).collect();
    assert_eq!(names, ["all"]);
}

const TOPIC_AUTHORIZATION_FAILED: i16 = 29;
const GROUP_AUTHORIZATION_FAILED: i16 = 30;
const DELETE: i8 = 6;

async fn grant(admin: &mut KafkaClient, binding: Binding) {
    let request = CreateAclsRequest::default().with_creations(vec![creation(&binding)]);
    let granted: CreateAclsResponse = admin.call(ApiKey::CreateAcls, 3, &request).await;
    assert_eq!(granted.results[0].error_code, 0, "{:?}", granted.results[0].error_message);
}

fn topics_in(metadata: &MetadataResponse) -> Vec<(String, i16)> {
    metadata.topics.iter().map(|t| (t.name.as_ref().map(|n| n.to_string()).unwrap_or_default(), t.error_code)).collect()
}

fn metadata_of(names: Option<&[&str]>) -> MetadataRequest {
    let asked = names.map(|names| {
        names
            .iter()
            .map(|name| metadata_request::MetadataRequestTopic::default().with_name(Some(TopicName(text(name)))))
            .collect()
    });
    MetadataRequest::default().with_topics(asked)
}

/// A cluster node lists only the topics a principal may describe, and answers a topic asked for that it may not
/// with TOPIC_AUTHORIZATION_FAILED whether or not it exists, as a single node does (and Kafka).
#[tokio::test]
async fn a_cluster_nodes_metadata_shows_only_the_topics_the_principal_may_describe() {
    let broker = rill_tests::cluster_of_one_authorizing(&["admin", "ops"]).await;
    let addr = broker.handle.as_ref().expect("running").addr();
    let mut admin = KafkaClient::connect_as(addr, "admin", PASSWORD).await;
    // The quorum forms again after the restart: the super user sees the topic once it has.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let seen: MetadataResponse = admin.call(ApiKey::Metadata, 12, &metadata_of(None)).await;
        if topics_in(&seen).contains(&("orders".to_owned(), 0)) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "orders not listed for the super user: {seen:?}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let mut ops = KafkaClient::connect_as(addr, "ops", PASSWORD).await;
    for version in [1, 9, 12] {
        let listed: MetadataResponse = ops.call(ApiKey::Metadata, version, &metadata_of(None)).await;
        assert_eq!(topics_in(&listed), [], "v{version}: nothing ops may describe");
        let asked: MetadataResponse =
            ops.call(ApiKey::Metadata, version, &metadata_of(Some(&["orders", "nope"]))).await;
        assert_eq!(
            topics_in(&asked),
            [("orders".to_owned(), TOPIC_AUTHORIZATION_FAILED), ("nope".to_owned(), TOPIC_AUTHORIZATION_FAILED)],
            "v{version}"
        );
        assert!(asked.topics[0].partitions.is_empty(), "no placement shown");
    }
    grant(&mut admin, (TOPIC, "orders", LITERAL, "User:ops", DESCRIBE, ALLOW)).await;
    let listed: MetadataResponse = ops.call(ApiKey::Metadata, 12, &metadata_of(None)).await;
    assert_eq!(topics_in(&listed), [("orders".to_owned(), 0)]);
    assert_eq!(listed.topics[0].partitions.len(), 2);
}

/// Group billing's committed offset of `orders`-0 (-1: none).
async fn billing_offset(admin: &mut KafkaClient) -> i64 {
    let fetch = OffsetFetchRequest::default().with_group_id(GroupId(text("billing"))).with_topics(Some(vec![
        offset_fetch_request::OffsetFetchRequestTopic::default()
            .with_name(TopicName(text("orders")))
            .with_partition_indexes(vec![0]),
    ]));
    let fetched: OffsetFetchResponse = admin.call(ApiKey::OffsetFetch, 7, &fetch).await;
    fetched.topics[0].partitions[0].committed_offset
}

/// OffsetDelete takes DELETE on the group and READ on each topic, and ConsumerGroupDescribe DESCRIBE on the group,
/// as in Kafka: a refused topic keeps its offsets.
#[tokio::test]
async fn deleting_offsets_takes_delete_on_the_group_and_read_on_the_topic_and_describing_describe() {
    let broker = TestBroker::start_authorizing(&[("orders", 1)], &["admin", "ops"]).await;
    let addr = broker.handle.as_ref().expect("running").addr();
    let mut admin = KafkaClient::connect_as(addr, "admin", PASSWORD).await;
    let commit = OffsetCommitRequest::default()
        .with_group_id(GroupId(text("billing")))
        .with_generation_id_or_member_epoch(-1)
        .with_topics(vec![offset_commit_request::OffsetCommitRequestTopic::default()
            .with_name(TopicName(text("orders")))
            .with_partitions(vec![offset_commit_request::OffsetCommitRequestPartition::default()
                .with_partition_index(0)
                .with_committed_offset(7)])]);
    let committed: OffsetCommitResponse = admin.call(ApiKey::OffsetCommit, 8, &commit).await;
    assert_eq!(committed.topics[0].partitions[0].error_code, 0);
    let delete = OffsetDeleteRequest::default().with_group_id(GroupId(text("billing"))).with_topics(vec![
        offset_delete_request::OffsetDeleteRequestTopic::default()
            .with_name(TopicName(text("orders")))
            .with_partitions(vec![
                offset_delete_request::OffsetDeleteRequestPartition::default().with_partition_index(0)
            ]),
    ]);
    let mut ops = KafkaClient::connect_as(addr, "ops", PASSWORD).await;
    let refused: OffsetDeleteResponse = ops.call(ApiKey::OffsetDelete, 0, &delete).await;
    assert_eq!(refused.error_code, GROUP_AUTHORIZATION_FAILED);
    grant(&mut admin, (GROUP, "billing", LITERAL, "User:ops", DELETE, ALLOW)).await;
    let refused: OffsetDeleteResponse = ops.call(ApiKey::OffsetDelete, 0, &delete).await;
    assert_eq!(refused.error_code, 0);
    assert_eq!(refused.topics[0].partitions[0].error_code, TOPIC_AUTHORIZATION_FAILED);
    assert_eq!(billing_offset(&mut admin).await, 7, "a refused topic keeps its offsets");
    grant(&mut admin, (TOPIC, "orders", LITERAL, "User:ops", READ, ALLOW)).await;
    let deleted: OffsetDeleteResponse = ops.call(ApiKey::OffsetDelete, 0, &delete).await;
    assert_eq!((deleted.error_code, deleted.topics[0].partitions[0].error_code), (0, 0));
    assert_eq!(billing_offset(&mut admin).await, -1, "deleted");

    let describe = ConsumerGroupDescribeRequest::default().with_group_ids(vec![GroupId(text("payments"))]);
    let refused: ConsumerGroupDescribeResponse = ops.call(ApiKey::ConsumerGroupDescribe, 0, &describe).await;
    assert_eq!(refused.groups[0].error_code, GROUP_AUTHORIZATION_FAILED);
    let message = refused.groups[0].error_message.as_deref().unwrap_or_default().to_string();
    assert!(message.contains("User:ops"), "{message}");
    let allowed: ConsumerGroupDescribeResponse = admin.call(ApiKey::ConsumerGroupDescribe, 0, &describe).await;
    assert_ne!(allowed.groups[0].error_code, GROUP_AUTHORIZATION_FAILED);
}
