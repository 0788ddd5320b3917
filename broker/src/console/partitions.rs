//! Changes to a topic's partitions after a confirmation: adding partitions (`TopicAdmin/AddPartitions`) and
//! deleting the records below an offset (`TopicAdmin/DeleteRecords`, Kafka's DeleteRecords, what Kafka UIs call
//! purging a topic), through the service's own handlers. On a cluster only a partition's leader deletes its
//! records: those this node does not lead are sent on to their leaders (`leader::delete_records`).

use rill_protocol::v1::{self, topic_admin_server::TopicAdmin};

use super::html::{url_encode, Form, Html};
use super::layout::{count, hidden, Page};
use super::{status_response, Console};
use crate::metrics::admin_http::Response;

async fn describe(console: &Console, page: Page<'_>, name: &str) -> Result<v1::DescribeTopicResponse, Response> {
    let request = page.request(v1::DescribeTopicRequest { name: name.to_string(), auto_create: false });
    match console.service.describe_topic(request).await {
        Ok(answer) => Ok(answer.into_inner()),
        Err(status) => Err(status_response(page, "Topic not found", &status)),
    }
}

fn read_only(page: Page<'_>, what: &str) -> Option<Response> {
    page.is_read_only.then(|| page.error(403, "Read-only console", &format!("{what} from a read-only console.")))
}

pub async fn add_form(console: &Console, page: Page<'_>, name: &str) -> Response {
    if let Some(refusal) = read_only(page, "Partitions cannot be added") {
        return refusal;
    }
    let described = match describe(console, page, name).await {
        Ok(described) => described,
        Err(refusal) => return refusal,
    };
    let current = described.topic.map_or(0, |t| t.partition_count);
    let mut body = Html::new();
    body.raw("<p>Topic <b>").text(name).raw("</b> has ").text(current).raw(" partition(s). ");
    body.raw("A topic's partitions can be added to, never taken away.</p>");
    page.form_open(&mut body, &format!("/topics/{}/partitions", url_encode(name)));
    body.raw("<fieldset class=\"stack\"><label>New partition count <input name=\"partitions\" type=\"number\" ");
    body.raw("required min=\"").text(current + 1).raw("\" value=\"").text(current + 1).raw("\"></label>");
    body.raw("<button>Add…</button></fieldset></form>");
    page.render(200, &format!("Add partitions to {name}"), body)
}

pub async fn add(console: &Console, page: Page<'_>, name: &str, form: &Form) -> Response {
    let what = "a partition count (a whole number, larger than the topic's)";
    let partitions = match form.number::<u32>("partitions", what) {
        Ok(Some(partitions)) => partitions,
        Ok(None) => return page.error(400, "Bad partition count", &format!("partitions is missing: give {what}")),
        Err(message) => return page.error(400, "Bad partition count", &message),
    };
    let encoded = url_encode(name);
    if form.get("confirm") != Some("yes") {
        let described = match describe(console, page, name).await {
            Ok(described) => described,
            Err(refusal) => return refusal,
        };
        let current = described.topic.map_or(0, |t| t.partition_count);
        if partitions <= current {
            let message = format!("partitions {partitions} is not {what}: it has {current}");
            return page.error(400, "Bad partition count", &message);
        }
        let mut body = Html::new();
        body.raw("<p>Grow topic <b>").text(name).raw("</b> from ").text(current).raw(" to ").text(partitions);
        body.raw(" partitions? Records with a key may go to another partition than before, as on Kafka; ");
        body.raw("this cannot be undone.</p>");
        page.form_open(&mut body, &format!("/topics/{encoded}/partitions"));
        hidden(&mut body, "partitions", &partitions.to_string());
        hidden(&mut body, "confirm", "yes");
        body.raw("<button id=\"confirm\">Yes, add them</button> ");
        body.link(&format!("/topics/{encoded}"), "Cancel").raw("</form>");
        return page.render(200, "Add partitions?", body);
    }
    let request = v1::AddPartitionsRequest { name: name.to_string(), new_partition_count: partitions };
    match console.service.add_partitions(page.request(request)).await {
        Ok(_) => {
            tracing::info!(topic = %name, partitions, "partitions added from the console");
            let mut body = Html::new();
            body.raw("<p class=\"ok\">Topic ").link(&format!("/topics/{encoded}"), name);
            body.raw(" has ").text(partitions).raw(" partitions.</p>");
            page.render(200, "Partitions added", body)
        }
        Err(status) => status_response(page, "Partitions not added", &status),
    }
}

pub async fn delete_records_form(console: &Console, page: Page<'_>, name: &str) -> Response {
    if let Some(refusal) = read_only(page, "Records cannot be deleted") {
        return refusal;
    }
    let described = match describe(console, page, name).await {
        Ok(described) => described,
        Err(refusal) => return refusal,
    };
    let mut body = Html::new();
    body.raw("<p>Deleting records moves a partition's start offset forward: no record below it is read again, and ");
    body.raw("consumers asking for the earliest offset start there. It cannot be undone.</p>");
    body.raw("<table id=\"partitions\"><tr><th class=\"num\">partition</th><th class=\"num\">start offset</th>");
    body.raw("<th class=\"num\">end offset</th></tr>");
    for partition in &described.partitions {
        body.raw("<tr><td class=\"num\">").text(partition.partition).raw("</td><td class=\"num\">");
        body.text(count(partition.log_start_offset)).raw("</td><td class=\"num\">");
        body.text(count(partition.high_watermark)).raw("</td></tr>");
    }
    body.raw("</table>");
    page.form_open(&mut body, &format!("/topics/{}/delete-records", url_encode(name)));
    body.raw("<fieldset class=\"stack\"><label>Partition (empty: every partition) <input name=\"partition\"></label>");
    body.raw("<label>Delete the records before offset (empty: every record, up to the end offset) ");
    body.raw("<input name=\"offset\"></label><button>Delete…</button></fieldset></form>");
    page.render(200, &format!("Delete records of {name}"), body)
}

pub async fn delete_records(console: &Console, page: Page<'_>, name: &str, form: &Form) -> Response {
    let partition = match form.number::<u32>("partition", "a partition number (0 or more), or empty for all") {
        Ok(partition) => partition,
        Err(message) => return page.error(400, "Bad partition", &message),
    };
    let what = "an offset (a whole number, 0 or more), or empty for every record";
    let offset = match form.number::<i64>("offset", what) {
        Ok(Some(offset)) if offset < 0 => {
            return page.error(400, "Bad offset", &format!("offset {offset} is not {what}"))
        }
        Ok(offset) => offset,
        Err(message) => return page.error(400, "Bad offset", &message),
    };
    let described = match describe(console, page, name).await {
        Ok(described) => described,
        Err(refusal) => return refusal,
    };
    let partitions: Vec<u32> = match partition {
        Some(p) if described.partitions.iter().any(|d| d.partition == p) => vec![p],
        Some(p) => {
            let count = described.partitions.len();
            let message = format!("topic {name} has no partition {p}: its partitions are 0 to {}", count.max(1) - 1);
            return page.error(404, "No such partition", &message);
        }
        None => described.partitions.iter().map(|d| d.partition).collect(),
    };
    let encoded = url_encode(name);
    let below = offset.map_or("the end offset".to_string(), |o| format!("offset {o}"));
    if form.get("confirm") != Some("yes") {
        let which = partition.map_or("every partition".to_string(), |p| format!("partition {p}"));
        let mut body = Html::new();
        body.raw("<p>Delete the records of topic <b>").text(name).raw("</b> below ").text(&below).raw(" in ");
        body.text(which).raw("? This cannot be undone.</p>");
        page.form_open(&mut body, &format!("/topics/{encoded}/delete-records"));
        hidden(&mut body, "partition", form.get("partition").unwrap_or(""));
        hidden(&mut body, "offset", form.get("offset").unwrap_or(""));
        hidden(&mut body, "confirm", "yes");
        body.raw("<button id=\"confirm\" class=\"danger\">Yes, delete them</button> ");
        body.link(&format!("/topics/{encoded}"), "Cancel").raw("</form>");
        return page.render(200, "Delete records?", body);
    }
    let request = v1::DeleteRecordsRequest {
        topic: name.to_string(),
        partitions: partitions
            .iter()
            .map(|&partition| v1::DeleteRecordsBefore { partition, offset: offset.unwrap_or(-1) })
            .collect(),
        timeout_ms: 0,
    };
    let results = match super::leader::delete_records(console, page, request).await {
        Ok(results) => results,
        Err(status) => return status_response(page, "Records not deleted", &status),
    };
    let refused = results.iter().filter(|r| !r.error_reason.is_empty()).count();
    tracing::info!(topic = %name, partitions = results.len(), refused, "records deleted from the console");
    let mut body = Html::new();
    if refused == 0 {
        body.raw("<p class=\"ok\">Records of ").link(&format!("/topics/{encoded}"), name);
        body.raw(" below ").text(&below).raw(" deleted.</p>");
    } else {
        body.raw("<p class=\"error\" role=\"alert\">").text(refused).raw(" of ").text(results.len());
        body.raw(" partition(s) refused; the others deleted their records below ").text(&below).raw(".</p>");
    }
    body.raw("<table id=\"deleted\"><tr><th class=\"num\">partition</th><th class=\"num\">start offset now</th>");
    body.raw("<th>refused</th></tr>");
    for result in &results {
        body.raw("<tr><td class=\"num\">").text(result.partition).raw("</td><td class=\"num\">");
        if result.low_watermark >= 0 {
            body.text(count(result.low_watermark));
        }
        body.raw("</td>").cell(&result.error_message).raw("</tr>");
    }
    body.raw("</table><p>").link(&format!("/topics/{encoded}"), "Back to the topic").raw("</p>");
    // An offset past a partition's end is the form's mistake; anything else (a leader gone, replicas lagging) the
    // cluster's state.
    let status = match results.iter().find(|r| !r.error_reason.is_empty()) {
        None => 200,
        Some(r) if r.error_reason == rill_protocol::reason::Reason::OffsetOutOfRange.as_str() => 400,
        Some(_) => 409,
    };
    page.render(status, if refused == 0 { "Records deleted" } else { "Records not all deleted" }, body)
}
