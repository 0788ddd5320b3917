//! `rill cluster describe`: the cluster's nodes, their states and the controller quorum, as the node asked (or,
//! through it, the controller leader) sees them.

use std::io::Write;

use rill_client::{ClusterAdmin, ClusterDescription, ClusterNodeState};

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
    /// The cluster id, the controller leader and raft term, and every node: address, state, voter, heartbeat.
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
}

pub fn run(args: ClusterArgs) -> anyhow::Result<()> {
    block_on(async move {
        match args.command {
            ClusterCommand::Describe { broker } => describe(&broker).await,
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
        let answered_by = description.answered_by_node_id.map_or_else(dash, |id| id.to_string());
        let whose = if description.answered_by_leader {
            "the controller leader"
        } else {
            "a follower's replica; the leader could not be reached"
        };
        writeln!(out, "answered by:        node {answered_by} ({whose})")?;
    } else {
        writeln!(out, "no controller quorum (single node)")?;
    }
    writeln!(out)?;
    let mut table = Table::new(&["NODE", "ADDRESS", "STATE", "VOTER", "LAST HEARTBEAT"]);
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
            node.last_heartbeat_age_ms.map_or_else(dash, |ms| format!("{ms} ms ago")),
        ]);
    }
    table.write(out)
}
