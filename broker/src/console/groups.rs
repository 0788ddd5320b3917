//! Consumer groups: the list, a group's members, assignments and lag per partition (with a lag chart), and
//! resetting its offsets after a confirmation, through `ConsumerGroups`' own handlers. Share groups (KIP-932)
//! are listed and shown beside them: their start offsets in place of commits, and their records in flight.

use std::collections::BTreeSet;

use rill_protocol::v1::{self, consumer_groups_server::ConsumerGroups};

use super::html::{url_encode, Form, Html};
use super::lag_history::{GroupLagHistory, MAX_GROUPS};
use super::layout::{count, hidden, parse_timestamp, Page};
use super::live::Live;
use super::topics::pager;
use super::{chart, status_response, Console};
use crate::metrics::admin_http::Response;

const GROUPS_PER_PAGE: usize = 100;
/// Bars in a lag chart; a group over more partitions shows those with the most lag.
const LAG_BARS_MAX: usize = 64;

fn kind_name(kind: i32) -> &'static str {
    match v1::GroupKind::try_from(kind) {
        Ok(v1::GroupKind::Share) => "share",
        _ => "consumer",
    }
}

fn state_name(state: i32) -> &'static str {
    match v1::GroupState::try_from(state) {
        Ok(v1::GroupState::Empty) => "empty",
        Ok(v1::GroupState::Stable) => "stable",
        Ok(v1::GroupState::Reconciling) => "reconciling",
        _ => "unknown",
    }
}

pub async fn list(console: &Console, page: Page<'_>, query: &Form) -> Response {
    let mut groups = match console.service.list_groups(page.request(v1::ListGroupsRequest {})).await {
        Ok(answer) => answer.into_inner().groups,
        Err(status) => return status_response(page, "Groups could not be listed", &status),
    };
    let search = query.get("q").unwrap_or("");
    if !search.is_empty() {
        let needle = search.to_lowercase();
        groups.retain(|g| g.group.to_lowercase().contains(&needle));
    }
    groups.sort_by(|a, b| a.group.cmp(&b.group));
    let page_count = groups.len().div_ceil(GROUPS_PER_PAGE).max(1);
    let number = match query.number::<usize>("page", "a page number (1 or more)") {
        Ok(number) => number.unwrap_or(1).clamp(1, page_count),
        Err(message) => return page.error(400, "Bad page number", &message),
    };
    let mut body = Html::new();
    body.raw("<form method=\"get\" action=\"/groups\"><input type=\"search\" name=\"q\" placeholder=\"search groups\" value=\"");
    body.text(search).raw("\"> <button>Search</button></form>");
    body.raw("<table id=\"groups\"><tr><th>group</th><th>kind</th><th>state</th><th class=\"num\">members</th>");
    body.raw("<th class=\"num\">generation</th></tr>");
    for group in &groups[(number - 1) * GROUPS_PER_PAGE..groups.len().min(number * GROUPS_PER_PAGE)] {
        body.raw("<tr><td>").link(&format!("/groups/{}", url_encode(&group.group)), &group.group).raw("</td>");
        body.cell(kind_name(group.kind)).cell(state_name(group.state));
        body.raw("<td class=\"num\">").text(group.member_count);
        body.raw("</td><td class=\"num\">").text(group.generation).raw("</td></tr>");
    }
    body.raw("</table>");
    if groups.is_empty() {
        body.raw("<p class=\"muted\">No consumer groups.</p>");
    }
    pager(&mut body, "/groups", search, number, page_count);
    page.render(200, "Consumer groups", body)
}

/// Most partitions of a group page whose end is asked of their leaders at once.
const LEADER_ENDS_MAX: usize = 256;

async fn describe(console: &Console, page: Page<'_>, group: &str) -> Result<v1::DescribeGroupResponse, tonic::Status> {
    let mut described =
        super::leader::describe_group(console, page, v1::DescribeGroupRequest { group: group.to_string() }).await?;
    // On a cluster the coordinator knows the ends of the partitions it holds a replica of only (-1 for the
    // rest): those are asked of their leaders, as `rill group describe` asks them. One that does not answer
    // stays unknown.
    let unknown: Vec<usize> = (0..described.partitions.len())
        .filter(|&i| described.partitions[i].end_offset < 0)
        .take(LEADER_ENDS_MAX)
        .collect();
    let asks = unknown.iter().map(|&i| {
        let p = &described.partitions[i];
        let request = v1::ListOffsetsRequest {
            topic: p.topic.clone(),
            partitions: vec![p.partition],
            spec: v1::OffsetSpec::Latest as i32,
            timestamp_ms: 0,
        };
        super::leader::list_offsets(console, page, request)
    });
    let answers = futures_util::future::join_all(asks).await;
    for (i, answer) in unknown.into_iter().zip(answers) {
        let Some(end) = answer.ok().and_then(|a| a.offsets.into_iter().next()) else { continue };
        let p = &mut described.partitions[i];
        p.end_offset = end.high_watermark;
        p.lag = end.high_watermark - p.committed_offset.max(end.log_start_offset).min(end.high_watermark);
    }
    Ok(described)
}

pub async fn show(console: &Console, page: Page<'_>, group: &str, live: Live) -> Response {
    let described = match describe(console, page, group).await {
        Ok(described) => described,
        Err(status) => return status_response(page, "Group not found", &status),
    };
    let total_lag: i64 = described.partitions.iter().map(|p| p.lag).sum();
    let is_share = described.kind() == v1::GroupKind::Share;
    let mut body = Html::new();
    live.control(&mut body, &format!("/groups/{}", url_encode(group)));
    body.raw("<div class=\"stats\"><div class=\"stat\"><b>").text(state_name(described.state)).raw("</b>state</div>");
    body.raw("<div class=\"stat\"><b>").text(kind_name(described.kind)).raw("</b>kind</div>");
    body.raw("<div class=\"stat\"><b>").text(described.generation).raw(if is_share {
        "</b>epoch</div>"
    } else {
        "</b>generation</div>"
    });
    body.raw("<div class=\"stat\"><b>").text(described.members.len()).raw("</b>members</div>");
    body.raw("<div class=\"stat\" id=\"total-lag\"><b>").text(count(total_lag)).raw("</b>total lag</div></div>");
    body.raw("<p>").link(&format!("/groups/{}/settings", url_encode(group)), "Settings");
    if !page.is_read_only {
        body.raw(" · ").link(&format!("/groups/{}/reset", url_encode(group)), "Reset offsets");
        body.raw(" · ").link(&format!("/groups/{}/delete", url_encode(group)), "Delete group");
    }
    body.raw("</p>");
    body.raw(
        "<h2>Members</h2><table id=\"members\"><tr><th>member</th><th>client</th><th>topics</th><th>assigned</th></tr>",
    );
    for member in &described.members {
        body.raw("<tr>").cell(&member.member_id).cell(&member.client_id).cell(member.topics.join(", "));
        let assigned: Vec<String> =
            member.assigned.iter().map(|tp| format!("{} {:?}", tp.topic, tp.partitions)).collect();
        body.cell(assigned.join("; ")).raw("</tr>");
    }
    body.raw("</table>");
    if described.members.is_empty() {
        body.raw("<p class=\"muted\">No members.</p>");
    }
    lag_over_time(console, group, &mut body);
    body.raw("<h2>Lag by partition</h2>");
    let mut bars: Vec<(String, i64)> =
        described.partitions.iter().map(|p| (format!("{}/{}", p.topic, p.partition), p.lag)).collect();
    if bars.len() > LAG_BARS_MAX {
        bars.sort_by_key(|bar| std::cmp::Reverse(bar.1));
        bars.truncate(LAG_BARS_MAX);
    }
    body.fragment(chart::bars(&bars, "lag in records, a bar per partition"));
    body.raw("<table id=\"lag\"><tr><th>topic</th><th class=\"num\">partition</th><th>member</th>");
    if is_share {
        body.raw("<th class=\"num\">start</th><th class=\"num\">end offset</th><th class=\"num\">lag</th>");
        body.raw("<th class=\"num\">in flight</th></tr>");
    } else {
        body.raw("<th class=\"num\">committed</th><th class=\"num\">end offset</th><th class=\"num\">lag</th></tr>");
    }
    for p in &described.partitions {
        body.raw("<tr><td>").link(&format!("/topics/{}", url_encode(&p.topic)), &p.topic).raw("</td>");
        body.raw("<td class=\"num\">").text(p.partition).raw("</td>").cell(&p.member_id);
        let committed = if p.committed_offset < 0 { "none".to_string() } else { count(p.committed_offset) };
        for value in [committed, count(p.end_offset), count(p.lag)] {
            body.raw("<td class=\"num\">").text(value).raw("</td>");
        }
        if is_share {
            body.raw("<td class=\"num\">").text(p.in_flight).raw("</td>");
        }
        body.raw("</tr>");
    }
    body.raw("</table>");
    page.render_live(200, &format!("Group {group}"), body, live)
}

/// The group's total lag over the last minutes, from the sampler's history.
fn lag_over_time(console: &Console, group: &str, body: &mut Html) {
    body.raw("<h2>Lag, last 10 minutes</h2>");
    match console.lag.of(group) {
        GroupLagHistory::Followed(samples) if samples.is_empty() => {
            body.raw("<p class=\"muted\" id=\"lag-history\">The first point appears within 5 s of the group's first commit.</p>");
        }
        GroupLagHistory::Followed(samples) => {
            let lags = samples.iter().map(|s| s.lag as f64).collect();
            body.raw("<div id=\"lag-history\">");
            body.fragment(chart::lines(&[("total lag", "s-lag", lags)], "records, one point per 5 s", "lag chart"));
            body.raw("</div>");
        }
        GroupLagHistory::NotFollowed => {
            body.raw("<p class=\"muted\" id=\"lag-history\">").text(format!(
                "The lag history follows the first {MAX_GROUPS} groups by name; this one is not among them."
            ));
            body.raw("</p>");
        }
    }
}

pub async fn reset_form(console: &Console, page: Page<'_>, group: &str) -> Response {
    if page.is_read_only {
        return page.error(403, "Read-only console", "Offsets cannot be reset from a read-only console.");
    }
    // A group known only by name (no offsets yet) can still be reset to any topic.
    let topics: BTreeSet<String> = describe(console, page, group)
        .await
        .map(|d| d.partitions.into_iter().map(|p| p.topic).collect())
        .unwrap_or_default();
    let mut body = Html::new();
    body.raw("<p>The group must have no members: a member's commits would overwrite the reset.</p>");
    page.form_open(&mut body, &format!("/groups/{}/reset", url_encode(group)));
    body.raw("<fieldset class=\"stack\"><label>Topic <input name=\"topic\" list=\"topics\" required></label><datalist id=\"topics\">");
    for topic in &topics {
        body.raw("<option value=\"").text(topic).raw("\">");
    }
    body.raw("</datalist><label>Partition (empty: all) <input name=\"partition\"></label>");
    body.raw("<label>To <select name=\"to\"><option>earliest</option><option>latest</option><option>offset</option>");
    body.raw("<option>timestamp</option></select></label><label>Offset or timestamp <input name=\"at\"></label>");
    body.raw("<button>Reset…</button></fieldset></form>");
    page.render(200, &format!("Reset offsets of {group}"), body)
}

pub async fn reset(console: &Console, page: Page<'_>, group: &str, form: &Form) -> Response {
    let topic = form.get("topic").unwrap_or("").to_string();
    let partitions = match form.number::<u32>("partition", "a partition number (0 or more), or empty for all") {
        Ok(partition) => partition.into_iter().collect::<Vec<_>>(),
        Err(message) => return page.error(400, "Bad partition", &message),
    };
    let at = form.get("at").unwrap_or("");
    let (to, timestamp_ms, described) = match form.get("to").unwrap_or("earliest") {
        "earliest" => {
            (v1::reset_offsets_request::To::Spec(v1::OffsetSpec::Earliest as i32), 0, "the earliest offset".to_string())
        }
        "latest" => {
            (v1::reset_offsets_request::To::Spec(v1::OffsetSpec::Latest as i32), 0, "the latest offset".to_string())
        }
        "offset" => match at.trim().parse::<i64>() {
            Ok(offset) => (v1::reset_offsets_request::To::Offset(offset), 0, format!("offset {offset}")),
            Err(_) => return page.error(400, "Bad offset", &format!("offset {at:?} is not a whole number")),
        },
        "timestamp" => match parse_timestamp(at) {
            Some(ms) => {
                (v1::reset_offsets_request::To::Spec(v1::OffsetSpec::Timestamp as i32), ms, format!("time {at}"))
            }
            None => {
                return page.error(
                    400,
                    "Bad timestamp",
                    &format!("timestamp {at:?} is neither YYYY-MM-DDTHH:MM[:SS] (UTC) nor milliseconds since 1970"),
                )
            }
        },
        other => {
            return page.error(
                400,
                "Bad target",
                &format!("to {other:?} is not one of earliest, latest, offset, timestamp"),
            )
        }
    };
    let action = format!("/groups/{}/reset", url_encode(group));
    if form.get("confirm") != Some("yes") {
        let mut body = Html::new();
        let which = partitions.first().map_or("every partition".to_string(), |p| format!("partition {p}"));
        body.raw("<p>Reset group <b>").text(group).raw("</b> on topic <b>").text(&topic).raw("</b>, ").text(which);
        body.raw(", to ").text(described).raw("?</p>");
        page.form_open(&mut body, &action);
        for (name, value) in [("topic", topic.as_str()), ("partition", form.get("partition").unwrap_or("")), ("at", at)]
        {
            hidden(&mut body, name, value);
        }
        hidden(&mut body, "to", form.get("to").unwrap_or("earliest"));
        hidden(&mut body, "confirm", "yes");
        body.raw("<button id=\"confirm\" class=\"danger\">Yes, reset</button> ");
        body.link(&format!("/groups/{}", url_encode(group)), "Cancel").raw("</form>");
        return page.render(200, "Reset offsets?", body);
    }
    let request = v1::ResetOffsetsRequest {
        group: group.to_string(),
        topic: topic.clone(),
        partitions,
        to: Some(to),
        timestamp_ms,
    };
    match super::leader::reset_offsets(console, page, request).await {
        Ok(answer) => {
            tracing::info!(%group, %topic, "group offsets reset from the console");
            let mut body = Html::new();
            body.raw("<p class=\"ok\">Offsets reset.</p><table id=\"reset\"><tr><th>topic</th><th class=\"num\">partition</th><th class=\"num\">offset</th></tr>");
            for offset in answer.offsets {
                body.raw("<tr>").cell(&offset.topic).raw("<td class=\"num\">").text(offset.partition);
                body.raw("</td><td class=\"num\">").text(offset.offset).raw("</td></tr>");
            }
            body.raw("</table><p>").link(&format!("/groups/{}", url_encode(group)), "Back to the group").raw("</p>");
            page.render(200, "Offsets reset", body)
        }
        Err(status) => status_response(page, "Offsets not reset", &status),
    }
}

pub fn delete_confirm(page: Page<'_>, group: &str) -> Response {
    if page.is_read_only {
        return page.error(403, "Read-only console", "Groups cannot be deleted from a read-only console.");
    }
    let mut body = Html::new();
    body.raw("<p>Delete group <b>").text(group).raw("</b> and every offset it committed? A consumer joining it ");
    body.raw("afterwards starts from its reset policy. The group must have no members.</p>");
    page.form_open(&mut body, &format!("/groups/{}/delete", url_encode(group)));
    hidden(&mut body, "confirm", "yes");
    body.raw("<button id=\"confirm\" class=\"danger\">Yes, delete it</button> ");
    body.link(&format!("/groups/{}", url_encode(group)), "Cancel").raw("</form>");
    page.render(200, "Delete group?", body)
}

pub async fn delete(console: &Console, page: Page<'_>, group: &str, form: &Form) -> Response {
    if form.get("confirm") != Some("yes") {
        return delete_confirm(page, group);
    }
    let request = v1::DeleteGroupRequest { group: group.to_string() };
    match super::leader::delete_group(console, page, request).await {
        Ok(answer) => {
            tracing::info!(%group, offsets = answer.deleted_offsets, "group deleted from the console");
            let mut body = Html::new();
            body.raw("<p class=\"ok\">Group <b>").text(group).raw("</b> deleted (");
            body.text(answer.deleted_offsets).raw(" committed offset(s) forgotten).</p>");
            body.raw("<p><a href=\"/groups\">Consumer groups</a></p>");
            page.render(200, "Group deleted", body)
        }
        Err(status) => status_response(page, "Group not deleted", &status),
    }
}
