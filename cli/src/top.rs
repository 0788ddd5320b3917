//! `rill top`: a live terminal view of a broker's per-topic rates and consumer-group lag, read from its admin
//! listener's `/metrics` every `--interval-ms` (as `nats top` and kafka-top do). Rates are the difference of two
//! scrapes over the time between them; the view is redrawn in place (cleared with ANSI codes) unless `--plain`.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::table::Table;

const EXAMPLES: &str = "\
Examples:
  rill top                                   # the broker whose admin listener is on 127.0.0.1:9644
  rill top --admin 10.0.0.5:9644 --interval-ms 5000
  rill top --iterations 2 --plain            # two refreshes, printed one after the other (for scripts)";

/// A scrape larger than this is refused: 10,000 partitions' metrics are a few MB.
const MAX_SCRAPE_BYTES: u64 = 64 << 20;

#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct TopArgs {
    /// The broker's admin listener (its --admin-listen), HOST:PORT.
    #[arg(long, env = "RILL_ADMIN", default_value = "127.0.0.1:9644", value_name = "HOST:PORT")]
    admin: String,
    /// Time between refreshes, in ms (at least 100).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(100..))]
    interval_ms: u64,
    /// Stop after this many refreshes (each one shows rates over the interval before it). Default: until Ctrl-C.
    #[arg(long)]
    iterations: Option<u64>,
    /// Print each refresh below the last instead of redrawing the screen.
    #[arg(long)]
    plain: bool,
}

pub fn run(args: TopArgs) -> anyhow::Result<()> {
    let interval = Duration::from_millis(args.interval_ms);
    let mut previous = (Instant::now(), scrape(&args.admin)?);
    let mut shown = 0;
    loop {
        std::thread::sleep(interval);
        let now = (Instant::now(), scrape(&args.admin)?);
        let view = View::between(&previous.1, &now.1, now.0 - previous.0);
        let mut out = std::io::stdout().lock();
        if !args.plain {
            // Clear the screen and go home: redraw in place.
            write!(out, "\x1b[2J\x1b[H")?;
        }
        writeln!(out, "rill top  {}  every {} ms", args.admin, args.interval_ms)?;
        view.write(&mut out)?;
        out.flush()?;
        previous = now;
        shown += 1;
        if args.iterations.is_some_and(|iterations| shown >= iterations) {
            return Ok(());
        }
    }
}

/// One sample: a metric name, its labels (in order) and its value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

impl Sample {
    fn label(&self, key: &str) -> Option<&str> {
        self.labels.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

/// GET /metrics over HTTP/1.1 and parse it.
fn scrape(admin: &str) -> anyhow::Result<Vec<Sample>> {
    let mut stream = TcpStream::connect(admin)
        .with_context(|| format!("cannot reach the admin listener at {admin} (is the broker's --admin-listen on?)"))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    // A broker with `--admin-auth required` answers /metrics only to a bearer token: `rill --token` or RILL_TOKEN.
    let authorization = crate::connect::token().map(|token| format!("Authorization: Bearer {token}\r\n"));
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: {admin}\r\nAccept: text/plain\r\n{}Connection: close\r\n\r\n",
        authorization.unwrap_or_default()
    )?;
    let mut response = String::new();
    stream
        .take(MAX_SCRAPE_BYTES)
        .read_to_string(&mut response)
        .with_context(|| format!("reading /metrics from {admin}"))?;
    let (head, body) = response.split_once("\r\n\r\n").context("the admin listener's answer is not HTTP")?;
    if !head.starts_with("HTTP/1.1 200") {
        anyhow::bail!("{admin}/metrics answered {}", head.lines().next().unwrap_or_default());
    }
    Ok(parse_exposition(body))
}

/// The samples of a Prometheus text exposition; comments and lines it cannot read are skipped.
pub fn parse_exposition(text: &str) -> Vec<Sample> {
    text.lines().filter(|line| !line.starts_with('#') && !line.trim().is_empty()).filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<Sample> {
    let (name, rest) = match line.find(['{', ' ']) {
        Some(at) => line.split_at(at),
        None => return None,
    };
    let (labels, value) = match rest.strip_prefix('{') {
        Some(rest) => parse_labels(rest)?,
        None => (Vec::new(), rest),
    };
    let value = value.split_whitespace().next()?.parse().ok()?;
    Some(Sample { name: name.to_string(), labels, value })
}

/// `k="v",k2="v2"} rest` into the labels and the rest; values may hold `\"`, `\\` and `\n` escapes.
fn parse_labels(mut text: &str) -> Option<(Vec<(String, String)>, &str)> {
    let mut labels = Vec::new();
    loop {
        text = text.trim_start_matches(',');
        if let Some(rest) = text.strip_prefix('}') {
            return Some((labels, rest));
        }
        let (key, rest) = text.split_once("=\"")?;
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next()? {
                (at, '"') => break at,
                (_, '\\') => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                (_, c) => value.push(c),
            }
        };
        labels.push((key.to_string(), value));
        text = &rest[end + 1..];
    }
}

/// Per topic: records and bytes per second in and out, partitions, end offsets summed, bytes on disk.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct TopicRow {
    pub partitions: u32,
    pub records_in_per_s: f64,
    pub bytes_in_per_s: f64,
    pub records_out_per_s: f64,
    pub bytes_out_per_s: f64,
    pub size_bytes: f64,
}

/// What one refresh shows.
#[derive(Debug, Default, PartialEq)]
pub struct View {
    pub topics: BTreeMap<String, TopicRow>,
    /// (group, topic) to the lag summed over partitions, and the group's members.
    pub lags: BTreeMap<(String, String), f64>,
    pub members: BTreeMap<String, f64>,
}

impl View {
    /// The view at `now`, with rates over `elapsed` since `before`.
    pub fn between(before: &[Sample], now: &[Sample], elapsed: Duration) -> View {
        let seconds = elapsed.as_secs_f64().max(1e-3);
        let key = |s: &Sample| (s.name.clone(), s.labels.clone());
        let earlier: BTreeMap<_, f64> = before.iter().map(|s| (key(s), s.value)).collect();
        let mut view = View::default();
        for sample in now {
            let topic = sample.label("topic").unwrap_or_default().to_string();
            // A counter that went down was reset (a restarted broker): count from zero.
            let rate = || {
                let was = earlier.get(&key(sample)).copied().unwrap_or(sample.value);
                let delta = if sample.value >= was { sample.value - was } else { sample.value };
                delta / seconds
            };
            match sample.name.as_str() {
                "rill_partition_log_end_offset" => view.topics.entry(topic).or_default().partitions += 1,
                "rill_partition_size_bytes" => view.topics.entry(topic).or_default().size_bytes += sample.value,
                "rill_partition_produced_records_total" => {
                    view.topics.entry(topic).or_default().records_in_per_s += rate()
                }
                "rill_partition_produced_bytes_total" => view.topics.entry(topic).or_default().bytes_in_per_s += rate(),
                "rill_partition_fetched_records_total" => {
                    view.topics.entry(topic).or_default().records_out_per_s += rate()
                }
                "rill_partition_fetched_bytes_total" => view.topics.entry(topic).or_default().bytes_out_per_s += rate(),
                "rill_group_lag_records" => {
                    let group = sample.label("group").unwrap_or_default().to_string();
                    *view.lags.entry((group, topic)).or_default() += sample.value;
                }
                "rill_group_members" => {
                    view.members.insert(sample.label("group").unwrap_or_default().to_string(), sample.value);
                }
                _ => {}
            }
        }
        view
    }

    pub fn write(&self, out: &mut impl Write) -> std::io::Result<()> {
        let mut topics =
            Table::new(&["TOPIC", "PARTITIONS", "IN REC/S", "IN MB/S", "OUT REC/S", "OUT MB/S", "ON DISK MB"]);
        for (name, row) in &self.topics {
            topics.row(vec![
                name.clone(),
                row.partitions.to_string(),
                format!("{:.0}", row.records_in_per_s),
                format!("{:.2}", row.bytes_in_per_s / 1e6),
                format!("{:.0}", row.records_out_per_s),
                format!("{:.2}", row.bytes_out_per_s / 1e6),
                format!("{:.1}", row.size_bytes / 1e6),
            ]);
        }
        topics.write(out)?;
        writeln!(out)?;
        let mut groups = Table::new(&["GROUP", "TOPIC", "LAG", "MEMBERS"]);
        for ((group, topic), lag) in &self.lags {
            let members = self.members.get(group).map_or("-".to_string(), |m| format!("{m:.0}"));
            groups.row(vec![group.clone(), topic.clone(), format!("{lag:.0}"), members]);
        }
        groups.write(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_read_with_escaped_label_values() {
        let text =
            "# TYPE x counter\nrill_group_lag_records{group=\"a\\\"b,c\",topic=\"t\",partition=\"0\"} 7.0\nup 1\n";
        let samples = parse_exposition(text);
        assert_eq!(samples.len(), 2);
        assert_eq!(samples[0].label("group"), Some("a\"b,c"));
        assert_eq!(samples[0].value, 7.0);
        assert_eq!(samples[1], Sample { name: "up".into(), labels: vec![], value: 1.0 });
        assert!(parse_exposition("garbage{unterminated=\"x 5\n").is_empty());
    }

    #[test]
    fn rates_are_per_second_between_two_scrapes_and_summed_per_topic() {
        let at = |produced: [f64; 2]| {
            parse_exposition(&format!(
                "rill_partition_produced_records_total{{topic=\"t\",partition=\"0\"}} {}\n\
                 rill_partition_produced_records_total{{topic=\"t\",partition=\"1\"}} {}\n\
                 rill_partition_log_end_offset{{topic=\"t\",partition=\"0\"}} 0\n\
                 rill_partition_log_end_offset{{topic=\"t\",partition=\"1\"}} 0\n",
                produced[0], produced[1]
            ))
        };
        let view = View::between(&at([100.0, 0.0]), &at([300.0, 200.0]), Duration::from_secs(2));
        let row = &view.topics["t"];
        assert_eq!(row.partitions, 2);
        assert_eq!(row.records_in_per_s, 200.0);
    }
}
