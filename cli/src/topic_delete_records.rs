//! `rill topic delete-records NAME --partition P --before OFFSET`, or `--offset-json-file FILE` in the format of
//! Kafka's `kafka-delete-records.sh`: records before an offset deleted for good (the partition's log start offset
//! moves there). Every partition's outcome is printed; any refusal makes the exit status 1.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

use anyhow::{bail, Context};
use rill_client::Admin;

use crate::connect::BrokerFlag;
use crate::output;

#[derive(Debug, clap::Args)]
pub struct DeleteRecordsArgs {
    /// Topic name (not with --offset-json-file, which names its topics).
    name: Option<String>,
    /// The partition whose records go.
    #[arg(long, requires = "before")]
    partition: Option<u32>,
    /// Records below this offset go; -1: every record below the high watermark.
    #[arg(long, allow_hyphen_values = true, requires = "partition")]
    before: Option<i64>,
    /// Kafka's offset JSON file: {"partitions": [{"topic": "orders", "partition": 0, "offset": 40}], "version": 1}.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["name", "partition", "before"])]
    offset_json_file: Option<PathBuf>,
    #[command(flatten)]
    broker: BrokerFlag,
}

pub const AFTER_HELP: &str = "Examples:
  rill topic delete-records orders --partition 0 --before 40    # offsets 0 to 39 go
  rill topic delete-records orders --partition 0 --before -1    # everything up to the high watermark
  rill topic delete-records --offset-json-file purge.json       # kafka-delete-records.sh's file

The partition's log start offset moves to the offset, for good: consumers starting from the earliest offset
start there, and reading below it is out of range. An offset past the high watermark is refused. On a cluster
the partition's leader deletes and answers once every in-sync replica has deleted too (the log start printed is
the smallest over them), so a failover keeps the deletion. Needs delete on the topic when authorization is on.";

/// Kafka's `--offset-json-file` layout.
#[derive(Debug, serde::Deserialize)]
struct OffsetFile {
    partitions: Vec<OffsetEntry>,
    #[serde(default)]
    version: Option<u32>,
}

#[derive(Debug, serde::Deserialize)]
struct OffsetEntry {
    topic: String,
    partition: u32,
    offset: i64,
}

/// What `args` ask to delete, by topic: `(partition, offset)` pairs in the order given.
fn deletions_of(args: &DeleteRecordsArgs) -> anyhow::Result<BTreeMap<String, Vec<(u32, i64)>>> {
    let mut by_topic: BTreeMap<String, Vec<(u32, i64)>> = BTreeMap::new();
    if let Some(path) = &args.offset_json_file {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        by_topic =
            parse_offset_file(&text).with_context(|| format!("{} is not an offset JSON file", path.display()))?;
        return Ok(by_topic);
    }
    let (Some(name), Some(partition), Some(before)) = (&args.name, args.partition, args.before) else {
        bail!("say what to delete: NAME --partition P --before OFFSET, or --offset-json-file FILE");
    };
    by_topic.insert(name.clone(), vec![(partition, before)]);
    Ok(by_topic)
}

fn parse_offset_file(text: &str) -> anyhow::Result<BTreeMap<String, Vec<(u32, i64)>>> {
    let file: OffsetFile = serde_json::from_str(text)
        .context(r#"expected {"partitions": [{"topic": "NAME", "partition": P, "offset": O}, ...], "version": 1}"#)?;
    if file.version.is_some_and(|v| v != 1) {
        bail!("version {:?} is not 1, the only version of the format", file.version);
    }
    if file.partitions.is_empty() {
        bail!("it lists no partitions");
    }
    let mut by_topic: BTreeMap<String, Vec<(u32, i64)>> = BTreeMap::new();
    for entry in file.partitions {
        let partitions = by_topic.entry(entry.topic.clone()).or_default();
        if partitions.iter().any(|(p, _)| *p == entry.partition) {
            bail!("partition {} of topic {:?} is listed twice", entry.partition, entry.topic);
        }
        partitions.push((entry.partition, entry.offset));
    }
    Ok(by_topic)
}

pub async fn delete_records(args: DeleteRecordsArgs) -> anyhow::Result<()> {
    let by_topic = deletions_of(&args)?;
    let admin = Admin::new(args.broker.connect().await?);
    let mut out = output::stdout();
    let mut refused = Vec::new();
    for (topic, before) in &by_topic {
        let results = admin.delete_records(topic, before).await.map_err(|e| args.broker.explain(e))?;
        for (result, (_, offset)) in results.iter().zip(before) {
            let partition = result.partition;
            if result.error_reason.is_empty() {
                output::line(
                    &mut out,
                    format_args!(
                        "topic {topic:?} partition {partition}: records before {offset} deleted; log start offset {}",
                        result.low_watermark
                    ),
                )?;
            } else {
                refused.push(format!("topic {topic:?} partition {partition}: {}", result.error_message));
            }
        }
    }
    out.flush()?;
    match refused.as_slice() {
        [] => Ok(()),
        [one] => bail!("{one}"),
        many => bail!("{} partitions refused:\n  {}", many.len(), many.join("\n  ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafkas_offset_file_groups_by_topic_and_bad_files_say_what_is_wrong() {
        let file = r#"{"partitions": [{"topic": "a", "partition": 0, "offset": 40},
            {"topic": "b", "partition": 2, "offset": -1}, {"topic": "a", "partition": 1, "offset": 7}], "version": 1}"#;
        let by_topic = parse_offset_file(file).expect("valid");
        assert_eq!(by_topic["a"], vec![(0, 40), (1, 7)]);
        assert_eq!(by_topic["b"], vec![(2, -1)]);
        let twice = r#"{"partitions": [{"topic": "a", "partition": 0, "offset": 1}, {"topic": "a", "partition": 0, "offset": 2}]}"#;
        assert!(parse_offset_file(twice).unwrap_err().to_string().contains("listed twice"));
        assert!(parse_offset_file(r#"{"partitions": []}"#).unwrap_err().to_string().contains("no partitions"));
        let wrong = format!("{:#}", parse_offset_file(r#"{"partition": 1}"#).unwrap_err());
        assert!(wrong.contains(r#""partitions""#), "{wrong}");
        assert!(parse_offset_file(r#"{"partitions": [{"topic": "a", "partition": 0, "offset": 1}], "version": 2}"#)
            .is_err());
    }
}
