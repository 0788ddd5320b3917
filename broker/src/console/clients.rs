//! The Kafka client instances that push their metrics to this node (KIP-714, `client_telemetry.rs`): who they
//! are (client id, software, address), what the node asks of them, when they last pushed, and the request latency
//! they measure. Shown only while the node has a client metrics subscription; needs DESCRIBE_CONFIGS on the
//! cluster, as Kafka's CLIENT_METRICS resources do.

use super::html::Html;
use super::layout::Page;
use super::Console;
use crate::metrics::admin_http::Response;

/// Most rows shown: the instances heard from most recently.
const ROWS: usize = 500;

pub fn list(console: &Console, page: Page<'_>) -> Response {
    let telemetry = &console.node.client_telemetry;
    if !telemetry.is_on() {
        let message = "This node asks no client for its metrics: start it with --client-metrics PREFIXES, or \
                       [[client_metrics]] in its file (docs/observability.md, \"Kafka clients' own metrics\").";
        return page.error(404, "No client metrics", message);
    }
    let instances = telemetry.instances();
    let pushing = instances.iter().filter(|i| i.since_last_push.is_some()).count();
    let mut body = Html::new();
    body.raw("<div class=\"stats\"><div class=\"stat\"><b>").text(instances.len()).raw("</b>client instances</div>");
    body.raw("<div class=\"stat\"><b>").text(pushing).raw("</b>pushing</div></div>");
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
