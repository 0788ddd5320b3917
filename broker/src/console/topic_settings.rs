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

use super::html::{url_encode, Form, Html};
use super::layout::{hidden, Page};
use super::{status_response, Console};
use crate::kafka::topic_configs::{topic_entries, ConfigEntry, SOURCE_DYNAMIC_DEFAULT_BROKER, SOURCE_TOPIC};
use crate::metrics::admin_http::Response;
use crate::topic_config::{self, ConfigChange, ConfigKey};

/// A form field setting a key (`set.retention.ms=3600000`; empty: unchanged).
const SET_PREFIX: &str = "set.";
/// A form field putting a key back to the default (`reset.retention.ms=yes`).
const RESET_PREFIX: &str = "reset.";

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
    body.raw("<table id=\"topic-settings\"><tr><th>setting</th><th>value</th><th>from</th>");
    if !page.is_read_only {
        body.raw("<th>new value</th><th>back to the default</th>");
    }
    body.raw("</tr>");
    for entry in &entries {
        let label = source_label(entry);
        body.raw("<tr><td><code>").text(entry.name).raw("</code></td>").cell(&entry.value).cell(label);
        if !page.is_read_only {
            body.raw("<td>");
            if label != "fixed" {
                body.raw("<input name=\"").text(format!("{SET_PREFIX}{}", entry.name)).raw("\" placeholder=\"");
                body.text("unchanged").raw("\" aria-label=\"").text(format!("new {}", entry.name)).raw("\">");
            }
            body.raw("</td><td>");
            if label == "this topic" {
                body.raw("<input type=\"checkbox\" value=\"yes\" name=\"")
                    .text(format!("{RESET_PREFIX}{}", entry.name));
                body.raw("\" aria-label=\"").text(format!("{} back to the default", entry.name)).raw("\">");
            }
            body.raw("</td>");
        }
        body.raw("</tr>");
    }
    body.raw("</table>");
    if !page.is_read_only {
        body.raw("<p><button id=\"review\">Review the changes…</button></p></form>");
    }
    body.raw("<p class=\"muted\">A value set here is the topic's own: a change of the cluster's defaults leaves it ");
    body.raw("alone until it is put back to the default. Values as <code>kafka-configs.sh</code> takes them ");
    body.raw("(<code>-1</code> for an unlimited retention); the fixed ones cannot change.</p>");
    page.render(200, &format!("Settings of {name}"), body)
}

/// The changes a submitted form asks for, in [`ConfigKey::ALL`]'s order, or what is wrong with it.
fn changes_of(form: &Form) -> Result<Vec<ConfigChange>, String> {
    let mut changes: BTreeMap<ConfigKey, ConfigChange> = BTreeMap::new();
    for (field, value) in form.fields() {
        let (name, change) = if let Some(name) = field.strip_prefix(SET_PREFIX) {
            match value.trim() {
                "" => continue,
                value => (name, ConfigChange::set(name, value)),
            }
        } else if let Some(name) = field.strip_prefix(RESET_PREFIX) {
            match value {
                "yes" => (name, ConfigChange::delete(name)),
                _ => return Err(format!("{field} is \"yes\" or absent, not {value:?}")),
            }
        } else {
            continue;
        };
        let key = ConfigKey::parse(name).ok_or_else(|| {
            format!("{name:?} is not a setting that can change; those that can are {}", ConfigKey::names())
        })?;
        if changes.insert(key, change).is_some() {
            return Err(format!("{name} is named twice: give it a new value or put it back to the default, not both"));
        }
    }
    if changes.is_empty() {
        return Err("nothing to change: give a setting a new value, or tick one to put back to the default".into());
    }
    Ok(changes.into_values().collect())
}

/// Checks the change as the API would (nothing applied), asks for a confirmation, then applies it.
pub async fn change(console: &Console, page: Page<'_>, name: &str, form: &Form) -> Response {
    let changes = match changes_of(form) {
        Ok(changes) => changes,
        Err(message) => return page.error(400, "Nothing changed", &message),
    };
    let is_confirmed = form.get("confirm") == Some("yes");
    if let Err(err) = topic_config::alter(&console.node, name, &changes, !is_confirmed).await {
        return status_response(page, "Settings not changed", &err.into());
    }
    let encoded = url_encode(name);
    let current: BTreeMap<&str, String> = match entries(console, name) {
        Ok(entries) => entries.into_iter().map(|e| (e.name, e.value)).collect(),
        Err(err) => return status_response(page, "Topic not found", &err.into()),
    };
    if !is_confirmed {
        let mut body = Html::new();
        body.raw("<p>Change these settings of topic <b>").text(name).raw("</b>?</p>");
        body.raw("<table id=\"changes\"><tr><th>setting</th><th>now</th><th>after</th></tr>");
        for change in &changes {
            let now = ConfigKey::parse(&change.key).and_then(|k| current.get(k.kafka_name())).cloned();
            body.raw("<tr><td><code>").text(&change.key).raw("</code></td>").cell(now.unwrap_or_default());
            body.cell(change.value.as_deref().unwrap_or("the default")).raw("</tr>");
        }
        body.raw("</table>");
        page.form_open(&mut body, &format!("/topics/{encoded}/settings"));
        for change in &changes {
            match &change.value {
                Some(value) => hidden(&mut body, &format!("{SET_PREFIX}{}", change.key), value),
                None => hidden(&mut body, &format!("{RESET_PREFIX}{}", change.key), "yes"),
            }
        }
        hidden(&mut body, "confirm", "yes");
        body.raw("<button id=\"confirm\">Yes, change them</button> ");
        body.link(&format!("/topics/{encoded}/settings"), "Cancel").raw("</form>");
        return page.render(200, "Change settings?", body);
    }
    let keys: Vec<&str> = changes.iter().map(|change| change.key.as_str()).collect();
    tracing::info!(topic = %name, keys = %keys.join(","), "topic settings changed from the console");
    let mut body = Html::new();
    body.raw("<p class=\"ok\">Settings of ").link(&format!("/topics/{encoded}"), name).raw(" changed.</p>");
    body.raw("<table id=\"changed\"><tr><th>setting</th><th>value</th></tr>");
    for change in &changes {
        let value = ConfigKey::parse(&change.key).and_then(|k| current.get(k.kafka_name())).cloned();
        body.raw("<tr><td><code>").text(&change.key).raw("</code></td>").cell(value.unwrap_or_default()).raw("</tr>");
    }
    body.raw("</table><p>").link(&format!("/topics/{encoded}/settings"), "All settings").raw("</p>");
    page.render(200, "Settings changed", body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn changes(encoded: &str) -> Result<Vec<ConfigChange>, String> {
        changes_of(&Form::parse(encoded))
    }

    #[test]
    fn a_form_sets_the_keys_given_and_resets_those_ticked() {
        let asked = changes("csrf=x&set.retention.ms=3600000&set.segment.bytes=&reset.cleanup.policy=yes&confirm=yes")
            .expect("valid");
        let expected = vec![ConfigChange::set("retention.ms", "3600000"), ConfigChange::delete("cleanup.policy")];
        assert_eq!(asked, expected, "an empty input is unchanged; ConfigKey::ALL's order");
        let spaced = changes("set.compression.type=+zstd+").expect("valid");
        assert_eq!(spaced, vec![ConfigChange::set("compression.type", "zstd")]);
    }

    #[test]
    fn a_form_that_asks_nothing_twice_or_unknown_is_refused_saying_why() {
        let nothing = changes("csrf=x&set.retention.ms=").expect_err("nothing");
        assert!(nothing.starts_with("nothing to change"), "{nothing}");
        let twice = changes("set.retention.ms=1&reset.retention.ms=yes").expect_err("both");
        assert!(twice.contains("retention.ms is named twice"), "{twice}");
        let unknown = changes("set.num.partitions=3").expect_err("not a topic setting");
        assert!(
            unknown.contains("\"num.partitions\" is not a setting") && unknown.contains("retention.ms"),
            "{unknown}"
        );
        let fixed = changes("set.unclean.leader.election.enable=true").expect_err("fixed");
        assert!(fixed.contains("unclean.leader.election.enable"), "{fixed}");
        let odd = changes("reset.retention.ms=on").expect_err("not yes");
        assert!(odd.contains("reset.retention.ms is \"yes\" or absent"), "{odd}");
    }
}
