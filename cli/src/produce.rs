//! `rill produce`: records from the lines of stdin (or one `--value`), sent through the batching `Producer`.
//!
//! Lines. A record per line, split at `\n`; a trailing `\r` is dropped (CRLF files), and a last line without a
//! newline is a record too. An empty line is a record with an empty value: the number of records is always the
//! number of lines, so `wc -l` and the offsets agree. Lines are bytes, not text: anything but `\n` passes through.
//!
//! Flow. A reader thread reads stdin in large blocks and hands over chunks of lines through a bounded channel:
//! a chunk ends at `LINES_PER_CHUNK` lines or when no more input is buffered, so a line typed at a terminal
//! goes out at once and a file goes out in big batches. The async side sends each record (`send` waits when
//! the producer's buffer is full: back-pressure reaches the reader through the channel) and keeps the delivery
//! futures, in input order, to print `partition offset` (`--print-offsets`) and count failures. At most
//! `MAX_PENDING_DELIVERIES` are kept; past that, reading waits for the oldest answer.
//!
//! Failure. A batch the broker does not acknowledge within `--delivery-timeout-ms` (retries included) fails,
//! and so does every later batch of its partition (the producer leaves no gap in the middle of a partition's
//! records). The first failure stops the reading of stdin: the command lets what was sent be answered and
//! exits 1, saying how many records were not stored and why, instead of reading on into a broker that is gone.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use rill_client::{Acks, Compression, DeliveryFuture, Producer, ProducerConfig, ProducerRecord};
use tokio::sync::mpsc;

use crate::connect::{block_on, BrokerFlag};
use crate::output;

const EXAMPLES: &str = "\
Examples:
  printf 'hello\\nworld\\n' | rill produce greetings          # two records
  rill produce greetings --value 'one record' --print-offsets   # prints `partition offset`
  rill produce orders --key customer-7 < orders.txt            # every line keyed customer-7
  printf 'k1:v1\\nk2:v2\\n' | rill produce orders --key-separator :   # key before the first ':'
  rill produce orders --header source=import --acks durable --compression zstd < big.txt
  rill produce logs --compression gzip --compression-level 9 < app.log   # smallest gzip

Each line of stdin is one record (a last line without newline too; an empty line is an empty record; a
trailing \\r is dropped). Without --partition, keyed records go to the partition of their key's hash and
keyless ones are spread over partitions. A record not acknowledged within --delivery-timeout-ms (retries
included) fails, and so do the records after it in its partition; the first failure stops reading stdin.
Exits 1 if any record was not stored, saying how many and why.";

/// Lines handed from the reader thread to the sender at most at once.
const LINES_PER_CHUNK: usize = 1024;
/// Read-ahead buffer of stdin.
const STDIN_BUFFER_BYTES: usize = 256 << 10;
/// Chunks in the channel between reader and sender: bounds the lines read ahead of the producer.
const CHUNKS_IN_FLIGHT: usize = 8;
/// Delivery futures kept for records not yet answered; reading waits past this.
const MAX_PENDING_DELIVERIES: usize = 100_000;
/// `--delivery-timeout-ms` by default: shorter than a library producer's 120 s (Kafka's), because a person or
/// a script is waiting, and long enough for a broker restart.
const DEFAULT_DELIVERY_TIMEOUT_MS: u64 = 30_000;

#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct ProduceArgs {
    /// Topic to send to.
    topic: String,
    /// Send every record to this partition (default: by key hash, or spread for keyless records).
    #[arg(long, value_name = "P")]
    partition: Option<u32>,
    /// Key of every record.
    #[arg(long, value_name = "K", conflicts_with = "key_separator")]
    key: Option<String>,
    /// Split each line at the first SEP: the key before it, the value after. A line without SEP is an error.
    #[arg(long, value_name = "SEP", conflicts_with = "value")]
    key_separator: Option<String>,
    /// A header on every record (repeatable).
    #[arg(long = "header", value_name = "K=V", value_parser = parse_header)]
    headers: Vec<(String, Bytes)>,
    /// When the broker answers: none (offsets are then printed as -1), leader (the record is in the log),
    /// durable (fsynced), all (every in-sync replica of a cluster holds it; as leader on a single node).
    #[arg(long, default_value = "leader", value_parser = parse_acks)]
    acks: Acks,
    /// Compression of each batch: none, gzip, snappy, lz4 or zstd (consumers decompress transparently).
    #[arg(long, default_value = "none", value_parser = parse_compression)]
    compression: Compression,
    /// Level of gzip (1 to 9, -1: zlib's default) or zstd (-131072 to 22, default 3), as Kafka's
    /// compression.gzip.level and compression.zstd.level.
    #[arg(long, value_name = "LEVEL", allow_hyphen_values = true)]
    compression_level: Option<i32>,
    /// Send this one record instead of reading stdin.
    #[arg(long, value_name = "TEXT")]
    value: Option<String>,
    /// Print `partition offset` of each record, in input order, once it is stored.
    #[arg(long)]
    print_offsets: bool,
    /// Longest time a record may wait to be acknowledged, retries included (while the broker restarts, say);
    /// past it the record fails and stdin is no longer read.
    #[arg(long, value_name = "MS", default_value_t = DEFAULT_DELIVERY_TIMEOUT_MS, value_parser = clap::value_parser!(u64).range(1..))]
    delivery_timeout_ms: u64,
    /// Send as a plain (not idempotent) producer: a batch resent after a lost answer may then be stored twice.
    /// By default the producer gets a producer id and the broker drops such repeats.
    #[arg(long)]
    no_idempotence: bool,
    #[command(flatten)]
    broker: BrokerFlag,
}

fn parse_header(text: &str) -> Result<(String, Bytes), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), Bytes::copy_from_slice(value.as_bytes()))),
        _ => Err(format!("{text:?} is not KEY=VALUE")),
    }
}

fn parse_acks(text: &str) -> Result<Acks, String> {
    match text {
        "none" => Ok(Acks::None),
        "leader" => Ok(Acks::Leader),
        "durable" => Ok(Acks::Durable),
        "all" => Ok(Acks::All),
        _ => Err(format!("{text:?} is not one of none, leader, durable, all")),
    }
}

fn parse_compression(text: &str) -> Result<Compression, String> {
    match text {
        "none" => Ok(Compression::None),
        "gzip" => Ok(Compression::Gzip { level: -1 }),
        "snappy" => Ok(Compression::Snappy),
        "lz4" => Ok(Compression::Lz4),
        "zstd" => Ok(Compression::Zstd { level: 3 }),
        _ => Err(format!("{text:?} is not one of none, gzip, snappy, lz4, zstd")),
    }
}

/// `compression` at `level` (`--compression-level`): gzip and zstd have levels (Kafka's ranges), the others none.
fn with_level(compression: Compression, level: Option<i32>) -> anyhow::Result<Compression> {
    let Some(level) = level else { return Ok(compression) };
    let leveled = match compression {
        Compression::Gzip { .. } => Compression::Gzip { level },
        Compression::Zstd { .. } => Compression::Zstd { level },
        _ => {
            anyhow::bail!("--compression-level {level} needs --compression gzip or zstd: the others have no level here")
        }
    };
    leveled.check().map_err(|reason| anyhow::anyhow!("--compression-level: {reason}"))?;
    Ok(leveled)
}

pub fn run(args: ProduceArgs) -> anyhow::Result<()> {
    block_on(produce(args))
}

async fn produce(args: ProduceArgs) -> anyhow::Result<()> {
    let compression = with_level(args.compression, args.compression_level)?;
    let client = args.broker.connect().await?;
    let config = ProducerConfig {
        acks: args.acks,
        compression,
        delivery_timeout: Duration::from_millis(args.delivery_timeout_ms),
        enable_idempotence: !args.no_idempotence,
        ..ProducerConfig::default()
    };
    let producer = Producer::new(client, config).map_err(|e| args.broker.explain(e))?;
    let mut session = Session {
        args: &args,
        producer,
        pending: VecDeque::new(),
        sent: 0,
        failed: 0,
        first_error: None,
        has_stopped_reading: false,
    };
    let outcome = match &args.value {
        Some(value) => session.send(Bytes::copy_from_slice(value.as_bytes()), 1).await,
        None => session.send_stdin().await,
    };
    // Whatever stopped the input, the records already sent are delivered (or fail) before the command ends.
    let finished = session.finish().await;
    outcome.and(finished)
}

struct Session<'a> {
    args: &'a ProduceArgs,
    producer: Producer,
    /// Delivery futures of sent records not yet reported, in input order.
    pending: VecDeque<DeliveryFuture>,
    sent: u64,
    failed: u64,
    first_error: Option<rill_client::Error>,
    /// Whether a failure stopped the reading of stdin before its end.
    has_stopped_reading: bool,
}

impl Session<'_> {
    async fn send_stdin(&mut self) -> anyhow::Result<()> {
        let (tx, mut rx) = mpsc::channel(CHUNKS_IN_FLIGHT);
        // A plain thread, not the runtime's blocking pool: a read of a terminal that never returns must not
        // hold up the runtime's shutdown, and the process exit ends it.
        std::thread::Builder::new()
            .name("stdin-reader".into())
            .spawn(move || read_lines(BufReader::with_capacity(STDIN_BUFFER_BYTES, std::io::stdin()), &tx))
            .context("cannot start the stdin reader")?;
        let mut out = output::stdout();
        let mut line_number = 0;
        // Once a record failed for good, later records of its partition fail too and the broker may be gone:
        // reading on would only turn more input into failures.
        while !self.has_failed() {
            tokio::select! {
                // Report answers as they come, so offsets show up while a terminal user types.
                answered = async { self.pending.front_mut().expect("guarded by the branch condition").await },
                    if !self.pending.is_empty() =>
                {
                    self.pending.pop_front();
                    self.report(answered, &mut out)?;
                    self.report_answered(&mut out).await?;
                    out.flush()?;
                }
                chunk = rx.recv(), if self.pending.len() < MAX_PENDING_DELIVERIES => {
                    let Some(chunk) = chunk else { return Ok(()) };
                    for line in chunk.context("cannot read stdin")? {
                        // `send` may have waited for buffer space that only failures gave back.
                        if self.has_failed() {
                            break;
                        }
                        line_number += 1;
                        self.send(line, line_number).await?;
                    }
                }
            }
        }
        self.has_stopped_reading = true;
        Ok(())
    }

    /// Whether a record failed for good: reported here, or any batch the producer failed (not necessarily the
    /// oldest pending record's).
    fn has_failed(&self) -> bool {
        self.failed > 0 || self.producer.metrics().batches_failed > 0
    }

    /// Sends one line as a record (key and value per the flags).
    async fn send(&mut self, line: Bytes, line_number: u64) -> anyhow::Result<()> {
        let mut record = match &self.args.key_separator {
            Some(separator) => {
                let Some(at) = find(&line, separator.as_bytes()) else {
                    anyhow::bail!("line {line_number} has no key separator {separator:?}")
                };
                ProducerRecord::new(line.slice(at + separator.len()..)).with_key(line.slice(..at))
            }
            None => ProducerRecord::new(line),
        };
        if let Some(key) = &self.args.key {
            record = record.with_key(Bytes::copy_from_slice(key.as_bytes()));
        }
        if let Some(partition) = self.args.partition {
            record = record.with_partition(partition);
        }
        for (key, value) in &self.args.headers {
            record = record.with_header(key.clone(), value.clone());
        }
        let delivery = self.producer.send(&self.args.topic, record).await.map_err(|e| self.args.broker.explain(e))?;
        self.sent += 1;
        self.pending.push_back(delivery);
        Ok(())
    }

    /// Reports every leading delivery that is already answered.
    async fn report_answered(&mut self, out: &mut impl Write) -> anyhow::Result<()> {
        while self.pending.front().is_some_and(DeliveryFuture::is_answered) {
            if let Some(delivery) = self.pending.pop_front() {
                let answered = delivery.await;
                self.report(answered, out)?;
            }
        }
        Ok(())
    }

    fn report(
        &mut self,
        answered: rill_client::Result<rill_client::RecordMetadata>,
        out: &mut impl Write,
    ) -> anyhow::Result<()> {
        match answered {
            Ok(stored) if self.args.print_offsets => {
                output::line(out, format_args!("{} {}", stored.partition, stored.offset))?
            }
            Ok(_) => {}
            Err(err) => {
                self.failed += 1;
                self.first_error.get_or_insert(err);
            }
        }
        Ok(())
    }

    /// Flushes the producer, reports every outstanding delivery, and fails if any record was not stored.
    async fn finish(mut self) -> anyhow::Result<()> {
        self.producer.flush().await;
        let mut out = output::stdout();
        while let Some(delivery) = self.pending.pop_front() {
            let answered = delivery.await;
            self.report(answered, &mut out)?;
        }
        out.flush()?;
        match self.first_error.take() {
            None => Ok(()),
            Some(err) => {
                let (failed, sent) = (self.failed, self.sent);
                // A transient error ends retries only when the delivery timeout runs out: say so, or a last
                // "connection refused" reads as the whole story.
                let within = if err.root().is_retriable() {
                    format!(" within the delivery timeout ({} ms)", self.args.delivery_timeout_ms)
                } else {
                    String::new()
                };
                let unread = if self.has_stopped_reading { ", and the rest of stdin was not read" } else { "" };
                let summary = format!("{failed} of {sent} records sent were not stored{within}{unread}");
                Err(self.args.broker.explain(err).context(summary))
            }
        }
    }
}

/// Reads `input` to its end, sending lines in chunks; a read error ends the chunks with that error.
fn read_lines<R: Read>(mut input: BufReader<R>, tx: &mpsc::Sender<std::io::Result<Vec<Bytes>>>) {
    let mut chunk = Vec::new();
    loop {
        let mut line = Vec::new();
        match input.read_until(b'\n', &mut line) {
            Ok(0) => break,
            Ok(_) => {
                if line.last() == Some(&b'\n') {
                    line.pop();
                    if line.last() == Some(&b'\r') {
                        line.pop();
                    }
                }
                chunk.push(Bytes::from(line));
            }
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(err) => {
                let _ = tx.blocking_send(Err(err));
                return;
            }
        }
        // Hand the chunk over when it is full, or when the next read would wait for more input.
        // (`buffer`, not `fill_buf`: the point is not to block on a terminal while holding a typed line.)
        let is_chunk_ready = chunk.len() >= LINES_PER_CHUNK || input.buffer().is_empty();
        if is_chunk_ready && tx.blocking_send(Ok(std::mem::take(&mut chunk))).is_err() {
            return; // the sender stopped (an error); nobody wants more lines
        }
    }
    if !chunk.is_empty() {
        let _ = tx.blocking_send(Ok(chunk));
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    haystack.windows(needle.len()).position(|window| window == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[u8]) -> Vec<Vec<u8>> {
        let (tx, mut rx) = mpsc::channel(1024);
        read_lines(BufReader::new(input), &tx);
        drop(tx);
        let mut lines = Vec::new();
        while let Ok(chunk) = rx.try_recv() {
            lines.extend(chunk.expect("reading a slice cannot fail").into_iter().map(|b| b.to_vec()));
        }
        lines
    }

    #[test]
    fn every_line_is_a_record_including_empty_ones_and_an_unterminated_last_one() {
        assert_eq!(lines(b"a\n\nb\r\nc"), vec![b"a".to_vec(), vec![], b"b".to_vec(), b"c".to_vec()]);
        assert_eq!(lines(b"a\n"), vec![b"a".to_vec()]);
        assert!(lines(b"").is_empty());
        assert_eq!(lines(b"\xff\x00\n"), vec![b"\xff\x00".to_vec()]);
    }

    #[test]
    fn a_long_input_is_handed_over_in_bounded_chunks() {
        let input = "x\n".repeat(LINES_PER_CHUNK * 2 + 5);
        let (tx, mut rx) = mpsc::channel(1024);
        read_lines(BufReader::with_capacity(1 << 20, input.as_bytes()), &tx);
        drop(tx);
        let mut sizes = Vec::new();
        while let Ok(chunk) = rx.try_recv() {
            sizes.push(chunk.expect("reading a slice cannot fail").len());
        }
        assert!(sizes.iter().all(|&n| n <= LINES_PER_CHUNK), "{sizes:?}");
        assert_eq!(sizes.iter().sum::<usize>(), LINES_PER_CHUNK * 2 + 5);
    }

    #[test]
    fn flags_parse_into_settings_or_name_the_choices() {
        assert_eq!(parse_header("trace=a=b"), Ok(("trace".to_owned(), Bytes::from_static(b"a=b"))));
        assert!(parse_header("novalue").is_err());
        assert!(parse_header("=v").is_err());
        assert_eq!(parse_acks("durable"), Ok(Acks::Durable));
        assert_eq!(parse_acks("all"), Ok(Acks::All));
        assert!(parse_acks("most").expect_err("not a level").contains("none, leader, durable, all"));
        assert_eq!(parse_compression("zstd"), Ok(Compression::Zstd { level: 3 }));
        assert_eq!(parse_compression("gzip"), Ok(Compression::Gzip { level: -1 }));
        assert!(parse_compression("brotli").unwrap_err().contains("none, gzip, snappy, lz4, zstd"));
        assert_eq!(with_level(Compression::Zstd { level: 3 }, Some(19)).unwrap(), Compression::Zstd { level: 19 });
        assert_eq!(with_level(Compression::Snappy, None).unwrap(), Compression::Snappy);
        let refused = with_level(Compression::Lz4, Some(4)).unwrap_err().to_string();
        assert!(refused.contains("gzip or zstd"), "{refused}");
        let refused = with_level(Compression::Gzip { level: -1 }, Some(12)).unwrap_err().to_string();
        assert!(refused.contains("from 1 to 9"), "{refused}");
        assert_eq!(find(b"k1::v", b"::"), Some(2));
        assert_eq!(find(b"kv", b":"), None);
    }
}
