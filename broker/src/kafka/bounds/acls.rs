//! The walks of the ACL requests (see the parent module): DescribeAcls is one filter, CreateAcls an array of
//! bindings, DeleteAcls an array of filters; a binding and a filter have the same layout. v2+ are flexible.

use super::{BoundsError, Walk};

/// resource_type, resource_name, pattern_type, principal, host, operation, permission_type.
fn binding_or_filter(walk: &mut Walk, flexible: bool) -> Result<(), BoundsError> {
    walk.skip(1)?;
    walk.string(flexible)?;
    walk.skip(1)?;
    walk.string(flexible)?;
    walk.string(flexible)?;
    walk.skip(1 + 1)?;
    walk.tagged_fields(flexible)
}

pub fn describe_acls(walk: &mut Walk, version: i16) -> Result<(), BoundsError> {
    binding_or_filter(walk, version >= 2)
}

pub fn create_acls(walk: &mut Walk, version: i16) -> Result<(), BoundsError> {
    let flexible = version >= 2;
    walk.array(flexible, |creation| binding_or_filter(creation, flexible))?;
    walk.tagged_fields(flexible)
}

pub fn delete_acls(walk: &mut Walk, version: i16) -> Result<(), BoundsError> {
    let flexible = version >= 2;
    walk.array(flexible, |filter| binding_or_filter(filter, flexible))?;
    walk.tagged_fields(flexible)
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::*;

    use super::super::tests::{assert_walked_whole, text};

    #[test]
    fn the_walk_covers_every_served_version_of_each_acl_request_exactly() {
        let describe = DescribeAclsRequest::default()
            .with_resource_type_filter(2)
            .with_resource_name_filter(Some(text("orders")))
            .with_pattern_type_filter(2)
            .with_principal_filter(None)
            .with_host_filter(Some(text("*")))
            .with_operation(1)
            .with_permission_type(1);
        assert_walked_whole(ApiKey::DescribeAcls, 1..=3, &describe);

        let creation = create_acls_request::AclCreation::default()
            .with_resource_type(2)
            .with_resource_name(text("orders."))
            .with_resource_pattern_type(4)
            .with_principal(text("User:app"))
            .with_host(text("*"))
            .with_operation(3)
            .with_permission_type(3);
        let create = CreateAclsRequest::default().with_creations(vec![creation.clone(), creation]);
        assert_walked_whole(ApiKey::CreateAcls, 1..=3, &create);

        let filter = delete_acls_request::DeleteAclsFilter::default()
            .with_resource_type_filter(1)
            .with_resource_name_filter(Some(text("orders")))
            .with_pattern_type_filter(1)
            .with_principal_filter(Some(text("User:app")));
        let delete = DeleteAclsRequest::default().with_filters(vec![filter.clone(), filter.with_host_filter(None)]);
        assert_walked_whole(ApiKey::DeleteAcls, 1..=3, &delete);
    }
}
