//! Topics: the list with search, a topic's partitions and settings, and creating and deleting topics after a
//! confirmation, through `TopicAdmin`'s own handlers.

use rill_protocol::v1::{self, topic_admin_server::TopicAdmin};

use super::html::{url_encode, Form, Html};
use super::layout::{bytes, count, duration_ms, hidden, Page};
use super::live::Live;
use super::{status_response, Console};
use crate::metrics::admin_http::Response;

/// Topics per page of the list: a page stays small however many topics there are.
pub const TOPICS_PER_PAGE: usize = 100;

pub async fn list(console: &Console, page: Page<'_>, query: &Form) -> Response {
    let mut topics = match console.service.list_topics(page.request(v1::ListTopicsRequest {})).await {
        Ok(answer) => answer.into_inner().topics,
        Err(status) => return status_response(page, "Topics could not be listed", &status),
    };
    let search = query.get("q").unwrap_or("");
    if !search.is_empty() {
        let needle = search.to_lowercase();
        topics.retain(|t| t.name.to_lowercase().contains(&needle));
    }
    topics.sort_by(|a, b| a.name.cmp(&b.name));
    let page_count = topics.len().div_ceil(TOPICS_PER_PAGE).max(1);
    let number = match query.number::<usize>("page", "a page number (1 or more)") {
        Ok(number) => number.unwrap_or(1).clamp(1, page_count),
        Err(message) => return page.error(400, "Bad page number", &message),
    };
    let shown = &topics[(number - 1) * TOPICS_PER_PAGE..topics.len().min(number * TOPICS_PER_PAGE)];
    let mut body = Html::new();
    body.raw("<form method=\"get\" action=\"/topics\"><input type=\"search\" name=\"q\" placeholder=\"search topics\" value=\"");
    body.text(search).raw("\"> <button>Search</button></form>");
    body.raw("<p id=\"topic-count\">").text(format!("{} topics", count(topics.len() as u64)));
    if !search.is_empty() {
        body.raw(" matching ").raw("<q>").text(search).raw("</q>");
    }
    body.raw(".</p>");
    topic_defaults(console, page, &mut body).await;
    body.raw("<table id=\"topics\"><tr><th>topic</th><th class=\"num\">partitions</th><th class=\"num\">replicas</th>");
    body.raw("<th>retention</th><th class=\"num\">size on this node</th></tr>");
    for topic in shown {
        let config = topic.config.clone().unwrap_or_default();
        let size: u64 = console
            .node
            .registry
            .topic(&topic.name)
            .map(|t| t.partitions().iter().map(|p| p.log().size_bytes()).sum())
            .unwrap_or(0);
        body.raw("<tr><td>").link(&format!("/topics/{}", url_encode(&topic.name)), &topic.name).raw("</td>");
        body.raw("<td class=\"num\">").text(topic.partition_count).raw("</td>");
        body.raw("<td class=\"num\">").text(topic.replication_factor).raw("</td>");
        body.cell(duration_ms(config.retention_ms)).raw("<td class=\"num\">").text(bytes(size)).raw("</td></tr>");
    }
    body.raw("</table>");
    pager(&mut body, "/topics", search, number, page_count);
    page.render(200, "Topics", body)
}

/// The cluster's topic defaults that are set, which every topic not setting the key follows; nothing for a
/// user who may not describe the cluster's configs (the list of topics is theirs all the same).
async fn topic_defaults(console: &Console, page: Page<'_>, body: &mut Html) {
    let request = page.request(v1::DescribeTopicDefaultsRequest {});
    let Ok(answer) = console.service.describe_topic_defaults(request).await else { return };
    let set: Vec<String> = answer
        .into_inner()
        .defaults
        .into_iter()
        .filter(|default| default.is_set)
        .map(|default| format!("{}={}", default.key, default.value))
        .collect();
    body.raw("<p id=\"topic-defaults\">");
    if set.is_empty() {
        body.text("Topic defaults: the brokers' own (none set for the cluster; rill topic defaults sets them).");
    } else {
        body.text(format!(
            "Topic defaults set for the cluster: {}. Every topic that does not set the key itself follows them.",
            set.join(", ")
        ));
    }
    body.raw(" ").link("/topic-defaults", if page.is_read_only { "All topic defaults" } else { "Change them" });
    body.raw("</p>");
}

/// Previous/next links keeping the search.
pub fn pager(body: &mut Html, base: &str, search: &str, number: usize, page_count: usize) {
    if page_count <= 1 {
        return;
    }
    body.raw("<p class=\"pager\">");
    let href = |n: usize| format!("{base}?q={}&page={n}", url_encode(search));
    if number > 1 {
        body.link(&href(number - 1), "← previous");
    }
    body.text(format!("page {number} of {page_count}"));
    if number < page_count {
        body.raw(" ").link(&href(number + 1), "next →");
    }
    body.raw("</p>");
}

pub async fn show(console: &Console, page: Page<'_>, name: &str, live: Live) -> Response {
    let described = match console
        .service
        .describe_topic(page.request(v1::DescribeTopicRequest { name: name.to_string(), auto_create: false }))
        .await
    {
        Ok(answer) => answer.into_inner(),
        Err(status) => return status_response(page, "Topic not found", &status),
    };
    let info = described.topic.unwrap_or_default();
    let config = info.config.unwrap_or_default();
    let encoded = url_encode(name);
    let mut body = Html::new();
    live.control(&mut body, &format!("/topics/{encoded}"));
    body.raw("<p>").link(&format!("/topics/{encoded}/messages"), "Browse messages");
    if !page.is_read_only {
        body.raw(" · ").link(&format!("/topics/{encoded}/produce"), "Produce a test message");
        body.raw(" · ").link(&format!("/topics/{encoded}/settings"), "Edit settings");
        body.raw(" · ").link(&format!("/topics/{encoded}/partitions"), "Add partitions");
        body.raw(" · ").link(&format!("/topics/{encoded}/delete-records"), "Delete records");
        body.raw(" · ").link(&format!("/topics/{encoded}/delete"), "Delete topic");
    } else {
        body.raw(" · ").link(&format!("/topics/{encoded}/settings"), "All settings");
    }
    body.raw("</p><h2>Partitions</h2><table id=\"partitions\"><tr><th class=\"num\">partition</th>");
    body.raw("<th class=\"num\">start offset</th><th class=\"num\">end offset</th><th class=\"num\">records</th>");
    body.raw("<th class=\"num\">size</th><th class=\"num\">segments</th><th class=\"num\">records/s in</th>");
    body.raw("<th class=\"num\">records/s out</th>");
    // On a cluster: who leads each partition, who holds it and who is in sync (as `rill topic describe`).
    let is_cluster = console.controller.is_some();
    if is_cluster {
        body.raw("<th class=\"num\">leader</th><th>replicas</th><th>in sync</th><th class=\"num\">leader epoch</th>");
    }
    body.raw("</tr>");
    for partition in &described.partitions {
        let rate = console.throughput.partition_rate(name, partition.partition);
        body.raw("<tr><td class=\"num\">").link(
            &format!("/topics/{encoded}/messages?partition={}&from=earliest", partition.partition),
            partition.partition,
        );
        for value in [
            count(partition.log_start_offset),
            count(partition.high_watermark),
            count(partition.high_watermark - partition.log_start_offset),
            bytes(partition.size_bytes),
            count(partition.segment_count),
            format!("{:.1}", rate.records_in_per_s),
            format!("{:.1}", rate.records_out_per_s),
        ] {
            body.raw("</td><td class=\"num\">").text(value);
        }
        if is_cluster {
            let nodes = |ids: &[u64]| ids.iter().map(u64::to_string).collect::<Vec<_>>().join(", ");
            let leader = partition.leader.map_or("none".to_string(), |id| id.to_string());
            body.raw("</td><td class=\"num leader\">").text(leader).raw("</td><td class=\"replicas\">");
            body.text(nodes(&partition.replicas)).raw("</td><td class=\"isr\">").text(nodes(&partition.isr));
            body.raw("</td><td class=\"num\">").text(partition.leader_epoch);
        }
        body.raw("</td></tr>");
    }
    body.raw(
        "</table><p class=\"muted\">Rates are over the last 5-second sample.</p><h2>Settings</h2><table id=\"settings\">",
    );
    let durability = match v1::DurabilityPolicy::try_from(config.durability) {
        Ok(v1::DurabilityPolicy::Always) => "always",
        Ok(v1::DurabilityPolicy::Never) => "never",
        _ => "interval",
    };
    let rows: [(&'static str, String); 7] = [
        ("retention by age", duration_ms(config.retention_ms)),
        ("retention by size", config.retention_bytes.filter(|b| *b != u64::MAX).map_or("none".to_string(), bytes)),
        ("segment size", config.segment_bytes.map_or("default".to_string(), bytes)),
        ("durability", durability.to_string()),
        ("flush interval", duration_ms(config.flush_interval_ms)),
        ("largest batch", config.max_batch_bytes.map_or("default".to_string(), bytes)),
        ("replication factor", info.replication_factor.to_string()),
    ];
    for (label, value) in rows {
        body.raw("<tr><th>").raw(label).raw("</th>").cell(value).raw("</tr>");
    }
    body.raw("</table><p id=\"own-settings\">");
    if info.overridden_keys.is_empty() {
        body.text("Set on the topic: none; every setting follows the defaults.");
    } else {
        body.text(format!("Set on the topic: {}; the others follow the defaults.", info.overridden_keys.join(", ")));
    }
    body.raw("</p>");
    page.render_live(200, &format!("Topic {name}"), body, live)
}

pub fn create_form(console: &Console, page: Page<'_>, query: &Form) -> Response {
    if page.is_read_only {
        return page.error(403, "Read-only console", "Topics cannot be created from a read-only console.");
    }
    let mut body = Html::new();
    page.form_open(&mut body, "/create-topic");
    body.raw("<fieldset class=\"stack\"><label>Name <input name=\"name\" required maxlength=\"249\" value=\"");
    body.text(query.get("name").unwrap_or("")).raw("\"></label>");
    body.raw("<label>Partitions <input name=\"partitions\" type=\"number\" min=\"1\" value=\"");
    body.text(console.node.config.default_partitions).raw("\"></label>");
    body.raw("<label>Retention in ms (empty: the broker's default, -1: forever) <input name=\"retention_ms\"></label>");
    body.raw("<label>Retention in bytes per partition (empty: no limit) <input name=\"retention_bytes\"></label>");
    body.raw("<button>Create…</button></fieldset></form>");
    body.raw(
        "<p class=\"muted\">A name is 1 to 249 characters of letters, digits, <code>.</code>, <code>_</code> and ",
    );
    body.raw("<code>-</code>; names starting with <code>__</code> are the broker's own.</p>");
    page.render(200, "Create topic", body)
}

pub async fn create(console: &Console, page: Page<'_>, form: &Form) -> Response {
    let name = form.get("name").unwrap_or("").trim().to_string();
    let what = "a partition count (a whole number, 1 or more)";
    let partitions = match form.number::<u32>("partitions", what) {
        // 0 would ask the broker for its default: left empty is how the form asks that.
        Ok(Some(0)) => return page.error(400, "Bad partition count", &format!("\"0\" is not {what}")),
        Ok(partitions) => partitions.unwrap_or(console.node.config.default_partitions),
        Err(message) => return page.error(400, "Bad partition count", &message),
    };
    let retention_ms = match form.get("retention_ms").map(str::trim) {
        Some("-1") => Some(u64::MAX),
        _ => match form.number::<u64>("retention_ms", "milliseconds (a whole number) or -1 for forever") {
            Ok(ms) => ms,
            Err(message) => return page.error(400, "Bad retention", &message),
        },
    };
    let retention_bytes = match form.number::<u64>("retention_bytes", "a number of bytes") {
        Ok(bytes) => bytes,
        Err(message) => return page.error(400, "Bad retention", &message),
    };
    if form.get("confirm") != Some("yes") {
        let mut body = Html::new();
        body.raw("<p>Create topic <b>").text(&name).raw("</b> with ").text(partitions).raw(" partition(s), retention ");
        body.text(duration_ms(retention_ms.or(console.node.config.default_retention_ms)));
        body.raw("?</p>");
        page.form_open(&mut body, "/create-topic");
        hidden(&mut body, "name", &name);
        hidden(&mut body, "partitions", &partitions.to_string());
        hidden(&mut body, "retention_ms", form.get("retention_ms").unwrap_or(""));
        hidden(&mut body, "retention_bytes", form.get("retention_bytes").unwrap_or(""));
        hidden(&mut body, "confirm", "yes");
        body.raw("<button id=\"confirm\">Yes, create it</button> <a href=\"/topics\">Cancel</a></form>");
        return page.render(200, "Create topic?", body);
    }
    let request = v1::CreateTopicRequest {
        name: name.clone(),
        partition_count: partitions,
        config: Some(v1::TopicConfig { retention_ms, retention_bytes, ..Default::default() }),
        replication_factor: None,
        min_insync_replicas: None,
    };
    match console.service.create_topic(page.request(request)).await {
        Ok(_) => {
            tracing::info!(topic = %name, partitions, "topic created from the console");
            let mut body = Html::new();
            body.raw("<p class=\"ok\">Topic ").link(&format!("/topics/{}", url_encode(&name)), &name);
            body.raw(" created.</p>");
            page.render(200, "Topic created", body)
        }
        Err(status) => status_response(page, "Topic not created", &status),
    }
}

pub fn delete_confirm(page: Page<'_>, name: &str) -> Response {
    if page.is_read_only {
        return page.error(403, "Read-only console", "Topics cannot be deleted from a read-only console.");
    }
    let mut body = Html::new();
    body.raw("<p>Delete topic <b>").text(name).raw("</b> and every record in it? This cannot be undone.</p>");
    page.form_open(&mut body, &format!("/topics/{}/delete", url_encode(name)));
    hidden(&mut body, "confirm", "yes");
    body.raw("<button id=\"confirm\" class=\"danger\">Yes, delete it</button> ");
    body.link(&format!("/topics/{}", url_encode(name)), "Cancel").raw("</form>");
    page.render(200, "Delete topic?", body)
}

pub async fn delete(console: &Console, page: Page<'_>, name: &str, form: &Form) -> Response {
    if form.get("confirm") != Some("yes") {
        return delete_confirm(page, name);
    }
    match console.service.delete_topic(page.request(v1::DeleteTopicRequest { name: name.to_string() })).await {
        Ok(_) => {
            tracing::info!(topic = %name, "topic deleted from the console");
            let mut body = Html::new();
            body.raw("<p class=\"ok\">Topic <b>")
                .text(name)
                .raw("</b> deleted.</p><p><a href=\"/topics\">Topics</a></p>");
            page.render(200, "Topic deleted", body)
        }
        Err(status) => status_response(page, "Topic not deleted", &status),
    }
}
