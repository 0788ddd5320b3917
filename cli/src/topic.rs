//! `rill topic create|list|describe|delete|add-partitions` (`alter` is in `topic_alter.rs`, `defaults` in
//! `topic_defaults.rs`, `delete-records` in `topic_delete_records.rs`): the `Admin` topic calls, printed for people
//! (aligned tables with a header row) and scripts (one item per line, stable columns).

use std::io::Write;

use rill_client::{Admin, DurabilityPolicy, TopicConfig, TopicInfo, TopicReplication};

use crate::connect::{block_on, BrokerFlag};
use crate::output;
use crate::table::Table;

const EXAMPLES: &str = "\
Examples:
  rill topic create orders --partitions 3
  rill topic create audit --durability always --retention-ms 604800000   # fsync every append, keep 7 days
  rill topic list
  rill topic describe orders            # per partition: start and end offsets, bytes, segments
  rill topic add-partitions orders --count 6
  rill topic alter orders --config retention.ms=3600000   # settings change while the topic serves
  rill topic defaults --config log.retention.ms=259200000  # every topic not setting retention.ms follows
  rill topic delete-records orders --partition 0 --before 40   # offsets below 40 go for good
  rill topic reassign orders --partition 0 --replicas 1,2,4    # a cluster: move a partition's replicas
  rill topic delete orders";

#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct TopicArgs {
    #[command(subcommand)]
    command: TopicCommand,
}

#[derive(Debug, clap::Subcommand)]
enum TopicCommand {
    /// Create a topic; unset settings take the broker's defaults.
    #[command(after_help = "Examples:
  rill topic create orders --partitions 3
  rill topic create audit --durability always --retention-ms 604800000
  rill topic create clicks --retention-bytes 1073741824 --segment-bytes 67108864
  rill topic create orders --if-not-exists     # in a deploy script: done if it is there already")]
    Create(CreateArgs),
    /// List every topic with its partition count and settings.
    #[command(after_help = "Examples:
  rill topic list
  rill topic list --broker rill-1.internal:9092     # or RILL_BROKER=rill-1.internal:9092")]
    List {
        #[command(flatten)]
        broker: BrokerFlag,
    },
    /// Show a topic's settings and, per partition, its start and end offsets, bytes on disk and segments.
    #[command(after_help = "Examples:
  rill topic describe orders

END is the offset the next record gets; END - START records are readable.")]
    Describe {
        /// Topic name.
        name: String,
        #[command(flatten)]
        broker: BrokerFlag,
    },
    /// Change a topic's settings while it serves (Kafka's key names); others stay, deleted ones take the default.
    #[command(after_help = crate::topic_alter::AFTER_HELP)]
    Alter(crate::topic_alter::AlterArgs),
    /// Show or change the cluster's topic defaults (Kafka's log.retention.ms, ...), which every topic not setting
    /// the key itself follows.
    #[command(after_help = crate::topic_defaults::AFTER_HELP)]
    Defaults(crate::topic_defaults::DefaultsArgs),
    /// Delete a partition's records before an offset (Kafka's kafka-delete-records.sh); the topic stays.
    #[command(after_help = crate::topic_delete_records::AFTER_HELP)]
    DeleteRecords(crate::topic_delete_records::DeleteRecordsArgs),
    /// Delete a topic and all its records.
    #[command(after_help = "Examples:
  rill topic delete orders
  rill topic delete orders --if-exists     # done if it is gone already")]
    Delete {
        /// Topic name.
        name: String,
        /// A topic that does not exist is not an error (exit 0).
        #[arg(long)]
        if_exists: bool,
        #[command(flatten)]
        broker: BrokerFlag,
    },
    /// Grow a topic to --count partitions (never shrinks; keys then map to other partitions).
    #[command(after_help = "Examples:
  rill topic add-partitions orders --count 6     # orders now has 6 partitions in all")]
    AddPartitions {
        /// Topic name.
        name: String,
        /// The new total number of partitions; more than the topic has now.
        #[arg(long, value_name = "N")]
        count: u32,
        #[command(flatten)]
        broker: BrokerFlag,
    },
    /// In a cluster: move a partition onto the replicas named, the preferred leader first.
    #[command(after_help = "Examples:
  rill cluster add-node --node-id 4 --address 127.0.0.1:9095
  rill topic reassign orders --partition 0 --replicas 1,2,4     # node 4 replaces node 3
  rill topic reassign orders --partition 0 --cancel             # back to the replicas it had
  rill topic reassign orders --partition 1 --replicas 2,3,4 --no-wait  # start it; rill topic describe follows it

The move is recorded in the cluster's metadata (rill topic describe shows it on any node, and a new controller
leader finishes it). Each new node gains a replica, copies the partition and joins the ISR; then the nodes left
out leave (a leader left out hands over to an in-sync replica, and producers retry there). A leader that stays
keeps leading: `rill cluster elect-leaders` moves the leadership to the first replica. Refused, before anything
changes, for a node that is not a member or is down, a node named twice, fewer replicas than the topic's
min_insync_replicas, a partition moving already, or while a node is being added or removed. Answered once
done, which takes as long as the copying; with --no-wait, once the move is recorded (as Kafka's
kafka-reassign-partitions.sh --execute), the copying going on after. --cancel puts a move under way back on the original replicas (the
new ones leave and delete their copies); refused when the partition is not moving, or when none of its
original replicas is in sync. --throttle sets the cluster's replication throttle first (as `rill cluster
throttle set`): the new replicas copy at most that many bytes/s per pair of nodes until they are in sync; it
stays in force until cleared (rill cluster throttle clear).")]
    Reassign {
        /// Topic name.
        name: String,
        /// The partition to move.
        #[arg(long, value_name = "N")]
        partition: u32,
        /// The new replicas' node ids, comma-separated, the preferred leader first.
        #[arg(long, value_name = "IDS", value_delimiter = ',', required_unless_present = "cancel")]
        replicas: Vec<u64>,
        /// Cancel the partition's move under way instead.
        #[arg(long, conflicts_with = "replicas")]
        cancel: bool,
        /// Answer once the move is recorded, not once it is done.
        #[arg(long, conflicts_with = "cancel")]
        no_wait: bool,
        /// Bound the copying: set the cluster's replication throttle to this many bytes/s first.
        #[arg(
            long,
            value_name = "BYTES_PER_SEC",
            allow_hyphen_values = true,
            conflicts_with = "cancel",
            value_parser = crate::cluster::parse_throttle
        )]
        throttle: Option<u64>,
        #[command(flatten)]
        broker: BrokerFlag,
    },
}

#[derive(Debug, clap::Args)]
struct CreateArgs {
    /// Topic name: 1 to 249 characters of [A-Za-z0-9._-].
    name: String,
    /// Number of partitions. [default: the broker's --default-partitions, 1 unless set]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    partitions: Option<u32>,
    /// Delete segments whose newest record is older than this; -1 or `forever` keeps records forever.
    /// [default: the broker's default_retention_ms, 7 days as Kafka's retention.ms]
    #[arg(long, value_name = "MS", allow_hyphen_values = true, value_parser = parse_retention)]
    retention_ms: Option<u64>,
    /// Delete the oldest segments once a partition is larger than this; -1 or `forever` sets no size limit.
    /// [default: the broker's default_retention_bytes, no limit]
    #[arg(long, value_name = "BYTES", allow_hyphen_values = true, value_parser = parse_retention)]
    retention_bytes: Option<u64>,
    /// Roll to a new segment file past this size. [default: the broker's, 1 GiB]
    #[arg(long, value_name = "BYTES")]
    segment_bytes: Option<u64>,
    /// When appends are fsynced: always (before each acknowledgement), interval, or never. [default: the broker's]
    #[arg(long, value_parser = parse_durability)]
    durability: Option<DurabilityPolicy>,
    /// With --durability interval: fsync this often.
    #[arg(long, value_name = "MS")]
    flush_interval_ms: Option<u64>,
    /// Largest record batch producers may append to this topic.
    #[arg(long, value_name = "BYTES")]
    max_batch_bytes: Option<u64>,
    /// delete (retention deletes old segments), compact (each key's newest record is kept; every record needs a
    /// key), or compact,delete. Compaction's own settings change with `rill topic alter`. [default: delete]
    #[arg(long, value_name = "POLICY")]
    cleanup_policy: Option<String>,
    /// In a cluster: copies of each partition, on as many nodes. [default: the broker's
    /// --default-replication-factor, 1 unless set]
    #[arg(long, value_name = "N")]
    replication_factor: Option<u32>,
    /// In a cluster: in-sync replicas a produce with --acks all needs. [default: the cluster's min.insync.replicas
    /// (`rill topic defaults`), at most the replication factor; unset, 2 for 3 copies or more, else 1]
    #[arg(long, value_name = "N")]
    min_insync_replicas: Option<u32>,
    /// Any setting `rill topic alter` takes, KEY=VALUE with Kafka's key names (repeatable), as
    /// `kafka-topics --create --config` takes them; the flags above win over the same setting here.
    #[arg(long = "config", value_name = "KEY=VALUE", allow_hyphen_values = true)]
    configs: Vec<String>,
    /// A topic of that name existing already is not an error (exit 0), whatever its settings (kafka-topics'
    /// --if-not-exists).
    #[arg(long)]
    if_not_exists: bool,
    #[command(flatten)]
    broker: BrokerFlag,
}

/// A retention limit: a number, or -1 / `forever` for none (Kafka's -1), sent as the proto's "keep forever"
/// value, u64::MAX.
pub(crate) fn parse_retention(text: &str) -> Result<u64, String> {
    match text {
        "-1" | "forever" => Ok(u64::MAX),
        _ => text.parse().map_err(|_| format!("{text:?} is not a whole number, -1 or forever")),
    }
}

fn parse_durability(text: &str) -> Result<DurabilityPolicy, String> {
    match text {
        "always" => Ok(DurabilityPolicy::Always),
        "interval" => Ok(DurabilityPolicy::Interval),
        "never" => Ok(DurabilityPolicy::Never),
        _ => Err(format!("{text:?} is not one of always, interval, never")),
    }
}

pub fn run(args: TopicArgs) -> anyhow::Result<()> {
    block_on(async move {
        match args.command {
            TopicCommand::Create(args) => create(args).await,
            TopicCommand::List { broker } => list(&broker).await,
            TopicCommand::Describe { name, broker } => describe(&broker, &name).await,
            TopicCommand::Alter(args) => crate::topic_alter::alter(args).await,
            TopicCommand::Defaults(args) => crate::topic_defaults::defaults(args).await,
            TopicCommand::DeleteRecords(args) => crate::topic_delete_records::delete_records(args).await,
            TopicCommand::Delete { name, if_exists, broker } => {
                let deleted = admin(&broker).await?.delete_topic(&name).await;
                let mut out = output::stdout();
                match deleted {
                    Ok(()) => output::line(&mut out, format_args!("deleted topic {name:?}"))?,
                    Err(rill_client::Error::UnknownTopic { .. }) if if_exists => {
                        output::line(&mut out, format_args!("no topic {name:?}: nothing to delete"))?
                    }
                    Err(err) => return Err(broker.explain(err)),
                }
                out.flush()?;
                Ok(())
            }
            TopicCommand::Reassign { name, partition, replicas, cancel, no_wait, throttle, broker } => {
                crate::cluster::set_throttle_before_move(&broker, throttle).await?;
                let how = match cancel {
                    true => Reassign::Cancel,
                    false if no_wait => Reassign::Start(&replicas),
                    false => Reassign::Move(&replicas),
                };
                reassign(&broker, &name, partition, how).await
            }
            TopicCommand::AddPartitions { name, count, broker } => {
                let topic = admin(&broker).await?.add_partitions(&name, count).await.map_err(|e| broker.explain(e))?;
                let mut out = output::stdout();
                output::line(&mut out, format_args!("topic {name:?} now has {}", partitions(topic.partition_count)))?;
                out.flush()?;
                Ok(())
            }
        }
    })
}

/// What `rill topic reassign` asks of a partition.
#[derive(Clone, Copy)]
enum Reassign<'a> {
    /// Move it onto these replicas and wait until done.
    Move(&'a [u64]),
    /// Start moving it onto these replicas.
    Start(&'a [u64]),
    /// Cancel its move.
    Cancel,
}

async fn reassign(broker: &BrokerFlag, name: &str, partition: u32, how: Reassign<'_>) -> anyhow::Result<()> {
    let admin = rill_client::ClusterAdmin::new(broker.connect().await?);
    let (done, what) = match how {
        Reassign::Move(replicas) => (admin.reassign_partition(name, partition, replicas).await, "reassigned"),
        Reassign::Start(replicas) => (admin.start_reassignment(name, partition, replicas).await, "started moving"),
        Reassign::Cancel => (admin.cancel_reassignment(name, partition).await, "cancelled the move of"),
    };
    let done = done.map_err(|e| broker.explain(e))?;
    let ids = |ids: &[u64]| ids.iter().map(ToString::to_string).collect::<Vec<_>>().join(",");
    let leader = done.leader_id.map_or_else(|| "none".to_owned(), |id| id.to_string());
    let mut out = output::stdout();
    writeln!(
        out,
        "{what} {name}/{partition}: replicas {} -> {}",
        ids(&done.previous_replica_ids),
        ids(&done.replica_ids)
    )?;
    writeln!(out, "leader {leader} at epoch {}, isr {}", done.leader_epoch, ids(&done.isr))?;
    if matches!(how, Reassign::Start(_)) {
        writeln!(
            out,
            "the new replicas copy the partition now: `rill topic describe {name}` shows the move until it is done; \
             `rill topic reassign {name} --partition {partition} --cancel` stops it"
        )?;
    }
    out.flush()?;
    Ok(())
}

/// The cluster's replication throttle for moves, or `None` if the cluster cannot be described now (the
/// partitions are shown all the same).
async fn move_throttle(broker: &BrokerFlag) -> Option<Option<u64>> {
    let admin = rill_client::ClusterAdmin::new(broker.connect().await.ok()?);
    admin.describe_cluster().await.ok().map(|d| d.replication_throttle_bytes_per_sec)
}

async fn admin(broker: &BrokerFlag) -> anyhow::Result<Admin> {
    Ok(Admin::new(broker.connect().await?))
}

async fn create(args: CreateArgs) -> anyhow::Result<()> {
    let (configured, configured_min_insync) = crate::topic_alter::configs_of(&args.configs)?;
    let config = TopicConfig {
        retention_bytes: args.retention_bytes.or(configured.retention_bytes),
        retention_ms: args.retention_ms.or(configured.retention_ms),
        segment_bytes: args.segment_bytes.or(configured.segment_bytes),
        durability: match args.durability {
            Some(policy) => policy as i32,
            None => configured.durability,
        },
        flush_interval_ms: args.flush_interval_ms.or(configured.flush_interval_ms),
        max_batch_bytes: args.max_batch_bytes.or(configured.max_batch_bytes),
        cleanup_policy: args.cleanup_policy.clone().or(configured.cleanup_policy.clone()),
        ..configured
    };
    let admin = admin(&args.broker).await?;
    let replication = TopicReplication {
        factor: args.replication_factor,
        min_insync_replicas: args.min_insync_replicas.or(configured_min_insync),
    };
    let created = admin.create_replicated_topic(&args.name, args.partitions.unwrap_or(0), replication, config).await;
    let mut out = output::stdout();
    match created {
        Ok(topic) => output::line(
            &mut out,
            format_args!("created topic {:?} with {}", topic.name, partitions(topic.partition_count)),
        )?,
        Err(rill_client::Error::TopicExists { .. }) if args.if_not_exists => {
            output::line(&mut out, format_args!("topic {:?} exists already", args.name))?
        }
        Err(err) => return Err(args.broker.explain(err)),
    }
    out.flush()?;
    Ok(())
}

async fn list(broker: &BrokerFlag) -> anyhow::Result<()> {
    let topics = admin(broker).await?.list_topics().await.map_err(|e| broker.explain(e))?;
    let mut table = Table::new(&["TOPIC", "PARTITIONS", "DURABILITY", "RETENTION_MS", "RETENTION_BYTES"]);
    for topic in &topics {
        let config = topic.config.clone().unwrap_or_default();
        table.row(vec![
            topic.name.clone(),
            topic.partition_count.to_string(),
            durability_name(config.durability).to_owned(),
            or_forever(config.retention_ms),
            or_forever(config.retention_bytes),
        ]);
    }
    let mut out = output::stdout();
    table.write(&mut out)?;
    out.flush()?;
    Ok(())
}

async fn describe(broker: &BrokerFlag, name: &str) -> anyhow::Result<()> {
    let description = admin(broker).await?.describe_topic(name).await.map_err(|e| broker.explain(e))?;
    let mut out = output::stdout();
    write_settings(&mut out, &description.topic)?;
    output::line(&mut out, "")?;
    let is_replicated = description.partitions.iter().any(|p| !p.replicas.is_empty());
    if is_replicated {
        let is_moving = description.partitions.iter().any(|p| !p.target_replicas.is_empty());
        let throttle = if is_moving { move_throttle(broker).await } else { None };
        write_replicas(&mut out, &description.partitions, throttle)?;
        write_cache_hit_rate(&mut out, &description.partitions)?;
        write_open_transactions(&mut out, &description.partitions)?;
        write_fsync_failures(&mut out, &description.partitions)?;
        out.flush()?;
        return Ok(());
    }
    let mut table =
        Table::new(&["PARTITION", "START", "END", "RECORDS", "BYTES", "SEGMENTS", "CACHE_HITS", "CACHE_MISSES"]);
    for p in &description.partitions {
        table.row(vec![
            p.partition.to_string(),
            p.log_start_offset.to_string(),
            p.high_watermark.to_string(),
            (p.high_watermark - p.log_start_offset).to_string(),
            p.size_bytes.to_string(),
            p.segment_count.to_string(),
            p.tail_cache_hits.to_string(),
            p.tail_cache_misses.to_string(),
        ]);
    }
    table.write(&mut out)?;
    write_cache_hit_rate(&mut out, &description.partitions)?;
    write_open_transactions(&mut out, &description.partitions)?;
    write_fsync_failures(&mut out, &description.partitions)?;
    out.flush()?;
    Ok(())
}

/// The Kafka transactions open in each partition, and where they hold `read_committed` readers: what to look at
/// when such a consumer stops moving (a transaction left open by its producer ends at its timeout; one its
/// coordinator lost, only by `kafka-transactions.sh abort`).
fn write_open_transactions(out: &mut impl Write, partitions: &[rill_client::PartitionInfo]) -> std::io::Result<()> {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX));
    for p in partitions.iter().filter(|p| !p.open_transactions.is_empty()) {
        writeln!(out)?;
        writeln!(
            out,
            "partition {}: {} open transaction(s); read_committed readers stop at offset {} (the high watermark is {})",
            p.partition,
            p.open_transactions.len(),
            p.last_stable_offset,
            p.high_watermark
        )?;
        for open in &p.open_transactions {
            let idle_s = now_ms.saturating_sub(open.last_seen_ms).max(0) / 1000;
            writeln!(
                out,
                "  producer {} (epoch {}) open since offset {}, last written {idle_s} s ago",
                open.producer_id, open.producer_epoch, open.first_offset
            )?;
        }
    }
    Ok(())
}

/// The partitions whose log takes no appends since an fsync of it failed, and why: what an operator must act on.
fn write_fsync_failures(out: &mut impl Write, partitions: &[rill_client::PartitionInfo]) -> std::io::Result<()> {
    for p in partitions.iter().filter(|p| !p.fsync_failure.is_empty()) {
        writeln!(out)?;
        writeln!(out, "partition {} refuses appends: {}", p.partition, p.fsync_failure)?;
    }
    Ok(())
}

/// The tail cache's hit rate over the partitions' reads (on a cluster, as each leader counted them), once
/// anything was read.
fn write_cache_hit_rate(out: &mut impl Write, partitions: &[rill_client::PartitionInfo]) -> std::io::Result<()> {
    let (hits, misses) =
        partitions.iter().fold((0, 0), |(hits, misses), p| (hits + p.tail_cache_hits, misses + p.tail_cache_misses));
    if hits + misses == 0 {
        return Ok(());
    }
    let rate = hits as f64 * 100.0 / (hits + misses) as f64;
    writeln!(out)?;
    writeln!(out, "tail cache hit rate {rate:.1}% ({hits} of {} reads)", hits + misses)?;
    let read_ahead_hits: u64 = partitions.iter().map(|p| p.read_ahead_hits).sum();
    if misses > 0 {
        writeln!(out, "of the {misses} reads from segment files, {read_ahead_hits} answered from reads ahead")?;
    }
    Ok(())
}

/// A cluster's partitions: placement, the log's start, high watermark (HW), bytes and segments as the leader
/// knows them (as the answering node's replica knows them when the leader did not answer; `-` when that node
/// holds none), and each replica's log end as the leader last heard it (`node:end`).
/// `throttle` is the cluster's replication throttle for moves (`None` when it could not be learned), shown when a
/// partition is moving.
fn write_replicas(
    out: &mut impl Write,
    partitions: &[rill_client::PartitionInfo],
    throttle: Option<Option<u64>>,
) -> std::io::Result<()> {
    let ids = |ids: &[u64]| ids.iter().map(u64::to_string).collect::<Vec<_>>().join(",");
    let mut table = Table::new(&[
        "PARTITION",
        "LEADER",
        "EPOCH",
        "REPLICAS",
        "ISR",
        "HW",
        "START",
        "BYTES",
        "SEGMENTS",
        "LOG ENDS",
    ]);
    for p in partitions {
        let ends: Vec<String> =
            p.replica_log_ends.iter().map(|r| format!("{}:{}", r.node_id, r.log_end_offset)).collect();
        // Every log has a segment: none means the answer came from a node without a replica of the partition.
        let is_log_known = p.segment_count > 0;
        let of_log = |figure: String| if is_log_known { figure } else { "-".to_owned() };
        table.row(vec![
            p.partition.to_string(),
            p.leader.map_or_else(|| "none".to_owned(), |id| id.to_string()),
            p.leader_epoch.to_string(),
            ids(&p.replicas),
            ids(&p.isr),
            p.high_watermark.to_string(),
            of_log(p.log_start_offset.to_string()),
            of_log(p.size_bytes.to_string()),
            of_log(p.segment_count.to_string()),
            if ends.is_empty() { "-".to_owned() } else { ends.join(" ") },
        ]);
    }
    table.write(out)?;
    let is_moving = partitions.iter().any(|p| !p.target_replicas.is_empty());
    for p in partitions.iter().filter(|p| !p.target_replicas.is_empty()) {
        writeln!(
            out,
            "partition {} is moving onto {}: adding {}, removing {}",
            p.partition,
            ids(&p.target_replicas),
            if p.adding_replicas.is_empty() { "none".to_owned() } else { ids(&p.adding_replicas) },
            if p.removing_replicas.is_empty() { "none".to_owned() } else { ids(&p.removing_replicas) },
        )?;
    }
    if is_moving {
        let throttle = match throttle {
            Some(Some(rate)) => format!("{rate} bytes/s per pair of nodes, until each new replica is in sync"),
            Some(None) => "none (the new replicas copy at full speed)".to_owned(),
            None => "unknown (the cluster could not be described)".to_owned(),
        };
        writeln!(out, "move throttle: {throttle}")?;
    }
    Ok(())
}

/// The topic's settings, then which of them are set on the topic (by Kafka's names, as `rill topic alter`
/// takes them); the others are the broker's defaults.
pub(crate) fn write_settings(out: &mut impl Write, topic: &TopicInfo) -> std::io::Result<()> {
    let config = topic.config.clone().unwrap_or_default();
    let mut settings = Table::new(&["topic", &topic.name]);
    settings.row(vec!["partitions".into(), topic.partition_count.to_string()]);
    if topic.replication_factor > 1 {
        settings.row(vec!["replication_factor".into(), topic.replication_factor.to_string()]);
        settings.row(vec!["min_insync_replicas".into(), topic.min_insync_replicas.to_string()]);
    }
    settings.row(vec!["durability".into(), durability_name(config.durability).to_owned()]);
    settings.row(vec!["flush_interval_ms".into(), or_none(config.flush_interval_ms)]);
    settings.row(vec!["retention_ms".into(), or_forever(config.retention_ms)]);
    settings.row(vec!["retention_bytes".into(), or_forever(config.retention_bytes)]);
    settings.row(vec!["segment_bytes".into(), or_none(config.segment_bytes)]);
    settings.row(vec!["max_batch_bytes".into(), or_none(config.max_batch_bytes)]);
    let policy = config.cleanup_policy.clone().unwrap_or_else(|| "delete".to_owned());
    if policy.contains("compact") {
        settings.row(vec!["delete_retention_ms".into(), or_none(config.delete_retention_ms)]);
        settings.row(vec!["min_compaction_lag_ms".into(), or_none(config.min_compaction_lag_ms)]);
        let ratio = config.min_cleanable_dirty_ratio.map_or_else(|| "-".to_owned(), |r| r.to_string());
        settings.row(vec!["min_cleanable_dirty_ratio".into(), ratio]);
        settings.row(vec!["max_compaction_lag_ms".into(), or_unbounded(config.max_compaction_lag_ms)]);
    }
    settings.row(vec!["cleanup_policy".into(), policy]);
    settings.row(vec!["segment_ms".into(), or_none(config.segment_ms)]);
    let timestamp_type = config.message_timestamp_type.clone().unwrap_or_else(|| "CreateTime".to_owned());
    settings.row(vec!["timestamp_type".into(), timestamp_type]);
    if let Some(codec) = config.compression_type.as_ref().filter(|codec| *codec != "producer") {
        settings.row(vec!["compression_type".into(), codec.clone()]);
    }
    let levels = [
        ("compression_gzip_level", config.compression_gzip_level),
        ("compression_lz4_level", config.compression_lz4_level),
        ("compression_zstd_level", config.compression_zstd_level),
    ];
    for (name, level) in levels {
        if let Some(level) = level {
            settings.row(vec![name.into(), level.to_string()]);
        }
    }
    let sides = [
        ("key_schema_validation", config.key_schema_validation, &config.key_subject_name_strategy),
        ("value_schema_validation", config.value_schema_validation, &config.value_subject_name_strategy),
    ];
    for (name, enabled, strategy) in sides {
        if enabled == Some(true) {
            let strategy = strategy.clone().unwrap_or_else(|| "TopicNameStrategy".to_owned());
            settings.row(vec![name.into(), format!("on ({strategy})")]);
        }
    }
    let throttled = [
        ("leader_throttled_replicas", &config.leader_throttled_replicas),
        ("follower_throttled_replicas", &config.follower_throttled_replicas),
    ];
    for (name, list) in throttled {
        if let Some(list) = list.as_ref().filter(|list| !list.is_empty()) {
            settings.row(vec![name.into(), list.clone()]);
        }
    }
    if config.dead_letter_group_enable == Some(true) {
        settings.row(vec!["dead_letter_group_enable".into(), "true (share groups' dead letters)".into()]);
    }
    for (name, bound) in [
        ("timestamp_before_max_ms", config.message_timestamp_before_max_ms),
        ("timestamp_after_max_ms", config.message_timestamp_after_max_ms),
    ] {
        if bound.is_some() {
            settings.row(vec![name.into(), or_unbounded(bound)]);
        }
    }
    settings.write(out)?;
    if topic.overridden_keys.is_empty() {
        writeln!(out, "set on the topic: none (every setting follows the defaults: `rill topic defaults`)")
    } else {
        let own = topic.overridden_keys.join(", ");
        writeln!(out, "set on the topic: {own} (the others follow the defaults: `rill topic defaults`)")
    }
}

fn durability_name(value: i32) -> &'static str {
    match DurabilityPolicy::try_from(value) {
        Ok(DurabilityPolicy::Always) => "always",
        Ok(DurabilityPolicy::Interval) => "interval",
        Ok(DurabilityPolicy::Never) => "never",
        Ok(DurabilityPolicy::Unspecified) | Err(_) => "default",
    }
}

fn or_forever(value: Option<u64>) -> String {
    value.map_or_else(|| "forever".to_owned(), |v| v.to_string())
}

/// A bound in milliseconds the broker reports unset when there is none.
fn or_unbounded(value: Option<u64>) -> String {
    value.map_or_else(|| "none".to_owned(), |v| v.to_string())
}

fn or_none(value: Option<u64>) -> String {
    value.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

fn partitions(count: u32) -> String {
    if count == 1 {
        "1 partition".to_owned()
    } else {
        format!("{count} partitions")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describe_names_each_partition_whose_fsync_failed_and_why() {
        let failed = rill_client::PartitionInfo {
            partition: 2,
            fsync_failure: "an fsync of /d/t-2/00000000000000000000.log failed (EIO)".into(),
            ..Default::default()
        };
        let partitions = [rill_client::PartitionInfo { partition: 1, ..Default::default() }, failed];
        let mut out = Vec::new();
        write_fsync_failures(&mut out, &partitions).expect("write");
        let text = String::from_utf8(out).expect("utf-8");
        assert_eq!(text, "\npartition 2 refuses appends: an fsync of /d/t-2/00000000000000000000.log failed (EIO)\n");
        let mut none = Vec::new();
        write_fsync_failures(&mut none, &partitions[..1]).expect("write");
        assert!(none.is_empty(), "nothing is said of healthy partitions");
    }
}
