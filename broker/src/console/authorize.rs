//! The one place the console asks "may this principal do this?" before it shows a page or takes an action.
//!
//! Today every principal may do everything (there are no ACLs yet: docs/security.md, "Not built yet"). When
//! ACLs land, [`may`] asks them, with Kafka's resource and operation names, which is all the console needs:
//! every route already says what it is about to do ([`needed_by`]) and shows a refusal as a 403 page naming the
//! principal and the operation. The service calls the console makes carry the same principal
//! (`Page::request`), so checks the service itself makes apply as well.

use crate::auth::Principal;

/// What a console page touches, by Kafka's resource types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource<'a> {
    /// The node and its lists (overview, topic list, group list).
    Cluster,
    Topic(&'a str),
    Group(&'a str),
}

/// What a console page does to it, by Kafka's operation names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Describe,
    Read,
    Write,
    Create,
    Delete,
}

/// A refusal: `principal` may not do `operation` on `resource`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{principal} may not {operation:?} {resource}")]
pub struct Denied {
    pub principal: String,
    pub operation: Operation,
    pub resource: String,
}

impl std::fmt::Display for Resource<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Resource::Cluster => f.write_str("the cluster"),
            Resource::Topic(name) => write!(f, "topic {name:?}"),
            Resource::Group(id) => write!(f, "group {id:?}"),
        }
    }
}

/// Whether `principal` may do `operation` on `resource`. Allows everything until ACLs exist: the ACL check
/// goes here, and nowhere else in the console.
pub fn may(principal: &Principal, operation: Operation, resource: Resource<'_>) -> Result<(), Denied> {
    let _ = (principal, operation, resource);
    Ok(())
}

/// What the console route at `segments` (a POST when `form_topic` or `is_post`) is about to do; `None` for
/// the stylesheet and pages that touch nothing (a form's first view, sign-in and sign-out).
pub fn needed_by<'a>(
    segments: &[&'a str],
    is_post: bool,
    form_name: Option<&'a str>,
) -> Option<(Operation, Resource<'a>)> {
    use Operation::*;
    Some(match (segments, is_post) {
        ([], false) | (["topics"], false) | (["groups"], false) => (Describe, Resource::Cluster),
        (["create-topic"], false) => return None,
        (["create-topic"], true) => (Create, Resource::Topic(form_name.unwrap_or(""))),
        (["topics", topic], false) => (Describe, Resource::Topic(topic)),
        (["topics", topic, "delete"], true) => (Delete, Resource::Topic(topic)),
        (["topics", topic, "delete"], false) => (Describe, Resource::Topic(topic)),
        (["topics", topic, "messages" | "messages.json"], false) => (Read, Resource::Topic(topic)),
        (["topics", topic, "produce"], _) => (Write, Resource::Topic(topic)),
        (["groups", group], false) => (Describe, Resource::Group(group)),
        // Kafka's rule for an offset reset (AlterConsumerGroupOffsets): Read on the group.
        (["groups", group, "reset"], _) => (Read, Resource::Group(group)),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_action_names_what_it_touches_and_today_everything_is_allowed() {
        let alice = Principal::User("alice".into());
        let cases = [
            (vec!["topics", "orders", "produce"], true, None, Some((Operation::Write, Resource::Topic("orders")))),
            (vec!["create-topic"], true, Some("new"), Some((Operation::Create, Resource::Topic("new")))),
            (vec!["topics", "orders", "delete"], true, None, Some((Operation::Delete, Resource::Topic("orders")))),
            (vec!["groups", "billing", "reset"], true, None, Some((Operation::Read, Resource::Group("billing")))),
            (vec!["topics", "orders", "messages"], false, None, Some((Operation::Read, Resource::Topic("orders")))),
            (vec![], false, None, Some((Operation::Describe, Resource::Cluster))),
            (vec!["console.css"], false, None, None),
        ];
        for (segments, is_post, name, expected) in cases {
            let needed = needed_by(&segments, is_post, name);
            assert_eq!(needed, expected, "{segments:?}");
            if let Some((operation, resource)) = needed {
                assert_eq!(may(&alice, operation, resource), Ok(()));
                assert_eq!(may(&Principal::Anonymous, operation, resource), Ok(()));
            }
        }
    }
}
