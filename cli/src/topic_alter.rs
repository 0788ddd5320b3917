//! `rill topic alter NAME --config KEY=VALUE ... --delete-config KEY ... [--dry-run]`: a topic's settings changed
//! while it serves, under Kafka's key names (as `kafka-configs --alter --add-config` and `rpk topic
//! alter-config` take them). Keys and values are read here, so a typo is refused before anything is sent; the
//! broker checks the ranges and the whole result, and applies all of it or nothing.

use std::io::Write;

use anyhow::bail;
use rill_client::{Admin, AlterTopicConfigRequest, DurabilityPolicy, TopicConfig};

use crate::connect::BrokerFlag;
use crate::output;

/// The keys `--config` and `--delete-config` take, and what each value is.
const KEYS: &[(&str, &str)] = &[
    ("retention.ms", "milliseconds, or -1 to keep records forever"),
    ("retention.bytes", "bytes per partition, or -1 for no size limit"),
    ("segment.bytes", "bytes, 1024 to 2147483647"),
    ("max.message.bytes", "bytes, at most the broker's max_batch_bytes and segment.bytes"),
    ("min.insync.replicas", "1 to the replication factor"),
    ("flush.ms", "milliseconds between fsyncs (interval durability)"),
    ("rill.durability", "always, interval or never"),
    ("cleanup.policy", "delete, compact, or compact,delete"),
    ("delete.retention.ms", "milliseconds a compacted topic keeps a tombstone"),
    ("min.compaction.lag.ms", "milliseconds a record stays before compaction may remove it"),
    ("min.cleanable.dirty.ratio", "a ratio from 0 to 1: how much of a partition is new before it is compacted"),
    ("max.compaction.lag.ms", "milliseconds within which a compacted topic's record is compacted"),
    ("segment.ms", "milliseconds before the active segment rolls, at least 1"),
    ("message.timestamp.type", "CreateTime (the producer's clock) or LogAppendTime (the broker's)"),
    ("message.timestamp.before.max.ms", "milliseconds a record's timestamp may be behind the broker's clock"),
    ("message.timestamp.after.max.ms", "milliseconds a record's timestamp may be ahead of the broker's clock"),
    ("compression.type", "producer (as sent), uncompressed, gzip, snappy, lz4 or zstd (every batch stored so)"),
    ("compression.gzip.level", "1 to 9, or -1 (zlib's default, 6): gzip's level when compression.type is gzip"),
    ("compression.lz4.level", "1 to 17 (9, the default, is LZ4's fast compressor; the others LZ4 HC)"),
    ("compression.zstd.level", "-131072 to 22 (3 is the default): zstd's level when compression.type is zstd"),
    ("confluent.key.schema.validation", "true or false: every key carries a registered schema id"),
    ("confluent.value.schema.validation", "true or false: every value carries a registered schema id"),
    ("confluent.key.subject.name.strategy", "TopicNameStrategy, RecordNameStrategy or TopicRecordNameStrategy"),
    ("confluent.value.subject.name.strategy", "TopicNameStrategy, RecordNameStrategy or TopicRecordNameStrategy"),
    ("errors.deadletterqueue.group.enable", "true or false: share groups may write their dead letters here"),
    (
        "leader.replication.throttled.replicas",
        "* or PARTITION:BROKER pairs (0:1,0:2): leaders whose catch-up is throttled",
    ),
    ("follower.replication.throttled.replicas", "* or PARTITION:BROKER pairs: followers whose catch-up is throttled"),
];

/// Kafka's Long.MAX_VALUE, its "no bound" for the bounds above; sent as is (the broker reads it as none).
const NO_BOUND: &str = "9223372036854775807";

#[derive(Debug, clap::Args)]
pub struct AlterArgs {
    /// Topic name.
    name: String,
    #[command(flatten)]
    changes: ConfigChanges,
    #[command(flatten)]
    broker: BrokerFlag,
}

/// A change of settings as `rill topic alter` and `rill group config` take it.
#[derive(Debug, clap::Args)]
pub struct ConfigChanges {
    /// A setting to change, KEY=VALUE with Kafka's key names (repeatable).
    #[arg(long = "config", value_name = "KEY=VALUE", allow_hyphen_values = true)]
    pub configs: Vec<String>,
    /// A key to delete, putting back the default it had (repeatable).
    #[arg(long = "delete-config", value_name = "KEY")]
    pub deletes: Vec<String>,
    /// Check the change and show the settings it would give, changing nothing.
    #[arg(long)]
    pub dry_run: bool,
}

pub const AFTER_HELP: &str = "Examples:
  rill topic alter orders --config retention.ms=3600000                 # keep one hour
  rill topic alter orders --config retention.bytes=-1 --config segment.bytes=67108864
  rill topic alter orders --delete-config retention.ms                  # back to the default
  rill topic alter orders --config max.message.bytes=65536 --dry-run    # check only

Keys: retention.ms, retention.bytes (-1: no limit), segment.bytes, max.message.bytes, min.insync.replicas,
flush.ms (interval durability with that period), rill.durability (always, interval, never), cleanup.policy
(delete, compact, compact,delete), delete.retention.ms, min.compaction.lag.ms, max.compaction.lag.ms,
min.cleanable.dirty.ratio (compaction, docs/compaction.md), segment.ms, message.timestamp.type (CreateTime,
LogAppendTime), message.timestamp.before.max.ms, message.timestamp.after.max.ms, compression.type (producer,
uncompressed, gzip, snappy, lz4, zstd) with compression.gzip.level, compression.lz4.level and
compression.zstd.level (the level batches are stored at). Applied to every
partition on every node that holds one, and kept across restarts: retention at the next retention pass,
segment.bytes at the next segment roll, max.message.bytes and durability at the next produce. All or nothing:
one bad key or value refuses the change. Needs alter_configs on the topic when authorization is on.";

/// The request `args` ask for, or what is wrong with them.
fn request_of(args: &AlterArgs) -> anyhow::Result<AlterTopicConfigRequest> {
    if args.changes.configs.is_empty() && args.changes.deletes.is_empty() {
        bail!("nothing to change: give --config KEY=VALUE or --delete-config KEY");
    }
    let (set, min_insync_replicas) = configs_of(&args.changes.configs)?;
    for key in &args.changes.deletes {
        if !KEYS.iter().any(|(name, _)| name == key) {
            return Err(unknown(key));
        }
    }
    Ok(AlterTopicConfigRequest {
        name: args.name.clone(),
        set: Some(set),
        min_insync_replicas,
        delete: args.changes.deletes.clone(),
        validate_only: args.changes.dry_run,
    })
}

/// `--config KEY=VALUE` arguments as the settings they set, and the `min.insync.replicas` among them (not a
/// setting of the proto's `TopicConfig`). `rill topic create --config` takes the same.
pub(crate) fn configs_of(configs: &[String]) -> anyhow::Result<(TopicConfig, Option<u32>)> {
    let mut set = TopicConfig::default();
    let mut min_insync_replicas = None;
    for config in configs {
        let Some((key, value)) = config.split_once('=') else {
            bail!("--config {config:?} is not KEY=VALUE (for example retention.ms=3600000)");
        };
        let (key, value) = (key.trim(), value.trim());
        let what = KEYS.iter().find(|(name, _)| *name == key).map(|(_, what)| *what).ok_or_else(|| unknown(key))?;
        let bad = || anyhow::anyhow!("invalid value {value:?} for {key}: it is {what}");
        let number = || value.parse::<u64>().map_err(|_| bad());
        let limit = || if value == "-1" { Ok(u64::MAX) } else { number() };
        let bound = || if value == NO_BOUND { Ok(u64::MAX) } else { number() };
        match key {
            "retention.ms" => set.retention_ms = Some(limit()?),
            "retention.bytes" => set.retention_bytes = Some(limit()?),
            "segment.bytes" => set.segment_bytes = Some(number()?),
            "max.message.bytes" => set.max_batch_bytes = Some(number()?),
            "flush.ms" => set.flush_interval_ms = Some(number()?),
            "min.insync.replicas" => min_insync_replicas = Some(u32::try_from(number()?).map_err(|_| bad())?),
            "cleanup.policy" => set.cleanup_policy = Some(value.to_owned()),
            "delete.retention.ms" => set.delete_retention_ms = Some(number()?),
            "min.compaction.lag.ms" => set.min_compaction_lag_ms = Some(number()?),
            "min.cleanable.dirty.ratio" => {
                set.min_cleanable_dirty_ratio =
                    Some(value.parse::<f64>().ok().filter(|r| (0.0..=1.0).contains(r)).ok_or_else(bad)?)
            }
            "max.compaction.lag.ms" => set.max_compaction_lag_ms = Some(bound()?),
            "segment.ms" => set.segment_ms = Some(number()?),
            "message.timestamp.type" => match value {
                "CreateTime" | "LogAppendTime" => set.message_timestamp_type = Some(value.to_owned()),
                _ => return Err(bad()),
            },
            "message.timestamp.before.max.ms" => set.message_timestamp_before_max_ms = Some(bound()?),
            "message.timestamp.after.max.ms" => set.message_timestamp_after_max_ms = Some(bound()?),
            "compression.type" => match value {
                "producer" | "uncompressed" | "gzip" | "snappy" | "lz4" | "zstd" => {
                    set.compression_type = Some(value.to_owned())
                }
                _ => return Err(bad()),
            },
            "compression.gzip.level" => set.compression_gzip_level = Some(value.parse().map_err(|_| bad())?),
            "compression.lz4.level" => set.compression_lz4_level = Some(value.parse().map_err(|_| bad())?),
            "compression.zstd.level" => set.compression_zstd_level = Some(value.parse().map_err(|_| bad())?),
            "confluent.key.schema.validation" | "confluent.value.schema.validation" => {
                let enabled = match value.to_ascii_lowercase().as_str() {
                    "true" => true,
                    "false" => false,
                    _ => return Err(bad()),
                };
                match key {
                    "confluent.key.schema.validation" => set.key_schema_validation = Some(enabled),
                    _ => set.value_schema_validation = Some(enabled),
                }
            }
            "errors.deadletterqueue.group.enable" => {
                set.dead_letter_group_enable = match value.to_ascii_lowercase().as_str() {
                    "true" => Some(true),
                    "false" => Some(false),
                    _ => return Err(bad()),
                }
            }
            "confluent.key.subject.name.strategy" => set.key_subject_name_strategy = Some(value.to_owned()),
            "confluent.value.subject.name.strategy" => set.value_subject_name_strategy = Some(value.to_owned()),
            // Checked by the broker, which names the form in its refusal.
            "leader.replication.throttled.replicas" => set.leader_throttled_replicas = Some(value.to_owned()),
            "follower.replication.throttled.replicas" => set.follower_throttled_replicas = Some(value.to_owned()),
            _ => {
                let policy = match value {
                    "always" => DurabilityPolicy::Always,
                    "interval" => DurabilityPolicy::Interval,
                    "never" => DurabilityPolicy::Never,
                    _ => return Err(bad()),
                };
                set.durability = policy as i32;
            }
        }
    }
    Ok((set, min_insync_replicas))
}

fn unknown(key: &str) -> anyhow::Error {
    let names: Vec<&str> = KEYS.iter().map(|(name, _)| *name).collect();
    anyhow::anyhow!("unknown topic setting {key:?}: the settings that can change are {}", names.join(", "))
}

pub async fn alter(args: AlterArgs) -> anyhow::Result<()> {
    let request = request_of(&args)?;
    let admin = Admin::new(args.broker.connect().await?);
    let topic = admin.alter_topic_config(request).await.map_err(|e| args.broker.explain(e))?;
    let mut out = output::stdout();
    let verb = if args.changes.dry_run { "would alter (dry run, nothing changed)" } else { "altered" };
    let changed: Vec<String> = args
        .changes
        .configs
        .iter()
        .cloned()
        .chain(args.changes.deletes.iter().map(|k| format!("{k} (default)")))
        .collect();
    output::line(&mut out, format_args!("{verb} topic {:?}: {}", topic.name, changed.join(", ")))?;
    output::line(&mut out, "")?;
    crate::topic::write_settings(&mut out, &topic)?;
    out.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(clap::Parser)]
    struct Command {
        #[command(flatten)]
        alter: AlterArgs,
    }

    fn args(configs: &[&str], deletes: &[&str]) -> AlterArgs {
        use clap::Parser;
        let mut argv = vec!["alter".to_owned(), "orders".to_owned()];
        argv.extend(configs.iter().flat_map(|c| ["--config".to_owned(), (*c).to_owned()]));
        argv.extend(deletes.iter().flat_map(|k| ["--delete-config".to_owned(), (*k).to_owned()]));
        Command::try_parse_from(argv).expect("valid flags").alter
    }

    #[test]
    fn kafka_keys_map_onto_the_request_and_typos_are_refused_before_sending() {
        let request = request_of(&args(
            &["retention.ms=-1", "min.insync.replicas=2", "rill.durability=always"],
            &["segment.bytes"],
        ))
        .expect("valid");
        let set = request.set.expect("set");
        assert_eq!((set.retention_ms, set.durability), (Some(u64::MAX), DurabilityPolicy::Always as i32));
        assert_eq!((request.min_insync_replicas, request.delete), (Some(2), vec!["segment.bytes".to_owned()]));
        let typo = request_of(&args(&["retention.mss=5"], &[])).unwrap_err().to_string();
        assert!(typo.contains("retention.mss") && typo.contains("retention.ms,"), "{typo}");
        let value = request_of(&args(&["segment.bytes=big"], &[])).unwrap_err().to_string();
        assert!(value.contains("\"big\"") && value.contains("segment.bytes"), "{value}");
        assert!(request_of(&args(&["retention.ms"], &[])).unwrap_err().to_string().contains("KEY=VALUE"));
        assert!(request_of(&args(&[], &[])).unwrap_err().to_string().contains("nothing to change"));
    }
}
