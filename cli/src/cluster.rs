//! `rill cluster describe`: the cluster's nodes, their states and the controller quorum, as the node asked (or,
//! through it, the controller leader) sees them. `rill cluster add-node` / `remove-node` grow and shrink it;
//! `rill cluster elect-leaders` hands leaderships back to preferred replicas. `rill cluster throttle` sets or
//! clears the replication throttle for replica moves (`--throttle` on remove-node, rebalance and
//! `rill topic reassign` sets it before the move).

use std::io::Write;

use rill_client::{
    ClusterAdmin, ClusterDescription, ClusterNodeState, LeadersElected, NodeAdded, NodeRemoved, ThrottleSet,
};

use crate::connect::{block_on, BrokerFlag};
use crate::output;
use crate::table::Table;

#[derive(Debug, clap::Args)]
pub struct ClusterArgs {
    #[command(subcommand)]
    command: ClusterCommand,
}

#[derive(Debug, clap::Subcommand)]
enum ClusterCommand {
    /// The cluster id, the controller leader and raft term, and every node: address, state, voter, heartbeat,
    /// rack.
    #[command(after_help = "Examples:
  rill cluster describe
  rill cluster describe --broker 127.0.0.1:9093     # any node answers

STATE is alive (heartbeating), fenced (silent for longer than node_session_timeout_ms) or unregistered (not
heard from yet). LAST HEARTBEAT is known only to the controller leader: a follower forwards the call to it, and
answers from its own replica (heartbeats shown as -) when the leader cannot be reached.")]
    Describe {
        #[command(flatten)]
        broker: BrokerFlag,
    },
    /// Add a running node (started with --node-id N --join ADDRESS) to the cluster.
    #[command(after_help = "Examples:
  rill broker --node-id 4 --data-dir d4 --listen 127.0.0.1:9095 --join 127.0.0.1:9092 &
  rill cluster add-node --node-id 4 --address 127.0.0.1:9095

The node becomes a learner of the controller quorum, catches up on the metadata, and votes if the members can
then form a larger quorum (1, 3 or 5 voters); otherwise it stays a non-voting member. Either way it heartbeats
and takes replicas of topics created from then on. Answered once done.")]
    AddNode {
        /// The new node's id (its --node-id); ids of removed nodes are never reused.
        #[arg(long, value_name = "ID")]
        node_id: u64,
        /// HOST:PORT the other nodes reach it at (its --listen, or --advertise).
        #[arg(long, value_name = "HOST:PORT")]
        address: String,
        #[command(flatten)]
        broker: BrokerFlag,
    },
    /// Move every replica off a node, then take it out of the cluster for good.
    #[command(after_help = "Examples:
  rill cluster remove-node --node-id 2

Each replica the node holds moves to the alive node holding the fewest replicas: the new replica copies the
partition and joins the ISR, then the node leaves the replica set (its leaderships move to in-sync replicas),
and last it leaves the controller quorum (a learner takes its vote if needed). Refused, before anything changes,
for an unknown id, when a partition would keep fewer nodes than its replication factor, when a down node holds
a partition's only in-sync copy, or when the quorum would shrink below 3 voters. The removed node stops, and is
refused if it comes back. Answered once done, which takes as long as the copying. --throttle sets the
cluster's replication throttle first (as `rill cluster throttle set`): it stays in force until cleared.")]
    RemoveNode {
        /// The id of the node to remove.
        #[arg(long, value_name = "ID")]
        node_id: u64,
        /// Bound the copying: set the cluster's replication throttle to this many bytes/s first.
        #[arg(long, value_name = "BYTES_PER_SEC", allow_hyphen_values = true, value_parser = parse_throttle)]
        throttle: Option<u64>,
        #[command(flatten)]
        broker: BrokerFlag,
    },
    /// Spread the replicas evenly over the alive nodes (after add-node, say).
    #[command(after_help = "Examples:
  rill cluster add-node --node-id 4 --address 127.0.0.1:9095
  rill cluster rebalance
  rill cluster rebalance --no-wait --throttle 50M   # every move at once, bounded; rill topic describe follows them

Replicas move one at a time from the node holding the most to the one holding the fewest, until no two alive
nodes differ by more than one, never two replicas of a partition on one node, keeping preferred leaders where
it can. Each partition then moves as `rill topic reassign` moves it (the new replica copies the partition and
joins the ISR before the old one leaves), one after the other. Prints each partition moved. Answered once done,
which takes as long as the copying. With --no-wait every move starts at once, copying side by side, and the
command answers once they are recorded (as kafka-reassign-partitions.sh --execute runs a plan); the cluster
page of the web console and `rill topic describe` show them until done. --throttle sets the cluster's
replication throttle first (as `rill cluster throttle set`): it stays in force until cleared.")]
    Rebalance {
        /// Start every move at once and answer once they are recorded, not once they are done.
        #[arg(long)]
        no_wait: bool,
        /// Bound the copying: set the cluster's replication throttle to this many bytes/s first.
        #[arg(long, value_name = "BYTES_PER_SEC", allow_hyphen_values = true, value_parser = parse_throttle)]
        throttle: Option<u64>,
        #[command(flatten)]
        broker: BrokerFlag,
    },
    /// Hand partitions back to their preferred leaders (the first replica), Kafka's PREFERRED election.
    #[command(after_help = "Examples:
  rill cluster elect-leaders                              # every partition
  rill cluster elect-leaders --topic orders --partition 0

A partition moves when its preferred replica is alive and in the ISR and does not lead it: one metadata change
for all of them, each at its next leader epoch. The old leader's acks-all produces in flight fail with
not-leader and producers retry on the new leader. Prints what moved, and why a partition that is not led by its
preferred replica stays (down, or not in sync yet). The controller leader also does this by itself every
leader_imbalance_check_interval_ms when a node's share of partitions led elsewhere exceeds
leader_imbalance_per_broker_percentage (unless auto_leader_rebalance_enable is off).")]
    ElectLeaders {
        /// Only this topic's partitions.
        #[arg(long, value_name = "TOPIC")]
        topic: Option<String>,
        /// Only this partition of --topic.
        #[arg(long, value_name = "N", requires = "topic")]
        partition: Option<u32>,
        #[command(flatten)]
        broker: BrokerFlag,
    },
    /// Bound, in bytes per second, how fast replica moves copy partitions (Kafka's --throttle).
    #[command(after_help = "Examples:
  rill cluster throttle set 10485760      # moves copy at most 10 MiB/s per pair of nodes
  rill cluster throttle set 512K          # K, M and G suffixes are powers of 1024
  rill cluster throttle clear             # moves copy at full speed again

The throttle applies only to a replica being added by a move (rill topic reassign, rill cluster remove-node,
rill cluster rebalance) while it is not in the ISR: what a partition's leader sends that replica's node, summed
over every such partition it leads, stays under the rate. Replication to in-sync replicas, produces and
consumers are never throttled. It is recorded in the cluster's metadata, so every node applies it from the next
fetch (within a second), and it outlives restarts and controller failovers; change or clear it while a move
runs. It stays in force until cleared. rill cluster describe shows it. From 1024 bytes/s to 1 TiB/s.")]
    Throttle {
        #[command(subcommand)]
        action: ThrottleAction,
    },
}

#[derive(Debug, clap::Subcommand)]
enum ThrottleAction {
    /// Set the throttle (or change it while a move runs).
    Set {
        /// Bytes per second, per pair of nodes; K, M or G for KiB, MiB, GiB.
        #[arg(value_name = "BYTES_PER_SEC", allow_hyphen_values = true, value_parser = parse_throttle)]
        bytes_per_sec: u64,
        #[command(flatten)]
        broker: BrokerFlag,
    },
    /// Remove the throttle: moves copy at full speed.
    Clear {
        #[command(flatten)]
        broker: BrokerFlag,
    },
}

/// A throttle rate: a whole number of bytes per second, optionally with a K, M or G suffix (powers of 1024).
/// The broker checks the range; this refuses what is not a positive rate at all.
pub(crate) fn parse_throttle(text: &str) -> Result<u64, String> {
    let allowed = "a throttle is a whole number of bytes per second from 1024 to 1 TiB/s, optionally with a K, M \
                   or G suffix (e.g. 262144 or 256K)";
    let trimmed = text.trim();
    if trimmed.starts_with('-') {
        return Err(format!("{text:?} is negative: {allowed}"));
    }
    let digits_end = trimmed.find(|c: char| !c.is_ascii_digit()).unwrap_or(trimmed.len());
    let (digits, suffix) = trimmed.split_at(digits_end);
    if digits.is_empty() {
        return Err(format!("{text:?} is not a number: {allowed}"));
    }
    let unit: u64 = match suffix {
        "" => 1,
        "K" | "k" => 1 << 10,
        "M" | "m" => 1 << 20,
        "G" | "g" => 1 << 30,
        other => return Err(format!("{text:?} has an unknown unit {other:?}: {allowed}")),
    };
    let value: u64 = digits.parse().map_err(|_| format!("{text:?} is too large: {allowed}"))?;
    let bytes_per_sec = value.checked_mul(unit).ok_or_else(|| format!("{text:?} is too large: {allowed}"))?;
    if bytes_per_sec == 0 {
        return Err(format!(
            "0 would stop every move: {allowed}; to remove the throttle, use rill cluster throttle clear"
        ));
    }
    Ok(bytes_per_sec)
}

pub fn run(args: ClusterArgs) -> anyhow::Result<()> {
    block_on(async move {
        match args.command {
            ClusterCommand::Describe { broker } => describe(&broker).await,
            ClusterCommand::AddNode { node_id, address, broker } => add_node(&broker, node_id, &address).await,
            ClusterCommand::RemoveNode { node_id, throttle, broker } => {
                set_throttle_before_move(&broker, throttle).await?;
                remove_node(&broker, node_id).await
            }
            ClusterCommand::Rebalance { no_wait, throttle, broker } => {
                set_throttle_before_move(&broker, throttle).await?;
                rebalance(&broker, no_wait).await
            }
            ClusterCommand::Throttle { action: ThrottleAction::Set { bytes_per_sec, broker } } => {
                throttle(&broker, Some(bytes_per_sec)).await
            }
            ClusterCommand::Throttle { action: ThrottleAction::Clear { broker } } => throttle(&broker, None).await,
            ClusterCommand::ElectLeaders { topic, partition, broker } => {
                elect_leaders(&broker, topic.as_deref(), partition).await
            }
        }
    })
}

async fn describe(broker: &BrokerFlag) -> anyhow::Result<()> {
    let admin = ClusterAdmin::new(broker.connect().await?);
    let description = admin.describe_cluster().await.map_err(|e| broker.explain(e))?;
    let mut out = output::stdout();
    write_description(&mut out, &description)?;
    out.flush()?;
    Ok(())
}

async fn throttle(broker: &BrokerFlag, bytes_per_sec: Option<u64>) -> anyhow::Result<()> {
    let admin = ClusterAdmin::new(broker.connect().await?);
    let set = admin.set_replication_throttle(bytes_per_sec).await.map_err(|e| broker.explain(e))?;
    let mut out = output::stdout();
    write_throttle(&mut out, &set)?;
    out.flush()?;
    Ok(())
}

/// `--throttle` on a command that moves replicas: the cluster's throttle is set before the move starts, so the
/// copying is bounded from its first byte.
pub(crate) async fn set_throttle_before_move(broker: &BrokerFlag, bytes_per_sec: Option<u64>) -> anyhow::Result<()> {
    let Some(bytes_per_sec) = bytes_per_sec else { return Ok(()) };
    let admin = ClusterAdmin::new(broker.connect().await?);
    let set = admin.set_replication_throttle(Some(bytes_per_sec)).await.map_err(|e| broker.explain(e))?;
    let mut out = output::stdout();
    write_throttle(&mut out, &set)?;
    writeln!(out, "(it stays in force after the move: rill cluster throttle clear removes it)")?;
    out.flush()?;
    Ok(())
}

fn write_throttle(out: &mut impl Write, set: &ThrottleSet) -> std::io::Result<()> {
    let rate = |rate: Option<u64>| rate.map_or_else(|| "none".to_owned(), |r| format!("{r} bytes/s"));
    match set.bytes_per_sec {
        Some(_) => writeln!(
            out,
            "replication throttle for replica moves: {} (was {})",
            rate(set.bytes_per_sec),
            rate(set.previous_bytes_per_sec)
        ),
        None => writeln!(out, "replication throttle cleared (was {})", rate(set.previous_bytes_per_sec)),
    }
}

async fn add_node(broker: &BrokerFlag, node_id: u64, address: &str) -> anyhow::Result<()> {
    let admin = ClusterAdmin::new(broker.connect().await?);
    let added = admin.add_node(node_id, address).await.map_err(|e| broker.explain(e))?;
    let mut out = output::stdout();
    write_added(&mut out, node_id, address, &added)?;
    out.flush()?;
    Ok(())
}

fn write_added(out: &mut impl Write, node_id: u64, address: &str, added: &NodeAdded) -> std::io::Result<()> {
    let role = if added.is_voter { "a voter" } else { "a non-voting member (learner)" };
    writeln!(out, "added node {node_id} at {address} as {role}")?;
    writeln!(out, "voters: {}", ids(&added.voter_ids))
}

async fn remove_node(broker: &BrokerFlag, node_id: u64) -> anyhow::Result<()> {
    let admin = ClusterAdmin::new(broker.connect().await?);
    let removed = admin.remove_node(node_id).await.map_err(|e| broker.explain(e))?;
    let mut out = output::stdout();
    write_removed(&mut out, node_id, &removed)?;
    out.flush()?;
    Ok(())
}

fn write_removed(out: &mut impl Write, node_id: u64, removed: &NodeRemoved) -> std::io::Result<()> {
    for moved in &removed.moved {
        writeln!(
            out,
            "moved {}/{}: node {} -> node {}",
            moved.topic, moved.partition, moved.from_node_id, moved.to_node_id
        )?;
    }
    writeln!(out, "removed node {node_id} ({} replica(s) moved)", removed.moved.len())?;
    writeln!(out, "voters: {}", ids(&removed.voter_ids))
}

async fn rebalance(broker: &BrokerFlag, no_wait: bool) -> anyhow::Result<()> {
    let admin = ClusterAdmin::new(broker.connect().await?);
    let rebalanced = if no_wait { admin.start_rebalance().await } else { admin.rebalance_replicas().await }
        .map_err(|e| broker.explain(e))?;
    let (verb, summary) = if no_wait { ("moving", "started moving") } else { ("moved", "moved") };
    let mut out = output::stdout();
    for moved in &rebalanced.moved {
        let (before, after) = (ids(&moved.previous_replica_ids), ids(&moved.replica_ids));
        writeln!(out, "{verb} {}/{}: replicas {before} -> {after}", moved.topic, moved.partition)?;
    }
    writeln!(out, "{} partition(s) {summary}", rebalanced.moved.len())?;
    if no_wait && !rebalanced.moved.is_empty() {
        writeln!(
            out,
            "the new replicas copy the partitions now: `rill topic describe` shows each move until it is done"
        )?;
    }
    out.flush()?;
    Ok(())
}

async fn elect_leaders(broker: &BrokerFlag, topic: Option<&str>, partition: Option<u32>) -> anyhow::Result<()> {
    let admin = ClusterAdmin::new(broker.connect().await?);
    let elected = admin.elect_leaders(topic, partition).await.map_err(|e| broker.explain(e))?;
    let mut out = output::stdout();
    write_elected(&mut out, &elected)?;
    out.flush()?;
    Ok(())
}

fn write_elected(out: &mut impl Write, elected: &LeadersElected) -> std::io::Result<()> {
    for moved in &elected.elected {
        let from = moved.previous_leader_id.map_or_else(|| "none".to_owned(), |id| format!("node {id}"));
        writeln!(
            out,
            "elected {}/{}: {from} -> node {} at epoch {}",
            moved.topic, moved.partition, moved.leader_id, moved.leader_epoch
        )?;
    }
    for stays in &elected.not_elected {
        writeln!(out, "not elected {}/{}: {}", stays.topic, stays.partition, stays.reason)?;
    }
    writeln!(out, "{} leadership(s) moved to the preferred replica", elected.elected.len())
}

fn ids(ids: &[u64]) -> String {
    ids.iter().map(ToString::to_string).collect::<Vec<_>>().join(",")
}

fn write_description(out: &mut impl Write, description: &ClusterDescription) -> std::io::Result<()> {
    let dash = || "-".to_owned();
    if description.has_controller_quorum {
        let cluster_id = if description.cluster_id.is_empty() { "(not chosen yet)" } else { &description.cluster_id };
        writeln!(out, "cluster id:         {cluster_id}")?;
        let leader = description
            .controller_leader_id
            .map_or_else(|| "none (election under way)".to_owned(), |id| id.to_string());
        writeln!(out, "controller leader:  {leader}")?;
        writeln!(out, "raft term:          {}", description.raft_term)?;
        if let Some(applied) = description.raft_high_watermark {
            writeln!(out, "raft log applied:   {applied} entries")?;
        }
        let answered_by = description.answered_by_node_id.map_or_else(dash, |id| id.to_string());
        let whose = if description.answered_by_leader {
            "the controller leader"
        } else {
            "a follower's replica; the leader could not be reached"
        };
        writeln!(out, "answered by:        node {answered_by} ({whose})")?;
        if description.is_quorum_lost {
            let heard = description
                .quorum_ack_age_ms
                .map_or_else(|| "never acknowledged".to_owned(), |ms| format!("last acknowledged {ms} ms ago"));
            writeln!(
                out,
                "quorum:             LOST ({heard} by a majority of the voters): nothing changes until a majority \
                 is back; the states below are the last ones committed"
            )?;
        }
    } else {
        writeln!(out, "no controller quorum (single node)")?;
    }
    writeln!(out)?;
    // The rack last: scripts read the columns before it by position.
    let mut table = Table::new(&["NODE", "ADDRESS", "STATE", "VOTER", "LOG END", "LAST HEARTBEAT", "RACK"]);
    for node in &description.nodes {
        let state = match node.state() {
            ClusterNodeState::Alive => "alive",
            ClusterNodeState::Fenced => "fenced",
            ClusterNodeState::Unregistered => "unregistered",
            ClusterNodeState::Unspecified => "unknown",
        };
        table.row(vec![
            node.node_id.map_or_else(dash, |id| id.to_string()),
            node.address.clone(),
            state.to_owned(),
            if node.is_voter { "yes" } else { "no" }.to_owned(),
            node.raft_log_end.map_or_else(dash, |end| end.to_string()),
            node.last_heartbeat_age_ms.map_or_else(dash, |ms| format!("{ms} ms ago")),
            node.rack.clone().unwrap_or_else(dash),
        ]);
    }
    table.write(out)?;
    if description.has_controller_quorum {
        writeln!(out)?;
        let throttle = description.replication_throttle_bytes_per_sec.map_or_else(
            || "none (moves copy at full speed)".to_owned(),
            |rate| format!("{rate} bytes/s per pair of nodes, for replicas being added by a move"),
        );
        writeln!(out, "move throttle:      {throttle}")?;
        for moving in &description.moving {
            writeln!(
                out,
                "moving:             {}/{} from {} onto {}",
                moving.topic,
                moving.partition,
                ids(&moving.previous_replica_ids),
                ids(&moving.replica_ids)
            )?;
        }
    }
    if !description.removed_node_ids.is_empty() {
        writeln!(out)?;
        writeln!(out, "removed nodes:      {}", ids(&description.removed_node_ids))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{parse_throttle, write_description, ClusterDescription};
    use rill_client::ClusterNode;

    #[test]
    fn a_description_shows_what_each_member_holds_of_the_controller_log_when_known() {
        let node = |id: u64, log_end: Option<u64>, heard: Option<u64>| ClusterNode {
            node_id: Some(id),
            address: format!("127.0.0.1:909{id}"),
            state: 1,
            is_voter: id < 3,
            last_heartbeat_age_ms: heard,
            rack: None,
            raft_log_end: log_end,
        };
        let description = ClusterDescription {
            cluster_id: "c1".into(),
            has_controller_quorum: true,
            controller_leader_id: Some(1),
            raft_term: 4,
            answered_by_node_id: Some(1),
            answered_by_leader: true,
            nodes: vec![node(1, Some(12), None), node(2, Some(12), Some(40)), node(3, None, Some(90))],
            raft_high_watermark: Some(12),
            ..ClusterDescription::default()
        };
        let mut out = Vec::new();
        write_description(&mut out, &description).expect("written");
        let text = String::from_utf8(out).expect("UTF-8");
        assert!(text.contains("raft log applied:   12 entries"), "{text}");
        let rows: Vec<Vec<&str>> = text
            .lines()
            .map(|line| line.split_whitespace().collect::<Vec<_>>())
            .filter(|cells| cells.first().is_some_and(|cell| cell.parse::<u64>().is_ok()))
            .collect();
        let log_ends: Vec<(&str, &str, &str)> = rows.iter().map(|r| (r[0], r[3], r[4])).collect();
        assert_eq!(log_ends, [("1", "yes", "12"), ("2", "yes", "12"), ("3", "no", "-")]);
    }

    #[test]
    fn throttles_parse_with_units_and_refuse_what_is_no_rate() {
        assert_eq!(parse_throttle("262144"), Ok(262_144));
        assert_eq!(parse_throttle("256K"), Ok(262_144));
        assert_eq!(parse_throttle("10m"), Ok(10 << 20));
        assert_eq!(parse_throttle("1G"), Ok(1 << 30));
        for (text, says) in [
            ("0", "0 would stop every move"),
            ("-5", "is negative"),
            ("fast", "is not a number"),
            ("5T", "unknown unit"),
            ("99999999999999999999", "too large"),
            ("1.5M", "unknown unit"),
            ("18446744073709551615G", "too large"),
        ] {
            let refused = parse_throttle(text).expect_err(text);
            assert!(refused.contains(says) && refused.contains("bytes per second"), "{text}: {refused}");
        }
    }
}
