//! A topic's settings page: every setting under Kafka's name with the value it runs with and where that comes from
//! (the topic itself, the cluster's default, the broker's), and a form that sets some and puts others back to the
//! default, checked whole before a confirmation and applied whole after it.
//!
//! The form speaks Kafka's key names and string values, as `kafka-configs.sh` and `rill topic alter --config` do,
//! so it goes through [`topic_config::alter`], the one function behind the gRPC `AlterTopicConfig` handler and
//! Kafka's IncrementalAlterConfigs: a value is read and refused there exactly as from either protocol, and on a
//! cluster the change goes through the replicated metadata. Authorization is the route's (`ALTER_CONFIGS` on the
//! topic, `authorize::needed_by`), the same rule both handlers apply.

use std::collections::BTreeMap;

use super::config_form::{self, Asked, Row};
use super::html::{url_encode, Form, Html};
use super::layout::Page;
use super::{status_response, Console};
use crate::kafka::topic_configs::{topic_entries, ConfigEntry, SOURCE_DYNAMIC_DEFAULT_BROKER, SOURCE_TOPIC};
use crate::metrics::admin_http::Response;
use crate::topic_config::{self, ConfigChange, ConfigKey};

/// The topic's settings as they run now, under Kafka's names, in `topic_entries`' order.
fn entries(console: &Console, name: &str) -> crate::error::Result<Vec<ConfigEntry>> {
    let (state, replication_factor) = topic_config::current_state(&console.node, name)?;
    let cluster = crate::topic_defaults::current(&console.node);
    Ok(topic_entries(&state, replication_factor, &console.node.config, &cluster))
}

fn source_label(entry: &ConfigEntry) -> &'static str {
    match (ConfigKey::parse(entry.name), entry.source) {
        (None, _) => "fixed",
        (Some(_), SOURCE_TOPIC) => "this topic",
        (Some(_), SOURCE_DYNAMIC_DEFAULT_BROKER) => "cluster default",
        (Some(_), _) => "default",
    }
}

pub async fn show(console: &Console, page: Page<'_>, name: &str) -> Response {
    let entries = match entries(console, name) {
        Ok(entries) => entries,
        Err(err) => return status_response(page, "Topic not found", &err.into()),
    };
    let encoded = url_encode(name);
    let mut body = Html::new();
    body.raw("<p>").link(&format!("/topics/{encoded}"), "Back to the topic").raw("</p>");
    if !page.is_read_only {
        page.form_open(&mut body, &format!("/topics/{encoded}/settings"));
    }
    let rows: Vec<Row<'_>> = entries
        .iter()
        .map(|entry| {
            let source = source_label(entry);
            Row {
                key: entry.name,
                value: &entry.value,
                source,
                can_set: source != "fixed",
                can_reset: source == "this topic",
            }
        })
        .collect();
    config_form::table(&mut body, "topic-settings", &rows, !page.is_read_only);
    body.raw("<p class=\"muted\">A value set here is the topic's own: a change of the cluster's defaults leaves it ");
    body.raw("alone until it is put back to the default. Values as <code>kafka-configs.sh</code> takes them ");
    body.raw("(<code>-1</code> for an unlimited retention); the fixed ones cannot change.</p>");
    page.render(200, &format!("Settings of {name}"), body)
}

/// The changes a submitted form asks for, in [`ConfigKey::ALL`]'s order, or what is wrong with it.
fn changes_of(form: &Form) -> Result<Vec<Asked>, String> {
    let mut asked = config_form::asked(form, |key| ConfigKey::parse(key).is_some(), &ConfigKey::names())?;
    asked.sort_by_key(|(key, _)| ConfigKey::parse(key));
    Ok(asked)
}

/// Checks the change as the API would (nothing applied), asks for a confirmation, then applies it.
pub async fn change(console: &Console, page: Page<'_>, name: &str, form: &Form) -> Response {
    let asked = match changes_of(form) {
        Ok(asked) => asked,
        Err(message) => return page.error(400, "Nothing changed", &message),
    };
    let changes: Vec<ConfigChange> =
        asked.iter().map(|(key, value)| ConfigChange { key: key.clone(), value: value.clone() }).collect();
    let is_confirmed = form.get("confirm") == Some("yes");
    if let Err(err) = topic_config::alter(&console.node, name, &changes, !is_confirmed).await {
        return status_response(page, "Settings not changed", &err.into());
    }
    let encoded = url_encode(name);
    let current: BTreeMap<&str, String> = match entries(console, name) {
        Ok(entries) => entries.into_iter().map(|e| (e.name, e.value)).collect(),
        Err(err) => return status_response(page, "Topic not found", &err.into()),
    };
    let value_of = |key: &str| ConfigKey::parse(key).and_then(|k| current.get(k.kafka_name())).cloned();
    if !is_confirmed {
        let mut body = Html::new();
        body.raw("<p>Change these settings of topic <b>").text(name).raw("</b>?</p>");
        config_form::confirmation(&mut body, &asked, value_of);
        page.form_open(&mut body, &format!("/topics/{encoded}/settings"));
        config_form::carry(&mut body, &asked);
        body.raw("<button id=\"confirm\">Yes, change them</button> ");
        body.link(&format!("/topics/{encoded}/settings"), "Cancel").raw("</form>");
        return page.render(200, "Change settings?", body);
    }
    let keys: Vec<&str> = asked.iter().map(|(key, _)| key.as_str()).collect();
    tracing::info!(topic = %name, keys = %keys.join(","), "topic settings changed from the console");
    let mut body = Html::new();
    body.raw("<p class=\"ok\">Settings of ").link(&format!("/topics/{encoded}"), name).raw(" changed.</p>");
    body.raw("<table id=\"changed\"><tr><th>setting</th><th>value</th></tr>");
    for (key, _) in &asked {
        body.raw("<tr><td><code>").text(key).raw("</code></td>").cell(value_of(key).unwrap_or_default()).raw("</tr>");
    }
    body.raw("</table><p>").link(&format!("/topics/{encoded}/settings"), "All settings").raw("</p>");
    page.render(200, "Settings changed", body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_form_names_topic_keys_in_their_order() {
        let asked = changes_of(&Form::parse("set.segment_ms=5&reset.cleanup.policy=yes&set.retention.ms=1"));
        let keys: Vec<String> = asked.expect("valid").into_iter().map(|(key, _)| key).collect();
        assert_eq!(keys, ["retention.ms", "cleanup.policy", "segment_ms"], "ConfigKey::ALL's order; either name");
        let unknown = changes_of(&Form::parse("set.num.partitions=3")).expect_err("not a topic setting");
        assert!(
            unknown.contains("\"num.partitions\" is not a setting") && unknown.contains("retention.ms"),
            "{unknown}"
        );
        let fixed = changes_of(&Form::parse("set.unclean.leader.election.enable=true")).expect_err("fixed");
        assert!(fixed.contains("unclean.leader.election.enable"), "{fixed}");
    }
}
