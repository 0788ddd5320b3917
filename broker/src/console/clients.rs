//! The Kafka client instances that push their metrics to this node (KIP-714, `client_telemetry.rs`): who they
//! are (client id, software, address), what the node asks of them, when they last pushed, and the request latency
//! they measure; above them, the subscriptions that say what is asked of whom. Needs DESCRIBE_CONFIGS on the
//! cluster, as Kafka's CLIENT_METRICS resources do.

use super::html::Html;
use super::layout::Page;
use super::Console;
use crate::client_telemetry::SubscriptionSource;
use crate::metrics::admin_http::Response;

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
        body.raw("<th class=\"num\">interval</th><th>clients matched</th><th>set by</th></tr>");
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
            body.raw("</td>").cell(matches).cell(set_by).raw("</tr>");
        }
        body.raw("</table>");
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
