//! `rill consume TOPIC --share-group G`: a member of share group G (`rill_client::ShareConsumer`). Records are
//! printed as `rill consume` prints them, and acknowledged (`--ack`) only once they reached stdout: a record the
//! reader did not get (it went away, the command was interrupted mid-write, `--max-messages` stopped before it)
//! is released for another delivery, never accepted. Without `--follow` the command stops at the first poll that
//! brings nothing; SIGINT and SIGTERM stop it too. Every way out acknowledges what was printed and leaves the
//! group, exiting 0.

use std::io::{self, Write};

use anyhow::Context;
use rill_client::{AcknowledgeType, ShareConsumer, ShareConsumerConfig, ShareRecord};
use tokio::signal::unix::{signal, SignalKind};

use crate::consume::{write_json, ConsumeArgs, Format};
use crate::output;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AckArg {
    Accept,
    Release,
    Reject,
}

impl AckArg {
    fn kind(self) -> AcknowledgeType {
        match self {
            AckArg::Accept => AcknowledgeType::Accept,
            AckArg::Release => AcknowledgeType::Release,
            AckArg::Reject => AcknowledgeType::Reject,
        }
    }
}

/// Records one poll acquires at most (Kafka's `max.poll.records`).
const POLL_RECORDS: u32 = 500;

pub async fn consume(args: &ConsumeArgs, group: &str) -> anyhow::Result<()> {
    let explain = |err| args.broker.explain(err);
    let client = args.broker.connect().await?;
    let mut consumer = ShareConsumer::join(client, group, &[args.topic.as_str()], ShareConsumerConfig::default())
        .await
        .map_err(explain)?;
    let stdout = output::StdoutThread::start().context("cannot start the stdout writer")?;
    let outcome = run(args, &mut consumer, &stdout).await;
    let failures = consumer.close().await.map_err(explain)?;
    for failure in failures {
        eprintln!(
            "warning: the broker refused an acknowledgement of {} partition {}: {} (its records are delivered again)",
            failure.topic, failure.partition, failure.message
        );
    }
    outcome
}

async fn run(args: &ConsumeArgs, consumer: &mut ShareConsumer, stdout: &output::StdoutThread) -> anyhow::Result<()> {
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;
    let mut terminate = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    let mut printed: u64 = 0;
    let mut buffer = Vec::new();
    loop {
        if args.max_messages.is_some_and(|max| printed >= max) {
            return Ok(());
        }
        let batch = args.max_messages.map_or(POLL_RECORDS, |max| (max - printed).min(u64::from(POLL_RECORDS)) as u32);
        let records = tokio::select! {
            polled = consumer.poll_at_most(batch) => polled.map_err(|err| args.broker.explain(err))?,
            _ = interrupt.recv() => return Ok(()),
            _ = terminate.recv() => return Ok(()),
        };
        if records.is_empty() && !args.follow {
            return Ok(());
        }
        let wanted = args.max_messages.map_or(records.len(), |max| records.len().min((max - printed) as usize));
        let (to_print, left) = records.split_at(wanted);
        for record in left {
            consumer.acknowledge(record, AcknowledgeType::Release).map_err(|err| args.broker.explain(err))?;
        }
        format(args, to_print, &mut buffer)?;
        // A reader that stopped reading blocks the write, not the signals.
        let written = tokio::select! {
            written = stdout.write_all(std::mem::take(&mut buffer)) => Some(written),
            _ = interrupt.recv() => None,
            _ = terminate.recv() => None,
        };
        let reached_stdout = match written {
            Some((emptied, Ok(()))) => {
                buffer = emptied;
                true
            }
            Some((_, Err(err))) if err.kind() == io::ErrorKind::BrokenPipe => false,
            Some((_, Err(err))) => {
                release(consumer, to_print);
                return Err(anyhow::Error::new(err).context("cannot write to stdout"));
            }
            None => false,
        };
        if !reached_stdout {
            // Part of the write may have reached the reader, but which part is unknown: all go back.
            release(consumer, to_print);
            return Ok(());
        }
        for record in to_print {
            consumer.acknowledge(record, args.ack.kind()).map_err(|err| args.broker.explain(err))?;
        }
        printed += to_print.len() as u64;
    }
}

fn release(consumer: &mut ShareConsumer, records: &[ShareRecord]) {
    for record in records {
        // Each was returned by the last poll and not acknowledged yet, so this cannot be refused.
        let _ = consumer.acknowledge(record, AcknowledgeType::Release);
    }
}

fn format(args: &ConsumeArgs, records: &[ShareRecord], out: &mut Vec<u8>) -> io::Result<()> {
    for share in records {
        match args.format {
            Format::Value => {
                out.write_all(share.record.value.as_deref().unwrap_or_default())?;
                out.write_all(b"\n")?;
            }
            Format::Json => write_json(out, &share.record, Some(share.delivery_count))?,
        }
    }
    Ok(())
}
