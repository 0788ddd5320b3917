//! `rill group describe|reset-offsets`: a consumer group's committed offsets, lag, and resets.
//!
//! Built on what the broker has today: committed offsets (FetchOffsets, CommitOffsets) and log offsets
//! (ListOffsets). `describe` is the group's committed offsets with each partition's end offset and lag;
//! `reset-offsets` looks the target offsets up and commits them as a standalone committer. Group membership
//! (members, ListGroups) is not in the broker yet, so there is no `group list` and `describe` shows no members.

use std::collections::BTreeMap;
use std::io::Write;

use rill_client::{Admin, OffsetSpec, PartitionOffset};

use crate::connect::{block_on, BrokerFlag};
use crate::output;
use crate::table::Table;
use crate::time_arg::parse_time_ms;

const EXAMPLES: &str = "\
Examples:
  rill group describe demo                           # committed offset, end offset and lag per partition
  rill group reset-offsets demo --topic greetings --to-earliest   # the group re-reads everything
  rill group reset-offsets demo --topic greetings --to-time 2026-11-27T00:00:00Z

A group exists once it has committed an offset (`rill consume TOPIC --group G` commits what it prints).";

#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct GroupArgs {
    #[command(subcommand)]
    command: GroupCommand,
}

#[derive(Debug, clap::Subcommand)]
enum GroupCommand {
    /// Per partition the group has committed for: committed offset, end offset and lag.
    #[command(after_help = "Examples:
  rill group describe demo
  rill group describe demo --topic greetings     # every partition of greetings, committed or not

LAG is END - COMMITTED: records the group has yet to read. Members are not shown: the broker has no group
membership yet, only committed offsets.")]
    Describe {
        /// Group id.
        group: String,
        /// Only this topic, with its partitions the group has not committed for (COMMITTED -).
        #[arg(long, value_name = "T")]
        topic: Option<String>,
        #[command(flatten)]
        broker: BrokerFlag,
    },
    /// Set the group's committed offsets of a topic: to an end of the log, an offset, or a time.
    #[command(after_help = "Examples:
  rill group reset-offsets demo --topic greetings --to-earliest
  rill group reset-offsets demo --topic greetings --to-latest            # skip everything there is now
  rill group reset-offsets demo --topic greetings --partition 0 --to-offset 42
  rill group reset-offsets demo --topic greetings --to-time 2026-11-27T00:00:00Z

Stop the group's consumers first: a running consumer commits its own positions over the reset.
--to-offset is clamped into each partition's [start, end] offsets.")]
    ResetOffsets(ResetArgs),
}

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("to").required(true)))]
struct ResetArgs {
    /// Group id.
    group: String,
    /// Topic whose offsets are reset.
    #[arg(long, value_name = "T")]
    topic: String,
    /// Only this partition (default: every partition of the topic).
    #[arg(long, value_name = "P")]
    partition: Option<u32>,
    /// The oldest offset still in the log.
    #[arg(long, group = "to")]
    to_earliest: bool,
    /// The end of the log: only records appended from now on are read.
    #[arg(long, group = "to")]
    to_latest: bool,
    /// This offset.
    #[arg(long, group = "to", value_name = "N", value_parser = clap::value_parser!(i64).range(0..))]
    to_offset: Option<i64>,
    /// The first record at or after this time: RFC 3339 or ms since the epoch.
    #[arg(long, group = "to", value_name = "TIME", value_parser = parse_time_ms)]
    to_time: Option<i64>,
    #[command(flatten)]
    broker: BrokerFlag,
}

pub fn run(args: GroupArgs) -> anyhow::Result<()> {
    block_on(async move {
        match args.command {
            GroupCommand::Describe { group, topic, broker } => describe(&broker, &group, topic.as_deref()).await,
            GroupCommand::ResetOffsets(args) => reset(args).await,
        }
    })
}

async fn describe(broker: &BrokerFlag, group: &str, topic: Option<&str>) -> anyhow::Result<()> {
    let admin = Admin::new(broker.connect().await?);
    // (topic, partition) -> committed offset, -1 if none.
    let mut committed: BTreeMap<(String, u32), i64> = BTreeMap::new();
    for offset in admin.committed_offsets(group, &[]).await.map_err(|e| broker.explain(e))? {
        if topic.is_none_or(|t| t == offset.topic) && offset.offset >= 0 {
            committed.insert((offset.topic, offset.partition), offset.offset);
        }
    }
    let mut topics: Vec<String> = committed.keys().map(|(t, _)| t.clone()).collect();
    topics.dedup();
    if let Some(topic) = topic {
        // Every partition of the named topic, so a partition the group never committed shows up too.
        for bound in admin.list_offsets(topic, &[], OffsetSpec::Latest).await.map_err(|e| broker.explain(e))? {
            committed.entry((topic.to_owned(), bound.partition)).or_insert(-1);
        }
        topics = vec![topic.to_owned()];
    } else if committed.is_empty() {
        anyhow::bail!("group {group:?} has no committed offsets (a group exists once it commits)");
    }
    let mut ends: BTreeMap<(String, u32), PartitionOffset> = BTreeMap::new();
    for topic in &topics {
        match admin.list_offsets(topic, &[], OffsetSpec::Latest).await {
            Ok(bounds) => ends.extend(bounds.into_iter().map(|b| ((topic.clone(), b.partition), b))),
            // Deleted since the group committed: its offsets are still stored, its ends unknown.
            Err(rill_client::Error::UnknownTopic { .. }) => {}
            Err(err) => return Err(broker.explain(err)),
        }
    }
    let mut table = Table::new(&["TOPIC", "PARTITION", "COMMITTED", "END", "LAG"]);
    for ((topic, partition), offset) in &committed {
        let bound = ends.get(&(topic.clone(), *partition));
        let lag = bound.map(|b| b.high_watermark - if *offset >= 0 { *offset } else { b.log_start_offset });
        table.row(vec![
            topic.clone(),
            partition.to_string(),
            if *offset >= 0 { offset.to_string() } else { "-".into() },
            bound.map_or_else(|| "-".into(), |b| b.high_watermark.to_string()),
            lag.map_or_else(|| "-".into(), |lag| lag.max(0).to_string()),
        ]);
    }
    let mut out = output::stdout();
    output::line(&mut out, format_args!("group {group}"))?;
    table.write(&mut out)?;
    out.flush()?;
    Ok(())
}

async fn reset(args: ResetArgs) -> anyhow::Result<()> {
    let explain = |err| args.broker.explain(err);
    let admin = Admin::new(args.broker.connect().await?);
    let partitions: Vec<u32> = args.partition.into_iter().collect();
    let spec = match (args.to_earliest, args.to_latest, args.to_time) {
        (true, ..) => OffsetSpec::Earliest,
        (_, true, _) => OffsetSpec::Latest,
        (_, _, Some(ms)) => OffsetSpec::Timestamp(ms),
        // --to-offset: the bounds come with any spec.
        _ => OffsetSpec::Latest,
    };
    let found = admin.list_offsets(&args.topic, &partitions, spec).await.map_err(explain)?;
    let targets: Vec<(&str, u32, i64)> = found
        .iter()
        .map(|b| {
            let offset = match args.to_offset {
                Some(offset) => offset.clamp(b.log_start_offset, b.high_watermark),
                None => b.offset,
            };
            (args.topic.as_str(), b.partition, offset)
        })
        .collect();
    admin.commit_offsets(&args.group, &targets).await.map_err(explain)?;
    let mut table = Table::new(&["TOPIC", "PARTITION", "COMMITTED"]);
    for (topic, partition, offset) in &targets {
        table.row(vec![(*topic).to_owned(), partition.to_string(), offset.to_string()]);
    }
    let mut out = output::stdout();
    output::line(&mut out, format_args!("group {} reset", args.group))?;
    table.write(&mut out)?;
    out.flush()?;
    Ok(())
}
