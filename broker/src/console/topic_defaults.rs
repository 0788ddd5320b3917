//! The cluster's topic defaults page (`rill topic defaults`, Kafka's dynamic `log.retention.ms` and the like):
//! each default under Kafka's broker name with its value and whether the cluster set it, and a form that sets
//! and deletes defaults through `TopicAdmin/AlterTopicDefaults`, checked with nothing applied (which also says
//! how many topics follow the change) before a confirmation.

use std::collections::BTreeMap;

use rill_protocol::v1::{self, topic_admin_server::TopicAdmin};

use super::config_form::{self, Asked, Row};
use super::html::{Form, Html};
use super::layout::Page;
use super::{status_response, Console};
use crate::metrics::admin_http::Response;

const PATH: &str = "/topic-defaults";

async fn describe(console: &Console, page: Page<'_>) -> Result<Vec<v1::TopicDefault>, Response> {
    match console.service.describe_topic_defaults(page.request(v1::DescribeTopicDefaultsRequest {})).await {
        Ok(answer) => Ok(answer.into_inner().defaults),
        Err(status) => Err(status_response(page, "Topic defaults not read", &status)),
    }
}

fn source(default: &v1::TopicDefault) -> &'static str {
    if default.is_set {
        "cluster"
    } else {
        "broker"
    }
}

pub async fn show(console: &Console, page: Page<'_>) -> Response {
    let defaults = match describe(console, page).await {
        Ok(defaults) => defaults,
        Err(refusal) => return refusal,
    };
    let mut body = Html::new();
    body.raw("<p>What every topic takes for a setting it does not set itself. A default set for the cluster ");
    body.raw("applies on every node, to the topics that exist and those created later; one put back to the default ");
    body.raw("gives them the broker's own value again.</p>");
    if !page.is_read_only {
        page.form_open(&mut body, PATH);
    }
    let rows: Vec<Row<'_>> = defaults
        .iter()
        .map(|d| Row { key: &d.key, value: &d.value, source: source(d), can_set: true, can_reset: d.is_set })
        .collect();
    config_form::table(&mut body, "defaults", &rows, !page.is_read_only);
    body.raw("<p class=\"muted\">Values as the topic keys take them (<code>log.retention.ms</code> as ");
    body.raw("<code>retention.ms</code>, <code>-1</code> for no limit).</p>");
    page.render(200, "Topic defaults", body)
}

/// Checks the change with the API (nothing applied), asks for a confirmation naming the topics that follow it,
/// then applies it.
pub async fn change(console: &Console, page: Page<'_>, form: &Form) -> Response {
    let defaults = match describe(console, page).await {
        Ok(defaults) => defaults,
        Err(refusal) => return refusal,
    };
    let names: Vec<&str> = defaults.iter().map(|d| d.key.as_str()).collect();
    let asked: Vec<Asked> = match config_form::asked(form, |key| names.contains(&key), &names.join(", ")) {
        Ok(asked) => asked,
        Err(message) => return page.error(400, "Nothing changed", &message),
    };
    let is_confirmed = form.get("confirm") == Some("yes");
    let request = v1::AlterTopicDefaultsRequest {
        set: asked.iter().filter_map(|(key, value)| Some((key.clone(), value.clone()?))).collect(),
        delete: asked.iter().filter(|(_, value)| value.is_none()).map(|(key, _)| key.clone()).collect(),
        validate_only: !is_confirmed,
    };
    let answer = match console.service.alter_topic_defaults(page.request(request)).await {
        Ok(answer) => answer.into_inner(),
        Err(status) => return status_response(page, "Topic defaults not changed", &status),
    };
    let before: BTreeMap<&str, &str> = defaults.iter().map(|d| (d.key.as_str(), d.value.as_str())).collect();
    let after: BTreeMap<&str, &str> = answer.defaults.iter().map(|d| (d.key.as_str(), d.value.as_str())).collect();
    let topics = answer.topics_changed;
    let mut body = Html::new();
    if !is_confirmed {
        body.raw("<p>Change these topic defaults of the cluster? <span id=\"topics-changed\">");
        body.text(format!("{topics} topic(s) take the new values now"));
        body.raw("</span>; the topics that set a key themselves keep theirs.</p>");
        config_form::confirmation(&mut body, &asked, |key| before.get(key).map(|v| v.to_string()));
        page.form_open(&mut body, PATH);
        config_form::carry(&mut body, &asked);
        body.raw("<button id=\"confirm\">Yes, change them</button> ");
        body.link(PATH, "Cancel").raw("</form>");
        return page.render(200, "Change topic defaults?", body);
    }
    let keys: Vec<&str> = asked.iter().map(|(key, _)| key.as_str()).collect();
    tracing::info!(keys = %keys.join(","), topics, "topic defaults changed from the console");
    body.raw("<p class=\"ok\">Topic defaults changed; ").text(topics).raw(" topic(s) took the new values.</p>");
    body.raw("<table id=\"changed\"><tr><th>setting</th><th>value</th></tr>");
    for (key, _) in &asked {
        body.raw("<tr><td><code>").text(key).raw("</code></td>");
        body.cell(after.get(key.as_str()).copied().unwrap_or_default()).raw("</tr>");
    }
    body.raw("</table><p>").link(PATH, "All topic defaults").raw("</p>");
    page.render(200, "Topic defaults changed", body)
}
