//! The one place the console asks "may this principal do this?" before it shows a page or takes an action.
//!
//! Every route names what it is about to do with Kafka's operations and resources ([`needed_by`]), and [`may`]
//! asks the node's [`Authorizer`], the one the gRPC and Kafka edges ask, so the console refuses exactly what the
//! same call over either protocol would be refused, and says so before it starts: a 403 page naming the
//! principal, the operation and the resource. The service calls the console makes carry the same principal
//! (`Page::request`), so whatever the service checks besides (a group's topics on an offset reset) applies too.
//!
//! Lists (the overview, the topic and group lists) need no permission of their own: as Kafka's Metadata and
//! ListGroups do, the service leaves out of them what the principal may not describe.

use crate::auth::acl::{Operation, Resource};
use crate::auth::authorizer::{Authorizer, Denied};
use crate::auth::Principal;

/// Whether `principal` may do `operation` on `resource`, by the node's ACLs; with authorization off, yes.
/// Creating a topic follows Kafka's rule: CREATE on the cluster, or on the topic itself.
pub fn may(
    authorizer: &Authorizer,
    principal: &Principal,
    operation: Operation,
    resource: Resource<'_>,
) -> Result<(), Denied> {
    if operation == Operation::Create && authorizer.is_allowed(principal, Operation::Create, &Resource::cluster()) {
        return Ok(());
    }
    authorizer.check(principal, operation, &resource)
}

/// What the console route at `segments` (a POST when `is_post`; `form_name` the form's `name` field) is about to
/// do; `None` for the stylesheet, the lists, and pages that touch nothing (a form's first view, sign-in and
/// sign-out).
pub fn needed_by<'a>(
    segments: &[&'a str],
    is_post: bool,
    form_name: Option<&'a str>,
) -> Option<(Operation, Resource<'a>)> {
    use Operation::*;
    Some(match (segments, is_post) {
        (["create-topic"], true) => (Create, Resource::topic(form_name.unwrap_or(""))),
        // Kafka's rules for a broker resource's configs, and for DescribeClientQuotas and AlterClientQuotas.
        (["topic-defaults" | "quotas"], false) => (DescribeConfigs, Resource::cluster()),
        // What the UserAdmin and AclAdmin services ask (Kafka's DescribeAcls, CreateAcls and DeleteAcls, and its
        // SCRAM credential calls, ask the same).
        (["users" | "acls"], false) | (["users", _, "delete"], false) => (Describe, Resource::cluster()),
        (["users" | "acls"], true) | (["users", _, "delete" | "token"] | ["acls", "remove"], true) => {
            (Alter, Resource::cluster())
        }
        // ClusterAdmin's rule for moves, the throttle and elections (Kafka's ElectLeaders and
        // AlterPartitionReassignments ask the same); the page itself, as DescribeCluster, needs none.
        (["cluster", _], true) => (Alter, Resource::cluster()),
        (["topic-defaults" | "quotas"], true) => (AlterConfigs, Resource::cluster()),
        // The schema registry's API asks the same of every change (reading needs no more than signing in).
        (["schemas", ..], true) => (Alter, Resource::cluster()),
        (["topics", topic], false) => (Describe, Resource::topic(topic)),
        (["topics", topic, "delete"], true) => (Delete, Resource::topic(topic)),
        (["topics", topic, "delete"], false) => (Describe, Resource::topic(topic)),
        // Kafka's rules: DescribeConfigs and AlterConfigs for a topic's configs, ALTER for CreatePartitions,
        // DELETE for DeleteRecords.
        (["topics", topic, "settings"], false) => (DescribeConfigs, Resource::topic(topic)),
        (["topics", topic, "settings"], true) => (AlterConfigs, Resource::topic(topic)),
        (["topics", topic, "partitions"], true) => (Alter, Resource::topic(topic)),
        (["topics", topic, "delete-records"], true) => (Delete, Resource::topic(topic)),
        (["topics", topic, "partitions" | "delete-records"], false) => (Describe, Resource::topic(topic)),
        (["topics", topic, "messages" | "messages.json"], false) => (Read, Resource::topic(topic)),
        (["topics", topic, "produce"], _) => (Write, Resource::topic(topic)),
        (["groups", group], false) => (Describe, Resource::group(group)),
        // Kafka's rules for a GROUP config resource (DescribeConfigs, IncrementalAlterConfigs).
        (["groups", group, "settings"], false) => (DescribeConfigs, Resource::group(group)),
        (["groups", group, "settings"], true) => (AlterConfigs, Resource::group(group)),
        // Who the clients are and where from: what Kafka's CLIENT_METRICS resources need to be described.
        (["clients"], false) => (DescribeConfigs, Resource::cluster()),
        // IncrementalAlterConfigs of a CLIENT_METRICS resource asks ALTER_CONFIGS on the cluster.
        (["clients", "subscriptions", ..], true) => (AlterConfigs, Resource::cluster()),
        // Kafka's rule for an offset reset (AlterConsumerGroupOffsets): READ on the group; the service checks
        // READ on each topic as it commits.
        (["groups", group, "reset"], _) => (Read, Resource::group(group)),
        // Kafka's rule for DeleteGroups.
        (["groups", group, "delete"], true) => (Delete, Resource::group(group)),
        (["groups", group, "delete"], false) => (Describe, Resource::group(group)),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::acl::{AclBinding, PatternType, Permission, ResourceType};
    use crate::auth::acl_store::AclStore;
    use std::sync::Arc;

    #[test]
    fn every_action_names_what_it_touches() {
        let cases = [
            (vec!["topics", "orders", "produce"], true, None, Some((Operation::Write, Resource::topic("orders")))),
            (vec!["create-topic"], true, Some("new"), Some((Operation::Create, Resource::topic("new")))),
            (vec!["topics", "orders", "delete"], true, None, Some((Operation::Delete, Resource::topic("orders")))),
            (vec!["groups", "billing", "reset"], true, None, Some((Operation::Read, Resource::group("billing")))),
            (vec!["topics", "orders", "messages"], false, None, Some((Operation::Read, Resource::topic("orders")))),
            (vec!["topics", "orders"], false, None, Some((Operation::Describe, Resource::topic("orders")))),
            (vec!["topics", "o", "settings"], false, None, Some((Operation::DescribeConfigs, Resource::topic("o")))),
            (vec!["topics", "o", "settings"], true, None, Some((Operation::AlterConfigs, Resource::topic("o")))),
            (vec!["topics", "o", "partitions"], true, None, Some((Operation::Alter, Resource::topic("o")))),
            (vec!["topics", "o", "delete-records"], true, None, Some((Operation::Delete, Resource::topic("o")))),
            (vec!["topics", "o", "delete-records"], false, None, Some((Operation::Describe, Resource::topic("o")))),
            (vec!["topic-defaults"], false, None, Some((Operation::DescribeConfigs, Resource::cluster()))),
            (vec!["users"], false, None, Some((Operation::Describe, Resource::cluster()))),
            (vec!["cluster", "elect"], true, None, Some((Operation::Alter, Resource::cluster()))),
            (vec!["schemas", "register"], true, None, Some((Operation::Alter, Resource::cluster()))),
            (vec!["schemas", "s", "delete"], true, None, Some((Operation::Alter, Resource::cluster()))),
            (vec!["schemas", "s"], false, None, None),
            (vec!["cluster"], false, None, None),
            (vec!["quotas"], false, None, Some((Operation::DescribeConfigs, Resource::cluster()))),
            (vec!["quotas"], true, None, Some((Operation::AlterConfigs, Resource::cluster()))),
            (vec!["users"], true, Some("bob"), Some((Operation::Alter, Resource::cluster()))),
            (vec!["users", "bob", "delete"], true, None, Some((Operation::Alter, Resource::cluster()))),
            (vec!["users", "bob", "token"], true, None, Some((Operation::Alter, Resource::cluster()))),
            (vec!["acls"], false, None, Some((Operation::Describe, Resource::cluster()))),
            (vec!["acls", "remove"], true, None, Some((Operation::Alter, Resource::cluster()))),
            (vec!["topic-defaults"], true, None, Some((Operation::AlterConfigs, Resource::cluster()))),
            (vec!["groups", "g", "delete"], true, None, Some((Operation::Delete, Resource::group("g")))),
            (vec!["groups", "g", "delete"], false, None, Some((Operation::Describe, Resource::group("g")))),
            (vec!["clients"], false, None, Some((Operation::DescribeConfigs, Resource::cluster()))),
            (vec!["clients", "subscriptions"], true, None, Some((Operation::AlterConfigs, Resource::cluster()))),
            (vec!["groups", "g", "settings"], false, None, Some((Operation::DescribeConfigs, Resource::group("g")))),
            (vec!["groups", "g", "settings"], true, None, Some((Operation::AlterConfigs, Resource::group("g")))),
            (vec![], false, None, None),
            (vec!["topics"], false, None, None),
            (vec!["groups"], false, None, None),
            (vec!["create-topic"], false, None, None),
            (vec!["console.css"], false, None, None),
        ];
        for (segments, is_post, name, expected) in cases {
            assert_eq!(needed_by(&segments, is_post, name), expected, "{segments:?}");
        }
    }

    fn allow(principal: &str, operation: Operation, resource_type: ResourceType, name: &str) -> AclBinding {
        AclBinding {
            permission: Permission::Allow,
            principal: principal.to_string(),
            host: "*".to_string(),
            operation,
            resource_type,
            pattern_type: PatternType::Literal,
            name: name.to_string(),
        }
    }

    #[test]
    fn the_console_asks_the_nodes_acls() {
        let dir = tempfile::tempdir().expect("temp dir");
        let acls = Arc::new(AclStore::open(dir.path()).expect("acl store"));
        acls.add(vec![
            allow("User:alice", Operation::Read, ResourceType::Topic, "public"),
            allow("User:bob", Operation::Create, ResourceType::Cluster, "kafka-cluster"),
        ])
        .expect("add");
        let authorizer = Authorizer::new(true, &["User:root".to_string()], acls.clone());
        let alice = Principal::User("alice".into());
        let bob = Principal::User("bob".into());
        let root = Principal::User("root".into());

        assert_eq!(may(&authorizer, &alice, Operation::Read, Resource::topic("public")), Ok(()));
        assert_eq!(
            may(&authorizer, &alice, Operation::Describe, Resource::topic("public")),
            Ok(()),
            "read implies describe"
        );
        let denied = may(&authorizer, &alice, Operation::Read, Resource::topic("secret")).expect_err("no ACL");
        assert_eq!((denied.principal.as_str(), denied.operation), ("User:alice", Operation::Read));
        assert!(denied.to_string().contains("topic \"secret\""), "{denied}");
        assert!(may(&authorizer, &alice, Operation::Create, Resource::topic("new")).is_err());
        assert_eq!(may(&authorizer, &bob, Operation::Create, Resource::topic("new")), Ok(()), "create on the cluster");
        assert!(may(&authorizer, &Principal::Anonymous, Operation::Describe, Resource::topic("public")).is_err());
        assert_eq!(may(&authorizer, &root, Operation::Delete, Resource::topic("secret")), Ok(()), "super user");

        let off = Authorizer::new(false, &[], acls);
        assert_eq!(may(&off, &Principal::Anonymous, Operation::Delete, Resource::topic("secret")), Ok(()));
    }
}
