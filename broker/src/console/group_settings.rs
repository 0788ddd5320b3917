//! A group's settings page: Kafka's group configs (KIP-848's `consumer.*` timing, KIP-932's `share.*` keys and
//! the dead letter topic), each with the value the group runs with and whether the group or the broker set it,
//! and a form that sets some and puts others back to the broker's, checked whole before a confirmation.
//!
//! It goes through `group_admin::alter_group_config`, what `rill group config --set` and the gRPC
//! `AlterGroupConfig` call, over the store Kafka's IncrementalAlterConfigs of a GROUP resource changes too (on a
//! cluster the replicated metadata), so a value is refused here exactly as there. Kafka's rules: DESCRIBE_CONFIGS
//! on the group to see it, ALTER_CONFIGS to change it (`authorize::needed_by`).

use std::collections::BTreeMap;

use rill_protocol::v1;

use super::config_form::{self, Asked, Row};
use super::html::{url_encode, Form, Html};
use super::layout::Page;
use super::{status_response, Console};
use crate::group_config::GroupConfigKey;
use crate::metrics::admin_http::Response;
use crate::service::group_admin;

fn path(group: &str) -> String {
    format!("/groups/{}/settings", url_encode(group))
}

fn names() -> String {
    GroupConfigKey::ALL.map(GroupConfigKey::kafka_name).join(", ")
}

pub fn show(console: &Console, page: Page<'_>, group: &str) -> Response {
    let config = match group_admin::group_config(&console.node, group.to_owned()) {
        Ok(config) => config,
        Err(err) => return status_response(page, "Bad group", &err.into()),
    };
    let mut body = Html::new();
    body.raw("<p>").link(&format!("/groups/{}", url_encode(group)), "Back to the group").raw("</p>");
    if !page.is_read_only {
        page.form_open(&mut body, &path(group));
    }
    let rows: Vec<Row<'_>> = config
        .configs
        .iter()
        .map(|entry| Row {
            key: &entry.name,
            value: &entry.value,
            source: if entry.is_group_setting { "this group" } else { "broker" },
            can_set: true,
            can_reset: entry.is_group_setting,
        })
        .collect();
    config_form::table(&mut body, "group-settings", &rows, !page.is_read_only);
    body.raw("<p class=\"muted\"><code>consumer.*</code> apply to a KIP-848 consumer group, <code>share.*</code> ");
    body.raw("and <code>errors.deadletterqueue.*</code> to a share group; members learn of a change at their next ");
    body.raw("heartbeat. A group that does not exist yet may be given settings before its first member joins.</p>");
    page.render(200, &format!("Settings of group {group}"), body)
}

pub async fn change(console: &Console, page: Page<'_>, group: &str, form: &Form) -> Response {
    let asked: Vec<Asked> = match config_form::asked(form, |key| GroupConfigKey::parse(key).is_some(), &names()) {
        Ok(asked) => asked,
        Err(message) => return page.error(400, "Nothing changed", &message),
    };
    let is_confirmed = form.get("confirm") == Some("yes");
    let request = v1::AlterGroupConfigRequest {
        group: group.to_owned(),
        set: asked.iter().filter_map(|(key, value)| Some((key.clone(), value.clone()?))).collect(),
        delete: asked.iter().filter(|(_, value)| value.is_none()).map(|(key, _)| key.clone()).collect(),
        validate_only: !is_confirmed,
    };
    let before: BTreeMap<String, String> = match group_admin::group_config(&console.node, group.to_owned()) {
        Ok(config) => config.configs.into_iter().map(|entry| (entry.name, entry.value)).collect(),
        Err(err) => return status_response(page, "Bad group", &err.into()),
    };
    let after = match group_admin::alter_group_config(&console.node, request).await {
        Ok(after) => after,
        Err(err) => return status_response(page, "Settings not changed", &err.into()),
    };
    if !is_confirmed {
        let mut body = Html::new();
        body.raw("<p>Change these settings of group <b>").text(group).raw("</b>?</p>");
        config_form::confirmation(&mut body, &asked, |key| before.get(key).cloned());
        page.form_open(&mut body, &path(group));
        config_form::carry(&mut body, &asked);
        body.raw("<button id=\"confirm\">Yes, change them</button> ").link(&path(group), "Cancel").raw("</form>");
        return page.render(200, "Change settings?", body);
    }
    let keys: Vec<&str> = asked.iter().map(|(key, _)| key.as_str()).collect();
    tracing::info!(%group, keys = %keys.join(","), "group settings changed from the console");
    let now: BTreeMap<String, String> = after.configs.into_iter().map(|entry| (entry.name, entry.value)).collect();
    let mut body = Html::new();
    body.raw("<p class=\"ok\">Settings of ").link(&format!("/groups/{}", url_encode(group)), group);
    body.raw(" changed.</p><table id=\"changed\"><tr><th>setting</th><th>value</th></tr>");
    for key in keys {
        body.raw("<tr><td><code>").text(key).raw("</code></td>").cell(now.get(key).cloned().unwrap_or_default());
        body.raw("</tr>");
    }
    body.raw("</table><p>").link(&path(group), "All settings").raw("</p>");
    page.render(200, "Settings changed", body)
}
