//! The Kafka client instances that push their metrics to this node (KIP-714, `client_telemetry.rs`): who they
//! are (client id, software, address), what the node asks of them, when they last pushed, and the request latency
//! they measure; above them, the subscriptions that say what is asked of whom, set or removed here as
//! `kafka-client-metrics.sh --alter` and `rill client-metrics set` do (`ClientTelemetry::alter_subscription`:
//! checked with nothing written for the confirmation, then stored; on a cluster in the replicated metadata). Needs
//! DESCRIBE_CONFIGS on the cluster to see, ALTER_CONFIGS to change, as Kafka's CLIENT_METRICS resources do.

use super::html::{Form, Html};
use super::layout::{hidden, Page};
use super::Console;
use crate::client_telemetry::subscriptions::SubscriptionKey;
use crate::client_telemetry::{AlterRefusal, SubscriptionSource};
use crate::metrics::admin_http::Response;

const SUBSCRIPTIONS: &str = "/clients/subscriptions";

/// Most rows shown: the instances heard from most recently.
const ROWS: usize = 500;

pub fn list(console: &Console, page: Page<'_>) -> Response {
    let telemetry = &console.node.client_telemetry;
    let subscriptions = telemetry.subscriptions();
    let instances = telemetry.instances();
    let pushing = instances.iter().filter(|i| i.since_last_push.is_some()).count();
    let mut body = Html::new();
    body.raw("<div class=\"stats\"><div class=\"stat\"><b>").text(subscriptions.len()).raw("</b>subscriptions</div>");
    body.raw("<div class=\"stat\"><b>").text(instances.len()).raw("</b>client instances</div>");
    body.raw("<div class=\"stat\"><b>").text(pushing).raw("</b>pushing</div></div>");
    if subscriptions.is_empty() {
        body.raw(
            "<p class=\"muted\">This node asks no client for its metrics. Start it with --client-metrics PREFIXES \
             or [[client_metrics]] in its file, or create a subscription through the Kafka API \
             (kafka-client-metrics.sh, or IncrementalAlterConfigs of a CLIENT_METRICS resource): \
             docs/observability.md, \"Kafka clients' own metrics\".</p>",
        );
    } else {
        body.raw("<table id=\"subscriptions\"><tr><th>subscription</th><th>metrics</th>");
        body.raw("<th class=\"num\">interval</th><th>clients matched</th><th>set by</th>");
        body.raw(if page.is_read_only { "</tr>" } else { "<th></th></tr>" });
        for (subscription, source) in &subscriptions {
            let metrics =
                if subscription.metrics.is_empty() { "none".to_owned() } else { subscription.metrics.join(", ") };
            let matches: Vec<String> = subscription.matches.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let matches = if matches.is_empty() { "every client".to_owned() } else { matches.join(", ") };
            let set_by = match source {
                SubscriptionSource::NodeSettings => "the node's settings",
                SubscriptionSource::ConfigResource => "the Kafka API",
            };
            body.raw("<tr>").cell(&subscription.name).cell(metrics);
            body.raw("<td class=\"num\">").text(format!("{} s", f64::from(subscription.interval_ms) / 1000.0));
            body.raw("</td>").cell(matches).cell(set_by);
            if !page.is_read_only {
                body.raw("<td>");
                if *source == SubscriptionSource::ConfigResource {
                    page.form_open(&mut body, &format!("{SUBSCRIPTIONS}/remove"));
                    hidden(&mut body, "name", &subscription.name);
                    body.raw("<button class=\"danger\">Remove…</button></form>");
                }
                body.raw("</td>");
            }
            body.raw("</tr>");
        }
        body.raw("</table>");
    }
    if !page.is_read_only {
        page.form_open(&mut body, SUBSCRIPTIONS);
        body.raw("<fieldset class=\"stack\"><legend>Ask clients for their metrics</legend>");
        body.raw("<label>Subscription name (an existing one takes exactly these values: an empty field goes back to ");
        body.raw("its default) <input name=\"name\"></label>");
        body.raw("<label>Metric name prefixes, comma-separated (<code>*</code>: all; empty: none) ");
        body.raw("<input name=\"metrics\" placeholder=\"org.apache.kafka.producer.\"></label>");
        body.raw("<label>Push interval in ms (100 to 3600000; empty: 300000) <input name=\"interval_ms\" ");
        body.raw("inputmode=\"numeric\"></label><label>Which clients: comma-separated <code>selector=regex</code> ");
        body.raw(
            "(client_id, client_instance_id, client_software_name, client_software_version, client_source_address, ",
        );
        body.raw("client_source_port; empty: every client) <input name=\"match\"></label>");
        body.raw("<button id=\"subscribe\">Review…</button></fieldset></form>");
    }
    body.raw("<table id=\"clients\"><tr><th>client id</th><th>software</th><th>address</th>");
    body.raw("<th>metrics asked</th><th class=\"num\">interval</th><th class=\"num\">last push</th>");
    body.raw("<th class=\"num\">series</th><th class=\"num\">request latency avg</th><th>instance</th></tr>");
    for instance in instances.iter().take(ROWS) {
        let client = &instance.client;
        let software = format!("{} {}", client.software_name, client.software_version);
        let asked = match instance.requested_metrics.as_slice() {
            [] => "none".to_owned(),
            [all] if all.is_empty() => "all".to_owned(),
            prefixes => prefixes.join(", "),
        };
        let last = instance.since_last_push.map_or("never".to_owned(), |d| format!("{:.1} s ago", d.as_secs_f64()));
        let latency = instance.request_latency_avg_ms.map_or("–".to_owned(), |ms| format!("{ms:.2} ms"));
        body.raw("<tr>").cell(&client.client_id).cell(software.trim());
        body.cell(client.peer.map_or(String::new(), |peer| peer.to_string())).cell(asked);
        body.raw("<td class=\"num\">").text(format!("{} s", f64::from(instance.push_interval_ms) / 1000.0));
        body.raw("</td><td class=\"num\">").text(last).raw("</td><td class=\"num\">").text(instance.series);
        body.raw("</td><td class=\"num\">").text(latency).raw("</td>").cell(instance.client_instance_id);
        body.raw("</tr>");
    }
    body.raw("</table>");
    if instances.is_empty() {
        body.raw(
            "<p class=\"muted\">No client has asked yet. Kafka clients ask when they connect (librdkafka 2.5 and \
             later, Java 3.7 and later, with enable.metrics.push on, the default).</p>",
        );
    } else if instances.len() > ROWS {
        body.raw("<p class=\"muted\">Showing the ").text(ROWS).raw(" heard from most recently.</p>");
    }
    body.raw("<p class=\"muted\">Their metrics are on /metrics as kafka_client_*.</p>");
    page.render(200, "Clients", body)
}

/// Sets or removes the keys of subscription `name` on the blocking pool (the store fsyncs or waits for the
/// controller), only checking them with `validate_only`.
async fn alter(
    console: &Console,
    name: &str,
    changes: Vec<(String, Option<String>)>,
    validate_only: bool,
) -> Result<(), (u16, String)> {
    let telemetry = std::sync::Arc::clone(&console.node.client_telemetry);
    let name = name.to_owned();
    let altered =
        tokio::task::spawn_blocking(move || telemetry.alter_subscription(&name, &changes, validate_only)).await;
    match altered {
        Ok(Ok(())) => Ok(()),
        Ok(Err(AlterRefusal::Store(crate::client_telemetry::store::AlterSubscriptionError::Store(err)))) => {
            Err((503, err.to_string()))
        }
        Ok(Err(refused)) => Err((400, refused.to_string())),
        Err(join) => Err((500, format!("the change did not finish: {join}"))),
    }
}

/// A subscription's values as the form shows them (what the node runs with for a key it does not set).
fn shown(keys: &std::collections::BTreeMap<SubscriptionKey, String>, key: SubscriptionKey) -> String {
    let value = keys.get(&key).cloned().unwrap_or_else(|| key.default_value());
    if value.is_empty() {
        "(none)".to_owned()
    } else {
        value
    }
}

pub async fn subscribe(console: &Console, page: Page<'_>, form: &Form) -> Response {
    let name = form.get("name").unwrap_or("").trim().to_owned();
    let asked = |field: &str| form.get(field).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
    let changes: Vec<(String, Option<String>)> = [
        (SubscriptionKey::Metrics, asked("metrics")),
        (SubscriptionKey::IntervalMs, asked("interval_ms")),
        (SubscriptionKey::Match, asked("match")),
    ]
    .into_iter()
    .map(|(key, value)| (key.kafka_name().to_owned(), value))
    .collect();
    if changes.iter().all(|(_, value)| value.is_none()) {
        return page.error(
            400,
            "Nothing asked",
            "give at least the metric name prefixes (* for all); to stop asking, remove the subscription",
        );
    }
    if let Err((status, message)) = alter(console, &name, changes.clone(), true).await {
        return page.error(status, "Subscription refused", &message);
    }
    let (before, _) = console.node.client_telemetry.subscription_keys(&name);
    if form.get("confirm") != Some("yes") {
        let mut body = Html::new();
        let what = if before.is_empty() { "Create" } else { "Change" };
        body.raw("<p>").text(what).raw(" subscription <b>").text(&name).raw("</b>?</p><table id=\"changes\">");
        body.raw("<tr><th>key</th><th>now</th><th>after</th></tr>");
        let after: std::collections::BTreeMap<SubscriptionKey, String> =
            changes.iter().filter_map(|(key, value)| Some((SubscriptionKey::parse(key)?, value.clone()?))).collect();
        for key in SubscriptionKey::ALL {
            let now = if before.is_empty() { "–".to_owned() } else { shown(&before, key) };
            body.raw("<tr>").cell(key.kafka_name()).cell(now).cell(shown(&after, key)).raw("</tr>");
        }
        body.raw("</table><p>The clients it matches learn of it at their next push.</p>");
        page.form_open(&mut body, SUBSCRIPTIONS);
        for field in ["name", "metrics", "interval_ms", "match"] {
            hidden(&mut body, field, form.get(field).unwrap_or(""));
        }
        hidden(&mut body, "confirm", "yes");
        body.raw("<button id=\"confirm\">Yes, set it</button> ").link("/clients", "Cancel").raw("</form>");
        return page.render(200, "Set the subscription?", body);
    }
    match alter(console, &name, changes, false).await {
        Ok(()) => {
            tracing::info!(subscription = %name, "client metrics subscription set from the console");
            let mut body = Html::new();
            body.raw("<p class=\"ok\" id=\"subscribed\">Subscription ").text(&name).raw(" set.</p><p>");
            body.link("/clients", "Clients").raw("</p>");
            page.render(200, "Subscription set", body)
        }
        Err((status, message)) => page.error(status, "Subscription not set", &message),
    }
}

pub async fn remove(console: &Console, page: Page<'_>, form: &Form) -> Response {
    let name = form.get("name").unwrap_or("").to_owned();
    let (keys, source) = console.node.client_telemetry.subscription_keys(&name);
    if source == SubscriptionSource::NodeSettings {
        let message = format!(
            "subscription {name} is the node's own (its --client-metrics or [[client_metrics]] setting): change it there"
        );
        return page.error(409, "The node's own", &message);
    }
    if keys.is_empty() {
        return page.error(404, "No such subscription", &format!("no client metrics subscription is named {name:?}"));
    }
    if form.get("confirm") != Some("yes") {
        let mut body = Html::new();
        body.raw("<p>Remove subscription <b>").text(&name).raw("</b>? The clients it matched stop pushing what ");
        body.raw("only it asked for at their next push.</p>");
        page.form_open(&mut body, &format!("{SUBSCRIPTIONS}/remove"));
        hidden(&mut body, "name", &name);
        hidden(&mut body, "confirm", "yes");
        body.raw("<button id=\"confirm\" class=\"danger\">Yes, remove it</button> ").link("/clients", "Cancel");
        body.raw("</form>");
        return page.render(200, "Remove the subscription?", body);
    }
    let changes = keys.keys().map(|key| (key.kafka_name().to_owned(), None)).collect();
    match alter(console, &name, changes, false).await {
        Ok(()) => {
            tracing::info!(subscription = %name, "client metrics subscription removed from the console");
            let mut body = Html::new();
            body.raw("<p class=\"ok\" id=\"removed\">Subscription ").text(&name).raw(" removed.</p><p>");
            body.link("/clients", "Clients").raw("</p>");
            page.render(200, "Subscription removed", body)
        }
        Err((status, message)) => page.error(status, "Subscription not removed", &message),
    }
}
