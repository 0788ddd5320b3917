//! `rill topic defaults [--config KEY=VALUE ...] [--delete-config KEY ...] [--dry-run]`: the cluster's topic
//! defaults, under Kafka's broker names (as `kafka-configs --entity-type brokers --entity-default` takes them).
//! Without a change it shows them; with one, every topic that does not set such a key itself follows, and the
//! defaults as the change leaves them are shown. Keys and values are checked by the broker, which names what is
//! allowed; the form KEY=VALUE is checked here.

use std::collections::HashMap;
use std::io::Write;

use anyhow::bail;
use rill_client::{Admin, AlterTopicDefaultsRequest, TopicDefault};

use crate::connect::BrokerFlag;
use crate::output;
use crate::table::Table;
use crate::topic_alter::ConfigChanges;

#[derive(Debug, clap::Args)]
pub struct DefaultsArgs {
    #[command(flatten)]
    changes: ConfigChanges,
    #[command(flatten)]
    broker: BrokerFlag,
}

pub const AFTER_HELP: &str = "Examples:
  rill topic defaults                                            # each default and where it comes from
  rill topic defaults --config log.retention.ms=259200000        # 3 days for every topic not setting its own
  rill topic defaults --config compression.type=zstd --dry-run   # check, and count the topics it would change
  rill topic defaults --config min.insync.replicas=3             # acks all needs every replica of an RF 3 topic
  rill topic defaults --delete-config log.retention.ms           # back to the broker's --retention-ms

Keys (Kafka's broker names, each the default of a topic key): log.retention.ms, log.retention.bytes,
log.segment.bytes, log.roll.ms, message.max.bytes, min.insync.replicas (each topic takes at most its replication
factor; unset, 2 for 3 replicas or more, else 1), log.cleanup.policy, log.cleaner.delete.retention.ms,
log.cleaner.min.compaction.lag.ms, log.cleaner.max.compaction.lag.ms, log.cleaner.min.cleanable.ratio,
compression.type, compression.gzip.level, compression.lz4.level, compression.zstd.level,
log.message.timestamp.type, log.message.timestamp.before.max.ms, log.message.timestamp.after.max.ms. Values as
`rill topic alter` takes the topic keys. A topic keeps a key it set itself (at create, or with `rill topic alter
--config`) until `--delete-config` gives it back to the defaults. One set of defaults for the cluster, kept
across restarts. All or nothing: a bad key or value, or one some topic cannot take, refuses the change. Needs
alter_configs (describe_configs to show them) on the cluster when authorization is on.";

/// The request `args` ask for, if they ask for a change.
fn request_of(args: &DefaultsArgs) -> anyhow::Result<Option<AlterTopicDefaultsRequest>> {
    let changes = &args.changes;
    if changes.configs.is_empty() && changes.deletes.is_empty() {
        if changes.dry_run {
            bail!("--dry-run checks a change: give --config KEY=VALUE or --delete-config KEY");
        }
        return Ok(None);
    }
    let mut set = HashMap::new();
    for config in &changes.configs {
        let Some((key, value)) = config.split_once('=') else {
            bail!("--config {config:?} is not KEY=VALUE (for example log.retention.ms=3600000)");
        };
        if set.insert(key.trim().to_owned(), value.trim().to_owned()).is_some() {
            bail!("{} is given twice; give each key once", key.trim());
        }
    }
    Ok(Some(AlterTopicDefaultsRequest { set, delete: changes.deletes.clone(), validate_only: changes.dry_run }))
}

pub async fn defaults(args: DefaultsArgs) -> anyhow::Result<()> {
    let request = request_of(&args)?;
    let admin = Admin::new(args.broker.connect().await?);
    let mut out = output::stdout();
    let defaults = match request {
        None => admin.describe_topic_defaults().await.map_err(|e| args.broker.explain(e))?,
        Some(request) => {
            let altered = admin.alter_topic_defaults(request).await.map_err(|e| args.broker.explain(e))?;
            let topics = altered.topics_changed;
            let noun = if topics == 1 { "topic" } else { "topics" };
            let line = if args.changes.dry_run {
                format!("would change the topic defaults (dry run, nothing changed); {topics} {noun} would change with them")
            } else {
                format!("changed the topic defaults; {topics} {noun} changed with them")
            };
            output::line(&mut out, line)?;
            output::line(&mut out, "")?;
            altered.defaults
        }
    };
    write_defaults(&mut out, &defaults)?;
    out.flush()?;
    Ok(())
}

fn write_defaults(out: &mut impl Write, defaults: &[TopicDefault]) -> std::io::Result<()> {
    let mut table = Table::new(&["KEY", "VALUE", "SOURCE", "TOPIC KEY"]);
    for default in defaults {
        let source = if default.is_set { "cluster" } else { "broker" };
        table.row(vec![default.key.clone(), default.value.clone(), source.to_owned(), default.topic_key.clone()]);
    }
    table.write(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(clap::Parser)]
    struct Command {
        #[command(flatten)]
        defaults: DefaultsArgs,
    }

    fn args(argv: &[&str]) -> DefaultsArgs {
        use clap::Parser;
        let argv = std::iter::once("defaults").chain(argv.iter().copied());
        Command::try_parse_from(argv).expect("valid flags").defaults
    }

    #[test]
    fn changes_become_one_request_and_a_malformed_one_is_refused_before_sending() {
        assert!(request_of(&args(&[])).expect("a describe").is_none());
        let request = request_of(&args(&["--config", "log.retention.ms = 60000", "--delete-config", "log.roll.ms"]))
            .expect("valid")
            .expect("a change");
        assert_eq!(request.set.get("log.retention.ms").map(String::as_str), Some("60000"));
        assert_eq!(request.delete, ["log.roll.ms"]);
        let form = request_of(&args(&["--config", "log.retention.ms"])).unwrap_err().to_string();
        assert!(form.contains("KEY=VALUE"), "{form}");
        let twice = request_of(&args(&["--config", "compression.type=lz4", "--config", "compression.type=zstd"]));
        assert!(twice.unwrap_err().to_string().contains("given twice"));
        assert!(request_of(&args(&["--dry-run"])).unwrap_err().to_string().contains("checks a change"));
    }
}
