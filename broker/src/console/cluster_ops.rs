//! A cluster's operations page: the partition moves under way (each cancelled after a confirmation), a new move
//! started, and a rebalance's moves started all at once (each answered once recorded, as `rill topic reassign
//! --no-wait` and `rill cluster rebalance --no-wait`: the copying takes minutes, and a page must not wait for
//! it), the replication throttle on them (set or cleared), and the preferred leader election
//! (every topic or one), through the `ClusterAdmin` service's own handlers (`rill topic reassign`, `rill cluster
//! throttle`, `rill cluster elect`), which any node forwards to the controller leader. A single node has none of
//! these: the page says so.

use rill_protocol::v1::{self, cluster_admin_server::ClusterAdmin};

use super::html::{url_encode, Form, Html};
use super::layout::{hidden, Page};
use super::{status_response, Console};
use crate::metrics::admin_http::Response;

const PATH: &str = "/cluster";

fn nodes(ids: &[u64]) -> String {
    ids.iter().map(u64::to_string).collect::<Vec<_>>().join(", ")
}

pub fn show(console: &Console, page: Page<'_>) -> Response {
    let Some(controller) = &console.controller else {
        return page.error(
            404,
            "Not a cluster",
            "This broker runs as a single node: it has no partition moves, replication throttle or leader elections. \
             Start it with --peers to make a cluster (docs/cluster.md).",
        );
    };
    let metadata = controller.metadata();
    let mut body = Html::new();
    body.raw("<h2>Partitions moving</h2><table id=\"moving\"><tr><th>topic</th><th class=\"num\">partition</th>");
    body.raw("<th>replicas now</th><th>moving to</th><th>copying to</th><th>in sync</th>");
    if !page.is_read_only {
        body.raw("<th></th>");
    }
    body.raw("</tr>");
    let mut moving = 0;
    for (topic, placed) in &metadata.topics {
        for (partition, placement) in placed.partitions.iter().enumerate() {
            let Some(reassignment) = &placement.reassignment else { continue };
            moving += 1;
            body.raw("<tr><td>").link(&format!("/topics/{}", url_encode(topic)), topic).raw("</td>");
            body.raw("<td class=\"num\">").text(partition).raw("</td>").cell(nodes(&placement.replicas));
            body.cell(nodes(&reassignment.target)).cell(nodes(&reassignment.adding)).cell(nodes(&placement.isr));
            if !page.is_read_only {
                body.raw("<td>");
                page.form_open(&mut body, &format!("{PATH}/cancel-move"));
                hidden(&mut body, "topic", topic);
                hidden(&mut body, "partition", &partition.to_string());
                body.raw("<button class=\"danger\">Cancel…</button></form></td>");
            }
            body.raw("</tr>");
        }
    }
    body.raw("</table><p id=\"moving-count\">").text(format!("{moving} partition(s) moving. "));
    body.raw("A move starts here, with <code>rill topic reassign</code>, <code>rill cluster rebalance</code> or ");
    body.raw("Kafka's <code>kafka-reassign-partitions.sh</code>.</p>");
    if !page.is_read_only {
        page.form_open(&mut body, &format!("{PATH}/move"));
        body.raw("<fieldset class=\"stack\"><legend>Move a partition</legend><label>Topic <input name=\"topic\">");
        body.raw("</label><label>Partition <input name=\"partition\" inputmode=\"numeric\"></label>");
        body.raw("<label>Onto the nodes (ids, comma-separated, the preferred leader first) ");
        body.raw("<input name=\"replicas\"></label><button id=\"move\">Move…</button></fieldset></form>");
    }

    if !page.is_read_only {
        page.form_open(&mut body, &format!("{PATH}/add-node"));
        body.raw("<fieldset class=\"stack\"><legend>Add a node</legend><label>Node id <input name=\"node_id\" ");
        body.raw("inputmode=\"numeric\"></label><label>Address the others reach it at (<code>host:port</code>, its ");
        body.raw("<code>--listen</code> or <code>--advertise</code>) <input name=\"address\"></label>");
        body.raw("<button id=\"add-node\">Add…</button></fieldset></form>");
    }
    body.raw("<h2>Replica balance</h2><table id=\"balance\"><tr><th class=\"num\">node</th>");
    body.raw("<th class=\"num\">replicas</th></tr>");
    for (node, count) in replica_counts(&metadata) {
        body.raw("<tr><td class=\"num\">").text(node).raw("</td><td class=\"num\">").text(count).raw("</td></tr>");
    }
    let plan = crate::cluster::rebalance::plan_rebalance(&metadata);
    body.raw("</table><p id=\"rebalance-plan\">");
    match plan.len() {
        0 => body.text("Balanced: no two alive nodes differ by more than one replica, or nothing can move."),
        n => body.text(format!("A rebalance would move {n} partition(s).")),
    };
    body.raw("</p>");
    if !page.is_read_only && !plan.is_empty() {
        page.form_open(&mut body, &format!("{PATH}/rebalance"));
        body.raw("<button id=\"rebalance\">Rebalance…</button></form>");
    }

    body.raw("<h2>Replication throttle</h2><p id=\"throttle\">");
    match metadata.replication_throttle_bytes_per_sec {
        Some(rate) => body.text(format!("{rate} bytes/s per pair of nodes, for replicas a move is copying to.")),
        None => body.text("None: moves copy at full speed."),
    };
    body.raw("</p>");
    if !page.is_read_only {
        page.form_open(&mut body, &format!("{PATH}/throttle"));
        body.raw("<fieldset class=\"stack\"><label>Bytes per second (1024 to 1099511627776; empty: no throttle) ");
        body.raw("<input name=\"bytes_per_sec\" inputmode=\"numeric\"></label><button id=\"set-throttle\">");
        body.raw("Set…</button></fieldset></form>");
    }

    let preferred_elsewhere = metadata
        .topics
        .values()
        .flat_map(|placed| &placed.partitions)
        .filter(|p| p.replicas.first().is_some_and(|preferred| p.leader != Some(*preferred)))
        .count();
    body.raw("<h2>Preferred leaders</h2><p id=\"preferred\">");
    body.text(format!("{preferred_elsewhere} partition(s) not led by their preferred replica (the first listed)."));
    body.raw("</p>");
    if !page.is_read_only {
        page.form_open(&mut body, &format!("{PATH}/elect"));
        body.raw("<fieldset class=\"stack\"><label>Topic (empty: every topic) <input name=\"topic\"></label>");
        body.raw("<button id=\"elect\">Elect…</button></fieldset></form>");
    }
    page.render(200, "Cluster", body)
}

/// Node ids separated by commas or spaces.
fn node_ids(text: &str) -> Result<Vec<u64>, String> {
    let ids: Result<Vec<u64>, _> =
        text.split(|c: char| c == ',' || c.is_whitespace()).filter(|id| !id.is_empty()).map(str::parse).collect();
    match ids {
        Ok(ids) if !ids.is_empty() => Ok(ids),
        _ => Err(format!("replicas {text:?} is not a list of node ids: give them separated by commas, such as 1,2,3")),
    }
}

pub async fn start_move(console: &Console, page: Page<'_>, form: &Form) -> Response {
    let Some(controller) = &console.controller else {
        return page.error(404, "Not a cluster", "A single node has one replica of each partition: nothing to move.");
    };
    let Some(topic) = form.get("topic").map(|t| t.trim().to_string()) else {
        return page.error(400, "Bad topic", "topic is missing: give the topic whose partition moves");
    };
    let partition = match form.number::<u32>("partition", "a partition number (0 or more)") {
        Ok(Some(partition)) => partition,
        Ok(None) => return page.error(400, "Bad partition", "partition is missing: give a partition number"),
        Err(message) => return page.error(400, "Bad partition", &message),
    };
    let target = match node_ids(form.get("replicas").unwrap_or("")) {
        Ok(target) => target,
        Err(message) => return page.error(400, "Bad replicas", &message),
    };
    // Checked here first, by the rule the controller leader applies, so a mistake is shown before the confirmation.
    let metadata = controller.metadata();
    let plan = match crate::cluster::reassign::plan_reassignment(&metadata, &topic, partition, &target) {
        Ok(Some(plan)) => plan,
        Ok(None) => {
            let message = match metadata.topics.get(&topic) {
                None => format!("no topic {topic:?} in the cluster"),
                Some(t) => format!("topic {topic:?} has {} partition(s), not {partition}", t.partitions.len()),
            };
            return page.error(404, "No such partition", &message);
        }
        Err(refusal) => return page.error(400, "Move refused", &refusal.to_string()),
    };
    if let Some(moving) = metadata.partition(&topic, partition).and_then(|p| p.reassignment.as_ref()) {
        let message = format!(
            "partition {partition} of {topic} is being moved onto {} already; cancel that move first",
            nodes(&moving.target)
        );
        return page.error(409, "Moving already", &message);
    }
    if form.get("confirm") != Some("yes") {
        let list = |ids: &[u64]| if ids.is_empty() { "none".to_string() } else { nodes(ids) };
        let mut body = Html::new();
        body.raw("<p id=\"plan\">Partition ").text(partition).raw(" of <b>").text(&topic).raw("</b>: replicas ");
        body.text(nodes(&plan.current)).raw(" → ").text(nodes(&plan.target)).raw(".</p><ul><li id=\"adding\">");
        body.text(format!("Copying to: {}", list(&plan.adding))).raw("</li><li id=\"dropping\">");
        body.text(format!("Dropped once they are in sync: {}", list(&plan.dropping))).raw("</li><li id=\"limit\">");
        match metadata.replication_throttle_bytes_per_sec {
            Some(rate) => body.text(format!("The copy is throttled to {rate} bytes/s per pair of nodes.")),
            None => body.text("No replication throttle: the copy runs at full speed (set one below the moves)."),
        };
        body.raw("</li></ul><p>The move is answered once recorded; the moves table shows it until it is done.</p>");
        page.form_open(&mut body, &format!("{PATH}/move"));
        hidden(&mut body, "topic", &topic);
        hidden(&mut body, "partition", &partition.to_string());
        hidden(&mut body, "replicas", &plan.target.iter().map(u64::to_string).collect::<Vec<_>>().join(","));
        hidden(&mut body, "confirm", "yes");
        body.raw("<button id=\"confirm\">Yes, move it</button> ").link(PATH, "Cancel").raw("</form>");
        return page.render(200, "Move the partition?", body);
    }
    let request = v1::ReassignPartitionRequest { topic: topic.clone(), partition, replica_ids: target, no_wait: true };
    match console.cluster.reassign_partition(page.request(request)).await {
        Ok(answer) => {
            let answer = answer.into_inner();
            tracing::info!(%topic, partition, to = %nodes(&answer.replica_ids), "partition move started from the console");
            let mut body = Html::new();
            body.raw("<p class=\"ok\" id=\"started\">Partition ").text(partition).raw(" of ").text(&topic);
            body.raw(" is moving from ").text(nodes(&answer.previous_replica_ids)).raw(" onto ");
            body.text(nodes(&answer.replica_ids)).raw(": the new replicas copy it now.</p><p>");
            body.link(PATH, "Cluster").raw(" shows the move until it is done.</p>");
            page.render(200, "Move started", body)
        }
        Err(status) => status_response(page, "Move not started", &status),
    }
}

pub async fn add_node(console: &Console, page: Page<'_>, form: &Form) -> Response {
    if console.controller.is_none() {
        return page.error(404, "Not a cluster", "A single node takes no other nodes: start it with --peers.");
    }
    let node_id = match form.number::<u64>("node_id", "a node id (a whole number)") {
        Ok(Some(node_id)) => node_id,
        Ok(None) => return page.error(400, "Bad node id", "node_id is missing: give the new node's --node-id"),
        Err(message) => return page.error(400, "Bad node id", &message),
    };
    let Some(address) = form.get("address").map(str::trim).filter(|a| !a.is_empty()) else {
        return page.error(400, "Bad address", "address is missing: give the host:port the other nodes reach it at");
    };
    if form.get("confirm") != Some("yes") {
        let mut body = Html::new();
        body.raw("<p id=\"plan\">Add node ").text(node_id).raw(" at ").text(address).raw(" to the cluster? It ");
        body.raw("must be running, started with <code>--node-id ").text(node_id).raw(" --join</code>: it catches up ");
        body.raw("on the metadata, votes in the controller quorum if that makes a larger allowed quorum, and holds ");
        body.raw("no replica until partitions are moved or rebalanced onto it.</p>");
        page.form_open(&mut body, &format!("{PATH}/add-node"));
        hidden(&mut body, "node_id", &node_id.to_string());
        hidden(&mut body, "address", address);
        hidden(&mut body, "confirm", "yes");
        body.raw("<button id=\"confirm\">Yes, add it</button> ").link(PATH, "Cancel").raw("</form>");
        return page.render(200, "Add the node?", body);
    }
    let request = v1::AddNodeRequest { node_id, address: address.to_owned() };
    match console.cluster.add_node(page.request(request)).await {
        Ok(answer) => {
            let answer = answer.into_inner();
            tracing::info!(node_id, %address, voter = answer.is_voter, "node added from the console");
            let role = if answer.is_voter { "a voter of the controller quorum" } else { "a member that does not vote" };
            let mut body = Html::new();
            body.raw("<p class=\"ok\" id=\"added\">Node ").text(node_id).raw(" added, ").text(role);
            body.text(format!(" (voters: {}).", nodes(&answer.voter_ids)));
            body.raw("</p><p>").link(PATH, "Rebalance").raw(" to give it replicas.</p>");
            page.render(200, "Node added", body)
        }
        Err(status) => status_response(page, "Node not added", &status),
    }
}

/// Replicas each alive node holds, by node id.
fn replica_counts(metadata: &crate::cluster::metadata::ClusterMetadata) -> std::collections::BTreeMap<u64, usize> {
    let mut counts: std::collections::BTreeMap<u64, usize> =
        metadata.alive_nodes().into_iter().map(|id| (id, 0)).collect();
    for replica in metadata.topics.values().flat_map(|placed| &placed.partitions).flat_map(|p| &p.replicas) {
        if let Some(count) = counts.get_mut(replica) {
            *count += 1;
        }
    }
    counts
}

pub async fn rebalance(console: &Console, page: Page<'_>, form: &Form) -> Response {
    let Some(controller) = &console.controller else {
        return page.error(404, "Not a cluster", "A single node has one replica of each partition: nothing to spread.");
    };
    if form.get("confirm") != Some("yes") {
        let metadata = controller.metadata();
        let plan = crate::cluster::rebalance::plan_rebalance(&metadata);
        let mut body = Html::new();
        if plan.is_empty() {
            body.raw("<p>The replicas are balanced: nothing to move.</p><p>").link(PATH, "Cluster").raw("</p>");
            return page.render(200, "Nothing to rebalance", body);
        }
        body.raw("<p>Start these moves, all at once? Each new replica copies its partition and joins the ISR ");
        body.raw("before the replica it replaces leaves.</p><table id=\"plan\"><tr><th>topic</th>");
        body.raw("<th class=\"num\">partition</th><th>replicas now</th><th>after</th></tr>");
        for target in &plan {
            let now = metadata.partition(&target.topic, target.partition).map(|p| nodes(&p.replicas));
            body.raw("<tr>").cell(&target.topic).raw("<td class=\"num\">").text(target.partition).raw("</td>");
            body.cell(now.unwrap_or_default()).cell(nodes(&target.replicas)).raw("</tr>");
        }
        body.raw("</table><p id=\"limit\">");
        match metadata.replication_throttle_bytes_per_sec {
            Some(rate) => body.text(format!("The copies are throttled to {rate} bytes/s per pair of nodes.")),
            None => body.text("No replication throttle: the copies run at full speed, side by side."),
        };
        body.raw("</p>");
        page.form_open(&mut body, &format!("{PATH}/rebalance"));
        hidden(&mut body, "confirm", "yes");
        body.raw("<button id=\"confirm\">Yes, start them</button> ").link(PATH, "Cancel").raw("</form>");
        return page.render(200, "Rebalance the replicas?", body);
    }
    match console.cluster.rebalance_replicas(page.request(v1::RebalanceReplicasRequest { no_wait: true })).await {
        Ok(answer) => {
            let moved = answer.into_inner().moved;
            tracing::info!(partitions = moved.len(), "replica rebalance started from the console");
            let mut body = Html::new();
            body.raw("<p class=\"ok\" id=\"started\">").text(format!("{} partition(s) moving.", moved.len()));
            body.raw("</p><table id=\"started-moves\"><tr><th>topic</th><th class=\"num\">partition</th>");
            body.raw("<th>from</th><th>onto</th></tr>");
            for m in &moved {
                body.raw("<tr>").cell(&m.topic).raw("<td class=\"num\">").text(m.partition).raw("</td>");
                body.cell(nodes(&m.previous_replica_ids)).cell(nodes(&m.replica_ids)).raw("</tr>");
            }
            body.raw("</table><p>").link(PATH, "Cluster").raw(" shows each move until it is done.</p>");
            page.render(200, "Rebalance started", body)
        }
        Err(status) => status_response(page, "Rebalance not started", &status),
    }
}

pub async fn cancel_move(console: &Console, page: Page<'_>, form: &Form) -> Response {
    let topic = form.get("topic").unwrap_or("").to_string();
    let partition = match form.number::<u32>("partition", "a partition number (0 or more)") {
        Ok(Some(partition)) => partition,
        Ok(None) => return page.error(400, "Bad partition", "partition is missing: give a partition number"),
        Err(message) => return page.error(400, "Bad partition", &message),
    };
    if form.get("confirm") != Some("yes") {
        let mut body = Html::new();
        body.raw("<p>Cancel the move of partition ").text(partition).raw(" of <b>").text(&topic).raw("</b>? Its ");
        body.raw("replicas go back to the ones it had, and the replicas it was copying to drop their copies.</p>");
        page.form_open(&mut body, &format!("{PATH}/cancel-move"));
        hidden(&mut body, "topic", &topic);
        hidden(&mut body, "partition", &partition.to_string());
        hidden(&mut body, "confirm", "yes");
        body.raw("<button id=\"confirm\" class=\"danger\">Yes, cancel it</button> ").link(PATH, "Back").raw("</form>");
        return page.render(200, "Cancel the move?", body);
    }
    let request = v1::CancelReassignmentRequest { topic: topic.clone(), partition };
    match console.cluster.cancel_reassignment(page.request(request)).await {
        Ok(answer) => {
            let answer = answer.into_inner();
            tracing::info!(%topic, partition, "partition move cancelled from the console");
            let mut body = Html::new();
            body.raw("<p class=\"ok\">The move of partition ").text(partition).raw(" of ").text(&topic);
            body.raw(" is cancelled: its replicas are ").text(nodes(&answer.replica_ids)).raw(".</p><p>");
            body.link(PATH, "Cluster").raw("</p>");
            page.render(200, "Move cancelled", body)
        }
        Err(status) => status_response(page, "Move not cancelled", &status),
    }
}

pub async fn throttle(console: &Console, page: Page<'_>, form: &Form) -> Response {
    let what = "a whole number of bytes per second, or empty for no throttle";
    let bytes_per_sec = match form.number::<u64>("bytes_per_sec", what) {
        Ok(rate) => rate,
        Err(message) => return page.error(400, "Bad rate", &message),
    };
    let asked = bytes_per_sec.map_or("no throttle".to_string(), |rate| format!("{rate} bytes/s per pair of nodes"));
    if form.get("confirm") != Some("yes") {
        let mut body = Html::new();
        body.raw("<p id=\"asked\">Throttle replica moves to ").text(&asked).raw("?</p>");
        page.form_open(&mut body, &format!("{PATH}/throttle"));
        hidden(&mut body, "bytes_per_sec", form.get("bytes_per_sec").unwrap_or(""));
        hidden(&mut body, "confirm", "yes");
        body.raw("<button id=\"confirm\">Yes, set it</button> ").link(PATH, "Cancel").raw("</form>");
        return page.render(200, "Set the replication throttle?", body);
    }
    match console
        .cluster
        .set_replication_throttle(page.request(v1::SetReplicationThrottleRequest { bytes_per_sec }))
        .await
    {
        Ok(_) => {
            tracing::info!(?bytes_per_sec, "replication throttle set from the console");
            let mut body = Html::new();
            body.raw("<p class=\"ok\">Replication throttle: ").text(&asked).raw(".</p><p>").link(PATH, "Cluster");
            body.raw("</p>");
            page.render(200, "Throttle set", body)
        }
        Err(status) => status_response(page, "Throttle not set", &status),
    }
}

pub async fn elect(console: &Console, page: Page<'_>, form: &Form) -> Response {
    let topic = form.get("topic").map(|t| t.trim().to_string()).filter(|t| !t.is_empty());
    let scope = topic.as_ref().map_or("every topic".to_string(), |t| format!("topic {t}"));
    if form.get("confirm") != Some("yes") {
        let mut body = Html::new();
        body.raw("<p>Move the leadership of each partition of ").text(&scope).raw(" to its preferred replica, ");
        body.raw("where that replica is alive and in sync? Producers and consumers of the partitions moved ");
        body.raw("follow the new leaders.</p>");
        page.form_open(&mut body, &format!("{PATH}/elect"));
        hidden(&mut body, "topic", topic.as_deref().unwrap_or(""));
        hidden(&mut body, "confirm", "yes");
        body.raw("<button id=\"confirm\">Yes, elect them</button> ").link(PATH, "Cancel").raw("</form>");
        return page.render(200, "Elect preferred leaders?", body);
    }
    let request = v1::ElectLeadersRequest { topic: topic.clone(), partition: None };
    match console.cluster.elect_leaders(page.request(request)).await {
        Ok(answer) => {
            let answer = answer.into_inner();
            tracing::info!(%scope, elected = answer.elected.len(), "preferred leaders elected from the console");
            let mut body = Html::new();
            body.raw("<p class=\"ok\" id=\"elected\">").text(format!(
                "{} partition(s) of {scope} now led by their preferred replica; {} stay as they are.",
                answer.elected.len(),
                answer.not_elected.len()
            ));
            body.raw("</p><table id=\"not-elected\"><tr><th>topic</th><th class=\"num\">partition</th>");
            body.raw("<th>why not</th></tr>");
            for not in &answer.not_elected {
                body.raw("<tr>").cell(&not.topic).raw("<td class=\"num\">").text(not.partition).raw("</td>");
                body.cell(&not.reason).raw("</tr>");
            }
            body.raw("</table><p>").link(PATH, "Cluster").raw("</p>");
            page.render(200, "Leaders elected", body)
        }
        Err(status) => status_response(page, "Leaders not elected", &status),
    }
}
