//! The walks of the client quota requests (see the parent module): DescribeClientQuotas is an array of
//! component filters, AlterClientQuotas an array of entries, each an entity (an array of components) and an
//! array of operations. v1 of both is flexible.

use super::{BoundsError, Walk};

pub fn describe_client_quotas(walk: &mut Walk, version: i16) -> Result<(), BoundsError> {
    let flexible = version >= 1;
    walk.array(flexible, |component| {
        component.string(flexible)?; // entity_type
        component.skip(1)?; // match_type
        component.string(flexible)?; // match
        component.tagged_fields(flexible)
    })?;
    walk.skip(1)?; // strict
    walk.tagged_fields(flexible)
}

pub fn alter_client_quotas(walk: &mut Walk, version: i16) -> Result<(), BoundsError> {
    let flexible = version >= 1;
    walk.array(flexible, |entry| {
        entry.array(flexible, |component| {
            component.string(flexible)?; // entity_type
            component.string(flexible)?; // entity_name
            component.tagged_fields(flexible)
        })?;
        entry.array(flexible, |op| {
            op.string(flexible)?; // key
            op.skip(8 + 1)?; // value, remove
            op.tagged_fields(flexible)
        })?;
        entry.tagged_fields(flexible)
    })?;
    walk.skip(1)?; // validate_only
    walk.tagged_fields(flexible)
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::*;

    use super::super::tests::{assert_walked_whole, text};

    #[test]
    fn the_walk_covers_every_served_version_of_each_quota_request_exactly() {
        let component = describe_client_quotas_request::ComponentData::default()
            .with_entity_type(text("user"))
            .with_match_type(0)
            .with_match(Some(text("alice")));
        let any_client = describe_client_quotas_request::ComponentData::default()
            .with_entity_type(text("client-id"))
            .with_match_type(2);
        let describe =
            DescribeClientQuotasRequest::default().with_components(vec![component, any_client]).with_strict(true);
        assert_walked_whole(ApiKey::DescribeClientQuotas, 0..=1, &describe);

        let entity = alter_client_quotas_request::EntityData::default()
            .with_entity_type(text("client-id"))
            .with_entity_name(None);
        let op = alter_client_quotas_request::OpData::default().with_key(text("producer_byte_rate")).with_value(1024.0);
        let entry = alter_client_quotas_request::EntryData::default()
            .with_entity(vec![entity])
            .with_ops(vec![op.clone(), op.with_remove(true)]);
        let alter =
            AlterClientQuotasRequest::default().with_entries(vec![entry.clone(), entry]).with_validate_only(true);
        assert_walked_whole(ApiKey::AlterClientQuotas, 0..=1, &alter);
    }
}
