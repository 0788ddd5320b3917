//! The message browser (from an offset, a timestamp, the earliest or the latest records; filtered by key or
//! substring; shown as text, pretty JSON, hex or base64; downloaded as JSON) and producing a test message, over
//! `Records`' own `Fetch`, `ListOffsets` and `Produce` handlers: this node's, or on a cluster the partition
//! leader's (`leader.rs`).

use base64::Engine;
use bytes::Bytes;
use rill_protocol::v1;

use super::html::{url_encode, Form, Html};
use super::layout::{count, parse_timestamp, timestamp, Page};
use super::{status_response, Console};
use crate::metrics::admin_http::Response;

/// Records a page shows by default, and at most.
const DEFAULT_LIMIT: usize = 50;
const MAX_LIMIT: usize = 500;
/// Bytes of records one page reads at most while looking for matches: a filter that matches nothing costs this,
/// not the whole partition; the page then offers to go on from where it stopped.
pub const SCAN_BYTES_MAX: usize = 4 << 20;
/// Bytes asked of a page's first fetch, doubled for each further one up to `FETCH_BYTES_MAX`: a page of 50
/// records should not decode a megabyte of them (every record of what a fetch returns is decoded).
const FETCH_BYTES_FIRST: u32 = 64 << 10;
const FETCH_BYTES_MAX: u32 = 1 << 20;

/// How binary keys, values and headers are shown.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Hex,
    Base64,
}

/// What the browser was asked for.
struct Query {
    partition: u32,
    from: &'static str,
    offset: Option<i64>,
    timestamp: Option<String>,
    limit: usize,
    key: Option<String>,
    contains: Option<String>,
    encoding: Encoding,
}

fn parse_query(form: &Form) -> Result<Query, String> {
    let partition = form.number("partition", "a partition number (0 or more)")?.unwrap_or(0);
    let offset = form.number::<i64>("offset", "an offset (a whole number)")?;
    let timestamp = form.get("timestamp").map(str::to_string);
    let from = match form.get("from") {
        Some("earliest") => "earliest",
        Some("offset") => "offset",
        Some("timestamp") => "timestamp",
        Some("latest") => "latest",
        None if offset.is_some() => "offset",
        None if timestamp.is_some() => "timestamp",
        None => "latest",
        Some(other) => return Err(format!("from {other:?} is not one of latest, earliest, offset, timestamp")),
    };
    let limit = form.number::<usize>("limit", "a count of records (1 to 500)")?.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(format!("limit {limit} is not between 1 and {MAX_LIMIT}"));
    }
    let encoding = match form.get("encoding") {
        None | Some("hex") => Encoding::Hex,
        Some("base64") => Encoding::Base64,
        Some(other) => return Err(format!("encoding {other:?} is not hex or base64")),
    };
    Ok(Query {
        partition,
        from,
        offset,
        timestamp,
        limit,
        key: form.get("key").map(str::to_string),
        contains: form.get("contains").map(str::to_string),
        encoding,
    })
}

/// What one page read.
struct Read {
    records: Vec<v1::FetchedRecord>,
    first_offset: i64,
    /// Where the next page starts.
    next_offset: i64,
    log_start_offset: i64,
    high_watermark: i64,
}

/// Reads the records a query asks for; an error is an answer already (a refusal of the service, or bad input).
async fn read(console: &Console, page: Page<'_>, topic: &str, query: &Query) -> Result<Read, Response> {
    let ends = list_offset(console, page, topic, query.partition, v1::OffsetSpec::Latest, 0)
        .await
        .map_err(|s| status_response(page, "Messages could not be read", &s))?;
    let (log_start_offset, high_watermark) = (ends.log_start_offset, ends.high_watermark);
    let start = match query.from {
        "earliest" => log_start_offset,
        "latest" => (high_watermark - query.limit as i64).max(log_start_offset),
        "offset" => {
            let offset = query.offset.unwrap_or(log_start_offset);
            if offset < log_start_offset || offset > high_watermark {
                return Err(page.error(
                    400,
                    "Offset out of range",
                    &format!(
                        "offset {offset} is outside partition {}'s records: from {log_start_offset} to {high_watermark}",
                        query.partition
                    ),
                ));
            }
            offset
        }
        _ => {
            let text = query.timestamp.as_deref().unwrap_or("");
            let Some(timestamp_ms) = parse_timestamp(text) else {
                return Err(page.error(
                    400,
                    "Bad timestamp",
                    &format!("timestamp {text:?} is neither YYYY-MM-DDTHH:MM[:SS] (UTC) nor milliseconds since 1970"),
                ));
            };
            list_offset(console, page, topic, query.partition, v1::OffsetSpec::Timestamp, timestamp_ms)
                .await
                .map_err(|s| status_response(page, "Messages could not be read", &s))?
                .offset
        }
    };
    let mut records = Vec::new();
    let (mut offset, mut scanned_bytes, mut fetch_bytes) = (start, 0usize, FETCH_BYTES_FIRST);
    while records.len() < query.limit && scanned_bytes < SCAN_BYTES_MAX && offset < high_watermark {
        let request = v1::FetchRequest {
            topic: topic.to_string(),
            partition: query.partition,
            offset,
            max_bytes: fetch_bytes,
            min_bytes: 0,
            max_wait_ms: 0,
            format: v1::RecordFormat::Structured as i32,
            current_leader_epoch: None,
            // What an operator browsing a topic wants: every record, those of aborted transactions too.
            isolation: v1::Isolation::ReadUncommitted as i32,
        };
        let fetched = match super::leader::fetch(console, page, request).await {
            Ok(answer) => answer,
            Err(status) => return Err(status_response(page, "Messages could not be read", &status)),
        };
        let mut next_offset = fetched.next_offset.max(offset);
        for record in fetched.records.into_iter().filter(|r| r.offset >= offset) {
            scanned_bytes += record_bytes(&record);
            if records.len() == query.limit {
                next_offset = record.offset;
                break;
            }
            if matches(&record, query) {
                next_offset = record.offset + 1;
                records.push(record);
            } else {
                next_offset = next_offset.max(record.offset + 1);
            }
        }
        if next_offset <= offset {
            break;
        }
        offset = next_offset;
        fetch_bytes = (fetch_bytes * 2).min(FETCH_BYTES_MAX);
    }
    Ok(Read { records, first_offset: start, next_offset: offset, log_start_offset, high_watermark })
}

async fn list_offset(
    console: &Console,
    page: Page<'_>,
    topic: &str,
    partition: u32,
    spec: v1::OffsetSpec,
    timestamp_ms: i64,
) -> Result<v1::PartitionOffset, tonic::Status> {
    let request = v1::ListOffsetsRequest {
        topic: topic.to_string(),
        partitions: vec![partition],
        spec: spec as i32,
        timestamp_ms,
    };
    let answer = super::leader::list_offsets(console, page, request).await?;
    answer.offsets.into_iter().next().ok_or_else(|| tonic::Status::not_found(format!("no partition {partition}")))
}

fn record_bytes(record: &v1::FetchedRecord) -> usize {
    let headers: usize = record.headers.iter().map(|h| h.key.len() + h.value.as_ref().map_or(0, Bytes::len)).sum();
    record.key.as_ref().map_or(0, Bytes::len) + record.value.as_ref().map_or(0, Bytes::len) + headers + 16
}

fn matches(record: &v1::FetchedRecord, query: &Query) -> bool {
    if let Some(key) = &query.key {
        if record.key.as_deref() != Some(key.as_bytes()) {
            return false;
        }
    }
    let Some(needle) = &query.contains else { return true };
    let needle = needle.as_bytes();
    let holds = |bytes: Option<&[u8]>| bytes.is_some_and(|b| b.windows(needle.len()).any(|w| w == needle));
    holds(record.key.as_deref())
        || holds(record.value.as_deref())
        || record.headers.iter().any(|h| holds(Some(h.key.as_bytes())) || holds(h.value.as_deref()))
}

/// Bytes as shown: text (pretty-printed when it is a JSON object or array), or binary in the chosen encoding.
fn show(html: &mut Html, bytes: Option<&[u8]>, encoding: Encoding) {
    let Some(bytes) = bytes else {
        html.raw("<span class=\"null\">null</span>");
        return;
    };
    match std::str::from_utf8(bytes) {
        Ok(text) => {
            let trimmed = text.trim_start();
            let json = (trimmed.starts_with('{') || trimmed.starts_with('['))
                .then(|| serde_json::from_str::<serde_json::Value>(text).ok())
                .flatten()
                .and_then(|value| serde_json::to_string_pretty(&value).ok());
            html.raw("<pre>").text(json.as_deref().unwrap_or(text)).raw("</pre>");
        }
        Err(_) => {
            let (label, encoded): (&'static str, String) = match encoding {
                Encoding::Hex => ("hex", bytes.iter().map(|b| format!("{b:02x}")).collect()),
                Encoding::Base64 => ("base64", base64::engine::general_purpose::STANDARD.encode(bytes)),
            };
            html.raw("<pre class=\"binary\" title=\"").raw(label).raw("\">").text(encoded).raw("</pre>");
        }
    }
}

pub async fn browse(console: &Console, page: Page<'_>, topic: &str, form: &Form) -> Response {
    let query = match parse_query(form) {
        Ok(query) => query,
        Err(message) => return page.error(400, "Bad message query", &message),
    };
    let read = match read(console, page, topic, &query).await {
        Ok(read) => read,
        Err(response) => return response,
    };
    let encoded = url_encode(topic);
    let mut body = Html::new();
    body.raw("<p>").link(&format!("/topics/{encoded}"), "Topic").raw(" · ");
    body.link(
        &format!("/topics/{encoded}/messages.json?{}", query_string(&query, read.first_offset)),
        "Download shown as JSON",
    );
    if !page.is_read_only {
        body.raw(" · ")
            .link(&format!("/topics/{encoded}/produce?partition={}", query.partition), "Produce a test message");
    }
    body.raw("</p>");
    search_form(&mut body, &encoded, &query);
    body.raw("<p id=\"range\">").text(format!(
        "Partition {} holds offsets {} to {}. Showing {} record(s) from offset {}{}.",
        query.partition,
        count(read.log_start_offset),
        count((read.high_watermark - 1).max(read.log_start_offset)),
        read.records.len(),
        count(read.first_offset),
        if query.key.is_some() || query.contains.is_some() { ", filtered" } else { "" }
    ));
    body.raw("</p><table id=\"messages\"><tr><th class=\"num\">offset</th><th>timestamp</th><th>key</th>");
    body.raw("<th>value</th><th>headers</th></tr>");
    for record in &read.records {
        body.raw("<tr><td class=\"num\">").text(record.offset).raw("</td>").cell(timestamp(record.timestamp_ms));
        body.raw("<td class=\"key\">");
        show(&mut body, record.key.as_deref(), query.encoding);
        body.raw("</td><td class=\"value\">");
        show(&mut body, record.value.as_deref(), query.encoding);
        body.raw("</td><td class=\"headers\">");
        for header in &record.headers {
            body.raw("<div><b>").text(&header.key).raw("</b>: ");
            show(&mut body, header.value.as_deref(), query.encoding);
            body.raw("</div>");
        }
        body.raw("</td></tr>");
    }
    body.raw("</table>");
    if read.next_offset < read.high_watermark {
        let next = Query { from: "offset", offset: Some(read.next_offset), ..clone_query(&query) };
        body.raw("<p class=\"pager\">").link(
            &format!("/topics/{encoded}/messages?{}", query_string(&next, read.next_offset)),
            format!("next page from offset {} →", read.next_offset),
        );
        body.raw("</p>");
    }
    page.render(200, &format!("Messages of {topic}"), body)
}

fn clone_query(query: &Query) -> Query {
    Query { timestamp: query.timestamp.clone(), key: query.key.clone(), contains: query.contains.clone(), ..*query }
}

/// The query as a URL query string, starting from `offset` (so a download holds exactly what is shown).
fn query_string(query: &Query, offset: i64) -> String {
    let mut text = format!("partition={}&from=offset&offset={offset}&limit={}", query.partition, query.limit);
    for (name, value) in [("key", &query.key), ("contains", &query.contains)] {
        if let Some(value) = value {
            text.push_str(&format!("&{name}={}", url_encode(value)));
        }
    }
    if query.encoding == Encoding::Base64 {
        text.push_str("&encoding=base64");
    }
    text
}

fn search_form(body: &mut Html, encoded_topic: &str, query: &Query) {
    body.raw("<form method=\"get\" action=\"").text(format!("/topics/{encoded_topic}/messages")).raw("\">");
    body.raw("<fieldset><label>partition <input name=\"partition\" type=\"number\" min=\"0\" value=\"");
    body.text(query.partition).raw("\"></label> <label>from <select name=\"from\">");
    for choice in ["latest", "earliest", "offset", "timestamp"] {
        body.raw("<option");
        if choice == query.from {
            body.raw(" selected");
        }
        body.raw(">").raw(choice).raw("</option>");
    }
    body.raw("</select></label> <label>offset <input name=\"offset\" value=\"");
    body.text(query.offset.map(|o| o.to_string()).unwrap_or_default());
    body.raw("\"></label> <label>timestamp <input name=\"timestamp\" placeholder=\"2024-05-01T12:00 (UTC)\" value=\"");
    body.text(query.timestamp.as_deref().unwrap_or("")).raw("\"></label> <label>limit <input name=\"limit\" value=\"");
    body.text(query.limit).raw("\"></label><br><label>key is <input name=\"key\" value=\"");
    body.text(query.key.as_deref().unwrap_or("")).raw("\"></label> <label>contains <input name=\"contains\" value=\"");
    body.text(query.contains.as_deref().unwrap_or("")).raw("\"></label> <label>binary as <select name=\"encoding\">");
    body.raw(if query.encoding == Encoding::Hex {
        "<option selected>hex</option><option>base64</option>"
    } else {
        "<option>hex</option><option selected>base64</option>"
    });
    body.raw("</select></label> <button>Show</button></fieldset></form>");
}

pub async fn download(console: &Console, page: Page<'_>, topic: &str, form: &Form) -> Response {
    let query = match parse_query(form) {
        Ok(query) => query,
        Err(message) => return Response::text(400, format!("{message}\n")),
    };
    let read = match read(console, page, topic, &query).await {
        Ok(read) => read,
        Err(response) => return response,
    };
    let bytes_json = |bytes: Option<&Bytes>| match bytes {
        None => serde_json::Value::Null,
        Some(bytes) => match std::str::from_utf8(bytes) {
            Ok(text) => serde_json::Value::String(text.to_string()),
            Err(_) => serde_json::json!({ "base64": base64::engine::general_purpose::STANDARD.encode(bytes) }),
        },
    };
    let records: Vec<serde_json::Value> = read
        .records
        .iter()
        .map(|r| {
            serde_json::json!({
                "partition": query.partition,
                "offset": r.offset,
                "timestamp_ms": r.timestamp_ms,
                "key": bytes_json(r.key.as_ref()),
                "value": bytes_json(r.value.as_ref()),
                "headers": r.headers.iter().map(|h| serde_json::json!({"key": h.key, "value": bytes_json(h.value.as_ref())})).collect::<Vec<_>>(),
            })
        })
        .collect();
    let body =
        serde_json::to_vec_pretty(&serde_json::json!({ "topic": topic, "records": records })).unwrap_or_default();
    let file_name: String =
        topic.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect();
    Response {
        status: 200,
        content_type: "application/json",
        headers: vec![(
            "content-disposition",
            format!("attachment; filename=\"{file_name}-{}-{}.json\"", query.partition, read.first_offset),
        )],
        body,
    }
}

pub fn produce_form(page: Page<'_>, topic: &str, query: &Form) -> Response {
    if page.is_read_only {
        return page.error(403, "Read-only console", "Messages cannot be produced from a read-only console.");
    }
    let mut body = Html::new();
    page.form_open(&mut body, &format!("/topics/{}/produce", url_encode(topic)));
    body.raw(
        "<fieldset class=\"stack\"><label>Partition (empty: by key, or round-robin) <input name=\"partition\" value=\"",
    );
    body.text(query.get("partition").unwrap_or("")).raw("\"></label>");
    body.raw("<label>Key (empty: none) <input name=\"key\"></label>");
    body.raw("<label>Value <textarea name=\"value\" rows=\"6\" cols=\"70\"></textarea></label>");
    body.raw("<label>Headers, one <code>name: value</code> a line <textarea name=\"headers\" rows=\"3\" cols=\"70\"></textarea></label>");
    body.raw("<button id=\"produce\">Produce</button></fieldset></form>");
    page.render(200, &format!("Produce to {topic}"), body)
}

pub async fn produce(console: &Console, page: Page<'_>, topic: &str, form: &Form) -> Response {
    let partition = match form.number::<u32>("partition", "a partition number (0 or more), or empty") {
        Ok(partition) => partition,
        Err(message) => return page.error(400, "Bad partition", &message),
    };
    let mut headers = Vec::new();
    for line in form.get("headers").unwrap_or("").lines().filter(|l| !l.trim().is_empty()) {
        let Some((name, value)) = line.split_once(':') else {
            return page.error(400, "Bad header", &format!("header line {line:?} has no ':': write name: value"));
        };
        headers.push(v1::RecordHeader {
            key: name.trim().to_string(),
            value: Some(Bytes::copy_from_slice(value.trim().as_bytes())),
        });
    }
    let record = v1::Record {
        key: form.get("key").map(|k| Bytes::copy_from_slice(k.as_bytes())),
        value: Some(Bytes::copy_from_slice(form.get("value").unwrap_or("").as_bytes())),
        headers,
        timestamp_ms: 0,
    };
    let request = v1::ProduceRequest {
        topic: topic.to_string(),
        partition,
        records: Some(v1::produce_request::Records::RecordList(v1::RecordList { records: vec![record] })),
        acks: v1::Acks::Leader as i32,
    };
    match super::leader::produce(console, page, request).await {
        Ok(answer) => {
            let mut body = Html::new();
            body.raw("<p class=\"ok\" id=\"produced\">")
                .text(format!("Produced to partition {} at offset {}.", answer.partition, answer.base_offset));
            body.raw("</p><p>").link(
                &format!(
                    "/topics/{}/messages?partition={}&from=offset&offset={}",
                    url_encode(topic),
                    answer.partition,
                    answer.base_offset
                ),
                "See it in the message browser",
            );
            body.raw("</p>");
            page.render(200, "Message produced", body)
        }
        Err(status) => status_response(page, "Message not produced", &status),
    }
}
