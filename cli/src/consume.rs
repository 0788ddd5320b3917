//! `rill consume`: print a topic's records, one per line, as values or JSON objects.
//!
//! Where it starts, per partition: `--from-beginning`, `--from-end`, `--offset N`, `--from-time T` or
//! `--from-max-timestamp` if given; else the group's committed offset (`--group`), or the beginning if the
//! partition does not hold that offset (out of range); else the beginning. Where it
//! stops: without `--follow`, at the end offsets the partitions had when it started (records appended later are
//! left for the next run); with `--follow`, never; and after `--max-messages` records, on SIGINT/SIGTERM, or when stdout is closed — all of
//! them exit 0.
//!
//! Two ways to read (`Mode`). A standalone reader assigns the partitions asked for (all, or `--partition`);
//! with `--group` it commits as a standalone committer, which the broker accepts only while the group has no
//! members. A member (`--group G --follow`, no `--partition`, no start flag) subscribes: the broker shares the
//! topic's partitions between the group's members, so several `rill consume --group G --follow` split the
//! work like any other group's consumers.
//!
//! Commits (`--group`): the offset after the last record *written to stdout*, every `COMMIT_INTERVAL` and
//! before exiting. "Written" means flushed: records still in the output buffer when the reader goes away are
//! not committed, so a consumer that dies re-prints rather than skips (at-least-once). The consumer's own
//! position counts every record `poll` handed out, and the CLI may hand out more than it prints
//! (`--max-messages`, records past the end offsets, a broken pipe), so a standalone reader commits its own
//! flushed positions with `Admin::commit_offsets`, and a member moves its positions back to them (`seek`)
//! before its last commit. Every batch is flushed before the next `poll`, so the commits a member makes
//! inside `poll` (before giving a partition up in a rebalance) never cover an unprinted record.
//!
//! Stdout is written by a thread of its own (`output::StdoutThread`): a reader that stops reading blocks that
//! thread, while SIGINT and SIGTERM still stop the command, which commits what was flushed and exits 0.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::time::Duration;

use anyhow::Context;
use base64::Engine as _;
use rill_client::{Admin, ConsumedRecord, Consumer, ConsumerConfig, Isolation, OffsetSpec, SeekTo};
use tokio::signal::unix::{signal, SignalKind};

use crate::connect::{block_on, BrokerFlag};
use crate::output;
use crate::time_arg::parse_time_ms;

const EXAMPLES: &str = "\
Examples:
  rill consume greetings                          # every record, then exit
  rill consume greetings --offset 1 --partition 0 # replay partition 0 from offset 1
  rill consume greetings --from-time 2026-11-27T00:00:00Z --max-messages 10
  rill consume greetings --from-max-timestamp     # from the record with the largest timestamp on
  rill consume greetings --group demo             # resume after the group's committed offsets, commit
  rill consume greetings --group demo --follow    # join group demo: members share the partitions
  rill consume greetings --from-end --follow      # only new records, until Ctrl-C
  rill consume payments --isolation read-committed # only committed Kafka transactions' records
  rill consume greetings --format json | jq .value
  rill consume jobs --share-group workers --follow  # a share group's member: records split one by one
  rill consume jobs --share-group workers --max-messages 1 --ack reject   # give one record up

--format json prints one object per line: topic, partition, offset, timestamp (ms since the epoch), key,
value, headers ([{\"key\",\"value\"}]); a key or value that is not UTF-8 is given in base64 as key_b64 or
value_b64 instead; a missing key or value is null. --format value prints each value followed by a newline, as
raw bytes (a null value prints an empty line).

--group G: resume from the group's committed offsets, and commit what reached stdout (every second and on
exit). With --follow (and no --partition or start flag) the consumer joins the group as a member and reads
the partitions the broker assigns it; otherwise it reads every partition (or --partition) as a standalone
committer, which the broker refuses while the group has members.

--share-group G: a member of share group G (Kafka's KIP-932 queues, shared with Kafka share consumers): the
group hands each record to one member at a time, locked to it until it is acknowledged; several members share
a partition. A record is acknowledged (--ack, accept by default) once it reached stdout; one that did not (the
reader went away, --max-messages) is released, for another delivery. Without --follow it stops when the group
has nothing for it; --format json adds each record's delivery_count. Where a new group starts, its lock
duration and its isolation are the group's settings (rill group config G).";

/// How often `--group` commits what was printed (and once more on exit).
const COMMIT_INTERVAL: Duration = Duration::from_secs(1);
/// How often a standalone read looks whether its partitions moved past offsets without records (a poll returns
/// only records, so a log that ends in a transaction marker would leave it waiting).
const SKIP_CHECK_INTERVAL: Duration = Duration::from_millis(100);

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Format {
    /// Each record's value on its own line.
    Value,
    /// One JSON object per record per line.
    Json,
}

#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct ConsumeArgs {
    /// Topic to read.
    pub(crate) topic: String,
    /// Read only this partition (default: all of them).
    #[arg(long, value_name = "P")]
    partition: Option<u32>,
    /// Resume from this group's committed offsets and commit what is printed (with --follow: as a member).
    #[arg(long, value_name = "G")]
    group: Option<String>,
    /// Start at the oldest record, whatever the group committed.
    #[arg(long, group = "start")]
    from_beginning: bool,
    /// Start after the newest record (with --follow: only new records).
    #[arg(long, group = "start")]
    from_end: bool,
    /// Start at this offset (in every partition read; with --partition, in that one).
    #[arg(long, group = "start", value_name = "N", value_parser = clap::value_parser!(i64).range(0..))]
    offset: Option<i64>,
    /// Start at the first record at or after this time: RFC 3339 (2026-11-27T00:30:00Z) or ms since the epoch.
    #[arg(long, group = "start", value_name = "TIME", value_parser = parse_time_ms)]
    from_time: Option<i64>,
    /// Start at the first record carrying the partition's largest timestamp (Kafka's max-timestamp offset): with
    /// producers' clocks out of order, not always the newest record.
    #[arg(long, group = "start")]
    from_max_timestamp: bool,
    /// Exit after printing this many records.
    #[arg(long, value_name = "N")]
    pub(crate) max_messages: Option<u64>,
    /// Keep waiting for new records until interrupted (SIGINT/SIGTERM), instead of exiting at the end.
    #[arg(long)]
    pub(crate) follow: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Value)]
    pub(crate) format: Format,
    /// Read as a member of this share group (Kafka's KIP-932 queues): the group hands each record to one of its
    /// members at a time; each printed record is acknowledged (--ack) once it reached stdout.
    #[arg(long, value_name = "G", conflicts_with_all = ["group", "partition", "start"])]
    share_group: Option<String>,
    /// With --share-group: how printed records are acknowledged: accept (done), release (delivered again, to
    /// any member) or reject (never delivered again).
    #[arg(long, value_enum, requires = "share_group", default_value_t = crate::consume_share::AckArg::Accept)]
    pub(crate) ack: crate::consume_share::AckArg,
    /// Records of Kafka transactional producers: read-uncommitted prints every one; read-committed only those of
    /// committed transactions (without --follow it waits for the transactions open at the start to end).
    #[arg(long, value_enum, default_value_t = IsolationArg::ReadUncommitted)]
    isolation: IsolationArg,
    #[command(flatten)]
    pub(crate) broker: BrokerFlag,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum IsolationArg {
    ReadUncommitted,
    ReadCommitted,
}

pub fn run(args: ConsumeArgs) -> anyhow::Result<()> {
    match args.share_group.clone() {
        Some(group) => {
            if args.isolation == IsolationArg::ReadCommitted {
                anyhow::bail!(
                    "--isolation is a share group's own setting: rill group config {group} --config \
                     share.isolation.level=read_committed"
                );
            }
            block_on(crate::consume_share::consume(&args, &group))
        }
        None => block_on(consume(args)),
    }
}

/// Per partition: where printing goes on from, what stdout has been given, and where to stop.
struct PartitionState {
    /// Offset after the last record written to the output buffer.
    printed: i64,
    /// Offset after the last record flushed to stdout: what a commit stores.
    flushed: i64,
    /// Last committed (or the start, which needs no commit).
    committed: i64,
    /// Without `--follow`: the end offset at start.
    end: Option<i64>,
}

async fn consume(args: ConsumeArgs) -> anyhow::Result<()> {
    let explain = |err| args.broker.explain(err);
    let client = args.broker.connect().await?;
    let admin = Admin::new(client.clone());
    let isolation = match args.isolation {
        IsolationArg::ReadUncommitted => Isolation::ReadUncommitted,
        IsolationArg::ReadCommitted => Isolation::ReadCommitted,
    };
    let config = ConsumerConfig {
        group_id: args.group.clone(),
        client_id: format!("rill-cli@{}", std::process::id()),
        isolation,
        ..ConsumerConfig::default()
    };
    let mut consumer = Consumer::new(client, config).map_err(explain)?;
    let has_start = args.from_beginning
        || args.from_end
        || args.offset.is_some()
        || args.from_time.is_some()
        || args.from_max_timestamp;
    let mode = match &args.group {
        Some(group) if args.follow && args.partition.is_none() && !has_start => {
            // Fail on a missing topic now rather than wait for a topic that may never be created.
            admin.list_offsets(&args.topic, &[], OffsetSpec::Latest).await.map_err(explain)?;
            consumer.subscribe(group, &[&args.topic]).map_err(explain)?;
            Mode::Member
        }
        _ => Mode::Standalone,
    };
    let states = match mode {
        Mode::Member => BTreeMap::new(),
        Mode::Standalone => assign(&args, &admin, &mut consumer).await?,
    };
    let stdout = output::StdoutThread::start().context("cannot start the stdout writer")?;
    let mut printer = Printer {
        args: &args,
        mode,
        out: Vec::new(),
        stdout,
        printed: 0,
        states,
        unconfirmed: BTreeMap::new(),
        in_write: BTreeMap::new(),
    };
    let outcome = printer.run(&mut consumer, &admin).await;
    // Commit what reached stdout, however the loop ended (a failed commit is the error then).
    let committed = match mode {
        Mode::Standalone => printer.commit(&admin).await.map_err(|e| printer.commit_error(e)),
        Mode::Member => printer.leave(&mut consumer).await,
    };
    outcome.and(committed)
}

/// How the consumer gets its partitions and commits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// The partitions asked for (all, or `--partition`), assigned by hand; `--group` commits as a standalone
    /// committer (which the broker accepts only while the group has no members).
    Standalone,
    /// `--group G --follow` without a partition or start flag: a member of the group, reading the partitions
    /// the broker assigns it (shared with the group's other members), committing as that member.
    Member,
}

/// Assigns the partitions asked for and moves them to the start the flags ask for.
async fn assign(
    args: &ConsumeArgs,
    admin: &Admin,
    consumer: &mut Consumer,
) -> anyhow::Result<BTreeMap<u32, PartitionState>> {
    let explain = |err| args.broker.explain(err);
    // One ListOffsets gives the partitions to read, the end offsets to stop at, and the bounds an --offset
    // must lie within.
    let wanted: Vec<u32> = args.partition.into_iter().collect();
    let bounds = admin.list_offsets(&args.topic, &wanted, OffsetSpec::Latest).await.map_err(explain)?;
    let partitions: Vec<u32> = bounds.iter().map(|b| b.partition).collect();
    consumer.assign(&args.topic, &partitions).await.map_err(explain)?;
    let largest = match args.from_max_timestamp {
        true => largest_timestamp_offsets(args, admin, &partitions).await?,
        false => BTreeMap::new(),
    };

    let mut states = BTreeMap::new();
    for bound in &bounds {
        let p = bound.partition;
        let to = match (args.from_beginning, args.from_end, args.offset, args.from_time) {
            (true, ..) => Some(SeekTo::Beginning),
            (_, true, ..) => Some(SeekTo::End),
            (_, _, Some(offset), _) => {
                if !(bound.log_start_offset..=bound.high_watermark).contains(&offset) {
                    anyhow::bail!(
                        "offset {offset} is out of range for partition {p} of topic {:?}: it holds offsets {} to {}",
                        args.topic,
                        bound.log_start_offset,
                        bound.high_watermark
                    );
                }
                Some(SeekTo::Offset(offset))
            }
            (_, _, _, Some(ms)) => Some(SeekTo::Timestamp(ms)),
            // The broker answers as Kafka does, which may be below the log start (the record deleted by
            // DeleteRecords while its segment stays): start at the oldest record left then, where a Kafka
            // consumer told "out of range" resets to with `auto.offset.reset=earliest`. An answer past the end
            // offsets taken above (appended since) is kept: without --follow nothing is printed, as for --from-end.
            _ if args.from_max_timestamp => {
                let found = largest.get(&p).copied().unwrap_or(bound.high_watermark);
                Some(SeekTo::Offset(found.max(bound.log_start_offset)))
            }
            _ => None,
        };
        if let Some(to) = to {
            consumer.seek(&args.topic, p, to).await.map_err(explain)?;
        }
        let mut start = consumer.position(&args.topic, p).context("an assigned partition has a position")?;
        if to.is_none() && !(bound.log_start_offset..=bound.high_watermark).contains(&start) {
            // A committed offset the partition does not hold (below a retention's or DeleteRecords' log start,
            // or past the end after an unclean election or another client's commit) starts at the oldest record,
            // as the consumer's own fetch does when told "out of range" with --follow. The end is asked again
            // first: another reader of the group may have committed past it since it was taken above.
            let now = admin.list_offsets(&args.topic, &[p], OffsetSpec::Latest).await.map_err(explain)?;
            if now.first().is_none_or(|b| !(b.log_start_offset..=b.high_watermark).contains(&start)) {
                consumer.seek(&args.topic, p, SeekTo::Beginning).await.map_err(explain)?;
                start = consumer.position(&args.topic, p).context("an assigned partition has a position")?;
            }
        }
        let end = (!args.follow).then_some(bound.high_watermark.max(start));
        states.insert(p, PartitionState { printed: start, flushed: start, committed: start, end });
    }
    let done: Vec<u32> = states.iter().filter(|(_, s)| s.is_done()).map(|(p, _)| *p).collect();
    consumer.unassign(&args.topic, &done);
    Ok(states)
}

/// Per partition, the offset of the first record carrying its largest timestamp; the high watermark for a
/// partition without records (or whose largest timestamp is not committed yet).
async fn largest_timestamp_offsets(
    args: &ConsumeArgs,
    admin: &Admin,
    partitions: &[u32],
) -> anyhow::Result<BTreeMap<u32, i64>> {
    let found = admin
        .list_offsets(&args.topic, partitions, OffsetSpec::MaxTimestamp)
        .await
        .map_err(|err| args.broker.explain(err))?;
    Ok(found.into_iter().map(|f| (f.partition, f.offset)).collect())
}

impl PartitionState {
    fn at(offset: i64) -> Self {
        Self { printed: offset, flushed: offset, committed: offset, end: None }
    }

    fn is_done(&self) -> bool {
        self.end.is_some_and(|end| self.printed >= end)
    }
}

struct Printer<'a> {
    args: &'a ConsumeArgs,
    mode: Mode,
    /// The records of one `poll`, formatted, on their way to `stdout`.
    out: Vec<u8>,
    stdout: output::StdoutThread,
    /// Records printed so far, for --max-messages.
    printed: u64,
    states: BTreeMap<u32, PartitionState>,
    /// Member mode: per partition, the first offset handed out by the last `poll` that is not known to have
    /// reached stdout (the loop stopped part-way, or the pipe broke). The consumer's position is moved back
    /// there before it commits.
    unconfirmed: BTreeMap<u32, i64>,
    /// Member mode: per partition, the first offset of the write to stdout under way; a signal may end the
    /// command before that write does, and then these records count as unconfirmed.
    in_write: BTreeMap<u32, i64>,
}

impl Printer<'_> {
    async fn run(&mut self, consumer: &mut Consumer, admin: &Admin) -> anyhow::Result<()> {
        let mut interrupt = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;
        let mut terminate = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
        let mut commit_tick = tokio::time::interval(COMMIT_INTERVAL);
        let mut skip_tick = tokio::time::interval(SKIP_CHECK_INTERVAL);
        while !self.is_finished() {
            tokio::select! {
                _ = skip_tick.tick(), if self.mode == Mode::Standalone => self.skip_offsets_without_records(consumer),
                polled = consumer.poll() => {
                    let records = polled.map_err(|e| self.args.broker.explain(e))?;
                    // A reader that stopped reading blocks the write, not the signals.
                    let printed = tokio::select! {
                        printed = self.print(&records, consumer) => printed,
                        _ = interrupt.recv() => return Ok(()),
                        _ = terminate.recv() => return Ok(()),
                    };
                    match printed {
                        Ok(()) => {}
                        // The reader left (`| head`): nothing more to do, and nothing wrong.
                        Err(err) if err.kind() == io::ErrorKind::BrokenPipe => return Ok(()),
                        Err(err) => return Err(anyhow::Error::new(err).context("cannot write to stdout")),
                    }
                }
                _ = interrupt.recv() => return Ok(()),
                _ = terminate.recv() => return Ok(()),
                _ = commit_tick.tick(), if self.args.group.is_some() => {
                    let committed = match self.mode {
                        Mode::Standalone => self.commit(admin).await,
                        // Everything `poll` handed out has been flushed by now (`print` flushes every batch).
                        Mode::Member => consumer.commit().await,
                    };
                    // A periodic commit may fail for a moment (the broker restarting, a member's commit racing a
                    // rebalance); the next tick or the commit on exit tries again. Anything else is reported.
                    match committed {
                        Err(err) if !err.is_retriable() && !matches!(err, rill_client::Error::GroupRefused { .. }) => {
                            return Err(self.commit_error(err));
                        }
                        _ => {}
                    }
                }
            }
        }
        Ok(())
    }

    fn is_finished(&self) -> bool {
        let is_at_max = self.args.max_messages.is_some_and(|max| self.printed >= max);
        // A member has no end offsets (it only follows), and its partitions come and go.
        is_at_max || (self.mode == Mode::Standalone && self.states.values().all(PartitionState::is_done))
    }

    /// Standalone: moves each partition on to the consumer's position when that is past what was printed, which
    /// only offsets without records for it make it (a transaction's marker, an aborted transaction left out):
    /// every record handed out is printed before the loop comes here. Without it, a log ending in a marker would
    /// never be read to its end.
    fn skip_offsets_without_records(&mut self, consumer: &mut Consumer) {
        for (&partition, state) in &mut self.states {
            if state.is_done() {
                continue;
            }
            let Some(position) = consumer.position(&self.args.topic, partition) else { continue };
            let position = state.end.map_or(position, |end| position.min(end));
            if position > state.printed {
                state.printed = position;
                state.flushed = position;
                if state.is_done() {
                    consumer.unassign(&self.args.topic, &[partition]);
                }
            }
        }
    }

    /// Prints the records that are wanted, flushes, and moves `flushed` up to what stdout has.
    async fn print(&mut self, records: &[ConsumedRecord], consumer: &mut Consumer) -> io::Result<()> {
        self.in_write.clear();
        for record in records {
            self.in_write.entry(record.partition).or_insert(record.offset);
        }
        let formatted = self.write(records, consumer);
        let buffer = std::mem::take(&mut self.out);
        let (buffer, flushed) = self.stdout.write_all(buffer).await;
        self.out = buffer;
        self.in_write.clear();
        let flushed = formatted.and(flushed);
        let confirmed = match &flushed {
            Ok(()) => self.printed_in(records),
            // Part of the batch may have reached the reader, but which part is unknown.
            Err(_) => 0,
        };
        for record in &records[confirmed..] {
            self.unconfirmed.entry(record.partition).or_insert(record.offset);
        }
        if flushed.is_ok() {
            for state in self.states.values_mut() {
                state.flushed = state.printed;
            }
        }
        flushed
    }

    /// How many of `records` (a prefix) were printed: all, unless printing stopped part-way.
    fn printed_in(&self, records: &[ConsumedRecord]) -> usize {
        // A record of a partition without a state was never printed (a member creates states as it prints).
        match records.iter().position(|r| self.states.get(&r.partition).is_none_or(|s| r.offset >= s.printed)) {
            Some(first_unprinted) if self.is_finished() => first_unprinted,
            _ => records.len(),
        }
    }

    fn write(&mut self, records: &[ConsumedRecord], consumer: &mut Consumer) -> io::Result<()> {
        for record in records {
            if self.is_finished() {
                break;
            }
            if self.mode == Mode::Member {
                // A member's partitions come and go; a partition (re)assigned starts at the group's offset.
                let state = self.states.entry(record.partition).or_insert_with(|| PartitionState::at(record.offset));
                if record.offset != state.printed {
                    *state = PartitionState::at(record.offset);
                }
            }
            let Some(state) = self.states.get_mut(&record.partition) else { continue };
            if state.is_done() || record.offset < state.printed {
                continue;
            }
            if state.end.is_some_and(|end| record.offset >= end) {
                // Appended after the start: left for the next run.
                state.end = Some(state.printed);
                consumer.unassign(&self.args.topic, &[record.partition]);
                continue;
            }
            match self.args.format {
                Format::Value => {
                    self.out.write_all(record.value.as_deref().unwrap_or_default())?;
                    self.out.write_all(b"\n")?;
                }
                Format::Json => write_json(&mut self.out, record, None)?,
            }
            state.printed = record.offset + 1;
            self.printed += 1;
            if state.is_done() {
                consumer.unassign(&self.args.topic, &[record.partition]);
            }
        }
        Ok(())
    }

    /// Member mode, on the way out: moves each partition back to what reached stdout, commits as the member
    /// and leaves the group (its partitions go to the other members at once).
    async fn leave(&mut self, consumer: &mut Consumer) -> anyhow::Result<()> {
        let explain = |err| self.args.broker.explain(err);
        // A write a signal cut short: its records may not have reached stdout.
        for (&partition, &offset) in &self.in_write {
            self.unconfirmed.entry(partition).or_insert(offset);
        }
        for (&partition, &offset) in &self.unconfirmed {
            if consumer.position(&self.args.topic, partition).is_some_and(|position| position > offset) {
                consumer.seek(&self.args.topic, partition, SeekTo::Offset(offset)).await.map_err(explain)?;
            }
        }
        consumer.unsubscribe().await.map_err(|e| self.commit_error(e))
    }

    fn commit_error(&self, err: rill_client::Error) -> anyhow::Error {
        let group = self.args.group.as_deref().unwrap_or_default();
        self.args.broker.explain(err).context(format!("cannot commit the offsets of group {group:?}"))
    }

    /// Commits, for `--group`, the flushed position of every partition that moved since the last commit.
    async fn commit(&mut self, admin: &Admin) -> rill_client::Result<()> {
        let Some(group) = &self.args.group else { return Ok(()) };
        let topic = self.args.topic.as_str();
        let offsets: Vec<(&str, u32, i64)> =
            self.states.iter().filter(|(_, s)| s.flushed != s.committed).map(|(&p, s)| (topic, p, s.flushed)).collect();
        if offsets.is_empty() {
            return Ok(());
        }
        admin.commit_offsets(group, &offsets).await?;
        for state in self.states.values_mut() {
            state.committed = state.flushed;
        }
        Ok(())
    }
}

/// One record as a JSON object on one line, fields in a fixed order (see `EXAMPLES`); a share group's record
/// ends with its `delivery_count`.
pub(crate) fn write_json(out: &mut impl Write, record: &ConsumedRecord, delivery_count: Option<u32>) -> io::Result<()> {
    write!(
        out,
        r#"{{"topic":{},"partition":{},"offset":{},"timestamp":{},"#,
        json_string(&record.topic),
        record.partition,
        record.offset,
        record.timestamp_ms
    )?;
    write_bytes_field(out, "key", record.key.as_deref())?;
    out.write_all(b",")?;
    write_bytes_field(out, "value", record.value.as_deref())?;
    out.write_all(br#","headers":["#)?;
    for (i, header) in record.headers.iter().enumerate() {
        if i > 0 {
            out.write_all(b",")?;
        }
        write!(out, r#"{{"key":{},"#, json_string(&header.key))?;
        write_bytes_field(out, "value", header.value.as_deref())?;
        out.write_all(b"}")?;
    }
    out.write_all(b"]")?;
    if let Some(count) = delivery_count {
        write!(out, r#","delivery_count":{count}"#)?;
    }
    out.write_all(b"}\n")
}

/// `"name":"text"` for UTF-8, `"name_b64":"..."` otherwise, `"name":null` for a missing field.
fn write_bytes_field(out: &mut impl Write, name: &str, bytes: Option<&[u8]>) -> io::Result<()> {
    match bytes {
        None => write!(out, r#""{name}":null"#),
        Some(bytes) => match std::str::from_utf8(bytes) {
            Ok(text) => write!(out, r#""{name}":{}"#, json_string(text)),
            Err(_) => write!(out, r#""{name}_b64":"{}""#, base64::engine::general_purpose::STANDARD.encode(bytes)),
        },
    }
}

fn json_string(text: &str) -> String {
    serde_json::Value::from(text).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use rill_client::Header;

    #[test]
    fn json_lines_give_text_as_strings_and_other_bytes_in_base64() {
        let record = ConsumedRecord {
            topic: "t".into(),
            partition: 2,
            offset: 7,
            timestamp_ms: 1_000,
            key: Some(Bytes::from_static(b"\xff\x00")),
            value: Some(Bytes::from_static(b"say \"hi\"\n")),
            headers: vec![
                Header { key: "h".into(), value: Some(Bytes::from_static(b"v")) },
                Header { key: "n".into(), value: None },
            ],
        };
        let mut out = Vec::new();
        write_json(&mut out, &record, None).expect("writing to a Vec cannot fail");
        let text = String::from_utf8(out).expect("JSON is UTF-8");
        assert_eq!(
            text,
            "{\"topic\":\"t\",\"partition\":2,\"offset\":7,\"timestamp\":1000,\"key_b64\":\"/wA=\",\
             \"value\":\"say \\\"hi\\\"\\n\",\"headers\":[{\"key\":\"h\",\"value\":\"v\"},{\"key\":\"n\",\"value\":null}]}\n"
        );
        let parsed: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
        assert_eq!(parsed["value"], "say \"hi\"\n");
    }
}
