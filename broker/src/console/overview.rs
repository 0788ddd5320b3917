//! The overview: nodes, topics, partitions, groups, disk use and the throughput of the last minutes.

use rill_protocol::v1::{self, consumer_groups_server::ConsumerGroups, topic_admin_server::TopicAdmin};

use super::html::Html;
use super::layout::{bytes, count, Page};
use super::live::Live;
use super::{chart, status_response, Console};
use crate::metrics::admin_http::Response;

pub async fn show(console: &Console, page: Page<'_>, live: Live) -> Response {
    let topics = match console.service.list_topics(page.request(v1::ListTopicsRequest {})).await {
        Ok(answer) => answer.into_inner().topics,
        Err(status) => return status_response(page, "Topics could not be listed", &status),
    };
    let groups = match console.service.list_groups(page.request(v1::ListGroupsRequest {})).await {
        Ok(answer) => answer.into_inner().groups.len(),
        Err(status) => return status_response(page, "Groups could not be listed", &status),
    };
    let partitions: u64 = topics.iter().map(|t| u64::from(t.partition_count)).sum();
    // The sizes are in memory (each log keeps its own); the file system's figures are one statvfs.
    let stored: u64 =
        console.node.registry.list().iter().flat_map(|t| t.partitions()).map(|p| p.log().size_bytes()).sum();
    let mut body = Html::new();
    live.control(&mut body, "/");
    body.raw("<div class=\"stats\">");
    stat(&mut body, "nodes", count(node_count(console) as u64));
    stat(&mut body, "topics", count(topics.len() as u64));
    stat(&mut body, "partitions", count(partitions));
    stat(&mut body, "consumer groups", count(groups as u64));
    stat(&mut body, "stored on this node", bytes(stored));
    if let Some((free, total)) = file_system_space(&console.node.config.data_dir) {
        stat(&mut body, "disk free", format!("{} of {}", bytes(free), bytes(total)));
    }
    body.raw("</div>");
    nodes(console, &mut body);
    throughput(console, &mut body);
    page.render_live(200, "Overview", body, live)
}

fn stat(body: &mut Html, label: &'static str, value: String) {
    body.raw("<div class=\"stat\" data-stat=\"").raw(label).raw("\"><b>").text(value).raw("</b>").raw(label);
    body.raw("</div>");
}

fn node_count(console: &Console) -> usize {
    console.controller.as_ref().map_or(1, |controller| controller.metadata().nodes.len())
}

fn nodes(console: &Console, body: &mut Html) {
    body.raw("<h2>Nodes</h2>");
    let Some(controller) = &console.controller else {
        body.raw("<table id=\"nodes\"><tr><th>node</th><th>address</th><th>state</th><th>rack</th></tr><tr>");
        let rack = console.node.config.rack.as_deref().unwrap_or("");
        body.cell("this node (single node)").cell(console.listen_addr).cell("alive").cell(rack).raw("</tr></table>");
        return;
    };
    // This node's view of the quorum: its replica of the metadata and raft's own metrics.
    let raft = controller.raft.metrics().borrow().clone();
    body.raw("<p id=\"controller\">");
    match raft.current_leader {
        Some(leader) => body.text(format!("Controller leader: node {leader}, raft term {}.", raft.current_term)),
        None => body.text(format!("No controller leader known to this node (raft term {}).", raft.current_term)),
    };
    body.raw(" This page is served by node ").text(controller.node_id).raw(".</p>");
    let quorum = controller.quorum_contact(&raft);
    if quorum.is_lost {
        let heard = quorum.ack_age_ms.map_or_else(|| "never".to_owned(), |ms| format!("{ms} ms ago"));
        body.raw("<p id=\"quorum-lost\" class=\"error\" role=\"alert\">").text(format!(
            "Controller quorum lost: a majority of the voters last acknowledged this leader {heard}. Nothing changes \
             until a majority is back; the states below are the last ones committed."
        ));
        body.raw("</p>");
    }
    body.raw("<table id=\"nodes\"><tr><th>node</th><th>address</th><th>state</th><th>role</th><th>rack</th></tr>");
    for record in controller.metadata().nodes.values() {
        let state = match record.state {
            crate::cluster::metadata::NodeState::Alive => "alive",
            crate::cluster::metadata::NodeState::Fenced => "fenced",
        };
        let role = if raft.current_leader == Some(record.node_id) { "controller leader" } else { "" };
        let rack = record.rack.as_deref().unwrap_or("");
        body.raw("<tr>").cell(record.node_id).cell(&record.address).cell(state).cell(role).cell(rack).raw("</tr>");
    }
    body.raw("</table>");
    moves(&controller.metadata(), body);
}

/// The replica moves under way and the throttle on them (`rill topic reassign`, `rill cluster throttle`, or
/// Kafka's reassignment tool): what an operator watching a move wants beside the nodes.
fn moves(metadata: &crate::cluster::metadata::ClusterMetadata, body: &mut Html) {
    let moving = metadata.topics.values().flat_map(|topic| &topic.partitions).filter(|p| p.reassignment.is_some());
    let throttle = metadata.replication_throttle_bytes_per_sec.map_or_else(
        || "none (moves copy at full speed)".to_owned(),
        |rate| format!("{rate} bytes/s per pair of nodes"),
    );
    body.raw("<p id=\"moves\">").text(format!(
        "Partitions moving to new replicas: {}. Replication throttle for replica moves: {throttle}.",
        moving.count()
    ));
    body.raw(" ").link("/cluster", "Moves, throttle and leaders").raw("</p>");
}

fn throughput(console: &Console, body: &mut Html) {
    let samples = console.throughput.samples();
    body.raw("<h2>Throughput, last 10 minutes</h2>");
    let Some(last) = samples.last() else {
        body.raw("<p class=\"muted\">The first figures appear 10 seconds after the broker starts.</p>");
        return;
    };
    body.raw("<p id=\"rates\">").text(format!(
        "{:.0} records/s in ({}/s), {:.0} records/s out ({}/s) over the last 5 s.",
        last.records_in_per_s,
        bytes(last.bytes_in_per_s as u64),
        last.records_out_per_s,
        bytes(last.bytes_out_per_s as u64)
    ));
    body.raw("</p>");
    let series = [
        ("records/s in", "s-in", samples.iter().map(|s| s.records_in_per_s).collect()),
        ("records/s out", "s-out", samples.iter().map(|s| s.records_out_per_s).collect()),
    ];
    body.fragment(chart::lines(&series, "records/s, one point per 5 s", "throughput chart"));
}

/// Free and total bytes of the file system holding `path`: what a non-root user may still write, and the size.
pub(crate) fn file_system_space(path: &std::path::Path) -> Option<(u64, u64)> {
    crate::disk_reserve::space_of(path).map(|space| (space.free_bytes, space.total_bytes))
}
