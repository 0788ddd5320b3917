//! `rill group list|describe|reset-offsets|config`: consumer groups as the broker's coordinator sees them.
//!
//! `list` and `describe` are the `ListGroups` and `DescribeGroup` calls, printed as tables. `reset-offsets`
//! is `ResetOffsets` for an end of the log or a time; `--to-offset` (an explicit offset, which the client's
//! `Admin::reset_offsets` does not take) looks the partitions' bounds up, clamps into them as the broker
//! does, and commits as a standalone committer. The broker refuses both while the group has members. `config`
//! shows or changes a group's own settings (`DescribeGroupConfig`, `AlterGroupConfig`: Kafka's group configs).

use std::io::Write;

use rill_client::{Admin, CommittedOffset, Error, GroupDescription, GroupKind, GroupState, OffsetSpec};

use crate::connect::{block_on, BrokerFlag};
use crate::output;
use crate::table::Table;
use crate::time_arg::parse_time_ms;

const EXAMPLES: &str = "\
Examples:
  rill group list                                    # every group, its state and member count
  rill group describe demo                           # members; per partition committed offset, end, lag
  rill group reset-offsets demo --topic greetings --to-earliest   # the group re-reads everything
  rill group reset-offsets demo --topic greetings --to-time 2026-11-27T00:00:00Z
  rill group config mailers --config share.auto.offset.reset=earliest   # a share group's own settings

A group exists while it has members or committed offsets (`rill consume TOPIC --group G` commits what it
prints).";

#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct GroupArgs {
    #[command(subcommand)]
    command: GroupCommand,
}

#[derive(Debug, clap::Subcommand)]
enum GroupCommand {
    /// List every group with members or committed offsets: state, member count, generation.
    #[command(after_help = "Examples:
  rill group list

STATE is empty (no members), stable (every member owns its target partitions) or reconciling (partitions are
moving between members).")]
    List {
        #[command(flatten)]
        broker: BrokerFlag,
    },
    /// A group's state and members, and per partition: committed offset, end offset, lag and owner.
    #[command(after_help = "Examples:
  rill group describe demo
  rill group describe demo --topic greetings     # only that topic's partitions

LAG is END - COMMITTED: records the group has yet to read (the whole log if it committed nothing). MEMBER is
the member that owns the partition now (- if none).")]
    Describe {
        /// Group id.
        group: String,
        /// Only this topic's partitions.
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

Only for a group without members: stop its consumers first (the broker refuses otherwise).
--to-offset is clamped into each partition's [start, end] offsets.")]
    ResetOffsets(ResetArgs),
    /// Show a group's settings (Kafka's group configs), or change them with --config / --delete-config.
    #[command(after_help = "Examples:
  rill group config mailers                                             # every key, the group's or the broker's
  rill group config mailers --config share.auto.offset.reset=earliest   # start at the log's start
  rill group config mailers --config share.record.lock.duration.ms=60000 --config share.delivery.count.limit=3
  rill group config mailers --delete-config share.delivery.count.limit  # back to the broker's setting
  rill group config mailers --config share.delivery.count.limit=1 --dry-run   # check only

Keys (Kafka's group configs, as kafka-configs --entity-type groups takes them): share.auto.offset.reset
(earliest, latest, by_duration:PT1H and other ISO-8601 durations), share.record.lock.duration.ms
(1000..=3600000), share.delivery.count.limit (2..=10), share.session.timeout.ms (1000..=3600000),
share.heartbeat.interval.ms (below the session timeout), share.isolation.level (read_uncommitted,
read_committed), errors.deadletterqueue.topic.name (the share group's dead-letter topic, empty for none) and
errors.deadletterqueue.copy.record.enable (true, false) for share groups; consumer.session.timeout.ms
(1000..=3600000) and consumer.heartbeat.interval.ms
(below the session timeout) for KIP-848 consumer groups. A group need not exist yet: settings made before its first member joins decide where it
starts. Kept across restarts; on a cluster, in its replicated metadata, which every node follows. All or nothing: one bad key or value refuses the change.
SOURCE is group (the group's own) or broker (the broker's, which the group follows); a VALUE of - is empty.")]
    Config(ConfigArgs),
}

#[derive(Debug, clap::Args)]
struct ConfigArgs {
    /// Group id.
    group: String,
    #[command(flatten)]
    changes: crate::topic_alter::ConfigChanges,
    #[command(flatten)]
    broker: BrokerFlag,
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
            GroupCommand::List { broker } => list(&broker).await,
            GroupCommand::Describe { group, topic, broker } => describe(&broker, &group, topic.as_deref()).await,
            GroupCommand::ResetOffsets(args) => reset(args).await,
            GroupCommand::Config(args) => config(args).await,
        }
    })
}

async fn config(args: ConfigArgs) -> anyhow::Result<()> {
    let mut set = Vec::with_capacity(args.changes.configs.len());
    for config in &args.changes.configs {
        let Some((key, value)) = config.split_once('=') else {
            anyhow::bail!("--config {config:?} is not KEY=VALUE (for example share.auto.offset.reset=earliest)");
        };
        set.push((key.trim().to_owned(), value.trim().to_owned()));
    }
    if args.changes.dry_run && set.is_empty() && args.changes.deletes.is_empty() {
        anyhow::bail!("--dry-run checks a change: give --config KEY=VALUE or --delete-config KEY");
    }
    let admin = Admin::new(args.broker.connect().await?);
    let configs = if set.is_empty() && args.changes.deletes.is_empty() {
        admin.group_config(&args.group).await
    } else {
        admin.alter_group_config(&args.group, &set, &args.changes.deletes, args.changes.dry_run).await
    }
    .map_err(|err| match err {
        // The broker's message names the key, the value and what is allowed; the client's wrapping adds nothing.
        Error::InvalidArgument { message } | Error::UserRefused { message } | Error::Broker { message, .. } => {
            anyhow::anyhow!(message)
        }
        err => args.broker.explain(err),
    })?;
    let mut table = Table::new(&["KEY", "VALUE", "SOURCE"]);
    for entry in &configs {
        let source = if entry.is_group_setting { "group" } else { "broker" };
        // An empty value (no dead-letter topic) shows as "-", so each row keeps its three columns.
        let value = if entry.value.is_empty() { "-".to_owned() } else { entry.value.clone() };
        table.row(vec![entry.name.clone(), value, source.to_owned()]);
    }
    let mut out = output::stdout();
    if args.changes.dry_run {
        output::line(&mut out, "dry run: nothing changed; the settings would be:")?;
    }
    table.write(&mut out)?;
    out.flush()?;
    Ok(())
}

async fn list(broker: &BrokerFlag) -> anyhow::Result<()> {
    let groups = Admin::new(broker.connect().await?).list_groups().await.map_err(|e| broker.explain(e))?;
    let mut table = Table::new(&["GROUP", "KIND", "STATE", "MEMBERS", "GENERATION"]);
    for group in &groups {
        table.row(vec![
            group.group.clone(),
            kind_name(group.kind()).to_owned(),
            state_name(group.state()).to_owned(),
            group.member_count.to_string(),
            group.generation.to_string(),
        ]);
    }
    let mut out = output::stdout();
    table.write(&mut out)?;
    out.flush()?;
    Ok(())
}

async fn describe(broker: &BrokerFlag, group: &str, topic: Option<&str>) -> anyhow::Result<()> {
    let admin = Admin::new(broker.connect().await?);
    let description = admin.describe_group(group).await.map_err(|err| match err {
        // The client reports DescribeGroup's NOT_FOUND as a bare broker error (it names no topic); the broker's
        // message is the useful part: `unknown group "g": it has no members and no committed offsets`.
        Error::Broker { message, .. } => anyhow::anyhow!(message),
        err => broker.explain(err),
    })?;
    let mut out = output::stdout();
    write_description(&mut out, &description, topic)?;
    out.flush()?;
    Ok(())
}

/// A group: its state and members, and per partition where it is, the end and the lag. A share group
/// (KIP-932) shows each member's epoch, and per partition its start offset (everything below is done with) and
/// the records in flight (out with members or waiting to be delivered again).
fn write_description(out: &mut impl Write, description: &GroupDescription, topic: Option<&str>) -> std::io::Result<()> {
    let is_share = description.kind() == GroupKind::Share;
    let members = description.members.len();
    let assignor = description.assignor().as_str_name().trim_start_matches("ASSIGNOR_").to_ascii_lowercase();
    let plural = if members == 1 { "" } else { "s" };
    let summary = match description.state() {
        GroupState::Empty | GroupState::Unspecified => "empty, no members".to_owned(),
        state if is_share => {
            format!("{}, epoch {}, {members} member{plural}", state_name(state), description.generation)
        }
        state => format!(
            "{}, generation {}, {members} member{plural}, assignor {assignor}",
            state_name(state),
            description.generation,
        ),
    };
    let kind = if is_share { "share group" } else { "group" };
    output::line(out, format_args!("{kind} {} ({summary})", description.group))?;
    if members > 0 {
        output::line(out, "")?;
        let headers: &[&str] =
            if is_share { &["MEMBER", "CLIENT", "EPOCH", "PARTITIONS"] } else { &["MEMBER", "CLIENT", "PARTITIONS"] };
        let mut table = Table::new(headers);
        for member in &description.members {
            let owned: Vec<String> = member
                .assigned
                .iter()
                .map(|t| {
                    let partitions: Vec<String> = t.partitions.iter().map(u32::to_string).collect();
                    format!("{}:{}", t.topic, partitions.join(","))
                })
                .collect();
            let owned = if owned.is_empty() { "-".to_owned() } else { owned.join(" ") };
            let mut row = vec![member.member_id.clone(), member.client_id.clone()];
            row.extend(is_share.then(|| member.member_generation.to_string()));
            row.push(owned);
            table.row(row);
        }
        table.write(out)?;
    }
    output::line(out, "")?;
    let headers: &[&str] = if is_share {
        &["TOPIC", "PARTITION", "START", "END", "LAG", "IN-FLIGHT", "MEMBERS"]
    } else {
        &["TOPIC", "PARTITION", "COMMITTED", "END", "LAG", "MEMBER"]
    };
    let mut table = Table::new(headers);
    for p in description.partitions.iter().filter(|p| topic.is_none_or(|t| t == p.topic)) {
        let known = |v: i64| if v >= 0 { v.to_string() } else { "-".to_owned() };
        let mut row = vec![
            p.topic.clone(),
            p.partition.to_string(),
            known(p.committed_offset),
            known(p.end_offset),
            if p.end_offset >= 0 { p.lag.to_string() } else { "-".to_owned() },
        ];
        row.extend(is_share.then(|| p.in_flight.to_string()));
        row.push(if p.member_id.is_empty() { "-".to_owned() } else { p.member_id.clone() });
        table.row(row);
    }
    table.write(out)
}

fn kind_name(kind: GroupKind) -> &'static str {
    match kind {
        GroupKind::Share => "share",
        GroupKind::Consumer | GroupKind::Unspecified => "consumer",
    }
}

fn state_name(state: GroupState) -> &'static str {
    match state {
        GroupState::Empty | GroupState::Unspecified => "empty",
        GroupState::Stable => "stable",
        GroupState::Reconciling => "reconciling",
    }
}

async fn reset(args: ResetArgs) -> anyhow::Result<()> {
    let explain = |err| args.broker.explain(err);
    let admin = Admin::new(args.broker.connect().await?);
    let partitions: Vec<u32> = args.partition.into_iter().collect();
    let spec = match (args.to_earliest, args.to_latest, args.to_time) {
        (true, ..) => Some(OffsetSpec::Earliest),
        (_, true, _) => Some(OffsetSpec::Latest),
        (_, _, Some(ms)) => Some(OffsetSpec::Timestamp(ms)),
        _ => None,
    };
    if !partitions.is_empty() {
        // ResetOffsets reports an unknown partition as an unknown topic; ListOffsets names the partition.
        admin.list_offsets(&args.topic, &partitions, OffsetSpec::Latest).await.map_err(explain)?;
    }
    let committed: Vec<CommittedOffset> = match (spec, args.to_offset) {
        (Some(spec), _) => admin.reset_offsets(&args.group, &args.topic, &partitions, spec).await.map_err(explain)?,
        (None, Some(offset)) => {
            let bounds = admin.list_offsets(&args.topic, &partitions, OffsetSpec::Latest).await.map_err(explain)?;
            let targets: Vec<(&str, u32, i64)> = bounds
                .iter()
                .map(|b| (args.topic.as_str(), b.partition, offset.clamp(b.log_start_offset, b.high_watermark)))
                .collect();
            admin.commit_offsets(&args.group, &targets).await.map_err(explain)?;
            targets
                .iter()
                .map(|&(topic, partition, offset)| CommittedOffset {
                    topic: topic.to_owned(),
                    partition,
                    offset,
                    ..CommittedOffset::default()
                })
                .collect()
        }
        (None, None) => unreachable!("clap requires one of the --to flags"),
    };
    let mut table = Table::new(&["TOPIC", "PARTITION", "COMMITTED"]);
    for offset in &committed {
        table.row(vec![offset.topic.clone(), offset.partition.to_string(), offset.offset.to_string()]);
    }
    let mut out = output::stdout();
    output::line(&mut out, format_args!("group {} reset", args.group))?;
    table.write(&mut out)?;
    out.flush()?;
    Ok(())
}
